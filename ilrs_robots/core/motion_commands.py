"""Bounded motion commands of the ground console: validation, predicted paths, hazard checks
and the tracking of a command under way (pure: no ROS, no I/O; the caller passes poses and
the time).

A command (:class:`Motion`, the fields of ``ilrs_interfaces/MotionCommand``) is one of

- ``drive``: straight ``distance`` m along the current heading (negative: backwards);
- ``turn``: in place by ``angle`` rad (positive: counter-clockwise);
- ``velocity``: ``linear`` m/s and ``angular`` rad/s for ``duration`` s (an arc);
- ``goto``: to (``x``, ``y``), executed by the navigator (only the goal is checked here);
- ``stop``: ends the command under way.

:func:`validate` refuses non-finite numbers and values over the :class:`Limits` with a reason
an operator can read. :func:`predict_path` gives the poses the rover will pass through
(every ``step`` m and ``angle_step`` rad), the start pose first. :func:`check_path` checks
them against costmaps (:class:`~ilrs_robots.core.costmap.CostGrid`, built from
``nav_msgs/OccupancyGrid`` with ``CostGrid.from_occupancy``: 0..99 cost, 100 lethal,
-1 unknown):

- a pose whose footprint (a disc of ``footprint_radius`` around its centre; 0: the centre's
  cell only, for costmaps already inflated by the footprint, as terrain_mapper's are) touches
  a lethal cell is unsafe. One exception, so that a rover that finds itself next to (or in) a
  hazard can be commanded away from it: when the start pose already touches a hazard, later
  poses may touch it too as long as they get no closer to it (the distance from the pose's
  centre to the nearest lethal cell does not shrink; inside a lethal cell, the distance to
  the nearest non-lethal cell does not grow). A turn in place is therefore always allowed;
- a pose whose centre leaves a grid that must cover the path (the global costmap) is unsafe;
  a grid that need not (the local costmap, a window around the rover) is checked where it
  reaches only;
- unknown cells (-1) are **allowed** by default: a rover on a partly mapped site must still
  be movable by the operator who looks at the camera, and the global costmap of the orbital
  prior leaves few cells unknown. With ``refuse_unknown`` a pose whose footprint touches an
  unknown cell that the start pose does not touch is unsafe.

:class:`MotionTracker` drives a drive, turn or velocity command from successive poses: the
proportional slow-down, speed cap and tolerances of :class:`~ilrs_robots.core.control.
LegController` for drive and turn, time for velocity; it reports progress (0..1), the end,
a stall (no progress for ``stall_timeout``) and the motion still to come (for re-checking
it against the newest maps every cycle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ilrs_robots.core.control import Leg, LegController, LegGains
from ilrs_robots.core.costmap import LETHAL, CostGrid
from ilrs_robots.core.geometry import Pose2D, wrap_angle
from ilrs_robots.core.path_following import rollout

DRIVE, TURN, GOTO, VELOCITY, STOP = "drive", "turn", "goto", "velocity", "stop"
KINDS = (DRIVE, TURN, GOTO, VELOCITY, STOP)
#: how much closer to a hazard (m) a pose may be than the start, when the start touches it:
#: a fraction of a cell, for poses that are not exactly on the start's line
CLOSER_TOLERANCE = 0.25
#: how far (m, beyond the footprint) the way out of a lethal cell is searched
ESCAPE_SEARCH = 2.0


@dataclass(frozen=True)
class Motion:
    """One command, as ``ilrs_interfaces/MotionCommand`` carries it (units SI, radians)."""

    kind: str
    distance: float = 0.0
    angle: float = 0.0
    x: float = 0.0
    y: float = 0.0
    linear: float = 0.0
    angular: float = 0.0
    duration: float = 0.0
    speed: float = 0.0  # drive, turn, goto: cap on |speed|; 0: the default


@dataclass(frozen=True)
class Limits:
    """What a command may ask for at most."""

    max_distance: float = 10.0  # m, drive
    max_angle: float = 2.0 * math.pi  # rad, turn
    max_linear: float = 0.5  # m/s, velocity and speed caps
    max_angular: float = 0.8  # rad/s
    max_duration: float = 10.0  # s, velocity
    max_goto_distance: float = 100.0  # m from the rover, goto


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def validate(m: Motion, limits: Limits, pose: Pose2D | None = None) -> str | None:
    """Why the command cannot be accepted as given, or None. ``pose`` (the rover's, when
    known) bounds the distance of a goto."""
    if m.kind not in KINDS:
        return f"unknown kind '{m.kind}' (one of {', '.join(KINDS)})"
    fields = {DRIVE: ("distance", "speed"), TURN: ("angle", "speed"), GOTO: ("x", "y", "speed"),
              VELOCITY: ("linear", "angular", "duration"), STOP: ()}[m.kind]
    for name in fields:
        if not _finite(getattr(m, name)):
            return f"{name} {getattr(m, name)} is not a finite number"
    if m.kind in (DRIVE, GOTO, TURN) and m.speed < 0.0:
        return f"speed {m.speed:g} must be 0 (default) or positive"
    if m.kind == DRIVE:
        if abs(m.distance) > limits.max_distance:
            return (f"distance {abs(m.distance):g} m is over max_distance "
                    f"{limits.max_distance:g} m")
        if m.speed > limits.max_linear:
            return f"speed {m.speed:g} m/s is over max_linear {limits.max_linear:g} m/s"
    elif m.kind == TURN:
        if abs(m.angle) > limits.max_angle + 1e-9:
            return (f"angle {math.degrees(abs(m.angle)):.0f} deg is over max_angle "
                    f"{math.degrees(limits.max_angle):.0f} deg")
        if m.speed > limits.max_angular:
            return (f"speed {m.speed:g} rad/s is over max_angular "
                    f"{limits.max_angular:g} rad/s")
    elif m.kind == GOTO:
        if m.speed > limits.max_linear:
            return f"speed {m.speed:g} m/s is over max_linear {limits.max_linear:g} m/s"
        if pose is not None:
            far = math.hypot(m.x - pose.x, m.y - pose.y)
            if far > limits.max_goto_distance:
                return (f"goal ({m.x:.1f}, {m.y:.1f}) is {far:.0f} m away, over "
                        f"max_goto_distance {limits.max_goto_distance:g} m")
    elif m.kind == VELOCITY:
        if abs(m.linear) > limits.max_linear:
            return f"linear {m.linear:g} m/s is over max_linear {limits.max_linear:g} m/s"
        if abs(m.angular) > limits.max_angular:
            return (f"angular {m.angular:g} rad/s is over max_angular "
                    f"{limits.max_angular:g} rad/s")
        if not 0.0 < m.duration <= limits.max_duration:
            return (f"duration {m.duration:g} s must be over 0 and at most max_duration "
                    f"{limits.max_duration:g} s")
    return None


def predict_path(m: Motion, pose: Pose2D, step: float = 0.1,
                 angle_step: float = math.radians(5.0)) -> list[Pose2D]:
    """The poses of a drive, turn or velocity command from ``pose`` (first) to its end, at
    most ``step`` m and ``angle_step`` rad apart; a goto gives the start and the goal."""
    start = Pose2D(pose.x, pose.y, pose.yaw)
    if m.kind == DRIVE:
        n = max(1, math.ceil(abs(m.distance) / step))
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        return [start] + [Pose2D(pose.x + c * m.distance * i / n,
                                 pose.y + s * m.distance * i / n, pose.yaw)
                          for i in range(1, n + 1)]
    if m.kind == TURN:
        n = max(1, math.ceil(abs(m.angle) / angle_step))
        return [start] + [Pose2D(pose.x, pose.y, wrap_angle(pose.yaw + m.angle * i / n))
                          for i in range(1, n + 1)]
    if m.kind == VELOCITY:
        if m.duration <= 0.0:
            return [start]
        dt = m.duration
        if abs(m.linear) > 0.0:
            dt = min(dt, step / abs(m.linear))
        if abs(m.angular) > 0.0:
            dt = min(dt, angle_step / abs(m.angular))
        return [start] + rollout(pose, m.linear, m.angular, m.duration, dt)
    if m.kind == GOTO:
        return [start, Pose2D(m.x, m.y, math.atan2(m.y - pose.y, m.x - pose.x))]
    return [start]


# -- hazard checks --------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """Why a path is unsafe: ``what`` is "hazard", "off_map" or "unknown"; (x, y) the cell
    (or the pose leaving the map), ``grid`` the costmap's name, ``index`` the pose's."""

    what: str
    x: float
    y: float
    grid: str
    index: int

    def describe(self, under_way: bool = False) -> str:
        """The reason, for a refusal (before) or a stop (``under_way``)."""
        at = f"({self.x:.1f}, {self.y:.1f})"
        if self.what == "off_map":
            return f"the path leaves the {self.grid} at {at}"
        if self.what == "unknown":
            return (f"unknown ground ahead at {at} in the {self.grid}" if under_way else
                    f"the path crosses unknown ground at {at} in the {self.grid}")
        return (f"hazard ahead at {at} in the {self.grid}" if under_way else
                f"the path crosses a hazard at {at} in the {self.grid}")


@dataclass(frozen=True)
class _Look:
    """What one pose's footprint meets on one grid."""

    clearance: float  # m to the nearest lethal cell (0 inside one); inf: none near
    depth: float  # m to the nearest non-lethal cell when inside a lethal one, else 0
    lethal_at: tuple[float, float] | None  # the nearest lethal cell touched
    unknown: frozenset[tuple[int, int]]  # unknown cells touched

    @property
    def signed(self) -> float:
        """Clearance outside hazards, minus the depth inside one."""
        return self.clearance - self.depth


def _cells_near(grid: CostGrid, x: float, y: float, reach: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, distance from (x, y) to each cell's square) of the cells within reach."""
    res = grid.resolution
    h, w = grid.shape
    r0 = max(0, math.floor((y - reach - grid.origin[1]) / res))
    r1 = min(h - 1, math.floor((y + reach - grid.origin[1]) / res))
    c0 = max(0, math.floor((x - reach - grid.origin[0]) / res))
    c1 = min(w - 1, math.floor((x + reach - grid.origin[0]) / res))
    if r1 < r0 or c1 < c0:
        empty = np.zeros(0, dtype=int)
        return empty, empty, np.zeros(0)
    rows, cols = np.mgrid[r0:r1 + 1, c0:c1 + 1]
    cx = grid.origin[0] + (cols + 0.5) * res
    cy = grid.origin[1] + (rows + 0.5) * res
    dx = np.maximum(np.abs(cx - x) - res / 2.0, 0.0)
    dy = np.maximum(np.abs(cy - y) - res / 2.0, 0.0)
    dist = np.hypot(dx, dy).ravel()
    dist[dist < 1e-9] = 0.0  # inside the cell, whatever the rounding
    return rows.ravel(), cols.ravel(), dist


def _look(grid: CostGrid, pose: Pose2D, radius: float, want_unknown: bool) -> _Look:
    rows, cols, dist = _cells_near(grid, pose.x, pose.y, radius + grid.resolution)
    cost = grid.cost[rows, cols]
    lethal = cost >= LETHAL
    clearance, depth, at = math.inf, 0.0, None
    if np.any(lethal):
        i = int(np.argmin(np.where(lethal, dist, np.inf)))
        clearance = float(dist[i])
        if clearance <= radius:
            at = tuple(float(v) for v in grid.cell_to_world(rows[i], cols[i]))
    if clearance == 0.0:  # inside a lethal cell: how deep
        reach = radius + ESCAPE_SEARCH
        rows2, cols2, dist2 = _cells_near(grid, pose.x, pose.y, reach)
        free = ~(grid.cost[rows2, cols2] >= LETHAL)
        depth = float(np.min(dist2[free])) if np.any(free) else reach
    unknown: frozenset[tuple[int, int]] = frozenset()
    if want_unknown:
        near = np.isnan(cost) & (dist <= radius)
        unknown = frozenset(zip(rows[near].tolist(), cols[near].tolist(), strict=True))
    return _Look(clearance, depth, at, unknown)


def check_path(path: Sequence[Pose2D], grids: Sequence[tuple[str, CostGrid, bool]],
               footprint_radius: float = 0.0, refuse_unknown: bool = False,
               escape: bool = True) -> Problem | None:
    """The first problem of ``path`` (start pose first) on ``grids`` ((name, grid, must
    cover the path)), or None when it is safe; see the module docstring. ``escape=False``
    judges the first pose like any other (a goal, not a start)."""
    radius = max(0.0, float(footprint_radius))
    for name, grid, must_cover in grids:
        start: _Look | None = None
        for i, pose in enumerate(path):
            if not grid.contains(pose.x, pose.y):
                if must_cover:
                    return Problem("off_map", pose.x, pose.y, name, i)
                continue
            look = _look(grid, pose, radius, refuse_unknown)
            if i == 0 and escape:
                start = look
                continue
            if look.lethal_at is not None:
                closer = start is None or start.lethal_at is None or \
                    look.signed < start.signed - CLOSER_TOLERANCE * grid.resolution
                if closer:
                    return Problem("hazard", *look.lethal_at, name, i)
            if refuse_unknown:
                new = look.unknown - (start.unknown if start is not None else frozenset())
                if new:
                    row, col = min(new)
                    x, y = grid.cell_to_world(row, col)
                    return Problem("unknown", float(x), float(y), name, i)
    return None


def check_goal(x: float, y: float, grids: Sequence[tuple[str, CostGrid, bool]],
               footprint_radius: float = 0.0, refuse_unknown: bool = False) -> str | None:
    """Why a goto goal at (x, y) is refused (off the map, on a hazard, on unknown ground
    with ``refuse_unknown``), or None."""
    problem = check_path([Pose2D(x, y)], grids, footprint_radius, refuse_unknown,
                         escape=False)
    if problem is None:
        return None
    where = f"the goal ({x:.1f}, {y:.1f})"
    if problem.what == "off_map":
        return f"{where} is off the {problem.grid}"
    if problem.what == "unknown":
        return f"{where} is on unknown ground in the {problem.grid}"
    return f"{where} is on a hazard at ({problem.x:.1f}, {problem.y:.1f}) in the {problem.grid}"


# -- tracking a command under way -----------------------------------------------------------

@dataclass(frozen=True)
class TrackerConfig:
    """How drive and turn commands are driven, and when they count as stalled."""

    linear_speed: float = 0.3  # m/s, when the command gives no speed
    angular_speed: float = 0.4  # rad/s
    k_distance: float = 1.0  # 1/s: speed per metre left
    k_angle: float = 1.5  # 1/s: turn rate per radian left
    min_speed: float = 0.05  # m/s, so the last centimetres are driven too
    min_turn_rate: float = 0.05  # rad/s
    distance_tolerance: float = 0.05  # m
    angle_tolerance: float = 0.03  # rad
    stall_timeout: float = 5.0  # s without stall_progress of progress: stalled
    stall_progress: float = 0.02  # m (drive, velocity) or rad (turn, velocity)


@dataclass(frozen=True)
class TrackStep:
    """What to command now: the twist, the progress (0..1), whether the command is done
    (the twist is then zero) or stalled."""

    linear: float
    angular: float
    progress: float
    done: bool = False
    stalled: bool = False


class MotionTracker:
    """Drives one drive, turn or velocity command: give it each new pose and the time."""

    def __init__(self, m: Motion, start: Pose2D, now: float,
                 config: TrackerConfig | None = None) -> None:
        if m.kind not in (DRIVE, TURN, VELOCITY):
            raise ValueError(f"a tracker drives drive, turn or velocity commands, not {m.kind}")
        self.motion = m
        self.config = c = config or TrackerConfig()
        self.started = now
        self.leg: LegController | None = None
        if m.kind in (DRIVE, TURN):
            speed = m.speed if m.speed > 0.0 else (c.linear_speed if m.kind == DRIVE
                                                  else c.angular_speed)
            gains = LegGains(speed=speed, turn_rate=speed, k_distance=c.k_distance,
                             k_angle=c.k_angle, min_speed=min(c.min_speed, speed),
                             min_turn_rate=min(c.min_turn_rate, speed),
                             distance_tolerance=c.distance_tolerance,
                             angle_tolerance=c.angle_tolerance)
            leg = Leg(distance=m.distance) if m.kind == DRIVE else Leg(angle=m.angle)
            self.leg = LegController(leg, start, gains)
        self._last = start
        self._moved = 0.0  # m + rad the rover moved (velocity commands' progress measure)
        self._mark = (now, 0.0)  # (time, amount) when progress was last made
        self.progress = 0.0
        self.finished = False

    def _amount(self) -> float:
        """Progress in its unit: m travelled, rad turned, or m + rad moved."""
        if self.leg is None:
            return self._moved
        return self.leg.travelled if self.motion.kind == DRIVE else abs(self.leg.turned)

    def step(self, pose: Pose2D, now: float) -> TrackStep:
        """The command at ``pose`` and time ``now``."""
        m, c = self.motion, self.config
        self._moved += math.hypot(pose.x - self._last.x, pose.y - self._last.y) + \
            abs(wrap_angle(pose.yaw - self._last.yaw))
        self._last = pose
        if self.leg is not None:
            command = self.leg.update(pose)
            total = abs(m.distance) if m.kind == DRIVE else abs(m.angle)
            self.progress = 1.0 if total == 0.0 else min(1.0, max(0.0, self._amount() / total))
            if command is None:
                self.finished = True
                return TrackStep(0.0, 0.0, 1.0, done=True)
            linear, angular = command
        else:
            elapsed = now - self.started
            self.progress = min(1.0, max(0.0, elapsed / m.duration)) if m.duration > 0 else 1.0
            if elapsed >= m.duration:
                self.finished = True
                return TrackStep(0.0, 0.0, 1.0, done=True)
            linear, angular = m.linear, m.angular
            if linear == 0.0 and angular == 0.0:  # standing still for a while: no stall
                self._mark = (now, self._amount())
        amount = self._amount()
        if amount - self._mark[1] >= c.stall_progress:
            self._mark = (now, amount)
        stalled = now - self._mark[0] > c.stall_timeout
        return TrackStep(linear, angular, self.progress, stalled=stalled)

    def remaining(self, pose: Pose2D, now: float) -> Motion:
        """The part of the command still to come, from ``pose`` (for :func:`predict_path`)."""
        m = self.motion
        if self.leg is not None:
            left = max(0.0, self.leg.remaining)
            if m.kind == DRIVE:
                return replace(m, distance=math.copysign(left, m.distance))
            return replace(m, angle=math.copysign(left, m.angle))
        return replace(m, duration=max(0.0, m.duration - (now - self.started)))
