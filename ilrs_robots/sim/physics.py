"""Rover physics in MuJoCo: wheels, ground truth, IMU and offscreen camera rendering.

Offscreen rendering uses OSMesa on machines without a display (Debian ``libosmesa6``);
``MUJOCO_GL`` must be set before mujoco is first imported, which this module does unless
the environment already chose a backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from ilrs_robots.core.geometry import wxyz_to_yaw  # noqa: E402
from ilrs_robots.core.terrain import Heightmap, Rock  # noqa: E402
from ilrs_robots.sim import world as W  # noqa: E402, N812
from ilrs_robots.sim.model import (  # noqa: E402
    HIDDEN_GROUP,
    RENDER_COARSE,
    RENDER_PATCH,
    WHEEL_NAMES,
    RoverSpec,
    build_mjcf,
    fill_render_terrain,
    render_lod,
    set_hfield,
    start_pose,
)
from ilrs_robots.sim.rock_drop import RockBump, rock_bump  # noqa: E402

ROCK_CULL_RATIO = 60.0
"""Rocks outside the fine render patch are drawn only within this many diameters of it."""


@dataclass(frozen=True)
class ImuNoise:
    """White-noise standard deviations and bias magnitudes of the simulated IMU.

    Biases are drawn once per simulator (normal, std ``*_bias_sigma``) from the seed."""

    accel_sigma: float = 0.02  # m/s^2
    gyro_sigma: float = 0.002  # rad/s
    accel_bias_sigma: float = 0.05  # m/s^2
    gyro_bias_sigma: float = 0.001  # rad/s


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics (pixels) of a rendered camera; principal point at the image
    centre in the OpenCV/ROS convention (pixel centres at integer coordinates)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def k(self) -> list[float]:
        """Row-major 3x3 camera matrix, as in ``sensor_msgs/CameraInfo.k``."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]


class RoverPhysics:
    """The MuJoCo simulation of one rover in a world.

    Deterministic for the same world, rover spec, seed and command sequence.
    """

    def __init__(self, world: W.World | str | Path, rover: RoverSpec | None = None, *,
                 timestep: float = 0.004, seed: int | None = None,
                 imu_noise: ImuNoise | None = None, heightmap: Heightmap | None = None,
                 rocks: Sequence[Rock] | None = None, settle_time: float = 1.0,
                 **mjcf_options: object) -> None:
        """Build the world's model; ``settle_time`` seconds are simulated (wheels held)
        so the rover starts at rest on the ground, then the clock is reset to 0.
        ``mjcf_options`` go to :func:`build_mjcf` (e.g. ``cone``, ``impratio``)."""
        self.world = world if isinstance(world, W.World) else W.load_world(world)
        self.rover = rover or RoverSpec()
        self.heightmap = heightmap if heightmap is not None else W.build_heightmap(self.world)
        self.rocks = list(rocks) if rocks is not None else W.rocks(self.world, self.heightmap)
        self.xml = build_mjcf(self.world, self.heightmap, self.rocks, self.rover,
                              timestep=timestep, **mjcf_options)
        self.model = mujoco.MjModel.from_xml_string(self.xml)
        set_hfield(self.model, self.heightmap)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "base_link")
        jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"wheel_{n}")
                for n in WHEEL_NAMES]
        self._wheel_qpos = np.array([m.jnt_qposadr[j] for j in jids])
        self._wheel_qvel = np.array([m.jnt_dofadr[j] for j in jids])
        self._act = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n)
                              for n in WHEEL_NAMES])
        self._accel_adr = m.sensor_adr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SENSOR,
                                                         "imu_accel")]
        self._gyro_adr = m.sensor_adr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SENSOR,
                                                        "imu_gyro")]
        self.imu_noise = imu_noise if imu_noise is not None else ImuNoise()
        self.seed = self.world.seed if seed is None else seed
        self._rng = np.random.default_rng([self.seed, 2])
        n = self.imu_noise
        self.accel_bias = self._rng.normal(0.0, n.accel_bias_sigma, 3)
        self.gyro_bias = self._rng.normal(0.0, n.gyro_bias_sigma, 3)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._residual = 0.0
        self._init_render_terrain(mjcf_options)
        mujoco.mj_forward(m, self.data)
        self._settle(settle_time)

    # -- time -------------------------------------------------------------------------------
    @property
    def timestep(self) -> float:
        """Physics step, seconds."""
        return float(self.model.opt.timestep)

    @property
    def time(self) -> float:
        """Simulated time, seconds."""
        return float(self.data.time)

    def step(self, n: int = 1) -> None:
        """Advance ``n`` physics steps."""
        if n > 0:
            mujoco.mj_step(self.model, self.data, int(n))

    def advance(self, dt: float) -> None:
        """Advance by ``dt`` seconds (whole steps; the remainder carries to the next call)."""
        total = dt + self._residual
        n = int(math.floor(total / self.timestep + 1e-9))
        self._residual = total - n * self.timestep
        self.step(n)

    def _settle(self, seconds: float) -> None:
        self.set_wheel_speeds([0.0] * 6)
        self.step(int(round(seconds / self.timestep)))
        self.data.time = 0.0
        self._residual = 0.0

    def reset_pose(self, x: float, y: float, yaw: float, settle_time: float = 1.0) -> None:
        """Put the rover at rest at (x, y) facing ``yaw`` (rad) on the terrain, and settle."""
        mujoco.mj_resetData(self.model, self.data)
        pos, quat = start_pose(self.world, self.heightmap, self.rover, x, y, yaw)
        self.data.qpos[0:3] = pos
        self.data.qpos[3:7] = quat
        mujoco.mj_forward(self.model, self.data)
        self._settle(settle_time)

    # -- wheels -----------------------------------------------------------------------------
    def set_wheel_speeds(self, rad_per_s: Sequence[float]) -> None:
        """Command the six wheel speeds (rad/s, order :data:`WHEEL_NAMES`; + = forward)."""
        v = np.asarray(rad_per_s, dtype=np.float64)
        if v.shape != (6,) or not np.all(np.isfinite(v)):
            raise ValueError(f"need 6 finite wheel speeds, got {rad_per_s!r}")
        self.data.ctrl[self._act] = v

    def wheel_speed_commands(self) -> np.ndarray:
        """The commanded wheel speeds (rad/s)."""
        return self.data.ctrl[self._act].copy()

    def wheel_positions(self) -> np.ndarray:
        """Wheel angles (rad, unwrapped), order :data:`WHEEL_NAMES`."""
        return self.data.qpos[self._wheel_qpos].copy()

    def wheel_velocities(self) -> np.ndarray:
        """Wheel speeds (rad/s)."""
        return self.data.qvel[self._wheel_qvel].copy()

    def wheel_torques(self) -> np.ndarray:
        """Motor torques (N m) applied by the actuators (within the torque limit)."""
        return self.data.actuator_force[self._act].copy()

    # -- state ------------------------------------------------------------------------------
    def ground_truth(self, local_velocity: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(position xyz, quaternion wxyz, linear velocity, angular velocity) of base_link;
        velocities in the world frame, or in base_link if ``local_velocity``."""
        pos = self.data.xpos[self._body].copy()
        quat = self.data.xquat[self._body].copy()
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_BODY, self._body,
                                 vel, int(local_velocity))
        return pos, quat, vel[3:].copy(), vel[:3].copy()

    def yaw(self) -> float:
        """Heading of base_link (rad, CCW from +x)."""
        return wxyz_to_yaw(self.data.xquat[self._body])

    def imu(self) -> tuple[np.ndarray, np.ndarray]:
        """(specific force m/s^2, angular rate rad/s) in the IMU frame (= base_link axes),
        with seeded white noise and constant bias. At rest the accelerometer reads +g up."""
        d = self.data.sensordata
        accel = d[self._accel_adr:self._accel_adr + 3].copy()
        gyro = d[self._gyro_adr:self._gyro_adr + 3].copy()
        n = self.imu_noise
        accel += self.accel_bias + self._rng.normal(0.0, n.accel_sigma, 3)
        gyro += self.gyro_bias + self._rng.normal(0.0, n.gyro_sigma, 3)
        return accel, gyro

    def contacts_with(self, geom_prefix: str) -> int:
        """Number of active contacts involving a geom whose name starts with the prefix."""
        m, count = self.model, 0
        for c in self.data.contact[:self.data.ncon]:
            for g in (c.geom1, c.geom2):
                name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
                if name.startswith(geom_prefix):
                    count += 1
        return count

    # -- cameras ----------------------------------------------------------------------------
    @property
    def camera_names(self) -> list[str]:
        """Names of the model's cameras (nav_left, nav_right, mast, chase)."""
        return [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i)
                for i in range(self.model.ncam)]

    def _camera_id(self, name: str) -> int:
        cid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        if cid < 0:
            raise KeyError(f"no camera {name!r}; known: {self.camera_names}")
        return cid

    def camera_intrinsics(self, name: str, width: int, height: int) -> CameraIntrinsics:
        """Pinhole intrinsics of camera ``name`` rendered at ``width`` x ``height``."""
        fovy = math.radians(float(self.model.cam_fovy[self._camera_id(name)]))
        f = 0.5 * height / math.tan(0.5 * fovy)
        return CameraIntrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    def camera_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """World (position, 3x3 rotation) of camera ``name``; MuJoCo camera axes: x right,
        y up, looking along -z (the ROS optical frame is x right, y down, z forward)."""
        cid = self._camera_id(name)
        return self.data.cam_xpos[cid].copy(), self.data.cam_xmat[cid].reshape(3, 3).copy()

    def render(self, camera_name: str, width: int = 640, height: int = 480) -> np.ndarray:
        """An RGB image (height x width x 3, uint8) from camera ``camera_name``.

        Images of the same size share one renderer (OpenGL context). Before drawing, the
        full-resolution terrain patch is moved where the camera looks once that got far from
        the patch centre, and the sun's shadow map is centred on the camera."""
        return self._scene_for(camera_name, width, height).render()

    def render_rgbd(self, camera_name: str, width: int = 640, height: int = 480
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(RGB image, depth image) of camera ``camera_name`` from one drawing of the scene.

        The depth (height x width, float32) is in metres along the optical axis (REP 118),
        +inf where nothing is nearer than the far clipping plane (the sky)."""
        r = self._scene_for(camera_name, width, height)
        gl = getattr(r, "_gl_context", None)
        if gl is not None:
            gl.make_current()
        rgb = np.empty((height, width, 3), np.uint8)
        zbuf = np.empty((height, width), np.float32)
        mujoco.mjr_render(r._rect, r._scene, r._mjr_context)
        mujoco.mjr_readPixels(rgb, zbuf, r._rect, r._mjr_context)
        extent = self.model.stat.extent
        znear = np.float32(self.model.vis.map.znear * extent)
        zfar = np.float32(self.model.vis.map.zfar * extent)
        # undo the reversed-Z perspective projection, as mujoco.Renderer does
        c = np.float32(-0.5) * (-(zfar + znear) / (zfar - znear)) - np.float32(0.5)
        d = np.float32(-0.5) * (-(np.float32(2) * zfar * znear) / (zfar - znear))
        depth = (d / (zbuf.astype(np.float64) + c)).astype(np.float32)
        depth[depth >= 0.999 * zfar] = np.inf
        if gl is not None:  # OSMesa, EGL and GLFW read the image bottom row first
            rgb, depth = np.flipud(rgb), np.flipud(depth)
        return np.ascontiguousarray(rgb), np.ascontiguousarray(depth)

    def _scene_for(self, camera_name: str, width: int, height: int) -> mujoco.Renderer:
        """The renderer of this image size with the scene seen from ``camera_name``."""
        cid = self._camera_id(camera_name)
        key = (int(width), int(height))
        r = self._renderers.get(key)
        if r is None:
            vis = self.model.vis.global_
            vis.offwidth = max(vis.offwidth, key[0])
            vis.offheight = max(vis.offheight, key[1])
            r = mujoco.Renderer(self.model, height=key[1], width=key[0])
            self._renderers[key] = r
        cam = self.data.cam_xpos[cid]
        if self._lod is not None:
            # centre the patch a quarter of its size ahead of the camera's view
            look = -self.data.cam_xmat[cid].reshape(3, 3)[:2, 2]
            n = float(np.hypot(*look))
            ahead = look * (0.25 * min(self._lod.patch_size) / n) if n > 0.2 else 0.0 * look
            self._follow_render_terrain(float(cam[0] + ahead[0]), float(cam[1] + ahead[1]))
            if self._uploaded.get(key) != self._lod_version:
                self._upload_render_terrain(r)
                self._uploaded[key] = self._lod_version
        elif self._terrain_uploaded.get(key, 0) != self._terrain_version:
            self._upload_hfields(r, [self._terrain_hfield])  # printed material changed it
            self._terrain_uploaded[key] = self._terrain_version
        if self._sun >= 0:
            pos = cam + self._sun_offset
            self.model.light_pos[self._sun] = pos
            self.data.light_xpos[self._sun] = pos
        r.update_scene(self.data, camera=cid)
        return r

    # -- terrain edits (printed material) ----------------------------------------------------
    def terrain_height(self, x: float, y: float, top: float = 1000.0) -> float:
        """Height (m) of the collision terrain at (x, y), by a ray cast down from ``top``
        (only the terrain geom counts: rocks, objects and the rover are ignored)."""
        geomid = np.array([-1], dtype=np.int32)
        # only the collision terrain's group (3 when render-only fields stand in: those, in
        # group 1, lie a float32 rounding above it where the terrain was edited)
        groups = np.zeros(6, dtype=np.uint8)
        groups[int(self.model.geom_group[self._terrain_geom])] = 1
        dist = mujoco.mj_ray(self.model, self.data, np.array([x, y, top], float),
                             np.array([0.0, 0.0, -1.0]), groups, 1, -1, geomid)
        if dist < 0 or geomid[0] != self._terrain_geom:
            return math.nan
        return top - float(dist)

    def set_terrain_heights(self, i0: int, j0: int, patch: np.ndarray) -> None:
        """Replace heightmap nodes ``[i0:i0 + rows, j0:j0 + cols]`` by ``patch`` (m) in the
        collision terrain (in place: contacts see it at the next step) and in what the cameras
        draw (re-uploaded at the next render). The field's elevation range grows when the
        patch rises above it."""
        m = self.model
        hid, gid = self._terrain_hfield, self._terrain_geom
        rows, cols = patch.shape
        heights = self.heightmap.heights
        heights[i0:i0 + rows, j0:j0 + cols] = patch
        lo = float(m.geom_pos[gid][2])
        elev = float(m.hfield_size[hid][2])
        nrow, ncol = int(m.hfield_nrow[hid]), int(m.hfield_ncol[hid])
        adr = int(m.hfield_adr[hid])
        data = m.hfield_data[adr:adr + nrow * ncol].reshape(nrow, ncol)
        top = float(patch.max(initial=lo))
        if top > lo + elev:
            elev = top - lo + 1.0  # headroom: regrow rarely
            m.hfield_size[hid][2] = elev
            data[:] = np.clip((heights - lo) / elev, 0.0, 1.0)
            sx, sy, _, base = m.hfield_size[hid]
            m.geom_aabb[gid] = (0.0, 0.0, (elev - base) / 2, sx, sy, (elev + base) / 2)
            m.geom_rbound[gid] = math.sqrt(sx * sx + sy * sy + max(elev, base) ** 2)
        else:
            data[i0:i0 + rows, j0:j0 + cols] = np.clip((patch - lo) / elev, 0.0, 1.0)
        self._terrain_version += 1
        if self._lod is not None:  # refill the render-only fields from the heightmap
            self._lod_origin = None
            self._lod_centre = (math.nan, math.nan)

    @property
    def footprint_radius(self) -> float:
        """Radius (m) of a circle about base_link holding the rover's wheels and chassis."""
        r = self.rover
        wheels = math.hypot(max(abs(a) for a in r.axle_x) + r.wheel_radius,
                            (r.track_width + r.wheel_width) / 2.0)
        return max(wheels, math.hypot(r.chassis_length, r.chassis_width) / 2.0)

    def drop_rock(self, x: float, y: float, radius: float, height: float) -> RockBump:
        """Raise a rock of ``radius`` and ``height`` (m) at world (x, y) out of the terrain
        (:func:`~ilrs_robots.sim.rock_drop.rock_bump`: a dome of the height field, in the
        contacts at the next step and in the cameras at the next render). Call from the
        thread that steps and renders. Raises RockDropError (the reason) when it cannot be
        dropped: off the terrain, on the rover, a non-finite value, a radius under the
        terrain's node spacing."""
        pos = self.ground_truth()[0]
        bump = rock_bump(self.heightmap, x, y, radius, height,
                         (float(pos[0]), float(pos[1]), self.footprint_radius))
        self.set_terrain_heights(bump.i0, bump.j0, bump.apply(self.heightmap.heights))
        return bump

    # -- render-only terrain ----------------------------------------------------------------
    def _init_render_terrain(self, mjcf_options: dict[str, object]) -> None:
        m = self.model
        self._terrain_hfield = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_HFIELD, "terrain")
        self._terrain_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "terrain")
        self._terrain_version = 0
        self._terrain_uploaded: dict[tuple[int, int], int] = {}
        self._sun = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_LIGHT, "sun")
        self._sun_offset = (m.light_pos[self._sun].copy() if self._sun >= 0
                            else np.zeros(3))
        self._lod = render_lod(self.heightmap,
                               float(mjcf_options.get("render_patch", RENDER_PATCH)),
                               float(mjcf_options.get("render_coarse", RENDER_COARSE)))
        self._lod_origin: tuple[int, int] | None = None
        self._lod_centre = (math.nan, math.nan)
        self._lod_version = 0
        self._uploaded: dict[tuple[int, int], int] = {}
        self._hfields = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_HFIELD, n)
                         for n in ("terrain_fine", "terrain_coarse")]
        self._rock_geoms = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM,
                                                       f"rock_{i}")
                                     for i in range(len(self.rocks))], dtype=np.intp)
        self._rock_xy = np.array([(rk.x, rk.y) for rk in self.rocks]).reshape(-1, 2)
        self._rock_d = np.array([rk.diameter for rk in self.rocks])
        if self._lod is not None:
            pos = self.data.qpos[0:2]
            self._follow_render_terrain(float(pos[0]), float(pos[1]))

    def render_terrain_centre(self) -> tuple[float, float] | None:
        """World (x, y) centre of the full-resolution render patch, or None when the whole
        terrain is rendered at full resolution."""
        return None if self._lod is None else self._lod_centre

    def _follow_render_terrain(self, x: float, y: float) -> None:
        """Centre the fine patch on (x, y) once (x, y) is a quarter patch from its centre."""
        lod = self._lod
        assert lod is not None
        px, py = lod.patch_size
        cx, cy = self._lod_centre
        if abs(x - cx) <= px / 4 and abs(y - cy) <= py / 4:
            return
        origin = lod.patch_origin(self.heightmap, x, y)
        if origin == self._lod_origin:
            return
        self._lod_origin = origin
        self._lod_centre = fill_render_terrain(self.model, self.heightmap, lod, origin)
        self._lod_version += 1
        g = self._lod_centre
        gid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "terrain_fine")
        self.data.geom_xpos[gid, :2] = g
        if len(self._rock_geoms):
            # rocks beyond the patch sit on the coarse terrain: draw only those big enough
            rel = np.abs(self._rock_xy - np.array(g))
            inside = np.all(rel <= np.array([px, py]) / 2 - self._rock_d[:, None] / 2, axis=1)
            near = np.hypot(rel[:, 0], rel[:, 1]) <= ROCK_CULL_RATIO * self._rock_d
            self.model.geom_group[self._rock_geoms] = np.where(inside | near, 0, HIDDEN_GROUP)

    def _upload_render_terrain(self, r: mujoco.Renderer) -> None:
        """Copy the render-only height fields into the OpenGL context of renderer ``r``
        (uses the mujoco.Renderer attributes ``_gl_context`` and ``_mjr_context``)."""
        self._upload_hfields(r, self._hfields)

    def _upload_hfields(self, r: mujoco.Renderer, hfields: Sequence[int]) -> None:
        gl = getattr(r, "_gl_context", None)
        if gl is not None:
            gl.make_current()
        for hid in hfields:
            mujoco.mjr_uploadHField(self.model, r._mjr_context, hid)

    def close(self) -> None:
        """Free the renderers (OpenGL contexts)."""
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
        self._uploaded.clear()
        self._terrain_uploaded.clear()

    def __enter__(self) -> RoverPhysics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
