"""terrain_mapper: the global traversability costmap (prior DEM + keep-outs + what stereo
saw) and the local hazard map from the stereo pair. The pipeline is
`core.terrain_mapping.TerrainMapper`.

Topics (relative, in the robot's namespace):

- in: with `input: stereo` (the default) `stereo/{left,right}/image_raw` + `camera_info`;
  with `input: depth` a depth camera's `depth/image_raw` (sensor_msgs/Image 32FC1 metres
  along the optical axis, or 16UC1 millimetres, REP 118) + `depth/camera_info`, whose points
  feed the same local map and hazards; `odometry/filtered` (the pose that places the points),
  `/tf_static` (base_link -> the camera's optical frame);
- `costmap` (nav_msgs/OccupancyGrid, frame map, reliable + transient local: a late subscriber
  gets the last one): 0..99 cost, 100 lethal (hazards, keep-outs, inflation), -1 unknown;
  published at start and again when it changed, at most every `costmap_period` s;
- `local_costmap` (nav_msgs/OccupancyGrid): the rolling local hazard map (steps, slopes,
  rocks lethal; -1 where stereo saw too little), after each mapped pair;
- `elevation_map` (sensor_msgs/PointCloud2, x y z float32): the known cells of the local
  map, for RViz;
- `elevation_grid` (sensor_msgs/Image, 32FC1): the local map's heights (m, on the prior's
  datum), NaN where unknown, laid out like an OccupancyGrid (row 0 = south = lowest y, so an
  image viewer shows it upside down), and `elevation_grid/info` (nav_msgs/MapMetaData with
  the same stamp in `map_load_time`): resolution, width, height and the origin (outer
  corner of cell [0, 0]) in map;
- `/diagnostics`: mapping rate, points, valid disparity fraction, vertical offset to the prior.

With `dose_layer_topic` set (the rover stack: `radiation/dose_cost`, radiation_mapper's
nav_msgs/OccupancyGrid), `costmap` cells are raised to that layer's cost where it is higher:
routes then keep off the high-dose ground (core/dose_layer.py `overlay_max`).

Prior map: parameter `world` (its `prior_map` DEM, site structures and the reactor's
exclusion radius as keep-outs) or `dem_file`, an `.npz` holding `heights` (ny x nx metres at
grid nodes, row 0 south), `origin` (x, y of node [0, 0] in map), `resolution` (m), and
optionally `noise_sigma` (m) and `keep_outs` (N x 3: x, y, radius in m).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import MapMetaData, OccupancyGrid, Odometry
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from ilrs_robots.core.costmap import CostGrid, CostParams, KeepOut
from ilrs_robots.core.dose_layer import overlay_max
from ilrs_robots.core.elevation import HazardLimits
from ilrs_robots.core.localizer import TransformTree, transform_matrix
from ilrs_robots.core.stereo import StereoConfig, StereoRig
from ilrs_robots.core.terrain import Heightmap, empty_grid
from ilrs_robots.core.terrain_mapping import (
    MapperConfig,
    PoseHistory,
    TerrainMapper,
    structure_radius,
)
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.localization import (
    StereoPairer,
    calibration_of,
    image_array,
    seconds,
    world_of_node,
)
from ilrs_robots.nodes.params import ParameterError, declare, run_node
from ilrs_robots.nodes.qos import LATCHED, TF_STATIC

UNKNOWN_SIGMA = 1000.0  # m: a prior this uncertain is unknown (over CostParams.max_variance)


def _finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def world_prior(world: str, reactor_radius: float, margin: float
                ) -> tuple[Heightmap, float, tuple[KeepOut, ...]]:
    """(prior DEM, its noise sigma, keep-outs) of a world: every site structure but markers
    as a disc grown by ``margin``, and the reactor's exclusion zone."""
    from ilrs_robots.sim.world import WorldError, load_world, prior_map

    try:
        w = load_world(world)
        prior = prior_map(w)
    except WorldError as exc:
        raise ParameterError("world", f"is not usable: {exc}") from exc
    zones = []
    for site in w.sites.values():
        for o in site.objects:
            if o.role == "marker":
                continue
            x, y = site.position[0] + o.position[0], site.position[1] + o.position[1]
            if o.role == "reactor":
                zones.append(KeepOut(x, y, reactor_radius, "reactor exclusion zone"))
            zones.append(KeepOut(x, y, structure_radius(o.type, o.size, o.radius) + margin,
                                 o.name))
    return prior, w.prior_map.noise_sigma, tuple(zones)


def dem_prior(path: str) -> tuple[Heightmap, float | None, tuple[KeepOut, ...]]:
    """(prior DEM, noise sigma or None, keep-outs) of an .npz DEM file (module docstring)."""
    try:
        with np.load(path) as f:
            heights = np.asarray(f["heights"], dtype=np.float64)
            origin = tuple(float(v) for v in np.asarray(f["origin"]).ravel()[:2])
            res = float(np.asarray(f["resolution"]))
            sigma = float(np.asarray(f["noise_sigma"])) if "noise_sigma" in f else None
            zones = np.asarray(f["keep_outs"], dtype=np.float64).reshape(-1, 3) \
                if "keep_outs" in f else np.zeros((0, 3))
        hm = Heightmap(heights, origin, res)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ParameterError("dem_file", f"must be an .npz with heights, origin and "
                             f"resolution: {exc}") from exc
    return hm, sigma, tuple(KeepOut(*z, name=f"keep-out {i}") for i, z in enumerate(zones))


def depth_array(msg: Image) -> np.ndarray:
    """Metres of a 32FC1 (metres) or 16UC1 (millimetres, 0 = none) depth image (REP 118)."""
    if msg.encoding in ("32FC1", "16UC1"):
        dtype = np.dtype(np.float32 if msg.encoding == "32FC1" else np.uint16)
        dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
        a = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
        a = a[:, :msg.width * dtype.itemsize].copy().view(dtype).reshape(msg.height, msg.width)
        if msg.encoding == "16UC1":
            return np.where(a > 0, a.astype(np.float32) / 1000.0, np.nan)
        return a.astype(np.float32)
    raise ValueError(f"depth image encoding {msg.encoding!r}: expected 32FC1 or 16UC1")


class LatestImage:
    """The newest image of a topic for a worker thread: a slow consumer skips frames."""

    def __init__(self) -> None:
        self.msg: Image | None = None
        self.cond = threading.Condition()

    def put(self, msg: Image) -> None:
        """Keep ``msg`` as the newest."""
        with self.cond:
            self.msg = msg
            self.cond.notify()

    def take(self, timeout: float) -> Image | None:
        """The newest image (removing it), or None after ``timeout`` s."""
        with self.cond:
            if self.msg is None:
                self.cond.wait(timeout)
            msg, self.msg = self.msg, None
            return msg


class TerrainMapperNode(Node):
    """Prior + stereo costmaps; see the module docstring."""

    def __init__(self) -> None:
        super().__init__("terrain_mapper")
        p = self._declare_all()
        self.map_frame, self.base_frame = p["map_frame"], p["base_frame"]
        if p["world_from"] and not p["world"] and not p["dem_file"]:
            p["world"] = world_of_node(self, p["world_from"], p["world_from_timeout"])
        if p["world"] and p["dem_file"]:
            raise ParameterError("dem_file", "must be empty when 'world' is set (one prior)")
        if p["world"]:
            prior, sigma, zones = world_prior(p["world"], p["keep_out_radius_reactor"],
                                              p["structure_margin"])
            source = f"world '{p['world']}'"
        elif p["dem_file"]:
            prior, file_sigma, zones = dem_prior(p["dem_file"])
            sigma = file_sigma if file_sigma is not None else 0.15
            source = f"DEM {Path(p['dem_file']).name}"
        else:  # no prior: unknown everywhere until seen
            half = p["map_size"] / 2.0
            prior = empty_grid((p["map_size"], p["map_size"]), p["resolution"])
            sigma, zones = UNKNOWN_SIGMA, ()
            source = f"nothing (no world, no dem_file): {p['map_size']:g} m square, unknown"
            self.get_logger().warning(f"no prior map: the costmap covers +-{half:g} m and is "
                                      "unknown until stereo sees it")
        if p["prior_noise_sigma"] > 0 and sigma != UNKNOWN_SIGMA:
            sigma = p["prior_noise_sigma"]
        costs = CostParams(max_slope_deg=p["max_slope_deg"], max_step=p["max_step"],
                           max_roughness=p["max_roughness"], plane_window=p["plane_window"],
                           noisy_plane_window=3 * prior.resolution,
                           footprint_radius=p["footprint_radius"],
                           inflation_radius=max(p["inflation_radius"], p["footprint_radius"]))
        limits = HazardLimits(max_step=p["wheel_step"], max_slope_deg=p["max_slope_deg"],
                              max_rock=p["rock_height"],
                              noise_sigmas=p["hazard_noise_sigmas"])
        stereo = StereoConfig(min_range=p["min_range"], max_range=p["max_range"],
                              point_step=p["point_step"])
        config = MapperConfig(p["local_size"], p["local_resolution"], stereo, limits,
                              align_to_prior=p["align_to_prior"] and sigma != UNKNOWN_SIGMA,
                              mark_local_hazards=p["mark_local_hazards"])
        self.mapper = TerrainMapper(prior, sigma ** 2, costs, zones, p["resolution"], config)
        self.lock = threading.Lock()
        self.tree = TransformTree()
        self.poses = PoseHistory()
        self.infos: dict[str, CameraInfo] = {}
        self.camera_override = p["camera_transform"]
        self.pose_tolerance = p["pose_tolerance"]
        self.period = 1.0 / p["mapping_rate"]
        self._last_stamp = -math.inf
        self._dirty = True
        self._waiting = "no stereo pair yet"
        self._stats: dict[str, Any] = {"frames": 0, "points": 0, "valid": 0.0, "offset": 0.0,
                                       "ms": math.nan, "stamps": []}
        self.costmap_pub = self.create_publisher(OccupancyGrid, "costmap", LATCHED)
        self.local_pub = self.create_publisher(OccupancyGrid, "local_costmap", 5)
        self.cloud_pub = self.create_publisher(PointCloud2, "elevation_map", 5)
        self.grid_pub = self.create_publisher(Image, "elevation_grid", 5)
        self.grid_info_pub = self.create_publisher(MapMetaData, "elevation_grid/info", 5)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Odometry, "odometry/filtered", self._on_pose, 50)
        self.create_subscription(TFMessage, "/tf_static", self._on_tf_static, TF_STATIC)
        self.input = p["input"]
        self.pairer = StereoPairer(p["stereo_max_offset"])
        self.depth = LatestImage()
        if self.input == "depth":
            self.create_subscription(Image, "depth/image_raw", self.depth.put, 2)
            self.create_subscription(CameraInfo, "depth/camera_info",
                                     lambda m: self.infos.__setitem__("depth", m), 2)
        else:
            for side in ("left", "right"):
                self.create_subscription(Image, f"stereo/{side}/image_raw",
                                         lambda m, s=side: self.pairer.put(m, s == "left"), 2)
                self.create_subscription(CameraInfo, f"stereo/{side}/camera_info",
                                         lambda m, s=side: self.infos.__setitem__(s, m), 2)
        self.dose_layer: CostGrid | None = None
        if p["dose_layer_topic"]:
            self.create_subscription(OccupancyGrid, p["dose_layer_topic"], self._on_dose_layer,
                                     LATCHED)
        self.costmap_timer = self.create_timer(p["costmap_period"], self._publish_costmap)
        self.diag_timer = self.create_timer(p["diagnostics_period"], self._publish_diagnostics)
        self.hardware_id = self.get_namespace().strip("/") or "robot"
        self._publish_costmap()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._loop, name="mapping", daemon=True)
        self._worker.start()
        grid = self.mapper.global_map.grid
        self.get_logger().info(
            f"input {self.input}; prior from {source}: {grid.shape[1]}x{grid.shape[0]} cells at "
            f"{grid.resolution:g} m, noise {sigma:g} m, {len(zones)} keep-outs, "
            f"{int(grid.lethal_mask().sum())} lethal cells")

    # -- parameters -------------------------------------------------------------------------
    def _declare_all(self) -> dict[str, Any]:
        d = self
        p: dict[str, Any] = {
            "world": declare(d, "world", "", "World name or YAML whose prior_map DEM and sites "
                             "give the prior (simulation)", read_only=True),
            "world_from_timeout": declare(d, "world_from_timeout", 60.0, "How long to wait for "
                                          "the 'world_from' node (s)", range=(0.1, 600.0),
                                          read_only=True),
            "world_from": declare(d, "world_from", "", "Node whose 'world' parameter to use "
                                  "when 'world' and 'dem_file' are empty (the simulator: "
                                  "/sim)", read_only=True),
            "dem_file": declare(d, "dem_file", "", "Prior DEM (.npz: heights, origin, "
                                "resolution[, noise_sigma, keep_outs]) when 'world' is empty",
                                read_only=True),
            "prior_noise_sigma": declare(d, "prior_noise_sigma", 0.0, "Height noise of the "
                                         "prior (m); 0: the world's / DEM file's (0.15 if none)",
                                         range=(0.0, 10.0), read_only=True),
            "map_size": declare(d, "map_size", 400.0, "Side of the costmap, centred on the "
                                "map origin, when there is no prior (m)", range=(1.0, 1e5),
                                read_only=True),
            "resolution": declare(d, "resolution", 0.5, "Cell size of the global costmap (m)",
                                  range=(0.05, 10.0), read_only=True),
            "keep_out_radius_reactor": declare(d, "keep_out_radius_reactor", 10.0,
                                               "Exclusion radius around the reactor (m)",
                                               range=(0.0, 1000.0), read_only=True),
            "structure_margin": declare(d, "structure_margin", 0.5, "Added to the radius of "
                                        "each site structure's keep-out disc (m)",
                                        range=(0.0, 50.0), read_only=True),
            "max_slope_deg": declare(d, "max_slope_deg", 20.0, "Tilt limit (deg)",
                                     range=(1.0, 60.0), read_only=True),
            "max_step": declare(d, "max_step", 0.3, "Plane-relative step between global "
                                "cells that is lethal (m)", range=(0.01, 5.0), read_only=True),
            "max_roughness": declare(d, "max_roughness", 0.15, "RMS roughness that is lethal "
                                     "(m)", range=(0.01, 5.0), read_only=True),
            "plane_window": declare(d, "plane_window", 1.5, "Plane-fit window of observed "
                                    "terrain, about the rover's size (m)", range=(0.1, 20.0),
                                    read_only=True),
            "footprint_radius": declare(d, "footprint_radius", 1.1, "Lethal cells are grown by "
                                        "this (m)", range=(0.0, 20.0), read_only=True),
            "inflation_radius": declare(d, "inflation_radius", 3.0, "Cost decays to zero at "
                                        "this distance from lethal cells (m)",
                                        range=(0.0, 50.0), read_only=True),
            "local_size": declare(d, "local_size", 20.0, "Side of the rolling local map (m)",
                                  range=(2.0, 200.0), read_only=True),
            "local_resolution": declare(d, "local_resolution", 0.1, "Local map cell (m)",
                                        range=(0.02, 2.0), read_only=True),
            "wheel_step": declare(d, "wheel_step", 0.2, "Height step a wheel can climb within "
                                  "0.2 m (local map, m)", range=(0.01, 2.0), read_only=True),
            "rock_height": declare(d, "rock_height", 0.2, "Height above the local plane that is "
                                   "a rock (belly clearance, m)", range=(0.01, 5.0),
                                   read_only=True),
            "hazard_noise_sigmas": declare(d, "hazard_noise_sigmas", 1.0, "Steps and rocks "
                                           "count beyond this many standard deviations of "
                                           "the cells' heights (0: the raw heights)",
                                           range=(0.0, 5.0), read_only=True),
            "min_range": declare(d, "min_range", 1.0, "Stereo points nearer are dropped (m)",
                                 range=(0.1, 100.0), read_only=True),
            "max_range": declare(d, "max_range", 12.0, "Stereo points farther are dropped (m)",
                                 range=(0.5, 200.0), read_only=True),
            "point_step": declare(d, "point_step", 2, "Keep every n-th disparity pixel",
                                  range=(1, 16), read_only=True),
            "input": declare(d, "input", "stereo", "What the local map is made of: 'stereo' "
                             "(the nav pair, SGBM) or 'depth' (a depth image, e.g. the "
                             "simulator's depth/image_raw)", lambda v: v in ("stereo", "depth"),
                             "'stereo' or 'depth'", read_only=True),
            "align_to_prior": declare(d, "align_to_prior", True, "Tie observed heights to the "
                                      "prior's datum (median offset)", read_only=True),
            "mark_local_hazards": declare(d, "mark_local_hazards", True, "Mark the local "
                                          "map's rocks and steps on the global costmap "
                                          "(cleared when seen free)", read_only=True),
            "mapping_rate": declare(d, "mapping_rate", 5.0, "Most stereo pairs mapped per "
                                    "second of sensor time", range=(0.1, 60.0)),
            "costmap_period": declare(d, "costmap_period", 1.0, "Shortest interval between "
                                      "costmap publications (s)", range=(0.05, 600.0)),
            "pose_tolerance": declare(d, "pose_tolerance", 0.1, "Largest gap between an image "
                                      "and the pose that places it (s)", range=(0.001, 5.0)),
            "stereo_max_offset": declare(d, "stereo_max_offset", 0.005, "Largest stamp "
                                         "difference of a left/right pair (s)",
                                         range=(0.0, 1.0), read_only=True),
            "camera_transform": declare(d, "camera_transform", [0.0],
                                        "Pose of the left optical frame in base_link [x y z "
                                        "qx qy qz qw] when /tf_static has none; [0.0]: from "
                                        "/tf_static only",
                                        lambda v: len(v) in (1, 7) and _finite(v),
                                        "1 or 7 finite numbers", read_only=True),
            "map_frame": declare(d, "map_frame", "map", "Map frame", bool, "non-empty",
                                 read_only=True),
            "base_frame": declare(d, "base_frame", "base_link", "Base frame", bool,
                                  "non-empty", read_only=True),
            "dose_layer_topic": declare(d, "dose_layer_topic", "", "nav_msgs/OccupancyGrid "
                                        "cost layer merged into the costmap (highest cost "
                                        "wins), e.g. radiation/dose_cost; empty: none",
                                        read_only=True),
            "diagnostics_period": declare(d, "diagnostics_period", 1.0, "Period of "
                                          "/diagnostics (s)", range=(0.05, 60.0)),
        }
        return p

    def on_parameters_set(self, changed: dict[str, Any]) -> None:
        """Apply live changes: rates, periods, pose tolerance."""
        if "mapping_rate" in changed:
            self.period = 1.0 / float(changed["mapping_rate"])
        if "pose_tolerance" in changed:
            self.pose_tolerance = float(changed["pose_tolerance"])
        if "costmap_period" in changed:
            self.costmap_timer.timer_period_ns = int(changed["costmap_period"] * 1e9)
        if "diagnostics_period" in changed:
            self.diag_timer.timer_period_ns = int(changed["diagnostics_period"] * 1e9)

    # -- inputs -----------------------------------------------------------------------------
    def _on_pose(self, msg: Odometry) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.map_frame:
            return
        p, o = msg.pose.pose.position, msg.pose.pose.orientation
        self.poses.add(seconds(msg.header.stamp),
                       transform_matrix((p.x, p.y, p.z), (o.x, o.y, o.z, o.w)))

    def _on_tf_static(self, msg: TFMessage) -> None:
        for t in msg.transforms:
            tr, r = t.transform.translation, t.transform.rotation
            self.tree.add(t.header.frame_id, t.child_frame_id,
                          transform_matrix((tr.x, tr.y, tr.z), (r.x, r.y, r.z, r.w)))

    def _camera(self, left: Image) -> np.ndarray | None:
        """base_link <- left optical frame, with the rig set; None (and why) if unknown."""
        li, ri = self.infos.get("left"), self.infos.get("right")
        if li is None or ri is None:
            self._waiting = "no camera_info on stereo/left and stereo/right yet"
            return None
        if len(self.camera_override) == 7:
            v = self.camera_override
            base_from_cam = transform_matrix(v[:3], v[3:])
        else:
            base_from_cam = self.tree.lookup(self.base_frame, left.header.frame_id)
            if base_from_cam is None:
                self._waiting = (f"no {self.base_frame} -> {left.header.frame_id} on "
                                 "/tf_static (or set camera_transform)")
                return None
        try:
            rig = StereoRig.from_calibrations(calibration_of(li), calibration_of(ri))
        except ValueError as exc:
            self._waiting = f"camera_info unusable: {exc}"
            return None
        self.mapper.set_rig(rig.scaled(left.width, left.height))
        return base_from_cam

    def _depth_camera(self, depth: Image) -> tuple[np.ndarray, tuple] | None:
        """(base_link <- the depth camera's optical frame, its fx fy cx cy at the image's
        size); None (and why) while unknown."""
        info = self.infos.get("depth")
        if info is None:
            self._waiting = "no camera_info on depth/camera_info yet"
            return None
        if len(self.camera_override) == 7:
            v = self.camera_override
            base_from_cam = transform_matrix(v[:3], v[3:])
        else:
            base_from_cam = self.tree.lookup(self.base_frame, depth.header.frame_id)
            if base_from_cam is None:
                self._waiting = (f"no {self.base_frame} -> {depth.header.frame_id} on "
                                 "/tf_static (or set camera_transform)")
                return None
        k = info.k
        sx = depth.width / info.width if info.width else 1.0
        sy = depth.height / info.height if info.height else 1.0
        intrinsics = (k[0] * sx, k[4] * sy, (k[2] + 0.5) * sx - 0.5, (k[5] + 0.5) * sy - 0.5)
        if not (k[0] > 0 and k[4] > 0):
            self._waiting = "depth/camera_info has no focal length"
            return None
        return base_from_cam, intrinsics

    # -- mapping ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.input == "depth":
                msg = self.depth.take(0.2)
                pair = None if msg is None else (msg, None)
            else:
                pair = self.pairer.take(0.2)
            if pair is None:
                continue
            left, right = pair
            stamp = seconds(left.header.stamp)
            if self._last_stamp < stamp < self._last_stamp + self.period - 1e-3:
                continue
            try:
                if right is None:
                    camera = self._depth_camera(left)
                    if camera is None:
                        continue
                    base_from_cam, intrinsics = camera
                else:
                    base_from_cam = self._camera(left)
                    if base_from_cam is None:
                        continue
                map_base = self.poses.at(stamp, self.pose_tolerance)
                if map_base is None:
                    self._waiting = (f"no odometry/filtered within {self.pose_tolerance:g} s "
                                     "of the images")
                    continue
                self._waiting = ""
                self._last_stamp = stamp
                t0 = time.perf_counter()
                xy = (float(map_base[0, 3]), float(map_base[1, 3]))
                with self.lock:
                    if right is None:
                        res = self.mapper.process_depth(depth_array(left), intrinsics,
                                                        map_base @ base_from_cam, xy)
                    else:
                        res = self.mapper.process(image_array(left), image_array(right),
                                                  map_base @ base_from_cam, xy)
                    if res.changed is not None:
                        self._dirty = True
                    heights, origin, resolution = self.mapper.local_heights()
                ms = (time.perf_counter() - t0) * 1e3
                s = self._stats
                s.update(frames=s["frames"] + 1, points=res.points, valid=res.valid_fraction,
                         offset=res.offset, ms=ms)
                s["stamps"] = (s["stamps"] + [stamp])[-20:]
                self._publish_local(left.header.stamp, res.hazards.cost(), heights, origin,
                                    resolution)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not end the worker
                if not self.context.ok():
                    return
                self.get_logger().error(f"mapping failed: {exc}", throttle_duration_sec=5.0)

    # -- outputs ----------------------------------------------------------------------------
    def _publish_local(self, stamp: Any, cost: np.ndarray, heights: np.ndarray,
                       origin: tuple[float, float], resolution: float) -> None:
        f = self.map_frame
        self.local_pub.publish(messages.occupancy_grid(stamp, f, cost, origin, resolution))
        known = np.isfinite(heights)
        ny, nx = heights.shape
        xs = origin[0] + (np.arange(nx) + 0.5) * resolution
        ys = origin[1] + (np.arange(ny) + 0.5) * resolution
        X, Y = np.meshgrid(xs, ys)
        self.cloud_pub.publish(messages.point_cloud(stamp, f, np.column_stack(
            [X[known], Y[known], heights[known]])))
        img = messages.image(stamp, f, np.ascontiguousarray(heights, dtype=np.float32),
                             "32FC1")
        self.grid_pub.publish(img)
        self.grid_info_pub.publish(messages.map_info(stamp, heights.shape, origin, resolution))

    def _on_dose_layer(self, msg: OccupancyGrid) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.map_frame:
            self.get_logger().error(f"dose layer in '{msg.header.frame_id}', not "
                                    f"'{self.map_frame}': ignored", throttle_duration_sec=30.0)
            return
        info = msg.info
        layer = CostGrid.from_occupancy(msg.data, info.width, info.height,
                                        (info.origin.position.x, info.origin.position.y),
                                        info.resolution)
        with self.lock:
            self.dose_layer = layer
            self._dirty = True

    def _publish_costmap(self) -> None:
        with self.lock:
            if not self._dirty:
                return
            grid = self.mapper.global_map.grid
            if self.dose_layer is not None:
                grid = overlay_max(grid, self.dose_layer)
            occ = grid.to_occupancy()
            self._dirty = False
        stamp = self.get_clock().now().to_msg()
        self.costmap_pub.publish(messages.occupancy_grid(stamp, self.map_frame, occ,
                                                         grid.origin, grid.resolution))

    def _publish_diagnostics(self) -> None:
        s = self._stats
        stamps = s["stamps"]
        rate = ((len(stamps) - 1) / (stamps[-1] - stamps[0])
                if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0)
        if self._waiting:
            level, text = "WARN", f"not mapping: {self._waiting}"
        else:
            level, text = "OK", f"mapping at {rate:.1f} Hz from {self.input}"
        status = messages.diagnostic(
            f"{self.get_name()}: stereo mapping", f"{self.hardware_id}/terrain_mapper", level,
            text, [("rate_hz", f"{rate:.2f}"), ("processing_ms", f"{s['ms']:.1f}"),
                   ("frames", s["frames"]), ("points", s["points"]),
                   ("valid_disparity", f"{s['valid']:.3f}"),
                   ("vertical_offset", f"{s['offset']:.3f}"),
                   ("skipped_pairs", self.pairer.skipped)])
        array_msg = DiagnosticArray(status=[status])
        array_msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array_msg)

    def close(self) -> None:
        """Stop the mapping worker."""
        self._stop.set()
        self._worker.join(timeout=2.0)


def main(args: list[str] | None = None) -> None:
    """Console script `terrain_mapper`."""
    raise SystemExit(run_node(TerrainMapperNode, args))


if __name__ == "__main__":
    main()
