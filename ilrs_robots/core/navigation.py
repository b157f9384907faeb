"""The navigation state machine behind NavigateToPose and FollowWaypoints.

Pure and clock-injected: the `navigator` node calls `Navigator.step(now, pose, ...)` once per
control cycle and publishes the command it returns; goals come in through `set_goal` and
`cancel`. Everything the state machine needs from the rest of the stack is injected:

- `plan(start, goal) -> Sequence[Pose2D]`, raising an exception that carries a `code` (a
  `NavError`, its number, or a name such as "OFF_MAP" / "in_hazard" / "keep_out" /
  "unreachable") and a message when it refuses, e.g. `PlanningFailed` below;
- `path_blocked(path) -> bool | str | None`: truthy (or a reason) when the map changed under
  the remaining path;
- the path follower (`PurePursuitFollower`), which owns `check_motion(poses)`.

States (`NavState`): IDLE -> FOLLOWING (a goal accepted and planned) -> SUCCEEDED, or via
RECOVERING (back up, turn in place, replan; counted) back to FOLLOWING, or FAILED / CANCELED.
PLANNING is the state while the injected planner runs. Error codes (`NavError`) are the
numbers of ilrs_interfaces/action/NavigateToPose.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum, IntEnum

from ilrs_robots.core.geometry import Pose2D, wrap_angle
from ilrs_robots.core.path_following import (
    ARRIVED,
    NO_PATH,
    UNSAFE,
    PurePursuitFollower,
    Regulation,
    rollout,
)


class NavError(IntEnum):
    """Result codes of NavigateToPose / FollowWaypoints (fixed by the action definition)."""

    NONE = 0
    UNKNOWN = 9000
    TIMEOUT = 9003
    INVALID_GOAL = 9100
    OFF_MAP = 9101
    IN_HAZARD = 9102
    IN_KEEP_OUT = 9103
    UNREACHABLE = 9104
    CANCELED = 9105
    PREEMPTED = 9106
    BLOCKED = 9107
    ESTOP = 9108
    NO_LOCALIZATION = 9109


class NavState(Enum):
    """States of the navigation state machine."""

    IDLE = "idle"
    PLANNING = "planning"
    FOLLOWING = "following"
    RECOVERING = "recovering"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


ACTIVE_STATES = frozenset({NavState.PLANNING, NavState.FOLLOWING, NavState.RECOVERING})

Planner = Callable[[Pose2D, Pose2D], Sequence[Pose2D]]
PathCheck = Callable[[Sequence[Pose2D]], "bool | str | None"]
#: told where the rover could not make headway (its pose, +1 driving forward or -1 back);
#: returns the (x, y) the planner will keep away from, or None
NoHeadwayHook = Callable[[Pose2D, float], "tuple[float, float] | None"]


class PlanningFailed(Exception):
    """A planner's refusal: `code` (NavError, its number or name) and a message for people."""

    def __init__(self, code: NavError | int | str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_CODE_NAMES = {
    "off_map": NavError.OFF_MAP, "outside_map": NavError.OFF_MAP,
    "in_hazard": NavError.IN_HAZARD, "hazard": NavError.IN_HAZARD,
    "lethal": NavError.IN_HAZARD, "in_lethal": NavError.IN_HAZARD,
    "in_keep_out": NavError.IN_KEEP_OUT, "keep_out": NavError.IN_KEEP_OUT,
    "keepout": NavError.IN_KEEP_OUT, "unreachable": NavError.UNREACHABLE,
    "no_path": NavError.UNREACHABLE, "invalid_goal": NavError.INVALID_GOAL,
    "timeout": NavError.TIMEOUT,
}


def error_code_of(exc: BaseException) -> NavError:
    """The NavError a planner's exception stands for (UNKNOWN when it names none)."""
    code = getattr(exc, "code", None)
    if isinstance(code, NavError):
        return code
    if isinstance(code, Enum):
        code = code.value if isinstance(code.value, int) else code.name
    if isinstance(code, int):
        try:
            return NavError(code)
        except ValueError:
            return NavError.UNKNOWN
    if isinstance(code, str):
        key = code.strip().lower().replace("-", "_").replace(" ", "_")
        if key.upper() in NavError.__members__:
            return NavError[key.upper()]
        return _CODE_NAMES.get(key, NavError.UNKNOWN)
    return NavError.UNKNOWN


@dataclass(frozen=True)
class NavigatorConfig:
    """Timing and recovery settings of the navigator (seconds, metres, radians)."""

    replan_period: float = 10.0  # replan this often while following (0 = only when needed)
    blocked_check_period: float = 0.0  # ask path_blocked this often (0 = every step)
    stall_timeout: float = 10.0  # commanding motion this long without progress = stalled
    progress_distance: float = 0.3  # m moved that counts as progress
    progress_angle: float = 0.35  # rad turned that counts as progress
    min_command_linear: float = 0.03  # m/s: a command at least this fast is "moving"
    min_command_angular: float = 0.05  # rad/s: a turn at least this fast is "moving"
    slip_window: float = 2.0  # s of commands and poses compared to detect slip
    slip_ratio: float = 0.25  # measured / commanded speed below this = slipping
    slip_min_speed: float = 0.05  # m/s: slower commands are not judged for slip
    slip_flag_hold: float = 1.5  # s the localization's slip flag must last while driving on
    unsafe_timeout: float = 3.0  # stopped by check_motion this long -> recovery
    max_recoveries: int = 6  # consecutive recoveries without progress before failing
    recovery_reset_distance: float = 2.0  # m of progress that resets the consecutive count
    settle_time: float = 1.0  # s standing still at the start of each recovery
    backup_distance: float = 0.6  # m
    backup_speed: float = 0.15  # m/s
    turn_angle: float = math.pi / 2.0  # rad
    turn_speed: float = 0.4  # rad/s
    # as FollowerLimits.slope_rotate_*: on a slope, turn slowly enough for visual odometry
    slope_turn_speed: float = 0.22  # rad/s
    slope_turn_start: float = math.radians(2.0)  # rad of tilt
    recovery_timeout: float = 15.0  # s a back-up or turn may take
    goal_timeout: float = 0.0  # s for a whole goal (0 = none)
    localization_timeout: float = 2.0  # s without a valid pose -> NO_LOCALIZATION
    speed_window: float = 10.0  # s over which speed made good is measured
    min_speed_made_good: float = 0.02  # m/s: slower counts as none (ETA from max speed)

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{item.name} must be finite and not negative, got {value!r}")
        for name in ("stall_timeout", "progress_distance", "slip_window", "backup_speed",
                     "turn_speed", "slope_turn_speed", "recovery_timeout", "speed_window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class GoalResult:
    """How a goal ended: its final state, NavError code and a reason people understand."""

    goal_id: int
    state: NavState
    error_code: NavError
    error_msg: str
    navigation_time: float = 0.0
    number_of_recoveries: int = 0

    @property
    def succeeded(self) -> bool:
        """True for a goal reached."""
        return self.state is NavState.SUCCEEDED


@dataclass(frozen=True)
class GoalResponse:
    """The answer to `set_goal`: accepted (and planned) or refused at once with a code."""

    accepted: bool
    goal_id: int
    error_code: NavError = NavError.NONE
    error_msg: str = ""
    path: list[Pose2D] = field(default_factory=list)
    preempted: GoalResult | None = None  # the goal this one replaced, ended PREEMPTED


@dataclass(frozen=True)
class NavFeedback:
    """Progress of the active goal (NavigateToPose feedback)."""

    current_pose: Pose2D
    distance_remaining: float  # m along the path
    estimated_time_remaining: float  # s
    number_of_recoveries: int
    navigation_time: float  # s since the goal was accepted


@dataclass(frozen=True)
class NavOutput:
    """What one `step` returns: the command to publish and the state it leaves."""

    linear: float
    angular: float
    state: NavState
    feedback: NavFeedback | None = None
    result: GoalResult | None = None  # set on the step a goal ends
    new_path: list[Pose2D] | None = None  # set on the step a (re)plan was made: publish it
    note: str = ""  # why the rover stops or recovers, for logs and diagnostics


BACK_UP = "back_up"
TURN = "turn"
REPLAN = "replan"
RECOVERY_ORDER = (BACK_UP, TURN, REPLAN)


@dataclass
class _Recovery:
    kind: str
    started: float
    start_pose: Pose2D
    reason: str
    settled: bool = False
    action_started: float = 0.0
    turned: float = 0.0
    last_yaw: float = 0.0
    direction: float = 1.0
    slow: bool = False  # a turn that met a slope stays slow to its end


def _valid_pose(pose: Pose2D | None) -> bool:
    return pose is not None and all(math.isfinite(v) for v in (pose.x, pose.y, pose.yaw))


class Navigator:
    """Drives one goal at a time: plan, follow, watch progress and slip, recover, report."""

    def __init__(self, plan: Planner, follower: PurePursuitFollower,
                 config: NavigatorConfig | None = None,
                 path_blocked: PathCheck | None = None,
                 on_no_headway: NoHeadwayHook | None = None) -> None:
        self.plan = plan
        self.follower = follower
        self.config = config or NavigatorConfig()
        self.path_blocked = path_blocked
        self.on_no_headway = on_no_headway
        self.state = NavState.IDLE
        self.goal: Pose2D | None = None
        self.goal_id = 0
        self.path: list[Pose2D] = []
        self.result: GoalResult | None = None
        self.number_of_recoveries = 0
        self._max_speed = 0.0
        self._reset_goal_state(0.0)

    # -- goals ------------------------------------------------------------------------------

    def set_goal(self, goal: Pose2D, now: float, pose: Pose2D | None, max_speed: float = 0.0,
                 estop: bool = False) -> GoalResponse:
        """Take a new goal, pre-empting any active one, and plan it at once.

        Refused at once (response.accepted False, state FAILED) when the goal is not finite,
        `max_speed` is negative or not finite, the estop is latched, there is no pose, or the
        planner refuses (its code: OFF_MAP, IN_HAZARD, IN_KEEP_OUT, UNREACHABLE, ...).
        """
        preempted = None
        if self.state in ACTIVE_STATES:
            preempted = self._finish(now, NavState.CANCELED, NavError.PREEMPTED,
                                     "replaced by a newer goal")
        self.goal_id += 1
        self.goal = goal
        self.number_of_recoveries = 0
        self._reset_goal_state(now)
        self.follower.clear()

        def refuse(code: NavError, msg: str) -> GoalResponse:
            self.state = NavState.FAILED
            self.result = GoalResult(self.goal_id, NavState.FAILED, code, msg)
            return GoalResponse(False, self.goal_id, code, msg, preempted=preempted)

        if not all(math.isfinite(v) for v in (goal.x, goal.y, goal.yaw)):
            return refuse(NavError.INVALID_GOAL,
                          f"goal ({goal.x}, {goal.y}, yaw {goal.yaw}) is not a finite pose")
        if not math.isfinite(max_speed) or max_speed < 0.0:
            return refuse(NavError.INVALID_GOAL, f"max_speed {max_speed} must be 0 or positive")
        if estop:
            return refuse(NavError.ESTOP, "the emergency stop is latched")
        if not _valid_pose(pose):
            return refuse(NavError.NO_LOCALIZATION, "no pose estimate of the rover yet")
        self._max_speed = max_speed
        error = self._make_plan(pose, now)
        if error is not None:
            return refuse(*error)
        self.state = NavState.FOLLOWING
        self._start_tracking(now, pose)
        return GoalResponse(True, self.goal_id, path=list(self.path), preempted=preempted)

    def cancel(self, now: float) -> GoalResult | None:
        """Cancel the active goal (the next command is zero); None when nothing was active."""
        if self.state not in ACTIVE_STATES:
            return None
        return self._finish(now, NavState.CANCELED, NavError.CANCELED, "canceled")

    @property
    def active(self) -> bool:
        """True while a goal is being pursued."""
        return self.state in ACTIVE_STATES

    # -- the control cycle ------------------------------------------------------------------

    def step(self, now: float, pose: Pose2D | None, regulation: Regulation | None = None,
             slipping: bool | None = None, estop: bool = False) -> NavOutput:
        """One control cycle: the command to publish now and the state after it.

        pose: the rover's pose in the map frame (None or NaN when localization has none);
        regulation: slope, hazard proximity and confidence for the follower; slipping: the
        localization's wheel-slip flag, if it has one (slip is also computed from the commands
        against the poses); estop: the emergency stop is latched (the goal fails with ESTOP).
        """
        if self.state not in ACTIVE_STATES:
            return NavOutput(0.0, 0.0, self.state)
        dt = max(0.0, now - self._last_step) if math.isfinite(now) else 0.0
        self._last_step = now if math.isfinite(now) else self._last_step
        if estop:
            return self._end(now, NavState.FAILED, NavError.ESTOP, "the emergency stop is latched")
        cfg = self.config
        if cfg.goal_timeout > 0.0 and now - self._goal_start > cfg.goal_timeout:
            return self._end(now, NavState.FAILED, NavError.TIMEOUT,
                             f"goal not reached within {cfg.goal_timeout:.0f} s")
        if not _valid_pose(pose):
            self.follower.note_stopped()
            if dt > 0.5 * cfg.localization_timeout and self._had_pose:
                # this process stalled right after a good pose (a loaded machine): the poses
                # sent meanwhile are still queued behind us; that gap is not the
                # localization's, so it gets its whole timeout from now (the rover is held)
                self._last_pose_time = now
            self._had_pose = False
            if now - self._last_pose_time > cfg.localization_timeout:
                return self._end(now, NavState.FAILED, NavError.NO_LOCALIZATION,
                                 f"no valid pose for {now - self._last_pose_time:.1f} s")
            return NavOutput(0.0, 0.0, self.state, note="waiting for a valid pose")
        self._last_pose_time = now
        self._had_pose = True
        self._new_path = None
        if self.state is NavState.RECOVERING:
            out = self._recover(now, pose, dt, regulation)
        else:
            out = self._follow(now, pose, dt, regulation, slipping)
        self._history.append((now, pose, out.linear, out.angular))
        while self._history and now - self._history[0][0] > cfg.slip_window + 1.0:
            self._history.popleft()
        return out

    # -- following --------------------------------------------------------------------------

    def _follow(self, now: float, pose: Pose2D, dt: float, regulation: Regulation | None,
                slipping: bool | None) -> NavOutput:
        cfg = self.config
        note = ""
        blocked = None
        if now - self._last_blocked_check >= cfg.blocked_check_period:
            self._last_blocked_check = now
            blocked = self._blocked(self.follower.remaining_path())
        if blocked is not None:
            error = self._make_plan(pose, now)
            if error is not None:
                return self._begin_recovery(now, pose, f"path blocked ({blocked}) and no new "
                                            f"path: {error[1]}", error[0])
            if self._blocked(self.path) is not None:  # the planner's map lags path_blocked's
                return self._begin_recovery(now, pose, f"path blocked ({blocked}) and the "
                                            "new path is blocked too")
            note = f"replanned: {blocked}"
            self._reset_trackers(now, pose)
        elif cfg.replan_period > 0.0 and now - self._last_plan >= cfg.replan_period:
            error = self._make_plan(pose, now)
            if error is not None:  # keep driving the old path; path_blocked guards it
                self._last_plan = now
                note = f"periodic replan failed, keeping the path: {error[1]}"

        cmd = self.follower.compute(pose, dt, regulation)
        self._distance_remaining = cmd.distance_remaining
        if cmd.state == ARRIVED:
            return self._end(now, NavState.SUCCEEDED, NavError.NONE, "", pose)
        if cmd.state == NO_PATH:
            return self._begin_recovery(now, pose, "the follower lost its path")
        if pose_distance(pose, self._anchor) >= cfg.recovery_reset_distance:
            self._consecutive = 0
            self._anchor = pose
        if cmd.state == UNSAFE:
            if self._unsafe_since is None:
                self._unsafe_since = now
            if now - self._unsafe_since >= cfg.unsafe_timeout:
                return self._begin_recovery(now, pose, f"unsafe ahead: {cmd.unsafe_reason}")
            return self._output(now, pose, 0.0, 0.0, f"stopped: {cmd.unsafe_reason}")
        self._unsafe_since = None

        if self._slipping(now, pose, slipping):
            return self._begin_recovery(now, pose, "wheel slip: the wheels turn, the rover "
                                                   "does not move" + self._no_headway(pose))
        moving = (abs(self._last_cmd[0]) >= cfg.min_command_linear
                  or abs(self._last_cmd[1]) >= cfg.min_command_angular)
        if (pose_distance(pose, self._progress_pose) >= cfg.progress_distance
                or abs(wrap_angle(pose.yaw - self._progress_pose.yaw)) >= cfg.progress_angle):
            self._progress_pose = pose
            self._stalled_for = 0.0
        elif moving:
            self._stalled_for += dt
            if self._stalled_for >= cfg.stall_timeout:
                return self._begin_recovery(now, pose, f"no progress for "
                                                       f"{self._stalled_for:.0f} s"
                                                       + self._no_headway(pose))
        self._track_distance(now)
        return self._output(now, pose, cmd.linear, cmd.angular, note)

    def _no_headway(self, pose: Pose2D) -> str:
        """Tell the planner where the rover could not make headway; the note for the
        recovery's reason ("" when nobody is told or the rover was turning in place)."""
        linear = self._last_cmd[0]
        if self.on_no_headway is None or abs(linear) < self.config.min_command_linear:
            return ""
        try:
            spot = self.on_no_headway(pose, 1.0 if linear > 0.0 else -1.0)
        except Exception as exc:  # the planner's memory must not stop the recovery
            return f" (not remembered: {exc!r})"
        return "" if spot is None else f"; planning around ({spot[0]:.1f}, {spot[1]:.1f})"

    def _blocked(self, path: Sequence[Pose2D]) -> str | None:
        """Why `path` is blocked according to the injected check, or None."""
        if self.path_blocked is None:
            return None
        try:
            verdict = self.path_blocked(path)
        except Exception as exc:  # a broken map check: replan rather than drive on
            return f"path check failed: {exc!r}"
        if not verdict:
            return None
        return verdict if isinstance(verdict, str) else "the map changed under the path"

    def _slipping(self, now: float, pose: Pose2D, flag: bool | None) -> bool:
        """Slip: forward motion commanded all through the window, the pose hardly moved."""
        cfg = self.config
        commanding = abs(self._last_cmd[0]) >= cfg.slip_min_speed
        # the localization's flag counts once it held while driving on: raised by the yaw
        # of a skid-steer turn in place, it lingers a moment into the drive that follows
        if flag and commanding:
            if self._slip_flag_since is None:
                self._slip_flag_since = now
            if now - self._slip_flag_since >= cfg.slip_flag_hold:
                return True
        else:
            self._slip_flag_since = None
        window = [h for h in self._history if now - h[0] <= cfg.slip_window + 1e-9]
        if len(window) < 2:
            return False
        span = now - window[0][0]
        if span < 0.9 * cfg.slip_window:
            return False
        commanded = [abs(h[2]) for h in window]  # each applied from its pose on
        if min(commanded) < cfg.slip_min_speed:
            return False
        measured = pose_distance(pose, window[0][1]) / span
        return measured < cfg.slip_ratio * (sum(commanded) / len(commanded))

    # -- recoveries -------------------------------------------------------------------------

    def _begin_recovery(self, now: float, pose: Pose2D, reason: str,
                        plan_error: NavError | None = None) -> NavOutput:
        cfg = self.config
        self.follower.note_stopped()
        self._last_failure = (plan_error, reason)
        if self._consecutive >= cfg.max_recoveries:
            code = plan_error if plan_error is not None else NavError.BLOCKED
            return self._end(now, NavState.FAILED, code,
                             f"blocked after {self._consecutive} recoveries: {reason}")
        kind = RECOVERY_ORDER[self._consecutive % len(RECOVERY_ORDER)]
        self._consecutive += 1
        self.number_of_recoveries += 1
        self._anchor = pose
        goal = self.goal or pose
        bearing = wrap_angle(math.atan2(goal.y - pose.y, goal.x - pose.x) - pose.yaw)
        self._recovery = _Recovery(kind, now, pose, reason, last_yaw=pose.yaw,
                                   direction=1.0 if bearing >= 0.0 else -1.0)
        self.state = NavState.RECOVERING
        return self._output(now, pose, 0.0, 0.0, f"recovery {self.number_of_recoveries} "
                                                 f"({kind}): {reason}")

    def _recover(self, now: float, pose: Pose2D, dt: float,
                 regulation: Regulation | None) -> NavOutput:
        cfg = self.config
        rec = self._recovery
        assert rec is not None
        note = f"recovery ({rec.kind}): {rec.reason}"
        if not rec.settled:
            if now - rec.started < cfg.settle_time:
                return self._output(now, pose, 0.0, 0.0, note)
            rec.settled = True
            rec.action_started = now
            rec.start_pose = pose
            rec.last_yaw = pose.yaw
        elapsed = now - rec.action_started
        left = 0.0
        done = rec.kind == REPLAN or elapsed >= cfg.recovery_timeout
        command = (0.0, 0.0)
        if not done and rec.kind == BACK_UP:
            left = cfg.backup_distance - pose_distance(pose, rec.start_pose)
            if left <= 0.0:
                done = True
            else:
                command = (-cfg.backup_speed, 0.0)
        elif not done and rec.kind == TURN:
            rec.turned += abs(wrap_angle(pose.yaw - rec.last_yaw))
            rec.last_yaw = pose.yaw
            left = cfg.turn_angle - rec.turned
            if left <= 0.0:
                done = True
            else:
                speed = cfg.turn_speed
                if regulation is not None and math.isfinite(regulation.slope) \
                        and abs(regulation.slope) >= cfg.slope_turn_start:
                    rec.slow = True
                if rec.slow:
                    speed = min(speed, cfg.slope_turn_speed)
                command = (0.0, rec.direction * speed)
        if not done:
            reason = self._check_recovery_motion(pose, command, left)
            if reason is not None:
                note = f"recovery ({rec.kind}) stopped: {reason}"
                done = True
                command = (0.0, 0.0)
        if not done:
            return self._output(now, pose, command[0], command[1], note)
        # every recovery ends in a replan from where the rover stands
        self._recovery = None
        error = self._make_plan(pose, now)
        if error is not None:
            return self._begin_recovery(now, pose, f"no path after recovery: {error[1]}",
                                        error[0])
        self.state = NavState.FOLLOWING
        self._reset_trackers(now, pose)
        return self._output(now, pose, 0.0, 0.0, f"recovered ({rec.kind}), replanned")

    def _check_recovery_motion(self, pose: Pose2D, command: tuple[float, float],
                               left: float) -> str | None:
        check = self.follower.check_motion
        if check is None:
            return None
        linear, angular = command
        speed = abs(linear) if linear else abs(angular)
        duration = min(left / speed, self.follower.limits.rollout_time) if speed > 0 else 0.0
        poses = rollout(pose, linear, angular, max(duration, self.follower.limits.rollout_step),
                        self.follower.limits.rollout_step)
        try:
            reason = check(poses)
        except Exception as exc:  # a broken check stops the motion
            return f"motion check failed: {exc!r}"
        return None if reason is None else str(reason)

    # -- planning and bookkeeping -----------------------------------------------------------

    def _make_plan(self, pose: Pose2D, now: float) -> tuple[NavError, str] | None:
        """Plan from `pose` to the goal into self.path; (code, reason) when refused."""
        assert self.goal is not None
        previous_state = self.state
        self.state = NavState.PLANNING
        try:
            path = list(self.plan(pose, self.goal))
        except Exception as exc:  # the planner's refusal (or failure) becomes a result code
            code = error_code_of(exc)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            if code is NavError.UNKNOWN and not hasattr(exc, "code"):
                message = f"planner failed: {exc!r}"
            return code, message
        finally:
            self.state = previous_state
        if not path:
            return NavError.UNREACHABLE, "the planner found no path to the goal"
        try:
            self.follower.set_path(path, self._max_speed)
        except ValueError as exc:
            return NavError.UNKNOWN, f"the planner returned a bad path: {exc}"
        self.path = path
        self._new_path = list(path)
        self._last_plan = now
        self._distance_samples.clear()
        return None

    def _reset_goal_state(self, now: float) -> None:
        self._goal_start = now
        self._last_step = now
        self._last_pose_time = now
        self._had_pose = True  # set_goal had one
        self._last_plan = now
        self._last_blocked_check = -math.inf
        self._recovery: _Recovery | None = None
        self._consecutive = 0
        self._last_failure: tuple[NavError | None, str] | None = None
        self._history: deque[tuple[float, Pose2D, float, float]] = deque()
        self._distance_samples: deque[tuple[float, float]] = deque()
        self._distance_remaining = 0.0
        self._new_path: list[Pose2D] | None = None
        self._last_cmd = (0.0, 0.0)
        self._unsafe_since: float | None = None
        self._anchor = Pose2D()
        self._progress_pose = Pose2D()
        self._stalled_for = 0.0
        self.path = []

    def _start_tracking(self, now: float, pose: Pose2D) -> None:
        self._anchor = pose
        self._reset_trackers(now, pose)

    def _reset_trackers(self, now: float, pose: Pose2D) -> None:
        self._progress_pose = pose
        self._stalled_for = 0.0
        self._unsafe_since = None
        self._slip_flag_since: float | None = None
        self._history.clear()

    def _track_distance(self, now: float) -> None:
        samples = self._distance_samples
        samples.append((now, self._distance_remaining))
        while samples and now - samples[0][0] > self.config.speed_window:
            samples.popleft()

    def _speed_made_good(self) -> float:
        """Recent decrease of the distance remaining per second (0 when unknown)."""
        samples = self._distance_samples
        if len(samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = samples[0], samples[-1]
        if t1 - t0 < 1.0:
            return 0.0
        return max(0.0, (d0 - d1) / (t1 - t0))

    def _max_linear(self) -> float:
        limit = self.follower.limits.max_linear
        return min(limit, self._max_speed) if self._max_speed > 0.0 else limit

    def _feedback(self, now: float, pose: Pose2D) -> NavFeedback:
        distance = self._distance_remaining
        smg = self._speed_made_good()
        speed = smg if smg >= self.config.min_speed_made_good else self._max_linear()
        return NavFeedback(pose, distance, distance / speed, self.number_of_recoveries,
                           max(0.0, now - self._goal_start))

    def _output(self, now: float, pose: Pose2D, linear: float, angular: float,
                note: str = "") -> NavOutput:
        if not (math.isfinite(linear) and math.isfinite(angular)):
            linear, angular, note = 0.0, 0.0, "non-finite command suppressed"
        self._last_cmd = (linear, angular)
        if linear == 0.0 and angular == 0.0:
            self.follower.note_stopped()
        return NavOutput(linear, angular, self.state, self._feedback(now, pose), None,
                         self._new_path, note)

    def _finish(self, now: float, state: NavState, code: NavError, msg: str) -> GoalResult:
        self.state = state
        self.follower.reset()
        self._recovery = None
        self._last_cmd = (0.0, 0.0)
        self.result = GoalResult(self.goal_id, state, code, msg,
                                 max(0.0, now - self._goal_start), self.number_of_recoveries)
        return self.result

    def _end(self, now: float, state: NavState, code: NavError, msg: str,
             pose: Pose2D | None = None) -> NavOutput:
        result = self._finish(now, state, code, msg)
        feedback = None
        if pose is not None:
            self._distance_remaining = 0.0 if state is NavState.SUCCEEDED else \
                self._distance_remaining
            feedback = self._feedback(now, pose)
        return NavOutput(0.0, 0.0, state, feedback, result, self._new_path, msg)


def pose_distance(a: Pose2D, b: Pose2D) -> float:
    """Planar distance between two poses (m)."""
    return math.hypot(a.x - b.x, a.y - b.y)


# -- FollowWaypoints --------------------------------------------------------------------------

#: Codes after which going on to the next waypoint is pointless: the sequence ends.
STOPPING_CODES = frozenset({NavError.CANCELED, NavError.PREEMPTED, NavError.ESTOP,
                            NavError.NO_LOCALIZATION})


@dataclass(frozen=True)
class WaypointResult:
    """How a waypoint sequence ended (FollowWaypoints result)."""

    state: NavState
    missed_waypoints: list[int]
    error_code: NavError
    error_msg: str
    missed_reasons: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WaypointOutput:
    """One step of a waypoint sequence: the command, the waypoint under way, and the end."""

    linear: float
    angular: float
    current_waypoint: int
    nav: NavOutput | None = None
    result: WaypointResult | None = None


class WaypointSequencer:
    """Drives a Navigator through waypoints in order; a waypoint refused or failed is recorded
    as missed and the next one is taken (unless the failure stops everything: cancel, estop,
    no localization, pre-emption by another goal)."""

    def __init__(self, navigator: Navigator) -> None:
        self.navigator = navigator
        self.waypoints: list[Pose2D] = []
        self.current_waypoint = 0
        self.missed: list[int] = []
        self.missed_reasons: dict[int, str] = {}
        self.result: WaypointResult | None = None
        self._goal_id: int | None = None
        self._max_speed = 0.0
        self._last_code = NavError.UNKNOWN
        self._running = False

    @property
    def active(self) -> bool:
        """True while waypoints remain to be driven to."""
        return self._running

    def start(self, waypoints: Sequence[Pose2D], now: float, pose: Pose2D | None,
              max_speed: float = 0.0) -> WaypointResult | None:
        """Start a sequence (pre-empting any navigation); its result when it ends at once."""
        self.waypoints = list(waypoints)
        self.current_waypoint = 0
        self.missed = []
        self.missed_reasons = {}
        self.result = None
        self._goal_id = None
        self._max_speed = max_speed
        self._last_code = NavError.UNKNOWN
        self._running = True
        if not self.waypoints:
            return self._end(NavState.FAILED, NavError.INVALID_GOAL, "no waypoints given")
        return self._send_from(0, now, pose)

    def cancel(self, now: float) -> WaypointResult | None:
        """Cancel the sequence (the navigator stops); None when nothing was active."""
        if not self.active:
            return None
        self.navigator.cancel(now)
        return self._end(NavState.CANCELED, NavError.CANCELED, "canceled")

    def step(self, now: float, pose: Pose2D | None, regulation: Regulation | None = None,
             slipping: bool | None = None, estop: bool = False) -> WaypointOutput:
        """One control cycle of the sequence (same arguments as Navigator.step)."""
        if not self.active:
            return WaypointOutput(0.0, 0.0, self.current_waypoint, None, self.result)
        if self.navigator.goal_id != self._goal_id:
            result = self._end(NavState.CANCELED, NavError.PREEMPTED,
                               "replaced by another navigation goal")
            return WaypointOutput(0.0, 0.0, self.current_waypoint, None, result)
        out = self.navigator.step(now, pose, regulation, slipping, estop)
        if out.result is None:
            return WaypointOutput(out.linear, out.angular, self.current_waypoint, out)
        result = self._on_goal_end(out.result, now, pose)
        return WaypointOutput(0.0, 0.0, self.current_waypoint, out, result)

    def _on_goal_end(self, goal: GoalResult, now: float,
                     pose: Pose2D | None) -> WaypointResult | None:
        index = self.current_waypoint
        if not goal.succeeded:
            if goal.error_code in STOPPING_CODES:
                state = NavState.CANCELED if goal.error_code in (
                    NavError.CANCELED, NavError.PREEMPTED) else NavState.FAILED
                return self._end(state, goal.error_code,
                                 f"waypoint {index}: {goal.error_msg}")
            self._miss(index, goal.error_code, goal.error_msg)
        return self._send_from(index + 1, now, pose)

    def _send_from(self, index: int, now: float, pose: Pose2D | None) -> WaypointResult | None:
        """Send waypoints from `index` on until one is accepted or none is left."""
        while index < len(self.waypoints):
            self.current_waypoint = index
            response = self.navigator.set_goal(self.waypoints[index], now, pose, self._max_speed)
            self._goal_id = response.goal_id
            if response.accepted:
                return None
            if response.error_code in STOPPING_CODES:
                return self._end(NavState.FAILED, response.error_code,
                                 f"waypoint {index}: {response.error_msg}")
            self._miss(index, response.error_code, response.error_msg)
            index += 1
        if len(self.missed) == len(self.waypoints):
            code = self._last_code
            return self._end(NavState.FAILED, code, "every waypoint was missed")
        return self._end(NavState.SUCCEEDED, NavError.NONE,
                         f"missed waypoints {self.missed}" if self.missed else "")

    def _miss(self, index: int, code: NavError, msg: str) -> None:
        self.missed.append(index)
        self.missed_reasons[index] = f"{code.name}: {msg}"
        self._last_code = code

    def _end(self, state: NavState, code: NavError, msg: str) -> WaypointResult:
        self.result = WaypointResult(state, list(self.missed), code, msg,
                                     dict(self.missed_reasons))
        self._running = False
        return self.result
