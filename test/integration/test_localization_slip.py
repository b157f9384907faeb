"""Wheel slip flagged by the localization node over real DDS in the embedded simulator: on a
slope too steep to climb, the wheels roll further than visual odometry sees the rover go.

Its own module: the rover stack of test_localization_node.py (module-scoped) must not run
beside this one (two simulators on /clock and two rover1 stacks cross-talk, and load the
machine twice)."""

from __future__ import annotations

import math

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from std_msgs.msg import Bool
from test_localization_node import WORLDS, diagnostic_values, logs, start_stack

from ilrs_robots.runner.missions import odom_pose
from ilrs_robots.runner.ros_client import RosClient, wait_until


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

            def flagged():
                # a steady 20 Hz of commands, as a teleop gives them: the base driver's
                # cmd_timeout runs on the wall clock, and commands paced by the simulator's
                # messages stopped the wheels whenever a loaded simulator stalled (the wheels
                # then ramped up again and again, and the flag never came)
                cmd.publish(drive)
                # flagged once the wheels have rolled a measurable way (the flag may rise in
                # the first centimetres: the rover slides back while its wheels turn)
                now = odom_pose(odom.last())
                rolled = math.hypot(now.x - odom_start.x, now.y - odom_start.y)
                return slip.last() is not None and slip.last().data and rolled > 0.15

            assert wait_until(flagged, timeout=90, period=0.05), logs(sup)
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
            # the flag rose at slip_on (0.5) and, with hysteresis, holds down to slip_off (0.2):
            # a report read after the rise may show a ratio under 0.5 (0.483 once, loaded)
            assert float(diagnostic_values(d, "wheel slip")["slip_ratio"]) > 0.2
    finally:
        sup.stop()
