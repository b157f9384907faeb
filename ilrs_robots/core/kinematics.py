"""Skid-steer (differential) drive kinematics, command limits and wheel odometry.

Pure functions and small classes, no ROS and no I/O: the base driver node feeds them
cmd_vel values and encoder travel, and sends what they return to the motor controllers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ilrs_robots.core.geometry import Pose2D, wrap_angle


@dataclass(frozen=True)
class SkidSteerGeometry:
    """Geometry of a skid-steer base: every left wheel turns alike, every right wheel too."""

    wheel_radius: float  # m
    track_width: float  # m, between left and right wheel centres
    counts_per_rev: float  # encoder counts per wheel revolution (gearbox included)

    @property
    def counts_per_metre(self) -> float:
        """Encoder counts per metre of wheel travel."""
        return self.counts_per_rev / (2.0 * math.pi * self.wheel_radius)


@dataclass(frozen=True)
class DriveLimits:
    """Limits applied to every command before it reaches the wheels."""

    max_linear: float  # m/s
    max_angular: float  # rad/s
    max_wheel_speed: float  # m/s at the wheel rim
    max_accel: float  # m/s^2 at the wheel rim, handed to the controllers
    stop_accel: float  # m/s^2 used to stop: timeout, estop, lost link
    reject_factor: float = 10.0  # a command beyond limit * factor is absurd: rejected


class CommandRejected(ValueError):
    """A velocity command that must not reach the wheels (NaN, infinite or absurd)."""


def check_twist(linear: float, angular: float, limits: DriveLimits,
                others: tuple[float, ...] = ()) -> None:
    """Raise CommandRejected if a command is not finite or absurdly beyond the limits.

    `others` are the Twist components a skid-steer base ignores (linear y, z, angular x, y):
    they are ignored, but a NaN among them still marks the message as corrupt.
    """
    for value in (linear, angular, *others):
        if not math.isfinite(value):
            raise CommandRejected(f"non-finite value {value!r} in the command")
    if abs(linear) > limits.max_linear * limits.reject_factor:
        raise CommandRejected(f"linear speed {linear:.3g} m/s is absurd "
                              f"(limit {limits.max_linear:.3g} m/s)")
    if abs(angular) > limits.max_angular * limits.reject_factor:
        raise CommandRejected(f"angular speed {angular:.3g} rad/s is absurd "
                              f"(limit {limits.max_angular:.3g} rad/s)")


def limit_twist(linear: float, angular: float, geometry: SkidSteerGeometry,
                limits: DriveLimits) -> tuple[float, float]:
    """Clamp a command to the speed limits, scaling both parts to keep the path's curvature."""
    scale = 1.0
    if abs(linear) > limits.max_linear:
        scale = min(scale, limits.max_linear / abs(linear))
    if abs(angular) > limits.max_angular:
        scale = min(scale, limits.max_angular / abs(angular))
    left, right = twist_to_wheel_speeds(linear * scale, angular * scale, geometry)
    fastest = max(abs(left), abs(right)) * geometry.wheel_radius
    if fastest > limits.max_wheel_speed:
        scale *= limits.max_wheel_speed / fastest
    return linear * scale, angular * scale


def twist_to_wheel_speeds(linear: float, angular: float,
                          geometry: SkidSteerGeometry) -> tuple[float, float]:
    """Left and right wheel angular speeds (rad/s) for a body twist (m/s, rad/s)."""
    half_track = 0.5 * geometry.track_width
    left = (linear - angular * half_track) / geometry.wheel_radius
    right = (linear + angular * half_track) / geometry.wheel_radius
    return left, right


def wheel_speeds_to_twist(left: float, right: float,
                          geometry: SkidSteerGeometry) -> tuple[float, float]:
    """Body twist (m/s, rad/s) from left and right wheel angular speeds (rad/s)."""
    v_left = left * geometry.wheel_radius
    v_right = right * geometry.wheel_radius
    return 0.5 * (v_left + v_right), (v_right - v_left) / geometry.track_width


def rad_per_s_to_counts(speed: float, geometry: SkidSteerGeometry) -> int:
    """Wheel angular speed (rad/s) as encoder counts per second, rounded."""
    return int(round(speed * geometry.counts_per_rev / (2.0 * math.pi)))


def counts_to_rad(counts: float, geometry: SkidSteerGeometry) -> float:
    """Encoder counts as a wheel angle (rad)."""
    return counts * 2.0 * math.pi / geometry.counts_per_rev


class WheelOdometry:
    """Integrates left/right wheel travel into a planar pose (exact arcs between updates)."""

    def __init__(self, track_width: float) -> None:
        if track_width <= 0.0:
            raise ValueError("track_width must be positive")
        self.track_width = track_width
        self.pose = Pose2D()
        self.distance = 0.0  # path length travelled by the base centre, m

    def reset(self, pose: Pose2D | None = None) -> None:
        """Start again from `pose` (the origin by default)."""
        self.pose = pose or Pose2D()
        self.distance = 0.0

    def update(self, d_left: float, d_right: float) -> Pose2D:
        """Add the travel of the left and right wheels (m) since the last update."""
        ds = 0.5 * (d_left + d_right)
        dyaw = (d_right - d_left) / self.track_width
        x, y, yaw = self.pose.x, self.pose.y, self.pose.yaw
        if abs(dyaw) < 1e-9:
            x += ds * math.cos(yaw + 0.5 * dyaw)
            y += ds * math.sin(yaw + 0.5 * dyaw)
        else:
            radius = ds / dyaw
            x += radius * (math.sin(yaw + dyaw) - math.sin(yaw))
            y -= radius * (math.cos(yaw + dyaw) - math.cos(yaw))
        self.pose = Pose2D(x, y, wrap_angle(yaw + dyaw))
        self.distance += abs(ds)
        return self.pose


class WheelTravel:
    """Each side's travel (m) between odometry updates, from encoder counts that may miss.

    A controller that misses a poll leaves its wheels out of that cycle; their next delta then
    spans cycles the other wheels of the side already covered, and averaging it in would count
    that travel twice (the odometry runs long on a noisy bus). So a wheel's delta is used only
    when its baseline is the count read at the last update; a wheel that missed is re-baselined
    and rejoins at the next cycle. When a side has no usable wheel the update is skipped and
    the baselines stay, so the next update covers both cycles alike. A jump no wheel could make
    (a controller that reset its counters) re-baselines that wheel.
    """

    def __init__(self, sides: dict[tuple[int, int], tuple[bool, int]],
                 counts_per_metre: float) -> None:
        """`sides`: wheel key -> (is left, direction +1/-1)."""
        self.sides = dict(sides)
        self.counts_per_metre = counts_per_metre
        self._base: dict[tuple[int, int], tuple[int, int]] = {}  # key -> (count, update no.)
        self._updates = 0

    def reset(self) -> None:
        """Forget every baseline (a new connection: counters may have changed)."""
        self._base.clear()

    def step(self, counts: dict[tuple[int, int], int], limit: float
             ) -> tuple[float, float] | None:
        """(left, right) travel since the last update from this cycle's `counts`, or None.

        `limit`: the largest plausible change of one wheel's count since the last update.
        """
        travel: dict[bool, list[float]] = {True: [], False: []}
        jumped: set[tuple[int, int]] = set()
        for key, count in counts.items():
            if key not in self.sides:
                continue
            left, direction = self.sides[key]
            base = self._base.get(key)
            if base is None or base[1] != self._updates:
                continue  # new, or missed a cycle: re-baselined below
            delta = count - base[0]
            if abs(delta) > limit:
                jumped.add(key)
                continue
            travel[left].append(delta * direction / self.counts_per_metre)
        ok = bool(travel[True] and travel[False])
        if ok:
            self._updates += 1
        for key, count in counts.items():
            if key in self.sides and (ok or key in jumped or key not in self._base):
                self._base[key] = (count, self._updates)
        if not ok:
            return None
        return (sum(travel[True]) / len(travel[True]),
                sum(travel[False]) / len(travel[False]))
