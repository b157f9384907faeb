"""What the `navigator` node plugs into the navigation state machine (pure, no ROS).

- `GridPlanner`: `plan_path` on the latest global costmap as the Navigator's `plan(start,
  goal)`, its refusals turned into NavigateToPose codes (`plan_error_code`), and
  `blocked(path)` as the Navigator's `path_blocked`; it remembers where the rover could not
  make headway (`remember_no_headway`, the Navigator's `on_no_headway`) and plans around;
- `MotionCheck`: the follower's `check_motion(poses)` against the local and global
  costmaps, allowing for the footprint where the grids are not inflated by it;
- `parse_keep_outs`, `goal_problem`, `tilt_of`: parameter and message checks.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ilrs_robots.core.costmap import LETHAL, CostGrid, KeepOut
from ilrs_robots.core.geometry import Pose2D
from ilrs_robots.core.navigation import NavError, PlanningFailed
from ilrs_robots.core.planning import (
    PlanError,
    PlannerParams,
    PlanningError,
    first_blocked,
    plan_path,
)

#: NavigateToPose code of each planner refusal.
PLAN_ERROR_CODES: dict[PlanError, NavError] = {
    PlanError.START_OUTSIDE_MAP: NavError.OFF_MAP,
    PlanError.GOAL_OUTSIDE_MAP: NavError.OFF_MAP,
    PlanError.START_OCCUPIED: NavError.BLOCKED,
    PlanError.GOAL_OCCUPIED: NavError.IN_HAZARD,
    PlanError.TIMEOUT: NavError.TIMEOUT,
    PlanError.NO_VALID_PATH: NavError.UNREACHABLE,
    PlanError.GOAL_IN_KEEP_OUT: NavError.IN_KEEP_OUT,
    PlanError.GOAL_UNKNOWN: NavError.UNREACHABLE,
}


def plan_error_code(code: PlanError) -> NavError:
    """The NavigateToPose code of a planner refusal (UNKNOWN for one it does not name)."""
    return PLAN_ERROR_CODES.get(PlanError(code), NavError.UNKNOWN)


@dataclass(frozen=True)
class NoHeadway:
    """How the planner keeps away from where the rover could not make headway (wheel slip,
    no progress while driving: a slope or soil the costmap calls passable): a disc of
    ``radius`` m centred ``ahead`` m in the direction the rover drove gets at least ``cost``
    (below LETHAL: the way stays open when there is no other), for the node's life; the
    ``keep`` newest spots are remembered. ``radius`` 0 (the default) turns it off."""

    radius: float = 0.0
    ahead: float = 1.0
    cost: float = 0.9
    keep: int = 32

    def __post_init__(self) -> None:
        if not (self.radius >= 0.0 and math.isfinite(self.ahead) and 0.0 <= self.cost < LETHAL
                and self.keep >= 1):
            raise ValueError("NoHeadway: radius >= 0, a finite ahead, 0 <= cost < 1 and "
                             "keep >= 1")


class GridPlanner:
    """Plans on the newest global costmap; `update(grid)` swaps the map in.

    `keep_outs` are marked lethal (grown by `footprint_radius`) on every grid handed in,
    so they hold whether or not the costmap's publisher knows them, and a goal inside one
    is refused with its name. Spots where the rover could not make headway (see
    `NoHeadway`) are made costly on every grid.
    """

    def __init__(self, params: PlannerParams | None = None,
                 keep_outs: Sequence[KeepOut] = (), footprint_radius: float = 0.0,
                 no_headway: NoHeadway | None = None) -> None:
        self.params = params or PlannerParams()
        self.keep_outs = tuple(keep_outs)
        self.footprint_radius = footprint_radius
        self.no_headway = no_headway or NoHeadway()
        self.spots: deque[tuple[float, float]] = deque(maxlen=self.no_headway.keep)
        self.grid: CostGrid | None = None
        self._source: CostGrid | None = None
        self._lock = threading.Lock()  # costmaps and spots come from different threads

    def update(self, grid: CostGrid) -> CostGrid:
        """Use `grid` from now on (keep-outs and no-headway spots added); returns the grid
        as planned on."""
        with self._lock:
            return self._update(grid)

    def _update(self, grid: CostGrid) -> CostGrid:
        self._source = grid
        zones = tuple(grid.keep_outs) + tuple(k for k in self.keep_outs
                                              if k not in grid.keep_outs)
        cost = grid.cost.copy() if self.spots else grid.cost
        grid = CostGrid(cost, grid.origin, grid.resolution, zones,
                        max(grid.footprint_radius, self.footprint_radius))
        for zone in self.keep_outs:
            grid.mark_lethal(zone.x, zone.y, zone.radius + self.footprint_radius)
        for x, y in self.spots:
            grid.raise_cost(x, y, self.no_headway.radius, self.no_headway.cost)
        self.grid = grid
        return grid

    def remember_no_headway(self, pose: Pose2D, direction: float = 1.0
                            ) -> tuple[float, float] | None:
        """Remember that the rover at ``pose`` could not make headway driving forward
        (``direction`` > 0) or backward; returns the centre of the spot made costly (None
        when NoHeadway is off). The next plan keeps away from it."""
        nh = self.no_headway
        if nh.radius <= 0.0 or not (math.isfinite(pose.x) and math.isfinite(pose.y)
                                    and math.isfinite(pose.yaw)):
            return None
        ahead = nh.ahead if direction >= 0.0 else -nh.ahead
        spot = (pose.x + ahead * math.cos(pose.yaw), pose.y + ahead * math.sin(pose.yaw))
        with self._lock:
            self.spots.append(spot)
            if self._source is not None:
                self._update(self._source)
        return spot

    def __call__(self, start: Pose2D, goal: Pose2D) -> list[Pose2D]:
        """A path from `start` to `goal` (its last pose has the goal's yaw).

        Raises PlanningFailed with a NavError code and the planner's reason.
        """
        grid = self.grid
        if grid is None:
            raise PlanningFailed(NavError.UNKNOWN, "no global costmap received yet")
        try:
            plan = plan_path(grid, (start.x, start.y), (goal.x, goal.y), self.params, goal.yaw)
        except PlanningError as exc:
            raise PlanningFailed(plan_error_code(exc.code), exc.message) from exc
        return [Pose2D(float(x), float(y), float(yaw)) for x, y, yaw in plan.poses]

    def blocked(self, path: Sequence[Pose2D]) -> str | None:
        """Why `path` (from the rover on) is blocked on the current map, or None."""
        grid = self.grid
        if grid is None or len(path) == 0:
            return None
        xy = np.array([[p.x, p.y] for p in path], dtype=float)
        index = first_blocked(xy, grid, self.params)
        if index < 0:
            return None
        x, y = xy[min(index + 1, len(xy) - 1)]
        return f"hazard on the path near ({x:.1f}, {y:.1f})"


def _ring(radius: float, resolution: float) -> np.ndarray:
    """Offsets (k, 2) covering a disc of `radius`: its centre and rings every resolution."""
    points = [(0.0, 0.0)]
    if radius > 0.0:
        for r in np.arange(resolution, radius + 1e-9, resolution).tolist() + [radius]:
            n = max(8, int(math.ceil(2.0 * math.pi * r / resolution)))
            a = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
            points += list(zip((r * np.cos(a)).tolist(), (r * np.sin(a)).tolist(),
                               strict=True))
    return np.array(points)


class MotionCheck:
    """`check_motion(poses)` against lethal cells of the costmaps it is given.

    A pose is unsafe when a lethal cell lies within `radius` of its centre (0: the centre
    only, for costmaps whose lethal cells are already inflated by the rover's footprint).
    Unknown cells and poses off a grid are not vetoed (the planner keeps the path on known
    ground). The rover may always leave the hazard it stands in: lethal poses at the start
    of the roll-out are allowed until it reaches free ground, as `first_blocked` allows.
    """

    def __init__(self, grids: Callable[[], Sequence[tuple[str, CostGrid]]],
                 radius: float = 0.0) -> None:
        self.grids = grids
        self.radius = radius

    def _lethal(self, grid: CostGrid, x: float, y: float) -> bool:
        offsets = _ring(self.radius, grid.resolution)
        xs, ys = x + offsets[:, 0], y + offsets[:, 1]
        rows = np.floor((ys - grid.origin[1]) / grid.resolution).astype(int)
        cols = np.floor((xs - grid.origin[0]) / grid.resolution).astype(int)
        h, w = grid.shape
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        cost = grid.cost[rows[inside], cols[inside]]
        return bool(np.any(cost >= LETHAL))

    def __call__(self, poses: Sequence[Pose2D]) -> str | None:
        """A reason when the motion through `poses` runs into a hazard, else None."""
        for name, grid in self.grids():
            leaving = True
            for pose in poses:
                lethal = self._lethal(grid, pose.x, pose.y)
                if not lethal:
                    leaving = False
                elif not leaving:
                    return f"hazard ahead at ({pose.x:.1f}, {pose.y:.1f}) in the {name}"
        return None


def parse_keep_outs(text: str) -> list[KeepOut]:
    """Keep-out discs from "name: x, y, radius; name: x, y, radius" (metres, map frame).

    Raises ValueError saying which entry is wrong.
    """
    zones = []
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        name, sep, numbers = entry.rpartition(":")
        parts = [p.strip() for p in (numbers if sep else entry).split(",")]
        try:
            x, y, radius = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"keep-out {entry!r}: expected 'name: x, y, radius'") from None
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(radius) and radius > 0):
            raise ValueError(f"keep-out {entry!r}: needs finite x, y and a positive radius")
        zones.append(KeepOut(x, y, radius, name.strip()))
    return zones


def goal_problem(frame: str, expected_frame: str, xyz: Sequence[float],
                 quat_xyzw: Sequence[float]) -> str | None:
    """Why a goal pose cannot be used (wrong frame, NaN, bad quaternion), or None.

    An empty frame is taken as `expected_frame`, as RViz users and scripts often leave it.
    """
    if frame and frame.lstrip("/") != expected_frame:
        return f"goal is in frame '{frame}', the navigator plans in '{expected_frame}'"
    if not all(math.isfinite(v) for v in (*xyz, *quat_xyzw)):
        return "goal has a NaN or infinite coordinate"
    norm = math.sqrt(sum(v * v for v in quat_xyzw))
    if norm < 1e-3:
        return "goal orientation is not a rotation (a zero quaternion)"
    return None


def tilt_of(quat_xyzw: Sequence[float]) -> float:
    """Angle (rad) between the body's z axis and the vertical, for a ROS-order quaternion."""
    x, y, z, w = (float(v) for v in quat_xyzw)
    n = x * x + y * y + z * z + w * w
    if not math.isfinite(n) or n < 1e-12:
        return math.nan
    zz = 1.0 - 2.0 * (x * x + y * y) / n  # R[2, 2]
    return math.acos(max(-1.0, min(1.0, zz)))
