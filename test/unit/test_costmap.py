"""Traversability costmaps: slope, step, roughness, keep-outs, inflation, unknown cells,
the OccupancyGrid encoding and merging observations into the global map."""

import math

import numpy as np
import pytest

from ilrs_robots.core import costmap as cm
from ilrs_robots.core import terrain as tr

# a bare rover: no inflation, so hazard costs can be read directly
BARE = cm.CostParams(footprint_radius=0.0, inflation_radius=0.0)


def flat(size: float = 20.0, res: float = 0.5) -> tr.Heightmap:
    return tr.empty_grid((size, size), res)


@pytest.mark.parametrize("deg", [10.0, 25.0])
def test_tilted_plane_slope_everywhere_including_edges(deg):
    hm = tr.sloped_plane((30.0, 30.0), 0.5, deg, uphill_azimuth_deg=30.0)
    layers = cm.terrain_layers(hm.heights, hm.resolution, cm.CostParams())
    assert np.allclose(layers.slope_deg, deg, atol=1e-3)
    assert layers.roughness.max() < 1e-3
    assert layers.step.max() < 1e-3


def test_slope_costs_rise_towards_the_tilt_limit_and_are_lethal_above():
    costs = {}
    for deg in (0.0, 5.0, 10.0, 15.0, 19.0, 21.0, 25.0):
        hm = tr.sloped_plane((20.0, 20.0), 0.5, deg, uphill_azimuth_deg=-70.0)
        g = cm.cost_grid(hm, cm.CostParams(max_slope_deg=20.0))
        assert np.ptp(g.cost) < 1e-5  # a plane has one cost everywhere
        costs[deg] = float(g.cost[0, 0])
    assert costs[0.0] == pytest.approx(0.0, abs=1e-6)
    assert costs[10.0] == pytest.approx(0.9 * 0.5 ** 2, abs=1e-3)
    below = [costs[d] for d in (0.0, 5.0, 10.0, 15.0, 19.0)]
    assert all(a < b for a, b in zip(below, below[1:], strict=False))
    assert costs[19.0] < cm.LETHAL
    assert costs[21.0] >= cm.LETHAL and costs[25.0] >= cm.LETHAL


def test_tilt_limit_is_a_parameter():
    hm = tr.sloped_plane((20.0, 20.0), 0.5, 25.0)
    assert cm.cost_grid(hm, cm.CostParams(max_slope_deg=30.0)).cost.max() < cm.LETHAL
    assert cm.cost_grid(hm, cm.CostParams(max_slope_deg=20.0)).cost.min() >= cm.LETHAL


@pytest.mark.parametrize("slope_deg", [0.0, 10.0])
def test_step_height_is_measured_against_the_local_plane(slope_deg):
    hm = tr.sloped_plane((20.0, 20.0), 0.5, slope_deg, uphill_azimuth_deg=90.0)
    hm.heights[20:, :] += 0.4   # a 0.4 m step across the map (rows 19 | 20)
    layers = cm.terrain_layers(hm.heights, hm.resolution, cm.CostParams())
    assert layers.step[19, 10] == pytest.approx(0.4, abs=0.01)
    assert layers.step[20, 10] == pytest.approx(0.4, abs=0.01)
    assert layers.step[5, 10] < 0.01 and layers.step[35, 10] < 0.01
    cost = cm.hazard_costs(layers, cm.CostParams(max_step=0.3))
    assert cost[19, 10] >= cm.LETHAL and cost[20, 10] >= cm.LETHAL
    assert cost[5, 10] < cm.LETHAL
    # the wheel's limit decides: a 0.5 m limit passes the same step
    assert cm.hazard_costs(layers, cm.CostParams(max_step=0.5, max_slope_deg=30.0))[19, 10] \
        < cm.LETHAL


def test_small_step_costs_but_is_not_lethal():
    hm = flat()
    hm.heights[20:, :] += 0.15
    g = cm.cost_grid(hm, BARE)
    assert 0.0 < g.cost[19, 10] < cm.LETHAL
    assert g.cost[5, 10] == pytest.approx(0.0, abs=1e-6)


def test_roughness_is_the_plane_fit_residual_and_noise_is_discounted():
    rng = np.random.default_rng(1)
    hm = flat(40.0)
    hm.heights += rng.normal(0.0, 0.1, hm.shape)
    p = cm.CostParams(plane_window=1.5)
    raw = cm.terrain_layers(hm.heights, hm.resolution, p)
    # 3x3 window: 9 samples, 3 plane parameters -> residual RMS ~ sigma * sqrt(6 / 9)
    assert np.median(raw.roughness) == pytest.approx(0.1 * math.sqrt(6 / 9), rel=0.25)
    told = cm.terrain_layers(hm.heights, hm.resolution, p, variance=0.1 ** 2)
    assert np.median(told.roughness) < 0.03
    assert np.median(told.step) < np.median(raw.step)


def test_keep_out_discs_are_lethal_and_inflated():
    p = cm.CostParams(footprint_radius=1.0, inflation_radius=3.0, inflation_cost=0.6)
    zone = cm.KeepOut(0.0, 0.0, 4.0, "reactor exclusion zone")
    g = cm.cost_grid(flat(40.0), p, keep_outs=[zone])
    assert g.keep_outs == (zone,)
    assert g.cost_at(0.0, 0.0) >= cm.LETHAL
    assert g.cost_at(3.9, 0.0) >= cm.LETHAL
    assert g.cost_at(4.9, 0.0) >= cm.LETHAL          # within the footprint radius of the disc
    beyond = g.cost_at(5.6, 0.0)
    assert 0.0 < beyond < p.inflation_cost
    assert g.cost_at(0.0, -5.6) == pytest.approx(beyond)  # round
    assert g.cost_at(7.6, 0.0) == 0.0                   # past the inflation radius
    assert g.cost_at(15.0, 15.0) == 0.0


def test_inflation_decays_with_distance_from_a_lethal_cell():
    p = cm.CostParams(footprint_radius=1.0, inflation_radius=3.0, inflation_cost=0.6)
    cost = np.zeros((41, 41), np.float32)
    cost[20, 20] = cm.LETHAL
    cm.inflate(cost, 0.5, p)
    along = cost[20, 20:30]   # 0, 0.5, 1.0, ... m from the lethal cell
    assert (along[:3] >= cm.LETHAL).all()        # up to the 1.0 m footprint radius
    ramp = along[3:6]
    assert (ramp < p.inflation_cost).all() and (ramp > 0).all()
    assert all(a > b for a, b in zip(ramp, ramp[1:], strict=False))
    assert (along[6:] == 0).all()                # 3.0 m and beyond
    assert cost[0, 0] == 0.0
    # costlier terrain is kept: inflation only raises costs
    cost2 = np.full((41, 41), 0.8, np.float32)
    cost2[20, 20] = cm.LETHAL
    cm.inflate(cost2, 0.5, p)
    assert cost2[20, 24] == pytest.approx(0.8)


def test_unknown_cells_from_missing_heights_and_high_variance():
    hm = flat()
    hm.heights[5:10, 5:10] = np.nan
    var = np.full(hm.shape, 0.01)
    var[30:35, 30:35] = 4.0
    g = cm.cost_grid(hm, BARE, variance=var)
    unknown = g.unknown_mask()
    assert unknown[7, 7] and unknown[32, 32]
    assert not unknown[20, 20] and g.cost[20, 20] == 0.0
    assert not unknown[32, 20]


def test_world_cell_transforms_follow_occupancy_grid_layout():
    g = cm.CostGrid(np.zeros((10, 20), np.float32), origin=(-5.0, 2.0), resolution=0.5)
    assert g.shape == (10, 20)
    assert g.bounds == (-5.0, 2.0, 5.0, 7.0)
    assert g.world_to_cell(-5.0, 2.0) == (0, 0)
    assert g.world_to_cell(-4.49, 2.51) == (1, 1)
    assert g.cell_to_world(1, 3) == (pytest.approx(-3.25), pytest.approx(2.75))
    assert g.world_to_cell(*g.cell_to_world(7, 13)) == (7, 13)
    assert g.contains(4.99, 6.99) and not g.contains(5.0, 3.0) and not g.contains(0.0, 1.9)
    # a heightmap's nodes are cell centres
    hm = tr.empty_grid((10.0, 6.0), 0.5, center=(1.0, 2.0))
    cg = cm.cost_grid(hm, BARE)
    assert cg.shape == hm.shape
    assert cg.cell_to_world(0, 0) == (pytest.approx(hm.origin[0]), pytest.approx(hm.origin[1]))


def test_occupancy_encoding_and_round_trip():
    cost = np.array([[0.0, 0.004, 0.5], [0.999, 1.0, np.nan]], np.float32)
    g = cm.CostGrid(cost, (1.0, 2.0), 0.25)
    occ = g.to_occupancy()
    assert occ.dtype == np.int8
    assert occ.tolist() == [[0, 0, 50], [99, 100, -1]]
    data = occ.ravel().tolist()   # row-major, row 0 at origin y: OccupancyGrid.data
    back = cm.CostGrid.from_occupancy(data, width=3, height=2, origin=(1.0, 2.0),
                                      resolution=0.25)
    assert back.lethal_mask().tolist() == g.lethal_mask().tolist()
    assert back.unknown_mask().tolist() == g.unknown_mask().tolist()
    assert back.cost[0, 2] == pytest.approx(0.5)
    assert back.to_occupancy().tolist() == occ.tolist()


def test_mark_lethal_adds_an_obstacle():
    g = cm.CostGrid(np.zeros((20, 20), np.float32), (0.0, 0.0), 1.0)
    g.mark_lethal(10.0, 10.0, 2.0)
    assert g.cost_at(10.2, 10.2) >= cm.LETHAL
    assert g.cost_at(13.5, 10.5) == 0.0
    assert g.lethal_mask().sum() == pytest.approx(math.pi * 4, abs=4)


def test_raise_cost_keeps_lethal_cells_and_fills_unknown_ones():
    cost = np.zeros((20, 20), np.float32)
    cost[10, 10], cost[10, 11], cost[10, 12], cost[11, 10] = cm.LETHAL, 0.95, np.nan, 0.2
    g = cm.CostGrid(cost, (0.0, 0.0), 1.0)
    g.raise_cost(10.5, 10.5, 2.0, 0.9)
    assert g.cost_at(10.5, 10.5) >= cm.LETHAL  # lethal stays lethal
    assert g.cost_at(11.5, 10.5) == pytest.approx(0.95)  # costlier stays
    assert g.cost_at(12.5, 10.5) == pytest.approx(0.9)  # unknown takes the cost
    assert g.cost_at(10.5, 11.5) == pytest.approx(0.9)  # cheaper is raised
    assert g.cost_at(14.5, 10.5) == 0.0  # outside the disc
    assert int((g.cost == np.float32(0.9)).sum()) == pytest.approx(math.pi * 4 - 2, abs=4)
    g.raise_cost(-50.0, -50.0, 1.0, 0.9)  # off the grid: nothing
    assert g.cost[0, 0] == 0.0


def test_params_are_validated():
    with pytest.raises(ValueError, match="max_slope_deg"):
        cm.CostParams(max_slope_deg=0.0)
    with pytest.raises(ValueError, match="inflation_radius"):
        cm.CostParams(footprint_radius=2.0, inflation_radius=1.0)


def test_merging_observations_replaces_uncertain_prior_cells():
    prior = flat(60.0, 2.0)
    p = cm.CostParams(footprint_radius=1.0, inflation_radius=2.0)
    gm = cm.GlobalCostmap(prior, p, prior_variance=0.15 ** 2, resolution=0.5)
    assert gm.grid.shape == (121, 121) and gm.grid.lethal_mask().sum() == 0
    # a stereo patch around (5, 5): a 0.5 m high boulder, observed precisely
    local = tr.empty_grid((6.0, 6.0), 0.1, center=(5.0, 5.0))
    X, Y = local.grid()
    local.heights[np.hypot(X - 5.0, Y - 5.0) < 1.0] = 0.5
    var = np.full(local.shape, 0.01 ** 2)
    var[:, :5] = np.nan                               # no data on the western strip
    changed = gm.merge(local, var)
    assert changed is not None
    rows, cols = changed
    r, c = gm.grid.world_to_cell(5.0, 6.0)
    assert rows.start <= r < rows.stop and cols.start <= c < cols.stop
    assert gm.grid.cost_at(5.0, 6.0) >= cm.LETHAL    # the boulder's edge: a 0.5 m step
    assert gm.grid.cost_at(20.0, 20.0) == 0.0
    assert gm.variance[gm.heights.shape[0] // 2, gm.heights.shape[1] // 2] == 0.15 ** 2
    # the windowed update equals a full rebuild from the merged heights
    full = cm.cost_grid(gm.heights, p, (), gm.variance)
    np.testing.assert_allclose(gm.grid.cost, full.cost, atol=1e-6)
    # an uncertain observation does not overwrite
    before = gm.heights.heights.copy()
    assert gm.merge(local, np.full(local.shape, 1.0)) is None
    assert np.array_equal(before, gm.heights.heights)


def test_merging_a_cell_grid_matches_merging_its_nodes():
    prior = flat(30.0, 1.0)
    p = cm.CostParams(footprint_radius=0.5, inflation_radius=1.0)
    a = cm.GlobalCostmap(prior, p, prior_variance=0.1, resolution=0.5)
    b = cm.GlobalCostmap(prior, p, prior_variance=0.1, resolution=0.5)
    rng = np.random.default_rng(3)
    cells = rng.normal(0.0, 0.3, (40, 40))    # 0.1 m cells, corner at (-2, -2)
    var = np.full(cells.shape, 0.001)
    a.merge_cells(cells, var, origin=(-2.0, -2.0), resolution=0.1)
    b.merge(tr.Heightmap(cells, (-1.95, -1.95), 0.1), var)
    assert np.array_equal(a.heights.heights, b.heights.heights)
    assert not np.array_equal(a.heights.heights, prior.resample(0.5).heights)
    np.testing.assert_array_equal(a.grid.cost, b.grid.cost)


def test_small_hazards_of_a_finer_map_are_held_as_obstacles_and_cleared_when_seen_free():
    """A rock narrower than a global cell: its heights, sampled at the 0.5 m nodes, miss it;
    the finer map's hazard cells mark it (inflated like any hazard) and clear it again."""
    prior = flat(40.0, 1.0)
    p = cm.CostParams(footprint_radius=1.0, inflation_radius=2.0)
    gm = cm.GlobalCostmap(prior, p, prior_variance=0.15 ** 2, resolution=0.5)
    # a 6 m x 6 m local map of 0.1 m cells, corner at (2, 2): a 0.2 m rock at (5.1, 5.1)
    lethal = np.zeros((60, 60), dtype=bool)
    lethal[30:32, 30:32] = True
    judged = np.ones_like(lethal)
    changed = gm.merge_obstacles(lethal, judged, origin=(2.0, 2.0), resolution=0.1)
    assert changed is not None
    assert gm.grid.cost_at(5.1, 5.1) >= cm.LETHAL
    assert gm.grid.cost_at(5.1 + 0.9, 5.1) >= cm.LETHAL     # inflated by the footprint
    assert 0.0 < gm.grid.cost_at(5.1 + 1.6, 5.1) < cm.LETHAL  # then the decaying band
    assert gm.grid.cost_at(12.0, 12.0) == 0.0
    # the windowed update equals a full rebuild with the obstacle layer
    full = cm.cost_grid(gm.heights, p, (), gm.variance)
    full_cost = cm._costs(gm.heights.heights, 0.5, full.origin, p, (), gm.variance,
                          gm.obstacles)
    np.testing.assert_allclose(gm.grid.cost, full_cost, atol=1e-6)
    # the same again changes nothing
    assert gm.merge_obstacles(lethal, judged, origin=(2.0, 2.0), resolution=0.1) is None
    # seen again from afar, a quarter of the area judged: not enough to clear
    sparse = np.zeros_like(judged)
    sparse[::2, ::2] = True
    assert gm.merge_obstacles(np.zeros_like(lethal), sparse, (2.0, 2.0), 0.1) is None
    assert gm.grid.cost_at(5.1, 5.1) >= cm.LETHAL
    # seen free: cleared, costs back to the terrain's
    assert gm.merge_obstacles(np.zeros_like(lethal), judged, (2.0, 2.0), 0.1) is not None
    assert not gm.obstacles.any()
    assert gm.grid.lethal_mask().sum() == 0
    with pytest.raises(ValueError, match="one shape"):
        gm.merge_obstacles(lethal, judged[:, :10], (2.0, 2.0), 0.1)
