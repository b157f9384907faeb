"""Localization and stereo mapping in the running simulated stack: the rates the nodes reach
(visual odometry and mapping, in pairs per second of sim time, from their /diagnostics) and
the pose error of odometry/filtered against the ground truth, beside wheel odometry's, after
an arc driven by cmd_vel. Prints one row per image size against the targets (VO >= 5 Hz for
0.5 m/s; the issue's 5 Hz mapping).

The nodes are the stack's own processes (sim, base_driver, localization, terrain_mapper) over
real DDS; the figures depend on how busy the machine is (the last column says).
Usage: python bench/bench_localization_node.py [world] [drive_seconds] [WxH@Hz ...]
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

from ilrs_robots.runner.environment import ros_environment

os.environ.update(ros_environment(domain_id=int(os.environ.get("ROS_DOMAIN_ID", "77"))))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402

from ilrs_robots.core.control import to_map  # noqa: E402
from ilrs_robots.core.geometry import Pose2D  # noqa: E402
from ilrs_robots.runner.missions import odom_pose  # noqa: E402
from ilrs_robots.runner.processes import Supervisor  # noqa: E402
from ilrs_robots.runner.ros_client import RosClient  # noqa: E402
from ilrs_robots.runner.stacks import load_stack  # noqa: E402

TARGET_HZ = 5.0


def values(msgs: list[DiagnosticArray], part: str) -> dict[str, str]:
    """Key/values of the newest status whose name contains ``part``."""
    for m in reversed(msgs):
        for s in m.status:
            if part in s.name:
                return {kv.key: kv.value for kv in s.values}
    return {}


def errors(a: Pose2D, b: Pose2D) -> tuple[float, float]:
    """(position m, heading deg) between two poses."""
    return (math.hypot(a.x - b.x, a.y - b.y),
            abs(math.degrees(math.remainder(a.yaw - b.yaw, 2 * math.pi))))


def run(world: str, seconds: float, width: int, height: int, rate: float) -> str:
    """One row: start the stack, drive an arc, read the figures."""
    with tempfile.TemporaryDirectory(prefix="ilrs-bench-") as tmp:
        run_dir = Path(tmp)
        keep = ("sim", "base_driver", "localization", "terrain_mapper")
        nodes = [n for n in load_stack("rover", "sim", str(run_dir)).nodes
                 if n.executable in keep]
        for n in nodes:
            if n.executable == "sim":
                n.parameters.update(world=world, stereo_rate=rate, mast_rate=0.0,
                                    camera_width=width, camera_height=height)
        sup = Supervisor(nodes, dict(os.environ), run_dir / "logs", say=lambda _: None)
        sup.start()
        try:
            with RosClient("bench_localization") as ros:
                truth = ros.subscribe(Odometry, "/rover1/sim/ground_truth")
                filtered = ros.subscribe(Odometry, "/rover1/odometry/filtered")
                odom = ros.subscribe(Odometry, "/rover1/odom")
                diags = ros.subscribe(DiagnosticArray, "/diagnostics", 500)
                if not (filtered.wait_for(timeout=120) and truth.wait_for(timeout=60)
                        and odom.wait_for(timeout=60)):
                    return f"{width}x{height}@{rate:g}: the stack did not come up"
                cmd = ros.publisher(Twist, "/rover1/cmd_vel", wait_for_subscribers=20)
                t0, o0 = odom_pose(truth.last()), odom_pose(odom.last())
                clock0 = truth.last().header.stamp
                drive = Twist()
                drive.linear.x, drive.angular.z = 0.4, 0.05
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    cmd.publish(drive)
                    time.sleep(0.05)
                cmd.publish(Twist())
                time.sleep(2.0)
                t1, o1, e1 = (odom_pose(truth.last()), odom_pose(odom.last()),
                              odom_pose(filtered.last()))
                clock1 = truth.last().header.stamp
                dx, dy = o1.x - o0.x, o1.y - o0.y
                c, s = math.cos(o0.yaw), math.sin(o0.yaw)
                wheels = to_map(t0, Pose2D(c * dx + s * dy, -s * dx + c * dy, o1.yaw - o0.yaw))
                vo = values(diags.messages, "localization: visual odometry")
                mp = values(diags.messages, "terrain_mapper: stereo mapping")
        finally:
            sup.stop()
    sim_s = (clock1.sec - clock0.sec) + (clock1.nanosec - clock0.nanosec) * 1e-9
    d = math.hypot(t1.x - t0.x, t1.y - t0.y)
    fp, fh = errors(e1, t1)
    wp, wh = errors(wheels, t1)
    vo_hz, map_hz = float(vo.get("rate_hz", 0)), float(mp.get("rate_hz", 0))
    ok = "ok" if min(vo_hz, map_hz) >= TARGET_HZ - 0.3 else "MISSED"
    return (f"{width}x{height}@{rate:<4g} {vo_hz:6.2f} {vo.get('processing_ms', '?'):>7} "
            f"{map_hz:7.2f} {mp.get('processing_ms', '?'):>7} {sim_s / seconds:5.2f} {d:6.2f} "
            f"{fp:6.3f} {fh:6.2f} {wp:6.3f} {wh:6.2f} {os.getloadavg()[0]:5.1f}  {ok}")


def main() -> int:
    """Print the table."""
    world = sys.argv[1] if len(sys.argv) > 1 else "south_pole"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    sizes = sys.argv[3:] or ["320x240@5", "640x480@5"]
    print(f"world {world}, {seconds:g} s of driving at 0.4 m/s on a gentle arc")
    print(f"{'images':>13} {'VO Hz':>6} {'VO ms':>7} {'map Hz':>7} {'map ms':>7} {'RTF':>5} "
          f"{'m':>6} {'EKF m':>6} {'deg':>6} {'whl m':>6} {'deg':>6} {'load':>5}  "
          f"target >= {TARGET_HZ:g} Hz")
    for spec in sizes:
        size, rate = spec.split("@")
        w, h = (int(v) for v in size.split("x"))
        print(run(world, seconds, w, h, float(rate)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
