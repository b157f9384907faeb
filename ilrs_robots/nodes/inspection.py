"""inspection: inspection rounds as a ROS node (the rover's namespace, e.g. `rover1`).

Serves `inspect_site` (ilrs_interfaces/action/InspectSite). The goal's `round` is a round
file (a path, or a name in config/inspection; schema: `core/inspection/rounds.py`).

* The round is read and validated whole first: a missing or malformed file, a point inside
  the reactor's keep-out radius or a check naming an object the site lacks (with `world`
  or `world_from` set) ends the goal at once with INVALID_ROUND naming the fault.
* With a world known, the dose the round would give the rover is forecast from the world's
  radiation field (straight legs at `forecast_speed`, the dwells and checks); a forecast
  times `forecast_margin` over the round's budget is refused with DOSE_BUDGET, nothing
  driven. While the round runs, the dose is accumulated from `radiation/reading`; reaching
  the budget stops the round with DOSE_BUDGET.
* Each point is driven to through the navigator's `navigate_to_pose`. A point the navigator
  refuses or cannot reach is a finding and is skipped; a failure of the rover itself (estop,
  no localization, no navigator) ends the round with NAVIGATION_FAILED, its progress kept.
* Checks: `photo` (a fresh image of `camera_topic`, compared with its baseline after
  alignment; the round's baseline file, or `baseline_dir/<target>.png`, recorded from the
  first photo when there is none), `gauge` (the needle read into a value) and `radiation`
  (dose-rate readings averaged over the dwell, in the node's clock). A check that cannot be
  performed (no image, no alignment, no dial, a radiation sensor silent for
  `sensor_timeout` s) is marked failed with a finding, and the round goes on.
* Progress is saved in `state_dir` after every point: the same goal after a node restart or
  a cancel resumes at the next unvisited point (a changed round file starts over).
* The report (JSON + self-contained HTML, photos, the dose map) is written atomically into
  `report_dir/<round>_<UTC time>/` at the end, whatever the outcome; `report_path` is the
  HTML file. Cancel stops the rover (the navigation goal is cancelled) and ends CANCELED.

One round at a time: a goal that arrives while one runs is aborted (UNKNOWN, "busy"). A node
stopped mid-drive cannot cancel the navigator's goal (its DDS context is gone first): the
rover finishes that leg, and the resumed round sends it again.
The logic that decides (dose accounting, dwell averages, findings) is in
`core/inspection/session.py`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Image

from ilrs_interfaces.action import InspectSite, NavigateToPose
from ilrs_interfaces.msg import RadiationReading
from ilrs_robots.core.geometry import yaw_to_quaternion
from ilrs_robots.core.inspection import session
from ilrs_robots.core.inspection.report import (
    FailedCheck,
    Finding,
    GaugeResult,
    PhotoResult,
    PointResult,
    RoundProgress,
    gauge_finding,
    photo_finding,
    png_bytes,
    radiation_finding,
    write_report,
)
from ilrs_robots.core.inspection.rounds import (
    GaugeCheck,
    InspectionPoint,
    PhotoCheck,
    RadiationCheck,
    Round,
    RoundError,
    check_round_site,
    forecast_dose,
    load_round,
)
from ilrs_robots.core.inspection.visual import (
    AlignmentError,
    GaugeError,
    check_gauge,
    detect_changes,
    draw_regions,
)
from ilrs_robots.files import write_atomically
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.goal_requests import NAVIGATION_RESEND, RESULT_TIMEOUT, send_goal
from ilrs_robots.nodes.localization import image_array, world_of_node
from ilrs_robots.nodes.params import ParameterError, declare, run_node

R = InspectSite.Result
NAV_SUCCEEDED, NAV_CANCELED = 4, 5  # action_msgs/GoalStatus


class _Stop(Exception):
    """The goal was cancelled or the node is closing."""


@dataclass
class _Sample:
    """A radiation reading as it arrived: node-clock time, wall time, where the rover was."""

    reading: session.Reading
    wall: float
    x: float
    y: float


class InspectionNode(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("inspection")
        d = self
        home = "~/.ilrs/inspection"
        self.report_dir = declare(d, "report_dir", f"{home}/reports", "Folder of the reports "
                                  "(one sub-folder per round run)", bool, "a directory")
        self.state_dir = declare(d, "state_dir", f"{home}/state", "Where a round's progress "
                                 "is kept (resume after a restart)", bool, "a directory",
                                 read_only=True)
        self.baseline_dir = declare(d, "baseline_dir", f"{home}/baselines", "Baseline photos "
                                    "by target (<target>.png) for rounds naming none; the "
                                    "first photo of a target is recorded here", bool,
                                    "a directory")
        self.camera_topic = declare(d, "camera_topic", "camera/image_raw", "Camera photographed "
                                    "for photo and gauge checks (rgb8/bgr8/mono8)", bool,
                                    "a topic name", read_only=True)
        self.odom_topic = declare(d, "odom_topic", "odometry/filtered", "The rover's pose "
                                  "(nav_msgs/Odometry, map frame)", bool, "a topic name",
                                  read_only=True)
        world = declare(d, "world", "", "World of the rounds (name or YAML): site checks and "
                        "the dose forecast; empty: `world_from`, else none", read_only=True)
        world_from = declare(d, "world_from", "", "Node whose 'world' parameter to use when "
                             "'world' is empty (the simulator: /sim)", read_only=True)
        world_timeout = declare(d, "world_from_timeout", 60.0, "How long to wait for the "
                                "'world_from' node (s)", range=(0.1, 600.0), read_only=True)
        self.forecast_speed = declare(d, "forecast_speed", 0.3, "Speed the dose forecast "
                                      "assumes (m/s)", range=(0.01, 5.0))
        self.forecast_margin = declare(d, "forecast_margin", 1.5, "The forecast times this "
                                       "must fit the budget (routes are longer than straight "
                                       "legs)", range=(1.0, 10.0))
        self.seconds_per_check = declare(d, "seconds_per_check", 15.0, "Time a photo or gauge "
                                         "check takes, for the forecast (s)",
                                         range=(0.0, 600.0))
        self.max_speed = declare(d, "max_speed", 0.0, "Speed limit sent with each navigation "
                                 "goal (m/s); 0: the navigator's", range=(0.0, 5.0))
        self.settle_time = declare(d, "settle_time", 1.0, "Wait after arriving before the "
                                   "checks (s, node clock)", range=(0.0, 60.0))
        self.aim_tolerance = declare(d, "aim_tolerance", 0.15, "Settled further than this off "
                                     "the point's heading (rad), the rover is sent to the "
                                     "point again (at most `aim_retries` times)",
                                     range=(0.01, 3.2))
        self.aim_retries = declare(d, "aim_retries", 2, "Navigation goals sent again to a "
                                   "point the rover settled off its heading",
                                   range=(0, 10))
        self.camera_timeout = declare(d, "camera_timeout", 15.0, "Wait for a fresh image "
                                      "before a photo or gauge check fails (s, wall time)",
                                      range=(0.1, 600.0))
        self.sensor_timeout = declare(d, "sensor_timeout", 6.0, "No radiation reading for "
                                      "this long during a dwell: the check fails (s, wall "
                                      "time)", range=(0.5, 600.0))
        self.sensor_window = declare(d, "sensor_window", 10.0, "Counting window of one "
                                     "radiation reading (the sensor's `window`, s)",
                                     range=(1.0, 600.0))
        self.navigator_wait = declare(d, "navigator_wait", 30.0, "Wait for navigate_to_pose "
                                      "to answer before NAVIGATION_FAILED (s)",
                                      range=(0.1, 600.0))
        self.change_threshold = declare(d, "change_threshold", 28.0, "Colour difference "
                                        "(Lab units) a pixel must exceed to count as changed",
                                        range=(1.0, 200.0))
        self.world_name = world or (world_of_node(self, world_from, world_timeout)
                                    if world_from else "")
        self.world: Any = None
        self.field: Any = None
        if self.world_name:
            from ilrs_robots.sim.radiation import RadiationField
            from ilrs_robots.sim.world import WorldError, load_world
            try:
                self.world = load_world(self.world_name)
            except WorldError as exc:
                raise ParameterError("world", f"is not usable: {exc}") from exc
            self.field = RadiationField.from_world(self.world)
        group = ReentrantCallbackGroup()
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._samples: list[_Sample] = []
        self._image: tuple[float, Image] | None = None  # wall arrival, message
        self._pose: tuple[float, float] | None = None
        self._yaw: float | None = None
        self._dose = session.DoseIntegrator()
        self._status = "idle"
        self._last_text = "no round yet"
        self._closing = False
        self._nav_handle: Any = None
        self.create_subscription(RadiationReading, "radiation/reading", self._on_reading, 50,
                                 callback_group=group)
        self.create_subscription(Image, self.camera_topic, self._on_image, 1,
                                 callback_group=group)
        self.create_subscription(Odometry, self.odom_topic, self._on_odom, 5,
                                 callback_group=group)
        self.nav = ActionClient(self, NavigateToPose, "navigate_to_pose", callback_group=group)
        self.action = ActionServer(self, InspectSite, "inspect_site", self._execute,
                                   goal_callback=lambda _g: GoalResponse.ACCEPT,
                                   cancel_callback=lambda _g: CancelResponse.ACCEPT,
                                   callback_group=group, result_timeout=RESULT_TIMEOUT)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0, self._diagnostics, clock=steady, callback_group=group)
        self.get_logger().info(
            f"inspect_site ready; reports in {self.report_dir}, world "
            f"{self.world_name or '(none: no site check, no dose forecast)'}")

    def on_parameters_set(self, changed: dict) -> None:
        """Apply accepted live changes."""
        for name in ("report_dir", "baseline_dir", "forecast_speed", "forecast_margin",
                     "seconds_per_check", "max_speed", "settle_time", "aim_tolerance",
                     "aim_retries", "camera_timeout",
                     "sensor_timeout", "sensor_window", "navigator_wait", "change_threshold"):
            if name in changed:
                setattr(self, name, changed[name])

    # -- inputs -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_reading(self, msg: RadiationReading) -> None:
        t = self._now()
        rate, sd = float(msg.dose_rate), float(msg.dose_rate_stddev)
        x, y = self._pose or (math.nan, math.nan)
        with self._lock:
            self._dose.add(t, rate)
            self._samples.append(_Sample(session.Reading(t, rate, sd), time.monotonic(), x, y))
            del self._samples[:-5000]

    def _on_image(self, msg: Image) -> None:
        self._image = (time.monotonic(), msg)

    def _on_odom(self, msg: Odometry) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        self._pose = (float(p.x), float(p.y))
        self._yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))

    # -- the goal ---------------------------------------------------------------------------
    def _execute(self, goal: ServerGoalHandle) -> InspectSite.Result:
        if not self._run_lock.acquire(blocking=False):
            goal.abort()
            return R(error_code=R.UNKNOWN, error_msg=f"busy: {self._status}; cancel it first")
        try:
            return self._run(goal)
        except Exception as exc:  # noqa: BLE001 - a goal must end, whatever happened
            if self._closing:  # the context is gone: the goal cannot be answered any more
                self.get_logger().info(f"round {goal.request.round!r} stopped by the node's "
                                       f"shutdown; its progress is kept")
                return R(error_code=R.CANCELED, error_msg="the inspection node stopped")
            self.get_logger().error(f"round {goal.request.round!r} failed: {exc!r}")
            if goal.is_active:
                goal.abort()
            return R(error_code=R.UNKNOWN, error_msg=f"{type(exc).__name__}: {exc}")
        finally:
            self._status = "idle"
            self._run_lock.release()

    def _end(self, goal: ServerGoalHandle, code: int, text: str, report: str = "",
             findings: list[Finding] | None = None) -> InspectSite.Result:
        result = R(error_code=code, error_msg=text, report_path=report,
                   findings=session.findings_summary(findings or []))
        if code == R.NONE:
            goal.succeed()
        elif code == R.CANCELED and goal.is_cancel_requested:
            goal.canceled()
        else:
            goal.abort()
        self._last_text = f"{goal.request.round}: code {code} {text}".strip()
        line = (f"round {goal.request.round!r}: {text or 'completed'} (code {code}, "
                f"{len(findings or [])} finding(s)){'; report ' + report if report else ''}")
        if code == R.NONE:  # rclpy ties a severity to its call site: one call per level
            self.get_logger().info(line)
        else:
            self.get_logger().warning(line)
        return result

    def _feedback(self, goal: ServerGoalHandle, point: int, total: int, status: str) -> None:
        self._status = status
        if goal.is_active:
            goal.publish_feedback(InspectSite.Feedback(point=point, points_total=total,
                                                       status=status))

    def _run(self, goal: ServerGoalHandle) -> InspectSite.Result:
        try:
            rnd = load_round(goal.request.round)
            if self.world is not None:
                check_round_site(rnd, self.world.site(rnd.site))
        except RoundError as exc:
            return self._end(goal, R.INVALID_ROUND, f"refused: {exc}")
        except KeyError as exc:  # the world has no such site
            return self._end(goal, R.INVALID_ROUND, f"refused: {goal.request.round}: "
                             f"field 'site': {exc.args[0]}")
        state_dir = Path(os.path.expanduser(self.state_dir))
        progress = RoundProgress.load(state_dir, rnd)
        resumed = progress is not None
        if progress is None:
            progress = RoundProgress.start(rnd)
        first = progress.next_point() or 0
        if self.field is not None:
            start = self._pose or (rnd.points[first].pose.x, rnd.points[first].pose.y)
            rates = self.field.dose_rates
            forecast = forecast_dose(
                rnd, lambda xy: rates(np.column_stack([xy, np.full(len(xy), 0.5)])), start,
                self.forecast_speed, self.seconds_per_check, from_point=first)
            refusal = session.budget_refusal(rnd, forecast, self.forecast_margin,
                                             progress.accumulated_dose_usv, first)
            if refusal:
                return self._end(goal, R.DOSE_BUDGET, f"refused, nothing driven: {refusal}")
        out = Path(os.path.expanduser(self.report_dir)) / \
            f"{rnd.name}_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        total = len(rnd.points)
        if resumed:
            self.get_logger().info(f"round {rnd.name}: resuming at point {first + 1} of {total}")
        with self._lock:
            self._dose = session.DoseIntegrator(start_usv=progress.accumulated_dose_usv)
            self._samples.clear()
        code, text = R.NONE, ""
        try:
            for i, point in enumerate(rnd.points):
                if i in progress.visited:
                    continue
                code, text = self._visit(goal, rnd, i, point, progress, out)
                progress.save(state_dir)
                if code != R.NONE:
                    break
        except _Stop:
            self._cancel_navigation()
            code, text = R.CANCELED, "cancelled: the rover was stopped; the same goal resumes"
        status = {R.NONE: "completed", R.CANCELED: "canceled"}.get(code, "failed")
        report = self._write(rnd, progress, status, out, text)
        if code == R.NONE:
            RoundProgress.clear(state_dir, rnd.name)
            text = ""
        return self._end(goal, code, text, report, progress.findings)

    def _write(self, rnd: Round, progress: RoundProgress, status: str, out: Path,
               error: str) -> str:
        with self._lock:
            samples = [(s.x, s.y, s.reading.dose_rate, s.reading.stddev) for s in self._samples
                       if math.isfinite(s.x)]
        samples += [(x.x, x.y, x.dose_rate, x.stddev) for r in progress.results for x in r.doses
                    if math.isfinite(x.x)]
        try:
            picture = session.dose_map_picture(samples, rnd)
        except (ValueError, np.linalg.LinAlgError) as exc:
            self.get_logger().warning(f"no dose map in the report: {exc}")
            picture = None
        report = progress.report(rnd, status, dose_map=picture, error=error)
        _, page = write_report(report, out)
        return str(page)

    # -- one point --------------------------------------------------------------------------
    def _visit(self, goal: ServerGoalHandle, rnd: Round, i: int, point: InspectionPoint,
               progress: RoundProgress, out: Path) -> tuple[int, str]:
        total = len(rnd.points)
        started = time.monotonic()
        self._feedback(goal, i + 1, total, f"driving to {point.name}")
        nav_code, nav_text = self._drive(goal, point)
        retries = 0
        while nav_code == 0:
            self._sleep(goal, self.settle_time)
            off = session.heading_error(self._yaw, point.pose.yaw)
            if off is None or abs(off) <= self.aim_tolerance or retries >= self.aim_retries:
                break
            retries += 1
            self.get_logger().info(f"{point.name}: settled {math.degrees(off):.0f} deg off its "
                                   f"heading: sent there again")
            nav_code, nav_text = self._drive(goal, point)
        if nav_code != 0:
            if not session.skips_point(nav_code):
                return R.NAVIGATION_FAILED, (f"point {i + 1} ({point.name}): "
                                             f"{session.navigation_error_name(nav_code)}: "
                                             f"{nav_text}; the same goal resumes there")
            finding = session.navigation_finding(point.name, nav_code, nav_text)
            with self._lock:
                dose = self._dose.take()
            progress.record(PointResult(i, point.name, reached=False,
                                        duration_s=time.monotonic() - started), [finding], dose)
            return R.NONE, ""
        result = PointResult(i, point.name)
        findings: list[Finding] = []
        for j, check in enumerate(point.checks):
            self._feedback(goal, i + 1, total, f"{check.kind} check {j + 1} of "
                           f"{len(point.checks)} at {point.name}")
            if isinstance(check, PhotoCheck):
                self._photo(goal, rnd, i, point, check, result, findings, out)
            elif isinstance(check, GaugeCheck):
                self._gauge(goal, i, point, check, result, findings, out)
            elif isinstance(check, RadiationCheck):
                self._dwell(goal, point, check, result, findings)
        result.duration_s = time.monotonic() - started
        with self._lock:
            dose = self._dose.take()
            accumulated = self._dose.total_usv
        progress.record(result, findings, dose)
        if accumulated > rnd.dose_budget_usv:
            progress.findings.append(session.budget_finding(accumulated, rnd.dose_budget_usv))
            return R.DOSE_BUDGET, (f"stopped after point {i + 1} ({point.name}): "
                                   f"{accumulated:.3g} uSv reached the budget of "
                                   f"{rnd.dose_budget_usv:g} uSv")
        return R.NONE, ""

    def _check_stop(self, goal: ServerGoalHandle) -> None:
        if goal.is_cancel_requested or self._closing or not goal.is_active:
            raise _Stop

    def _sleep(self, goal: ServerGoalHandle, seconds: float) -> None:
        """Wait ``seconds`` of the node's clock (sim time in simulation)."""
        end = self._now() + seconds
        wall_end = time.monotonic() + 20.0 * seconds + 10.0  # a stopped clock must not hang
        while self._now() < end and time.monotonic() < wall_end:
            self._check_stop(goal)
            time.sleep(0.05)

    # -- navigation -------------------------------------------------------------------------
    def _drive(self, goal: ServerGoalHandle, point: InspectionPoint) -> tuple[int, str]:
        """Drive to the point: (0, '') or (NavigateToPose error code, text)."""
        if not self.nav.wait_for_server(timeout_sec=self.navigator_wait):
            return 9000, f"no navigator answers on navigate_to_pose within " \
                         f"{self.navigator_wait:g} s"
        nav_goal = NavigateToPose.Goal(max_speed=float(self.max_speed))
        pose = nav_goal.pose
        pose.header.frame_id = "map"
        pose.header.stamp = self.get_clock().now().to_msg()
        pose.pose.position.x, pose.pose.position.y = point.pose.x, point.pose.y
        q = pose.pose.orientation
        q.x, q.y, q.z, q.w = yaw_to_quaternion(point.pose.yaw)
        handle = send_goal(self.nav, nav_goal, resend_after=NAVIGATION_RESEND,
                           poll=lambda: self._check_stop(goal))
        if handle is None:
            return 9000, "the navigator did not answer the goal"
        if not handle.accepted:
            return 9000, "the navigator rejected the goal"
        self._nav_handle = handle
        done = handle.get_result_async()
        lost_since: float | None = None
        while not done.done():  # as _wait, and a navigator that vanished ends the leg
            self._check_stop(goal)
            if self.nav.server_is_ready():
                lost_since = None
            elif lost_since is None:
                lost_since = time.monotonic()
            elif time.monotonic() - lost_since > self.navigator_wait:
                self._nav_handle = None
                return 9000, (f"the navigator stopped answering for {self.navigator_wait:g} s "
                              f"during the leg")
            time.sleep(0.05)
        self._nav_handle = None
        wrapped = done.result()
        if wrapped.status == NAV_SUCCEEDED:
            return 0, ""
        res = wrapped.result
        code = int(res.error_code) or 9000
        return code, res.error_msg or f"navigation ended with status {wrapped.status}"

    def _cancel_navigation(self) -> None:
        handle = self._nav_handle
        if handle is None:
            return
        future = handle.cancel_goal_async()
        deadline = time.monotonic() + 5.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._nav_handle = None

    # -- checks -----------------------------------------------------------------------------
    def _fresh_image(self, goal: ServerGoalHandle) -> np.ndarray | None:
        """The first image taken from now on (its stamp, in the node's clock, not older than
        this call: a frame rendered or exposed while the rover still turned is not one), as
        BGR; None at `camera_timeout`."""
        since = time.monotonic()
        since_stamp = self.get_clock().now().nanoseconds
        deadline = since + self.camera_timeout
        while time.monotonic() < deadline:
            self._check_stop(goal)
            got = self._image
            stamp = got[1].header.stamp if got is not None else None
            if got is not None and got[0] > since and \
                    stamp.sec * 1_000_000_000 + stamp.nanosec >= since_stamp:
                msg = got[1]
                pixels = np.array(image_array(msg))
                if msg.encoding == "rgb8":
                    return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
                if pixels.ndim == 2:
                    return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
                return pixels
            time.sleep(0.02)
        return None

    def _take_photo(self, goal: ServerGoalHandle, name: str, out: Path
                    ) -> tuple[np.ndarray | None, str]:
        image = self._fresh_image(goal)
        if image is None:
            return None, (f"no image from {self.camera_topic} within "
                          f"{self.camera_timeout:g} s")
        path = out / f"{name}.png"
        write_atomically(path, png_bytes(image))
        return image, str(path)

    def _photo(self, goal: ServerGoalHandle, rnd: Round, i: int, point: InspectionPoint,
               check: PhotoCheck, result: PointResult, findings: list[Finding], out: Path
               ) -> None:
        label = f"photo of {check.target}"
        image, path = self._take_photo(goal, f"{i + 1:02d}_{point.name}_{check.target}", out)
        if image is None:
            self._failed(result, findings, point, label, path)
            return
        photo = PhotoResult(check.target, path)
        result.photos.append(photo)
        baseline_file = rnd.baseline_path(check) or \
            Path(os.path.expanduser(self.baseline_dir)) / f"{check.target}.png"
        baseline = cv2.imread(str(baseline_file), cv2.IMREAD_COLOR) \
            if baseline_file.exists() else None
        if baseline is None:
            write_atomically(baseline_file, png_bytes(image))
            findings.append(Finding("photo", point.name, f"no baseline of {check.target}: "
                                    f"this photo recorded as {baseline_file}", "info"))
            return
        try:
            change = detect_changes(baseline, image, threshold=self.change_threshold)
        except AlignmentError as exc:
            self._failed(result, findings, point, label, str(exc))
            return
        photo.changed_fraction = change.changed_fraction
        photo.regions = [list(r.bbox) for r in change.regions]
        if change.regions:
            annotated = Path(path).with_name(Path(path).stem + "_changes.png")
            write_atomically(annotated, png_bytes(draw_regions(baseline, change.regions)))
            photo.annotated = str(annotated)
        finding = photo_finding(point.name, check, change.changed_fraction,
                                len(change.regions))
        if finding is not None:
            findings.append(finding)

    def _gauge(self, goal: ServerGoalHandle, i: int, point: InspectionPoint,
               check: GaugeCheck, result: PointResult, findings: list[Finding], out: Path
               ) -> None:
        label = f"gauge {check.gauge}"
        image, path = self._take_photo(goal, f"{i + 1:02d}_{point.name}_{check.gauge}", out)
        if image is None:
            self._failed(result, findings, point, label, path)
            return
        result.photos.append(PhotoResult(check.gauge, path))
        try:
            reading, ok = check_gauge(image, check)
        except GaugeError as exc:
            self._failed(result, findings, point, label, str(exc))
            return
        result.gauges.append(GaugeResult(check.gauge, reading.value, reading.angle_deg,
                                         check.units, list(check.range), ok))
        finding = gauge_finding(point.name, check, reading.value, reading.off_scale)
        if finding is not None:
            findings.append(finding)

    def _dwell(self, goal: ServerGoalHandle, point: InspectionPoint, check: RadiationCheck,
               result: PointResult, findings: list[Finding]) -> None:
        start, wall_start = self._now(), time.monotonic()
        wall_end = wall_start + 20.0 * check.dwell_s + 30.0  # a stopped clock must not hang
        last_wall = wall_start
        silent: float | None = None
        while True:
            self._check_stop(goal)
            with self._lock:
                got = [s for s in self._samples if s.wall > wall_start]
            if got:
                last_wall = got[-1].wall
            quiet = time.monotonic() - last_wall
            if quiet >= self.sensor_timeout:
                silent = quiet
                break
            if self._now() - start >= check.dwell_s or time.monotonic() > wall_end:
                break
            time.sleep(0.05)
        reason = session.dwell_failure(check, len(got), silent, self.sensor_timeout)
        if reason is not None:
            self._failed(result, findings, point, f"radiation dwell {check.dwell_s:g} s",
                         reason)
            return
        x, y = self._pose or (point.pose.x, point.pose.y)
        dose = session.dwell_average([s.reading for s in got], check.dwell_s,
                                     self.sensor_window, x, y)
        result.doses.append(dose)
        finding = radiation_finding(point.name, check, dose.dose_rate, dose.stddev)
        if finding is not None:
            findings.append(finding)

    def _failed(self, result: PointResult, findings: list[Finding], point: InspectionPoint,
                check: str, reason: str) -> None:
        result.failed.append(FailedCheck(check, reason))
        findings.append(session.sensor_finding(point.name, check, reason))
        self.get_logger().warning(f"{point.name}: {check} failed: {reason}")

    # -- diagnostics ------------------------------------------------------------------------
    def _diagnostics(self) -> None:
        running = self._run_lock.locked()
        with self._lock:
            last = self._samples[-1] if self._samples else None
            dose = self._dose.total_usv
        values: list[tuple[str, object]] = [
            ("state", self._status), ("world", self.world_name or "(none)"),
            ("report_dir", self.report_dir), ("accumulated_dose_usv", f"{dose:.4g}"),
            ("last_result", self._last_text)]
        level, message = "OK", self._status
        if running and last is not None and time.monotonic() - last.wall > self.sensor_timeout:
            level, message = "WARN", f"{self._status}; radiation sensor silent"
        ns = self.get_namespace().strip("/") or "robot"
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status.append(messages.diagnostic(f"{self.get_name()}: inspection",
                                                f"{ns}/inspection", level, message, values))
        try:
            self.diag_pub.publish(array)
        except Exception:  # noqa: BLE001 - at shutdown
            if self.context.ok():
                raise

    def close(self) -> None:
        """End a running round (its progress is saved: the same goal resumes)."""
        self._closing = True
        deadline = time.monotonic() + 5.0
        while self._run_lock.locked() and time.monotonic() < deadline:
            time.sleep(0.02)


def main(args: list[str] | None = None) -> None:
    """Console script `inspection`."""
    raise SystemExit(run_node(InspectionNode, args, threads=4))


if __name__ == "__main__":
    main()
