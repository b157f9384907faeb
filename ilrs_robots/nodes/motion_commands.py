"""motion_commands: the bounded commands of the ground console, checked and executed on the
robot (`core.motion_commands` does the validation, predicted paths, hazard checks and
tracking; this node is the glue).

Subscribes (relative to the robot's namespace): `motion_commands/request`
(ilrs_interfaces/MotionCommand, reliable, depth 10), the pose (`odom_topic`,
nav_msgs/Odometry in `global_frame`), `costmap` (nav_msgs/OccupancyGrid, transient local) and
`local_costmap`, `estop` (std_msgs/Bool, transient local). Publishes
`motion_commands/status` (ilrs_interfaces/MotionCommandStatus, transient local, depth 50: a
ground console that connects late still sees the recent states), `cmd_vel` (Twist, or
TwistStamped with `enable_stamped_cmd_vel`) at `rate` Hz while a drive, turn or velocity
command runs and one zero command whenever a command ends, and `/diagnostics`. Sends goto
commands to the navigator's `navigate_to_pose` action.

Each command is answered `received`, then `refused` with the reason (malformed or over the
limits, estop latched, no pose, no global costmap, its predicted path crosses a lethal cell
or leaves the global costmap, goal on a hazard) or `executing`. Every cycle the rest of the
path is checked again against the newest maps: a hazard ahead, the estop, a lost pose or no
progress for `stall_timeout` end it `failed`; its end ends it `done`. A `stop` command (never
refused: `done` at once, with a zero cmd_vel even when idle) or any newer command (even one
then refused: the operator's latest intent wins) ends the one under way `cancelled`. A goto is
checked for its goal only (the navigator plans around hazards), its result mapped to done or
failed, its goal cancelled on stop. Statuses carry `progress` (0..1 of the distance, angle,
time, or of the goto's initial distance) and the node's clock (sim time in simulation);
`executing` is repeated every `progress_period` s with the progress.

Unknown cells are allowed by default (`refuse_unknown`); `footprint_radius` is 0 by default
because the stack's costmaps are inflated by the footprint already (as the navigator's
`collision_check_radius`): set it for raw costmaps. Live parameters: all but `odom_topic`,
`global_frame`, `enable_stamped_cmd_vel` and `base_frame`.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.action import ActionClient
from rclpy.action.client import ClientGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool

from ilrs_interfaces.action import NavigateToPose
from ilrs_interfaces.msg import MotionCommand, MotionCommandStatus
from ilrs_robots.core.costmap import CostGrid
from ilrs_robots.core.geometry import Pose2D, quaternion_to_yaw, yaw_to_quaternion
from ilrs_robots.core.motion_commands import (
    GOTO,
    STOP,
    Limits,
    Motion,
    MotionTracker,
    TrackerConfig,
    check_goal,
    check_path,
    predict_path,
    validate,
)
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.goal_requests import NAVIGATION_RESEND, send_goal
from ilrs_robots.nodes.params import declare, run_node
from ilrs_robots.nodes.qos import LATCHED, MOTION_STATUSES

S = MotionCommandStatus
NAV_SUCCEEDED = 4  # action_msgs/GoalStatus

# (name, default, description, range) of the live numeric parameters
NUMBERS = (
    ("rate", 10.0, "Hz of cmd_vel and of the checks while a command runs", (1.0, 50.0)),
    ("footprint_radius", 0.0, "Radius of the rover's footprint checked against lethal cells "
     "(m); 0: the cell under the centre only, for costmaps inflated by the footprint already",
     (0.0, 5.0)),
    ("max_distance", 10.0, "Longest drive (m)", (0.1, 100.0)),
    ("max_angle", 2.0 * math.pi, "Largest turn (rad)", (0.1, 4.0 * math.pi)),
    ("max_linear", 0.5, "Largest linear speed of a command (m/s; the base's limit)",
     (0.01, 5.0)),
    ("max_angular", 0.8, "Largest turn rate of a command (rad/s; the base's limit)",
     (0.01, 5.0)),
    ("max_duration", 10.0, "Longest velocity command (s)", (0.1, 600.0)),
    ("max_goto_distance", 100.0, "Farthest goto goal from the rover (m)", (1.0, 10000.0)),
    ("linear_speed", 0.3, "Drive speed when a command gives none (m/s)", (0.01, 5.0)),
    ("angular_speed", 0.4, "Turn rate when a command gives none (rad/s)", (0.01, 5.0)),
    ("distance_tolerance", 0.05, "A drive is done within this distance of its end (m)",
     (0.005, 1.0)),
    ("angle_tolerance", 0.03, "A turn is done within this angle of its end (rad)",
     (0.002, 0.5)),
    ("stall_timeout", 5.0, "No progress for this long ends a command failed (s)",
     (0.5, 120.0)),
    ("pose_timeout", 2.0, "A pose older than this is none (s)", (0.1, 60.0)),
    ("path_step", 0.1, "Spacing of the poses of a predicted path (m)", (0.01, 1.0)),
    ("angle_step", math.radians(5.0), "Angular spacing of the poses of a predicted path "
     "(rad)", (0.01, 0.5)),
    ("navigator_timeout", 10.0, "Wait this long for navigate_to_pose before a goto is "
     "refused (s)", (0.1, 300.0)),
    ("progress_period", 1.0, "Repeat `executing` with the progress this often (s; 0: never)",
     (0.0, 60.0)),
)


class _Ended(Exception):
    """The goto was ended (cancelled, replaced, shut down) while its goal was being sent."""


@dataclass
class _Run:
    """The command under way."""

    id: str
    kind: str
    motion: Motion
    tracker: MotionTracker | None = None
    handle: ClientGoalHandle | None = None
    total: float = 0.0  # goto: the initial distance (m)
    progress: float = 0.0
    reported: float = 0.0  # node time the progress was last published
    ended: bool = False


class MotionCommands(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("motion_commands")
        d = self
        self.p: dict[str, Any] = {
            "odom_topic": declare(d, "odom_topic", "odometry/filtered", "Pose source "
                                  "(nav_msgs/Odometry in global_frame): odometry/filtered, or "
                                  "sim/ground_truth in tests", bool, "non-empty",
                                  read_only=True),
            "global_frame": declare(d, "global_frame", "map", "Frame of the pose, costmaps and "
                                    "goto goals", bool, "non-empty", read_only=True),
            "enable_stamped_cmd_vel": declare(d, "enable_stamped_cmd_vel", False,
                                              "Publish cmd_vel as TwistStamped (as Nav2 does)",
                                              read_only=True),
            "base_frame": declare(d, "base_frame", "base_link", "Frame of TwistStamped "
                                  "commands", bool, "non-empty", read_only=True),
            "refuse_unknown": declare(d, "refuse_unknown", False, "Refuse (and stop) paths "
                                      "whose footprint meets unknown cells (-1) the rover does "
                                      "not stand on; false: unknown ground is allowed"),
        }
        for name, default, description, bounds in NUMBERS:
            self.p[name] = declare(d, name, default, description, range=bounds)
        self.stamped = self.p["enable_stamped_cmd_vel"]
        self._lock = threading.RLock()
        self._run: _Run | None = None
        self._pose: tuple[Pose2D, float] | None = None  # pose, node time it arrived
        self._global: CostGrid | None = None
        self._local: CostGrid | None = None
        self._estop = False
        self._last_refusal = ""
        self._counts = {"received": 0, "refused": 0, "done": 0, "failed": 0, "cancelled": 0}

        inputs = MutuallyExclusiveCallbackGroup()
        requests = MutuallyExclusiveCallbackGroup()
        control = MutuallyExclusiveCallbackGroup()
        self.cmd_pub = self.create_publisher(TwistStamped if self.stamped else Twist,
                                             "cmd_vel", 10)
        self.status_pub = self.create_publisher(MotionCommandStatus, "motion_commands/status",
                                                MOTION_STATUSES)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(MotionCommand, "motion_commands/request", self._on_request,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
                                 callback_group=requests)
        self.create_subscription(Odometry, self.p["odom_topic"], self._on_pose, 1,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.create_subscription(OccupancyGrid, "costmap", self._on_costmap, LATCHED,
                                 callback_group=inputs)
        self.create_subscription(OccupancyGrid, "local_costmap", self._on_local_costmap, 2,
                                 callback_group=inputs)
        self.create_subscription(Bool, "estop", self._on_estop, LATCHED, callback_group=inputs)
        self.nav = ActionClient(self, NavigateToPose, "navigate_to_pose",
                                callback_group=MutuallyExclusiveCallbackGroup())
        self.control_timer = self.create_timer(1.0 / self.p["rate"], self._control,
                                               callback_group=control)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # diagnostics go on if sim time stops
        self.create_timer(1.0, self._diagnostics, clock=steady, callback_group=inputs)
        self.get_logger().info(
            f"motion commands on pose '{self.p['odom_topic']}', footprint "
            f"{self.p['footprint_radius']:g} m, unknown ground "
            f"{'refused' if self.p['refuse_unknown'] else 'allowed'}")

    def on_parameters_set(self, changed: dict[str, Any]) -> None:
        """Apply accepted live changes (called by nodes.params), from the next command or
        cycle."""
        with self._lock:
            self.p.update(changed)
        if "rate" in changed:
            self.control_timer.timer_period_ns = int(1e9 / changed["rate"])

    # -- settings ---------------------------------------------------------------------------

    def _limits(self) -> Limits:
        p = self.p
        return Limits(p["max_distance"], p["max_angle"], p["max_linear"], p["max_angular"],
                      p["max_duration"], p["max_goto_distance"])

    def _tracker_config(self) -> TrackerConfig:
        p = self.p
        return TrackerConfig(linear_speed=min(p["linear_speed"], p["max_linear"]),
                             angular_speed=min(p["angular_speed"], p["max_angular"]),
                             distance_tolerance=p["distance_tolerance"],
                             angle_tolerance=p["angle_tolerance"],
                             stall_timeout=p["stall_timeout"])

    def _grids(self) -> list[tuple[str, CostGrid, bool]]:
        grids = []
        if self._local is not None:
            grids.append(("local costmap", self._local, False))
        if self._global is not None:
            grids.append(("global costmap", self._global, True))
        return grids

    # -- inputs -----------------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _on_pose(self, msg: Odometry) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        self._pose = (Pose2D(p.x, p.y, quaternion_to_yaw(q.x, q.y, q.z, q.w)), self._now())

    def _fresh_pose(self, now: float) -> Pose2D | None:
        got = self._pose
        if got is None or now - got[1] > self.p["pose_timeout"]:
            return None
        return got[0]

    def _grid_of(self, msg: OccupancyGrid, name: str) -> CostGrid | None:
        frame = self.p["global_frame"]
        if msg.header.frame_id and msg.header.frame_id.lstrip("/") != frame:
            self.get_logger().warning(f"{name} in frame '{msg.header.frame_id}' ignored "
                                      f"(expected '{frame}')", throttle_duration_sec=10.0)
            return None
        info = msg.info
        return CostGrid.from_occupancy(msg.data, info.width, info.height,
                                       (info.origin.position.x, info.origin.position.y),
                                       info.resolution)

    def _on_costmap(self, msg: OccupancyGrid) -> None:
        grid = self._grid_of(msg, "costmap")
        if grid is not None:
            self._global = grid

    def _on_local_costmap(self, msg: OccupancyGrid) -> None:
        grid = self._grid_of(msg, "local_costmap")
        if grid is not None:
            self._local = grid

    def _on_estop(self, msg: Bool) -> None:
        self._estop = bool(msg.data)

    # -- commands ---------------------------------------------------------------------------

    def _on_request(self, msg: MotionCommand) -> None:
        kind = msg.kind.strip().lower()
        motion = Motion(kind, msg.distance, msg.angle, msg.x, msg.y, msg.linear, msg.angular,
                        msg.duration, msg.speed)
        with self._lock:
            self._counts["received"] += 1
            self._publish_status(msg.id, msg.kind, S.STATE_RECEIVED)
            if self._run is not None:
                verb = "stopped" if kind == STOP else "replaced"
                self._end(self._run, S.STATE_CANCELLED, f"{verb} by command '{msg.id}'")
            if kind == STOP:
                self._publish_cmd(0.0, 0.0)
                self._publish_status(msg.id, msg.kind, S.STATE_DONE, progress=1.0)
                return
            now = self._now()
            pose = self._fresh_pose(now)
            reason = self._refusal(motion, pose)
            if reason is not None:
                self._counts["refused"] += 1
                self._last_refusal = f"{msg.id}: {reason}"
                self.get_logger().warning(f"command '{msg.id}' ({kind}) refused: {reason}")
                self._publish_status(msg.id, msg.kind, S.STATE_REFUSED, reason)
                return
            assert pose is not None
            run = _Run(msg.id, kind, motion, reported=now)
            self._run = run
            if kind == GOTO:
                run.total = math.hypot(motion.x - pose.x, motion.y - pose.y)
                threading.Thread(target=self._goto, args=(run, pose), daemon=True,
                                 name=f"goto {msg.id}").start()
                return
            run.tracker = MotionTracker(motion, pose, now, self._tracker_config())
            self._publish_status(run.id, run.kind, S.STATE_EXECUTING)
            self.get_logger().info(f"command '{msg.id}' ({kind}) executing")

    def _refusal(self, m: Motion, pose: Pose2D | None) -> str | None:
        """Why the command cannot start now, or None."""
        reason = validate(m, self._limits(), pose)
        if reason is not None:
            return reason
        if self._estop:
            return "estop latched"
        if pose is None:
            return f"no pose yet on '{self.p['odom_topic']}'"
        if self._global is None:
            return "no global costmap yet"
        p = self.p
        if m.kind == GOTO:
            return check_goal(m.x, m.y, self._grids(), p["footprint_radius"],
                              p["refuse_unknown"])
        path = predict_path(m, pose, p["path_step"], p["angle_step"])
        problem = check_path(path, self._grids(), p["footprint_radius"], p["refuse_unknown"])
        return problem.describe() if problem is not None else None

    def _end(self, run: _Run, state: str, reason: str = "",
             progress: float | None = None) -> None:
        """End `run` (under the lock): one zero cmd_vel, its status, its goal cancelled."""
        if run.ended:
            return
        run.ended = True
        if self._run is run:
            self._run = None
        self._publish_cmd(0.0, 0.0)
        if progress is not None:
            run.progress = progress
        self._counts[state] = self._counts.get(state, 0) + 1
        if state == S.STATE_REFUSED:
            self._last_refusal = f"{run.id}: {reason}"
        self._publish_status(run.id, run.kind, state, reason, run.progress)
        if run.handle is not None and state != S.STATE_DONE:
            run.handle.cancel_goal_async()
        text = f"command '{run.id}' ({run.kind}) {state}" + (f": {reason}" if reason else "")
        if state == S.STATE_DONE:
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text)

    # -- drive, turn, velocity --------------------------------------------------------------

    def _control(self) -> None:
        with self._lock:
            run = self._run
            if run is None:
                return
            try:
                self._step(run)
            except Exception as exc:  # noqa: BLE001 - a bug must stop the rover, not the node
                self.get_logger().error(f"control cycle failed: {traceback.format_exc()}")
                self._end(run, S.STATE_FAILED, f"motion_commands error: {exc!r}")

    def _step(self, run: _Run) -> None:
        """One cycle of the command under way (under the lock)."""
        now = self._now()
        if self._estop:
            self._end(run, S.STATE_FAILED, "estop latched")
            return
        if run.tracker is None:  # a goto: the navigator drives
            self._report_progress(run, now)
            return
        pose = self._fresh_pose(now)
        if pose is None:
            self._end(run, S.STATE_FAILED, f"no pose for {self.p['pose_timeout']:g} s on "
                      f"'{self.p['odom_topic']}'")
            return
        step = run.tracker.step(pose, now)
        run.progress = step.progress
        if step.done:
            self._end(run, S.STATE_DONE, progress=1.0)
            return
        if step.stalled:
            self._end(run, S.STATE_FAILED, f"no progress for {self.p['stall_timeout']:g} s")
            return
        p = self.p
        path = predict_path(run.tracker.remaining(pose, now), pose, p["path_step"],
                            p["angle_step"])
        problem = check_path(path, self._grids(), p["footprint_radius"], p["refuse_unknown"])
        if problem is not None:
            self._end(run, S.STATE_FAILED, problem.describe(under_way=True))
            return
        self._publish_cmd(step.linear, step.angular)
        self._report_progress(run, now)

    def _report_progress(self, run: _Run, now: float) -> None:
        period = self.p["progress_period"]
        started = run.tracker is not None or run.handle is not None
        if started and period > 0.0 and now - run.reported >= period:
            run.reported = now
            self._publish_status(run.id, run.kind, S.STATE_EXECUTING, progress=run.progress)

    # -- goto -------------------------------------------------------------------------------

    def _goto(self, run: _Run, start: Pose2D) -> None:
        """Send the goto to the navigator and follow its goal to the end (own thread)."""
        try:
            self._drive_goal(run, start)
        except _Ended:
            return
        except Exception as exc:  # noqa: BLE001 - the thread must end the command
            self.get_logger().error(f"goto failed: {traceback.format_exc()}")
            with self._lock:
                self._end(run, S.STATE_FAILED, f"motion_commands error: {exc!r}")

    def _check_ended(self, run: _Run) -> None:
        if run.ended or not self.context.ok():
            raise _Ended

    def _drive_goal(self, run: _Run, start: Pose2D) -> None:
        m = run.motion
        deadline = time.monotonic() + self.p["navigator_timeout"]
        while not self.nav.server_is_ready():
            self._check_ended(run)
            if time.monotonic() > deadline:
                with self._lock:
                    self._end(run, S.STATE_REFUSED, "no navigator answers on "
                              "navigate_to_pose")
                return
            time.sleep(0.05)
        goal = NavigateToPose.Goal(max_speed=float(m.speed))
        goal.pose = PoseStamped()
        goal.pose.header.frame_id = self.p["global_frame"]
        goal.pose.header.stamp = self.get_clock().now().to_msg()
        goal.pose.pose.position.x, goal.pose.pose.position.y = float(m.x), float(m.y)
        q = goal.pose.pose.orientation
        q.x, q.y, q.z, q.w = yaw_to_quaternion(math.atan2(m.y - start.y, m.x - start.x))
        handle = send_goal(self.nav, goal, resend_after=NAVIGATION_RESEND,
                           feedback_callback=lambda fb: self._on_feedback(run, fb),
                           poll=lambda: self._check_ended(run))
        with self._lock:
            if run.ended:
                if handle is not None and handle.accepted:
                    handle.cancel_goal_async()
                return
            if handle is None or not handle.accepted:
                self._end(run, S.STATE_REFUSED, "the navigator did not accept the goal")
                return
            run.handle = handle
            self._publish_status(run.id, run.kind, S.STATE_EXECUTING)
            self.get_logger().info(f"command '{run.id}' (goto) executing")
        result = handle.get_result_async()
        while not result.done():
            self._check_ended(run)
            time.sleep(0.05)
        wrapped = result.result()
        with self._lock:
            if wrapped is not None and wrapped.status == NAV_SUCCEEDED:
                self._end(run, S.STATE_DONE, progress=1.0)
                return
            res = wrapped.result if wrapped is not None else None
            why = (res.error_msg if res is not None and res.error_msg else
                   f"navigation ended with status {wrapped.status if wrapped else 'unknown'}")
            self._end(run, S.STATE_FAILED, f"navigator: {why}")

    def _on_feedback(self, run: _Run, msg: Any) -> None:
        remaining = float(msg.feedback.distance_remaining)
        if run.total > 0.0 and math.isfinite(remaining):
            run.progress = min(1.0, max(0.0, 1.0 - remaining / run.total))

    # -- outputs ----------------------------------------------------------------------------

    def _publish_status(self, cid: str, kind: str, state: str, reason: str = "",
                        progress: float = 0.0) -> None:
        msg = MotionCommandStatus(id=cid, kind=kind, state=state, reason=reason,
                                  progress=float(progress))
        msg.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(msg)

    def _publish_cmd(self, linear: float, angular: float) -> None:
        stamp = self.get_clock().now().to_msg() if self.stamped else None
        self.cmd_pub.publish(messages.velocity_command(linear, angular, stamp,
                                                       self.p["base_frame"]))

    def _diagnostics(self) -> None:
        now = self._now()
        with self._lock:
            run = self._run
            values: list[tuple[str, object]] = [
                ("command", f"{run.id} ({run.kind})" if run else "none"),
                ("progress", f"{run.progress:.2f}" if run else "-"),
                ("estop", self._estop), ("last_refusal", self._last_refusal or "none"),
                *self._counts.items()]
        level, message = "OK", f"executing {run.kind} '{run.id}'" if run else "idle"
        if self._global is None:
            level, message = "WARN", f"{message}; no global costmap yet"
        elif self._fresh_pose(now) is None:
            level, message = "WARN", f"{message}; no fresh pose on '{self.p['odom_topic']}'"
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        hw = self.get_namespace().strip("/") or "robot"
        array.status.append(messages.diagnostic(f"{self.get_name()}: commands",
                                                f"{hw}/motion_commands", level, message,
                                                values))
        try:
            self.diag_pub.publish(array)
        except Exception:  # noqa: BLE001 - at shutdown
            if self.context.ok():
                raise

    def close(self) -> None:
        """Stop the rover if a command is under way."""
        with self._lock:
            run = self._run
            if run is not None:
                try:
                    self._end(run, S.STATE_FAILED, "motion_commands shut down")
                except Exception:  # noqa: BLE001 - the context may already be gone
                    pass


def main(args: list[str] | None = None) -> None:
    """Console script `motion_commands`."""
    raise SystemExit(run_node(MotionCommands, args, threads=4))


if __name__ == "__main__":
    main()
