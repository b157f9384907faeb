"""Traversability costmaps from terrain heights (pure numpy/OpenCV, no I/O, no ROS).

A :class:`CostGrid` holds one cost per square cell:

- ``0.0 <= cost < 1.0``: traversable, from free (0) to very costly (towards 1);
- ``cost >= 1.0`` (:data:`LETHAL`): the rover's centre must not enter the cell;
- ``NaN``: unknown (no height data, or data too uncertain).

Cells are laid out like ``nav_msgs/OccupancyGrid``: ``cost[row, col]``, row 0 at the grid's
origin y (south), ``origin`` is the world (x, y) of the outer corner of cell (0, 0), so the
centre of cell (row, col) is at ``origin + ((col + 0.5) * res, (row + 0.5) * res)``. A grid
built from a :class:`~ilrs_robots.core.terrain.Heightmap` has one cell centred on each height
node.

Costs come from the terrain at rover scale (:func:`terrain_layers`):

- slope of a least-squares plane fitted over a window of about the rover's size, against the
  tilt limit;
- roughness: RMS residual of that plane fit;
- step height: the largest height difference to an 8-neighbour after removing the local plane,
  against the wheel's step limit;

each normalised by its limit (over the limit = lethal), plus keep-out discs (lethal), unknown
cells, and inflation of lethal cells by the rover's footprint radius (inside: lethal; beyond:
a cost decaying to zero at ``inflation_radius``). :class:`GlobalCostmap` keeps heights and
their variance on the global grid and merges local observations into them, recomputing only
the cells whose cost can change; it also keeps the hazards a finer local map found (rocks and
steps smaller than a global cell, which resampling the heights would smooth away) as an
obstacle layer, marked and cleared by :meth:`GlobalCostmap.merge_obstacles`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ilrs_robots.core.terrain import Heightmap

LETHAL = 1.0
"""Cost at and above which a cell is impassable."""

OCCUPANCY_UNKNOWN = -1
OCCUPANCY_LETHAL = 100
OCCUPANCY_MAX_COST = 99


# ---------------------------------------------------------------------------------------
# Cost grid
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeepOut:
    """A disc the rover must not enter: centre (x, y) and radius in metres, and a name
    used in refusal messages (e.g. "reactor exclusion zone")."""

    x: float
    y: float
    radius: float
    name: str = ""

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        """True when (x, y) lies within ``radius + margin`` of the centre."""
        return math.hypot(x - self.x, y - self.y) <= self.radius + margin


@dataclass
class CostGrid:
    """Square cells of traversal cost; see the module docstring for values and layout.
    ``keep_outs`` are the discs already marked lethal (kept to name them in refusals) and
    ``footprint_radius`` the radius lethal cells were inflated by."""

    cost: np.ndarray
    origin: tuple[float, float] = (0.0, 0.0)
    resolution: float = 1.0
    keep_outs: tuple[KeepOut, ...] = field(default_factory=tuple)
    footprint_radius: float = 0.0

    def __post_init__(self) -> None:
        self.cost = np.ascontiguousarray(self.cost, dtype=np.float32)
        if self.cost.ndim != 2 or min(self.cost.shape) < 1:
            raise ValueError("cost must be a non-empty 2-D array")
        if not self.resolution > 0:
            raise ValueError("resolution must be positive")
        self.origin = (float(self.origin[0]), float(self.origin[1]))
        self.keep_outs = tuple(self.keep_outs)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.cost.shape  # type: ignore[return-value]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax): the outer edges of the grid."""
        rows, cols = self.cost.shape
        return (self.origin[0], self.origin[1], self.origin[0] + cols * self.resolution,
                self.origin[1] + rows * self.resolution)

    def contains(self, x: float, y: float) -> bool:
        """True when (x, y) lies on the grid."""
        xmin, ymin, xmax, ymax = self.bounds
        return xmin <= x < xmax and ymin <= y < ymax

    def world_to_cell(self, x: float, y: float) -> tuple[int, int]:
        """(row, col) of the cell containing (x, y); may be outside the grid."""
        return (int(math.floor((y - self.origin[1]) / self.resolution)),
                int(math.floor((x - self.origin[0]) / self.resolution)))

    def cell_to_world(self, row: int | np.ndarray, col: int | np.ndarray
                      ) -> tuple[float | np.ndarray, float | np.ndarray]:
        """World (x, y) of the centre of cell (row, col); works on arrays too."""
        return (self.origin[0] + (np.asarray(col) + 0.5) * self.resolution,
                self.origin[1] + (np.asarray(row) + 0.5) * self.resolution)

    def in_grid(self, row: int, col: int) -> bool:
        """True when (row, col) indexes a cell."""
        rows, cols = self.cost.shape
        return 0 <= row < rows and 0 <= col < cols

    def cost_at(self, x: float, y: float) -> float:
        """Cost of the cell containing (x, y) (ValueError off the grid)."""
        row, col = self.world_to_cell(x, y)
        if not self.in_grid(row, col):
            raise ValueError(f"({x:.2f}, {y:.2f}) is off the grid {self.bounds}")
        return float(self.cost[row, col])

    def lethal_mask(self) -> np.ndarray:
        """Boolean mask of lethal cells."""
        return self.cost >= LETHAL

    def unknown_mask(self) -> np.ndarray:
        """Boolean mask of unknown cells."""
        return np.isnan(self.cost)

    def keep_out_at(self, x: float, y: float, margin: float = 0.0) -> KeepOut | None:
        """The first keep-out disc containing (x, y) (grown by ``margin``), else None."""
        for k in self.keep_outs:
            if k.contains(x, y, margin):
                return k
        return None

    def copy(self) -> CostGrid:
        """Deep copy."""
        return CostGrid(self.cost.copy(), self.origin, self.resolution, self.keep_outs,
                        self.footprint_radius)

    def mark_lethal(self, x: float, y: float, radius: float) -> None:
        """Mark every cell whose centre lies within ``radius`` of (x, y) lethal, in place
        (an obstacle reported after the grid was built; no inflation is added)."""
        _fill_disc(self.cost, self.origin, self.resolution, x, y, radius, LETHAL)

    def raise_cost(self, x: float, y: float, radius: float, value: float) -> None:
        """Raise every cell whose centre lies within ``radius`` of (x, y) to at least
        ``value`` (below LETHAL), in place; unknown cells take ``value``, lethal ones stay."""
        disc = _disc(self.cost.shape, self.origin, self.resolution, x, y, radius)
        if disc is not None:
            rows, cols, inside = disc
            window = self.cost[rows, cols]
            window[inside] = np.fmax(window[inside], value)

    def to_occupancy(self) -> np.ndarray:
        """int8 values as ``nav_msgs/OccupancyGrid`` uses them, shaped (rows, cols) (its
        ``.ravel()`` is the message's row-major ``data``): 0 free .. 99 costly, 100 lethal,
        -1 unknown."""
        c = self.cost
        occ = np.minimum(np.floor(np.nan_to_num(c, nan=0.0) * 100.0),
                         OCCUPANCY_MAX_COST).astype(np.int8)
        occ[c >= LETHAL] = OCCUPANCY_LETHAL
        occ[np.isnan(c)] = OCCUPANCY_UNKNOWN
        return occ

    @classmethod
    def from_occupancy(cls, data: Sequence[int] | np.ndarray, width: int, height: int,
                       origin: tuple[float, float], resolution: float,
                       keep_outs: Iterable[KeepOut] = (),
                       footprint_radius: float = 0.0) -> CostGrid:
        """A grid from ``nav_msgs/OccupancyGrid`` values (row-major, ``width`` columns):
        -1 unknown, 100 (or more) lethal, else value / 100."""
        occ = np.asarray(data, dtype=np.int16).reshape(height, width)
        cost = occ.astype(np.float32) / 100.0
        cost[occ >= OCCUPANCY_LETHAL] = LETHAL
        cost[occ < 0] = np.nan
        return cls(cost, origin, resolution, tuple(keep_outs), footprint_radius)


def _disc(shape: tuple[int, int], origin: tuple[float, float], res: float, x: float, y: float,
          radius: float) -> tuple[slice, slice, np.ndarray] | None:
    """(rows, cols, inside): the cells of a grid (layout of :class:`CostGrid`) whose centre is
    within ``radius`` of (x, y), as a window and a mask over it; None when none is."""
    rows, cols = shape
    c0 = max(0, int(math.floor((x - radius - origin[0]) / res)))
    c1 = min(cols - 1, int(math.ceil((x + radius - origin[0]) / res)))
    r0 = max(0, int(math.floor((y - radius - origin[1]) / res)))
    r1 = min(rows - 1, int(math.ceil((y + radius - origin[1]) / res)))
    if c1 < c0 or r1 < r0:
        return None
    xs = origin[0] + (np.arange(c0, c1 + 1) + 0.5) * res - x
    ys = origin[1] + (np.arange(r0, r1 + 1) + 0.5) * res - y
    inside = xs[None, :] ** 2 + ys[:, None] ** 2 <= radius * radius
    return slice(r0, r1 + 1), slice(c0, c1 + 1), inside


def _fill_disc(a: np.ndarray, origin: tuple[float, float], res: float, x: float, y: float,
               radius: float, value: float) -> None:
    """Set cells of ``a`` (layout of :class:`CostGrid`) whose centre is within ``radius``."""
    disc = _disc(a.shape, origin, res, x, y, radius)
    if disc is not None:
        rows, cols, inside = disc
        a[rows, cols][inside] = value


# ---------------------------------------------------------------------------------------
# Terrain layers and costs
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostParams:
    """How terrain turns into cost. Lengths in metres, angles in degrees.

    ``plane_window``: side of the plane-fit window (rounded to an odd number of cells, at
    least 3), about the rover's size. ``noisy_plane_window`` (optional) is used instead
    where the height variance exceeds ``noisy_variance``: about 3 cells of a coarse, noisy
    DEM, so that a prior map's noise does not read as slope while observed cells keep the
    rover-scale window.
    ``height_noise_sigma``: white height noise of the map where no per-cell variance is
    given; roughness and steps are discounted by it so that noise alone is not a hazard.
    ``max_variance``: cells whose height variance exceeds it are unknown.
    """

    max_slope_deg: float = 20.0
    max_step: float = 0.3
    max_roughness: float = 0.15
    plane_window: float = 1.5
    noisy_plane_window: float | None = None
    noisy_variance: float = 0.05 ** 2
    cost_exponent: float = 2.0
    max_hazard_cost: float = 0.9
    height_noise_sigma: float = 0.0
    max_variance: float = 0.25
    footprint_radius: float = 1.1
    inflation_radius: float = 3.0
    inflation_cost: float = 0.6

    def __post_init__(self) -> None:
        for name in ("max_slope_deg", "max_step", "max_roughness", "plane_window",
                     "cost_exponent", "max_variance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CostParams.{name} must be positive, got {getattr(self, name)}")
        if not 0.0 < self.max_slope_deg < 90.0:
            raise ValueError("CostParams.max_slope_deg must lie in (0, 90)")
        if not 0.0 <= self.max_hazard_cost < LETHAL:
            raise ValueError("CostParams.max_hazard_cost must lie in [0, 1)")
        if not 0.0 <= self.inflation_cost < LETHAL:
            raise ValueError("CostParams.inflation_cost must lie in [0, 1)")
        if self.footprint_radius < 0 or self.height_noise_sigma < 0:
            raise ValueError("CostParams.footprint_radius and height_noise_sigma must be >= 0")
        if self.noisy_plane_window is not None and not self.noisy_plane_window > 0:
            raise ValueError("CostParams.noisy_plane_window must be positive or None")
        if self.inflation_radius < self.footprint_radius:
            raise ValueError("CostParams.inflation_radius must be >= footprint_radius")

    def window_cells(self, resolution: float, window: float | None = None) -> int:
        """Odd side (cells, >= 3) of the plane-fit window (default ``plane_window``) at
        ``resolution``."""
        k = int(round((self.plane_window if window is None else window) / resolution))
        k = max(3, k)
        return k if k % 2 else k + 1

    def margin_cells(self, resolution: float) -> int:
        """How far (cells) a height change can change costs: plane window, step, inflation."""
        k = self.window_cells(resolution)
        if self.noisy_plane_window is not None:
            k = max(k, self.window_cells(resolution, self.noisy_plane_window))
        return (k // 2 + 1
                + int(math.ceil(self.inflation_radius / resolution)) + 1)


@dataclass
class TerrainLayers:
    """Per-node terrain figures at rover scale: slope (deg), roughness (m, RMS plane-fit
    residual) and step (m, largest plane-relative height difference to an 8-neighbour),
    the last two already discounted by the height noise. NaN where heights are unknown."""

    slope_deg: np.ndarray
    roughness: np.ndarray
    step: np.ndarray


def terrain_layers(heights: np.ndarray, resolution: float, params: CostParams,
                   variance: float | np.ndarray | None = None) -> TerrainLayers:
    """Slope, roughness and step height of every node of ``heights`` (row 0 south).

    ``variance`` (m^2, scalar or per node) is the height noise; None uses
    ``params.height_noise_sigma``. Nodes whose variance exceeds ``params.noisy_variance``
    are fitted over ``params.noisy_plane_window`` when that is set.
    """
    if variance is None:
        var: float | np.ndarray = params.height_noise_sigma ** 2
    else:
        var = np.asarray(variance, dtype=np.float64)
    fine = params.window_cells(resolution)
    if params.noisy_plane_window is None:
        return _layers(heights, resolution, fine, var)
    wide = params.window_cells(resolution, params.noisy_plane_window)
    noisy = np.asarray(var) > params.noisy_variance
    if not noisy.any() or wide == fine:
        return _layers(heights, resolution, fine, var)
    if noisy.all():
        return _layers(heights, resolution, wide, var)
    a = _layers(heights, resolution, fine, var)
    b = _layers(heights, resolution, wide, var)
    return TerrainLayers(np.where(noisy, b.slope_deg, a.slope_deg),
                         np.where(noisy, b.roughness, a.roughness),
                         np.where(noisy, b.step, a.step))


def _layers(heights: np.ndarray, resolution: float, k: int, var: float | np.ndarray
            ) -> TerrainLayers:
    """:func:`terrain_layers` with a k x k plane-fit window and height variance ``var``."""
    h = k // 2
    # odd reflection about the edges continues a plane exactly: no false slope or step there
    z0 = np.asarray(heights, dtype=np.float64)
    pad = 2 * h + 2
    z = np.pad(z0, pad, mode="reflect", reflect_type="odd")
    u = np.arange(-h, h + 1, dtype=np.float64)
    ones = np.ones(k)
    n = float(k * k)
    suu = k * float((u * u).sum())  # sum of u^2 over the window (equal for v)
    border = cv2.BORDER_REPLICATE
    mean = cv2.sepFilter2D(z, cv2.CV_64F, ones / k, ones / k, borderType=border)
    sx = cv2.sepFilter2D(z, cv2.CV_64F, u, ones, borderType=border)   # sum of u * z
    sy = cv2.sepFilter2D(z, cv2.CV_64F, ones, u, borderType=border)   # sum of v * z
    # residual sum of squares about the plane: the window's spread about its mean (sums of
    # squares taken about a global offset, in float64) minus what the two slopes explain
    off = float(np.nanmean(z)) if np.isfinite(z).any() else 0.0
    zz = z - off
    s_zz = cv2.sepFilter2D(zz * zz, cv2.CV_64F, ones, ones, borderType=border)
    spread = s_zz - n * (mean - off) ** 2
    ssr = spread - (sx * sx + sy * sy) / suu
    gx = (sx * (1.0 / (suu * resolution))).astype(np.float32)   # dz/dx (m/m)
    gy = (sy * (1.0 / (suu * resolution))).astype(np.float32)   # dz/dy
    inner = (slice(pad, pad + z0.shape[0]), slice(pad, pad + z0.shape[1]))
    # float32 is ample for height differences between neighbours (micrometres at 1 km)
    step = _plane_step((z - off).astype(np.float32), gx, gy, resolution, h)[inner]
    slope = np.degrees(np.arctan(np.hypot(gx[inner], gy[inner]))).astype(np.float64)
    # discount the noise: its share of the residual, and ~3 sigma of a neighbour difference
    rough_sq = np.maximum(ssr[inner] / n - var * (n - 3.0) / n, 0.0)
    roughness = np.sqrt(rough_sq)
    step = np.maximum(step - 3.0 * np.sqrt(var), 0.0)
    return TerrainLayers(slope, roughness, step)


def _plane_step(z: np.ndarray, gx: np.ndarray, gy: np.ndarray, res: float,
                half: int) -> np.ndarray:
    """Largest |height difference to an 8-neighbour minus the rise of the local plane| (m).

    For the pair (a, b = a + dir) the plane's gradient is the mean of the gradients fitted
    ``half`` + 1 nodes beyond each end (a - half*dir and b + half*dir): their windows do not
    straddle the pair, so a step between a and b is not absorbed into the slope. Both nodes
    get the pair's step. Rows/cols within 2 * half + 1 of the edges wrap around: callers pad.
    """
    out = np.zeros_like(z)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        # value at p of arr[p + k * dir]
        def at(arr: np.ndarray, k: int, dr: int = dr, dc: int = dc) -> np.ndarray:
            return np.roll(arr, (-k * dr, -k * dc), axis=(0, 1))

        d = at(z, 1) - z
        if dc:
            d -= (at(gx, -half) + at(gx, half + 1)) * np.float32(0.5 * dc * res)
        if dr:
            d -= (at(gy, -half) + at(gy, half + 1)) * np.float32(0.5 * dr * res)
        np.abs(d, out=d)
        np.fmax(out, d, out=out)
        np.fmax(out, at(d, -1), out=out)
    nan = np.isnan(z)
    if nan.any():
        out[nan] = np.nan
    return out


def hazard_costs(layers: TerrainLayers, params: CostParams) -> np.ndarray:
    """Cost (float32) from the terrain layers: each figure divided by its limit, the worst
    ratio r gives ``max_hazard_cost * r ** cost_exponent``, lethal where r > 1, NaN where
    the terrain is unknown."""
    ratio = np.fmax(np.fmax(layers.slope_deg / params.max_slope_deg,
                            layers.roughness / params.max_roughness),
                    layers.step / params.max_step)
    unknown = np.isnan(layers.slope_deg) | np.isnan(layers.roughness) | np.isnan(layers.step)
    cost = params.max_hazard_cost * np.minimum(ratio, 1.0) ** params.cost_exponent
    cost[ratio > 1.0] = LETHAL
    cost[unknown] = np.nan
    return cost.astype(np.float32)


def inflate(cost: np.ndarray, resolution: float, params: CostParams) -> np.ndarray:
    """Inflate the lethal cells of ``cost`` in place: cells whose centre lies within
    ``footprint_radius`` of a lethal cell's centre become lethal, those beyond get
    ``inflation_cost * (1 - t)^2`` with t going 0 -> 1 from the footprint radius to
    ``inflation_radius`` (kept if already costlier). Unknown cells stay unknown."""
    lethal = cost >= LETHAL
    if not lethal.any():
        return cost
    src = np.where(lethal, 0, 255).astype(np.uint8)
    dist = cv2.distanceTransform(src, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).astype(np.float32)
    dist *= np.float32(resolution)
    r = params.footprint_radius
    big_r = params.inflation_radius
    known = ~np.isnan(cost)
    inscribed = (dist <= r + 1e-6) & known
    cost[inscribed] = LETHAL
    if big_r > r and params.inflation_cost > 0:
        band = (dist > r + 1e-6) & (dist < big_r) & known
        t = (dist[band] - r) / (big_r - r)
        ramp = (params.inflation_cost * (1.0 - t) ** 2).astype(np.float32)
        cost[band] = np.maximum(cost[band], ramp)
    return cost


def cost_grid(heightmap: Heightmap, params: CostParams | None = None,
              keep_outs: Iterable[KeepOut] = (),
              variance: float | np.ndarray | None = None) -> CostGrid:
    """The traversability :class:`CostGrid` of ``heightmap``: one cell centred on each
    height node, hazards from :func:`terrain_layers`, keep-out discs lethal, cells with
    NaN height or ``variance > params.max_variance`` unknown, then :func:`inflate`."""
    params = params or CostParams()
    keep = tuple(keep_outs)
    res = heightmap.resolution
    origin = (heightmap.origin[0] - res / 2.0, heightmap.origin[1] - res / 2.0)
    cost = _costs(heightmap.heights, res, origin, params, keep, variance)
    return CostGrid(cost, origin, res, keep, params.footprint_radius)


def _costs(heights: np.ndarray, res: float, origin: tuple[float, float], params: CostParams,
           keep: tuple[KeepOut, ...], variance: float | np.ndarray | None,
           obstacles: np.ndarray | None = None) -> np.ndarray:
    layers = terrain_layers(heights, res, params, variance)
    cost = hazard_costs(layers, params)
    if variance is not None:
        var = np.broadcast_to(np.asarray(variance, dtype=np.float64), cost.shape)
        cost[~(var <= params.max_variance)] = np.nan  # also NaN variance
    if obstacles is not None:
        cost[obstacles] = LETHAL  # seen by a finer map: lethal even where heights are unknown
    for k in keep:
        _fill_disc(cost, origin, res, k.x, k.y, k.radius, LETHAL)
    return inflate(cost, res, params)


# ---------------------------------------------------------------------------------------
# Global map with merged observations
# ---------------------------------------------------------------------------------------
class GlobalCostmap:
    """Heights with per-node variance on the global grid, and their :class:`CostGrid`.

    Built from a prior DEM (resampled to ``resolution``; its variance is
    ``prior_variance``), then updated by :meth:`merge` with local observations: observed
    nodes replace the stored ones where their variance is at most ``params.max_variance``
    and lower than the stored variance.
    """

    def __init__(self, prior: Heightmap, params: CostParams | None = None,
                 keep_outs: Iterable[KeepOut] = (), prior_variance: float | np.ndarray = 0.0,
                 resolution: float | None = None) -> None:
        self.params = params or CostParams()
        self.keep_outs = tuple(keep_outs)
        res = prior.resolution if resolution is None else float(resolution)
        if abs(res - prior.resolution) > 1e-12:
            if np.ndim(prior_variance) != 0:
                raise ValueError("a per-node prior_variance needs resolution equal to the "
                                 "prior's")
            prior = prior.resample(res)
        self.heights = prior.copy()
        self.variance = np.broadcast_to(np.asarray(prior_variance, dtype=np.float64),
                                        prior.shape).copy()
        self.obstacles = np.zeros(prior.shape, dtype=bool)  # see merge_obstacles
        self.grid = cost_grid(self.heights, self.params, self.keep_outs, self.variance)

    def merge(self, local: Heightmap, local_variance: np.ndarray | float
              ) -> tuple[slice, slice] | None:
        """Merge an observed local elevation map (NaN heights or variance = no data),
        sampled bilinearly at the global nodes it covers. Returns the (rows, cols) slices of
        the grid whose costs were recomputed, or None when nothing changed."""
        hm = self.heights
        res = hm.resolution
        xmin, ymin, xmax, ymax = local.bounds
        ny, nx = hm.shape
        c0 = max(0, int(math.ceil((xmin - hm.origin[0]) / res - 1e-9)))
        c1 = min(nx - 1, int(math.floor((xmax - hm.origin[0]) / res + 1e-9)))
        r0 = max(0, int(math.ceil((ymin - hm.origin[1]) / res - 1e-9)))
        r1 = min(ny - 1, int(math.floor((ymax - hm.origin[1]) / res + 1e-9)))
        if c1 < c0 or r1 < r0:
            return None
        xs = hm.origin[0] + np.arange(c0, c1 + 1) * res
        ys = hm.origin[1] + np.arange(r0, r1 + 1) * res
        X, Y = np.meshgrid(xs, ys)
        z = np.asarray(local.height_at(X, Y))
        lv = np.broadcast_to(np.asarray(local_variance, dtype=np.float64), local.shape)
        var = np.asarray(Heightmap(lv, local.origin, local.resolution).height_at(X, Y))
        gv = self.variance[r0:r1 + 1, c0:c1 + 1]
        take = np.isfinite(z) & (var <= self.params.max_variance) & ~(var >= gv)
        if not take.any():
            return None
        hm.heights[r0:r1 + 1, c0:c1 + 1][take] = z[take]
        gv[take] = var[take]
        rr, cc = np.nonzero(take)
        return self._recompute(r0 + int(rr.min()), r0 + int(rr.max()),
                               c0 + int(cc.min()), c0 + int(cc.max()))

    def merge_cells(self, heights: np.ndarray, variance: np.ndarray,
                    origin: tuple[float, float], resolution: float
                    ) -> tuple[slice, slice] | None:
        """:meth:`merge` for a grid of cells (row 0 south) whose ``origin`` is the outer
        corner of cell (0, 0), as OccupancyGrid and a rolling elevation map lay them out."""
        node_origin = (origin[0] + resolution / 2.0, origin[1] + resolution / 2.0)
        return self.merge(Heightmap(heights, node_origin, resolution), variance)

    def merge_obstacles(self, lethal: np.ndarray, judged: np.ndarray,
                        origin: tuple[float, float], resolution: float,
                        clear_fraction: float = 0.5) -> tuple[slice, slice] | None:
        """Mark the hazards of a finer local map (cells laid out as in :meth:`merge_cells`)
        on the obstacle layer: a global cell holding a ``lethal`` local cell becomes an
        obstacle (lethal, then inflated like any hazard); one whose local cells were judged
        (``judged``) for at least ``clear_fraction`` of its area, none lethal, is cleared.
        Returns the recomputed (rows, cols) slices, or None when no cell changed."""
        lethal = np.asarray(lethal, dtype=bool)
        judged = np.asarray(judged, dtype=bool)
        if lethal.shape != judged.shape or lethal.ndim != 2:
            raise ValueError("lethal and judged must be 2-D arrays of one shape")
        judged = judged | lethal
        hm = self.heights
        res = hm.resolution
        ny, nx = hm.shape
        jr, jc = np.nonzero(judged)
        if len(jr) == 0:
            return None
        # the global node (cell centre) nearest each judged local cell's centre
        cols = np.rint((origin[0] + (jc + 0.5) * resolution - hm.origin[0]) / res).astype(int)
        rows = np.rint((origin[1] + (jr + 0.5) * resolution - hm.origin[1]) / res).astype(int)
        inside = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
        if not inside.any():
            return None
        flat = rows[inside] * nx + cols[inside]
        seen = np.bincount(flat, minlength=ny * nx).reshape(ny, nx)
        hits = np.bincount(flat, weights=lethal[jr, jc][inside].astype(np.float64),
                           minlength=ny * nx).reshape(ny, nx)
        per_cell = max(1.0, (res / resolution) ** 2)
        mark = hits > 0
        clear = (hits == 0) & (seen >= clear_fraction * per_cell)
        new = np.where(mark, True, np.where(clear, False, self.obstacles))
        changed = new != self.obstacles
        if not changed.any():
            return None
        self.obstacles = new
        rr, cc = np.nonzero(changed)
        return self._recompute(int(rr.min()), int(rr.max()), int(cc.min()), int(cc.max()))

    def _recompute(self, r0: int, r1: int, c0: int, c1: int) -> tuple[slice, slice]:
        """Recompute the costs that nodes rows r0..r1, cols c0..c1 can affect."""
        m = self.params.margin_cells(self.heights.resolution)
        ny, nx = self.heights.shape
        a = (max(0, r0 - m), min(ny, r1 + m + 1), max(0, c0 - m), min(nx, c1 + m + 1))
        b = (max(0, a[0] - m), min(ny, a[1] + m), max(0, a[2] - m), min(nx, a[3] + m))
        res = self.heights.resolution
        origin = (self.grid.origin[0] + b[2] * res, self.grid.origin[1] + b[0] * res)
        cost = _costs(self.heights.heights[b[0]:b[1], b[2]:b[3]], res, origin, self.params,
                      self.keep_outs, self.variance[b[0]:b[1], b[2]:b[3]],
                      self.obstacles[b[0]:b[1], b[2]:b[3]])
        rows = slice(a[0], a[1])
        cols = slice(a[2], a[3])
        self.grid.cost[rows, cols] = cost[a[0] - b[0]:a[1] - b[0], a[2] - b[2]:a[3] - b[2]]
        return rows, cols
