"""`ilrs sim` as a user runs it (no flag: the autonomous traverse, hazards mapped from the
simulator's depth image): a real process starting the whole rover stack in the embedded
simulator and driving a short traverse by NavigateToPose.

The test watches the simulator's ground truth itself (its own ROS client in the runner's
domain), so "reached" is judged by the truth, not by the mission's own report.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import yaml
from nav_msgs.msg import Odometry

from ilrs_robots.runner.ros_client import RosClient
from ilrs_robots.runner.traverse import mission_goals
from ilrs_robots.sim.track_map import COLOURS
from ilrs_robots.sim.world import load_world

TOLERANCE = 0.5 + 0.1  # the navigator's goal tolerance, and a margin for settling
SCALE = 0.6            # two legs of about 10 m and 8.5 m on test_flat
# The round the short traverse ends with: one point 1 m past the last goal, a photo of the
# depot's marker box (10 m east-south-east) and a radiation dwell.
ROUND = {
    "name": "depot_round", "site": "rover_depot", "world": "test_flat",
    "keep_out_radius": 1.0, "dose_budget_usv": 5.0,
    "points": [{"name": "marker_view", "pose": {"x": -1.0, "y": 4.8, "yaw_deg": -28.0},
                "checks": [{"photo": {"target": "marker_box"}},
                           {"radiation": {"dwell_s": 10.0}}]}],
}


@contextmanager
def ros_in(domain: str) -> Iterator[RosClient]:
    """A ROS client of the test process in another ROS domain."""
    old = os.environ.copy()
    os.environ["ROS_DOMAIN_ID"] = domain
    try:
        client = RosClient("mission_probe")
    finally:
        os.environ.clear()
        os.environ.update(old)
    try:
        yield client
    finally:
        client.close()


def run_sim(tmp_path: Path, domain: str, *args: str, timeout: float) -> tuple[int, str]:
    """Run `ilrs sim` to its end; (exit code, output)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ilrs_robots.runner.cli", "--domain-id", domain, "sim",
         "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "run"),
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
        raise AssertionError(f"ilrs sim did not end within {timeout:g} s:\n"
                             f"{out[-4000:]}") from None
    return proc.returncode, out


def logs(tmp_path: Path) -> str:
    """The stack's node logs for failure messages: each one's last warnings and errors (a
    starved filter, a hazard, a recovery) and its tail."""
    parts = []
    for log in sorted((tmp_path / "run" / "logs").glob("*.log")):
        lines = log.read_text().splitlines()
        warnings = [line for line in lines[:-8] if line.startswith(("[WARN]", "[ERROR]"))]
        parts.append(f"--- {log.name}\n" + "\n".join(warnings[-12:] + lines[-8:]))
    return "\n".join(parts)


def test_short_traverse_reaches_each_goal_by_ground_truth_and_draws_the_picture(tmp_path):
    domain = str(int(os.environ["ROS_DOMAIN_ID"]) + 100)
    goals = mission_goals(load_world("test_flat"), SCALE)
    assert len(goals) == 2
    round_file = tmp_path / "depot_round.yaml"
    round_file.write_text(yaml.safe_dump(ROUND, sort_keys=False))
    with ros_in(domain) as ros:
        truth: list[Odometry] = []  # every message of the run: the whole track
        ros.node.create_subscription(Odometry, "/rover1/sim/ground_truth", truth.append, 50)
        code, out = run_sim(tmp_path, domain, "--world", "test_flat", "--scale", str(SCALE),
                            "--every", "5", "--inspect", str(round_file), timeout=360)
        track = [(m.pose.pose.position.x, m.pose.pose.position.y, m.twist.twist.linear.x)
                 for m in list(truth)]
    assert code == 0, f"{out[-4000:]}\n{logs(tmp_path)}"
    assert "mission complete" in out
    # the simulator loaded the world asked for, not sim.yaml's own
    assert "world 'test_flat'" in (tmp_path / "run" / "logs" / "sim.log").read_text()
    assert len(track) > 100, "the test saw no ground truth of the run"
    start = track[0]
    assert math.hypot(start[0] - goals[0].x, start[1] - goals[0].y) > 8.0
    for goal in goals:
        # the rover came to rest within tolerance of the goal (the truth, not the report)
        nearest = min(math.hypot(x - goal.x, y - goal.y) for x, y, v in track if abs(v) < 0.02)
        assert nearest <= TOLERANCE, \
            f"{goal.name}: {nearest:.2f} m\n{out[-3000:]}\n{logs(tmp_path)}"
        assert f"{goal.name} ({goal.x:+.1f}, {goal.y:+.1f})" in out
    # ... and ended with the inspection round at the depot: its report in out/inspection
    assert "inspection: round depot_round at rover_depot, 1 points" in out, out[-3000:]
    assert "point 1/1: " in out and "round completed" in out, out[-3000:]
    report = next((tmp_path / "out" / "inspection" / "reports").rglob("report.json"), None)
    assert report is not None, out[-3000:]
    data = json.loads(report.read_text())
    assert [p["name"] for p in data["points"]] == ["marker_view"]
    assert all(p["reached"] for p in data["points"]), data
    assert f"report {report.with_suffix('.html')}" in out, out[-2000:]
    # the first photo of the marker is its baseline, kept with the mission's outputs: the
    # only finding, for information
    assert "inspection round depot_round: completed, 1 finding(s)" in out, out[-2000:]
    baseline = tmp_path / "out" / "inspection" / "baselines" / "marker_box.png"
    assert f"[info] photo at marker_view: no baseline of marker_box: this photo recorded as " \
           f"{baseline}" in out, out[-2000:]
    assert cv2.imread(str(baseline)) is not None
    # the round's point is reached as navigation reaches a goal: within its 0.5 m tolerance
    # of where the localization (0.2-0.3 m off after 20 m) puts the rover
    end = track[-1]
    assert math.hypot(end[0] - ROUND["points"][0]["pose"]["x"],
                      end[1] - ROUND["points"][0]["pose"]["y"]) <= 1.0
    # each leg printed its progress and, at its goal, the errors against the truth
    assert out.count("m to go, ETA") >= 2
    assert out.count("localization off by") >= 2
    picture = cv2.imread(str(tmp_path / "out" / "mission_track.png"))
    assert picture is not None and min(picture.shape[:2]) >= 600
    for layer in ("track", "plan", "goal"):
        assert np.all(picture == COLOURS[layer], axis=2).sum() > 20, f"no {layer} drawn"


def test_a_goal_the_navigator_refuses_ends_the_mission_with_its_code_and_reason(tmp_path):
    domain = str(int(os.environ["ROS_DOMAIN_ID"]) + 101)
    # at 4x the route's first goal lies beyond the 60 m x 60 m test world
    goal = mission_goals(load_world("test_flat"), 4.0)[0]
    assert goal.x > 30.0
    code, out = run_sim(tmp_path, domain, "--world", "test_flat", "--scale", "4",
                        timeout=300)
    assert code == 1, out[-3000:]
    assert "OFF_MAP (9101)" in out
    assert "mission failed at waypoint 1" in out
    assert (tmp_path / "out" / "mission_track.png").is_file()
