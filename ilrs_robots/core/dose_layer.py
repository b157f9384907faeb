"""From dose-rate readings along the rover's path to a dose map and a navigation cost layer.
Pure numpy; the ``radiation_mapper`` node feeds it messages and publishes what it returns.

- :class:`SampleLog` keeps the readings worth mapping: one per ``min_spacing`` metres driven,
  and one per ``dwell_interval`` seconds while the rover stands (a dwell's readings sharpen
  the dose there), at most ``max_samples`` (the oldest dropped).
- :func:`map_axes` lays the map's cell centres over a fixed area, or over the samples'
  bounding box grown by a margin.
- :func:`build_dose_map` locates the sources (inverse-square fit) and interpolates around
  them (Gaussian process): :mod:`ilrs_robots.core.radiation_mapping`.
- :func:`dose_cost` turns dose rates into traversal costs on a log scale: 0 at or below
  ``low`` uSv/h, rising to 0.99 at ``high``; cells at or above ``lethal`` (if set) are lethal.
  Cells the map is unsure of (log-stddev over ``max_log_std``) cost nothing: the layer only
  ever raises a cost where the dose is known to be high.
- :func:`compute_layer` does all of it at once: the cost grid, the map's cells as points and
  the sources, as the ``radiation_mapper`` node publishes them.
- :func:`overlay_max` raises a costmap's cells to a layer's costs where the layer is higher.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ilrs_robots.core.costmap import LETHAL, CostGrid
from ilrs_robots.core.radiation_mapping import (
    DoseMap,
    SourceFit,
    dose_map,
    localize_sources,
)


@dataclass(frozen=True)
class DoseSample:
    """One reading where it was taken: position (m, map frame), dose rate and its stddev
    (uSv/h), time (s)."""

    x: float
    y: float
    z: float
    dose_rate: float
    stddev: float
    stamp: float


class SampleLog:
    """The readings kept for mapping (see the module docstring)."""

    def __init__(self, min_spacing: float = 0.5, dwell_interval: float = 10.0,
                 max_samples: int = 2000) -> None:
        self.min_spacing = min_spacing
        self.dwell_interval = dwell_interval
        self.samples: deque[DoseSample] = deque(maxlen=max_samples)
        self.refused = 0

    def add(self, sample: DoseSample) -> bool:
        """Keep ``sample`` if the rover moved or waited enough since the last kept one;
        a non-finite or negative reading is refused (counted in ``refused``)."""
        values = (sample.x, sample.y, sample.z, sample.dose_rate, sample.stddev, sample.stamp)
        if not all(math.isfinite(v) for v in values) or sample.dose_rate < 0 \
                or sample.stddev < 0:
            self.refused += 1
            return False
        if self.samples:
            last = self.samples[-1]
            moved = math.hypot(sample.x - last.x, sample.y - last.y)
            if moved < self.min_spacing and sample.stamp - last.stamp < self.dwell_interval:
                return False
        self.samples.append(sample)
        return True

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(points (n, 3), dose rates (n,), stddevs (n,)) of the kept samples."""
        s = list(self.samples)
        return (np.array([(a.x, a.y, a.z) for a in s], dtype=float).reshape(-1, 3),
                np.array([a.dose_rate for a in s], dtype=float),
                np.array([a.stddev for a in s], dtype=float))


def map_axes(points: np.ndarray, resolution: float,
             area: tuple[float, float, float, float] | None = None,
             margin: float = 10.0, max_cells: int = 250_000) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres (xs, ys) covering ``area`` (x_min, y_min, x_max, y_max), or the points'
    bounding box grown by ``margin``; ValueError for an empty area or one of more than
    ``max_cells`` cells."""
    if area is None:
        if len(points) == 0:
            raise ValueError("no samples and no area: nothing to map")
        x0, y0 = points[:, :2].min(axis=0) - margin
        x1, y1 = points[:, :2].max(axis=0) + margin
    else:
        x0, y0, x1, y1 = area
    if not (x1 > x0 and y1 > y0 and resolution > 0):
        raise ValueError(f"empty map area ({x0:g}, {y0:g}) .. ({x1:g}, {y1:g}) at "
                         f"{resolution:g} m")
    nx = max(1, int(math.ceil((x1 - x0) / resolution)))
    ny = max(1, int(math.ceil((y1 - y0) / resolution)))
    if nx * ny > max_cells:
        raise ValueError(f"a map of {nx} x {ny} cells is more than {max_cells}: a coarser "
                         "resolution or a smaller area")
    return (x0 + (np.arange(nx) + 0.5) * resolution, y0 + (np.arange(ny) + 0.5) * resolution)


def build_dose_map(log: SampleLog, xs: np.ndarray, ys: np.ndarray, max_sources: int = 3,
                   min_samples: int = 10, max_map_samples: int = 400
                   ) -> tuple[DoseMap, SourceFit | None]:
    """The dose map on ``xs`` x ``ys`` at the samples' mean height, and the sources fitted
    (None when there are fewer than ``min_samples`` samples or the fit fails: the map is
    then the samples' interpolation alone). At most ``max_map_samples`` samples, evenly
    thinned, take part: the Gaussian process costs the cube of their number."""
    points, dose, stddev = log.arrays()
    if len(dose) > max_map_samples:
        keep = np.linspace(0, len(dose) - 1, max_map_samples).round().astype(int)
        points, dose, stddev = points[keep], dose[keep], stddev[keep]
    if len(dose) < 2:
        raise ValueError(f"{len(dose)} sample(s): too few to map")
    fit = None
    if len(dose) >= max(5, min_samples):
        try:
            fit = localize_sources(points, dose, stddev, max_sources=max_sources)
        except (ValueError, np.linalg.LinAlgError):
            fit = None
    z = float(points[:, 2].mean())
    return dose_map(points, dose, stddev, xs, ys, z, fit=fit, max_samples=max_map_samples), fit


def dose_cost(dmap: DoseMap, low: float, high: float, lethal: float = 0.0,
              max_log_std: float = 1.0) -> np.ndarray:
    """Costs (rows = ys, cols = xs) of the dose map's cells (see the module docstring)."""
    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high, got low={low:g}, high={high:g}")
    d = np.maximum(dmap.dose, 1e-12)
    cost = np.clip(np.log(d / low) / math.log(high / low), 0.0, 1.0) * 0.99
    if lethal > 0:
        cost[d >= lethal] = LETHAL
    cost[dmap.log_stddev > max_log_std] = 0.0
    return cost.astype(np.float32)


@dataclass(frozen=True)
class DoseLayer:
    """One update's outputs: the cost ``grid``, the map's cells as ``points`` (N x 5: x y z
    dose_rate dose_rate_stddev), the ``fit`` of the sources (None: none located) and the
    map's ``peak`` dose rate (uSv/h)."""

    grid: CostGrid
    points: np.ndarray
    fit: SourceFit | None
    peak: float


def compute_layer(log: SampleLog, resolution: float,
                  area: tuple[float, float, float, float] | None = None, margin: float = 10.0,
                  max_sources: int = 3, min_samples: int = 10, max_map_samples: int = 400,
                  low: float = 1.0, high: float = 100.0, lethal: float = 0.0) -> DoseLayer:
    """The dose map, its cost layer and the sources from the log's samples (see
    :func:`map_axes`, :func:`build_dose_map`, :func:`dose_cost`). Raises ValueError or
    LinAlgError when they cannot be computed."""
    xs, ys = map_axes(log.arrays()[0], resolution, area, margin)
    dmap, fit = build_dose_map(log, xs, ys, max_sources, min_samples, max_map_samples)
    cost = dose_cost(dmap, low, high, lethal)
    origin = (float(xs[0] - resolution / 2), float(ys[0] - resolution / 2))
    gx, gy = np.meshgrid(xs, ys)
    points = np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, dmap.z),
                              dmap.dose.ravel(), dmap.stddev.ravel()])
    return DoseLayer(CostGrid(cost, origin, resolution), points, fit, float(dmap.dose.max()))


def overlay_max(base: CostGrid, layer: CostGrid) -> CostGrid:
    """``base`` with each cell raised to the ``layer``'s cost at its centre where that is
    higher (an unknown base cell takes a positive layer cost; a lethal one stays lethal).
    Cells off the layer keep their cost."""
    rows, cols = base.shape
    res, (ox, oy) = base.resolution, base.origin
    xmin, ymin, xmax, ymax = layer.bounds
    # the base cells whose centres may lie on the layer
    r0, r1 = max(0, math.floor((ymin - oy) / res)), min(rows, math.ceil((ymax - oy) / res))
    c0, c1 = max(0, math.floor((xmin - ox) / res)), min(cols, math.ceil((xmax - ox) / res))
    out = base.copy()
    if r0 >= r1 or c0 >= c1:
        return out
    r, c = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    x, y = base.cell_to_world(r, c)
    lr = np.floor((np.asarray(y) - layer.origin[1]) / layer.resolution).astype(int)
    lc = np.floor((np.asarray(x) - layer.origin[0]) / layer.resolution).astype(int)
    inside = (lr >= 0) & (lr < layer.shape[0]) & (lc >= 0) & (lc < layer.shape[1])
    add = np.zeros(r.shape, dtype=np.float32)
    add[inside] = np.nan_to_num(layer.cost[lr[inside], lc[inside]], nan=0.0)
    window = out.cost[r0:r1, c0:c1]  # a view: written in place
    raise_to = (add > np.nan_to_num(window, nan=-1.0)) & ((add > 0) | ~np.isnan(window))
    window[raise_to] = add[raise_to]
    return out
