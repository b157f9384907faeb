"""A Python API to the navigator, in the style of nav2_simple_commander's BasicNavigator.

    from ilrs_robots.runner.commander import Commander, TaskResult
    with Commander(namespace="rover1") as nav:
        nav.wait_until_ready(timeout=30.0)
        nav.goToPose((20.0, 5.0, 0.0))          # x, y (m, map frame), yaw (rad)
        while not nav.isTaskComplete():
            feedback = nav.getFeedback()        # NavigateToPose.Feedback or None
        if nav.getResult() is not TaskResult.SUCCEEDED:
            print(nav.getTaskError())           # (error_code, error_msg)

One task at a time, as BasicNavigator: a new goToPose / followWaypoints pre-empts the task
under way (the navigator ends it with PREEMPTED). A goal the navigator refuses (off the map,
in a hazard or keep-out zone, unreachable) is accepted by the action server and ends at once
FAILED with its code and reason; a goal the server rejects, or no server at all, records an
error and returns None. The commander spins its own node in a thread (RosClient), so its
calls never need a spin of their own.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from enum import Enum
from typing import Any

from action_msgs.msg import GoalStatus
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from rclpy.action import ActionClient

from ilrs_interfaces.action import FollowWaypoints, NavigateToPose
from ilrs_robots.core.geometry import yaw_to_quaternion
from ilrs_robots.nodes.goal_requests import NAVIGATION_RESEND, send_goal
from ilrs_robots.runner.ros_client import RosClient, wait_until

PoseLike = PoseStamped | Sequence[float]

#: error_code of a goal the server rejected or that could not be sent (NavigateToPose UNKNOWN)
SEND_FAILED = 9000


class TaskResult(Enum):
    """How the last task ended (as nav2_simple_commander's TaskResult)."""

    UNKNOWN = 0
    SUCCEEDED = 1
    CANCELED = 2
    FAILED = 3


def make_pose(pose: PoseLike, frame: str = "map", stamp: Any = None) -> PoseStamped:
    """A PoseStamped from a PoseStamped (returned as is) or (x, y[, yaw rad])."""
    if isinstance(pose, PoseStamped):
        return pose
    values = [float(v) for v in pose]
    if len(values) not in (2, 3):
        raise ValueError(f"a pose is (x, y) or (x, y, yaw), got {pose!r}")
    x, y = values[0], values[1]
    yaw = values[2] if len(values) == 3 else 0.0
    msg = PoseStamped()
    msg.header.frame_id = frame
    if stamp is not None:
        msg.header.stamp = stamp
    msg.pose.position.x, msg.pose.position.y = x, y
    q = msg.pose.orientation
    q.x, q.y, q.z, q.w = yaw_to_quaternion(yaw)
    return msg


class Commander:
    """Sends NavigateToPose / FollowWaypoints goals to `/<namespace>/...` and follows them."""

    def __init__(self, namespace: str = "rover1", node_name: str = "commander",
                 client: RosClient | None = None, frame: str = "map") -> None:
        self._own_client = client is None
        self.ros = client or RosClient(node_name)
        self.frame = frame
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.namespace = ns
        node = self.ros.node
        self._nav = ActionClient(node, NavigateToPose, f"{ns}/navigate_to_pose")
        self._waypoints = ActionClient(node, FollowWaypoints, f"{ns}/follow_waypoints")
        self._initial_pose = node.create_publisher(PoseWithCovarianceStamped,
                                                   f"{ns}/initialpose", 10)
        self._lock = threading.Lock()
        self._handle: Any = None
        self._result_future: Any = None
        self._feedback: Any = None
        self._status = GoalStatus.STATUS_UNKNOWN
        self._error: tuple[int, str] = (0, "")
        self._result: Any = None

    # -- readiness and set-up ---------------------------------------------------------------

    def wait_until_ready(self, timeout: float = 30.0) -> bool:
        """Wait until both action servers of the navigator answer (waitUntilNav2Active)."""
        def ready() -> bool:
            return self._nav.server_is_ready() and self._waypoints.server_is_ready()
        return bool(wait_until(ready, timeout, period=0.05))

    def setInitialPose(self, x: float, y: float, yaw: float = 0.0,  # noqa: N802 - Nav2's name
                       wait_for_subscribers: float = 2.0) -> None:
        """Publish `initialpose` (x, y in m, yaw in rad, map frame) for the localization."""
        msg = PoseWithCovarianceStamped()
        msg.header.frame_id = self.frame
        msg.header.stamp = self.ros.node.get_clock().now().to_msg()
        msg.pose.pose = make_pose((x, y, yaw), self.frame).pose
        msg.pose.covariance[0] = msg.pose.covariance[7] = 0.25
        msg.pose.covariance[35] = math.radians(5.0) ** 2
        pub = self._initial_pose
        wait_until(lambda: pub.get_subscription_count() > 0, wait_for_subscribers)
        pub.publish(msg)

    # -- tasks ------------------------------------------------------------------------------

    def goToPose(self, pose: PoseLike, max_speed: float = 0.0,  # noqa: N802 - Nav2's name
                 timeout: float = 30.0) -> Any:
        """Send a NavigateToPose goal (pre-empting any task); its goal handle, or None when
        it could not be sent or was rejected (see getTaskError)."""
        goal = NavigateToPose.Goal(pose=make_pose(pose, self.frame), max_speed=float(max_speed))
        return self._send(self._nav, goal, "NavigateToPose", timeout)

    def followWaypoints(self, poses: Sequence[PoseLike],  # noqa: N802 - Nav2's name
                        timeout: float = 30.0) -> Any:
        """Send a FollowWaypoints goal (pre-empting any task); its goal handle, or None."""
        goal = FollowWaypoints.Goal(poses=[make_pose(p, self.frame) for p in poses])
        return self._send(self._waypoints, goal, "FollowWaypoints", timeout)

    def _send(self, client: ActionClient, goal: Any, what: str, timeout: float) -> Any:
        with self._lock:
            self._handle = self._result_future = self._feedback = self._result = None
            self._status = GoalStatus.STATUS_UNKNOWN
            self._error = (0, "")
        if not client.wait_for_server(timeout_sec=timeout):
            return self._fail(f"{what} server {client._action_name} is not available")  # noqa: SLF001
        handle = send_goal(client, goal, timeout=timeout, resend_after=NAVIGATION_RESEND,
                           feedback_callback=self._on_feedback)
        if handle is None:
            return self._fail(f"{what} goal not answered within {timeout:g} s")
        if handle is None or not handle.accepted:
            return self._fail(f"{what} goal rejected by the server")
        with self._lock:
            self._handle = handle
            self._result_future = handle.get_result_async()
        return handle

    def _fail(self, message: str) -> None:
        with self._lock:
            self._status = GoalStatus.STATUS_ABORTED
            self._error = (SEND_FAILED, message)
        return None

    def _on_feedback(self, msg: Any) -> None:
        with self._lock:
            self._feedback = msg.feedback

    def cancelTask(self, timeout: float = 10.0) -> bool:  # noqa: N802 - Nav2's name
        """Cancel the task under way and wait for the navigator to confirm; True when it
        did (or nothing was running)."""
        with self._lock:
            handle, result = self._handle, self._result_future
        if handle is None or (result is not None and result.done()):
            return True
        future = handle.cancel_goal_async()
        if not wait_until(future.done, timeout, period=0.01):
            return False
        return bool(wait_until(lambda: result is None or result.done(), timeout, period=0.01))

    def isTaskComplete(self, timeout: float = 0.1) -> bool:  # noqa: N802 - Nav2's name
        """True once the task ended (or none was sent); waits up to `timeout` for it."""
        with self._lock:
            future, handle = self._result_future, self._handle
        if handle is None:
            return True
        if not wait_until(future.done, timeout, period=0.005):
            return False
        response = future.result()
        with self._lock:
            if future is self._result_future and self._result is None:
                self._status = response.status
                self._result = response.result
                self._error = (int(response.result.error_code), response.result.error_msg)
        return True

    def getFeedback(self) -> Any:  # noqa: N802 - Nav2's name
        """The newest feedback of the task (NavigateToPose or FollowWaypoints), or None."""
        with self._lock:
            return self._feedback

    def getResult(self) -> TaskResult:  # noqa: N802 - Nav2's name
        """How the task ended (UNKNOWN while it runs)."""
        with self._lock:
            status = self._status
        return {GoalStatus.STATUS_SUCCEEDED: TaskResult.SUCCEEDED,
                GoalStatus.STATUS_CANCELED: TaskResult.CANCELED,
                GoalStatus.STATUS_ABORTED: TaskResult.FAILED}.get(status, TaskResult.UNKNOWN)

    def getTaskError(self) -> tuple[int, str]:  # noqa: N802 - Nav2's name
        """(error_code, error_msg) of the task: (0, "") on success or while it runs."""
        with self._lock:
            return self._error

    def getTaskResultMessage(self) -> Any:  # noqa: N802 - Nav2-style name
        """The action's result message (e.g. FollowWaypoints' missed_waypoints), or None."""
        with self._lock:
            return self._result

    # -- life cycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Destroy the action clients; shut the RosClient down if the commander made it."""
        self._nav.destroy()
        self._waypoints.destroy()
        if self._own_client:
            self.ros.close()

    def __enter__(self) -> Commander:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
