"""Gazebo (Harmonic) export of a world description: SDF 1.9 world, rover models, bridge YAML.

Generated from the same world description and rover geometry as the embedded simulator
(`sim/world.py`, `sim/model.py`), so the two cannot drift apart:

- ``world.sdf``: lunar gravity, the low sun as a directional light, the terrain, the rocks and
  the sites' objects, and the world systems (Physics, Sensors with ogre2, Imu,
  SceneBroadcaster, UserCommands).
- ``terrain.png``: the terrain as a Gazebo heightmap, a square 16-bit grey image of 2^n + 1
  pixels. Pixel 0 is the lowest terrain point and 65535 the highest, so Gazebo's
  ``height = pos.z + pixel / 65535 * size.z`` gives back the heights whichever way a loader
  normalises 16-bit data; image row 0 is the northern (+y) edge.
  *Why a heightmap and not a mesh:* Harmonic renders heightmaps with ogre2's terrain (level
  of detail, one draw for 400 m x 400 m) and DART collides wheels with a heightmap shape as
  a grid, while an 801 x 801-node mesh is 1.3 M triangles that DART would test as a general
  concave mesh (slow, and thin-triangle contacts are unreliable).
- ``<robot>.sdf``: the 6-wheel rover per robot name (chassis, six revolute wheel joints named
  as the base driver's ``wheels``, DiffDrive over all six, JointStatePublisher,
  OdometryPublisher for the ground truth, an IMU, the stereo pair and the mast camera at
  the embedded simulator's poses). Every Gazebo topic is ``/<robot>/...``.
- ``bridge.yaml``: the ``ros_gz_bridge parameter_bridge`` configuration mapping those
  topics onto the topic contract (``/clock``, ``odom``, ``/tf``, ``joint_states``,
  ``imu/data``, the cameras' ``image_raw`` and ``camera_info`` Gazebo to ROS) and the
  DiffDrive's command from ``gz/cmd_vel`` (ROS to Gazebo): ``cmd_vel`` itself goes to the
  ``gazebo_base`` node, which enforces the estop, ``cmd_timeout`` and the limits (the DiffDrive
  would follow its last command forever) and publishes what the wheels may do on ``gz/cmd_vel``.
- ``gazebo_base.yaml``: that node's parameter file, the base driver's timeout and limits
  (``config/params/rover_base.yaml``, the same source as the DiffDrive's).
- ``robots.yaml``: where ``gazebo.launch.py`` spawns each robot, and the static transforms
  of its sensor frames (``base_link`` -> ``imu_link`` and the cameras' ``_optical_frame``).

Pure apart from :func:`write_export`, which writes the files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import yaml
from transforms3d.euler import quat2euler
from transforms3d.quaternions import mat2quat

from ilrs_robots.core.terrain import Heightmap, Rock
from ilrs_robots.resources import config_path
from ilrs_robots.sim import world as world_mod
from ilrs_robots.sim.model import (
    MAST_CAMERA,
    STEREO_CAMERAS,
    RoverSpec,
    gauge_needle,
    start_pose,
)
from ilrs_robots.sim.world import SiteObject, World

SDF_VERSION = "1.9"  # sdformat 12 (Debian 12) validates it; Harmonic (sdformat 14) reads it
HEIGHTMAP_FILE = "terrain.png"
BRIDGE_FILE = "bridge.yaml"
WORLD_FILE = "world.sdf"
ROBOTS_FILE = "robots.yaml"
BASE_PARAMS_FILE = "gazebo_base.yaml"
GAZEBO_CMD_VEL = "gz/cmd_vel"
"""The ROS topic (relative to the robot) bridged to the DiffDrive: gazebo_base publishes it."""
BASE_PARAMETERS = ("cmd_timeout", "wheel_radius", "track_width", "effective_track_width",
                   "max_linear", "max_angular", "max_wheel_speed", "max_accel", "stop_accel",
                   "control_rate")
"""The base driver's parameters that gazebo_base takes too (same names, same meaning)."""
DEFAULT_WHEEL_JOINTS = ("front_left_wheel_joint", "front_right_wheel_joint",
                        "middle_left_wheel_joint", "middle_right_wheel_joint",
                        "rear_left_wheel_joint", "rear_right_wheel_joint")
"""Wheel joint names in :data:`ilrs_robots.sim.model.WHEEL_NAMES` order (left, right per
axle), as the base driver's ``wheels`` parameter names them."""

OPTICAL_FROM_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
"""Columns: the optical frame's x (image right), y (image down), z (view) axes in a camera
body frame that looks along +x with +z up (Gazebo's camera convention)."""


@dataclass(frozen=True)
class CameraSpec:
    """One camera of the rover: Gazebo sensor name, ROS topic (relative to the robot), pose
    in ``base_link`` (x, y, z, pitch down in degrees), vertical field of view, rate."""

    name: str
    topic: str
    xyz: tuple[float, float, float]
    pitch_down_deg: float
    fovy_deg: float
    rate: float

    @property
    def frame(self) -> str:
        """The ROS optical frame of the images."""
        return f"{self.name}_optical_frame"

    def optical_rotation(self) -> np.ndarray:
        """Rotation matrix of the optical frame in ``base_link``."""
        p = math.radians(self.pitch_down_deg)
        pitch = np.array([[math.cos(p), 0.0, math.sin(p)], [0.0, 1.0, 0.0],
                          [-math.sin(p), 0.0, math.cos(p)]])
        return pitch @ OPTICAL_FROM_BODY

    def hfov(self, width: int, height: int) -> float:
        """Horizontal field of view (rad) of a ``width`` x ``height`` image."""
        return 2.0 * math.atan(math.tan(math.radians(self.fovy_deg) / 2.0) * width / height)


@dataclass(frozen=True)
class SensorSettings:
    """Rates and image size of the simulated sensors (``config/params/sim.yaml``)."""

    imu_rate: float = 100.0
    stereo_rate: float = 2.0
    mast_rate: float = 1.0
    width: int = 640
    height: int = 480

    @classmethod
    def from_sim_params(cls, path: Path | None = None) -> SensorSettings:
        """Read the embedded simulator's parameter file (its ``sim`` node's section)."""
        p = Path(path) if path else config_path("params", "sim.yaml")
        data = yaml.safe_load(p.read_text()) or {}
        params = next(iter(data.values()), {}).get("ros__parameters", {})
        return cls(float(params.get("imu_rate", cls.imu_rate)),
                   float(params.get("stereo_rate", cls.stereo_rate)),
                   float(params.get("mast_rate", cls.mast_rate)),
                   int(params.get("camera_width", cls.width)),
                   int(params.get("camera_height", cls.height)))


@dataclass(frozen=True)
class HeightmapImage:
    """The terrain as a Gazebo heightmap: the image and its ``<size>``/``<pos>``."""

    pixels: np.ndarray  # uint16, n x n, row 0 = north (+y)
    size: tuple[float, float, float]  # x, y extent (m), height span (m)
    pos: tuple[float, float, float]  # centre x, y; z of pixel value 0

    def heights(self) -> np.ndarray:
        """Heights (m) the image stands for, row 0 = south, as a Heightmap's rows."""
        return self.pos[2] + np.flipud(self.pixels.astype(np.float64)) / 65535.0 * self.size[2]

    def as_heightmap(self) -> Heightmap:
        """The heights Gazebo builds from this image, as a :class:`Heightmap`."""
        n = self.pixels.shape[0]
        res = self.size[0] / (n - 1)
        origin = (self.pos[0] - self.size[0] / 2.0, self.pos[1] - self.size[1] / 2.0)
        return Heightmap(self.heights(), origin, res)


def heightmap_side(nodes: int) -> int:
    """The smallest Gazebo heightmap side 2^n + 1 that keeps ``nodes`` nodes' detail."""
    n = 1
    while 2 ** n + 1 < nodes:
        n += 1
    return 2 ** n + 1


def heightmap_image(heightmap: Heightmap, side: int | None = None) -> HeightmapImage:
    """Resample ``heightmap`` (bilinear) onto a square 2^n + 1 grid over the same extent.

    Gazebo needs a square image, so a non-square terrain is sampled over a square of its
    larger side, centred on it (the edge heights continue beyond the shorter side).
    """
    ny, nx = heightmap.shape
    n = side or heightmap_side(max(nx, ny))
    if n < 3 or (n - 1) & (n - 2) != 0:
        raise ValueError(f"heightmap side must be 2^k + 1, got {n}")
    cx, cy = heightmap.center
    extent = max(heightmap.size)
    t = np.linspace(-extent / 2.0, extent / 2.0, n)
    gx, gy = np.meshgrid(cx + t, cy + t)
    h = np.asarray(heightmap.height_at(gx, gy), dtype=np.float64)
    lo = float(h.min())
    span = max(float(h.max()) - lo, 1e-3)
    pixels = np.rint((h - lo) / span * 65535.0).clip(0, 65535).astype(np.uint16)
    return HeightmapImage(np.flipud(pixels).copy(), (extent, extent, span), (cx, cy, lo))


def encode_png16(pixels: np.ndarray) -> bytes:
    """A 16-bit grey PNG of ``pixels`` (OpenCV), bytes identical for identical input."""
    import cv2

    ok, buf = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("OpenCV could not encode the heightmap PNG")
    return buf.tobytes()


# ---------------------------------------------------------------------------------------
# Rover
# ---------------------------------------------------------------------------------------
def rover_cameras(rover: RoverSpec, sensors: SensorSettings) -> list[CameraSpec]:
    """The stereo pair and the mast camera at the embedded simulator's poses
    (``sim/model.py``: base_link at axle height, cameras at their height above the ground)."""
    r = rover.wheel_radius
    b = rover.stereo_baseline / 2.0
    nav_z = rover.nav_camera_height - r
    mast_x = rover.nav_camera_x - 0.1 + 0.06
    return [
        CameraSpec(STEREO_CAMERAS[0], "stereo/left", (rover.nav_camera_x, b, nav_z),
                   rover.nav_camera_pitch_deg, rover.nav_camera_fovy_deg, sensors.stereo_rate),
        CameraSpec(STEREO_CAMERAS[1], "stereo/right", (rover.nav_camera_x, -b, nav_z),
                   rover.nav_camera_pitch_deg, rover.nav_camera_fovy_deg, sensors.stereo_rate),
        CameraSpec(MAST_CAMERA, "camera", (mast_x, 0.0, rover.mast_camera_height - r),
                   rover.mast_camera_pitch_deg, rover.mast_camera_fovy_deg, sensors.mast_rate),
    ]


def sensor_frames(rover: RoverSpec, sensors: SensorSettings | None = None
                  ) -> dict[str, tuple[tuple[float, float, float],
                                       tuple[float, float, float, float]]]:
    """Static transforms from ``base_link``: frame -> ((x, y, z), quaternion x y z w), for
    ``imu_link`` and each camera's optical frame (as the embedded simulator's /tf_static)."""
    out: dict[str, Any] = {"imu_link": (tuple(float(v) for v in rover.imu_position),
                                        (0.0, 0.0, 0.0, 1.0))}
    for cam in rover_cameras(rover, sensors or SensorSettings()):
        w, x, y, z = mat2quat(cam.optical_rotation())
        if w < 0:
            w, x, y, z = -w, -x, -y, -z
        out[cam.frame] = (tuple(float(v) for v in cam.xyz),
                          (float(x), float(y), float(z), float(w)))
    return out


def _f(*v: float) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def _box_inertia(m: float, sx: float, sy: float, sz: float) -> tuple[float, float, float]:
    return (m * (sy * sy + sz * sz) / 12.0, m * (sx * sx + sz * sz) / 12.0,
            m * (sx * sx + sy * sy) / 12.0)


def _inertial(m: float, ixx: float, iyy: float, izz: float, pose: str = "0 0 0 0 0 0"
              ) -> list[str]:
    return [
        "<inertial>",
        f"  <pose>{pose}</pose>",
        f"  <mass>{m:.6g}</mass>",
        f"  <inertia><ixx>{ixx:.6g}</ixx><ixy>0</ixy><ixz>0</ixz><iyy>{iyy:.6g}</iyy>"
        f"<iyz>0</iyz><izz>{izz:.6g}</izz></inertia>",
        "</inertial>",
    ]


def _material(rgba: Sequence[float]) -> str:
    c = _f(*rgba)
    return (f"<material><ambient>{c}</ambient><diffuse>{c}</diffuse>"
            "<specular>0.05 0.05 0.05 1</specular></material>")


def _indent(lines: list[str], n: int) -> list[str]:
    return [" " * n + s for s in lines]


def rover_model_sdf(rover: RoverSpec, robot: str = "rover1",
                    sensors: SensorSettings | None = None,
                    wheel_joints: Sequence[str] = DEFAULT_WHEEL_JOINTS,
                    effective_track_width: float | None = None, max_linear: float = 0.5,
                    max_angular: float = 0.8, accel_limit: float = 1.5) -> str:
    """The rover's SDF model for robot namespace ``robot`` (topics ``/<robot>/...``).

    Wheel collisions are spheres of ``wheel_radius`` as in the embedded simulator (a sphere
    rolls on a heightmap without the edge contacts of a cylinder); visuals are cylinders.
    DiffDrive turns with ``effective_track_width`` (skid steering, as the base driver), or
    the geometric track when it is None. Its acceleration limit ``accel_limit`` is the base
    driver's ``stop_accel``: gazebo_base ramps moves at ``max_accel`` itself, and a stop must
    not be slowed down to that.
    """
    sensors = sensors or SensorSettings()
    if len(wheel_joints) != 6:
        raise ValueError(f"wheel_joints must name 6 joints, got {list(wheel_joints)}")
    r = rover.wheel_radius
    ch_bottom = rover.chassis_clearance - r
    ch_z = ch_bottom + rover.chassis_height / 2.0
    top = ch_bottom + rover.chassis_height
    L, W, H = rover.chassis_length, rover.chassis_width, rover.chassis_height
    ns = f"/{robot}"
    sep = effective_track_width or rover.track_width
    lines = [
        '<?xml version="1.0"?>',
        f'<sdf version="{SDF_VERSION}">',
        f'  <model name="{escape(robot)}">',
        "    <!-- generated by ilrs export-gazebo from config/params/rover_base.yaml: "
        "do not edit -->",
        '    <link name="base_link">',
    ]
    link = _inertial(rover.chassis_mass, *_box_inertia(rover.chassis_mass, L, W, H),
                     pose=f"0 0 {ch_z:.6g} 0 0 0")
    link += [
        '<collision name="chassis">',
        f"  <pose>0 0 {ch_z:.6g} 0 0 0</pose>",
        f"  <geometry><box><size>{_f(L, W, H)}</size></box></geometry>",
        "</collision>",
        '<visual name="chassis">',
        f"  <pose>0 0 {ch_z:.6g} 0 0 0</pose>",
        f"  <geometry><box><size>{_f(L, W, H)}</size></box></geometry>",
        f"  {_material((0.85, 0.85, 0.8, 1.0))}",
        "</visual>",
    ]
    mast_x = rover.nav_camera_x - 0.1
    mast_top = rover.mast_camera_height - r
    link += [
        '<visual name="mast">',
        f"  <pose>{_f(mast_x, 0, (top + mast_top) / 2)} 0 0 0</pose>",
        f"  <geometry><cylinder><radius>0.04</radius><length>{mast_top - top:.6g}</length>"
        "</cylinder></geometry>",
        f"  {_material((0.3, 0.3, 0.3, 1.0))}",
        "</visual>",
        '<visual name="camera_bar">',
        f"  <pose>{_f(rover.nav_camera_x - 0.04, 0, rover.nav_camera_height - r)} 0 0 0</pose>",
        f"  <geometry><box><size>{_f(0.08, rover.stereo_baseline + 0.12, 0.06)}</size></box>"
        "</geometry>",
        f"  {_material((0.2, 0.2, 0.2, 1.0))}",
        "</visual>",
        '<sensor name="imu" type="imu">',
        f"  <pose>{_f(*rover.imu_position)} 0 0 0</pose>",
        "  <gz_frame_id>imu_link</gz_frame_id>",
        "  <always_on>true</always_on>",
        f"  <update_rate>{sensors.imu_rate:.6g}</update_rate>",
        f"  <topic>{ns}/imu/data</topic>",
        "  <imu>",
        "    <angular_velocity>",
    ]
    for axis in "xyz":
        link += [f"      <{axis}><noise type=\"gaussian\"><mean>0</mean><stddev>0.0005</stddev>"
                 f"<bias_mean>0.0001</bias_mean><bias_stddev>0.00005</bias_stddev></noise>"
                 f"</{axis}>"]
    link += ["    </angular_velocity>", "    <linear_acceleration>"]
    for axis in "xyz":
        link += [f"      <{axis}><noise type=\"gaussian\"><mean>0</mean><stddev>0.01</stddev>"
                 f"<bias_mean>0.002</bias_mean><bias_stddev>0.001</bias_stddev></noise>"
                 f"</{axis}>"]
    link += ["    </linear_acceleration>", "  </imu>", "</sensor>"]
    for cam in rover_cameras(rover, sensors):
        link += [
            f'<sensor name="{cam.name}" type="camera">',
            f"  <pose>{_f(*cam.xyz)} 0 {math.radians(cam.pitch_down_deg):.6g} 0</pose>",
            f"  <gz_frame_id>{cam.frame}</gz_frame_id>",
            "  <always_on>true</always_on>",
            f"  <update_rate>{cam.rate:.6g}</update_rate>",
            f"  <topic>{ns}/{cam.topic}/image_raw</topic>",
            "  <camera>",
            f"    <horizontal_fov>{cam.hfov(sensors.width, sensors.height):.6g}"
            "</horizontal_fov>",
            f"    <image><width>{sensors.width}</width><height>{sensors.height}</height>"
            "<format>R8G8B8</format></image>",
            "    <clip><near>0.05</near><far>500</far></clip>",
            "  </camera>",
            "</sensor>",
        ]
    if rover.headlights:
        link += [
            '<light name="headlight" type="spot">',
            f"  <pose>{_f(rover.nav_camera_x, 0, rover.nav_camera_height - r - 0.1)} "
            f"0 {math.atan2(0.35, 1.0):.6g} 0</pose>",
            "  <cast_shadows>false</cast_shadows>",
            "  <diffuse>0.6 0.6 0.6 1</diffuse>",
            "  <specular>0 0 0 1</specular>",
            "  <attenuation><range>40</range><constant>1</constant><linear>0</linear>"
            "<quadratic>0.01</quadratic></attenuation>",
            "  <direction>1 0 0</direction>",
            "  <spot><inner_angle>0.5</inner_angle><outer_angle>0.7</outer_angle>"
            "<falloff>4</falloff></spot>",
            "</light>",
        ]
    lines += _indent(link, 6)
    lines.append("    </link>")
    wm = rover.wheel_mass
    ww = rover.wheel_width
    i_axle = wm * r * r / 2.0
    i_diam = wm * (3 * r * r + ww * ww) / 12.0
    for joint, (wx, wy) in zip(wheel_joints, rover.wheel_offsets(), strict=True):
        link_name = joint.removesuffix("_joint") if joint.endswith("_joint") else f"{joint}_link"
        lines += _indent([
            f'<link name="{link_name}">',
            f"  <pose>{_f(wx, wy, 0)} 0 0 0</pose>",
            *_indent(_inertial(wm, i_diam, i_axle, i_diam), 2),
            '  <collision name="tyre">',
            f"    <geometry><sphere><radius>{r:.6g}</radius></sphere></geometry>",
            "    <surface><friction><ode>"
            f"<mu>{rover.wheel_friction:.6g}</mu><mu2>{rover.wheel_friction:.6g}</mu2>"
            "</ode></friction></surface>",
            "  </collision>",
            '  <visual name="tyre">',
            f"    <pose>0 0 0 {math.pi / 2:.6g} 0 0</pose>",
            f"    <geometry><cylinder><radius>{r:.6g}</radius><length>{ww:.6g}</length>"
            "</cylinder></geometry>",
            f"    {_material((0.25, 0.25, 0.25, 1.0))}",
            "  </visual>",
            "</link>",
            f'<joint name="{joint}" type="revolute">',
            "  <parent>base_link</parent>",
            f"  <child>{link_name}</child>",
            "  <axis>",
            "    <xyz>0 1 0</xyz>",
            "    <limit><lower>-1e16</lower><upper>1e16</upper>"
            f"<effort>{rover.wheel_max_torque:.6g}</effort></limit>",
            "    <dynamics><damping>0.05</damping></dynamics>",
            "  </axis>",
            "</joint>",
        ], 4)
    left = [j for i, j in enumerate(wheel_joints) if i % 2 == 0]
    right = [j for i, j in enumerate(wheel_joints) if i % 2 == 1]
    plugins = [
        '<plugin filename="gz-sim-diff-drive-system" name="gz::sim::systems::DiffDrive">',
        *[f"  <left_joint>{j}</left_joint>" for j in left],
        *[f"  <right_joint>{j}</right_joint>" for j in right],
        f"  <wheel_separation>{sep:.6g}</wheel_separation>",
        f"  <wheel_radius>{r:.6g}</wheel_radius>",
        f"  <max_linear_velocity>{max_linear:.6g}</max_linear_velocity>",
        f"  <min_linear_velocity>{-max_linear:.6g}</min_linear_velocity>",
        f"  <max_angular_velocity>{max_angular:.6g}</max_angular_velocity>",
        f"  <min_angular_velocity>{-max_angular:.6g}</min_angular_velocity>",
        f"  <max_linear_acceleration>{accel_limit:.6g}</max_linear_acceleration>",
        f"  <min_linear_acceleration>{-accel_limit:.6g}</min_linear_acceleration>",
        f"  <topic>{ns}/cmd_vel</topic>",
        f"  <odom_topic>{ns}/odom</odom_topic>",
        f"  <tf_topic>{ns}/tf</tf_topic>",
        "  <frame_id>odom</frame_id>",
        "  <child_frame_id>base_link</child_frame_id>",
        "  <odom_publish_frequency>50</odom_publish_frequency>",
        "</plugin>",
        '<plugin filename="gz-sim-joint-state-publisher-system" '
        'name="gz::sim::systems::JointStatePublisher">',
        f"  <topic>{ns}/joint_states</topic>",
        *[f"  <joint_name>{j}</joint_name>" for j in wheel_joints],
        "</plugin>",
        '<plugin filename="gz-sim-odometry-publisher-system" '
        'name="gz::sim::systems::OdometryPublisher">',
        "  <odom_frame>map</odom_frame>",
        "  <robot_base_frame>base_link</robot_base_frame>",
        f"  <odom_topic>{ns}/sim/ground_truth</odom_topic>",
        f"  <tf_topic>{ns}/sim/ground_truth_tf</tf_topic>",
        "  <odom_publish_frequency>50</odom_publish_frequency>",
        "  <dimensions>3</dimensions>",
        "</plugin>",
    ]
    lines += _indent(plugins, 4)
    lines += ["  </model>", "</sdf>", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# World
# ---------------------------------------------------------------------------------------
def _static_model(name: str, pose: str, shapes: list[tuple[str, str, Sequence[float], bool]]
                  ) -> list[str]:
    """A static model of one link; shapes: (name, geometry XML, rgba, collides)."""
    out = [f'<model name="{escape(name)}">', "  <static>true</static>",
           f"  <pose>{pose}</pose>", '  <link name="link">']
    for sname, geom, rgba, collides in shapes:
        if collides:
            out += [f'    <collision name="{sname}">', f"      {geom}", "    </collision>"]
        out += [f'    <visual name="{sname}">', f"      {geom}", f"      {_material(rgba)}",
                "    </visual>"]
    out += ["  </link>", "</model>"]
    return out


def _geom(pose: str, shape: str) -> str:
    return f"<pose>{pose}</pose><geometry>{shape}</geometry>"


def _object_models(obj: SiteObject, base: tuple[float, float, float]) -> list[str]:
    """SDF of a site object at world position ``base`` (its pad-relative origin)."""
    x, y, z = base
    yaw = math.radians(obj.yaw_deg)
    nm = f"obj_{obj.name}"
    if obj.type == "box":
        hx, hy, hz = obj.size
        return _static_model(nm, f"{_f(x, y, z + hz)} 0 0 {yaw:.6g}", [
            ("body", _geom("0 0 0 0 0 0", f"<box><size>{_f(2 * hx, 2 * hy, 2 * hz)}</size>"
                                          "</box>"), obj.rgba, True)])
    if obj.type == "cylinder":
        r, h = obj.size
        return _static_model(nm, f"{_f(x, y, z + h / 2)} 0 0 {yaw:.6g}", [
            ("body", _geom("0 0 0 0 0 0", f"<cylinder><radius>{r:.6g}</radius>"
                                          f"<length>{h:.6g}</length></cylinder>"),
             obj.rgba, True)])
    if obj.type == "sphere":
        (r,) = obj.size
        return _static_model(nm, f"{_f(x, y, z + r)} 0 0 0", [
            ("body", _geom("0 0 0 0 0 0", f"<sphere><radius>{r:.6g}</radius></sphere>"),
             obj.rgba, True)])
    if obj.type == "gauge":
        face_r, post_h = obj.size
        zf = post_h + face_r
        dy, dz, roll, half = gauge_needle(face_r, obj.needle_deg)
        return _static_model(nm, f"{_f(x, y, z)} 0 0 {yaw:.6g}", [
            ("post", _geom(f"0 0 {post_h / 2:.6g} 0 0 0",
                           f"<cylinder><radius>0.03</radius><length>{post_h:.6g}</length>"
                           "</cylinder>"), (0.3, 0.3, 0.3, 1.0), True),
            ("face", _geom(f"0.04 0 {zf:.6g} 0 {math.pi / 2:.6g} 0",
                           f"<cylinder><radius>{face_r:.6g}</radius><length>0.04</length>"
                           "</cylinder>"), obj.rgba, True),
            ("needle", _geom(f"0.062 {dy:.6g} {zf + dz:.6g} {math.radians(roll):.6g} 0 0",
                             f"<box><size>{_f(0.008, face_r * 0.1, 2 * half)}</size></box>"),
             (0.05, 0.05, 0.05, 1.0), False),
        ])
    if obj.type == "berm":
        thick, height = obj.size
        n = obj.segments
        seg_len = 2 * obj.radius * math.sin(math.pi / n) * 1.05
        shapes = []
        for i in range(n):
            a = 2 * math.pi * i / n
            rel = (math.degrees(a) - obj.gap_azimuth_deg + 180.0) % 360.0 - 180.0
            if obj.gap_deg > 0 and abs(rel) < obj.gap_deg / 2:
                continue
            px, py = obj.radius * math.cos(a), obj.radius * math.sin(a)
            shapes.append((f"segment_{i}", _geom(f"{_f(px, py, height / 2)} 0 0 {a:.6g}",
                                                 f"<box><size>{_f(thick, seg_len, height)}"
                                                 "</size></box>"), obj.rgba, True))
        return _static_model(nm, f"{_f(x, y, z)} 0 0 0", shapes)
    raise ValueError(f"unknown object type {obj.type!r}")


def _rocks_model(rocks: Sequence[Rock]) -> list[str]:
    shapes = []
    for i, rk in enumerate(rocks):
        shapes.append((f"rock_{i}", _geom(f"{_f(rk.x, rk.y, rk.z)} 0 0 {rk.yaw:.6g}",
                                          f"<ellipsoid><radii>{_f(*rk.semi_axes)}</radii>"
                                          "</ellipsoid>"), (0.45, 0.44, 0.42, 1.0), True))
    return _static_model("rocks", "0 0 0 0 0 0", shapes)


def world_sdf(world: World, heightmap: Heightmap, rocks: Sequence[Rock],
              image: HeightmapImage, heightmap_uri: str = HEIGHTMAP_FILE,
              step: float = 0.004) -> str:
    """The SDF world: physics, systems, lunar gravity, the sun, terrain, rocks, sites."""
    sun = world.sun.direction()
    extent = 0.5 * math.hypot(*heightmap.size)
    si = world.sun.intensity
    lines = [
        '<?xml version="1.0"?>',
        f'<sdf version="{SDF_VERSION}">',
        f'  <world name="{escape(world.name)}">',
        f"    <!-- generated by ilrs export-gazebo from world '{escape(world.name)}'"
        ": do not edit -->",
        '    <physics name="lunar" type="dart">',
        f"      <max_step_size>{step:.6g}</max_step_size>",
        "      <real_time_factor>1</real_time_factor>",
        "    </physics>",
        '    <plugin filename="gz-sim-physics-system" name="gz::sim::systems::Physics"/>',
        '    <plugin filename="gz-sim-sensors-system" name="gz::sim::systems::Sensors">',
        "      <render_engine>ogre2</render_engine>",
        "    </plugin>",
        '    <plugin filename="gz-sim-imu-system" name="gz::sim::systems::Imu"/>',
        '    <plugin filename="gz-sim-scene-broadcaster-system" '
        'name="gz::sim::systems::SceneBroadcaster"/>',
        '    <plugin filename="gz-sim-user-commands-system" '
        'name="gz::sim::systems::UserCommands"/>',
        f"    <gravity>0 0 {-world.gravity:.6g}</gravity>",
        "    <magnetic_field>0 0 0</magnetic_field>",
        '    <atmosphere type="adiabatic"/>',
        "    <scene>",
        "      <ambient>0.04 0.04 0.045 1</ambient>",
        "      <background>0 0 0 1</background>",
        "      <shadows>true</shadows>",
        "      <grid>false</grid>",
        "    </scene>",
        '    <light name="sun" type="directional">',
        f"      <pose>{_f(*(sun * extent))} 0 0 0</pose>",
        "      <cast_shadows>true</cast_shadows>",
        f"      <intensity>{si:.6g}</intensity>",
        f"      <diffuse>{_f(1.0, 1.0, 0.97, 1.0)}</diffuse>",
        "      <specular>0.1 0.1 0.1 1</specular>",
        f"      <direction>{_f(*(-sun))}</direction>",
        "    </light>",
        '    <model name="terrain">',
        "      <static>true</static>",
        '      <link name="link">',
    ]
    hm = (f"<heightmap><uri>{escape(heightmap_uri)}</uri><size>{_f(*image.size)}</size>"
          f"<pos>{_f(*image.pos)}</pos>")
    lines += [
        '        <collision name="terrain">',
        f"          <geometry>{hm}</heightmap></geometry>",
        "          <surface><friction><ode><mu>0.5</mu><mu2>0.5</mu2></ode></friction>"
        "</surface>",
        "        </collision>",
        '        <visual name="terrain">',
        f"          <geometry>{hm}</heightmap></geometry>",
        f"          {_material((0.52, 0.51, 0.49, 1.0))}",
        "        </visual>",
        "      </link>",
        "    </model>",
    ]
    if rocks:
        lines += _indent(_rocks_model(rocks), 4)
    for site in world.sites.values():
        for obj in site.objects:
            lines += _indent(_object_models(obj, site.to_world(obj.position, heightmap)), 4)
    lines += ["  </world>", "</sdf>", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Bridge
# ---------------------------------------------------------------------------------------
GZ_TYPES = {
    "rosgraph_msgs/msg/Clock": "gz.msgs.Clock",
    "geometry_msgs/msg/Twist": "gz.msgs.Twist",
    "nav_msgs/msg/Odometry": "gz.msgs.Odometry",
    "tf2_msgs/msg/TFMessage": "gz.msgs.Pose_V",
    "sensor_msgs/msg/JointState": "gz.msgs.Model",
    "sensor_msgs/msg/Imu": "gz.msgs.IMU",
    "sensor_msgs/msg/Image": "gz.msgs.Image",
    "sensor_msgs/msg/CameraInfo": "gz.msgs.CameraInfo",
}
"""ROS message type -> the Gazebo Transport type ros_gz_bridge converts it from/to."""


def bridge_config(robots: Sequence[str] = ("rover1",), ground_truth: bool = True
                  ) -> list[dict[str, Any]]:
    """``ros_gz_bridge`` entries: ``/clock`` once, then per robot its topic contract."""

    def entry(ros: str, gz: str, ros_type: str, direction: str) -> dict[str, Any]:
        return {"ros_topic_name": ros, "gz_topic_name": gz, "ros_type_name": ros_type,
                "gz_type_name": GZ_TYPES[ros_type], "direction": direction}

    out = [entry("/clock", "/clock", "rosgraph_msgs/msg/Clock", "GZ_TO_ROS")]
    for robot in robots:
        ns = f"/{robot}"
        out += [
            entry(f"{ns}/{GAZEBO_CMD_VEL}", f"{ns}/cmd_vel", "geometry_msgs/msg/Twist",
                  "ROS_TO_GZ"),
            entry(f"{ns}/odom", f"{ns}/odom", "nav_msgs/msg/Odometry", "GZ_TO_ROS"),
            entry("/tf", f"{ns}/tf", "tf2_msgs/msg/TFMessage", "GZ_TO_ROS"),
            entry(f"{ns}/joint_states", f"{ns}/joint_states", "sensor_msgs/msg/JointState",
                  "GZ_TO_ROS"),
            entry(f"{ns}/imu/data", f"{ns}/imu/data", "sensor_msgs/msg/Imu", "GZ_TO_ROS"),
        ]
        for topic in ("stereo/left", "stereo/right", "camera"):
            out += [
                entry(f"{ns}/{topic}/image_raw", f"{ns}/{topic}/image_raw",
                      "sensor_msgs/msg/Image", "GZ_TO_ROS"),
                entry(f"{ns}/{topic}/camera_info", f"{ns}/{topic}/camera_info",
                      "sensor_msgs/msg/CameraInfo", "GZ_TO_ROS"),
            ]
        if ground_truth:
            out.append(entry(f"{ns}/sim/ground_truth", f"{ns}/sim/ground_truth",
                             "nav_msgs/msg/Odometry", "GZ_TO_ROS"))
    return out


def base_parameters(base: Mapping[str, Any]) -> dict[str, Any]:
    """gazebo_base's parameter file: the base driver's values of :data:`BASE_PARAMETERS`."""
    values = {k: base[k] for k in BASE_PARAMETERS if k in base}
    return {"/**/gazebo_base": {"ros__parameters": values}}


# ---------------------------------------------------------------------------------------
# The whole export
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GazeboExport:
    """Every file of an export: name -> bytes."""

    files: dict[str, bytes]

    def write(self, out_dir: Path) -> list[Path]:
        """Write the files into ``out_dir`` (created); returns their paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, data in sorted(self.files.items()):
            p = out_dir / name
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(p)
            paths.append(p)
        return paths


def _rover_params(path: Path | None) -> Mapping[str, Any]:
    p = Path(path) if path else config_path("params", "rover_base.yaml")
    data = yaml.safe_load(p.read_text()) or {}
    node = next(iter(data.values()), {}) if len(data) == 1 else data
    return node.get("ros__parameters", node) if isinstance(node, Mapping) else {}


def build_export(world: World | str | Path, robots: Sequence[str] = ("rover1",),
                 rover_params: Path | None = None, sim_params: Path | None = None,
                 heightmap_side_px: int | None = None) -> GazeboExport:
    """Generate the export of ``world`` (a World, a shipped name or a YAML path)."""
    if not isinstance(world, World):
        world = world_mod.load_world(world)
    if not robots or len(set(robots)) != len(robots):
        raise ValueError(f"robots must be distinct names, got {list(robots)}")
    base = _rover_params(rover_params)
    rover = RoverSpec.from_params(base)
    sensors = SensorSettings.from_sim_params(sim_params)
    hm = world_mod.build_heightmap(world)
    rocks = world_mod.rocks(world, hm)
    image = heightmap_image(hm, heightmap_side_px)
    files: dict[str, bytes] = {
        HEIGHTMAP_FILE: encode_png16(image.pixels),
        WORLD_FILE: world_sdf(world, hm, rocks, image).encode(),
    }
    wheels = tuple(base.get("wheels", DEFAULT_WHEEL_JOINTS))
    pos, quat = start_pose(world, hm, rover)
    roll, pitch, yaw = quat2euler(quat)
    spawn: dict[str, Any] = {"world": world.name, "robots": {}}
    frames = sensor_frames(rover, sensors)
    for i, robot in enumerate(robots):
        model = rover_model_sdf(
            rover, robot, sensors, wheels,
            effective_track_width=base.get("effective_track_width"),
            max_linear=float(base.get("max_linear", 0.5)),
            max_angular=float(base.get("max_angular", 0.8)),
            accel_limit=float(base.get("stop_accel", 1.5)))
        files[f"{robot}.sdf"] = model.encode()
        # further robots start beside the first, 4 m apart to its left
        dx = -4.0 * i * math.sin(yaw)
        dy = 4.0 * i * math.cos(yaw)
        x, y = float(pos[0] + dx), float(pos[1] + dy)
        z = float(pos[2] + hm.height_at(x, y) - hm.height_at(pos[0], pos[1]))
        spawn["robots"][robot] = {
            "model": f"{robot}.sdf",
            "pose": [round(v, 6) + 0.0 for v in (x, y, z, roll, pitch, yaw)],
            "static_frames": {name: {"parent": "base_link",
                                     "xyz": [round(v, 6) for v in xyz],
                                     "quaternion_xyzw": [round(v, 6) for v in q]}
                              for name, (xyz, q) in frames.items()},
        }
    files[BRIDGE_FILE] = ("# ros_gz_bridge parameter_bridge configuration, generated by "
                          "ilrs export-gazebo: do not edit\n"
                          + yaml.safe_dump(bridge_config(robots), sort_keys=False)).encode()
    files[BASE_PARAMS_FILE] = ("# gazebo_base's parameters (the base driver's timeout and "
                               "limits), generated by ilrs export-gazebo: do not edit\n"
                               + yaml.safe_dump(base_parameters(base))).encode()
    files[ROBOTS_FILE] = ("# spawn poses and sensor frames for gazebo.launch.py, generated by "
                          "ilrs export-gazebo: do not edit\n"
                          + yaml.safe_dump(spawn, sort_keys=False)).encode()
    return GazeboExport(files)


def write_export(world: World | str | Path, out_dir: Path, robots: Sequence[str] = ("rover1",),
                 **kw: Any) -> list[Path]:
    """Generate the export of ``world`` and write it into ``out_dir``."""
    return build_export(world, robots, **kw).write(out_dir)
