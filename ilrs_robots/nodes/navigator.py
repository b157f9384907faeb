"""navigator: NavigateToPose / FollowWaypoints / goal_pose to cmd_vel, on the global costmap.

Glue around `core.navigation.Navigator` (plan, follow, replan, recover, cancel, pre-empt),
`core.navigation_support.GridPlanner` (A* on `costmap`, refusals as NavigateToPose codes) and
`MotionCheck` (the next seconds of motion against `local_costmap` and `costmap`).

Subscribes (relative to the robot's namespace): `costmap` and `local_costmap`
(nav_msgs/OccupancyGrid, 0..99 cost, 100 lethal, -1 unknown), the pose (`odom_topic`,
nav_msgs/Odometry in `global_frame`), `estop` (std_msgs/Bool, transient local),
`localization/slip` (std_msgs/Bool) and `goal_pose` (geometry_msgs/PoseStamped, RViz's goal).
Publishes `cmd_vel` (Twist, or TwistStamped with `enable_stamped_cmd_vel`) only while a goal
is active and one zero command when it ends, `plan` (nav_msgs/Path) and `/diagnostics`.
Serves `navigate_to_pose` and `follow_waypoints` (ilrs_interfaces).

One goal at a time: a new goal (action or goal_pose) pre-empts the active one, which ends
aborted with PREEMPTED. A goal that cannot be used (wrong frame, NaN, bad quaternion,
negative max_speed) is aborted at once with INVALID_GOAL and leaves the active goal alone;
a goal off the map, in a hazard or keep-out zone, or unreachable is aborted at once with its
code and the planner's reason. Cancel stops the rover at once (a zero cmd_vel).

Threads: callbacks run on a multi-threaded executor; planning (up to ~1 s on a large map)
happens in the goal's own callback or in the control cycle, and one lock serialises every
call into the (not thread-safe) Navigator.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.node import Node
from std_msgs.msg import Bool

from ilrs_interfaces.action import FollowWaypoints, NavigateToPose
from ilrs_robots.core.costmap import CostGrid
from ilrs_robots.core.geometry import Pose2D, quaternion_to_yaw, yaw_to_quaternion
from ilrs_robots.core.navigation import (
    NavError,
    NavigatorConfig,
    NavOutput,
    NavState,
    WaypointResult,
    WaypointSequencer,
)
from ilrs_robots.core.navigation import Navigator as NavCore
from ilrs_robots.core.navigation_support import (
    GridPlanner,
    MotionCheck,
    NoHeadway,
    goal_problem,
    parse_keep_outs,
    tilt_of,
)
from ilrs_robots.core.path_following import FollowerLimits, PurePursuitFollower, Regulation
from ilrs_robots.core.planning import PlannerParams, warm_up
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.goal_requests import RESULT_TIMEOUT
from ilrs_robots.nodes.params import ParameterError, declare, run_node
from ilrs_robots.nodes.qos import LATCHED

# Parameters (name, default, description, range) of each core settings object; all live.
FOLLOWER = (
    ("max_linear", 0.5, "Largest forward speed (m/s)", (0.01, 5.0)),
    ("max_angular", 0.8, "Largest turn rate (rad/s)", (0.01, 5.0)),
    ("max_linear_accel", 0.5, "Forward acceleration limit (m/s^2)", (0.01, 10.0)),
    ("max_linear_decel", 1.0, "Forward deceleration limit (m/s^2)", (0.01, 10.0)),
    ("max_angular_accel", 1.6, "Turn acceleration limit (rad/s^2)", (0.01, 20.0)),
    ("goal_tolerance", 0.5, "The goal is reached within this distance (m)", (0.05, 10.0)),
    ("yaw_tolerance", 0.25, "The goal heading is reached within this angle (rad)",
     (0.01, 3.15)),
    ("lookahead_time", 1.5, "Pure pursuit lookahead = speed * this (s)", (0.1, 10.0)),
    ("min_lookahead", 0.6, "Shortest lookahead (m)", (0.1, 10.0)),
    ("max_lookahead", 2.0, "Longest lookahead (m)", (0.1, 20.0)),
    ("rotate_speed", 0.6, "Turn rate when turning in place (rad/s)", (0.01, 5.0)),
    ("slope_rotate_speed", 0.22, "Turn rate in place on a slope of slope_rotate_start or "
     "more, slow enough for visual odometry to see the rover slide (rad/s)", (0.01, 5.0)),
    ("slope_rotate_start", math.radians(2.0), "Tilt from which turns in place are slow (rad)",
     (0.0, 1.0)),
    ("rollout_time", 2.0, "Seconds of motion checked against the costmaps before each "
     "command (s)", (0.1, 10.0)),
)
RECOVERY = (
    ("stall_timeout", 10.0, "Commanding motion this long without progress = stalled (s)",
     (0.5, 600.0)),
    ("slip_window", 4.0, "Commands and poses compared over this long to detect wheel slip; "
     "longer than the command-to-motion latency of the base (s)", (0.5, 60.0)),
    ("slip_ratio", 0.25, "Moving slower than this fraction of the commanded speed over "
     "slip_window = slipping", (0.0, 1.0)),
    ("unsafe_timeout", 3.0, "Stopped by the motion check this long -> recovery (s)",
     (0.0, 600.0)),
    ("max_recoveries", 6, "Recoveries in a row without progress before the goal fails",
     (0, 100)),
    ("backup_distance", 0.6, "Back-up recovery distance (m)", (0.0, 10.0)),
    ("backup_speed", 0.15, "Back-up recovery speed (m/s)", (0.01, 2.0)),
    ("turn_angle", math.pi / 2.0, "Turn recovery angle (rad)", (0.0, 2.0 * math.pi)),
    ("turn_speed", 0.4, "Turn recovery rate (rad/s)", (0.01, 5.0)),
    ("slope_turn_speed", 0.22, "Turn recovery rate on a slope of slope_turn_start or more "
     "(rad/s)", (0.01, 5.0)),
    ("slope_turn_start", math.radians(2.0), "Tilt from which turn recoveries are slow (rad)",
     (0.0, 1.0)),
    ("recovery_timeout", 15.0, "Longest back-up or turn (s)", (0.5, 600.0)),
    ("replan_period", 10.0, "Replan this often while following (s, 0 = only when blocked)",
     (0.0, 3600.0)),
    ("goal_timeout", 0.0, "Give a goal up after this long (s, 0 = never)", (0.0, 1e6)),
    ("localization_timeout", 2.0, "No valid pose this long -> NO_LOCALIZATION (s)",
     (0.1, 600.0)),
)
PLANNER = (
    ("cost_weight", 3.0, "A cell of cost c costs 1 + cost_weight * c per metre", (0.0, 1000.0)),
    ("unknown_cost", -1.0, "Cost of unknown cells (0..0.99), or -1: unknown is impassable",
     (-1.0, 0.99)),
    ("max_shortcut_cost", 0.5, "Line-of-sight shortcuts never cross costlier cells",
     (0.0, 1.0)),
    ("waypoint_spacing", 0.5, "Distance between the poses of a plan (m)", (0.05, 10.0)),
    ("start_escape_radius", 2.0, "A start inside a hazard may leave it within this (m)",
     (0.0, 50.0)),
    ("max_expansions", 0, "Give up planning after this many cells (0 = no limit)",
     (0, 1_000_000_000)),
)
NO_HEADWAY = (
    ("no_headway_radius", 0.0, "Where the rover slipped or made no progress, a disc of this "
     "radius is made costly for the planner, for the node's life (m, 0 = off; 1.5 tried)",
     (0.0, 10.0)),
    ("no_headway_ahead", 1.0, "... centred this far ahead of the rover in the direction it "
     "drove (m)", (0.0, 10.0)),
    ("no_headway_cost", 0.9, "... with at least this cost (0..0.99: never lethal)",
     (0.0, 0.99)),
)


@dataclass
class _Task:
    """The goal that owns the navigator: an action goal handle, or goal_pose (no handle)."""

    kind: str  # "pose", "waypoints" or "topic"
    handle: ServerGoalHandle | None
    sequencer: WaypointSequencer | None = None
    done: threading.Event = field(default_factory=threading.Event)
    state: NavState = NavState.IDLE
    code: NavError = NavError.NONE
    message: str = ""
    missed: list[int] = field(default_factory=list)

    def finish(self, state: NavState, code: NavError, message: str,
               missed: list[int] | None = None) -> None:
        """Record how the task ended and wake its execute callback."""
        self.state, self.code, self.message = state, NavError(code), message
        self.missed = list(missed or [])
        self.done.set()


def _pose_stamped(pose: Pose2D, frame: str, stamp: Any) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.header.stamp = stamp
    msg.pose.position.x, msg.pose.position.y = float(pose.x), float(pose.y)
    q = msg.pose.orientation
    q.x, q.y, q.z, q.w = yaw_to_quaternion(pose.yaw)
    return msg


def _waypoint_message(result: WaypointResult) -> str:
    """The sequence's message with the reason each missed waypoint was missed."""
    reasons = "; ".join(f"waypoint {i}: {why}" for i, why in sorted(result.missed_reasons.items()))
    return f"{result.error_msg} ({reasons})" if reasons else result.error_msg


def _duration(seconds: float) -> Any:
    seconds = seconds if math.isfinite(seconds) else 0.0
    return Duration(seconds=max(0.0, min(seconds, 1e9))).to_msg()


class Navigator(Node):
    """The navigator node; see the module docstring."""

    def __init__(self) -> None:
        super().__init__("navigator")
        p = self._declare_all()
        self.p = p
        self.frame = p["global_frame"]
        self.stamped = p["enable_stamped_cmd_vel"]
        self._lock = threading.RLock()
        self._task: _Task | None = None
        self._pose: tuple[Pose2D, float, float] | None = None  # pose, tilt, when taken
        self._estop = False
        self._slip: tuple[bool, float] | None = None
        self._local: CostGrid | None = None
        self._costmap_time: float | None = None
        self._last_note = ""
        self._last_out: NavOutput | None = None
        self._warned_frame = False
        try:
            keep_outs = parse_keep_outs(p["keep_outs"])
        except ValueError as exc:
            raise ParameterError("keep_outs", str(exc)) from exc
        self.planner = GridPlanner(self._planner_params(), keep_outs, p["footprint_radius"],
                                   self._no_headway())
        self.motion_check = MotionCheck(self._check_grids, p["collision_check_radius"])
        self.follower = PurePursuitFollower(self._limits(), self.motion_check)
        self.core = NavCore(self.planner, self.follower, self._config(), self.planner.blocked,
                            self.planner.remember_no_headway)
        self._compile_time = warm_up()

        inputs = MutuallyExclusiveCallbackGroup()
        control = MutuallyExclusiveCallbackGroup()
        goals = ReentrantCallbackGroup()
        self.cmd_pub = self.create_publisher(TwistStamped if self.stamped else Twist,
                                             "cmd_vel", 10)
        self.plan_pub = self.create_publisher(Path, "plan", LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(OccupancyGrid, "costmap", self._on_costmap, LATCHED,
                                 callback_group=inputs)
        self.create_subscription(OccupancyGrid, "local_costmap", self._on_local_costmap, 2,
                                 callback_group=inputs)
        # the newest pose only, in a group of its own: a queue of poses would be taken
        # oldest first by a busy executor (each already stale against /clock), and a callback
        # waiting on the lock (diagnostics) must never hold a pose back
        self.create_subscription(Odometry, p["odom_topic"], self._on_pose, 1,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.create_subscription(Bool, "estop", self._on_estop, LATCHED, callback_group=inputs)
        self.create_subscription(Bool, "localization/slip", self._on_slip, 10,
                                 callback_group=inputs)
        self.create_subscription(PoseStamped, "goal_pose", self._on_goal_pose, 10,
                                 callback_group=goals)
        self.nav_server = ActionServer(
            self, NavigateToPose, "navigate_to_pose", self._execute_navigate,
            callback_group=goals, goal_callback=lambda _: GoalResponse.ACCEPT,
            cancel_callback=self._on_cancel, result_timeout=RESULT_TIMEOUT)
        self.waypoint_server = ActionServer(
            self, FollowWaypoints, "follow_waypoints", self._execute_waypoints,
            callback_group=goals, goal_callback=lambda _: GoalResponse.ACCEPT,
            cancel_callback=self._on_cancel, result_timeout=RESULT_TIMEOUT)
        self.control_timer = self.create_timer(1.0 / p["controller_rate"], self._control,
                                               callback_group=control)
        self.diag_timer = self.create_timer(p["diagnostics_period"], self._publish_diagnostics,
                                            callback_group=inputs)
        self.get_logger().info(
            f"navigating in '{self.frame}' on pose '{p['odom_topic']}', {len(keep_outs)} "
            f"keep-out zone(s), planner ready in {self._compile_time:.1f} s, cmd_vel as "
            f"{'TwistStamped' if self.stamped else 'Twist'}")

    # -- parameters -------------------------------------------------------------------------

    def _declare_all(self) -> dict[str, Any]:
        d = self
        p: dict[str, Any] = {
            "global_frame": declare(d, "global_frame", "map", "Frame of goals, plans and the "
                                    "pose", bool, "non-empty", read_only=True),
            "odom_topic": declare(d, "odom_topic", "odometry/filtered",
                                  "Pose source (nav_msgs/Odometry in global_frame): "
                                  "odometry/filtered, or sim/ground_truth in tests", bool,
                                  "non-empty", read_only=True),
            "enable_stamped_cmd_vel": declare(d, "enable_stamped_cmd_vel", False,
                                              "Publish cmd_vel as TwistStamped (as Nav2 does)",
                                              read_only=True),
            "base_frame": declare(d, "base_frame", "base_link", "Frame of TwistStamped "
                                  "commands", bool, "non-empty", read_only=True),
            "keep_outs": declare(d, "keep_outs", "",
                                 "Keep-out zones 'name: x, y, radius; ...' (m, global_frame), "
                                 "never entered and refused as goals", read_only=True),
            "footprint_radius": declare(d, "footprint_radius", 0.9, "Radius of a circle "
                                        "around the rover's footprint (m): keep-outs are grown "
                                        "by it", range=(0.0, 10.0), read_only=True),
            "collision_check_radius": declare(
                d, "collision_check_radius", 0.0, "Lethal cells within this radius of a "
                "rolled-out pose stop the rover (m); 0: the centre only, for costmaps already "
                "inflated by the footprint", range=(0.0, 10.0), read_only=True),
            "max_tilt_deg": declare(d, "max_tilt_deg", 20.0, "The rover never drives on "
                                    "ground tilted more than this (deg)", range=(8.0, 45.0)),
            "rotate_to_goal_heading": declare(d, "rotate_to_goal_heading", True,
                                              "Turn to the goal's yaw once at its position"),
            "controller_rate": declare(d, "controller_rate", 10.0, "Control cycles per second "
                                       "(Hz)", range=(1.0, 50.0)),
            "pose_timeout": declare(d, "pose_timeout", 1.0, "A pose older than this is none "
                                    "(s)", range=(0.05, 60.0)),
            "diagnostics_period": declare(d, "diagnostics_period", 1.0, "Period of "
                                          "/diagnostics (s)", range=(0.05, 60.0)),
        }
        for name, default, text, bounds in FOLLOWER + RECOVERY + PLANNER + NO_HEADWAY:
            p[name] = declare(d, name, default, text, range=bounds)
        if p["max_lookahead"] < p["min_lookahead"]:
            raise ParameterError("max_lookahead", f"must not be below min_lookahead "
                                 f"({p['min_lookahead']:g}) (got {p['max_lookahead']:g})")
        return p

    def _limits(self) -> FollowerLimits:
        p = self.p
        return FollowerLimits(**{name: float(p[name]) for name, *_ in FOLLOWER},
                              tilt_limit=math.radians(p["max_tilt_deg"]),
                              rotate_to_goal_heading=p["rotate_to_goal_heading"])

    def _config(self) -> NavigatorConfig:
        p = self.p
        values = {name: p[name] for name, *_ in RECOVERY}
        values["max_recoveries"] = int(values["max_recoveries"])
        return NavigatorConfig(**values)

    def _planner_params(self) -> PlannerParams:
        p = self.p
        return PlannerParams(
            cost_weight=p["cost_weight"],
            unknown_cost=None if p["unknown_cost"] < 0.0 else p["unknown_cost"],
            max_shortcut_cost=p["max_shortcut_cost"], waypoint_spacing=p["waypoint_spacing"],
            start_escape_radius=p["start_escape_radius"],
            max_expansions=int(p["max_expansions"]))

    def _no_headway(self) -> NoHeadway:
        p = self.p
        return NoHeadway(p["no_headway_radius"], p["no_headway_ahead"], p["no_headway_cost"])

    def on_parameters_set(self, changed: dict[str, Any]) -> None:
        """Apply accepted live changes (called by nodes.params); speeds apply from the next
        plan or replan."""
        with self._lock:
            old = dict(self.p)
            self.p.update(changed)
            try:
                limits, config, params = self._limits(), self._config(), self._planner_params()
                no_headway = self._no_headway()
            except ValueError as exc:
                self.p = old
                self.get_logger().error(f"parameters not applied: {exc}")
                return
            self.follower.limits = limits
            self.core.config = config
            self.planner.params = params
            self.planner.no_headway = no_headway
        if "controller_rate" in changed:
            self.control_timer.timer_period_ns = int(1e9 / changed["controller_rate"])
        if "diagnostics_period" in changed:
            self.diag_timer.timer_period_ns = int(changed["diagnostics_period"] * 1e9)
        self.get_logger().info("parameters applied: " + ", ".join(
            f"{k}={v!r}" for k, v in sorted(changed.items())))

    # -- inputs -----------------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _grid_of(self, msg: OccupancyGrid) -> CostGrid:
        info = msg.info
        return CostGrid.from_occupancy(msg.data, info.width, info.height,
                                       (info.origin.position.x, info.origin.position.y),
                                       info.resolution)

    def _on_costmap(self, msg: OccupancyGrid) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.frame:
            self.get_logger().error(f"costmap in frame '{msg.header.frame_id}' ignored: "
                                    f"goals and plans are in '{self.frame}'")
            return
        grid = self._grid_of(msg)
        self.planner.update(grid)  # a reference swap: a plan under way keeps its grid
        self._costmap_time = self._now()

    def _on_local_costmap(self, msg: OccupancyGrid) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.frame:
            self.get_logger().warning(f"local_costmap in frame '{msg.header.frame_id}' "
                                      f"ignored (expected '{self.frame}')",
                                      throttle_duration_sec=10.0)
            return
        self._local = self._grid_of(msg)

    def _check_grids(self) -> list[tuple[str, CostGrid]]:
        grids = []
        if self._local is not None:
            grids.append(("local costmap", self._local))
        if self.planner.grid is not None:
            grids.append(("global costmap", self.planner.grid))
        return grids

    def _on_pose(self, msg: Odometry) -> None:
        frame = msg.header.frame_id.lstrip("/")
        if frame and frame != self.frame and not self._warned_frame:
            self._warned_frame = True
            self.get_logger().warning(f"pose topic is in frame '{frame}', taken as "
                                      f"'{self.frame}' (no transform is applied)")
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        quat = (q.x, q.y, q.z, q.w)
        pose = Pose2D(p.x, p.y, quaternion_to_yaw(*quat))
        self._pose = (pose, tilt_of(quat), self._pose_time(msg.header.stamp))

    def _pose_time(self, stamp: Any) -> float:
        """The time a pose counts as taken: when it arrived, or its own stamp when that is
        later by up to `pose_timeout` (our /clock lags the sender's when this process is
        busy: a pose just published would otherwise look old)."""
        now = self._now()
        ahead = stamp.sec + stamp.nanosec * 1e-9 - now
        return now + min(max(ahead, 0.0), self.p["pose_timeout"])

    def _on_estop(self, msg: Bool) -> None:
        self._estop = bool(msg.data)
        if self._estop:
            self.get_logger().warning("estop latched: any goal ends with ESTOP")

    def _on_slip(self, msg: Bool) -> None:
        self._slip = (bool(msg.data), self._now())

    def _current_pose(self, now: float) -> tuple[Pose2D | None, float]:
        if self._pose is None:
            return None, math.nan
        pose, tilt, stamp = self._pose
        if now - stamp > self.p["pose_timeout"]:
            return None, math.nan
        return pose, tilt

    def _slipping(self, now: float) -> bool | None:
        if self._slip is None or now - self._slip[1] > 1.0:
            return None
        return self._slip[0]

    def _regulation(self, pose: Pose2D | None, tilt: float) -> Regulation | None:
        if pose is None:
            return None
        grid = self.planner.grid
        hazard = 0.0
        if grid is not None and grid.contains(pose.x, pose.y):
            hazard = min(1.0, grid.cost_at(pose.x, pose.y))  # NaN (unknown): cautious
        return Regulation(slope=tilt if math.isfinite(tilt) else 0.0, hazard_cost=hazard)

    # -- goals ------------------------------------------------------------------------------

    def _goal_of(self, msg: PoseStamped) -> tuple[Pose2D | None, str | None]:
        p, q = msg.pose.position, msg.pose.orientation
        quat = (q.x, q.y, q.z, q.w)
        problem = goal_problem(msg.header.frame_id, self.frame, (p.x, p.y, p.z), quat)
        if problem is not None:
            return None, problem
        return Pose2D(p.x, p.y, quaternion_to_yaw(*quat)), None

    def _take_over(self, task: _Task, now: float) -> None:
        """Make `task` the owner of the navigator; the previous owner ends PREEMPTED."""
        old = self._task
        if old is not None and not old.done.is_set():
            if old.sequencer is not None and old.sequencer.active:
                old.sequencer.cancel(now)  # the next goal starts from a stopped navigator
            old.finish(NavState.CANCELED, NavError.PREEMPTED, "replaced by a newer goal",
                       old.sequencer.missed if old.sequencer else None)
        self._task = task

    def _start_pose_goal(self, task: _Task, goal: Pose2D, max_speed: float) -> None:
        """Plan and start a single goal for `task` (under the lock); ends it if refused."""
        now = self._now()
        if task.handle is not None and task.handle.is_cancel_requested:
            task.finish(NavState.CANCELED, NavError.CANCELED, "canceled before it started")
            return
        pose, _ = self._current_pose(now)
        self._take_over(task, now)
        response = self.core.set_goal(goal, now, pose, max_speed, self._estop)
        if not response.accepted:
            self._task = None
            self._stop()
            self.get_logger().warning(f"goal ({goal.x:.1f}, {goal.y:.1f}) refused: "
                                      f"{response.error_code.name}: {response.error_msg}")
            task.finish(NavState.FAILED, response.error_code, response.error_msg)
            return
        self._publish_plan(response.path)
        self.get_logger().info(f"goal ({goal.x:.1f}, {goal.y:.1f}) accepted: "
                               f"{len(response.path)} poses")

    def _on_goal_pose(self, msg: PoseStamped) -> None:
        goal, problem = self._goal_of(msg)
        if problem is not None:
            self.get_logger().error(f"goal_pose refused: INVALID_GOAL: {problem}")
            return
        with self._lock:
            self._start_pose_goal(_Task("topic", None), goal, 0.0)

    def _execute_navigate(self, handle: ServerGoalHandle) -> NavigateToPose.Result:
        request = handle.request
        goal, problem = self._goal_of(request.pose)
        if problem is None and not (math.isfinite(request.max_speed)
                                    and request.max_speed >= 0.0):
            problem = f"max_speed {request.max_speed} must be 0 or positive"
        task = _Task("pose", handle)
        if problem is not None:
            task.finish(NavState.FAILED, NavError.INVALID_GOAL, problem)
        else:
            with self._lock:
                self._start_pose_goal(task, goal, float(request.max_speed))
        self._wait(task)
        return NavigateToPose.Result(error_code=int(task.code), error_msg=task.message)

    def _execute_waypoints(self, handle: ServerGoalHandle) -> FollowWaypoints.Result:
        task = _Task("waypoints", handle)
        goals = []
        for i, msg in enumerate(handle.request.poses):
            goal, problem = self._goal_of(msg)
            if problem is not None:
                task.finish(NavState.FAILED, NavError.INVALID_GOAL, f"waypoint {i}: {problem}")
                break
            goals.append(goal)
        if not goals and not task.done.is_set():
            task.finish(NavState.FAILED, NavError.INVALID_GOAL, "no waypoints given")
        if not task.done.is_set():
            with self._lock:
                now = self._now()
                if handle.is_cancel_requested:
                    task.finish(NavState.CANCELED, NavError.CANCELED, "canceled before it "
                                "started")
                    return self._waypoint_result(task)
                self._take_over(task, now)
                task.sequencer = WaypointSequencer(self.core)
                pose, _ = self._current_pose(now)
                ended = task.sequencer.start(goals, now, pose)
                if ended is not None:
                    self._task = None
                    self._stop()
                    task.finish(ended.state, ended.error_code, _waypoint_message(ended),
                                ended.missed_waypoints)
                else:
                    self._publish_plan(self.core.path)
        return self._waypoint_result(task)

    def _waypoint_result(self, task: _Task) -> FollowWaypoints.Result:
        self._wait(task)
        return FollowWaypoints.Result(missed_waypoints=task.missed, error_code=int(task.code),
                                      error_msg=task.message)

    def _wait(self, task: _Task) -> None:
        """Block the execute callback until the task ends, then set its terminal state."""
        task.done.wait()
        handle = task.handle
        assert handle is not None
        if task.state is NavState.SUCCEEDED:
            handle.succeed()
            return
        if task.code is NavError.CANCELED:
            # the cancel callback ran; the goal turns CANCELING just after it returns
            deadline = time.monotonic() + 5.0
            while not handle.is_cancel_requested and time.monotonic() < deadline:
                time.sleep(0.002)
            if handle.is_cancel_requested:
                handle.canceled()
                return
        if handle.is_active:
            handle.abort()

    def _on_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        with self._lock:
            task = self._task
            if task is None or task.handle is not handle:
                return CancelResponse.ACCEPT  # not driving (ended, or never started)
            now = self._now()
            missed = None
            if task.sequencer is not None:
                missed = task.sequencer.missed
                task.sequencer.cancel(now)
            else:
                self.core.cancel(now)
            self._task = None
            self._stop()
            task.finish(NavState.CANCELED, NavError.CANCELED, "canceled", missed)
        self.get_logger().info("goal canceled: rover stopped")
        return CancelResponse.ACCEPT

    # -- the control cycle ------------------------------------------------------------------

    def _control(self) -> None:
        with self._lock:
            task = self._task
            if task is None:
                return
            try:
                self._step(task)
            except Exception as exc:  # noqa: BLE001 - a bug must stop the rover, not the node
                self.get_logger().error(f"control cycle failed: {traceback.format_exc()}")
                self._task = None
                self._stop()
                self.core.cancel(self._now())
                task.finish(NavState.FAILED, NavError.UNKNOWN, f"navigator error: {exc!r}")

    def _step(self, task: _Task) -> None:
        """One control cycle of `task` (under the lock)."""
        now = self._now()
        pose, tilt = self._current_pose(now)
        regulation = self._regulation(pose, tilt)
        slipping = self._slipping(now)
        if task.sequencer is not None:
            out = task.sequencer.step(now, pose, regulation, slipping, self._estop)
            nav, linear, angular = out.nav, out.linear, out.angular
            ended = out.result
        else:
            nav = self.core.step(now, pose, regulation, slipping, self._estop)
            linear, angular, ended = nav.linear, nav.angular, nav.result
        self._last_out = nav or self._last_out
        self._publish_cmd(linear, angular)
        if nav is not None:
            self._report(task, nav, out.current_waypoint if task.sequencer else 0)
        if task.sequencer is not None and ended is not None:
            self._task = None
            self._stop()
            task.finish(ended.state, ended.error_code, _waypoint_message(ended),
                        ended.missed_waypoints)
            self.get_logger().info(f"waypoints {ended.state.value}: {task.message}")
        elif task.sequencer is None and ended is not None:
            self._task = None
            self._stop()
            task.finish(ended.state, ended.error_code, ended.error_msg)
            text = f"goal {ended.state.value}: {ended.error_code.name} {ended.error_msg}"
            if ended.succeeded:
                self.get_logger().info(text)
            else:
                self.get_logger().warning(text)

    def _report(self, task: _Task, nav: NavOutput, waypoint: int) -> None:
        if nav.new_path:
            self._publish_plan(nav.new_path)
        if nav.note and nav.note != self._last_note:
            self.get_logger().info(nav.note)
        self._last_note = nav.note
        fb = nav.feedback
        if fb is None or task.handle is None or not task.handle.is_active:
            return
        stamp = self.get_clock().now().to_msg()
        current = _pose_stamped(fb.current_pose, self.frame, stamp)
        if task.kind == "waypoints":
            task.handle.publish_feedback(FollowWaypoints.Feedback(
                current_waypoint=waypoint, current_pose=current,
                distance_remaining=float(fb.distance_remaining)))
            return
        task.handle.publish_feedback(NavigateToPose.Feedback(
            current_pose=current, navigation_time=_duration(fb.navigation_time),
            estimated_time_remaining=_duration(fb.estimated_time_remaining),
            number_of_recoveries=min(int(fb.number_of_recoveries), 65535),
            distance_remaining=float(fb.distance_remaining)))

    # -- outputs ----------------------------------------------------------------------------

    def _publish_cmd(self, linear: float, angular: float) -> None:
        stamp = self.get_clock().now().to_msg() if self.stamped else None
        self.cmd_pub.publish(messages.velocity_command(linear, angular, stamp,
                                                       self.p["base_frame"]))

    def _stop(self) -> None:
        """One zero command: the rover stops now rather than at the base's cmd_timeout."""
        self._publish_cmd(0.0, 0.0)

    def _publish_plan(self, path: list[Pose2D]) -> None:
        msg = Path()
        msg.header.frame_id = self.frame
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.poses = [_pose_stamped(p, self.frame, msg.header.stamp) for p in path]
        self.plan_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        now = self._now()
        with self._lock:
            state = self.core.state
            task = self._task
            fb = self._last_out.feedback if self._last_out is not None else None
            result = self.core.result
        pose, _ = self._current_pose(now)
        level, message = "OK", state.value
        if self.planner.grid is None:
            level, message = "WARN", "no global costmap yet"
        elif pose is None:
            level, message = "WARN", f"no fresh pose on '{self.p['odom_topic']}'"
        elif state is NavState.RECOVERING:
            level, message = "WARN", f"recovering: {self._last_note}"
        elif task is None and result is not None and not result.succeeded:
            message = f"idle; last goal {result.error_code.name}: {result.error_msg}"
        values = [("state", state.value), ("goal_id", self.core.goal_id),
                  ("task", task.kind if task else "none"), ("estop", self._estop),
                  ("recoveries", self.core.number_of_recoveries),
                  ("no_headway_spots", len(self.planner.spots))]
        if fb is not None and task is not None:
            values += [("distance_remaining", f"{fb.distance_remaining:.1f}"),
                       ("eta_s", f"{fb.estimated_time_remaining:.0f}")]
        if self._costmap_time is not None:
            values.append(("costmap_age_s", f"{now - self._costmap_time:.1f}"))
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        hw = self.get_namespace().strip("/") or "robot"
        array.status.append(messages.diagnostic(f"{self.get_name()}: navigation",
                                                f"{hw}/navigator", level, message, values))
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Stop the rover if a goal is under way."""
        with self._lock:
            task, self._task = self._task, None
            if task is not None:
                task.finish(NavState.FAILED, NavError.UNKNOWN, "the navigator shut down")
                try:
                    self._stop()
                except Exception:  # noqa: BLE001 - the context may already be gone
                    pass


def main(args: list[str] | None = None) -> None:
    """Console script `navigator`."""
    raise SystemExit(run_node(Navigator, args, threads=6))


if __name__ == "__main__":
    main()
