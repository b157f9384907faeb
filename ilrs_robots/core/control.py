"""Closed-loop driving of scripted legs on a pose estimate, and scripted routes.

Pure: a `LegController` turns successive poses (from odometry, whatever carries them) into
(linear, angular) velocity commands until its leg is done. The runner's missions feed it
fresh odometry and publish what it returns as cmd_vel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ilrs_robots.core.geometry import Pose2D, wrap_angle


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


@dataclass(frozen=True)
class LegGains:
    """How a leg is driven: top speeds, proportional slow-down near the end, tolerances."""

    speed: float = 0.3  # m/s
    turn_rate: float = 0.4  # rad/s
    k_distance: float = 1.0  # 1/s: commanded speed per metre left
    k_angle: float = 1.5  # 1/s: commanded turn rate per radian left
    min_speed: float = 0.05  # m/s, so the last centimetres are driven too
    min_turn_rate: float = 0.05  # rad/s
    distance_tolerance: float = 0.005  # m
    angle_tolerance: float = 0.005  # rad


class LegController:
    """Drives one leg: give it each new pose, it returns the command, or None once done.

    Progress is measured from the pose at the start: distance as the straight-line
    displacement, turning as the sum of wrapped yaw changes (so turns beyond 180 deg work).
    """

    def __init__(self, leg: Leg, start: Pose2D, gains: LegGains | None = None) -> None:
        self.leg = leg
        self.start = start
        self.gains = gains or LegGains()
        self.travelled = 0.0
        self.turned = 0.0
        self._last_yaw = start.yaw

    @property
    def remaining(self) -> float:
        """What is left of the leg: metres, or radians for a turn (negative: overshot)."""
        if self.leg.angle:
            return abs(self.leg.angle) - abs(self.turned)
        return abs(self.leg.distance) - self.travelled

    def update(self, pose: Pose2D) -> tuple[float, float] | None:
        """The (linear m/s, angular rad/s) command at `pose`, or None when the leg is done."""
        g = self.gains
        self.turned += wrap_angle(pose.yaw - self._last_yaw)
        self._last_yaw = pose.yaw
        self.travelled = math.hypot(pose.x - self.start.x, pose.y - self.start.y)
        left = self.remaining
        if self.leg.angle:
            if left <= g.angle_tolerance:
                return None
            w = min(g.turn_rate, max(g.min_turn_rate, g.k_angle * left))
            return 0.0, math.copysign(w, self.leg.angle)
        if left <= g.distance_tolerance:
            return None
        v = min(g.speed, max(g.min_speed, g.k_distance * left))
        return math.copysign(v, self.leg.distance), 0.0

    def nominal_time(self) -> float:
        """Seconds the leg takes at full speed (for timeouts)."""
        return (abs(self.leg.distance) / self.gains.speed
                + abs(self.leg.angle) / self.gains.turn_rate)


def square(side: float) -> list[Leg]:
    """A square driven counter-clockwise: four sides and four left turns."""
    return [leg for _ in range(4) for leg in (Leg(distance=side), Leg(angle=math.pi / 2))]


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
