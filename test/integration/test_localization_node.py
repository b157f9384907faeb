"""The localization node over real DDS in the embedded simulator, with the real base driver:
the filter starts at the world's rover_start in the world frame, follows the true track
while the rover drives by cmd_vel (at least as well as wheel odometry), publishes map -> odom,
is reset by initialpose, and flags the wheels spinning on a slope they cannot climb."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from std_msgs.msg import Bool
from tf2_msgs.msg import TFMessage

from ilrs_robots.core.control import to_map
from ilrs_robots.core.geometry import Pose2D, wrap_angle, yaw_to_quaternion
from ilrs_robots.runner.missions import Leg, LegDriver, at_rest, odom_pose
from ilrs_robots.runner.processes import Supervisor
from ilrs_robots.runner.ros_client import RosClient, wait_until
from ilrs_robots.runner.stacks import load_stack
from ilrs_robots.sim.world import load_world

W, H = 320, 240
WORLDS = Path(__file__).parent / "worlds"


def start_stack(run_dir: Path, world: str, **loc_params: object) -> Supervisor:
    """sim (small images at 5 Hz, no mast camera), base_driver and localization from the
    rover stack, localization asking the simulator for its world."""
    spec = load_stack("rover", "sim", str(run_dir))
    nodes = [n for n in spec.nodes if n.executable in ("sim", "base_driver", "localization")]
    for n in nodes:
        if n.executable == "sim":
            n.parameters.update(world=world, rate=1.0, stereo_rate=5.0, mast_rate=0.0,
                                camera_width=W, camera_height=H)
        if n.executable == "localization":
            n.parameters.update(loc_params)
    sup = Supervisor(nodes, dict(os.environ), run_dir / "logs", say=lambda _: None)
    sup.start()
    return sup


def logs(sup: Supervisor) -> str:
    """The output of every process (for assertion messages)."""
    return "\n".join(f"--- {k}\n{p.output()[-3000:]}" for k, p in sup.procs.items())


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """The stack on the flat test world (textured ground), for the module."""
    run_dir = tmp_path_factory.mktemp("run")
    sup = start_stack(run_dir, "test_flat")
    ros = RosClient("localization_test")
    yield sup, ros
    ros.close()
    sup.stop()


def settled(inbox, timeout: float = 60.0) -> Odometry:
    """The first message, arriving after this call, that shows the rover at rest."""
    seen = inbox.received

    def fresh_and_still():
        got = inbox.next_after(seen, timeout=0)
        return got[0] if got is not None and at_rest(got[0], 0.01, 0.01) else None

    msg = wait_until(fresh_and_still, timeout)
    assert msg is not None, "the rover did not come to rest"
    return msg


def error(a: Pose2D, b: Pose2D) -> tuple[float, float]:
    """(position error m, heading error deg)."""
    return math.hypot(a.x - b.x, a.y - b.y), abs(math.degrees(wrap_angle(a.yaw - b.yaw)))


def diagnostic_values(msg: DiagnosticArray, name_part: str) -> dict[str, str] | None:
    """Key/values of the status whose name contains ``name_part``."""
    for s in msg.status:
        if name_part in s.name:
            return {kv.key: kv.value for kv in s.values} | {"_message": s.message,
                                                            "_level": s.level}
    return None


def test_starts_at_rover_start_in_the_world_frame_and_publishes_map_to_odom(flat):
    sup, ros = flat
    filtered = ros.subscribe(Odometry, "/rover1/odometry/filtered")
    truth = ros.subscribe(Odometry, "/rover1/sim/ground_truth")
    tf = ros.subscribe(TFMessage, "/tf", 200)
    first = filtered.wait_for(timeout=90)
    assert first is not None, logs(sup)
    assert (first.header.frame_id, first.child_frame_id) == ("map", "base_link")
    start = load_world("test_flat").rover_start
    pose = odom_pose(first)
    assert math.hypot(pose.x - start.position[0], pose.y - start.position[1]) < 0.05
    assert abs(math.degrees(wrap_angle(pose.yaw - math.radians(start.yaw_deg)))) < 1.0
    assert first.pose.covariance[0] > 0 and first.pose.covariance[35] > 0
    assert truth.wait_for(timeout=30) is not None
    p_err, yaw_err = error(odom_pose(filtered.last()), odom_pose(truth.last()))
    assert p_err < 0.1 and yaw_err < 1.0  # the map frame is the world frame

    def map_to_odom():
        for m in reversed(tf.messages):
            for t in m.transforms:
                if (t.header.frame_id, t.child_frame_id) == ("map", "odom"):
                    return t
        return None

    t = wait_until(map_to_odom, 30)
    assert t is not None, "no map -> odom on /tf"
    # map -> odom composed with the base driver's odom -> base_link is the filtered pose
    odom = ros.subscribe(Odometry, "/rover1/odom")
    o = odom.wait_for(timeout=10)
    q = t.transform.rotation
    m2o = Pose2D(t.transform.translation.x, t.transform.translation.y,
                 2 * math.atan2(q.z, q.w))
    composed = to_map(m2o, odom_pose(o))
    p_err, yaw_err = error(composed, odom_pose(filtered.last()))
    assert p_err < 0.05 and yaw_err < 0.5


def test_driving_tracks_the_ground_truth_at_least_as_well_as_the_wheels(flat):
    sup, ros = flat
    filtered = ros.subscribe(Odometry, "/rover1/odometry/filtered")
    truth = ros.subscribe(Odometry, "/rover1/sim/ground_truth")
    diags = ros.subscribe(DiagnosticArray, "/diagnostics", 100)
    assert filtered.wait_for(timeout=90) and truth.wait_for(timeout=30), logs(sup)
    driver = LegDriver(ros, "rover1", speed=0.4, turn_rate=0.4, say=lambda _: None)
    odom_start = driver.stop()
    truth_start = odom_pose(settled(truth))
    est_start = odom_pose(filtered.last())
    odom_end = driver.run([Leg(distance=4.0), Leg(angle=math.radians(60.0)),
                           Leg(distance=3.0)])
    truth_end = odom_pose(settled(truth))
    est_end = odom_pose(settled(filtered))
    # wheel odometry carried from the true start pose
    dx, dy = odom_end.x - odom_start.x, odom_end.y - odom_start.y
    c, s = math.cos(odom_start.yaw), math.sin(odom_start.yaw)
    rel = Pose2D(c * dx + s * dy, -s * dx + c * dy, odom_end.yaw - odom_start.yaw)
    wheels = to_map(truth_start, rel)
    moved = math.hypot(truth_end.x - truth_start.x, truth_end.y - truth_start.y)
    assert moved > 5.0, logs(sup)
    est_p, est_yaw = error(est_end, truth_end)
    whl_p, whl_yaw = error(wheels, truth_end)
    start_p, _ = error(est_start, truth_start)
    report = (f"filtered off by {est_p:.3f} m / {est_yaw:.2f} deg, wheels by {whl_p:.3f} m / "
              f"{whl_yaw:.2f} deg after {moved:.1f} m (start off by {start_p:.3f} m)")
    assert est_p <= max(1.2 * whl_p, 0.02 * moved) + start_p + 0.05, report
    assert est_yaw <= max(whl_yaw, 1.5), report
    # visual odometry took part, and says how it did
    vo = diags.wait_for(lambda m: (v := diagnostic_values(m, "localization: visual odometry"))
                        is not None and int(v["fused"]) > 10, timeout=30)
    assert vo is not None, report + "\n" + logs(sup)
    v = diagnostic_values(vo, "localization: visual odometry")
    assert float(v["rate_hz"]) > 0.0 and int(v["inliers"]) > 0, v
    print(report, "| VO", v["rate_hz"], "Hz,", v["processing_ms"], "ms per pair")


def test_initialpose_resets_the_pose(flat):
    sup, ros = flat
    filtered = ros.subscribe(Odometry, "/rover1/odometry/filtered")
    truth = ros.subscribe(Odometry, "/rover1/sim/ground_truth")
    assert filtered.wait_for(timeout=90) and truth.wait_for(timeout=30), logs(sup)
    pub = ros.publisher(PoseWithCovarianceStamped, "/rover1/initialpose",
                        wait_for_subscribers=20)
    target = Pose2D(5.0, -3.0, math.radians(90.0))

    def send(pose: Pose2D) -> None:
        msg = PoseWithCovarianceStamped()
        msg.header.frame_id = "map"
        msg.pose.pose.position.x, msg.pose.pose.position.y = pose.x, pose.y
        o = msg.pose.pose.orientation
        o.x, o.y, o.z, o.w = yaw_to_quaternion(pose.yaw)
        cov = [0.0] * 36
        cov[0] = cov[7] = 0.01 ** 2
        cov[35] = math.radians(0.5) ** 2
        msg.pose.covariance = cov
        pub.publish(msg)

    send(target)
    got = filtered.wait_for(lambda m: error(odom_pose(m), target)[0] < 0.05, timeout=30)
    assert got is not None, logs(sup)
    assert error(odom_pose(got), target)[1] < 1.0
    # and back to the truth, so the map frame is the world frame again
    back = odom_pose(truth.last())
    send(back)
    assert filtered.wait_for(lambda m: error(odom_pose(m), back)[0] < 0.05, timeout=30)


def set_parameters(ros: RosClient, node: str, **values) -> list:
    """Set parameters of ``node`` through its set_parameters service; the results."""
    client = AsyncParameterClient(ros.node, node)
    assert client.wait_for_services(timeout_sec=30.0), f"no parameter services on {node}"
    future = client.set_parameters([Parameter(k, value=v) for k, v in values.items()])
    assert wait_until(future.done, 30.0), "set_parameters never answered"
    return list(future.result().results)


def test_live_parameters_are_checked_and_applied(flat):
    sup, ros = flat
    filtered = ros.subscribe(Odometry, "/rover1/odometry/filtered")
    truth = ros.subscribe(Odometry, "/rover1/sim/ground_truth")
    assert filtered.wait_for(timeout=90) and truth.wait_for(timeout=30), logs(sup)
    node = "/rover1/localization"
    (rate,) = set_parameters(ros, node, vo_max_rate=100.0)
    assert not rate.successful and "vo_max_rate" in rate.reason and "60" in rate.reason
    (frame,) = set_parameters(ros, node, map_frame="world")
    assert not frame.successful  # read-only while running
    (pose,) = set_parameters(ros, node, initial_pose=[1.0, 2.0, 0.5])
    assert pose.successful, pose.reason
    target = Pose2D(1.0, 2.0, 0.5)
    assert filtered.wait_for(lambda m: error(odom_pose(m), target)[0] < 0.05, 30), logs(sup)
    back = odom_pose(truth.last())  # the map frame is the world frame again
    (pose,) = set_parameters(ros, node, initial_pose=[back.x, back.y, back.yaw])
    assert pose.successful and filtered.wait_for(
        lambda m: error(odom_pose(m), back)[0] < 0.05, 30)


@pytest.mark.xfail(strict=False, reason=(
    "known unreliable (issue 8): on 2 loaded cores the slip flag sometimes does not rise within "
    "60 s on the 26 degree slope (VO steps arrive late or are held back); kept running so a "
    "pass is still seen, not counted as a failure until slip detection is made robust"))
def test_slip_is_flagged_when_the_wheels_spin_on_a_slope_too_steep(tmp_path):
    """A 26 degree slope: trying to climb it, the rover makes a fraction of what its
    wheels roll (visual odometry sees it), and the flag goes up."""
    # slip is seen by the camera: keep its steps even when this busy machine is slow to give
    # them (the defaults drop steps later than 0.5 s; the latency is compensated)
    sup = start_stack(tmp_path, str(WORLDS / "slip_slope.yaml"), vo_max_latency=3.0,
                      vo_min_rate=0.5)
    try:
        with RosClient("slip_test") as ros:
            slip = ros.subscribe(Bool, "/rover1/localization/slip", 100)
            truth = ros.subscribe(Odometry, "/rover1/sim/ground_truth")
            odom = ros.subscribe(Odometry, "/rover1/odom")
            diags = ros.subscribe(DiagnosticArray, "/diagnostics", 100)
            assert slip.wait_for(lambda m: not m.data, timeout=90) is not None, logs(sup)
            # visual odometry must be running before the wheels turn
            assert diags.wait_for(lambda m: (v := diagnostic_values(m, "visual odometry"))
                                  is not None and int(v["fused"]) > 0, 60), logs(sup)
            assert truth.wait_for(timeout=30) and odom.wait_for(timeout=30)
            cmd = ros.publisher(Twist, "/rover1/cmd_vel", wait_for_subscribers=20)
            start, odom_start = odom_pose(truth.last()), odom_pose(odom.last())
            drive = Twist()
            drive.linear.x = 0.5
            seen = truth.received

            def flagged():
                nonlocal seen
                cmd.publish(drive)  # one command per fresh ground truth feeds the watchdog
                got = truth.next_after(seen, timeout=5.0)
                assert got is not None, "no ground truth"
                seen = got[1]
                return slip.last() is not None and slip.last().data

            assert wait_until(flagged, timeout=60, period=0.0), logs(sup)
            cmd.publish(Twist())
            now, odom_now = odom_pose(truth.last()), odom_pose(odom.last())
            # uphill progress (sliding back counts as slipping too) against the wheels' roll
            progress = ((now.x - start.x) * math.cos(start.yaw)
                        + (now.y - start.y) * math.sin(start.yaw))
            rolled = math.hypot(odom_now.x - odom_start.x, odom_now.y - odom_start.y)
            # the base ramps its wheels up gently: the rover does climb, slipping 30-90 %
            assert rolled > 0.1 and progress < 0.7 * rolled, (progress, rolled)
            d = diags.wait_for(lambda m: (v := diagnostic_values(m, "wheel slip")) is not None
                               and v["slipping"] == "True", timeout=30)
            assert d is not None
            assert float(diagnostic_values(d, "wheel slip")["slip_ratio"]) >= 0.5
    finally:
        sup.stop()


@pytest.mark.parametrize(("parameters", "words"), [
    ({"world": "no_such_world"}, "parameter 'world' is not usable"),
    ({"initial_pose": [1.0, 2.0]}, "parameter 'initial_pose' must be 3 finite numbers"),
    ({"slip_on": 0.3, "slip_off": 0.4}, "parameter 'slip_off' must be below slip_on"),
    ({"vo_max_rate": 0.0}, "parameter 'vo_max_rate' must be in [0.1, 60]"),
    ({"world_from": "/nobody", "base_height": 0.25}, "parameter 'world_from' names '/nobody'"),
])
def test_a_bad_parameter_stops_localization_with_a_reason(launcher, parameters, words):
    if "world_from" in parameters:
        parameters = {**parameters, "world_from_timeout": 2.0}
    proc = launcher.start("localization", "rover1", parameters)
    assert wait_until(lambda: proc.returncode is not None, 90), proc.output()
    assert proc.returncode == 2, proc.output()
    assert "configuration error" in proc.output() and words in proc.output()
