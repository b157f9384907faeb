"""Planar geometry helpers shared by odometry, planning and control (REP-103 axes)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Pose2D:
    """A pose in the plane: x, y in metres, yaw in radians (counter-clockwise from +x)."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0


def wrap_angle(angle: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w), ROS message order, of a rotation by yaw about +z."""
    half = 0.5 * yaw
    return (0.0, 0.0, math.sin(half), math.cos(half))


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    """Yaw (rotation about +z) of a quaternion given in ROS order (x, y, z, w)."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
