"""Global path planning on a :class:`~ilrs_robots.core.costmap.CostGrid` (pure, no ROS).

The search is A* on the 8-connected grid of cell centres, compiled with numba. Moving from
cell a to a neighbour b costs ``d * (m_a + m_b) / 2`` with ``d`` the centre distance (m) and
``m = 1 + cost_weight * cost`` the cell's multiplier: half the move lies in each cell (the
cost function of scikit-image's ``MCP_Geometric``). Lethal cells are never entered; unknown
cells are impassable or get ``unknown_cost``. The octile distance is an admissible, consistent
heuristic (m >= 1), so the path found is optimal on the grid.

The grid path is then shortened by line of sight: a straight segment replaces a run of grid
moves when every cell it crosses is passable, none costs more than ``max_shortcut_cost``, and
its exact line cost (length in each cell times the cell's multiplier) is no more than the
grid path's cost over that run. The result is resampled to poses with headings.

Refusals raise :class:`PlanningError` with a :class:`PlanError` code a navigator maps to its
action result. The numbers follow Nav2's ``ComputePathToPose`` error codes where Nav2 has
one; the keep-out and unknown-goal codes are ours.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np
from numba import njit

from ilrs_robots.core.costmap import LETHAL, CostGrid

SQRT2 = math.sqrt(2.0)
_UNREACHABLE = "the goal is unreachable: hazards or keep-out zones cut it off from the start"


class PlanError(IntEnum):
    """Why no path was produced (0 = success)."""

    NONE = 0
    START_OUTSIDE_MAP = 303
    GOAL_OUTSIDE_MAP = 304
    START_OCCUPIED = 305
    GOAL_OCCUPIED = 306
    TIMEOUT = 307
    NO_VALID_PATH = 308
    GOAL_IN_KEEP_OUT = 310
    GOAL_UNKNOWN = 311


class PlanningError(Exception):
    """A refused or failed plan: ``code`` (:class:`PlanError`) and a message for people."""

    def __init__(self, code: PlanError, message: str) -> None:
        super().__init__(message)
        self.code = PlanError(code)
        self.message = message


@dataclass(frozen=True)
class PlannerParams:
    """Planner settings.

    ``cost_weight``: a cell of cost c costs ``1 + cost_weight * c`` per metre.
    ``unknown_cost``: cost of an unknown cell, or None to make unknown cells impassable.
    ``max_shortcut_cost``: shortcuts never cross cells costlier than this;
    ``shortcut_lookahead``: how many cells past a failed shortcut are still tried.
    ``waypoint_spacing``: distance (m) between resampled poses.
    ``start_escape_radius``: a start in a lethal cell is left by the shortest straight move to
    a passable cell within this radius (m); none there = START_OCCUPIED.
    ``max_expansions``: give up (TIMEOUT) after this many expanded cells; 0 = no limit.
    ``check_connectivity``: once A* has expanded a sixteenth of the grid without reaching the
    goal, label the passable cells' 8-connected regions (OpenCV, tens of ms on 4 M cells) so
    an unreachable goal is refused without searching the whole region around the start.
    """

    cost_weight: float = 3.0
    unknown_cost: float | None = None
    max_shortcut_cost: float = 0.5
    waypoint_spacing: float = 0.5
    start_escape_radius: float = 2.0
    max_expansions: int = 0
    check_connectivity: bool = True
    shortcut_lookahead: int = 16

    def __post_init__(self) -> None:
        if not self.cost_weight >= 0:
            raise ValueError("PlannerParams.cost_weight must be >= 0")
        if self.unknown_cost is not None and not 0.0 <= self.unknown_cost < LETHAL:
            raise ValueError("PlannerParams.unknown_cost must be None or in [0, 1)")
        if not self.waypoint_spacing > 0:
            raise ValueError("PlannerParams.waypoint_spacing must be positive")
        if self.start_escape_radius < 0 or self.max_expansions < 0:
            raise ValueError("PlannerParams.start_escape_radius and max_expansions must be "
                             ">= 0")

    @property
    def unknown_multiplier(self) -> float:
        """Multiplier of an unknown cell, or -1 when unknown cells are impassable."""
        if self.unknown_cost is None:
            return -1.0
        return 1.0 + self.cost_weight * self.unknown_cost


@dataclass
class Plan:
    """A planned path.

    ``poses``: (N, 3) x, y, yaw (rad) every ``waypoint_spacing`` along the path, including
    every vertex, from the start to the goal. ``vertices``: (M, 2) the shortened polyline.
    ``cells``: (K, 2) row, col of the optimal grid path. ``grid_cost``: its cost (the A*
    optimum); ``cost``: the line cost of ``vertices`` (<= grid_cost but for the exact start and
    goal points); ``length``: metres along ``vertices``; ``expanded``: cells A* expanded.
    """

    poses: np.ndarray
    vertices: np.ndarray
    cells: np.ndarray
    grid_cost: float
    cost: float
    length: float
    expanded: int
    escaped_start: bool = False


# ---------------------------------------------------------------------------------------
# Compiled kernels
# ---------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _mult(c: float, weight: float, unknown_mult: float) -> float:
    """Cell multiplier, or -1 for an impassable cell."""
    if c != c:  # NaN: unknown
        return unknown_mult
    if c >= 1.0:
        return -1.0
    return 1.0 + weight * c


@njit(cache=True, inline="always")
def _before(a: int, b: int, f: np.ndarray, g: np.ndarray) -> bool:
    """Heap order: lower f first; on ties the deeper node (higher g)."""
    return f[a] < f[b] or (f[a] == f[b] and g[a] > g[b])


@njit(cache=True)
def _sift_up(heap: np.ndarray, pos: np.ndarray, i: int, f: np.ndarray, g: np.ndarray) -> None:
    node = heap[i]
    while i > 0:
        parent = (i - 1) >> 1
        other = heap[parent]
        if _before(node, other, f, g):
            heap[i] = other
            pos[other] = i
            i = parent
        else:
            break
    heap[i] = node
    pos[node] = i


@njit(cache=True)
def _sift_down(heap: np.ndarray, pos: np.ndarray, size: int, f: np.ndarray,
               g: np.ndarray) -> None:
    i = 0
    node = heap[0]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _before(heap[right], heap[child], f, g):
            child = right
        if _before(heap[child], node, f, g):
            heap[i] = heap[child]
            pos[heap[i]] = i
            i = child
        else:
            break
    heap[i] = node
    pos[node] = i


@njit(cache=True)
def _astar(cost: np.ndarray, weight: float, unknown_mult: float, goal: int, res: float,
           limit: int, g: np.ndarray, f: np.ndarray, parent: np.ndarray, pos: np.ndarray,
           heap: np.ndarray, size: int, expanded: int) -> tuple[int, int, int]:
    """A* over the flattened grid from the state in g, f, parent, pos (-1 unseen, -2 closed,
    else index in the heap) and heap[:size]. Returns (status, size, expanded): status 0 the
    goal is reached, 1 unreachable, 2 paused after ``limit`` expansions (0 = no limit); a
    paused search resumes exactly when called again with the returned state."""
    rows, cols = cost.shape
    flat = cost.ravel()
    dr = np.array([-1, -1, -1, 0, 0, 1, 1, 1])
    dc = np.array([-1, 0, 1, -1, 1, -1, 0, 1])
    dd = np.array([SQRT2, 1.0, SQRT2, 1.0, 1.0, SQRT2, 1.0, SQRT2]) * res
    gr = goal // cols
    gc = goal - gr * cols
    diag_extra = (SQRT2 - 2.0) * res
    while size > 0:
        if limit > 0 and expanded >= limit:
            return 2, size, expanded
        node = heap[0]
        size -= 1
        if size > 0:
            heap[0] = heap[size]
            pos[heap[0]] = 0
            _sift_down(heap, pos, size, f, g)
        pos[node] = -2
        if node == goal:
            return 0, size, expanded
        expanded += 1
        r = node // cols
        c = node - r * cols
        m_here = _mult(flat[node], weight, unknown_mult)
        if m_here < 0.0:  # only the start can be impassable (an escaped start is not)
            m_here = 1.0
        g_here = g[node]
        for k in range(8):
            rr = r + dr[k]
            cc = c + dc[k]
            if rr < 0 or rr >= rows or cc < 0 or cc >= cols:
                continue
            nb = rr * cols + cc
            if pos[nb] == -2:
                continue
            m_nb = _mult(flat[nb], weight, unknown_mult)
            if m_nb < 0.0:
                continue
            tentative = g_here + dd[k] * 0.5 * (m_here + m_nb)
            if tentative < g[nb]:
                g[nb] = tentative
                parent[nb] = node
                ar = abs(rr - gr)
                ac = abs(cc - gc)
                f[nb] = tentative + res * (ar + ac) + diag_extra * min(ar, ac)
                if pos[nb] == -1:
                    heap[size] = nb
                    pos[nb] = size
                    size += 1
                _sift_up(heap, pos, pos[nb], f, g)
    return 1, size, expanded


@njit(cache=True)
def _segment(cost: np.ndarray, weight: float, unknown_mult: float, max_cost: float,
             x0: float, y0: float, x1: float, y1: float, res: float,
             leaving: bool) -> tuple[float, bool]:
    """Exact line cost from (x0, y0) to (x1, y1), given in cell units (cell (r, c) spans
    [c, c+1) x [r, r+1)): the sum over crossed cells of length (m) times multiplier. Returns
    (cost, still leaving); cost is -1 when the line leaves the grid or crosses an
    impassable cell or one costlier than ``max_cost``. While ``leaving``, the cells crossed
    before the line first reaches an acceptable cell are allowed (at multiplier 1): the rover
    may leave the hazard it is in; the second value says whether that is still going on."""
    rows, cols = cost.shape
    dx = x1 - x0
    dy = y1 - y0
    length = math.hypot(dx, dy) * res
    cx = int(math.floor(x0))
    cy = int(math.floor(y0))
    ex = int(math.floor(x1))
    ey = int(math.floor(y1))
    sx = 1 if dx > 0 else -1
    sy = 1 if dy > 0 else -1
    if dx != 0.0:
        t_max_x = ((cx + (1 if dx > 0 else 0)) - x0) / dx
        t_dx = abs(1.0 / dx)
    else:
        t_max_x = np.inf
        t_dx = np.inf
    if dy != 0.0:
        t_max_y = ((cy + (1 if dy > 0 else 0)) - y0) / dy
        t_dy = abs(1.0 / dy)
    else:
        t_max_y = np.inf
        t_dy = np.inf
    total = 0.0
    t_prev = 0.0
    while True:
        if cy < 0 or cy >= rows or cx < 0 or cx >= cols:
            return -1.0, leaving
        c = cost[cy, cx]
        m = _mult(c, weight, unknown_mult)
        last = cx == ex and cy == ey
        t_next = 1.0 if last else min(t_max_x, t_max_y, 1.0)
        if m < 0.0 or (c > max_cost):
            if not leaving:
                return -1.0, False
            m = 1.0
        else:
            leaving = False
        total += (t_next - t_prev) * length * m
        if last or t_next >= 1.0:
            break
        t_prev = t_next
        if t_max_x < t_max_y:
            cx += sx
            t_max_x += t_dx
        elif t_max_y < t_max_x:
            cy += sy
            t_max_y += t_dy
        else:  # exactly through a corner: diagonal step
            cx += sx
            cy += sy
            t_max_x += t_dx
            t_max_y += t_dy
    return total, leaving


@njit(cache=True)
def _shortcut(cost: np.ndarray, weight: float, unknown_mult: float, max_cost: float,
              rr: np.ndarray, cc: np.ndarray, cum: np.ndarray, res: float,
              lookahead: int) -> np.ndarray:
    """Indices of the path cells kept by greedy line-of-sight shortening: from each kept
    cell, the farthest later cell reachable by an acceptable straight segment, searching
    up to ``lookahead`` cells past the first failure."""
    k = rr.shape[0]
    keep = np.empty(k, np.int64)
    keep[0] = 0
    nkeep = 1
    a = 0
    while a < k - 1:
        best = a + 1
        j = a + 2
        while j < k and j - best <= lookahead:
            lc, _ = _segment(cost, weight, unknown_mult, max_cost, cc[a] + 0.5, rr[a] + 0.5,
                             cc[j] + 0.5, rr[j] + 0.5, res, False)
            if lc >= 0.0 and lc <= cum[j] - cum[a] + 1e-9 * (1.0 + cum[j]):
                best = j
            j += 1
        keep[nkeep] = best
        nkeep += 1
        a = best
    return keep[:nkeep]


@njit(cache=True)
def _first_blocked(cost: np.ndarray, weight: float, unknown_mult: float, max_cost: float,
                   xs: np.ndarray, ys: np.ndarray, res: float) -> int:
    """Index i of the first blocked segment xs[i] -> xs[i+1] (cell units), or -1."""
    leaving = True
    for i in range(xs.shape[0] - 1):
        c, leaving = _segment(cost, weight, unknown_mult, max_cost, xs[i], ys[i], xs[i + 1],
                              ys[i + 1], res, leaving)
        if c < 0.0:
            return i
    return -1


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------
def warm_up() -> float:
    """Compile (or load from numba's cache) every kernel; returns the seconds it took."""
    t0 = time.perf_counter()
    grid = CostGrid(np.zeros((4, 4), np.float32), (0.0, 0.0), 1.0)
    plan_path(grid, (0.5, 0.5), (3.5, 2.5))
    path_blocked(np.array([[0.5, 0.5], [3.5, 3.5]]), grid)
    return time.perf_counter() - t0


def astar(grid: CostGrid, start: tuple[int, int], goal: tuple[int, int],
          params: PlannerParams | None = None, connectivity_after: int = 0
          ) -> tuple[np.ndarray, float, int]:
    """Optimal 8-connected grid path between two cells (row, col), checked only for being
    on the grid. Returns (cells (K, 2) row/col from start to goal, cost, expanded cells).
    With ``connectivity_after`` > 0, a search that has expanded that many cells without
    reaching the goal pauses to check that the goal is reachable at all (:func:`connected`).
    Raises :class:`PlanningError` NO_VALID_PATH or TIMEOUT."""
    params = params or PlannerParams()
    rows, cols = grid.shape
    for name, (r, c) in (("start", start), ("goal", goal)):
        if not (0 <= r < rows and 0 <= c < cols):
            code = PlanError.START_OUTSIDE_MAP if name == "start" else PlanError.GOAL_OUTSIDE_MAP
            raise PlanningError(code, f"{name} cell {(r, c)} is off the {rows}x{cols} grid")
    n = rows * cols
    s = start[0] * cols + start[1]
    goal_i = goal[0] * cols + goal[1]
    g = np.full(n, np.inf)
    f = np.empty(n)
    parent = np.full(n, -1, np.int32)
    pos = np.full(n, -1, np.int32)
    heap = np.empty(n, np.int32)
    g[s] = 0.0
    f[s] = 0.0
    heap[0] = s
    pos[s] = 0
    size, expanded = 1, 0
    check = connectivity_after
    while True:
        limit = params.max_expansions
        if check > 0 and (limit == 0 or check < limit):
            limit = check
        status, size, expanded = _astar(grid.cost, float(params.cost_weight),
                                        params.unknown_multiplier, goal_i,
                                        float(grid.resolution), int(limit), g, f, parent, pos,
                                        heap, size, expanded)
        if status != 2:
            break
        if check > 0 and expanded >= check:
            check = 0
            if not connected(grid, start, goal, params):
                raise PlanningError(PlanError.NO_VALID_PATH, _UNREACHABLE)
            continue
        raise PlanningError(PlanError.TIMEOUT, f"no path found within {params.max_expansions} "
                                               "expanded cells")
    if status == 1:
        raise PlanningError(PlanError.NO_VALID_PATH, _UNREACHABLE)
    idx = [goal_i]
    while idx[-1] != s:
        idx.append(int(parent[idx[-1]]))
    flat = np.array(idx[::-1], dtype=np.int64)
    cells = np.stack((flat // cols, flat % cols), axis=1)
    return cells, float(g[goal_i]), int(expanded)


def passable_mask(grid: CostGrid, params: PlannerParams | None = None) -> np.ndarray:
    """Boolean mask of the cells the planner may enter."""
    params = params or PlannerParams()
    ok = grid.cost < LETHAL
    if params.unknown_cost is not None:
        ok |= np.isnan(grid.cost)
    return ok


def connected(grid: CostGrid, start: tuple[int, int], goal: tuple[int, int],
              params: PlannerParams | None = None) -> bool:
    """True when passable cells (row, col) ``start`` and ``goal`` are 8-connected through
    passable cells."""
    ok = passable_mask(grid, params)
    if not (ok[start] and ok[goal]):
        return False
    _, labels = cv2.connectedComponents(ok.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return bool(labels[start] == labels[goal])


def grid_path_cost(cells: np.ndarray, grid: CostGrid, params: PlannerParams | None = None
                   ) -> float:
    """Cost of a path of 8-connected cells (row, col) under the planner's cost function;
    inf when it enters an impassable cell (the first cell is exempt) or jumps."""
    params = params or PlannerParams()
    cells = np.asarray(cells, dtype=np.int64)
    if len(cells) < 2:
        return 0.0
    step = np.abs(np.diff(cells, axis=0))
    if (step.max(axis=1) != 1).any():
        return math.inf
    c = grid.cost[cells[:, 0], cells[:, 1]].astype(np.float64)
    m = 1.0 + params.cost_weight * c
    if params.unknown_cost is None:
        m[np.isnan(c)] = np.inf
    else:
        m[np.isnan(c)] = params.unknown_multiplier
    m[c >= LETHAL] = np.inf
    m[0] = m[0] if np.isfinite(m[0]) else 1.0
    d = np.where(step.sum(axis=1) == 2, SQRT2, 1.0) * grid.resolution
    return float(np.sum(d * 0.5 * (m[:-1] + m[1:])))


def _cell_units(grid: CostGrid, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs = (xy[:, 0] - grid.origin[0]) / grid.resolution
    ys = (xy[:, 1] - grid.origin[1]) / grid.resolution
    return np.ascontiguousarray(xs, np.float64), np.ascontiguousarray(ys, np.float64)


def line_cost(xy: np.ndarray, grid: CostGrid, params: PlannerParams | None = None,
              max_cost: float = math.inf) -> float:
    """Exact cost of the polyline ``xy`` (N, 2+) world points; inf when it leaves the grid
    or crosses an impassable cell or one costlier than ``max_cost`` (as in
    :func:`first_blocked`, a start inside a hazard may leave it, at multiplier 1)."""
    params = params or PlannerParams()
    xs, ys = _cell_units(grid, np.asarray(xy, dtype=np.float64))
    total = 0.0
    leaving = True
    for i in range(len(xs) - 1):
        c, leaving = _segment(grid.cost, float(params.cost_weight), params.unknown_multiplier,
                              float(max_cost), xs[i], ys[i], xs[i + 1], ys[i + 1],
                              float(grid.resolution), leaving)
        if c < 0:
            return math.inf
        total += c
    return total


def first_blocked(path: Plan | np.ndarray, grid: CostGrid, params: PlannerParams | None = None,
                  max_cost: float = math.inf) -> int:
    """Index of the first segment of ``path`` (a :class:`Plan` or (N, 2+) world points, from
    the rover's position on) that leaves the grid, crosses a lethal cell, an unknown one
    the planner may not enter, or one costlier than ``max_cost``; -1 when clear. The first
    segment may start inside a hazard: the cells before it reaches passable ground are
    allowed (the rover may always leave the cell it is in)."""
    params = params or PlannerParams()
    xy = path.poses if isinstance(path, Plan) else np.asarray(path, dtype=np.float64)
    if len(xy) == 0:
        return -1
    if len(xy) == 1:
        xy = np.vstack((xy[:1], xy[:1]))
    xs, ys = _cell_units(grid, xy)
    return int(_first_blocked(grid.cost, float(params.cost_weight), params.unknown_multiplier,
                              float(max_cost), xs, ys, float(grid.resolution)))


def path_blocked(path: Plan | np.ndarray, grid: CostGrid, params: PlannerParams | None = None,
                 max_cost: float = math.inf) -> bool:
    """True when the map changed under ``path`` so that it must be replanned
    (see :func:`first_blocked`)."""
    return first_blocked(path, grid, params, max_cost) >= 0


def resample(vertices: np.ndarray, spacing: float, final_yaw: float | None = None
             ) -> np.ndarray:
    """Poses (N, 3) x, y, yaw along a polyline: every vertex plus points every ``spacing``
    metres along each segment; yaw is the direction of travel, ``final_yaw`` (if given) at
    the end."""
    v = np.asarray(vertices, dtype=np.float64)[:, :2]
    if len(v) == 1:
        yaw = 0.0 if final_yaw is None else final_yaw
        return np.array([[v[0, 0], v[0, 1], yaw]])
    out = []
    for a, b in zip(v[:-1], v[1:], strict=True):
        d = b - a
        seg = math.hypot(d[0], d[1])
        if seg == 0.0:
            continue
        yaw = math.atan2(d[1], d[0])
        n = max(1, int(math.ceil(seg / spacing - 1e-9)))
        t = np.arange(n) / n
        pts = a + t[:, None] * d
        out.append(np.column_stack((pts, np.full(n, yaw))))
    if not out:
        yaw = 0.0 if final_yaw is None else final_yaw
        return np.array([[v[0, 0], v[0, 1], yaw]])
    poses = np.vstack(out)
    last_yaw = poses[-1, 2] if final_yaw is None else final_yaw
    return np.vstack((poses, [[v[-1, 0], v[-1, 1], last_yaw]]))


def _escape(grid: CostGrid, row: int, col: int, params: PlannerParams
            ) -> tuple[int, int] | None:
    """The nearest passable cell within ``start_escape_radius`` of (row, col), or None."""
    k = int(math.ceil(params.start_escape_radius / grid.resolution))
    if k == 0:
        return None
    rows, cols = grid.shape
    r0, r1 = max(0, row - k), min(rows, row + k + 1)
    c0, c1 = max(0, col - k), min(cols, col + k + 1)
    win = grid.cost[r0:r1, c0:c1]
    ok = win < LETHAL
    if params.unknown_cost is not None:
        ok |= np.isnan(win)
    rr, cc = np.nonzero(ok)
    if len(rr) == 0:
        return None
    d2 = (rr + r0 - row) ** 2 + (cc + c0 - col) ** 2
    i = int(np.argmin(d2))
    if d2[i] * grid.resolution ** 2 > params.start_escape_radius ** 2:
        return None
    return int(rr[i] + r0), int(cc[i] + c0)


def _blocked_cell(grid: CostGrid, row: int, col: int, params: PlannerParams) -> bool:
    c = grid.cost[row, col]
    if np.isnan(c):
        return params.unknown_cost is None
    return bool(c >= LETHAL)


def plan_path(grid: CostGrid, start: tuple[float, float], goal: tuple[float, float],
              params: PlannerParams | None = None, goal_yaw: float | None = None) -> Plan:
    """Plan from world point ``start`` to ``goal`` on ``grid`` (see the module docstring).

    Raises :class:`PlanningError`: START_OUTSIDE_MAP / GOAL_OUTSIDE_MAP, GOAL_IN_KEEP_OUT
    (the goal is in a keep-out disc or within the footprint inflation around it),
    GOAL_OCCUPIED (a lethal cell), GOAL_UNKNOWN, START_OCCUPIED (lethal with no passable cell
    within ``start_escape_radius``), NO_VALID_PATH, TIMEOUT.
    """
    params = params or PlannerParams()
    sx, sy = float(start[0]), float(start[1])
    gx, gy = float(goal[0]), float(goal[1])
    if not grid.contains(sx, sy):
        raise PlanningError(PlanError.START_OUTSIDE_MAP,
                            f"start ({sx:.1f}, {sy:.1f}) is off the map {_fmt(grid.bounds)}")
    if not grid.contains(gx, gy):
        raise PlanningError(PlanError.GOAL_OUTSIDE_MAP,
                            f"goal ({gx:.1f}, {gy:.1f}) is off the map {_fmt(grid.bounds)}")
    gr, gc = grid.world_to_cell(gx, gy)
    goal_blocked = _blocked_cell(grid, gr, gc, params)
    zone = grid.keep_out_at(gx, gy)
    if zone is None and goal_blocked:
        # a goal that is lethal only because of a keep-out zone's inflation
        zone = grid.keep_out_at(gx, gy, grid.footprint_radius + grid.resolution)
    if zone is not None:
        name = f" '{zone.name}'" if zone.name else ""
        raise PlanningError(PlanError.GOAL_IN_KEEP_OUT,
                            f"goal ({gx:.1f}, {gy:.1f}) is inside the keep-out zone{name} "
                            f"(radius {zone.radius:.1f} m around ({zone.x:.1f}, {zone.y:.1f}))")
    if goal_blocked:
        if np.isnan(grid.cost[gr, gc]):
            raise PlanningError(PlanError.GOAL_UNKNOWN,
                                f"goal ({gx:.1f}, {gy:.1f}) is in unmapped terrain")
        raise PlanningError(PlanError.GOAL_OCCUPIED,
                            f"goal ({gx:.1f}, {gy:.1f}) is in a hazard (too steep, too rough, a "
                            "step or an obstacle, or too close to one for the rover)")
    sr, sc = grid.world_to_cell(sx, sy)
    escaped = False
    if _blocked_cell(grid, sr, sc, params):
        cell = _escape(grid, sr, sc, params)
        if cell is None:
            raise PlanningError(PlanError.START_OCCUPIED,
                                f"start ({sx:.1f}, {sy:.1f}) is in a hazard with no passable "
                                f"ground within {params.start_escape_radius:.1f} m")
        escaped = True
        sr, sc = cell
    after = max(4096, grid.cost.size // 16) if params.check_connectivity else 0
    cells, total, expanded = astar(grid, (sr, sc), (gr, gc), params, connectivity_after=after)
    vertices = _shorten(grid, cells, params)
    vertices = _attach_ends(grid, vertices, (sx, sy), (gx, gy), params, escaped)
    poses = resample(vertices, params.waypoint_spacing, goal_yaw)
    d = np.diff(vertices, axis=0)
    length = float(np.hypot(d[:, 0], d[:, 1]).sum())
    return Plan(poses=poses, vertices=vertices, cells=cells, grid_cost=total,
                cost=line_cost(vertices, grid, params), length=length, expanded=expanded,
                escaped_start=escaped)


def _fmt(b: tuple[float, float, float, float]) -> str:
    return f"x {b[0]:.1f}..{b[2]:.1f}, y {b[1]:.1f}..{b[3]:.1f}"


def _shorten(grid: CostGrid, cells: np.ndarray, params: PlannerParams) -> np.ndarray:
    """World vertices of the line-of-sight shortened grid path."""
    rr = np.ascontiguousarray(cells[:, 0])
    cc = np.ascontiguousarray(cells[:, 1])
    c = grid.cost[rr, cc].astype(np.float64)
    m = 1.0 + params.cost_weight * np.where(np.isnan(c), params.unknown_cost or 0.0, c)
    m[0] = m[0] if c[0] < LETHAL else 1.0
    step = np.where(np.abs(np.diff(rr)) + np.abs(np.diff(cc)) == 2, SQRT2, 1.0)
    cum = np.concatenate(([0.0], np.cumsum(step * grid.resolution * 0.5 * (m[:-1] + m[1:]))))
    keep = _shortcut(grid.cost, float(params.cost_weight), params.unknown_multiplier,
                     float(params.max_shortcut_cost), rr, cc, cum, float(grid.resolution),
                     int(params.shortcut_lookahead))
    x, y = grid.cell_to_world(rr[keep], cc[keep])
    return np.column_stack((x, y))


def _attach_ends(grid: CostGrid, v: np.ndarray, start: tuple[float, float],
                 goal: tuple[float, float], params: PlannerParams, escaped: bool) -> np.ndarray:
    """Put the exact start and goal points at the ends of the cell-centre polyline: they
    replace the first/last vertex where the new segment stays passable, else are added."""
    pts = [np.asarray(p, dtype=np.float64) for p in v]
    s = np.asarray(start, dtype=np.float64)
    g = np.asarray(goal, dtype=np.float64)
    if escaped or len(pts) < 2 or not math.isfinite(line_cost(np.array([s, pts[1]]), grid,
                                                              params)):
        pts.insert(0, s)
    else:
        pts[0] = s
    if math.isfinite(line_cost(np.array([pts[-2], g]), grid, params)) and not (
            escaped and len(pts) == 2):
        pts[-1] = g
    else:
        pts.append(g)
    out = np.array(pts)
    keep = np.ones(len(out), bool)
    keep[1:] = np.any(np.diff(out, axis=0) != 0.0, axis=1)
    return out[keep]
