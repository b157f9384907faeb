"""The rover's URDF, generated from its parameter file (no xacro), and the transforms in it.

One description of the rover (:class:`~ilrs_robots.sim.model.RoverSpec`, read from
`config/params/rover_base.yaml`) gives the embedded simulator's MuJoCo model and this URDF, so
the frames the simulator publishes and the ones `robot_description_publisher` (or ROS's own
`robot_state_publisher`) publishes from the URDF are the same: ``base_link``, one link per wheel
(continuous joints named as the base driver's ``wheels`` parameter), ``imu_link``, the stereo pair
and the mast camera (``nav_left``, ``nav_right``, ``mast``: a body link and, beside it, the REP-103
``<camera>_optical_frame``, both children of ``base_link`` as in the simulator), and the serial
hazard camera (``hazcam_link``, ``hazcam_optical_frame``).

:func:`joints_of` reads the joints back from any URDF text, as robot_state_publisher does: the
publisher node works from the ``robot_description`` it publishes, not from a second model.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from transforms3d.euler import euler2mat, mat2euler
from transforms3d.quaternions import mat2quat

from ilrs_robots.sim.model import MAST_CAMERA, STEREO_CAMERAS, WHEEL_NAMES, RoverSpec

OPTICAL_RPY = (-math.pi / 2, 0.0, -math.pi / 2)
"""A camera body (x forward, z up) to its optical frame (z forward, x right, y down)."""
HAZCAM_PITCH_DEG = 35.0
"""The serial hazard camera looks down at the ground ahead, from the chassis front."""


@dataclass(frozen=True)
class Joint:
    """One URDF joint: its frames and the fixed part of the transform (parent -> child)."""

    name: str
    kind: str  # fixed, continuous, revolute, prismatic
    parent: str
    child: str
    xyz: tuple[float, float, float]
    rpy: tuple[float, float, float]
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)

    def quaternion(self, position: float = 0.0) -> tuple[float, float, float, float]:
        """Rotation parent -> child as (x, y, z, w), after `position` (rad) about the axis."""
        rot = euler2mat(*self.rpy, axes="sxyz")
        if self.kind in ("continuous", "revolute") and position:
            rot = rot @ _axis_angle(self.axis, position)
        w, x, y, z = _mat2quat(rot)
        return (x, y, z, w)


def _axis_angle(axis: Sequence[float], angle: float) -> np.ndarray:
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def _mat2quat(rot: np.ndarray) -> tuple[float, float, float, float]:
    w, x, y, z = mat2quat(rot)
    return (float(w), float(x), float(y), float(z))


def _f(*values: float) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def camera_rpy(pitch_down_deg: float) -> tuple[float, float, float]:
    """URDF rpy of a camera's optical frame in base_link for a camera pitched down."""
    rot = euler2mat(0.0, math.radians(pitch_down_deg), 0.0, axes="sxyz") @ euler2mat(
        *OPTICAL_RPY, axes="sxyz")
    return tuple(float(a) for a in mat2euler(rot, axes="sxyz"))  # type: ignore[return-value]


def camera_mounts(spec: RoverSpec) -> dict[str, tuple[tuple[float, float, float], float]]:
    """Per camera, (xyz of its optical centre in base_link, pitch down in degrees).

    The simulator's MJCF places its cameras with the same formulas (sim/model.py).
    """
    r = spec.wheel_radius
    nav_z = spec.nav_camera_height - r
    mast_x = spec.nav_camera_x - 0.1 + 0.06
    b = spec.stereo_baseline / 2
    front_z = spec.chassis_clearance - r + spec.chassis_height / 2
    return {
        STEREO_CAMERAS[0]: ((spec.nav_camera_x, b, nav_z), spec.nav_camera_pitch_deg),
        STEREO_CAMERAS[1]: ((spec.nav_camera_x, -b, nav_z), spec.nav_camera_pitch_deg),
        MAST_CAMERA: ((mast_x, 0.0, spec.mast_camera_height - r), spec.mast_camera_pitch_deg),
        "hazcam": ((spec.chassis_length / 2 + 0.02, 0.0, front_z), HAZCAM_PITCH_DEG),
    }


def _box_inertia(mass: float, x: float, y: float, z: float) -> str:
    k = mass / 12.0
    return (f'<inertia ixx="{k * (y * y + z * z):.6g}" ixy="0" ixz="0" '
            f'iyy="{k * (x * x + z * z):.6g}" iyz="0" izz="{k * (x * x + y * y):.6g}"/>')


def rover_urdf(spec: RoverSpec, wheel_joints: Sequence[str] | None = None,
               name: str = "ilrs_rover") -> str:
    """The rover's URDF. `wheel_joints` names the wheel joints in WHEEL_NAMES order
    (the base driver's ``wheels``, so joint_states drive them); links drop ``_joint``."""
    joints = list(wheel_joints) if wheel_joints is not None else [
        f"{w}_wheel_joint" for w in WHEEL_NAMES]
    if len(joints) != len(WHEEL_NAMES):
        raise ValueError(f"the rover has {len(WHEEL_NAMES)} wheels, got {len(joints)} joint "
                         f"names: {joints}")
    r = spec.wheel_radius
    ch = (spec.chassis_length, spec.chassis_width, spec.chassis_height)
    ch_z = spec.chassis_clearance - r + spec.chassis_height / 2
    out = [
        '<?xml version="1.0"?>',
        f'<robot name="{name}">',
        '  <material name="regolith_white"><color rgba="0.85 0.85 0.8 1"/></material>',
        '  <material name="tyre"><color rgba="0.25 0.25 0.25 1"/></material>',
        '  <link name="base_link">',
        f'    <visual><origin xyz="{_f(0, 0, ch_z)}"/><geometry><box size="{_f(*ch)}"/>'
        '</geometry><material name="regolith_white"/></visual>',
        f'    <collision><origin xyz="{_f(0, 0, ch_z)}"/><geometry><box size="{_f(*ch)}"/>'
        '</geometry></collision>',
        f'    <inertial><origin xyz="{_f(0, 0, ch_z)}"/><mass value="{spec.chassis_mass:.6g}"/>'
        f'{_box_inertia(spec.chassis_mass, *ch)}</inertial>',
        '  </link>',
    ]
    w_inertia_xx = spec.wheel_mass * (3 * r * r + spec.wheel_width ** 2) / 12.0
    w_inertia_yy = spec.wheel_mass * r * r / 2.0
    for joint, (x, y) in zip(joints, spec.wheel_offsets(), strict=True):
        link = joint.removesuffix("_joint") if joint.endswith("_joint") else f"{joint}_link"
        cyl = f'<geometry><cylinder radius="{r:.6g}" length="{spec.wheel_width:.6g}"/></geometry>'
        out += [
            f'  <link name="{link}">',
            f'    <visual><origin rpy="{_f(math.pi / 2, 0, 0)}"/>{cyl}'
            '<material name="tyre"/></visual>',
            f'    <collision><origin rpy="{_f(math.pi / 2, 0, 0)}"/>{cyl}</collision>',
            f'    <inertial><mass value="{spec.wheel_mass:.6g}"/><inertia '
            f'ixx="{w_inertia_xx:.6g}" ixy="0" ixz="0" iyy="{w_inertia_yy:.6g}" iyz="0" '
            f'izz="{w_inertia_xx:.6g}"/></inertial>',
            '  </link>',
            f'  <joint name="{joint}" type="continuous">',
            f'    <parent link="base_link"/><child link="{link}"/>',
            f'    <origin xyz="{_f(x, y, 0)}" rpy="0 0 0"/><axis xyz="0 1 0"/>',
            '  </joint>',
        ]
    out += [
        '  <link name="imu_link"/>',
        '  <joint name="imu_joint" type="fixed">',
        f'    <parent link="base_link"/><child link="imu_link"/>'
        f'<origin xyz="{_f(*spec.imu_position)}" rpy="0 0 0"/>',
        '  </joint>',
    ]
    for cam, (xyz, pitch) in camera_mounts(spec).items():
        body = f"{cam}_link"
        out += [
            f'  <link name="{body}"><visual><geometry><box size="0.06 0.1 0.05"/></geometry>'
            '<material name="tyre"/></visual></link>',
            f'  <joint name="{cam}_joint" type="fixed">',
            f'    <parent link="base_link"/><child link="{body}"/>'
            f'<origin xyz="{_f(*xyz)}" rpy="{_f(0, math.radians(pitch), 0)}"/>',
            '  </joint>',
            f'  <link name="{cam}_optical_frame"/>',
            f'  <joint name="{cam}_optical_joint" type="fixed">',
            f'    <parent link="base_link"/><child link="{cam}_optical_frame"/>'
            f'<origin xyz="{_f(*xyz)}" rpy="{_f(*camera_rpy(pitch))}"/>',
            '  </joint>',
        ]
    out.append('</robot>')
    return "\n".join(out) + "\n"


def _floats(text: str | None, default: tuple[float, float, float]
            ) -> tuple[float, float, float]:
    if not text:
        return default
    values = [float(v) for v in text.split()]
    if len(values) != 3:
        raise ValueError(f"expected 3 numbers, got {text!r}")
    return (values[0], values[1], values[2])


def joints_of(urdf: str) -> list[Joint]:
    """The joints of a URDF document (ValueError for a document that is not one)."""
    try:
        root = ET.fromstring(urdf)
    except ET.ParseError as exc:
        raise ValueError(f"not valid XML: {exc}") from exc
    if root.tag != "robot":
        raise ValueError(f"the root element is <{root.tag}>, not <robot>")
    links = {link.get("name") for link in root.findall("link")}
    joints = []
    for j in root.findall("joint"):
        parent, child = j.find("parent"), j.find("child")
        if parent is None or child is None:
            raise ValueError(f"joint {j.get('name')!r} needs a parent and a child")
        pname, cname = parent.get("link", ""), child.get("link", "")
        for link in (pname, cname):
            if link not in links:
                raise ValueError(f"joint {j.get('name')!r} names an unknown link {link!r}")
        origin, axis = j.find("origin"), j.find("axis")
        joints.append(Joint(
            name=j.get("name", ""), kind=j.get("type", "fixed"), parent=pname, child=cname,
            xyz=_floats(None if origin is None else origin.get("xyz"), (0.0, 0.0, 0.0)),
            rpy=_floats(None if origin is None else origin.get("rpy"), (0.0, 0.0, 0.0)),
            axis=_floats(None if axis is None else axis.get("xyz"), (1.0, 0.0, 0.0))))
    return joints


def prefixed(frame: str, prefix: str) -> str:
    """`frame` with the robot's frame prefix (robot_state_publisher's `frame_prefix`)."""
    return f"{prefix}{frame}" if prefix else frame
