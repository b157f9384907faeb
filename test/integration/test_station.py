"""The station stack: two rovers and the construction robot at once, sharing nothing.

config/stacks/station.yaml runs the rover stack twice (rover1, rover2) and the builder stack
(builder1), in emulated mode (the firmware emulators on ptys; one embedded simulator serving
several robots is still to come). Run by the `ilrs` runner's Supervisor, as `ilrs run station
--hardware emulated` does, and by station.launch.py under the real launch libraries: each
rover's odometry follows its own cmd_vel and nothing else, frames carry the robot's prefix.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from geometry_msgs.msg import Twist
from launch_harness import Launch, distros
from nav_msgs.msg import Odometry
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from ilrs_robots.nodes.qos import TF_STATIC
from ilrs_robots.runner.environment import ros_environment
from ilrs_robots.runner.processes import Supervisor
from ilrs_robots.runner.ros_client import LATCHED, wait_until
from ilrs_robots.runner.stacks import load_stack

DOMAIN = int(os.environ["ROS_DOMAIN_ID"])
ROVERS = ("rover1", "rover2")


def _twist(linear: float = 0.0, angular: float = 0.0) -> Twist:
    msg = Twist()
    msg.linear.x, msg.angular.z = linear, angular
    return msg


def _drive_and_check(ros) -> None:
    """rover1 drives straight, rover2 turns in place: each odometry shows only its own."""
    odom = {r: ros.subscribe(Odometry, f"/{r}/odom") for r in ROVERS}
    # several robots latch their frames on /tf_static: a reader of depth 1 keeps only the
    # last one that arrived before its callback ran, so read it as the nodes do (depth 100)
    tf_static = ros.subscribe(TFMessage, "/tf_static", TF_STATIC)
    described = {r: ros.subscribe(String, f"/{r}/robot_description", LATCHED) for r in ROVERS}
    cmd = {r: ros.publisher(Twist, f"/{r}/cmd_vel", wait_for_subscribers=60) for r in ROVERS}
    assert all(p.get_subscription_count() for p in cmd.values())
    commands = {"rover1": _twist(linear=0.3), "rover2": _twist(angular=0.5)}

    def following() -> bool:
        for r, pub in cmd.items():
            pub.publish(commands[r])
        one, two = odom["rover1"].last(), odom["rover2"].last()
        return bool(one and two and one.twist.twist.linear.x > 0.25
                    and two.twist.twist.angular.z > 0.4)

    assert wait_until(following, 60, period=0.05), (odom["rover1"].last(),
                                                    odom["rover2"].last())
    one, two = odom["rover1"].last(), odom["rover2"].last()
    assert abs(one.twist.twist.angular.z) < 0.02 and abs(two.twist.twist.linear.x) < 0.02
    assert one.pose.pose.position.x > 0.05 and abs(two.pose.pose.position.x) < 0.02
    for r in ROVERS:
        msg = odom[r].last()
        assert (msg.header.frame_id, msg.child_frame_id) == (f"{r}/odom", f"{r}/base_link")
        assert described[r].wait_for(lambda m: "<robot" in m.data, 30) is not None
    # every static frame carries a robot's prefix: two rovers' frames never collide
    wanted = {f"{r}/{f}" for r in ROVERS for f in ("imu_link", "nav_left_optical_frame",
                                                   "hazcam_optical_frame")}

    def frames() -> set[str]:
        return {t.child_frame_id for m in tf_static.messages for t in m.transforms}

    assert wait_until(lambda: wanted <= frames(), 30), frames()
    assert all(f.split("/")[0] in ROVERS for f in frames()), frames()


@pytest.mark.timeout(240)
def test_station_runner_two_rovers_drive_without_cross_talk(ros, tmp_path: Path):
    stack = load_stack("station", "emulated", str(tmp_path / "run"))
    sup = Supervisor(stack.nodes, ros_environment(DOMAIN), tmp_path / "logs",
                     say=lambda _m: None)
    sup.start()
    try:
        assert set(sup.procs) >= {"rover1/base_driver", "rover2/base_driver",
                                  "builder1/construction", "rover2/hazcam/vc0706_camera"}
        _drive_and_check(ros)
        assert sup.check(), {k: p.output()[-2000:] for k, p in sup.procs.items()}
        def graph() -> set[str]:
            return {f"{ns}/{n}" for n, ns in ros.node.get_node_names_and_namespaces()}

        assert wait_until(lambda: "/builder1/construction" in graph(), 60), graph()
    finally:
        sup.stop()


AVAILABLE = [d for d, why in distros() if why is None]


@pytest.mark.timeout(240)
@pytest.mark.skipif(not AVAILABLE, reason="; ".join(why for _d, why in distros() if why))
def test_station_launch_two_rovers_drive_without_cross_talk(ros, tmp_path: Path):
    """station.launch.py under the newest launch library at hand (one distro: lean)."""
    launch = Launch(AVAILABLE[-1], tmp_path, "station.launch.py",
                    [f"run_dir:={tmp_path / 'run'}"], DOMAIN,
                    {"ROS_LOG_DIR": str(tmp_path / "ros_log")})
    try:
        _drive_and_check(ros)
        expected = {("/rover1", "base_driver"), ("/rover2", "base_driver"),
                    ("/rover2/hazcam", "vc0706_camera"), ("/builder1", "construction"),
                    ("/rover2", "radiation_sensor")}

        def graph() -> set[tuple[str, str]]:
            return {(ns, n) for n, ns in ros.node.get_node_names_and_namespaces()}
        # discovery of every node can lag on a loaded machine: wait for the graph
        assert wait_until(lambda: expected <= graph(), 60), expected - graph()
        launch.ctrl_c()
        assert launch.wait(60) == 0, launch.output()[-6000:]
        assert "Traceback" not in launch.output(), launch.output()[-6000:]
    finally:
        launch.stop()
