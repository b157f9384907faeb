"""A rolling local 2.5D elevation map and the hazards read from it (pure numpy + OpenCV).

Grid convention (as :class:`~ilrs_robots.core.terrain.Heightmap` and nav_msgs/OccupancyGrid):
``array[iy, ix]`` is the cell whose south-west corner is ``origin + (ix, iy) * resolution``;
row 0 is the southern (-y) edge. The map's cells sit on a fixed lattice in the map frame, so
moving the window (:meth:`ElevationMap.recenter`) shifts whole cells and never resamples.

Each cell fuses the heights of the points that fell in it with inverse-variance weights:
``mean``, ``variance`` (spread of the points plus the variance of the mean) and ``count``.
A cell with too few points is *unknown*; hazards are never inferred as free from absence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

UNKNOWN = 1
"""Flag bit: too few points, or too little known terrain around the cell to judge it."""
STEP = 2
"""Flag bit: a height step over the wheel's limit within ``step_distance``."""
SLOPE = 4
"""Flag bit: the local plane is steeper than the tilt limit."""
ROCK = 8
"""Flag bit: the cell stands higher than the clearance limit above the local plane."""

COST_UNKNOWN = -1
COST_LETHAL = 100


@dataclass(frozen=True)
class HazardLimits:
    """What the rover can drive over, and how the map judges it."""

    max_step: float = 0.2  # m, height change within step_distance a wheel can climb
    step_distance: float = 0.2  # m
    max_slope_deg: float = 20.0  # tilt limit
    slope_radius: float = 0.6  # m, half-width of the plane fit for the slope
    max_rock: float = 0.2  # m above the local plane (belly clearance with margin)
    rock_radius: float = 1.0  # m, half-width of the plane fit for rocks
    min_points: int = 3  # points a cell needs to be known
    min_support: float = 0.3  # known fraction of a fit window needed to judge a cell
    # a step or rock counts only beyond the cells' height uncertainty: each height is taken
    # as an interval of +- noise_sigmas standard deviations (spread of its points + error
    # of their mean), so a cell made of a few scattered stereo points is not a step
    noise_sigmas: float = 1.0


@dataclass
class HazardMap:
    """Hazard layers of an elevation map, all shaped like the grid.

    ``height`` is NaN where unknown; ``slope_deg``, ``step`` and ``rock`` are NaN where they
    could not be judged. ``flags`` holds the bits :data:`UNKNOWN`, :data:`STEP`,
    :data:`SLOPE` and :data:`ROCK`."""

    origin: tuple[float, float]
    resolution: float
    height: np.ndarray
    variance: np.ndarray
    slope_deg: np.ndarray
    step: np.ndarray
    rock: np.ndarray
    flags: np.ndarray
    limits: HazardLimits

    @property
    def unknown(self) -> np.ndarray:
        """Cells that could not be judged (never to be taken as free)."""
        return (self.flags & UNKNOWN) != 0

    @property
    def lethal(self) -> np.ndarray:
        """Cells with a step, a slope or a rock over the limits."""
        return (self.flags & (STEP | SLOPE | ROCK)) != 0

    def cost(self) -> np.ndarray:
        """int8 costs as in nav_msgs/OccupancyGrid: -1 unknown, 100 lethal, else 0..99
        growing with the slope and the step towards their limits."""
        lim = self.limits
        with np.errstate(invalid="ignore"):
            slope = np.nan_to_num(self.slope_deg / lim.max_slope_deg, nan=0.0)
            step = np.nan_to_num(self.step / lim.max_step, nan=0.0)
            rock = np.nan_to_num(np.maximum(self.rock, 0.0) / lim.max_rock, nan=0.0)
        c = np.clip(99.0 * np.maximum.reduce([slope, step, rock]), 0, 99).astype(np.int8)
        c[self.lethal] = COST_LETHAL
        c[self.unknown] = COST_UNKNOWN
        return c

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Meshgrid (X, Y) of cell centres in the map frame."""
        ny, nx = self.height.shape
        xs = self.origin[0] + (np.arange(nx) + 0.5) * self.resolution
        ys = self.origin[1] + (np.arange(ny) + 0.5) * self.resolution
        return np.meshgrid(xs, ys)


class ElevationMap:
    """A square rolling window of cells around the rover, fusing 3-D points in the map frame.
    """

    def __init__(self, size: float = 20.0, resolution: float = 0.1,
                 center: tuple[float, float] = (0.0, 0.0),
                 default_variance: float = 0.05 ** 2) -> None:
        """``size`` m wide (rounded to whole cells), centred near ``center``."""
        if not resolution > 0 or not size > resolution:
            raise ValueError("need resolution > 0 and size > resolution")
        self.resolution = float(resolution)
        self.cells = int(math.ceil(size / resolution))
        self.default_variance = float(default_variance)
        n = self.cells
        self._w = np.zeros((n, n))  # sum of weights
        self._s = np.zeros((n, n))  # sum of w z
        self._q = np.zeros((n, n))  # sum of w z^2
        self._n = np.zeros((n, n), dtype=np.int32)
        self._i0, self._j0 = self._corner_index(*center)

    # -- geometry ---------------------------------------------------------------------------
    def _corner_index(self, x: float, y: float) -> tuple[int, int]:
        """Global lattice index (ix, iy) of the south-west cell of a window centred at xy."""
        half = self.cells // 2
        return (int(math.floor(x / self.resolution)) - half,
                int(math.floor(y / self.resolution)) - half)

    @property
    def origin(self) -> tuple[float, float]:
        """Map-frame (x, y) of the south-west corner of cell [0, 0]."""
        return (self._i0 * self.resolution, self._j0 * self.resolution)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return (self.cells, self.cells)

    @property
    def center(self) -> tuple[float, float]:
        """Map-frame (x, y) of the window's centre."""
        ox, oy = self.origin
        h = 0.5 * self.cells * self.resolution
        return (ox + h, oy + h)

    def index_of(self, x: np.ndarray | float, y: np.ndarray | float
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(ix, iy) cell indices of map-frame points (may fall outside the window)."""
        ix = np.floor(np.asarray(x) / self.resolution).astype(np.int64) - self._i0
        iy = np.floor(np.asarray(y) / self.resolution).astype(np.int64) - self._j0
        return ix, iy

    def recenter(self, x: float, y: float) -> None:
        """Move the window so (x, y) is at its centre; cells leaving it are forgotten and
        the cells entering it start unknown."""
        i0, j0 = self._corner_index(x, y)
        di, dj = i0 - self._i0, j0 - self._j0
        if di == 0 and dj == 0:
            return
        n = self.cells
        for a in (self._w, self._s, self._q, self._n):
            shifted = np.zeros_like(a)
            if abs(di) < n and abs(dj) < n:
                src_r = slice(max(dj, 0), n + min(dj, 0))
                dst_r = slice(max(-dj, 0), n + min(-dj, 0))
                src_c = slice(max(di, 0), n + min(di, 0))
                dst_c = slice(max(-di, 0), n + min(-di, 0))
                shifted[dst_r, dst_c] = a[src_r, src_c]
            a[...] = shifted
        self._i0, self._j0 = i0, j0

    # -- fusion -----------------------------------------------------------------------------
    def add_points(self, points: np.ndarray, variances: np.ndarray | None = None) -> int:
        """Fuse map-frame points (N x 3) with per-point height variances (m^2; default
        ``default_variance``). Returns how many fell inside the window."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        ix, iy = self.index_of(p[:, 0], p[:, 1])
        n = self.cells
        inside = (ix >= 0) & (ix < n) & (iy >= 0) & (iy < n) & np.isfinite(p[:, 2])
        if not np.any(inside):
            return 0
        flat = (iy[inside] * n + ix[inside]).astype(np.intp)
        z = p[inside, 2]
        if variances is None:
            w = np.full(z.shape, 1.0 / self.default_variance)
        else:
            w = 1.0 / np.maximum(np.asarray(variances, dtype=np.float64)[inside], 1e-8)
        size = n * n
        self._w.ravel()[:] += np.bincount(flat, w, size)
        self._s.ravel()[:] += np.bincount(flat, w * z, size)
        self._q.ravel()[:] += np.bincount(flat, w * z * z, size)
        self._n.ravel()[:] += np.bincount(flat, None, size).astype(np.int32)
        return int(flat.size)

    def fade(self, factor: float) -> None:
        """Scale down what the map remembers (0 < factor <= 1), so new points outweigh old
        ones (after a localisation jump, or slowly to forget drift); means are kept."""
        if not 0.0 < factor <= 1.0:
            raise ValueError("fade factor must be in (0, 1]")
        for a in (self._w, self._s, self._q):
            a *= factor

    def clear(self) -> None:
        """Forget every cell."""
        for a in (self._w, self._s, self._q, self._n):
            a[...] = 0

    @property
    def count(self) -> np.ndarray:
        """Points fused into each cell."""
        return self._n.copy()

    @property
    def mean(self) -> np.ndarray:
        """Mean height of each cell (m, map frame), NaN where no point fell."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._w > 0, self._s / self._w, np.nan)

    @property
    def variance(self) -> np.ndarray:
        """Height variance of each cell: spread of its points plus the variance of the mean
        (m^2), NaN where no point fell."""
        with np.errstate(invalid="ignore", divide="ignore"):
            m = self._s / self._w
            spread = np.maximum(self._q / self._w - m * m, 0.0)
            return np.where(self._w > 0, spread + 1.0 / self._w, np.nan)

    def known(self, min_points: int = 3) -> np.ndarray:
        """Cells with at least ``min_points`` points."""
        return self._n >= min_points

    def height_at(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Mean height of the cells under map-frame points (NaN outside or unknown)."""
        ix, iy = self.index_of(x, y)
        n = self.cells
        ok = (ix >= 0) & (ix < n) & (iy >= 0) & (iy < n)
        out = np.full(np.shape(ix), np.nan)
        m = self.mean
        out[ok] = m[iy[ok], ix[ok]]
        return out

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Meshgrid (X, Y) of cell centres in the map frame."""
        ox, oy = self.origin
        c = (np.arange(self.cells) + 0.5) * self.resolution
        return np.meshgrid(ox + c, oy + c)

    def known_points(self, min_points: int = 3) -> np.ndarray:
        """(x, y, mean z) of every known cell, N x 3 (for a PointCloud2)."""
        k = self.known(min_points)
        X, Y = self.cell_centres()
        return np.column_stack([X[k], Y[k], self.mean[k]])

    # -- hazards ----------------------------------------------------------------------------
    def hazards(self, limits: HazardLimits | None = None) -> HazardMap:
        """Judge every cell against the limits (steps, slopes, rocks, unknown)."""
        lim = limits or HazardLimits()
        res = self.resolution
        known = self.known(lim.min_points)
        height = np.where(known, self.mean, np.nan)
        var = np.where(known, self.variance, np.nan)
        slope, _, support_s = _plane_fit(height, known, _half_cells(lim.slope_radius, res),
                                         res)
        _, resid, support_r = _plane_fit(height, known, _half_cells(lim.rock_radius, res), res)
        sd = np.sqrt(np.where(known, self.variance, 0.0))
        step = _step_height(height, known, _half_cells(lim.step_distance, res),
                            lim.noise_sigmas * sd)
        slope_deg = np.degrees(np.arctan(slope))
        flags = np.zeros(known.shape, dtype=np.uint8)
        judged = known & (support_s >= lim.min_support)
        flags[~judged] |= UNKNOWN
        with np.errstate(invalid="ignore"):
            flags[judged & (slope_deg > lim.max_slope_deg)] |= SLOPE
            flags[known & (step > lim.max_step)] |= STEP
            rock = np.abs(resid) - lim.noise_sigmas * sd
            flags[known & (support_r >= lim.min_support) & (rock > lim.max_rock)] |= ROCK
        slope_deg[~judged] = np.nan
        resid[~(known & (support_r >= lim.min_support))] = np.nan
        return HazardMap(self.origin, res, height, var, slope_deg, step, resid, flags, lim)


def _half_cells(radius: float, resolution: float) -> int:
    return max(1, int(round(radius / resolution)))


def _box(a: np.ndarray, half: int) -> np.ndarray:
    k = 2 * half + 1
    return cv2.boxFilter(a, cv2.CV_64F, (k, k), normalize=False,
                         borderType=cv2.BORDER_CONSTANT)


def _plane_fit(height: np.ndarray, known: np.ndarray, half: int, res: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares plane z = a x + b y + c over a (2 half + 1)^2 window of known cells
    around every cell. Returns (gradient magnitude, cell height minus the plane at the cell,
    fraction of the window that was known)."""
    ny, nx = height.shape
    w = known.astype(np.float64)
    z = np.where(known, height, 0.0)
    # coordinates relative to the grid's centre keep the sums well conditioned
    xs = (np.arange(nx) - nx / 2.0) * res
    ys = (np.arange(ny) - ny / 2.0) * res
    X, Y = np.meshgrid(xs, ys)
    s1 = _box(w, half)
    sx, sy, sz = _box(w * X, half), _box(w * Y, half), _box(w * z, half)
    sxx, sxy, syy = _box(w * X * X, half), _box(w * X * Y, half), _box(w * Y * Y, half)
    sxz, syz = _box(w * X * z, half), _box(w * Y * z, half)
    support = s1 / float((2 * half + 1) ** 2)
    # centre the normal equations on each cell's own coordinates
    n = np.maximum(s1, 1.0)
    mx, my, mz = sx / n, sy / n, sz / n
    cxx = sxx / n - mx * mx
    cxy = sxy / n - mx * my
    cyy = syy / n - my * my
    cxz = sxz / n - mx * mz
    cyz = syz / n - my * mz
    det = cxx * cyy - cxy * cxy
    good = (s1 >= 3) & (det > (0.1 * res) ** 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(good, (cxz * cyy - cyz * cxy) / det, np.nan)
        b = np.where(good, (cyz * cxx - cxz * cxy) / det, np.nan)
        plane = mz + a * (X - mx) + b * (Y - my)
    grad = np.hypot(a, b)
    resid = np.where(known & good, height - plane, np.nan)
    return grad, resid, support


def _step_height(height: np.ndarray, known: np.ndarray, half: int,
                 margin: np.ndarray | float = 0.0) -> np.ndarray:
    """Largest height difference between a known cell and a known cell within ``half``
    cells (Chebyshev), NaN for unknown cells. With ``margin`` (m, per cell) each height is
    the interval +- margin and the step is the smallest difference the two intervals allow
    (0 when they overlap)."""
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * half + 1, 2 * half + 1))
    low = (height - margin).astype(np.float32)
    high = (height + margin).astype(np.float32)
    mx = cv2.dilate(np.where(known, low, -1e6).astype(np.float32), k,
                    borderType=cv2.BORDER_CONSTANT, borderValue=-1e6)
    mn = cv2.erode(np.where(known, high, 1e6).astype(np.float32), k,
                   borderType=cv2.BORDER_CONSTANT, borderValue=1e6)
    step = np.maximum(np.maximum(mx - high, low - mn), 0.0).astype(np.float64)
    return np.where(known, step, np.nan)
