"""Global planning figures: time and path cost of our A* (ilrs_robots.core.planning) against
scikit-image's ``MCP_Geometric`` and ``pyastar2d`` on the same costmaps and goals.

Targets (issue 8): 400 m x 400 m at 0.25 m (2.56 M cells) under 0.5 s; 1 km x 1 km at 0.5 m
(4 M cells) under 1.5 s, after compilation (compile time printed separately). Our path cost
must match or beat the peers' under the same cost function: a move between neighbouring
cells a, b costs ``d * (m_a + m_b) / 2`` with ``m = 1 + w * cost`` (MCP_Geometric's own cost
function with costs = m). pyastar2d charges ``m_b`` per move whatever its length, so its path
is scored under ours afterwards.

Terrains: crater fields like the south_pole world (same crater density), costs from
:func:`ilrs_robots.core.costmap.cost_grid` with default rover parameters. Start/goal pairs:
seeded, 50-300 m apart, on passable cells, connected.

    .venv/bin/python bench/bench_planner.py [pairs]
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time

import numpy as np

from ilrs_robots.core import costmap as cm
from ilrs_robots.core import planning as pl
from ilrs_robots.core import terrain as tr

try:
    from skimage.graph import MCP_Geometric
except ImportError as e:  # pragma: no cover - depends on the venv
    MCP_Geometric = None
    SKIMAGE_MISSING = f"scikit-image not installed ({e})"
try:
    import pyastar2d
except ImportError as e:  # pragma: no cover
    pyastar2d = None
    PYASTAR_MISSING = f"pyastar2d not installed ({e})"

# (label, size m, resolution m, target s or None)
MAPS = [("400 m @ 0.5 m", 400.0, 0.5, None),
        ("400 m @ 0.25 m", 400.0, 0.25, 0.5),
        ("1 km @ 0.5 m", 1000.0, 0.5, 1.5)]
CRATERS_PER_M2 = 900 / 400.0 ** 2     # south_pole's density
PARAMS = pl.PlannerParams()


def terrain(size: float, res: float, seed: int) -> tr.Heightmap:
    """A south_pole-like crater field."""
    p = tr.CraterFieldParams(size=(size, size), resolution=res,
                             crater_count=int(CRATERS_PER_M2 * size * size),
                             crater_max_diameter=70.0, depth_ratio=(0.08, 0.2),
                             undulation_amplitude=1.0, pads=[tr.Pad(0.0, 0.0, 12.0, 8.0)])
    hm, _ = tr.crater_field(p, seed)
    return hm


def pairs(grid: cm.CostGrid, count: int, seed: int) -> list[tuple[tuple[float, float],
                                                                  tuple[float, float]]]:
    """Seeded start/goal points 50-300 m apart on passable cells that our planner connects."""
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = grid.bounds
    out = []
    while len(out) < count:
        s = (rng.uniform(xmin, xmax), rng.uniform(ymin, ymax))
        d = rng.uniform(50.0, 300.0)
        a = rng.uniform(-math.pi, math.pi)
        g = (s[0] + d * math.cos(a), s[1] + d * math.sin(a))
        if not (grid.contains(*s) and grid.contains(*g)):
            continue
        if grid.cost_at(*s) >= cm.LETHAL or grid.cost_at(*g) >= cm.LETHAL:
            continue
        try:
            pl.astar(grid, grid.world_to_cell(*s), grid.world_to_cell(*g), PARAMS)
        except pl.PlanningError:
            continue
        out.append((s, g))
    return out


def multipliers(grid: cm.CostGrid) -> np.ndarray:
    """Per-cell multiplier m = 1 + w * cost, inf where impassable."""
    m = 1.0 + PARAMS.cost_weight * grid.cost.astype(np.float64)
    m[~(grid.cost < cm.LETHAL)] = np.inf
    return m


def run_mcp(m: np.ndarray, res: float, s: tuple[int, int], g: tuple[int, int]
            ) -> np.ndarray:
    """MCP_Geometric from s until g is settled; the path's cells."""
    mcp = MCP_Geometric(m, fully_connected=True, sampling=(res, res))
    mcp.find_costs([s], [g], find_all_ends=True)
    return np.array(mcp.traceback(g))


def run_pyastar(w: np.ndarray, s: tuple[int, int], g: tuple[int, int]) -> np.ndarray:
    """pyastar2d with diagonal moves; the path's cells."""
    return pyastar2d.astar_path(w, s, g, allow_diagonal=True)


def timed(fn, *args):  # noqa: ANN001, ANN202 - tiny helper
    """(seconds, result) of fn(*args)."""
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    n_pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    t0 = time.perf_counter()
    compile_s = pl.warm_up()
    print(f"numba kernels ready in {compile_s:.2f} s (compile, or load from cache: "
          f"{time.perf_counter() - t0:.2f} s)")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(other work on the machine slows every column alike)")
    if MCP_Geometric is None:
        print(f"skipping MCP_Geometric: {SKIMAGE_MISSING}")
    if pyastar2d is None:
        print(f"skipping pyastar2d: {PYASTAR_MISSING}")
    header = (f"{'map':<15} {'cells':>6} {'costmap':>8} | {'ours A*':>8} {'ours all':>8} "
              f"{'max':>6} {'target':>7} | {'MCP_Geom':>8} {'pyastar2d':>9} | {'cost ours':>9} "
              f"{'smoothed':>8} {'MCP':>9} {'pyastar':>9} | ok")
    print(header)
    print("-" * len(header))
    for label, size, res, target in MAPS:
        hm = terrain(size, res, seed=11)
        t_cost, grid = timed(cm.cost_grid, hm, cm.CostParams())
        m = multipliers(grid)
        w32 = m.astype(np.float32)
        goals = pairs(grid, n_pairs, seed=5)
        last = (grid, goals[0][0])
        rows = {k: [] for k in ("astar", "plan", "mcp", "pya", "c_ours", "c_smooth", "c_mcp",
                                "c_pya", "gap_mcp")}
        for s_xy, g_xy in goals:
            s = grid.world_to_cell(*s_xy)
            g = grid.world_to_cell(*g_xy)
            ta, (cells, cost, _) = timed(pl.astar, grid, s, g, PARAMS)
            tp, plan = timed(pl.plan_path, grid, s_xy, g_xy, PARAMS)
            rows["astar"].append(ta)
            rows["plan"].append(tp)
            rows["c_ours"].append(cost)
            rows["c_smooth"].append(plan.cost)
            if MCP_Geometric is not None:
                tm, path = timed(run_mcp, m, res, s, g)
                rows["mcp"].append(tm)
                c = pl.grid_path_cost(path, grid, PARAMS)
                rows["c_mcp"].append(c)
                rows["gap_mcp"].append(cost - c)
            if pyastar2d is not None:
                tq, path = timed(run_pyastar, w32, s, g)
                rows["pya"].append(tq)
                rows["c_pya"].append(pl.grid_path_cost(path, grid, PARAMS))

        def med(key: str, rows: dict = rows) -> str:
            return f"{statistics.median(rows[key]):8.3f}" if rows[key] else f"{'-':>8}"

        def mean(key: str, rows: dict = rows) -> str:
            return f"{statistics.fmean(rows[key]):9.1f}" if rows[key] else f"{'-':>9}"

        ok = "yes" if all(gap <= 1e-6 * (1 + c) for gap, c in
                          zip(rows["gap_mcp"], rows["c_mcp"], strict=True)) else "NO"
        t_ok = ""
        if target is not None:
            t_ok = " time ok" if statistics.median(rows["plan"]) < target else " SLOW"
        tgt = f"{target:7.2f}" if target is not None else f"{'-':>7}"
        print(f"{label:<15} {grid.cost.size / 1e6:5.2f}M {t_cost:8.3f} | {med('astar')} "
              f"{med('plan')} {max(rows['plan']):6.3f} {tgt} | {med('mcp')} {med('pya'):>9} | "
              f"{mean('c_ours')} "
              f"{mean('c_smooth'):>8} {mean('c_mcp')} {mean('c_pya')} | {ok}{t_ok}")
    grid, start = last
    enclosed = grid.copy()
    gx, gy = start[0] + 60.0, start[1]
    if not enclosed.contains(gx, gy):
        gx = start[0] - 60.0
    ring = cm.CostGrid(np.zeros_like(enclosed.cost), enclosed.origin, enclosed.resolution)
    ring.mark_lethal(gx, gy, 5.0)
    enclosed.cost[ring.cost >= cm.LETHAL] = cm.LETHAL
    enclosed.cost[enclosed.world_to_cell(gx, gy)] = 0.0   # a free cell walled in
    for check in (True, False):
        p = pl.PlannerParams(check_connectivity=check)
        t, err = timed(_refusal, enclosed, start, (gx, gy), p)
        print(f"unreachable goal on the last map, check_connectivity={check}: refused in "
              f"{t:.3f} s ({err})")
    print("times: median seconds over the pairs; 'ours all' = plan_path (A*, shortcuts, "
          "resampling), 'max' its slowest pair")
    print("costs: mean over the pairs, metres x multiplier; 'smoothed' = our shortened path "
          "(line cost, exact ends)")
    print("ok: our A* cost <= MCP_Geometric's (the exact optimum) on every pair, and our "
          "median time under the target")


def _refusal(grid: cm.CostGrid, s: tuple[float, float], g: tuple[float, float],
             params: pl.PlannerParams) -> str:
    try:
        pl.plan_path(grid, s, g, params)
    except pl.PlanningError as e:
        return e.code.name
    return "planned?!"


if __name__ == "__main__":
    main()
