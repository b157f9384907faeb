"""The stereo hazard-mapping pipeline behind the ``terrain_mapper`` node (pure numpy/OpenCV):
a rectified pair and the camera's pose in ``map`` -> points -> the rolling local
:class:`~ilrs_robots.core.elevation.ElevationMap` -> hazards -> merged into the
:class:`~ilrs_robots.core.costmap.GlobalCostmap` built from the prior DEM and keep-outs.

Heights: the local map is tied to the prior vertically. The rover's height in ``map`` is
dead-reckoned and drifts; the prior DEM is coarse and noisy but unbiased, so the median of
(observed - prior) over the cells seen is a good estimate of the drift, and it is removed
(smoothed) before the observed heights replace the prior's (see :class:`VerticalAlignment`).

Small hazards: a rock or a step narrower than a global cell is smoothed away when the
observed heights are sampled onto the global grid, so the planner would route the rover
straight back to the rock the local map stops it at. The local map's rock and step cells are
therefore marked on the global map's obstacle layer (and cleared when seen free again), as a
Nav2 global costmap's obstacle layer holds what the sensors saw (``mark_local_hazards``).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass

import numpy as np

from ilrs_robots.core.costmap import CostParams, GlobalCostmap, KeepOut
from ilrs_robots.core.elevation import ROCK, STEP, ElevationMap, HazardLimits, HazardMap
from ilrs_robots.core.stereo import (
    StereoConfig,
    StereoMatcher,
    StereoRig,
    depth_points,
    depth_variance,
    range_variance,
    transform_points,
)
from ilrs_robots.core.terrain import Heightmap


def structure_radius(kind: str, size: tuple[float, ...], ring_radius: float = 0.0) -> float:
    """Radius (m) of the disc that covers a site structure seen from above: a box by its
    half-extents' diagonal, a berm ring by its outer edge, a cylinder/sphere/gauge by its
    first size."""
    if kind == "box":
        return math.hypot(size[0], size[1])
    if kind == "berm":
        return ring_radius + size[0]
    return float(size[0]) if size else 0.0


class VerticalAlignment:
    """Offset (m) to subtract from observed heights so they sit on the prior's datum:
    the median of (observed - prior) over at least ``min_cells`` cells, smoothed."""

    def __init__(self, min_cells: int = 200, gain: float = 0.3, max_step: float = 1.0
                 ) -> None:
        """``gain``: weight of a new median; ``max_step``: larger jumps are distrusted."""
        self.min_cells = min_cells
        self.gain = gain
        self.max_step = max_step
        self.offset: float | None = None

    def update(self, observed: np.ndarray, prior: np.ndarray) -> float:
        """Update with cell heights and the prior's heights at the same cells (NaN: none);
        returns the offset in use (0 until the first estimate)."""
        d = np.asarray(observed, dtype=np.float64) - np.asarray(prior, dtype=np.float64)
        d = d[np.isfinite(d)]
        if d.size >= self.min_cells:
            m = float(np.median(d))
            if self.offset is None:
                self.offset = m
            else:
                step = float(np.clip(m - self.offset, -self.max_step, self.max_step))
                self.offset += self.gain * step
        return 0.0 if self.offset is None else self.offset


class PoseHistory:
    """Recent 4x4 poses of base_link in map by stamp, to place a camera frame in time."""

    def __init__(self, keep: int = 400) -> None:
        self._stamps: deque[float] = deque(maxlen=keep)
        self._poses: deque[np.ndarray] = deque(maxlen=keep)

    def add(self, stamp: float, T: np.ndarray) -> None:
        """Record a pose (stamps going back in time restart the history)."""
        if self._stamps and stamp < self._stamps[-1]:
            self.clear()
        self._stamps.append(stamp)
        self._poses.append(np.asarray(T, dtype=np.float64))

    def clear(self) -> None:
        """Forget every pose."""
        self._stamps.clear()
        self._poses.clear()

    def at(self, stamp: float, tolerance: float) -> np.ndarray | None:
        """The pose at ``stamp``: translation interpolated between the poses around it,
        rotation of the nearer one; None when no pose lies within ``tolerance`` s."""
        if not self._stamps:
            return None
        stamps = list(self._stamps)
        i = bisect_left(stamps, stamp)
        if 0 < i < len(stamps):
            t0, t1 = stamps[i - 1], stamps[i]
            if t1 - t0 <= 2 * tolerance:
                a = (stamp - t0) / (t1 - t0) if t1 > t0 else 0.0
                near = self._poses[i - 1] if a < 0.5 else self._poses[i]
                T = near.copy()
                T[:3, 3] = (1 - a) * self._poses[i - 1][:3, 3] + a * self._poses[i][:3, 3]
                return T
        j = min(range(max(0, i - 1), min(len(stamps), i + 1)),
                key=lambda k: abs(stamps[k] - stamp))
        return self._poses[j].copy() if abs(stamps[j] - stamp) <= tolerance else None


def level_to_map(local: ElevationMap, pts: np.ndarray, centre: tuple[float, float],
                 min_overlap: int = 300, max_tilt: float = 0.09, max_offset: float = 0.5
                 ) -> np.ndarray:
    """``pts`` levelled (:func:`level_points`) to the heights ``local`` already holds."""
    if len(pts) == 0:
        return pts
    n = local.cells
    ix, iy = local.index_of(pts[:, 0], pts[:, 1])
    inside = (ix >= 0) & (ix < n) & (iy >= 0) & (iy < n)
    ref = np.full(len(pts), np.nan)
    ref[inside] = local.mean[iy[inside], ix[inside]]
    return level_points(pts, ref, centre, min_overlap, max_tilt, max_offset)


def level_points(pts: np.ndarray, ref: np.ndarray, centre: tuple[float, float],
                 min_overlap: int = 300, max_tilt: float = 0.09, max_offset: float = 0.5
                 ) -> np.ndarray:
    """``pts`` (map frame, N x 3) with their heights corrected by the plane (offset and two
    slopes about ``centre``) that best fits their difference to reference heights ``ref``
    (one per point, NaN where none; robust: residuals far from the median are left out).

    The pose that places a frame carries the localization's roll, pitch and height errors
    (an accelerometer bias of 0.05 m/s^2 tilts the estimate by 1.8 deg under lunar gravity,
    fixed to the rover's body): frames seen from other headings then disagree by tens of
    centimetres at 10 m, and the seams read as steps and rocks that are not there. Tied to
    a reference (the prior DEM: coarse and noisy but not tilted, fitted over thousands of
    points), frames stay level and consistent. Corrections beyond ``max_tilt`` (rad) or
    ``max_offset`` (m) are not applied (not a pose error)."""
    ok = np.isfinite(ref)
    if len(pts) == 0 or ok.sum() < min_overlap:
        return pts
    r = pts[ok, 2] - ref[ok]
    med = np.median(r)
    mad = np.median(np.abs(r - med))
    keep = np.abs(r - med) <= max(3.0 * 1.4826 * mad, 0.05)
    if keep.sum() < min_overlap:
        return pts
    dx = pts[ok, 0][keep] - centre[0]
    dy = pts[ok, 1][keep] - centre[1]
    A = np.column_stack([np.ones_like(dx), dx, dy])
    coef, *_ = np.linalg.lstsq(A, r[keep], rcond=None)
    if abs(coef[0]) > max_offset or math.hypot(coef[1], coef[2]) > max_tilt:
        return pts
    out = pts.copy()
    out[:, 2] -= coef[0] + coef[1] * (pts[:, 0] - centre[0]) + coef[2] * (pts[:, 1] - centre[1])
    return out


@dataclass(frozen=True)
class MapperConfig:
    """Settings of the pipeline (lengths in metres)."""

    local_size: float = 20.0
    local_resolution: float = 0.1
    stereo: StereoConfig = StereoConfig()
    limits: HazardLimits = HazardLimits()
    disparity_sigma: float = 0.25  # px, for the points' variance
    depth_sigma: float = 0.002  # m at 1 m, for a depth image's points (grows with depth^2)
    align_to_prior: bool = True
    level_frames: bool = True  # tie each frame's height and tilt to the prior DEM
    mark_local_hazards: bool = True  # rocks and steps of the local map -> global obstacles


@dataclass
class MappingResult:
    """What one processed pair gave."""

    hazards: HazardMap
    points: int
    valid_fraction: float
    offset: float
    changed: tuple[slice, slice] | None


def _union(a: tuple[slice, slice] | None, b: tuple[slice, slice] | None
           ) -> tuple[slice, slice] | None:
    """The (rows, cols) slices covering both (either may be None)."""
    if a is None or b is None:
        return a if b is None else b
    return (slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
            slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)))


class TerrainMapper:
    """Local elevation map from stereo, merged into a global costmap over a prior DEM."""

    def __init__(self, prior: Heightmap, prior_variance: float, costs: CostParams,
                 keep_outs: tuple[KeepOut, ...] = (), resolution: float | None = None,
                 config: MapperConfig | None = None) -> None:
        """``prior``: the DEM (heights at nodes); ``resolution``: of the global costmap."""
        self.config = c = config or MapperConfig()
        self.global_map = GlobalCostmap(prior, costs, keep_outs, prior_variance, resolution)
        self.prior = self.global_map.heights.copy()  # the datum observed heights are tied to
        self.local = ElevationMap(c.local_size, c.local_resolution)
        self.alignment = VerticalAlignment()
        self.matcher: StereoMatcher | None = None
        self.rig: StereoRig | None = None

    def set_rig(self, rig: StereoRig) -> None:
        """Use this camera geometry (rebuilds the matcher when it changed)."""
        if rig != self.rig:
            self.rig = rig
            self.matcher = StereoMatcher(rig, self.config.stereo)

    def process(self, left: np.ndarray, right: np.ndarray, map_from_camera: np.ndarray,
                rover_xy: tuple[float, float]) -> MappingResult:
        """Map one rectified pair whose left optical frame is at ``map_from_camera``."""
        if self.matcher is None or self.rig is None:
            raise RuntimeError("set_rig() first")
        c = self.config
        res = self.matcher.compute(left, right)
        var = range_variance(res.points, self.rig, c.disparity_sigma)
        return self._fuse(transform_points(res.points, map_from_camera), var, rover_xy,
                          res.valid_fraction)

    def process_depth(self, depth: np.ndarray, intrinsics: tuple[float, float, float, float],
                      map_from_camera: np.ndarray, rover_xy: tuple[float, float]
                      ) -> MappingResult:
        """Map one depth image (metres along the optical axis, REP 118) of a camera with
        ``intrinsics`` (fx, fy, cx, cy) whose optical frame is at ``map_from_camera``: the
        same local map, hazards and merge as a stereo pair's points."""
        c = self.config
        pts, valid = depth_points(depth, *intrinsics, c.stereo)
        return self._fuse(transform_points(pts, map_from_camera),
                          depth_variance(pts, c.depth_sigma), rover_xy, valid)

    def _fuse(self, pts: np.ndarray, var: np.ndarray, rover_xy: tuple[float, float],
              valid_fraction: float) -> MappingResult:
        """Add map-frame points to the local map, find its hazards, merge into the global."""
        c = self.config
        self.local.recenter(*rover_xy)
        if c.level_frames and len(pts):
            ref = np.asarray(self.prior.height_at(pts[:, 0], pts[:, 1]), dtype=np.float64)
            pts = level_points(pts, ref, rover_xy, max_offset=5.0)
        n = self.local.add_points(pts, var)
        hz = self.local.hazards(c.limits)
        offset = 0.0
        known = np.isfinite(hz.height)
        if c.align_to_prior and known.any():
            X, Y = hz.cell_centres()
            prior = np.asarray(self.prior.height_at(X[known], Y[known]), dtype=np.float64)
            offset = self.alignment.update(hz.height[known], prior)
        heights = np.where(known, hz.height - offset, np.nan)
        variance = np.where(known, hz.variance, np.nan)
        changed = None
        if known.any():
            changed = self.global_map.merge_cells(heights, variance, hz.origin, hz.resolution)
        if c.mark_local_hazards:
            small = (hz.flags & (ROCK | STEP)) != 0
            marked = self.global_map.merge_obstacles(small, ~hz.unknown, hz.origin,
                                                     hz.resolution)
            changed = _union(changed, marked)
        return MappingResult(hz, n, valid_fraction, offset, changed)

    def local_heights(self) -> tuple[np.ndarray, tuple[float, float], float]:
        """(heights on the prior's datum with NaN where unknown, origin, resolution) of the
        local map's known cells."""
        lim = self.config.limits
        m = np.where(self.local.known(lim.min_points), self.local.mean, np.nan)
        off = 0.0
        if self.config.align_to_prior and self.alignment.offset is not None:
            off = self.alignment.offset
        return m - off, self.local.origin, self.local.resolution
