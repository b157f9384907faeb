"""The autonomous traverse of `ilrs sim`: goals sent to the navigator by NavigateToPose only.

    with running_stack(...) as sup, Traverse("rover1") as trav:
        trav.wait_until_ready()
        for goal in mission_goals(world, scale):
            leg = trav.run_leg(goal, check=sup.check)   # progress lines while it drives
            if not leg.succeeded: ...                    # leg.error_code, leg.error_msg

While legs run, the traverse records what the picture and the report need: the rover's true
track (`sim/ground_truth`, one point every `track_spacing` m), every plan the navigator
published (`plan`), the first and the latest global costmap (`costmap`; lethal cells are the
hazards), the largest true tilt, and the localization's pose (`odometry/filtered`) to compare
with the truth at each goal. No command ever goes to `cmd_vel` from here.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import OccupancyGrid, Odometry, Path

from ilrs_robots.core.geometry import Pose2D, quaternion_to_yaw, wrap_angle
from ilrs_robots.core.navigation_support import tilt_of
from ilrs_robots.runner.commander import Commander, TaskResult
from ilrs_robots.runner.ros_client import LATCHED, RosClient, wait_until
from ilrs_robots.sim.world import World

#: NavigateToPose error codes by name (the action's result constants)
ERROR_NAMES = {0: "NONE", 9000: "UNKNOWN", 9003: "TIMEOUT", 9100: "INVALID_GOAL",
               9101: "OFF_MAP", 9102: "IN_HAZARD", 9103: "IN_KEEP_OUT", 9104: "UNREACHABLE",
               9105: "CANCELED", 9106: "PREEMPTED", 9107: "BLOCKED", 9108: "ESTOP",
               9109: "NO_LOCALIZATION"}
#: error_code of a leg the traverse itself gave up on (no result in time, a process died)
LEG_TIMEOUT = 9003
#: an occupancy value of 100 is a lethal cell (hazard or keep-out)
LETHAL = 100


@dataclass(frozen=True)
class MissionGoal:
    """A named goal in the map frame: x, y (m) and the heading to arrive with (rad)."""

    name: str
    x: float
    y: float
    yaw: float


def _towards(frm: tuple[float, float], to: tuple[float, float]) -> float:
    return math.atan2(to[1] - frm[1], to[0] - frm[0])


def mission_goals(world: World, scale: float = 1.0,
                  reactor_standoff: float = 20.0) -> list[MissionGoal]:
    """The traverse of `ilrs sim` in `world`, from the rover's start.

    Worlds with a `construction_site` and a `reactor_site`: the construction site's centre,
    then the reactor site's pad at `reactor_standoff` m from the reactor (outside its keep-out),
    on the side the rover comes from. Other worlds (the small test worlds): two goals 17 m and
    30 m east of the start. `scale` shrinks (< 1) or stretches every goal's offset from the
    start; each goal's heading is the direction of the leg that reaches it.
    """
    if scale <= 0 or not math.isfinite(scale):
        raise ValueError(f"scale must be a positive number (got {scale})")
    start = world.rover_start.position
    if "construction_site" in world.sites and "reactor_site" in world.sites:
        site = world.sites["construction_site"].position
        reactor = world.sites["reactor_site"].position
        d = math.hypot(reactor[0] - site[0], reactor[1] - site[1])
        k = max(0.0, d - reactor_standoff) / d if d > 0 else 0.0
        named = [("construction_site", site),
                 ("reactor_site pad", (site[0] + k * (reactor[0] - site[0]),
                                       site[1] + k * (reactor[1] - site[1])))]
    else:
        named = [("waypoint 1", (start[0] + 16.0, start[1] + 6.0)),
                 ("waypoint 2", (start[0] + 30.0, start[1] + 8.0))]
    goals, prev = [], start
    for name, (x, y) in named:
        p = (start[0] + scale * (x - start[0]), start[1] + scale * (y - start[1]))
        goals.append(MissionGoal(name, p[0], p[1], _towards(prev, p)))
        prev = p
    return goals


@dataclass
class LegReport:
    """How one leg went. Errors in m and rad; times in s of sim time unless named wall."""

    goal: MissionGoal
    succeeded: bool = False
    error_code: int = 0
    error_msg: str = ""
    truth: Pose2D | None = None           # the true pose at rest after the leg
    estimate: Pose2D | None = None        # odometry/filtered at the same moment
    start: Pose2D | None = None           # the true pose when the goal was sent
    sim_time: float = 0.0
    wall_time: float = 0.0
    driven: float = 0.0                   # true path length
    recoveries: int = 0
    max_tilt: float = 0.0

    @property
    def error_name(self) -> str:
        """The error code's name (NONE on success)."""
        return ERROR_NAMES.get(self.error_code, "code")

    @property
    def goal_error(self) -> float:
        """True distance from the goal at the end (NaN without a truth)."""
        if self.truth is None:
            return math.nan
        return math.hypot(self.truth.x - self.goal.x, self.truth.y - self.goal.y)

    @property
    def straight(self) -> float:
        """Straight-line distance from the leg's start to its goal."""
        if self.start is None:
            return math.nan
        return math.hypot(self.goal.x - self.start.x, self.goal.y - self.start.y)

    @property
    def localization_error(self) -> tuple[float, float]:
        """(position m, heading rad) of odometry/filtered against the truth at the end."""
        if self.truth is None or self.estimate is None:
            return math.nan, math.nan
        return (math.hypot(self.estimate.x - self.truth.x, self.estimate.y - self.truth.y),
                abs(wrap_angle(self.estimate.yaw - self.truth.yaw)))

    @property
    def speed_made_good(self) -> float:
        """Straight-line distance over the leg's sim time (m/s)."""
        return self.straight / self.sim_time if self.sim_time > 0 else 0.0


def pose_of(msg: Odometry) -> Pose2D:
    """The planar pose of an Odometry message."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return Pose2D(p.x, p.y, quaternion_to_yaw(q.x, q.y, q.z, q.w))


def _stamp(msg: Odometry) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def lethal_points(grid: OccupancyGrid) -> np.ndarray:
    """(N, 2) map x, y of the centres of the lethal cells of an OccupancyGrid (unrotated)."""
    info = grid.info
    data = np.frombuffer(bytes(np.asarray(grid.data, dtype=np.int8)), dtype=np.int8)
    cells = data.reshape(info.height, info.width)
    rows, cols = np.nonzero(cells >= LETHAL)
    res = info.resolution
    return np.column_stack((info.origin.position.x + (cols + 0.5) * res,
                            info.origin.position.y + (rows + 0.5) * res))


def found_hazards(first: OccupancyGrid, last: OccupancyGrid) -> tuple[np.ndarray, np.ndarray]:
    """(known, found): lethal cells of `last` that were lethal in `first` (the prior map:
    orbital hazards and keep-outs), and those that were not (what the rover found)."""
    now = lethal_points(last)
    if not len(now):
        return now, now
    before = {(round(x, 3), round(y, 3)) for x, y in lethal_points(first)}
    new = np.array([(round(x, 3), round(y, 3)) not in before for x, y in now], dtype=bool)
    return now[~new], now[new]


@dataclass
class _Record:
    track: list[tuple[float, float]] = field(default_factory=list)
    plans: list[list[tuple[float, float]]] = field(default_factory=list)
    truth: Odometry | None = None
    estimate: Odometry | None = None
    truth_count: int = 0
    tilt: float = 0.0


class Traverse:
    """Drives goals with the navigator (Commander) and records the traverse."""

    def __init__(self, namespace: str = "rover1", client: RosClient | None = None,
                 say: Callable[[str], None] = print, track_spacing: float = 0.2) -> None:
        self.ros = client or RosClient("ilrs_traverse")
        self._own_client = client is None
        self.say = say
        self.ns = "/" + namespace.strip("/")
        self.nav = Commander(namespace, client=self.ros)
        self._spacing = track_spacing
        self._lock = threading.Lock()
        self.rec = _Record()
        node = self.ros.node
        node.create_subscription(Odometry, f"{self.ns}/sim/ground_truth", self._on_truth, 50)
        node.create_subscription(Odometry, f"{self.ns}/odometry/filtered", self._on_estimate,
                                 10)
        node.create_subscription(Path, f"{self.ns}/plan", self._on_plan, LATCHED)
        self.first_costmap: OccupancyGrid | None = None
        self._costmap_sub = node.create_subscription(OccupancyGrid, f"{self.ns}/costmap",
                                                     self._on_first_costmap, LATCHED)

    # -- recording ---------------------------------------------------------------------------

    def _on_truth(self, msg: Odometry) -> None:
        p = msg.pose.pose.position
        q = msg.pose.pose.orientation
        tilt = tilt_of((q.x, q.y, q.z, q.w))
        with self._lock:
            r = self.rec
            r.truth, r.truth_count = msg, r.truth_count + 1
            if math.isfinite(tilt):
                r.tilt = max(r.tilt, tilt)
            if not r.track or math.hypot(p.x - r.track[-1][0],
                                         p.y - r.track[-1][1]) >= self._spacing:
                r.track.append((p.x, p.y))

    def _on_estimate(self, msg: Odometry) -> None:
        with self._lock:
            self.rec.estimate = msg

    def _on_plan(self, msg: Path) -> None:
        points = [(p.pose.position.x, p.pose.position.y) for p in msg.poses]
        if points:
            with self._lock:
                self.rec.plans.append(points)

    def _on_first_costmap(self, msg: OccupancyGrid) -> None:
        if self.first_costmap is None:
            self.first_costmap = msg

    @property
    def track(self) -> list[tuple[float, float]]:
        """The true track so far (x, y every `track_spacing` m)."""
        with self._lock:
            return list(self.rec.track)

    @property
    def plans(self) -> list[list[tuple[float, float]]]:
        """Every plan the navigator published, in order."""
        with self._lock:
            return [list(p) for p in self.rec.plans]

    def truth(self) -> Pose2D | None:
        """The newest true pose."""
        with self._lock:
            msg = self.rec.truth
        return pose_of(msg) if msg is not None else None

    def sim_time(self) -> float:
        """Sim time of the newest ground truth (s); 0 before any."""
        with self._lock:
            msg = self.rec.truth
        return _stamp(msg) if msg is not None else 0.0

    def latest_costmap(self, timeout: float = 10.0) -> OccupancyGrid | None:
        """The costmap as it is now (a fresh latched subscription), or None at timeout."""
        got: list[OccupancyGrid] = []
        sub = self.ros.node.create_subscription(OccupancyGrid, f"{self.ns}/costmap",
                                                got.append, LATCHED)
        try:
            wait_until(lambda: got, timeout)
        finally:
            self.ros.node.destroy_subscription(sub)
        return got[-1] if got else None

    # -- driving -----------------------------------------------------------------------------

    def wait_until_ready(self, timeout: float = 120.0) -> str | None:
        """Wait for ground truth, the localization (its filter saying OK: the gyro's bias
        learned while the rover stands still), the costmap, the navigator's action servers
        and its diagnostics saying OK (it has a costmap and a fresh pose); None when all are
        there, otherwise what is missing."""
        deadline = time.monotonic() + timeout
        ready_seen: list[bool] = []
        filter_ok: list[bool] = []
        robot = self.ns.strip('/')

        def on_diagnostics(msg: DiagnosticArray) -> None:
            for s in msg.status:
                if s.level != DiagnosticStatus.OK:
                    continue
                if s.hardware_id == f"{robot}/navigator" and s.name.endswith("navigation"):
                    ready_seen.append(True)
                if s.hardware_id == f"{robot}/localization" and s.name.endswith(": filter"):
                    filter_ok.append(True)

        sub = self.ros.node.create_subscription(DiagnosticArray, "/diagnostics",
                                                on_diagnostics, 20)
        waits = (("ground truth on sim/ground_truth", lambda: self.rec.truth is not None),
                 ("pose on odometry/filtered", lambda: self.rec.estimate is not None),
                 ("localization ready (filter diagnostics OK)", lambda: filter_ok),
                 ("costmap on costmap", lambda: self.first_costmap is not None),
                 ("navigator action servers", lambda: self.nav.wait_until_ready(timeout=0.5)),
                 ("navigator ready (diagnostics OK)", lambda: ready_seen))
        try:
            for what, ready in waits:
                if not wait_until(ready, max(0.0, deadline - time.monotonic()), period=0.1):
                    return what
        finally:
            self.ros.node.destroy_subscription(sub)
        return None

    def settle(self, timeout: float = 30.0) -> tuple[Pose2D | None, Pose2D | None]:
        """(truth, estimate) once fresh ground truth shows the rover at rest (or at timeout)."""
        seen = self.rec.truth_count

        def still() -> bool:
            with self._lock:
                msg, count = self.rec.truth, self.rec.truth_count
            if msg is None or count <= seen:
                return False
            t = msg.twist.twist
            return math.hypot(t.linear.x, t.linear.y) < 0.02 and abs(t.angular.z) < 0.02

        wait_until(still, timeout, period=0.05)
        time.sleep(0.2)  # one more estimate after the rover stopped
        with self._lock:
            truth, est = self.rec.truth, self.rec.estimate
        return (pose_of(truth) if truth is not None else None,
                pose_of(est) if est is not None else None)

    def run_leg(self, goal: MissionGoal, label: str = "", every: float = 10.0,
                check: Callable[[], bool] = lambda: True, sim_timeout: float | None = None,
                max_speed: float = 0.0, nominal_speed: float = 0.5) -> LegReport:
        """Send one NavigateToPose goal and follow it to its end, printing progress every
        `every` s (wall). `check` is called each turn (the supervisor: False when a required
        process died). A leg that has no result after `sim_timeout` s of sim time (default:
        120 s plus 4x the straight distance at `nominal_speed`) is cancelled and fails."""
        label = label or goal.name
        start = self.truth()
        report = LegReport(goal, start=start)
        if sim_timeout is None:
            straight = report.straight if start is not None else 0.0
            sim_timeout = 120.0 + 4.0 * straight / nominal_speed
        with self._lock:
            self.rec.tilt = 0.0
            track_start = len(self.rec.track)
        t0_wall, t0_sim = time.monotonic(), self.sim_time()
        handle = self.nav.goToPose((goal.x, goal.y, goal.yaw), max_speed=max_speed)
        last_print = time.monotonic()
        if handle is not None:
            while not self.nav.isTaskComplete(timeout=0.25):
                now = time.monotonic()
                if not check():
                    self.nav.cancelTask(timeout=5.0)
                    report.error_code, report.error_msg = LEG_TIMEOUT, "a required process died"
                    break
                if self.sim_time() - t0_sim > sim_timeout:
                    self.nav.cancelTask(timeout=5.0)
                    report.error_code = LEG_TIMEOUT
                    report.error_msg = (f"no result within {sim_timeout:.0f} s of sim time: "
                                        f"cancelled")
                    break
                feedback = self.nav.getFeedback()
                if feedback is not None and now - last_print >= every:
                    last_print = now
                    report.recoveries = int(feedback.number_of_recoveries)
                    eta = feedback.estimated_time_remaining
                    p = feedback.current_pose.pose.position
                    self.say(f"{label}: {feedback.distance_remaining:6.1f} m to go, ETA "
                             f"{eta.sec + eta.nanosec * 1e-9:4.0f} s, "
                             f"{feedback.number_of_recoveries} recoveries, at ({p.x:+.1f}, "
                             f"{p.y:+.1f}), {self.sim_time() - t0_sim:.0f} s sim / "
                             f"{now - t0_wall:.0f} s wall")
        if report.error_code == 0:
            report.succeeded = self.nav.getResult() is TaskResult.SUCCEEDED
            report.error_code, report.error_msg = self.nav.getTaskError()
            if not report.succeeded and report.error_code == 0:
                report.error_code = 9000
                report.error_msg = f"ended {self.nav.getResult().name}"
        feedback = self.nav.getFeedback()
        if feedback is not None:
            report.recoveries = int(feedback.number_of_recoveries)
        report.sim_time = self.sim_time() - t0_sim
        report.wall_time = time.monotonic() - t0_wall
        report.truth, report.estimate = self.settle()
        with self._lock:
            report.max_tilt = self.rec.tilt
            leg_track = self.rec.track[max(0, track_start - 1):]
        report.driven = sum(math.hypot(b[0] - a[0], b[1] - a[1])
                            for a, b in zip(leg_track, leg_track[1:], strict=False))
        return report

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop any goal under way and release the ROS client."""
        self.nav.cancelTask(timeout=2.0)
        self.nav.close()
        if self._own_client:
            self.ros.close()

    def __enter__(self) -> Traverse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_leg(report: LegReport, index: int, count: int) -> list[str]:
    """Lines that report one finished leg."""
    g = report.goal
    head = f"leg {index}/{count} to {g.name} ({g.x:+.1f}, {g.y:+.1f})"
    lines = []
    if report.succeeded:
        lines.append(f"{head}: reached in {report.sim_time:.0f} s sim ({report.wall_time:.0f} s "
                     f"wall), driven {report.driven:.1f} m for {report.straight:.1f} m straight, "
                     f"{report.recoveries} recoveries, max tilt "
                     f"{math.degrees(report.max_tilt):.1f} deg")
    else:
        lines.append(f"{head}: FAILED {report.error_name} ({report.error_code}): "
                     f"{report.error_msg}")
    if report.truth is not None:
        pos, head_err = report.localization_error
        where = "at goal" if report.succeeded else "at the end"
        lines.append(f"  {where}: true position ({report.truth.x:+.2f}, {report.truth.y:+.2f}),"
                     f" {report.goal_error:.2f} m from the goal; localization off by "
                     f"{pos:.2f} m, {math.degrees(head_err):.1f} deg")
    return lines


def summarize(reports: Sequence[LegReport]) -> dict[str, float]:
    """Totals over legs: driven (m), sim and wall time (s), recoveries, worst errors."""
    done = [r for r in reports if r.truth is not None]
    return {
        "driven": sum(r.driven for r in reports),
        "sim_time": sum(r.sim_time for r in reports),
        "wall_time": sum(r.wall_time for r in reports),
        "recoveries": float(sum(r.recoveries for r in reports)),
        "max_goal_error": max((r.goal_error for r in done), default=math.nan),
        "max_localization_error": max((r.localization_error[0] for r in done),
                                      default=math.nan),
        "max_tilt": max((r.max_tilt for r in reports), default=0.0),
    }
