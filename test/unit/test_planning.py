"""Global planner: optimality against a brute-force Dijkstra, routing around obstacles,
path shortening and resampling, refusals with their codes, blocked-path detection, and a plan
across the south_pole world's prior map."""

import heapq
import math

import numpy as np
import pytest

from ilrs_robots.core import costmap as cm
from ilrs_robots.core import planning as pl
from ilrs_robots.core import terrain as tr
from ilrs_robots.sim.world import build_heightmap, load_world, prior_map


def dijkstra(cost: np.ndarray, res: float, start: tuple[int, int], goal: tuple[int, int],
             weight: float, unknown_cost: float | None) -> float:
    """Textbook Dijkstra over the 8-connected grid with the planner's cost function."""
    rows, cols = cost.shape

    def mult(r: int, c: int) -> float | None:
        v = float(cost[r, c])
        if math.isnan(v):
            return None if unknown_cost is None else 1.0 + weight * unknown_cost
        return None if v >= cm.LETHAL else 1.0 + weight * v

    best = {start: 0.0}
    queue = [(0.0, start)]
    done = set()
    while queue:
        d, (r, c) = heapq.heappop(queue)
        if (r, c) in done:
            continue
        done.add((r, c))
        if (r, c) == goal:
            return d
        m_here = mult(r, c)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr, dc) == (0, 0) or not (0 <= rr < rows and 0 <= cc < cols):
                    continue
                m = mult(rr, cc)
                if m is None:
                    continue
                nd = d + math.hypot(dr, dc) * res * 0.5 * (m_here + m)
                if nd < best.get((rr, cc), math.inf):
                    best[(rr, cc)] = nd
                    heapq.heappush(queue, (nd, (rr, cc)))
    return math.inf


def random_grid(rng: np.random.Generator, rows: int, cols: int, wall: bool) -> np.ndarray:
    """Random costs with lethal and unknown cells; ``wall``: a lethal column splits it."""
    cost = (rng.random((rows, cols)) ** 2).astype(np.float32) * 0.95
    cost[rng.random((rows, cols)) < 0.25] = cm.LETHAL
    cost[rng.random((rows, cols)) < 0.05] = np.nan
    if wall:
        cost[:, cols // 2] = cm.LETHAL
    return cost


@pytest.mark.parametrize("unknown_cost", [None, 0.4])
def test_astar_is_optimal_against_brute_force_dijkstra(unknown_cost):
    rng = np.random.default_rng(42)
    params = pl.PlannerParams(cost_weight=3.0, unknown_cost=unknown_cost)
    found = unreachable = 0
    for trial in range(60):
        rows, cols = rng.integers(5, 18, size=2)
        cost = random_grid(rng, int(rows), int(cols), wall=trial % 5 == 0)
        grid = cm.CostGrid(cost, (0.0, 0.0), 0.5)
        free = np.argwhere(pl.passable_mask(grid, params))
        if len(free) < 2:
            continue
        s, g = (tuple(int(v) for v in free[i]) for i in rng.choice(len(free), 2, replace=False))
        want = dijkstra(cost, 0.5, s, g, 3.0, unknown_cost)
        if math.isinf(want):
            with pytest.raises(pl.PlanningError) as e:
                pl.astar(grid, s, g, params)
            assert e.value.code == pl.PlanError.NO_VALID_PATH
            assert not pl.connected(grid, s, g, params)
            unreachable += 1
            continue
        cells, got, _ = pl.astar(grid, s, g, params)
        assert got == pytest.approx(want, rel=1e-9)
        assert tuple(cells[0]) == s and tuple(cells[-1]) == g
        assert pl.grid_path_cost(cells, grid, params) == pytest.approx(want, rel=1e-9)
        assert pl.connected(grid, s, g, params)
        found += 1
    assert found >= 20 and unreachable >= 3   # both outcomes were exercised


def test_cost_weight_trades_distance_for_cheaper_ground():
    cost = np.zeros((30, 60), np.float32)
    cost[5:25, 20:40] = 0.6   # a costly patch on the straight line
    grid = cm.CostGrid(cost, (0.0, 0.0), 1.0)
    through = pl.plan_path(grid, (5.5, 15.5), (55.5, 15.5), pl.PlannerParams(cost_weight=0.1))
    around = pl.plan_path(grid, (5.5, 15.5), (55.5, 15.5), pl.PlannerParams(cost_weight=5.0))
    assert through.length == pytest.approx(50.0, abs=0.5)
    assert around.length > 55.0
    assert np.isfinite(pl.line_cost(around.vertices, grid, max_cost=0.5))


def wall_grid() -> cm.CostGrid:
    """40 m x 30 m, 0.5 m cells, a wall across x = 20 m with a gap at y in [22, 26]."""
    cost = np.zeros((60, 80), np.float32)
    cost[:44, 39:41] = cm.LETHAL
    cost[52:, 39:41] = cm.LETHAL
    return cm.CostGrid(cost, (0.0, 0.0), 0.5)


def test_routes_around_an_obstacle_through_the_gap():
    grid = wall_grid()
    plan = pl.plan_path(grid, (5.0, 5.0), (35.0, 5.0))
    assert plan.poses[0, :2] == pytest.approx((5.0, 5.0))
    assert plan.poses[-1, :2] == pytest.approx((35.0, 5.0))
    crossing = plan.poses[np.argmin(np.abs(plan.poses[:, 0] - 20.0))]
    assert 22.0 <= crossing[1] <= 26.0
    # every straight segment of the final path stays on passable cells
    assert np.isfinite(pl.line_cost(plan.poses, grid))
    assert not pl.path_blocked(plan, grid)
    # shortened: a handful of vertices, shorter and no costlier than the grid path
    assert len(plan.vertices) <= 6 < len(plan.cells)
    assert plan.cost <= plan.grid_cost + 1e-6
    assert plan.length == pytest.approx(2 * math.hypot(15.0, 17.5), rel=0.05)


def test_shortcuts_never_cross_high_cost_cells():
    cost = np.zeros((40, 40), np.float32)
    cost[10:30, 15:25] = 0.7      # above max_shortcut_cost, cheaper to skirt than to cross
    grid = cm.CostGrid(cost, (0.0, 0.0), 1.0)
    params = pl.PlannerParams(cost_weight=3.0, max_shortcut_cost=0.5)
    plan = pl.plan_path(grid, (2.5, 20.5), (37.5, 20.5), params)
    assert np.isfinite(pl.line_cost(plan.vertices, grid, params, max_cost=0.5))
    assert plan.cost <= plan.grid_cost + 1e-6


def test_straight_line_on_open_ground_and_resampled_poses():
    grid = cm.CostGrid(np.zeros((100, 100), np.float32), (-25.0, -25.0), 0.5)
    plan = pl.plan_path(grid, (-20.0, -20.0), (20.0, 10.0), pl.PlannerParams(
        waypoint_spacing=1.0), goal_yaw=1.0)
    assert len(plan.vertices) == 2
    assert plan.length == pytest.approx(50.0, abs=1e-6)
    steps = np.hypot(*np.diff(plan.poses[:, :2], axis=0).T)
    assert steps.max() <= 1.0 + 1e-9 and steps.min() > 0.5
    heading = math.atan2(30.0, 40.0)
    assert plan.poses[:-1, 2] == pytest.approx(np.full(len(plan.poses) - 1, heading))
    assert plan.poses[-1, 2] == pytest.approx(1.0)


def test_resample_keeps_every_vertex():
    v = np.array([[0.0, 0.0], [2.2, 0.0], [2.2, 1.3]])
    poses = pl.resample(v, 0.5)
    for p in v:
        assert np.min(np.hypot(*(poses[:, :2] - p).T)) < 1e-12
    assert poses[2, 2] == pytest.approx(0.0) and poses[-1, 2] == pytest.approx(math.pi / 2)


def keep_out_grid() -> cm.CostGrid:
    hm = tr.Heightmap(np.zeros((81, 81)), (-20.0, -20.0), 0.5)
    zone = cm.KeepOut(10.0, 10.0, 5.0, "reactor exclusion zone")
    grid = cm.cost_grid(hm, cm.CostParams(footprint_radius=1.0, inflation_radius=2.0),
                        keep_outs=[zone])
    grid.mark_lethal(-10.0, 10.0, 1.0)                    # a boulder, not a keep-out
    grid.cost[grid.world_to_cell(-10.0, -10.0)] = np.nan  # an unmapped cell
    # an enclosed pocket: a ring of lethal cells around (0, -12)
    ring = cm.CostGrid(np.zeros_like(grid.cost), grid.origin, grid.resolution)
    ring.mark_lethal(0.0, -12.0, 4.0)
    inner = cm.CostGrid(np.zeros_like(grid.cost), grid.origin, grid.resolution)
    inner.mark_lethal(0.0, -12.0, 2.5)
    grid.cost[(ring.cost >= 1) & (inner.cost < 1)] = cm.LETHAL
    return grid


@pytest.mark.parametrize("start, goal, code, words", [
    ((-30.0, 0.0), (0.0, 0.0), pl.PlanError.START_OUTSIDE_MAP, "start"),
    ((0.0, 0.0), (0.0, 25.0), pl.PlanError.GOAL_OUTSIDE_MAP, "off the map"),
    ((0.0, 0.0), (10.0, 11.0), pl.PlanError.GOAL_IN_KEEP_OUT, "reactor exclusion zone"),
    ((0.0, 0.0), (15.6, 10.0), pl.PlanError.GOAL_IN_KEEP_OUT, "keep-out"),  # its inflation
    ((0.0, 0.0), (-10.0, 10.0), pl.PlanError.GOAL_OCCUPIED, "hazard"),
    ((0.0, 0.0), (-10.0, -10.0), pl.PlanError.GOAL_UNKNOWN, "unmapped"),
    ((0.0, 0.0), (0.0, -12.0), pl.PlanError.NO_VALID_PATH, "unreachable"),
    ((10.0, 10.0), (0.0, 0.0), pl.PlanError.START_OCCUPIED, "start"),
])
def test_refusals_carry_a_code_and_a_reason(start, goal, code, words):
    grid = keep_out_grid()
    with pytest.raises(pl.PlanningError) as e:
        pl.plan_path(grid, start, goal)
    assert e.value.code == code
    assert words in str(e.value)


def test_unreachable_without_the_connectivity_check_and_the_expansion_limit():
    grid = keep_out_grid()
    with pytest.raises(pl.PlanningError) as e:
        pl.plan_path(grid, (0.0, 0.0), (0.0, -12.0), pl.PlannerParams(check_connectivity=False))
    assert e.value.code == pl.PlanError.NO_VALID_PATH
    with pytest.raises(pl.PlanningError) as e:
        pl.plan_path(grid, (-15.0, 15.0), (15.0, -15.0), pl.PlannerParams(max_expansions=50))
    assert e.value.code == pl.PlanError.TIMEOUT


def test_unknown_cells_may_be_allowed_at_a_cost():
    grid = keep_out_grid()
    plan = pl.plan_path(grid, (0.0, 0.0), (-10.0, -10.0), pl.PlannerParams(unknown_cost=0.5))
    assert plan.poses[-1, :2] == pytest.approx((-10.0, -10.0))


def test_a_start_inside_a_hazard_escapes_to_the_nearest_free_cell():
    grid = keep_out_grid()
    plan = pl.plan_path(grid, (-10.0, 10.0), (-10.0, 0.0))   # starts on the boulder
    assert plan.escaped_start
    assert plan.poses[0, :2] == pytest.approx((-10.0, 10.0))
    assert plan.poses[-1, :2] == pytest.approx((-10.0, 0.0))
    assert not pl.path_blocked(plan, grid)   # leaving the cell the rover is in is allowed
    # but not through a hazard later on
    assert pl.path_blocked(plan.poses[::-1], grid)


def test_path_blocked_when_an_obstacle_lands_on_the_path():
    grid = wall_grid()
    plan = pl.plan_path(grid, (5.0, 5.0), (35.0, 5.0))
    assert not pl.path_blocked(plan, grid)
    changed = grid.copy()
    changed.mark_lethal(30.0, 25.0, 0.4)              # away from the path
    assert not pl.path_blocked(plan, changed)
    mid = plan.poses[len(plan.poses) * 3 // 4]
    changed.mark_lethal(mid[0], mid[1], 1.0)          # a rock dropped on the path
    assert pl.path_blocked(plan, changed)
    i = pl.first_blocked(plan, changed)
    assert abs(i - len(plan.poses) * 3 // 4) <= 3
    # the remaining path from past the rock is clear again
    assert not pl.path_blocked(plan.poses[i + 4:], changed)
    # high cost blocks only when asked to
    costly = grid.copy()
    costly.cost[costly.world_to_cell(mid[0], mid[1])] = 0.8
    assert not pl.path_blocked(plan, costly)
    assert pl.path_blocked(plan, costly, max_cost=0.7)
    # unknown cells block unless the planner may enter them
    unknown = grid.copy()
    unknown.cost[unknown.world_to_cell(mid[0], mid[1])] = np.nan
    assert pl.path_blocked(plan, unknown)
    assert not pl.path_blocked(plan, unknown, pl.PlannerParams(unknown_cost=0.3))


def test_off_map_path_is_blocked():
    grid = wall_grid()
    assert pl.path_blocked(np.array([[5.0, 5.0], [5.0, 40.0]]), grid)


@pytest.fixture(scope="module")
def south_pole():
    world = load_world("south_pole")
    hm = build_heightmap(world)
    return world, hm, prior_map(world, hm)


def site_keep_outs(world) -> list[cm.KeepOut]:
    """Structures as discs around their footprint, and the reactor's exclusion zone."""
    zones = []
    for site in world.sites.values():
        for o in site.objects:
            if o.role == "marker":
                continue
            if o.type == "box":
                r = math.hypot(o.size[0], o.size[1])
            elif o.type == "berm":
                r = o.radius + o.size[0]
            else:
                r = o.size[0]
            zones.append(cm.KeepOut(site.position[0] + o.position[0],
                                    site.position[1] + o.position[1], r, o.name))
    zones.append(cm.KeepOut(*world.site("reactor_site").position, 20.0,
                            "reactor exclusion zone"))
    return zones


def slope_along(poses: np.ndarray, slope: np.ndarray, origin: tuple[float, float],
                res: float) -> np.ndarray:
    """``slope`` (a node layer) at points every ~0.1 m along the poses."""
    d = np.diff(poses[:, :2], axis=0)
    pts = np.vstack([poses[:-1, :2] + f * d for f in np.linspace(0.0, 1.0, 6)])
    ix = np.round((pts[:, 0] - origin[0]) / res).astype(int)
    iy = np.round((pts[:, 1] - origin[1]) / res).astype(int)
    return slope[iy, ix]


def test_plan_across_the_south_pole_prior_map_avoids_steep_slopes(south_pole):
    world, hm, prior = south_pole
    # rover-scale planes where the map is observed, 3 DEM cells where it is the noisy prior
    params = cm.CostParams(max_slope_deg=20.0, plane_window=1.5,
                           noisy_plane_window=3 * prior.resolution)
    gm = cm.GlobalCostmap(prior, params, site_keep_outs(world),
                          prior_variance=world.prior_map.noise_sigma ** 2, resolution=0.5)
    # what the orbiter can resolve: the exact terrain at the DEM's resolution, no noise
    orbital = hm.resample(prior.resolution).resample(0.5)
    orbital_slope = cm.terrain_layers(orbital.heights, 0.5,
                                      cm.CostParams(plane_window=3 * prior.resolution)
                                      ).slope_deg
    rover_slope = cm.terrain_layers(hm.heights, hm.resolution,
                                    cm.CostParams(plane_window=1.5)).slope_deg
    seen = cm.terrain_layers(gm.heights.heights, 0.5, params, gm.variance).slope_deg

    start = world.rover_start.position
    landing = world.site("landing_zone").position
    beside_lander = (landing[0] + 8.0, landing[1])
    goals = (world.site("construction_site").position, beside_lander)
    for goal in goals:
        plan = pl.plan_path(gm.grid, start, goal)
        assert plan.poses[0, :2] == pytest.approx(start)
        assert plan.poses[-1, :2] == pytest.approx(goal)
        assert not pl.path_blocked(plan, gm.grid)
        assert plan.length < 1.2 * math.dist(start, goal)
        assert slope_along(plan.poses, seen, gm.heights.origin, 0.5).max() <= 20.0
        assert slope_along(plan.poses, orbital_slope, orbital.origin, 0.5).max() <= 20.0
        for zone in gm.grid.keep_outs:
            assert np.hypot(*(plan.poses[:, :2] - (zone.x, zone.y)).T).min() > zone.radius
    # the reactor and the lander themselves are refused
    for goal in (world.site("reactor_site").position, landing):
        with pytest.raises(pl.PlanningError) as e:
            pl.plan_path(gm.grid, start, goal)
        assert e.value.code == pl.PlanError.GOAL_IN_KEEP_OUT

    # Small craters are below the DEM's resolution: once the rover has mapped the terrain
    # (here: all of it, precisely), the plan keeps to slopes the rover can take.
    assert gm.merge(hm, np.full(hm.shape, 0.02 ** 2)) is not None
    straight = pl.resample(np.array([start, beside_lander]), 0.5)
    assert slope_along(straight, rover_slope, hm.origin, hm.resolution).max() > 25.0
    for goal in goals:
        plan = pl.plan_path(gm.grid, start, goal)
        assert slope_along(plan.poses, rover_slope, hm.origin, hm.resolution).max() <= 20.0
