"""Scripted missions the runner drives over ROS topics, closed-loop on odometry.

The control law is `core/control.py`; this is the ROS glue: it waits for each fresh odometry
message, hands its pose to the controller and publishes the command on cmd_vel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry

from ilrs_robots.core.control import (
    Comparison,
    Leg,
    LegController,
    LegGains,
    compare,
    route,
    square,
    to_map,
)
from ilrs_robots.core.geometry import Pose2D, quaternion_to_yaw
from ilrs_robots.runner.ros_client import RosClient

__all__ = ["Comparison", "Leg", "LegDriver", "MissionError", "compare", "odom_pose", "route",
           "square", "to_map"]


class MissionError(RuntimeError):
    """The mission cannot go on (no odometry, a leg that does not progress)."""


def odom_pose(msg: Odometry) -> Pose2D:
    """The planar pose of an Odometry message."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return Pose2D(p.x, p.y, quaternion_to_yaw(q.x, q.y, q.z, q.w))


def at_rest(msg: Odometry, linear: float = 0.005, angular: float = 0.005) -> bool:
    """True when an Odometry message's twist says the base stands still."""
    t = msg.twist.twist
    return abs(t.linear.x) <= linear and abs(t.angular.z) <= angular


class LegDriver:
    """Drives legs on odometry: one cmd_vel per fresh odometry message, until each is done.

    `odom_timeout` is how long odometry may stay silent before the mission fails.
    """

    def __init__(self, ros: RosClient, namespace: str, speed: float = 0.3,
                 turn_rate: float = 0.4, odom_timeout: float = 5.0,
                 say: Callable[[str], None] = print) -> None:
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.topic = f"{ns}/odom"
        self.cmd = ros.publisher(Twist, f"{ns}/cmd_vel", wait_for_subscribers=20.0)
        self.odom = ros.subscribe(Odometry, self.topic)
        self.gains = LegGains(speed=speed, turn_rate=turn_rate)
        self.odom_timeout = odom_timeout
        self.say = say
        self._seen = 0
        if self.cmd.get_subscription_count() == 0:
            raise MissionError(f"nothing subscribes to {ns}/cmd_vel: is the base driver up?")
        if self.odom.wait_for(timeout=20.0) is None:
            raise MissionError(f"no odometry on {self.topic} within 20 s")

    def fresh(self) -> Odometry:
        """The newest odometry message that arrived after the last one used."""
        got = self.odom.next_after(self._seen, self.odom_timeout)
        if got is None:
            raise MissionError(f"no fresh odometry on {self.topic} for {self.odom_timeout} s")
        msg, self._seen = got
        return msg

    def pose(self) -> Pose2D:
        """The pose of the next fresh odometry message."""
        return odom_pose(self.fresh())

    def _publish(self, v: float, w: float) -> None:
        msg = Twist()
        msg.linear.x, msg.angular.z = float(v), float(w)
        self.cmd.publish(msg)

    def stop(self, settle_timeout: float = 30.0) -> Pose2D:
        """Command a stop and wait until odometry says the base stands still; that pose."""
        deadline = time.monotonic() + settle_timeout
        while True:
            self._publish(0.0, 0.0)  # one per odometry message: also refreshes the watchdog
            msg = self.fresh()
            if at_rest(msg):
                return odom_pose(msg)
            if time.monotonic() > deadline:
                raise MissionError(f"the base did not come to rest within {settle_timeout} s")

    def run_leg(self, leg: Leg, timeout_factor: float = 4.0) -> Pose2D:
        """Drive one leg, slowing down near its end; returns the odometry pose at rest after."""
        ctl = LegController(leg, self.pose(), self.gains)
        deadline = time.monotonic() + 10.0 + timeout_factor * ctl.nominal_time()
        while (command := ctl.update(self.pose())) is not None:
            self._publish(*command)
            if time.monotonic() > deadline:
                self.stop()
                raise MissionError(f"leg '{leg.describe()}' made no progress in time "
                                   f"(travelled {ctl.travelled:.2f} m, turned "
                                   f"{math.degrees(ctl.turned):.0f} deg)")
        return self.stop()

    def run(self, legs: Sequence[Leg],
            after_leg: Callable[[int, Leg, Pose2D], None] | None = None) -> Pose2D:
        """Drive every leg in order."""
        pose = self.pose()
        for i, leg in enumerate(legs):
            pose = self.run_leg(leg)
            if after_leg is not None:
                after_leg(i, leg, pose)
        return pose
