"""Sending an action goal so that a goal response lost in discovery does not lose the goal.

`ActionClient.wait_for_server()` returns once the client has matched the server's endpoints,
but the server may not yet have matched the client's response readers. rmw_fastrtps then waits
a bounded time (100 ms by default, 5 s under config/fastdds.xml) before dropping the goal
response ("client will not receive response"), and
rclpy's action server logs "Failed to send goal response" and never executes that goal. On a
loaded machine discovery is slow enough for this to happen to a goal sent right after
`wait_for_server()`. `send_goal` can therefore send a goal that got no answer for a long while
again, under a new goal id, and when more than one copy was accepted it keeps the one the
server runs. Only for goals that are safe to repeat (a navigation goal, which the next copy
preempts): rmw_fastrtps also drops a response silently, reporting success, when the server
has not yet registered the client at all, and the server then runs the unanswered goal (seen
under load: a print ran, unanswered, and its copy ran again after it). A goal sent once is
therefore sent under a goal id of our own, and the client also listens to the action's status
topic (transient local: the server's latest status array arrives on matching): when the
server lists that id while no answer came for `RESPONSE_GRACE`, the goal was accepted, and
`send_goal` returns a handle built from the status (cancel and the result work on it).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from action_msgs.msg import GoalStatus, GoalStatusArray
from rclpy.action import ActionClient
from rclpy.action.client import ClientGoalHandle
from rclpy.qos import qos_profile_action_status_default
from unique_identifier_msgs.msg import UUID

_ENDED = (GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_CANCELED, GoalStatus.STATUS_ABORTED)

# s an action server keeps a finished goal's result for a client still to ask: rcl's and
# rclcpp's default. rclpy's is 10 s; a result request slowed by discovery on a loaded computer,
# or coming over the ground link, then finds the goal forgotten (status UNKNOWN, empty result).
RESULT_TIMEOUT = 900

# s without an answer before a navigation goal is sent again (a copy preempts the original)
NAVIGATION_RESEND = 15.0

# s without an answer after which a goal the server's status lists is taken as accepted: the
# server's response writer waits up to 5 s for the client's reader (config/fastdds.xml)
RESPONSE_GRACE = 6.0


def send_goal(client: ActionClient, goal: Any, *, timeout: float = 30.0,
              resend_after: float | None = None,
              feedback_callback: Callable[[Any], None] | None = None,
              poll: Callable[[], None] | None = None, period: float = 0.02
              ) -> ClientGoalHandle | None:
    """Send `goal` and wait for the server's answer: its goal handle, or None after `timeout`.

    The client's node must be spun by another thread. With `resend_after` (s), a copy is sent
    every `resend_after` seconds until one is answered (`NAVIGATION_RESEND`, for goals safe to
    repeat); None sends the goal once. config/fastdds.xml lets a server wait 5 s for the
    client's response reader; a copy sent while the first answer is only slow makes two
    accepted goals. A goal sent once whose answer is lost is recovered from the action's
    status topic.
    `poll` is called while waiting (it may raise to give up).
    """
    if resend_after is None:
        return _send_once(client, goal, timeout, feedback_callback, poll, period)
    deadline = time.monotonic() + timeout
    sent: list[Any] = []
    next_send = time.monotonic()
    while not any(f.done() for f in sent):
        now = time.monotonic()
        if now >= deadline:
            return None
        if now >= next_send:
            sent.append(client.send_goal_async(goal, feedback_callback=feedback_callback))
            next_send = math.inf if resend_after is None else now + resend_after
        if poll is not None:
            poll()
        time.sleep(period)
    if len(sent) > 1:  # an earlier copy may have been slow, not lost: hear the later ones
        wait = min(resend_after or 0.0, deadline - now)
        _wait(lambda: all(f.done() for f in sent), wait, poll, period)
    handles = [f.result() for f in sent if f.done() and f.result() is not None]
    accepted = [h for h in handles if h.accepted]
    if len(accepted) > 1:
        return _keep_the_running_one(accepted, resend_after or 0.0, poll, period)
    return accepted[0] if accepted else (handles[-1] if handles else None)


class GoalStatusWatch:
    """The statuses an action server publishes, by goal id, heard by the client's node.

    One per client (`for_client`), living as long as the client's node: destroying a
    subscription from this thread while the node's executor takes a message for it raises
    in that executor (seen: a test client's spin thread ended so, and no result came)."""

    _watches: weakref.WeakKeyDictionary[ActionClient, GoalStatusWatch] = (
        weakref.WeakKeyDictionary())
    _lock = threading.Lock()

    def __init__(self, client: ActionClient) -> None:
        # rclpy keeps the client's node and action name private (the same since Foxy)
        self._statuses: dict[bytes, int] = {}
        self._sub = client._node.create_subscription(
            GoalStatusArray, f"{client._action_name}/_action/status", self._on_status,
            qos_profile_action_status_default)

    @classmethod
    def for_client(cls, client: ActionClient) -> GoalStatusWatch:
        """The watch of `client`'s action, made on first use."""
        with cls._lock:
            watch = cls._watches.get(client)
            if watch is None:
                watch = cls._watches[client] = cls(client)
            return watch

    def _on_status(self, msg: GoalStatusArray) -> None:
        # merged, not replaced: another (or an older) server on the topic publishes arrays
        # without our goal, and the latest array heard need not be this server's
        for status in msg.status_list:
            self._statuses[bytes(status.goal_info.goal_id.uuid)] = status.status

    def status(self, goal_id: UUID) -> int | None:
        """The goal's latest status, None while the server does not list it."""
        return self._statuses.get(bytes(goal_id.uuid))


def _send_once(client: ActionClient, goal: Any, timeout: float,
               feedback_callback: Callable[[Any], None] | None,
               poll: Callable[[], None] | None, period: float) -> ClientGoalHandle | None:
    """Send `goal` once under an id of our own; the answer, or a handle built from the
    server's status when the answer is lost, or None after `timeout`."""
    watch = GoalStatusWatch.for_client(client)
    goal_id = UUID(uuid=list(uuid.uuid4().bytes))
    future = client.send_goal_async(goal, feedback_callback=feedback_callback,
                                    goal_uuid=goal_id)
    sent = time.monotonic()
    while not future.done():
        now = time.monotonic()
        status = watch.status(goal_id)
        if status is not None and (now - sent >= RESPONSE_GRACE or now >= sent + timeout):
            client._node.get_logger().warning(
                f"no answer to goal {bytes(goal_id.uuid).hex()} for {now - sent:.0f} s, but "
                f"the server lists it (status {status}): taken as accepted")
            response = client._action_type.Impl.SendGoalService.Response(accepted=True)
            return ClientGoalHandle(client, goal_id, response)
        if now >= sent + timeout:
            return None
        if poll is not None:
            poll()
        time.sleep(period)
    return future.result()


def _keep_the_running_one(handles: list[ClientGoalHandle], wait: float,
                          poll: Callable[[], None] | None, period: float) -> ClientGoalHandle:
    """Several copies were accepted: the server preempts or refuses all but one. Keep the one
    its status shows running (the newest, if several), waiting up to `wait` for the statuses
    to tell; cancel only copies known to run beside it, never one whose status is unknown."""

    def told() -> bool:
        known = [h.status for h in handles if h.status != GoalStatus.STATUS_UNKNOWN]
        return len(known) == len(handles) and sum(s not in _ENDED for s in known) <= 1

    _wait(told, wait, poll, period)
    running = [h for h in handles
               if h.status not in _ENDED and h.status != GoalStatus.STATUS_UNKNOWN]
    if not running:  # the statuses did not come: the newest copy, as a preempting server runs
        return handles[-1]
    for handle in running[:-1]:
        handle.cancel_goal_async()
    return running[-1]


def _wait(condition: Callable[[], bool], timeout: float, poll: Callable[[], None] | None,
          period: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        if poll is not None:
            poll()
        time.sleep(period)
