"""The dose layer: readings kept along the path, the dose map and sources built from them, and
the navigation costs they give (a synthetic field: one source, inverse square, noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilrs_robots.core.costmap import LETHAL, CostGrid
from ilrs_robots.core.dose_layer import (
    DoseSample,
    SampleLog,
    build_dose_map,
    compute_layer,
    dose_cost,
    map_axes,
    overlay_max,
)

SOURCE = np.array([6.0, 0.0, 1.0])
STRENGTH = 400.0  # uSv/h at 1 m
BACKGROUND = 0.2


def field(x: float, y: float, z: float) -> float:
    r2 = max(float(np.sum((np.array([x, y, z]) - SOURCE) ** 2)), 0.09)
    return BACKGROUND + STRENGTH / r2


def surveyed(seed: int = 4) -> SampleLog:
    """A lawnmower survey at 0.3 m/s, a reading a second, 5 % noise."""
    rng = np.random.default_rng(seed)
    log = SampleLog(min_spacing=0.5)
    t = 0.0
    for k, y in enumerate(np.arange(-8.0, 8.01, 2.0)):
        xs = np.arange(-4.0, 16.01, 0.3)
        for x in xs if k % 2 == 0 else xs[::-1]:
            true = field(x, y, 0.8)
            sd = 0.05 * true
            log.add(DoseSample(float(x), float(y), 0.8, max(0.0, true + rng.normal(0, sd)), sd,
                               t))
            t += 1.0
    return log


def test_the_log_keeps_a_sample_per_spacing_driven_or_per_interval_standing() -> None:
    log = SampleLog(min_spacing=0.5, dwell_interval=10.0, max_samples=100)
    for i in range(20):  # 2 m at 0.1 m per reading
        log.add(DoseSample(0.1 * i, 0.0, 0.5, 1.0, 0.1, float(i)))
    assert [round(s.x, 1) for s in log.samples] == [0.0, 0.5, 1.0, 1.5]
    for i in range(30):  # standing 30 s at (5, 0)
        log.add(DoseSample(5.0, 0.0, 0.5, 1.0, 0.1, 100.0 + i))
    assert [s.stamp for s in log.samples if s.x == 5.0] == [100.0, 110.0, 120.0]
    assert not log.add(DoseSample(9.0, 0.0, 0.5, math.nan, 0.1, 200.0))
    assert not log.add(DoseSample(9.0, 0.0, 0.5, -1.0, 0.1, 200.0))
    assert log.refused == 2
    points, dose, sd = log.arrays()
    assert points.shape == (7, 3) and dose.shape == sd.shape == (7,)


def test_the_log_drops_the_oldest_beyond_its_size() -> None:
    log = SampleLog(min_spacing=0.5, max_samples=3)
    for i in range(5):
        log.add(DoseSample(float(i), 0.0, 0.5, 1.0, 0.1, float(i)))
    assert [s.x for s in log.samples] == [2.0, 3.0, 4.0]


def test_map_axes_cover_the_area_or_the_samples_with_a_margin() -> None:
    xs, ys = map_axes(np.zeros((0, 3)), 1.0, area=(0.0, -2.0, 4.0, 2.0))
    assert xs.tolist() == [0.5, 1.5, 2.5, 3.5] and ys.tolist() == [-1.5, -0.5, 0.5, 1.5]
    xs, ys = map_axes(np.array([[0.0, 0.0, 0.0], [10.0, 4.0, 0.0]]), 2.0, margin=5.0)
    assert xs[0] == -4.0 and xs[-1] >= 14.0 and ys[0] == -4.0 and ys[-1] >= 8.0
    with pytest.raises(ValueError, match="no samples"):
        map_axes(np.zeros((0, 3)), 1.0)
    with pytest.raises(ValueError, match="empty map area"):
        map_axes(np.zeros((0, 3)), 1.0, area=(1.0, 0.0, 1.0, 5.0))
    with pytest.raises(ValueError, match="coarser"):
        map_axes(np.zeros((0, 3)), 0.01, area=(0.0, 0.0, 100.0, 100.0))


def test_the_survey_finds_the_source_and_costs_rise_towards_it() -> None:
    log = surveyed()
    xs, ys = map_axes(log.arrays()[0], 1.0, margin=4.0)
    dmap, fit = build_dose_map(log, xs, ys, max_sources=2)
    assert fit is not None and len(fit.sources) >= 1
    best = fit.sources[0]
    assert math.dist(best.position[:2], SOURCE[:2]) < 0.5, best
    assert best.strength == pytest.approx(STRENGTH, rel=0.3)
    # the map agrees with the field where the rover drove, 4 m from the source
    col, row = int(np.argmin(abs(xs - 2.0))), int(np.argmin(abs(ys - 0.0)))
    assert dmap.dose[row, col] == pytest.approx(field(xs[col], ys[row], dmap.z), rel=0.25)
    cost = dose_cost(dmap, low=2.0, high=200.0)
    assert cost.shape == (len(ys), len(xs))
    near = cost[int(np.argmin(abs(ys))), int(np.argmin(abs(xs - 6.0)))]
    far = cost[0, 0]
    assert 0.5 < near <= 0.99 and far == 0.0
    lethal = dose_cost(dmap, low=2.0, high=200.0, lethal=100.0)
    assert lethal[int(np.argmin(abs(ys))), int(np.argmin(abs(xs - 6.0)))] == LETHAL
    assert (lethal >= LETHAL).sum() < 0.1 * lethal.size


def test_compute_layer_gives_the_grid_points_and_sources_of_one_update() -> None:
    layer = compute_layer(surveyed(), 1.0, margin=4.0, max_sources=2, low=2.0, high=200.0)
    grid = layer.grid
    rows, cols = grid.shape
    assert layer.points.shape == (rows * cols, 5)
    # the points are the cells' centres, row by row, with the map's dose rates
    x0, y0 = grid.cell_to_world(0, 0)
    assert layer.points[0, :2] == pytest.approx([x0, y0])
    assert layer.points[cols, :2] == pytest.approx(grid.cell_to_world(1, 0))
    assert layer.peak == pytest.approx(float(layer.points[:, 3].max()))
    assert (layer.points[:, 4] > 0).all()
    # the cost grid is the points' dose rates on the cost scale: highest at the peak
    peak_cell = np.unravel_index(int(np.argmax(layer.points[:, 3])), (rows, cols))
    assert grid.cost[peak_cell] == pytest.approx(float(np.nanmax(grid.cost)))
    assert layer.fit is not None
    assert math.dist(layer.fit.sources[0].position[:2], SOURCE[:2]) < 0.5
    with pytest.raises(ValueError, match="low < high"):
        compute_layer(surveyed(), 1.0, low=5.0, high=5.0)


def test_dose_cost_refuses_a_scale_that_does_not_rise() -> None:
    log = surveyed()
    xs, ys = map_axes(log.arrays()[0], 2.0)
    dmap, _ = build_dose_map(log, xs, ys)
    with pytest.raises(ValueError, match="low < high"):
        dose_cost(dmap, low=10.0, high=5.0)


def test_build_dose_map_needs_samples() -> None:
    log = SampleLog()
    log.add(DoseSample(0.0, 0.0, 0.5, 1.0, 0.1, 0.0))
    with pytest.raises(ValueError, match="too few"):
        build_dose_map(log, np.array([0.5]), np.array([0.5]))


def test_overlay_raises_costs_only() -> None:
    base = CostGrid(np.array([[0.0, 0.2, np.nan, LETHAL],
                              [0.5, 0.5, np.nan, 0.0]], dtype=np.float32), (0.0, 0.0), 1.0)
    # a layer at 2 m cells over the first three columns only
    layer = CostGrid(np.array([[0.4, 0.0]], dtype=np.float32), (0.0, 0.0), 2.0)
    out = overlay_max(base, layer)
    expected = np.array([[0.4, 0.4, np.nan, LETHAL],
                         [0.5, 0.5, np.nan, 0.0]])
    np.testing.assert_allclose(out.cost, expected)
    layer = CostGrid(np.array([[0.0, 0.7]], dtype=np.float32), (0.0, 0.0), 2.0)
    out = overlay_max(base, layer)
    assert out.cost[0, 2] == pytest.approx(0.7) and out.cost[1, 2] == pytest.approx(0.7)
    assert out.cost[0, 3] == LETHAL and out.cost[1, 3] == pytest.approx(0.7)
    assert np.isnan(base.cost[0, 2])  # the base grid is left as it was


def test_overlay_of_a_layer_partly_or_not_at_all_on_the_grid() -> None:
    base = CostGrid(np.zeros((4, 4), dtype=np.float32), (-2.0, -2.0), 1.0)
    corner = CostGrid(np.full((2, 2), 0.5, dtype=np.float32), (1.0, 1.0), 1.0)  # half off
    out = overlay_max(base, corner)
    assert out.cost[3, 3] == pytest.approx(0.5) and float(out.cost.sum()) == pytest.approx(0.5)
    away = CostGrid(np.full((2, 2), 0.5, dtype=np.float32), (10.0, 10.0), 1.0)
    assert float(overlay_max(base, away).cost.sum()) == 0.0
