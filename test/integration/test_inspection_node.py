"""The inspection node over real DDS: simulator + base_driver + navigator + radiation_sensor +
inspection processes from the rover stack, rounds sent as InspectSite goals.

A small flat world written by the test: a plant site west of the rover's start with a gauge in
range (gauge_ok), a gauge planted out of range (gauge_bad, 6 m south) and a radiation source
planted next to gauge_bad's inspection point. The navigator drives on ground truth on the
world's prior costmap (as in test_navigator). One stack serves the module; each test starts
from wherever the previous one left the rover.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.action import ActionClient
from test_navigator import costmap_message, navigator_ready, output_of

from ilrs_interfaces.action import InspectSite
from ilrs_robots.core.inspection.rounds import GaugeCheck, GaugeScale
from ilrs_robots.core.inspection.visual import check_gauge
from ilrs_robots.nodes.goal_requests import send_goal
from ilrs_robots.runner.missions import at_rest, odom_pose
from ilrs_robots.runner.processes import Supervisor
from ilrs_robots.runner.ros_client import LATCHED, Inbox, RosClient, wait_until
from ilrs_robots.runner.stacks import load_stack

NS = "/rover1"
R = InspectSite.Result
ROUND_TIMEOUT = 420.0  # s of wall time: a few metres of driving on a loaded machine
# pytest-timeout's limit (setup.cfg: 300 s) is above every wait here, so a slow round fails on
# its own assertion with the stack's logs rather than being killed without them
pytestmark = pytest.mark.timeout(ROUND_TIMEOUT + 240)
SCALE = {"min_angle_deg": -135.0, "max_angle_deg": 135.0, "min_value": 0.0, "max_value": 10.0}

WORLD = {
    "name": "inspection_flat", "seed": 1, "gravity": 1.62,
    "terrain": {"type": "flat", "size": [60.0, 60.0], "resolution": 0.5, "base_height": 0.0},
    "sun": {"elevation_deg": 30.0, "azimuth_deg": 135.0},
    "sites": {
        "rover_depot": {"position": [0.0, 0.0], "pad_radius": 5.0},
        "test_plant": {
            "position": [-15.0, 0.0], "pad_radius": 8.0,
            "objects": [
                {"name": "gauge_ok", "type": "gauge", "role": "gauge",
                 "position": [-0.5, 0.0, 0.0], "yaw_deg": 180.0, "size": [0.3, 1.2],
                 "rgba": [0.9, 0.9, 0.9, 1.0], "needle_deg": 27.0},        # 6.0 bar
                {"name": "gauge_bad", "type": "gauge", "role": "gauge",
                 "position": [-0.5, -6.0, 0.0], "yaw_deg": 180.0, "size": [0.3, 1.2],
                 "rgba": [0.9, 0.9, 0.9, 1.0], "needle_deg": 120.0},       # 9.4 bar: planted
                {"name": "target_box", "type": "box", "role": "inspection_target",
                 "position": [0.5, 1.5, 0.0], "size": [0.3, 0.3, 0.3],
                 "rgba": [0.9, 0.2, 0.1, 1.0]},
            ],
            # planted 1.4 m from point B (about 10 uSv/h there), 7 m from point A (0.4)
            "radiation_sources": [{"name": "planted_source", "position": [-4.0, -7.0, 0.5],
                                   "dose_rate_at_1m": 20.0}],
        },
    },
    "rover_start": {"site": "rover_depot", "position": [-20.0, 0.0], "yaw_deg": 0.0},
}
POINT_A = {"x": -18.0, "y": 0.0, "yaw_deg": 0.0}   # 2.5 m west of gauge_ok, facing it
POINT_B = {"x": -18.0, "y": -6.0, "yaw_deg": 0.0}  # 2.5 m west of gauge_bad


def gauge(name: str) -> dict:
    """A gauge check of the test's 0..10 bar dials, in range 4..8."""
    return {"gauge": {"name": name, "units": "bar", "range": [4.0, 8.0], "scale": SCALE}}


def write_round(folder: Path, name: str, points: list[dict], **top) -> Path:
    """A round file of the test's site."""
    data = {"name": name, "site": "test_plant", "keep_out_radius": 0.0,
            "dose_budget_usv": 5.0, "points": points, **top}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class InspectionStack:
    """The running processes and the test's view of them."""

    sup: Supervisor
    ros: RosClient
    client: ActionClient
    folder: Path
    truth: Inbox
    diagnostics: Inbox

    def send(self, round_file: str | Path) -> tuple[object, object, Inbox]:
        """Send a round; (goal handle, result future, feedback inbox)."""
        feedback: Inbox = Inbox()
        handle = send_goal(self.client, InspectSite.Goal(round=str(round_file)),
                           feedback_callback=lambda m: feedback.put(m.feedback))
        assert handle is not None, "no answer to the goal"
        assert handle.accepted
        return handle, handle.get_result_async(), feedback

    def result(self, done, timeout: float = ROUND_TIMEOUT) -> tuple[int, InspectSite.Result]:
        """(status, result) once the round ends."""
        assert wait_until(done.done, timeout), "the round did not end in time\n" + self.logs()
        response = done.result()
        return response.status, response.result

    def run(self, round_file: str | Path, timeout: float = ROUND_TIMEOUT
            ) -> tuple[int, InspectSite.Result, Inbox]:
        """Send a round; (status, result, feedback inbox) once it ends."""
        _, done, feedback = self.send(round_file)
        return (*self.result(done, timeout), feedback)

    def process(self, name: str):
        """The stack's process `name`."""
        return next(p for key, p in self.sup.procs.items() if key.split("/")[-1] == name)

    def logs(self) -> str:
        """The inspection node's and the navigator's output, for failure messages."""
        return "\n".join(f"--- {name}\n{output_of(self.sup, name)[-3000:]}"
                         for name in ("inspection", "navigator"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[InspectionStack]:
    """sim (mast camera only), base_driver, navigator (on ground truth), radiation_sensor and
    inspection in the test's world."""
    folder = tmp_path_factory.mktemp("inspection")
    world_file = folder / "inspection_flat.yaml"
    world_file.write_text(yaml.safe_dump(WORLD, sort_keys=False))
    run_dir = folder / "run"
    spec = load_stack("rover", "sim", str(run_dir))
    wanted = ("sim", "base_driver", "navigator", "radiation_sensor", "inspection")
    nodes = [n for n in spec.nodes if n.executable in wanted]
    assert sorted(n.executable for n in nodes) == sorted(wanted)
    by_name = {n.executable: n for n in nodes}
    by_name["sim"].parameters.update(world=str(world_file), rate=2.0, stereo_rate=0.0,
                                     mast_rate=2.0, imu_rate=20.0)
    # slow turns in place: at 0.6 rad/s the rover stops 10-20 deg past the goal heading in
    # the simulator (the navigator's stop does not allow for the base's lag), and a gauge
    # 2.5 m away then lies at the edge of the mast camera's view
    by_name["navigator"].parameters.update(odom_topic="sim/ground_truth", keep_outs="",
                                           goal_tolerance=0.25, yaw_tolerance=0.1,
                                           rotate_speed=0.25)
    by_name["radiation_sensor"].parameters.update(window=3.0)
    by_name["inspection"].parameters.update(
        report_dir=str(folder / "reports"), state_dir=str(folder / "state"),
        baseline_dir=str(folder / "baselines"), odom_topic="sim/ground_truth",
        settle_time=0.5, sensor_window=3.0, sensor_timeout=8.0)
    sup = Supervisor(nodes, dict(os.environ), run_dir / "logs", say=lambda _: None)
    sup.start()
    ros = RosClient("inspection_test")
    try:
        costmap = ros.publisher(OccupancyGrid, f"{NS}/costmap", LATCHED)
        costmap.publish(costmap_message(str(world_file)))
        client = ActionClient(ros.node, InspectSite, f"{NS}/inspect_site")
        assert client.wait_for_server(timeout_sec=90), output_of(sup, "inspection")
        diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
        assert diagnostics.wait_for(navigator_ready, timeout=90), output_of(sup, "navigator")
        truth = ros.subscribe(Odometry, f"{NS}/sim/ground_truth")
        yield InspectionStack(sup, ros, client, folder, truth, diagnostics)
    finally:
        ros.close()
        sup.stop()


def test_malformed_rounds_are_refused_naming_the_fault(stack):
    backwards = gauge("gauge_ok")
    backwards["gauge"]["range"] = [8.0, 4.0]
    bad = write_round(stack.folder, "backwards_range",
                      [{"name": "a", "pose": POINT_A, "checks": [backwards]}])
    status, result, _ = stack.run(bad, timeout=30)
    assert result.error_code == R.INVALID_ROUND, result.error_msg
    assert "point 0 (a)" in result.error_msg and "checks[0].gauge.range" in result.error_msg
    assert not result.report_path and status == 6  # ABORTED, nothing driven

    unknown = write_round(stack.folder, "unknown_gauge",
                          [{"name": "a", "pose": POINT_A, "checks": [gauge("gauge_gone")]}])
    _, result, _ = stack.run(unknown, timeout=30)
    assert result.error_code == R.INVALID_ROUND
    assert "gauge_gone" in result.error_msg and "test_plant" in result.error_msg

    _, result, _ = stack.run(stack.folder / "no_such_round.yaml", timeout=30)
    assert result.error_code == R.INVALID_ROUND and "cannot be read" in result.error_msg

    hot = write_round(stack.folder, "over_budget",
                      [{"name": "b", "pose": POINT_B,
                        "checks": [{"radiation": {"dwell_s": 3600.0}}]}])
    _, result, _ = stack.run(hot, timeout=30)  # an hour at ~10 uSv/h: over the 5 uSv budget
    assert result.error_code == R.DOSE_BUDGET, result.error_msg
    assert "budget" in result.error_msg and "'b'" in result.error_msg


def test_a_clean_round_completes_and_writes_its_report(stack):
    rnd = write_round(stack.folder, "clean", [
        {"name": "a", "pose": POINT_A,
         "checks": [gauge("gauge_ok"),
                    {"photo": {"target": "target_box"}},
                    {"radiation": {"dwell_s": 6.0, "max_usv_h": 2.0}}]}])
    status, result, feedback = stack.run(rnd)
    assert result.error_code == R.NONE, f"{result.error_msg}\n{stack.logs()}"
    assert status == 4  # SUCCEEDED
    # nothing but the baseline recorded from the first photo of target_box
    assert all(f.startswith("[info] photo at a: no baseline") for f in result.findings), \
        list(result.findings)
    assert len(result.findings) == 1
    assert {(f.point, f.points_total) for f in feedback.messages} == {(1, 1)}
    assert any("driving to a" in f.status for f in feedback.messages)
    page = Path(result.report_path)
    assert page.suffix == ".html" and page.exists()
    html = page.read_text()
    assert "Inspection round clean" in html and "data:image/png;base64," in html
    report = json.loads(page.with_suffix(".json").read_text())
    assert report["status"] == "completed" and report["points_done"] == 1
    (point,) = report["points"]
    assert point["reached"] and not point["failed"], point["failed"]
    (g,) = point["gauges"]
    assert g["in_range"] and abs(g["value"] - 6.0) < 0.3, g
    (dose,) = point["doses"]
    assert 0.0 < dose["dose_rate"] < 2.0, dose
    assert 0.0 < report["accumulated_dose_usv"] < report["dose_budget_usv"]
    assert (stack.folder / "baselines" / "target_box.png").exists()

    def reported(msg: DiagnosticArray) -> bool:
        return any(s.name == "inspection: inspection" and s.hardware_id == "rover1/inspection"
                   and any(v.key == "last_result" and "clean.yaml: code 0" in v.value
                           for v in s.values) for s in msg.status)
    assert stack.diagnostics.wait_for(reported, 10), "no diagnostics of the round"


def test_planted_anomalies_are_found(stack):
    rnd = write_round(stack.folder, "anomalies", [
        {"name": "a", "pose": POINT_A, "checks": [gauge("gauge_ok")]},
        {"name": "b", "pose": POINT_B,
         "checks": [gauge("gauge_bad"), {"radiation": {"dwell_s": 6.0, "max_usv_h": 2.0}}]}])
    _, result, feedback = stack.run(rnd)
    assert result.error_code == R.NONE, f"{result.error_msg}\n{stack.logs()}"
    findings = list(result.findings)
    assert any(f.startswith("[critical] gauge at b: gauge_bad reads") for f in findings), \
        findings
    assert any(f.startswith("[critical] radiation at b: dose rate") for f in findings), findings
    assert not any("gauge_ok" in f or " at a:" in f for f in findings), findings
    assert {f.point for f in feedback.messages} == {1, 2}
    report = json.loads(Path(result.report_path).with_suffix(".json").read_text())
    bad = report["points"][1]["gauges"][0]
    assert not bad["in_range"] and abs(bad["value"] - 9.44) < 0.3, bad
    assert report["points"][1]["doses"][0]["dose_rate"] > 4.0


def test_a_cancelled_round_stops_the_rover_and_a_restarted_node_resumes_it(stack):
    start = odom_pose(stack.truth.last())
    a = {"name": "a", "pose": POINT_A, "checks": [gauge("gauge_ok")]}
    b = {"name": "b", "pose": POINT_B,
         "checks": [gauge("gauge_bad"), {"radiation": {"dwell_s": 4.0, "max_usv_h": 2.0}}]}

    def distance(pose: dict) -> float:
        return math.hypot(start.x - pose["x"], start.y - pose["y"])
    points = [a, b] if distance(POINT_A) > distance(POINT_B) else [b, a]  # the far one first
    first = points[0]["pose"]
    rnd = write_round(stack.folder, "resumable", points)

    # cancelled while driving to the first point: the navigation goal is cancelled, the
    # rover stops short of it
    handle, done, feedback = stack.send(rnd)

    def moved() -> bool:
        p = odom_pose(stack.truth.last())
        return math.hypot(p.x - start.x, p.y - start.y) > 1.0
    assert wait_until(moved, 120), "the rover did not set off\n" + stack.logs()
    assert wait_until(handle.cancel_goal_async().done, 10)
    status, result = stack.result(done, 60)
    assert status == 5 and result.error_code == R.CANCELED, result.error_msg  # CANCELED
    seen = stack.truth.received
    assert wait_until(lambda: (got := stack.truth.next_after(seen, 1.0)) is not None
                      and at_rest(got[0], 0.02, 0.02), 20), "the rover did not stop"
    stopped = odom_pose(stack.truth.last())
    assert math.hypot(stopped.x - first["x"], stopped.y - first["y"]) > 1.0, \
        "cancelled too late: the rover reached the point"
    report = json.loads(Path(result.report_path).with_suffix(".json").read_text())
    assert report["status"] == "canceled" and report["points_done"] == 0

    # sent again: the first point is done, then the node is stopped on the way to the second
    handle, done, feedback = stack.send(rnd)
    assert feedback.wait_for(lambda f: f.point == 2, ROUND_TIMEOUT), stack.logs()
    assert feedback.messages[0].point == 1  # nothing was visited before the cancel
    node = stack.process("inspection")
    node.stop()
    assert not node.alive
    # the old server must have left the graph before the new one is waited for
    assert wait_until(lambda: not stack.client.server_is_ready(), 30), "old server still there"
    node.start()
    assert stack.client.wait_for_server(timeout_sec=60), stack.logs()

    # the restarted node resumes at the second point and the report holds both
    status, result, feedback = stack.run(rnd)
    assert result.error_code == R.NONE, f"{result.error_msg}\n{stack.logs()}"
    assert {f.point for f in feedback.messages} == {2}, [f.point for f in feedback.messages]
    report = json.loads(Path(result.report_path).with_suffix(".json").read_text())
    assert [p["name"] for p in report["points"]] == [p["name"] for p in points]
    assert all(p["reached"] for p in report["points"])


def test_ilrs_inspect_prints_progress_report_and_findings(stack):
    """`ilrs inspect ROUND` against the running stack."""
    def ilrs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ilrs_robots.runner.cli", "inspect", *args,
                               "--wait", "30"], capture_output=True, text=True,
                              timeout=ROUND_TIMEOUT, env=dict(os.environ))

    rnd = write_round(stack.folder, "by_cli",
                      [{"name": "b", "pose": POINT_B, "checks": [gauge("gauge_bad")]}])
    done = ilrs(str(rnd))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[ilrs] point 1/1: driving to b" in out, out
    assert "[ilrs] report: " in out and "report.html" in out, out
    assert "[critical] gauge at b: gauge_bad reads" in out and "round completed" in out, out

    bad = stack.folder / "not_a_round.yaml"
    bad.write_text("name: x\nsite: test_plant\n")
    done = ilrs(str(bad))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "INVALID_ROUND (9300)" in done.stdout and "keep_out_radius" in done.stdout

    done = subprocess.run([sys.executable, "-m", "ilrs_robots.runner.cli", "inspect", str(rnd),
                           "--namespace", "nobody", "--wait", "1"], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ))
    assert done.returncode == 3 and "no inspection node answers" in done.stdout


def test_a_silent_sensor_fails_its_check_and_the_round_goes_on(stack):
    stack.process("radiation_sensor").stop()
    rnd = write_round(stack.folder, "silent", [
        {"name": "b", "pose": POINT_B,
         "checks": [{"radiation": {"dwell_s": 30.0}}, gauge("gauge_bad")]}])
    _, result, _ = stack.run(rnd)
    assert result.error_code == R.NONE, f"{result.error_msg}\n{stack.logs()}"
    findings = list(result.findings)
    assert any(f.startswith("[warning] sensor at b: radiation dwell 30 s check failed")
               for f in findings), findings
    report = json.loads(Path(result.report_path).with_suffix(".json").read_text())
    (point,) = report["points"]
    assert point["failed"] and "stopped answering" in point["failed"][0]["reason"]
    assert point["gauges"], "the gauge after the failed dwell was not read"


@pytest.mark.parametrize("parameters,name", [({"forecast_margin": 0.5}, "forecast_margin"),
                                             ({"world": "no_such_world"}, "world"),
                                             ({"aim_retries": -1}, "aim_retries")])
def test_bad_parameters_stop_the_node_naming_them(launcher, parameters, name):
    proc = launcher.start("inspection", "rover9", parameters)
    assert proc.proc.wait(60) == 2, proc.output()
    out = proc.output()
    assert f"configuration error: parameter '{name}'" in out and "Traceback" not in out, out


def test_the_simulator_draws_a_gauge_at_its_needle_value(tmp_path):
    """The simulator's gauge, seen by the mast camera from an inspection point, reads the
    world's needle_deg through the round's scale (no ROS: the renderer alone)."""
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    from ilrs_robots.sim.model import MAST_CAMERA
    from ilrs_robots.sim.physics import RoverPhysics

    world = dict(WORLD)
    world_file = tmp_path / "w.yaml"
    world_file.write_text(yaml.safe_dump(world, sort_keys=False))
    check = GaugeCheck("g", (4.0, 8.0), GaugeScale(-135.0, 135.0, 0.0, 10.0), "bar")
    with RoverPhysics(str(world_file)) as physics:
        for point, value in ((POINT_B, 9.44), (POINT_A, 6.0)):
            physics.reset_pose(point["x"], point["y"], 0.0)
            image = cv2.cvtColor(physics.render(MAST_CAMERA, 640, 480), cv2.COLOR_RGB2BGR)
            reading, in_range = check_gauge(image, check)
            assert abs(reading.value - value) < 0.1, (point, reading)
            assert in_range == (value < 8.0)
