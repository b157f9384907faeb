"""Mission control of the ground console: the robots' actions and services, driven from the
robots' side of the emulated link.

    rover:   waypoints -> follow_waypoints (FollowWaypoints), inspect -> inspect_site
             (InspectSite); cancel ends the running one
    builder: print -> print_structure (PrintStructure); pause / resume (std_srvs/Trigger);
             cancel ends the print

`MissionClients.start(command)` is called when a command reaches the robot's side; each answer
(goal accepted or rejected, feedback, result) reaches the console's book through `downlink`,
which delays it as the link does. One mission per robot at a time: a new one is refused while
one runs (cancel it first).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.node import Node
from std_srvs.srv import Trigger

from ilrs_interfaces.action import FollowWaypoints, InspectSite, PrintStructure
from ilrs_robots.console.commands import Command, CommandBook
from ilrs_robots.nodes.service_call import call

ACTIONS = {"waypoints": (FollowWaypoints, "follow_waypoints"),
           "inspect": (InspectSite, "inspect_site"),
           "print": (PrintStructure, "print_structure")}
ROBOT_MISSIONS = {"rover": ("waypoints", "inspect"), "builder": ("print",)}
SERVER_WAIT = 10.0  # s for a robot's action server or service to be discovered


def _goal(command: Command, frame: str) -> Any:
    p = command.params
    if command.kind == "waypoints":
        poses = []
        for x, y in p["points"]:
            pose = PoseStamped()
            pose.header.frame_id = frame
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            pose.pose.orientation.w = 1.0
            poses.append(pose)
        return FollowWaypoints.Goal(poses=poses)
    if command.kind == "inspect":
        return InspectSite.Goal(round=p["round"])
    return PrintStructure.Goal(design=p["design"], layer_height=float(p.get("layer_height", 0)))


def describe_feedback(kind: str, fb: Any) -> str:
    """One line of a mission's feedback."""
    if kind == "waypoints":
        return f"waypoint {fb.current_waypoint}, {fb.distance_remaining:.1f} m to go"
    if kind == "inspect":
        return f"point {fb.point}/{fb.points_total}: {fb.status}"
    return f"layer {fb.layer}/{fb.layers_total}, {fb.percent:.0f} %"


def outcome(kind: str, result: Any) -> tuple[str, str]:
    """(state, reason) of a mission's result."""
    code = int(result.error_code)
    if code == 0:
        if kind == "waypoints" and list(result.missed_waypoints):
            return "failed", f"missed waypoints {list(result.missed_waypoints)}"
        if kind == "inspect":
            found = list(result.findings)
            return "done", (f"{len(found)} finding(s): " + "; ".join(found[:5]) if found
                            else "no findings") + f" (report {result.report_path})"
        return "done", ""
    return "failed", f"error {code}: {result.error_msg}"


class MissionClients:
    """The console's action and service clients per robot, and the mission running on each."""

    def __init__(self, node: Node, robots: list[dict], book: CommandBook,
                 downlink: Callable[[Callable[[], None]], None], frame: str = "map") -> None:
        self.node = node
        self.book = book
        self.downlink = downlink
        self.frame = frame
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], ActionClient] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._triggers: dict[tuple[str, str], Any] = {}
        self._running: dict[str, tuple[str, Any]] = {}  # robot -> (command id, goal handle)
        for robot in robots:
            name = robot["name"]
            for kind in ROBOT_MISSIONS.get(robot["kind"], ()):
                action_type, action = ACTIONS[kind]
                self._names[(name, kind)] = f"/{name}/{action}"
                self._clients[(name, kind)] = ActionClient(node, action_type, f"/{name}/{action}")
            if robot["kind"] == "builder":
                for service in ("pause", "resume"):
                    self._triggers[(name, service)] = node.create_client(Trigger,
                                                                         f"/{name}/{service}")

    def _tell(self, command_id: str, state: str, reason: str = "") -> None:
        self.downlink(lambda: self.book.update(command_id, state, reason))

    def start(self, command: Command) -> None:
        """A mission command reached the robot: send its goal (or refuse it)."""
        robot, kind = command.robot, command.kind
        client = self._clients[(robot, kind)]
        with self._lock:
            busy = self._running.get(robot)
        if busy is not None:
            self._tell(command.id, "refused", f"mission {busy[0]} is running: cancel it first")
            return
        with self._lock:
            self._running[robot] = (command.id, None)
        # waited for on a thread of its own: the link's deliveries must not queue behind it
        threading.Thread(target=self._send, args=(command, client), daemon=True,
                         name=f"mission-{command.id}").start()

    def _send(self, command: Command, client: ActionClient) -> None:
        robot, kind = command.robot, command.kind
        if not client.wait_for_server(timeout_sec=SERVER_WAIT):
            self._finish(robot)
            self._tell(command.id, "failed", f"no {self._names[(robot, kind)]} action server "
                       f"answered within {SERVER_WAIT:g} s")
            return

        def feedback(msg: Any) -> None:
            line = describe_feedback(kind, msg.feedback)
            self.downlink(lambda: self.book.note(command.id, line))

        future = client.send_goal_async(_goal(command, self.frame), feedback_callback=feedback)
        future.add_done_callback(lambda f: self._accepted(command, f))

    def _accepted(self, command: Command, future: Any) -> None:
        handle = future.result() if future.exception() is None else None
        if handle is None or not handle.accepted:
            self._finish(command.robot)
            reason = "the robot rejected the goal" if future.exception() is None \
                else f"sending the goal failed: {future.exception()}"
            self._tell(command.id, "refused", reason)
            return
        with self._lock:
            self._running[command.robot] = (command.id, handle)
        self._tell(command.id, "received")
        self._tell(command.id, "executing")
        handle.get_result_async().add_done_callback(lambda f: self._result(command, f))

    def _result(self, command: Command, future: Any) -> None:
        self._finish(command.robot)
        if future.exception() is not None:
            self._tell(command.id, "failed", f"no result: {future.exception()}")
            return
        answer = future.result()
        state, reason = outcome(command.kind, answer.result)
        if answer.status == 5:  # GoalStatus.STATUS_CANCELED
            state = "cancelled"
        self._tell(command.id, state, reason)

    def _finish(self, robot: str) -> None:
        with self._lock:
            self._running.pop(robot, None)

    def cancel(self, command: Command) -> None:
        """End the robot's running mission, if any."""
        with self._lock:
            running = self._running.get(command.robot)
        if running is None or running[1] is None:
            self._tell(command.id, "done", "no mission was running")
            return
        running[1].cancel_goal_async().add_done_callback(
            lambda f: self._tell(command.id, "done", f"cancelled mission {running[0]}"))

    def trigger(self, command: Command) -> None:
        """pause / resume on a builder."""
        client = self._triggers[(command.robot, command.kind)]
        threading.Thread(target=self._call, args=(command, client), daemon=True,
                         name=f"trigger-{command.id}").start()

    def _call(self, command: Command, client: Any) -> None:
        # pause and resume are idempotent: a request whose reply was lost is sent again
        try:
            res = call(client, Trigger.Request(), SERVER_WAIT)
        except Exception as exc:  # noqa: BLE001 - told to the operator, not raised in a thread
            self._tell(command.id, "failed", str(exc))
            return
        if res is None:
            self._tell(command.id, "failed", f"no {command.kind} service on {command.robot} "
                       f"answered within {SERVER_WAIT:g} s")
            return
        self._tell(command.id, "done" if res.success else "refused", res.message)
