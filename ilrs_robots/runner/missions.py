"""Scripted missions the runner drives over ROS topics, closed-loop on odometry."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry

from ilrs_robots.core.geometry import Pose2D, quaternion_to_yaw, wrap_angle
from ilrs_robots.runner.ros_client import RosClient


class MissionError(RuntimeError):
    """The mission cannot go on (no odometry, a leg that does not progress)."""


@dataclass(frozen=True)
class Leg:
    """Drive `distance` metres straight (sign: direction), or turn `angle` radians in place."""

    distance: float = 0.0
    angle: float = 0.0

    def describe(self) -> str:
        """Human-readable form."""
        if self.angle:
            return f"turn {math.degrees(self.angle):+.0f} deg"
        return f"drive {self.distance:+.2f} m"


def square(side: float) -> list[Leg]:
    """A square driven counter-clockwise: four sides and four left turns."""
    return [leg for _ in range(4) for leg in (Leg(distance=side), Leg(angle=math.pi / 2))]


def odom_pose(msg: Odometry) -> Pose2D:
    """The planar pose of an Odometry message."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return Pose2D(p.x, p.y, quaternion_to_yaw(q.x, q.y, q.z, q.w))


class LegDriver:
    """Publishes cmd_vel at `rate` until odometry says each leg is done."""

    def __init__(self, ros: RosClient, namespace: str, speed: float = 0.3,
                 turn_rate: float = 0.4, rate: float = 20.0,
                 say: Callable[[str], None] = print) -> None:
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.cmd = ros.publisher(Twist, f"{ns}/cmd_vel", wait_for_subscribers=20.0)
        self.odom = ros.subscribe(Odometry, f"{ns}/odom")
        self.speed, self.turn_rate, self.period = speed, turn_rate, 1.0 / rate
        self.say = say
        if self.cmd.get_subscription_count() == 0:
            raise MissionError(f"nothing subscribes to {ns}/cmd_vel: is the base driver up?")
        if self.odom.wait_for(timeout=20.0) is None:
            raise MissionError(f"no odometry on {ns}/odom within 20 s")

    def pose(self) -> Pose2D:
        """The latest odometry pose."""
        msg = self.odom.last()
        assert msg is not None
        return odom_pose(msg)

    def _publish(self, v: float, w: float) -> None:
        msg = Twist()
        msg.linear.x, msg.angular.z = v, w
        self.cmd.publish(msg)
        time.sleep(self.period)

    def run_leg(self, leg: Leg, timeout_factor: float = 4.0) -> Pose2D:
        """Drive one leg; slows down near its end; returns the odometry pose after it."""
        start = self.pose()
        travelled = turned = 0.0
        last_yaw = start.yaw
        nominal = abs(leg.distance) / self.speed + abs(leg.angle) / self.turn_rate
        deadline = time.monotonic() + 5.0 + timeout_factor * nominal
        while True:
            pose = self.pose()
            turned += wrap_angle(pose.yaw - last_yaw)
            last_yaw = pose.yaw
            travelled = math.hypot(pose.x - start.x, pose.y - start.y)
            if leg.angle:
                left = abs(leg.angle) - abs(turned)
                w = math.copysign(min(self.turn_rate, max(0.05, 1.5 * left)), leg.angle)
                if left <= 0.005:
                    break
                self._publish(0.0, w)
            else:
                left = abs(leg.distance) - travelled
                v = math.copysign(min(self.speed, max(0.05, 1.0 * left)), leg.distance)
                if left <= 0.005:
                    break
                self._publish(v, 0.0)
            if time.monotonic() > deadline:
                raise MissionError(f"leg '{leg.describe()}' made no progress in time "
                                   f"(travelled {travelled:.2f} m, turned "
                                   f"{math.degrees(turned):.0f} deg)")
        for _ in range(5):
            self._publish(0.0, 0.0)
        return self.pose()

    def run(self, legs: Sequence[Leg],
            after_leg: Callable[[int, Leg, Pose2D], None] | None = None) -> Pose2D:
        """Drive every leg in order."""
        pose = self.pose()
        for i, leg in enumerate(legs):
            pose = self.run_leg(leg)
            if after_leg is not None:
                after_leg(i, leg, pose)
        return pose


def route(scale: float = 1.0) -> list[Leg]:
    """The first simulated mission's route out of the depot: a loop with left and right turns."""
    s = scale
    return [Leg(distance=8 * s), Leg(angle=math.pi / 2), Leg(distance=5 * s),
            Leg(angle=-math.pi / 2), Leg(distance=6 * s), Leg(angle=math.pi),
            Leg(distance=6 * s)]


def to_map(origin: Pose2D, pose: Pose2D) -> Pose2D:
    """An odometry pose expressed in the map frame, odometry having started at `origin`."""
    c, s = math.cos(origin.yaw), math.sin(origin.yaw)
    return Pose2D(origin.x + c * pose.x - s * pose.y, origin.y + s * pose.x + c * pose.y,
                  wrap_angle(origin.yaw + pose.yaw))


@dataclass
class Comparison:
    """Odometry against ground truth after a drive."""

    distance: float  # m driven, from ground truth
    position_error: float  # m, odometry (in map) to truth
    heading_error: float  # rad

    @property
    def drift_percent(self) -> float:
        """Position error per distance driven, %."""
        return 100.0 * self.position_error / self.distance if self.distance > 0 else 0.0


def compare(origin: Pose2D, odom: Pose2D, truth: Pose2D, distance: float) -> Comparison:
    """How far odometry (started at `origin` in the map) is from the truth."""
    est = to_map(origin, odom)
    return Comparison(distance, math.hypot(est.x - truth.x, est.y - truth.y),
                      abs(wrap_angle(est.yaw - truth.yaw)))
