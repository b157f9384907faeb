"""Planar geometry helpers shared by odometry, planning and control (REP-103 axes).

Quaternions: one way, transforms3d, whose order is (w, x, y, z) as MuJoCo's. ROS messages
order them (x, y, z, w): `to_xyzw` and `from_xyzw` are the only conversions between the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from transforms3d.euler import euler2quat, quat2euler


@dataclass(frozen=True)
class Pose2D:
    """A pose in the plane: x, y in metres, yaw in radians (counter-clockwise from +x)."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0


def wrap_angle(angle: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def to_xyzw(wxyz: Sequence[float]) -> tuple[float, float, float, float]:
    """A (w, x, y, z) quaternion (transforms3d, MuJoCo) in ROS message order (x, y, z, w)."""
    w, x, y, z = (float(v) for v in wxyz)
    return (x, y, z, w)


def from_xyzw(xyzw: Sequence[float]) -> np.ndarray:
    """A ROS-order (x, y, z, w) quaternion as transforms3d's (w, x, y, z) array."""
    x, y, z, w = (float(v) for v in xyzw)
    return np.array([w, x, y, z])


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w), ROS message order, of a rotation by yaw about +z."""
    return to_xyzw(euler2quat(0.0, 0.0, yaw, "sxyz"))


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    """Yaw (rotation about +z, of the static x-y-z Euler angles) of a ROS-order quaternion."""
    return float(quat2euler(from_xyzw((x, y, z, w)), "sxyz")[2])


def wxyz_to_yaw(wxyz: Sequence[float]) -> float:
    """Yaw of a (w, x, y, z) quaternion (transforms3d, MuJoCo order)."""
    return float(quat2euler(np.asarray(wxyz, dtype=float), "sxyz")[2])
