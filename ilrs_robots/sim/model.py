"""MJCF (MuJoCo XML) generation from a world description and a rover specification.

The terrain is a MuJoCo height field named ``terrain``. Its elevation data is large (801 x 801
nodes for the default world), so by default the XML only declares its shape and
:func:`set_hfield` copies the heights into the compiled model (``embed_elevation=True``
writes them into the XML instead, for a self-contained file).

Rendering a large terrain at full resolution is too slow for software OpenGL (1.28 M
triangles for the default world), so on a terrain larger than the render patch the collision
height field is hidden (geom group 3) and two render-only height fields (no contacts) stand
in for it: ``terrain_coarse`` covers the whole world at a coarse node spacing, and
``terrain_fine``, a square patch at full resolution, is moved to follow the camera
(:class:`RenderLod`, :func:`fill_render_terrain`). The coarse field is sunk well below the
terrain under the patch so it can never show through it.

Rover frame (``base_link``): REP-103, origin midway between the wheel axles at axle height.
Wheel joints are hinges about +y, so a positive wheel speed drives the rover forward.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
from transforms3d.quaternions import mat2quat

from ilrs_robots.core.terrain import Heightmap, Rock
from ilrs_robots.sim.world import SiteObject, World

WHEEL_NAMES = ("front_left", "front_right", "middle_left", "middle_right", "rear_left",
               "rear_right")
"""Wheel index convention 0..5 shared with the RoboClaw bus binding."""

STEREO_CAMERAS = ("nav_left", "nav_right")
MAST_CAMERA = "mast"
HFIELD_BASE = 2.0  # m of solid below the lowest terrain point
TEXTURE_PERIOD = 4.0  # m, repeat of the regolith texture on the ground
RENDER_PATCH = 64.0  # m, side of the full-resolution render patch (ahead of the camera)
RENDER_COARSE = 4.0  # m, node spacing of the whole-world render terrain
HIDDEN_GROUP = 5  # geom group the default render options hide (culled far rocks)
WHEEL_SOIL_SOLIMP = (0.02, 0.95, 0.01)
"""Impedance of a wheel's contact (MuJoCo ``solimp`` dmin, dmax, width m): regolith is
compliant and stiffens as the wheel sinks in, so the impedance ramps from almost nothing at
first touch to 0.95 at 1 cm of sinkage (a pressure-sinkage curve), and a loaded wheel rests a
few mm deep. With a near-rigid contact (micrometres of static penetration) a sliding wheel
loses the ground: MuJoCo's convex friction model pushes sliding contacts apart, so in a
skid-steer turn the rover hopped and its wheels touched the ground in ~1/4 of the steps."""
WHEEL_SOIL_MARGIN = 0.003
"""m, the static sinkage of a wheel under its share of the rover's weight in lunar gravity
with :data:`WHEEL_SOIL_SOLIMP`: the wheel-soil contact starts this far out, so the loaded
wheel rolls at ``wheel_radius`` (its effective rolling radius on regolith, as calibrated for
odometry) with the axle at ``wheel_radius`` above the surface."""


@dataclass
class RoverSpec:
    """Geometry, masses, drive and sensor placement of the 6-wheel skid-steer rover."""

    chassis_length: float = 1.5
    chassis_width: float = 1.0
    chassis_height: float = 0.4
    chassis_clearance: float = 0.35  # chassis bottom above the ground on flat terrain
    chassis_mass: float = 390.0
    wheel_radius: float = 0.25
    wheel_width: float = 0.2
    wheel_mass: float = 10.0
    track_width: float = 1.2
    axle_x: tuple[float, float, float] = (0.6, 0.0, -0.6)
    wheel_max_torque: float = 30.0  # N m per wheel
    # kg m^2, motor rotor inertia reflected through the gearbox (~1e-4 kg m^2 x ratio 70^2);
    # it also keeps the speed loop stable at the physics step when the torque saturates
    wheel_armature: float = 0.5
    wheel_kv: float = 150.0  # velocity actuator gain, N m per rad/s of speed error
    wheel_friction: float = 0.5  # Coulomb coefficient, wheel on regolith
    nav_camera_height: float = 1.5  # above the ground on flat terrain
    nav_camera_x: float = 0.55
    stereo_baseline: float = 0.3
    nav_camera_pitch_deg: float = 15.0  # downwards
    nav_camera_fovy_deg: float = 60.0
    mast_camera_height: float = 1.7
    mast_camera_pitch_deg: float = 5.0
    mast_camera_fovy_deg: float = 40.0
    imu_position: tuple[float, float, float] = (0.0, 0.0, 0.3)
    headlights: bool = True

    @property
    def total_mass(self) -> float:
        """Chassis plus wheels, kg."""
        return self.chassis_mass + 6 * self.wheel_mass

    def wheel_offsets(self) -> list[tuple[float, float]]:
        """(x, y) of each wheel centre in ``base_link``, in :data:`WHEEL_NAMES` order."""
        half = self.track_width / 2.0
        return [(x, side) for x in self.axle_x for side in (half, -half)]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RoverSpec:
        """Build from a parameter mapping (field names as keys; unknown keys ignored).

        Accepts a ROS parameter file's layout too: ``{node: {ros__parameters: {...}}}``,
        with an optional ``rover.`` prefix or nested ``rover`` mapping.
        """
        p: Mapping[str, Any] = params
        if len(p) == 1:
            (only,) = p.values()
            if isinstance(only, Mapping) and "ros__parameters" in only:
                p = only["ros__parameters"]
        if "ros__parameters" in p:
            p = p["ros__parameters"]
        if isinstance(p.get("rover"), Mapping):
            p = p["rover"]
        flat = {k.removeprefix("rover."): v for k, v in p.items()}
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in flat:
                continue
            v = flat[f.name]
            if f.name == "axle_x":
                if (not isinstance(v, list | tuple) or len(v) != 3
                        or not all(_is_num(x) for x in v)):
                    raise ValueError(f"parameter 'axle_x' must be 3 numbers, got {v!r}")
                kw[f.name] = tuple(float(x) for x in v)
            elif f.name == "imu_position":
                if (not isinstance(v, list | tuple) or len(v) != 3
                        or not all(_is_num(x) for x in v)):
                    raise ValueError(f"parameter 'imu_position' must be 3 numbers, got {v!r}")
                kw[f.name] = tuple(float(x) for x in v)
            elif f.name == "headlights":
                if not isinstance(v, bool):
                    raise ValueError(f"parameter 'headlights' must be a bool, got {v!r}")
                kw[f.name] = v
            else:
                if not _is_num(v) or float(v) <= 0 and f.name != "nav_camera_pitch_deg" \
                        and f.name != "mast_camera_pitch_deg":
                    raise ValueError(f"parameter '{f.name}' must be a positive number, "
                                     f"got {v!r}")
                kw[f.name] = float(v)
        return cls(**kw)


def _is_num(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def _f(*v: float) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def _cam_xyaxes(pitch_down_deg: float) -> str:
    """MuJoCo camera axes (image right, image up) for a camera looking along +x of its body,
    pitched down: the camera looks along its -z axis."""
    p = math.radians(pitch_down_deg)
    return _f(0, -1, 0, math.sin(p), 0, math.cos(p))


def hfield_data(heightmap: Heightmap) -> tuple[np.ndarray, tuple[float, float, float, float],
                                               float]:
    """(normalised 0..1 elevation, hfield size (rx, ry, elevation_z, base_z), z of the
    hfield geom) for ``heightmap``; MuJoCo row 0 is the -y edge, like the heightmap's."""
    h = heightmap.heights
    lo = float(h.min())
    span = float(h.max()) - lo
    elev = max(span, 1e-3)
    data = (h - lo) / elev
    sx, sy = heightmap.size
    return data, (sx / 2.0, sy / 2.0, elev, HFIELD_BASE), lo


@dataclass(frozen=True)
class RenderLod:
    """Layout of the render-only terrain: a full-resolution patch of ``patch_cells`` x
    ``patch_cells`` cells (grid ``step``-aligned, so the texture and the coarse grid line up
    when it moves) and a whole-world field with one node every ``k`` heightmap nodes."""

    k: int  # heightmap nodes per coarse cell
    step: int  # heightmap nodes the patch moves by (a multiple of k and of the texture)
    patch_cells: tuple[int, int]  # (x, y) cells of the patch
    coarse_nodes: tuple[int, int]  # (x, y) nodes of the coarse field
    lo: float  # lowest terrain height, m
    span: float  # terrain height range, m
    sink: float  # m the coarse field is sunk under the patch
    resolution: float  # heightmap node spacing, m

    @property
    def patch_size(self) -> tuple[float, float]:
        """(x, y) extent of the fine patch, m."""
        return (self.patch_cells[0] * self.resolution, self.patch_cells[1] * self.resolution)

    @property
    def coarse_size(self) -> tuple[float, float]:
        """(x, y) extent of the coarse field, m (may pass the world's far edges by < 1 cell)."""
        c = self.k * self.resolution
        return ((self.coarse_nodes[0] - 1) * c, (self.coarse_nodes[1] - 1) * c)

    def patch_origin(self, heightmap: Heightmap, x: float, y: float) -> tuple[int, int]:
        """Node index (ix0, iy0) of the patch's south-west corner for a patch centred as
        near to (x, y) as the grid and the world's edges allow."""
        ny, nx = heightmap.shape
        out = []
        for v, o, n, cells in ((x, heightmap.origin[0], nx, self.patch_cells[0]),
                               (y, heightmap.origin[1], ny, self.patch_cells[1])):
            i = (v - o) / self.resolution - cells / 2.0
            hi = (n - 1 - cells) // self.step
            out.append(self.step * int(np.clip(round(i / self.step), 0, max(hi, 0))))
        return out[0], out[1]


def render_lod(heightmap: Heightmap, patch: float = RENDER_PATCH,
               coarse: float = RENDER_COARSE) -> RenderLod | None:
    """The render-only terrain layout for ``heightmap``, or None when the terrain is small
    enough to render whole (``patch`` <= 0 disables it)."""
    if patch <= 0:
        return None
    res = heightmap.resolution
    ny, nx = heightmap.shape
    k = max(1, int(round(coarse / res)))
    tex = int(round(TEXTURE_PERIOD / res))
    step = math.lcm(k, tex) if tex >= 1 and abs(tex * res - TEXTURE_PERIOD) < 1e-6 else k
    cells = step * max(1, math.ceil(patch / (step * res) - 1e-9))
    if nx - 1 <= cells and ny - 1 <= cells:
        return None
    pcx = min(cells, (nx - 1) // step * step)
    pcy = min(cells, (ny - 1) // step * step)
    if pcx < step or pcy < step:
        return None
    h = heightmap.heights
    lo = float(h.min())
    span = max(float(h.max()) - lo, 1e-3)
    sink = max(10.0, 10.0 * k * res)
    coarse_nodes = (math.ceil((nx - 1) / k) + 1, math.ceil((ny - 1) / k) + 1)
    return RenderLod(k, step, (pcx, pcy), coarse_nodes, lo, span, sink, res)


def fill_render_terrain(model: Any, heightmap: Heightmap, lod: RenderLod,
                        origin: tuple[int, int]) -> tuple[float, float]:
    """Fill the render-only height fields of the compiled model for a fine patch whose
    south-west node is ``origin`` (see :meth:`RenderLod.patch_origin`), and move the patch
    geom there. Returns the patch centre (x, y). The caller re-uploads both fields to each
    rendering context (``mujoco.mjr_uploadHField``)."""
    import mujoco

    ix0, iy0 = origin
    pcx, pcy = lod.patch_cells
    h = heightmap.heights
    fine = (h[iy0:iy0 + pcy + 1, ix0:ix0 + pcx + 1] - lod.lo) / lod.span
    _write_hfield(model, "terrain_fine", fine)
    ny, nx = h.shape
    k = lod.k
    cols = np.minimum(np.arange(lod.coarse_nodes[0]) * k, nx - 1)
    rows = np.minimum(np.arange(lod.coarse_nodes[1]) * k, ny - 1)
    coarse = (h[np.ix_(rows, cols)] - (lod.lo - lod.sink)) / (lod.span + lod.sink)
    # nodes strictly inside the patch go to the bottom: the patch alone shows there
    coarse[iy0 // k + 1:(iy0 + pcy) // k, ix0 // k + 1:(ix0 + pcx) // k] = 0.0
    _write_hfield(model, "terrain_coarse", coarse)
    cx = heightmap.origin[0] + (ix0 + pcx / 2.0) * lod.resolution
    cy = heightmap.origin[1] + (iy0 + pcy / 2.0) * lod.resolution
    gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "terrain_fine")
    model.geom_pos[gid, :2] = (cx, cy)
    return cx, cy


def _write_hfield(model: Any, name: str, data: np.ndarray) -> None:
    import mujoco

    hid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_HFIELD, name)
    adr = model.hfield_adr[hid]
    n = model.hfield_nrow[hid] * model.hfield_ncol[hid]
    if data.size != n:
        raise ValueError(f"hfield {name!r} holds {n} nodes, got {data.size}")
    model.hfield_data[adr:adr + n] = data.ravel().astype(np.float32)


def start_pose(world: World, heightmap: Heightmap, rover: RoverSpec,
               x: float | None = None, y: float | None = None, yaw: float | None = None,
               drop: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(position, quaternion wxyz) of ``base_link`` at (x, y) heading ``yaw`` (rad), tilted
    to the terrain's normal there, with every wheel just above the ground (``drop`` m);
    defaults from the world's rover start."""
    x = world.rover_start.position[0] if x is None else x
    y = world.rover_start.position[1] if y is None else y
    yaw = math.radians(world.rover_start.yaw_deg) if yaw is None else yaw
    zaxis = heightmap.normal_at(x, y)
    heading = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    xaxis = heading - zaxis * float(heading @ zaxis)
    xaxis /= np.linalg.norm(xaxis)
    R = np.column_stack([xaxis, np.cross(zaxis, xaxis), zaxis])
    pos = np.array([x, y, float(heightmap.height_at(x, y))])
    r = rover.wheel_radius
    lift = -math.inf
    for wx, wy in rover.wheel_offsets():
        w = pos + R @ np.array([wx, wy, 0.0])
        nz = heightmap.normal_at(w[0], w[1])[2]
        lift = max(lift, float(heightmap.height_at(w[0], w[1])) + r / nz - w[2])
    pos[2] += lift + drop
    return pos, mat2quat(R)


def gauge_needle(face_r: float, needle_deg: float) -> tuple[float, float, float, float]:
    """A gauge needle from the hub to 0.8 of the face radius pointing ``needle_deg``
    (clockwise from 12 o'clock seen from the front, the face looking along the gauge's +x):
    its centre's offset (y, z) in the gauge's frame, its roll about x (degrees, the bar's
    long axis is z) and its half-length."""
    a = math.radians(needle_deg)
    half = 0.4 * face_r
    # seen from the front (looking along -x, z up) the viewer's right is +y
    return half * math.sin(a), half * math.cos(a), -needle_deg, half


def _object_xml(obj: SiteObject, base: tuple[float, float, float]) -> list[str]:
    x, y, z = base
    rgba = _f(*obj.rgba)
    nm = obj.name
    euler = f'euler="0 0 {obj.yaw_deg:.6g}"'
    if obj.type == "box":
        hx, hy, hz = obj.size
        return [f'<geom name="obj_{nm}" class="object" type="box" size="{_f(hx, hy, hz)}" '
                f'pos="{_f(x, y, z + hz)}" {euler} rgba="{rgba}"/>']
    if obj.type == "cylinder":
        r, h = obj.size
        return [f'<geom name="obj_{nm}" class="object" type="cylinder" size="{_f(r, h / 2)}" '
                f'pos="{_f(x, y, z + h / 2)}" rgba="{rgba}"/>']
    if obj.type == "sphere":
        (r,) = obj.size
        return [f'<geom name="obj_{nm}" class="object" type="sphere" size="{_f(r)}" '
                f'pos="{_f(x, y, z + r)}" rgba="{rgba}"/>']
    if obj.type == "gauge":
        face_r, post_h = obj.size
        zf = z + post_h + face_r
        dy, dz, roll, half = gauge_needle(face_r, obj.needle_deg)
        # face: a light disc whose normal points along yaw, in a dark bezel; needle: a dark
        # bar from the hub towards `needle_deg` (clockwise from 12 o'clock, seen from the front)
        return [
            f'<body name="gauge_{nm}" pos="{_f(x, y, z)}" {euler}>',
            f'  <geom name="obj_{nm}_post" class="object" type="cylinder" '
            f'size="0.03 {post_h / 2:.6g}" pos="0 0 {post_h / 2:.6g}" rgba=".3 .3 .3 1"/>',
            f'  <geom name="obj_{nm}_bezel" class="visual" type="cylinder" '
            f'size="{_f(face_r * 1.08, 0.02)}" pos="0.02 0 {zf - z:.6g}" euler="0 90 0" '
            f'rgba=".08 .08 .08 1"/>',
            f'  <geom name="obj_{nm}" class="object" type="cylinder" '
            f'size="{_f(face_r, 0.02)}" pos="0.04 0 {zf - z:.6g}" euler="0 90 0" '
            f'material="gauge_face" rgba="{rgba}"/>',
            f'  <geom name="obj_{nm}_needle" class="visual" type="box" '
            f'size="{_f(0.004, face_r * 0.05, half)}" '
            f'pos="{_f(0.062, dy, zf - z + dz)}" euler="{roll:.6g} 0 0" rgba=".05 .05 .05 1"/>',
            f'  <geom name="obj_{nm}_hub" class="visual" type="cylinder" '
            f'size="{_f(face_r * 0.07, 0.006)}" pos="0.064 0 {zf - z:.6g}" euler="0 90 0" '
            f'rgba=".05 .05 .05 1"/>',
            "</body>",
        ]
    if obj.type == "berm":
        thick, height = obj.size
        n = obj.segments
        seg_len = 2 * obj.radius * math.sin(math.pi / n) * 1.05
        out = []
        for i in range(n):
            a = 2 * math.pi * i / n
            rel = (math.degrees(a) - obj.gap_azimuth_deg + 180.0) % 360.0 - 180.0
            if obj.gap_deg > 0 and abs(rel) < obj.gap_deg / 2:
                continue
            px = x + obj.radius * math.cos(a)
            py = y + obj.radius * math.sin(a)
            out.append(f'<geom name="obj_{nm}_{i}" class="object" type="box" '
                       f'size="{_f(thick / 2, seg_len / 2, height / 2)}" '
                       f'pos="{_f(px, py, z + height / 2)}" euler="0 0 {math.degrees(a):.6g}" '
                       f'rgba="{rgba}"/>')
        return out
    raise ValueError(f"unknown object type {obj.type!r}")


def _rover_xml(rover: RoverSpec, pos: np.ndarray, quat: np.ndarray) -> list[str]:
    r = rover.wheel_radius
    ch_bottom = rover.chassis_clearance - r  # above axle height
    ch_z = ch_bottom + rover.chassis_height / 2
    top = ch_bottom + rover.chassis_height
    nav_z = rover.nav_camera_height - r
    mast_z = rover.mast_camera_height - r
    mast_x = rover.nav_camera_x - 0.1
    b = rover.stereo_baseline / 2
    ch_size = _f(rover.chassis_length / 2, rover.chassis_width / 2, rover.chassis_height / 2)
    mast_fromto = _f(mast_x, 0, top, mast_x, 0, mast_z)
    spoke = _f(r * 0.95, 0.02, rover.wheel_width / 2 + 0.005)
    out = [
        f'<body name="base_link" pos="{_f(*pos)}" quat="{_f(*quat)}">',
        '  <freejoint name="root"/>',
        f'  <geom name="chassis" type="box" size="{ch_size}" '
        f'pos="0 0 {ch_z:.6g}" mass="{rover.chassis_mass:.6g}" rgba=".85 .85 .8 1" '
        'friction="0.5 0.005 0.0001"/>',
        f'  <geom name="mast" class="visual" type="cylinder" fromto="{mast_fromto}" '
        'size="0.04" rgba=".3 .3 .3 1"/>',
        f'  <geom name="camera_bar" class="visual" type="box" size="0.04 {b + 0.06:.6g} 0.03" '
        f'pos="{_f(rover.nav_camera_x - 0.04, 0, nav_z)}" rgba=".2 .2 .2 1"/>',
        f'  <site name="imu" pos="{_f(*rover.imu_position)}" size="0.02"/>',
        f'  <camera name="nav_left" pos="{_f(rover.nav_camera_x, b, nav_z)}" '
        f'xyaxes="{_cam_xyaxes(rover.nav_camera_pitch_deg)}" '
        f'fovy="{rover.nav_camera_fovy_deg:.6g}"/>',
        f'  <camera name="nav_right" pos="{_f(rover.nav_camera_x, -b, nav_z)}" '
        f'xyaxes="{_cam_xyaxes(rover.nav_camera_pitch_deg)}" '
        f'fovy="{rover.nav_camera_fovy_deg:.6g}"/>',
        f'  <camera name="mast" pos="{_f(mast_x + 0.06, 0, mast_z)}" '
        f'xyaxes="{_cam_xyaxes(rover.mast_camera_pitch_deg)}" '
        f'fovy="{rover.mast_camera_fovy_deg:.6g}"/>',
        '  <camera name="chase" pos="-6 0 3" xyaxes="0 -1 0 0.45 0 0.9" fovy="50"/>',
    ]
    if rover.headlights:
        light_pos = _f(rover.nav_camera_x, 0, nav_z - 0.1)
        out.append(f'  <light name="headlight" type="spot" pos="{light_pos}" '
                   'dir="1 0 -0.35" cutoff="40" exponent="4" diffuse=".6 .6 .6" '
                   'specular="0 0 0" attenuation="1 0 0.01" castshadow="false"/>')
    for name, (wx, wy) in zip(WHEEL_NAMES, rover.wheel_offsets(), strict=True):
        out += [
            f'  <body name="wheel_{name}" pos="{_f(wx, wy, 0)}">',
            f'    <joint name="wheel_{name}" type="hinge" axis="0 1 0" damping="0.05" '
            f'armature="{rover.wheel_armature:.6g}"/>',
            f'    <geom name="wheel_{name}" class="wheel" size="{r:.6g}" '
            f'mass="{rover.wheel_mass:.6g}"/>',
            f'    <geom class="visual" type="cylinder" size="{_f(r, rover.wheel_width / 2)}" '
            'euler="90 0 0" rgba=".25 .25 .25 1"/>',
            f'    <geom class="visual" type="box" size="{spoke}" '
            'euler="90 0 0" rgba=".7 .6 .2 1"/>',
            "  </body>",
        ]
    out.append("</body>")
    return out


def build_mjcf(world: World, heightmap: Heightmap, rocks: Sequence[Rock],
               rover: RoverSpec | None = None, *, timestep: float = 0.004,
               embed_elevation: bool = False, offscreen_size: tuple[int, int] = (1280, 960),
               start: tuple[np.ndarray, np.ndarray] | None = None, cone: str = "elliptic",
               impratio: float = 10.0, shadow_size: int = 1024,
               render_patch: float = RENDER_PATCH, render_coarse: float = RENDER_COARSE,
               offsamples: int = 0, shadow_clip: float = 60.0,
               wheel_solimp: Sequence[float] = WHEEL_SOIL_SOLIMP,
               wheel_margin: float = WHEEL_SOIL_MARGIN) -> str:
    """The MJCF XML of ``world`` with its terrain, rocks, site objects, sun and the rover.

    Unless ``embed_elevation`` is set, the hfield heights must be copied into the compiled
    model with :func:`set_hfield` (and, on a large terrain, the render-only fields with
    :func:`fill_render_terrain`). ``start`` overrides the rover's (position, quat wxyz).
    ``shadow_size`` (texels) of the sun's shadow map trades shadow sharpness for render time;
    ``shadow_clip`` (m) is the half-width of the square the shadow map covers (centred on the
    sun light's position, which the renderer keeps over the camera). ``render_patch`` and
    ``render_coarse`` (m) lay out the render-only terrain (:func:`render_lod`; 0 disables
    it). ``offsamples`` is the multisampling of offscreen images (0: none, fastest).
    ``wheel_solimp`` and ``wheel_margin`` set the wheels' contact with the ground (defaults
    :data:`WHEEL_SOIL_SOLIMP`, :data:`WHEEL_SOIL_MARGIN`).
    """
    rover = rover or RoverSpec()
    data, hsize, hz = hfield_data(heightmap)
    lod = render_lod(heightmap, render_patch, render_coarse)
    cx, cy = heightmap.center
    ny, nx = heightmap.shape
    extent = 0.5 * math.hypot(*heightmap.size)
    sun = world.sun.direction()
    pos, quat = start if start is not None else start_pose(world, heightmap, rover)
    si = world.sun.intensity
    elev_attr = ""
    if embed_elevation:
        elev_attr = f' elevation="{" ".join(f"{v:.5f}" for v in data.ravel())}"'
    texrep = max(1.0, heightmap.size[0] / 4.0)
    lines = [
        f'<mujoco model={quoteattr(world.name)}>',
        '  <compiler angle="degree" autolimits="true"/>',
        f'  <option timestep="{timestep:.6g}" gravity="0 0 {-world.gravity:.6g}" '
        f'integrator="implicitfast" cone="{cone}" impratio="{impratio:.6g}"/>',
        f'  <statistic extent="{extent:.6g}" center="{_f(cx, cy, hz)}"/>',
        '  <visual>',
        f'    <global offwidth="{offscreen_size[0]}" offheight="{offscreen_size[1]}"/>',
        f'    <quality shadowsize="{shadow_size}" offsamples="{int(offsamples)}"/>',
        f'    <map znear="{0.05 / extent:.6g}" zfar="2" '
        f'shadowclip="{shadow_clip / extent:.6g}"/>',
        '    <headlight ambient=".04 .04 .045" diffuse="0 0 0" specular="0 0 0"/>',
        '    <rgba haze="0 0 0 1" fog="0 0 0 1"/>',
        '  </visual>',
        '  <default>',
        '    <geom solref="0.02 1" solimp="0.95 0.99 0.002"/>',
        '    <default class="visual">',
        '      <geom contype="0" conaffinity="0" group="1" mass="0"/>',
        '    </default>',
        '    <default class="object">',
        '      <geom group="0" friction="0.6 0.005 0.0001"/>',
        '    </default>',
        '    <default class="wheel">',
        f'      <geom type="sphere" group="3" condim="3" priority="1" '
        f'friction="{rover.wheel_friction:.6g} 0.005 0.0001" '
        f'solimp="{_f(*wheel_solimp)}" margin="{wheel_margin:.6g}" rgba=".2 .2 .2 1"/>',
        '    </default>',
        '  </default>',
        '  <asset>',
        f'    <hfield name="terrain" nrow="{ny}" ncol="{nx}" size="{_f(*hsize)}"{elev_attr}/>',
        '    <texture name="regolith" type="2d" builtin="flat" width="512" height="512" '
        'rgb1=".52 .51 .49" rgb2=".4 .4 .38" mark="random" random="0.25" '
        'markrgb=".75 .74 .72"/>',
        f'    <material name="regolith" texture="regolith" texrepeat="{_f(texrep, texrep)}" '
        'texuniform="false" specular="0.05" shininess="0.1" reflectance="0"/>',
        '    <material name="rock" rgba=".45 .44 .42 1" specular="0.05"/>',
        # a gauge's dial is lit from within (evenly, whatever the sun and the headlights do)
        '    <material name="gauge_face" emission="0.6" specular="0"/>',
    ]
    terrain_group = 0
    if lod is not None:
        terrain_group = 3  # collision only; the render-only fields below stand in for it
        base = HFIELD_BASE
        for name, (sx, sy), (nx_, ny_), elev in (
                ("terrain_fine", lod.patch_size,
                 (lod.patch_cells[0] + 1, lod.patch_cells[1] + 1), lod.span),
                ("terrain_coarse", lod.coarse_size, lod.coarse_nodes, lod.span + lod.sink)):
            lines.append(f'    <hfield name="{name}" nrow="{ny_}" ncol="{nx_}" '
                         f'size="{_f(sx / 2, sy / 2, elev, base)}"/>')
            lines.append(f'    <material name="{name}" texture="regolith" '
                         f'texrepeat="{_f(sx / TEXTURE_PERIOD, sy / TEXTURE_PERIOD)}" '
                         'texuniform="false" specular="0.05" shininess="0.1" '
                         'reflectance="0"/>')
    lines += [
        '  </asset>',
        '  <worldbody>',
        f'    <light name="sun" type="directional" dir="{_f(*(-sun))}" '
        f'pos="{_f(*(sun * extent))}" castshadow="true" diffuse="{_f(si, si, si * 0.97)}" '
        'specular=".1 .1 .1"/>',
        f'    <geom name="terrain" type="hfield" hfield="terrain" pos="{_f(cx, cy, hz)}" '
        f'group="{terrain_group}" material="regolith" friction="0.5 0.005 0.0001"/>',
    ]
    if lod is not None:
        ox, oy = heightmap.origin
        csx, csy = lod.coarse_size
        psx, psy = lod.patch_size
        # the patch first: drawn before the coarse field, it hides the pit beneath it early
        lines += [
            f'    <geom name="terrain_fine" class="visual" type="hfield" hfield="terrain_fine" '
            f'pos="{_f(ox + psx / 2, oy + psy / 2, lod.lo)}" material="terrain_fine"/>',
            f'    <geom name="terrain_coarse" class="visual" type="hfield" '
            f'hfield="terrain_coarse" pos="{_f(ox + csx / 2, oy + csy / 2, lod.lo - lod.sink)}" '
            'material="terrain_coarse"/>',
        ]
    for i, rk in enumerate(rocks):
        lines.append(f'    <geom name="rock_{i}" type="ellipsoid" size="{_f(*rk.semi_axes)}" '
                     f'pos="{_f(rk.x, rk.y, rk.z)}" euler="0 0 {math.degrees(rk.yaw):.6g}" '
                     'material="rock" friction="0.6 0.005 0.0001"/>')
    for site in world.sites.values():
        for obj in site.objects:
            base = site.to_world(obj.position, heightmap)
            lines += ["    " + s for s in _object_xml(obj, base)]
        lines.append(f'    <site name="site_{site.name}" '
                     f'pos="{_f(*site.to_world((0, 0, 0.05), heightmap))}" size="0.1" '
                     'rgba="1 1 0 0.5" group="4"/>')
    lines += ["    " + s for s in _rover_xml(rover, pos, quat)]
    lines += ['  </worldbody>', '  <actuator>']
    for name in WHEEL_NAMES:
        lines.append(f'    <velocity name="{name}" joint="wheel_{name}" kv="{rover.wheel_kv:.6g}" '
                     f'forcerange="{_f(-rover.wheel_max_torque, rover.wheel_max_torque)}"/>')
    lines += [
        '  </actuator>',
        '  <sensor>',
        '    <accelerometer name="imu_accel" site="imu"/>',
        '    <gyro name="imu_gyro" site="imu"/>',
        '  </sensor>',
        '</mujoco>',
    ]
    return "\n".join(lines)


def set_hfield(model: Any, heightmap: Heightmap) -> None:
    """Copy ``heightmap`` into the compiled ``mujoco.MjModel`` (hfield ``terrain``)."""
    import mujoco

    hid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_HFIELD, "terrain")
    data, _, _ = hfield_data(heightmap)
    adr = model.hfield_adr[hid]
    n = model.hfield_nrow[hid] * model.hfield_ncol[hid]
    model.hfield_data[adr:adr + n] = data.ravel().astype(np.float32)
