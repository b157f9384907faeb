"""Regulated pure pursuit for a skid-steer rover.

The control law is the one Nav2's Regulated Pure Pursuit controller describes: a carrot on the
path at a lookahead distance that grows with speed (clamped between a minimum and a maximum),
the curvature of the arc through it, a linear speed reduced on tight curves and when the goal is
near, a turn in place when the path lies far off the rover's heading, and a final turn to the
goal's heading once the rover stands within the goal tolerance. On top of it, each command is
regulated by what the rover knows about the terrain around it (`Regulation`: slope, hazard
proximity, light and confidence), and before any command is returned the next seconds of motion
are rolled out as an arc and handed to an injected `check_motion(poses)` that may veto them.

Pure and clock-free: the caller passes the pose, the time step and the regulation factors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from ilrs_robots.core.geometry import Pose2D, wrap_angle

#: `check_motion(poses) -> reason | None`: a reason string when the motion through `poses`
#: (rolled out from the next command) is unsafe, None when it is safe.
MotionCheck = Callable[[Sequence[Pose2D]], "str | None"]

# Follower states, as reported in `FollowCommand.state`.
TRACKING = "tracking"
ROTATING = "rotating"  # turning in place towards the path
ROTATING_TO_GOAL = "rotating_to_goal_heading"
ARRIVED = "arrived"
UNSAFE = "unsafe"
NO_PATH = "no_path"
INVALID_INPUT = "invalid_input"


@dataclass(frozen=True)
class FollowerLimits:
    """Limits and tuning of the path follower (SI units, angles in radians)."""

    max_linear: float = 0.5  # m/s
    max_angular: float = 0.8  # rad/s
    max_linear_accel: float = 0.5  # m/s^2
    max_linear_decel: float = 1.0  # m/s^2
    max_angular_accel: float = 1.6  # rad/s^2
    goal_tolerance: float = 0.5  # m: the goal is reached within this distance
    yaw_tolerance: float = 0.25  # rad: the goal heading is reached within this angle
    rotate_to_goal_heading: bool = True
    tilt_limit: float = math.radians(20.0)  # rad: never drive on a slope steeper than this
    lookahead_time: float = 1.5  # s: lookahead = speed * lookahead_time, clamped
    min_lookahead: float = 0.6  # m
    max_lookahead: float = 2.0  # m
    rotate_in_place_angle: float = math.radians(45.0)  # turn in place beyond this heading error
    rotate_exit_angle: float = math.radians(15.0)  # ... until within this one
    rotate_speed: float = 0.6  # rad/s when turning in place
    min_rotate_speed: float = 0.08  # rad/s: the slowest useful turn (wheels must still move)
    # on a slope a skid-steer turn in place slides the rover downhill (~0.7 m per rad on
    # south_pole's 4 deg), which only visual odometry sees, and only in slow turns: from
    # slope_rotate_start on, turns in place are no faster than slope_rotate_speed
    slope_rotate_speed: float = 0.22  # rad/s commanded (skid steering turns at about half)
    slope_rotate_start: float = math.radians(2.0)  # rad of tilt
    regulated_min_radius: float = 1.0  # m: slower on curves tighter than this
    approach_distance: float = 1.5  # m: slow down within this distance of the goal
    min_approach_speed: float = 0.05  # m/s
    min_regulated_speed: float = 0.05  # m/s: the floor of terrain regulation
    slope_slowdown_start: float = math.radians(6.0)  # rad: full speed below this slope
    min_slope_scale: float = 0.3  # speed fraction at the tilt limit
    min_hazard_scale: float = 0.25  # speed fraction at hazard cost 1
    min_confidence_scale: float = 0.3  # speed fraction in the dark / at confidence 0
    rollout_time: float = 2.0  # s of motion checked ahead of each command
    rollout_step: float = 0.1  # s between rolled-out poses
    min_rollout_distance: float = 0.5  # m checked ahead even when starting slowly

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool):
                continue
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f"{item.name} must be finite and not negative, got {value!r}")
        for name in ("max_linear", "max_angular", "max_linear_accel", "max_linear_decel",
                     "max_angular_accel", "goal_tolerance", "min_lookahead", "rotate_speed",
                     "slope_rotate_speed",
                     "rollout_step", "tilt_limit"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.max_lookahead < self.min_lookahead:
            raise ValueError("max_lookahead must not be below min_lookahead")
        if self.rotate_exit_angle > self.rotate_in_place_angle:
            raise ValueError("rotate_exit_angle must not exceed rotate_in_place_angle")
        if self.slope_slowdown_start >= self.tilt_limit:
            raise ValueError("slope_slowdown_start must be below tilt_limit")
        for name in ("min_slope_scale", "min_hazard_scale", "min_confidence_scale"):
            if getattr(self, name) > 1.0:
                raise ValueError(f"{name} must be within 0..1")


@dataclass(frozen=True)
class Regulation:
    """What the rover knows about its surroundings this cycle, to slow it down.

    slope: the steepest slope (rad) under or just ahead of the rover (tilt from the IMU, slope
    from the elevation map); hazard_cost: proximity to hazards, 0 (none) to 1 (touching);
    confidence: 1 in good light and with a sure map, down to 0 in the dark or with no map.
    A NaN is taken as the most cautious value.
    """

    slope: float = 0.0
    hazard_cost: float = 0.0
    confidence: float = 1.0


@dataclass(frozen=True)
class FollowCommand:
    """One velocity command of the follower and why it is what it is."""

    linear: float  # m/s
    angular: float  # rad/s
    state: str  # TRACKING, ROTATING, ROTATING_TO_GOAL, ARRIVED, UNSAFE, NO_PATH, INVALID_INPUT
    distance_remaining: float = 0.0  # m along the path
    unsafe_reason: str | None = None
    lookahead_point: tuple[float, float] | None = None
    speed_scale: float = 1.0  # product of the regulation factors applied

    @property
    def goal_reached(self) -> bool:
        """True once the rover stands at the goal (position and, if asked, heading)."""
        return self.state == ARRIVED


def rollout(pose: Pose2D, linear: float, angular: float, duration: float,
            step: float) -> list[Pose2D]:
    """Poses along the arc of a constant (linear, angular) command, every `step` seconds.

    The first pose is one step ahead of `pose`, the last one at `duration`; exact arcs.
    """
    poses: list[Pose2D] = []
    if duration <= 0.0 or step <= 0.0:
        return poses
    count = max(1, int(math.ceil(duration / step - 1e-9)))
    for i in range(1, count + 1):
        t = min(i * step, duration)
        yaw = pose.yaw + angular * t
        if abs(angular) < 1e-9:
            x = pose.x + linear * t * math.cos(pose.yaw)
            y = pose.y + linear * t * math.sin(pose.yaw)
        else:
            radius = linear / angular
            x = pose.x + radius * (math.sin(yaw) - math.sin(pose.yaw))
            y = pose.y - radius * (math.cos(yaw) - math.cos(pose.yaw))
        poses.append(Pose2D(x, y, wrap_angle(yaw)))
    return poses


def slope_scale(slope: float, limits: FollowerLimits) -> float:
    """Speed fraction on a slope: 1 below `slope_slowdown_start`, `min_slope_scale` at the
    tilt limit, linear in between (a NaN slope counts as the limit)."""
    slope = abs(slope) if math.isfinite(slope) else limits.tilt_limit
    if slope <= limits.slope_slowdown_start:
        return 1.0
    span = limits.tilt_limit - limits.slope_slowdown_start
    frac = min(1.0, (slope - limits.slope_slowdown_start) / span)
    return 1.0 - frac * (1.0 - limits.min_slope_scale)


def hazard_scale(cost: float, limits: FollowerLimits) -> float:
    """Speed fraction near hazards: 1 at cost 0, `min_hazard_scale` at cost 1 (NaN = 1)."""
    cost = min(1.0, max(0.0, cost)) if math.isfinite(cost) else 1.0
    return 1.0 - cost * (1.0 - limits.min_hazard_scale)


def confidence_scale(confidence: float, limits: FollowerLimits) -> float:
    """Speed fraction by light / map confidence: 1 at 1, `min_confidence_scale` at 0."""
    confidence = min(1.0, max(0.0, confidence)) if math.isfinite(confidence) else 0.0
    return limits.min_confidence_scale + confidence * (1.0 - limits.min_confidence_scale)


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


class PurePursuitFollower:
    """Regulated pure pursuit along a path of Pose2D, one `compute` call per control cycle.

    `check_motion(poses)`, when given, is asked about the rolled-out motion of every moving
    command; a reason back (or an exception in it) stops the rover with that reason.
    """

    def __init__(self, limits: FollowerLimits | None = None,
                 check_motion: MotionCheck | None = None) -> None:
        self.limits = limits or FollowerLimits()
        self.check_motion = check_motion
        self._xy = np.zeros((0, 2))
        self._cum = np.zeros(0)
        self._goal: Pose2D | None = None
        self._index = 0
        self._max_speed = self.limits.max_linear
        self._last = (0.0, 0.0)
        self._rotating = False
        self._slow_turn = False  # this turn in place began or went on on a slope
        self._at_goal_position = False

    # -- path -------------------------------------------------------------------------------

    def set_path(self, path: Sequence[Pose2D], max_speed: float | None = None) -> None:
        """Follow `path` (its last pose is the goal); `max_speed` > 0 lowers the speed limit.

        Raises ValueError for an empty path or a non-finite pose. The last command is kept, so
        a new path (a replan) does not jolt the rover.
        """
        if len(path) == 0:
            raise ValueError("empty path")
        for p in path:
            if not _finite(p.x, p.y, p.yaw):
                raise ValueError(f"non-finite pose in the path: {p}")
        xy = np.array([[p.x, p.y] for p in path], dtype=float)
        seg = np.hypot(*np.diff(xy, axis=0).T) if len(xy) > 1 else np.zeros(0)
        self._xy = xy
        self._cum = np.concatenate(([0.0], np.cumsum(seg)))
        self._goal = path[-1]
        self._index = 0
        self._rotating = False
        self._at_goal_position = False
        self._max_speed = self.limits.max_linear
        if max_speed is not None and math.isfinite(max_speed) and max_speed > 0.0:
            self._max_speed = min(max_speed, self.limits.max_linear)

    def clear(self) -> None:
        """Forget the path (compute then commands zero)."""
        self._xy = np.zeros((0, 2))
        self._cum = np.zeros(0)
        self._goal = None

    def reset(self) -> None:
        """Forget the path and the last command (after a stop the rover stood still)."""
        self.clear()
        self._last = (0.0, 0.0)

    def note_stopped(self) -> None:
        """Tell the follower the base was stopped by someone else (acceleration limits restart
        from rest)."""
        self._last = (0.0, 0.0)

    @property
    def has_path(self) -> bool:
        """True while a path is set."""
        return self._goal is not None

    @property
    def goal(self) -> Pose2D | None:
        """The last pose of the path, or None."""
        return self._goal

    def remaining_path(self) -> list[Pose2D]:
        """The path from the vertex before the rover's projection on it to the goal."""
        if self._goal is None:
            return []
        out = [Pose2D(float(x), float(y)) for x, y in self._xy[self._index:]]
        out[-1] = self._goal
        return out

    # -- control ----------------------------------------------------------------------------

    def compute(self, pose: Pose2D, dt: float, regulation: Regulation | None = None,
                speed: float | None = None) -> FollowCommand:
        """The command for this cycle.

        pose: the rover's pose in the path's frame; dt: seconds since the last command (for
        the acceleration limits); regulation: this cycle's slowing factors; speed: the measured
        forward speed (m/s) for the adaptive lookahead, else the last command's. Never returns
        a non-finite command.
        """
        lim = self.limits
        if self._goal is None:
            return self._stop(NO_PATH)
        if not _finite(pose.x, pose.y, pose.yaw):
            return self._stop(INVALID_INPUT, reason="pose is not finite")
        dt = min(max(dt, 0.0), 1.0) if math.isfinite(dt) else 0.0
        regulation = regulation or Regulation()
        if speed is None or not math.isfinite(speed):
            speed = self._last[0]

        slope = regulation.slope if math.isfinite(regulation.slope) else 0.0
        if abs(slope) > lim.tilt_limit:
            return self._stop(UNSAFE, reason=f"slope {math.degrees(abs(slope)):.1f} deg beyond "
                                             f"the tilt limit {math.degrees(lim.tilt_limit):.0f}")

        s_proj, dist_to_path = self._project(pose)
        remaining = float(self._cum[-1] - s_proj)
        goal = self._goal
        goal_dx, goal_dy = goal.x - pose.x, goal.y - pose.y
        goal_dist = math.hypot(goal_dx, goal_dy)
        cos_y, sin_y = math.cos(pose.yaw), math.sin(pose.yaw)
        goal_ahead = goal_dx * cos_y + goal_dy * sin_y

        # At the goal: stop translating once well inside the tolerance, or inside it with the
        # goal no longer ahead (no orbiting around it); then turn to the goal heading.
        if not self._at_goal_position and goal_dist <= lim.goal_tolerance and (
                goal_dist <= 0.5 * lim.goal_tolerance or goal_ahead <= 0.05
                or remaining <= 0.5 * lim.goal_tolerance):
            self._at_goal_position = True
        if self._at_goal_position:
            yaw_err = wrap_angle(goal.yaw - pose.yaw)
            if not lim.rotate_to_goal_heading or abs(yaw_err) <= lim.yaw_tolerance:
                return self._stop(ARRIVED, remaining=0.0)
            return self._turn(pose, yaw_err, dt, ROTATING_TO_GOAL, 0.0, slope=slope)

        lookahead = min(max(abs(speed) * lim.lookahead_time, lim.min_lookahead),
                        lim.max_lookahead)
        cx, cy = self._carrot(pose, s_proj, lookahead)
        dx, dy = cx - pose.x, cy - pose.y
        x_l = dx * cos_y + dy * sin_y
        y_l = -dx * sin_y + dy * cos_y
        angle = math.atan2(y_l, x_l)

        # Turn in place when the carrot lies far off the heading (with hysteresis).
        if abs(angle) > lim.rotate_in_place_angle or (
                self._rotating and abs(angle) > lim.rotate_exit_angle):
            self._rotating = True
            return self._turn(pose, angle, dt, ROTATING, remaining, (cx, cy), slope=slope)
        self._rotating = False
        self._slow_turn = False

        dist2 = x_l * x_l + y_l * y_l
        curvature = 2.0 * y_l / dist2 if dist2 > 1e-9 else 0.0

        v = self._max_speed
        if abs(curvature) > 1e-9:
            radius = 1.0 / abs(curvature)
            if radius < lim.regulated_min_radius:
                v *= radius / lim.regulated_min_radius
        to_go = min(remaining, goal_dist) if remaining > 0.0 else goal_dist
        if lim.approach_distance > 0.0 and to_go < lim.approach_distance:
            v *= to_go / lim.approach_distance
        v = min(v, math.sqrt(2.0 * lim.max_linear_decel * to_go))
        v = max(v, min(lim.min_approach_speed, self._max_speed))
        scale = (slope_scale(regulation.slope, lim) * hazard_scale(regulation.hazard_cost, lim)
                 * confidence_scale(regulation.confidence, lim))
        v = min(v, max(v * scale, min(lim.min_regulated_speed, self._max_speed)))
        w = v * curvature
        if abs(w) > lim.max_angular:
            v *= lim.max_angular / abs(w)
            w = math.copysign(lim.max_angular, w)

        # The motion the rover is heading for (before the acceleration limits), checked ahead.
        v_check = max(v, lim.min_rollout_distance / lim.rollout_time) if v > 0.0 else v
        reason = self._check(pose, v_check, v_check * curvature)
        if reason is not None:
            return self._stop(UNSAFE, reason=reason, remaining=remaining)

        v_prev, w_prev = self._last
        v = min(max(v, v_prev - lim.max_linear_decel * dt), v_prev + lim.max_linear_accel * dt)
        v = max(v, 0.0)
        w = v * curvature
        w_lim = min(max(w, w_prev - lim.max_angular_accel * dt),
                    w_prev + lim.max_angular_accel * dt)
        if w_lim != w:
            if abs(curvature) > 1e-9:
                v = min(v, abs(w_lim / curvature))
            w = w_lim
        return self._emit(v, w, TRACKING, remaining, (cx, cy), scale)

    # -- internals --------------------------------------------------------------------------

    def _turn(self, pose: Pose2D, angle: float, dt: float, state: str, remaining: float,
              carrot: tuple[float, float] | None = None, slope: float = 0.0) -> FollowCommand:
        """Turn in place towards `angle` (rad, relative), slowing to stop on it (and slow
        once it met a slope of `slope` rad, see `FollowerLimits.slope_rotate_speed`)."""
        lim = self.limits
        speed = min(lim.rotate_speed, lim.max_angular,
                    math.sqrt(2.0 * lim.max_angular_accel * abs(angle)))
        # latched for the whole turn: the IMU's tilt changes with the heading (an
        # accelerometer bias of 2 deg adds to or takes from the slope as the rover turns)
        self._slow_turn = self._slow_turn or abs(slope) >= lim.slope_rotate_start
        if self._slow_turn:
            speed = min(speed, lim.slope_rotate_speed)
        w = math.copysign(max(speed, lim.min_rotate_speed), angle)
        reason = self._check(pose, 0.0, w)
        if reason is not None:
            return self._stop(UNSAFE, reason=reason, remaining=remaining)
        v_prev, w_prev = self._last
        v = max(0.0, v_prev - lim.max_linear_decel * dt)
        w = min(max(w, w_prev - lim.max_angular_accel * dt), w_prev + lim.max_angular_accel * dt)
        return self._emit(v, w, state, remaining, carrot, 1.0)

    def _check(self, pose: Pose2D, linear: float, angular: float) -> str | None:
        if self.check_motion is None:
            return None
        poses = rollout(pose, linear, angular, self.limits.rollout_time, self.limits.rollout_step)
        try:
            reason = self.check_motion(poses)
        except Exception as exc:  # a broken check must stop the rover, not let it drive blind
            return f"motion check failed: {exc!r}"
        return None if reason is None else str(reason)

    def _emit(self, v: float, w: float, state: str, remaining: float,
              carrot: tuple[float, float] | None, scale: float) -> FollowCommand:
        if not _finite(v, w):
            return self._stop(INVALID_INPUT, reason="non-finite command computed")
        self._last = (v, w)
        return FollowCommand(v, w, state, distance_remaining=max(0.0, remaining),
                             lookahead_point=carrot, speed_scale=scale)

    def _stop(self, state: str, reason: str | None = None,
              remaining: float | None = None) -> FollowCommand:
        self._last = (0.0, 0.0)
        self._slow_turn = False
        if remaining is None or not math.isfinite(remaining):
            remaining = float(self._cum[-1]) if len(self._cum) else 0.0
        return FollowCommand(0.0, 0.0, state, distance_remaining=max(0.0, remaining),
                             unsafe_reason=reason)

    def _project(self, pose: Pose2D) -> tuple[float, float]:
        """Arc length of the rover's projection on the path (searched forward from the last
        one) and the distance to it; moves the path index on."""
        xy, cum = self._xy, self._cum
        n = len(xy)
        if n == 1:
            return 0.0, math.hypot(pose.x - xy[0, 0], pose.y - xy[0, 1])
        window = cum[self._index] + 3.0 * self.limits.max_lookahead + 2.0
        stop = int(np.searchsorted(cum, window, side="right"))
        best = self._search(pose, self._index, min(max(stop, self._index + 2), n))
        if best[2] > self.limits.max_lookahead and stop < n:
            best = self._search(pose, self._index, n)  # far off the path: look along all of it
        index, s, dist = best
        self._index = index
        return s, dist

    def _search(self, pose: Pose2D, start: int, stop: int) -> tuple[int, float, float]:
        a = self._xy[start:stop - 1]
        b = self._xy[start + 1:stop]
        d = b - a
        length2 = np.einsum("ij,ij->i", d, d)
        p = np.array([pose.x, pose.y])
        t = np.where(length2 > 1e-12, np.einsum("ij,ij->i", p - a, d) / np.maximum(length2,
                                                                                  1e-12), 0.0)
        t = np.clip(t, 0.0, 1.0)
        proj = a + d * t[:, None]
        dist = np.hypot(*(proj - p).T)
        k = int(np.argmin(dist))
        s = float(self._cum[start + k] + t[k] * math.sqrt(length2[k]))
        return start + k, s, float(dist[k])

    def _carrot(self, pose: Pose2D, s_proj: float, lookahead: float) -> tuple[float, float]:
        """The first point along the path, from the projection on, at `lookahead` from the
        rover (interpolated on its segment); the goal when the path ends sooner."""
        xy, cum = self._xy, self._cum
        p = np.array([pose.x, pose.y])
        if len(xy) == 1:
            return float(xy[0, 0]), float(xy[0, 1])
        i = self._index
        seg = cum[i + 1] - cum[i]
        t0 = (s_proj - cum[i]) / seg if seg > 1e-12 else 0.0
        start = xy[i] + (xy[i + 1] - xy[i]) * t0
        if np.hypot(*(start - p)) >= lookahead:
            return float(start[0]), float(start[1])
        for j in range(i, len(xy) - 1):
            a = start if j == i else xy[j]
            b = xy[j + 1]
            if np.hypot(*(b - p)) < lookahead:
                continue
            # |a + t (b - a) - p| = lookahead, the root in [0, 1] (a is inside the circle)
            d = b - a
            f = a - p
            qa = float(d @ d)
            qb = 2.0 * float(f @ d)
            qc = float(f @ f) - lookahead * lookahead
            disc = max(0.0, qb * qb - 4.0 * qa * qc)
            t = (-qb + math.sqrt(disc)) / (2.0 * qa) if qa > 1e-12 else 1.0
            t = min(max(t, 0.0), 1.0)
            point = a + d * t
            return float(point[0]), float(point[1])
        return float(xy[-1, 0]), float(xy[-1, 1])
