"""What a velocity-controlled base follows: cmd_vel checked, bounded, ramped, stopped in time.

Pure (no ROS, no I/O; the caller passes the time): the gazebo_base node feeds it cmd_vel and
the estop and sends what :meth:`CommandGate.output` returns, every control cycle, to Gazebo's
DiffDrive, which itself keeps its last command forever. The rules are the base driver's
(drivers/skid_steer_base.py), on the same kinematics helpers and parameters:

- a NaN, infinite or absurd command is refused (CommandRejected) and changes nothing;
- a command stamped more than `cmd_timeout` ago is refused as stale (StaleCommand);
- a command is clamped to max_linear, max_angular and max_wheel_speed keeping its curvature;
- no command for `cmd_timeout`, or a latched estop: the output goes to zero;
- after an estop is released the base stays stopped until a fresh command arrives;
- each side's rim speed changes by at most `max_accel` per second, `stop_accel` when stopping
  (as the motor controllers ramp in the base driver).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ilrs_robots.core.kinematics import (
    CommandRejected,
    DriveLimits,
    SkidSteerGeometry,
    check_twist,
    limit_twist,
    twist_to_wheel_speeds,
    wheel_speeds_to_twist,
)


class StaleCommand(CommandRejected):
    """A stamped command older than cmd_timeout: it must not move the base."""


@dataclass(frozen=True)
class GateState:
    """What the gate sends now, and why."""

    linear: float  # m/s
    angular: float  # rad/s
    estop: bool
    holding: bool  # stopped until a fresh command (at start, after an estop)
    timed_out: bool  # no command for cmd_timeout
    rejected: int  # commands refused as NaN, infinite or absurd
    stale: int  # stamped commands refused as older than cmd_timeout

    @property
    def stopped(self) -> bool:
        """True when the base is held at zero."""
        return self.estop or self.holding or self.timed_out

    def describe(self) -> tuple[str, str]:
        """(level, message) of the drive, worded as the base driver's diagnostics."""
        if self.estop:
            return "WARN", "estop latched: wheels stopped"
        if self.holding:
            return "OK", "stopped, waiting for a fresh cmd_vel"
        if self.timed_out:
            return "OK", "no cmd_vel within cmd_timeout: wheels stopped"
        return "OK", "following cmd_vel"


class CommandGate:
    """cmd_vel in, the twist to send out; see the module docstring."""

    def __init__(self, geometry: SkidSteerGeometry, limits: DriveLimits,
                 cmd_timeout: float = 0.5) -> None:
        self.geometry = geometry
        self.limits = limits
        self.cmd_timeout = cmd_timeout
        self.estop = False
        self._hold = True  # nothing moves before a first command
        self._target = (0.0, 0.0)  # linear, angular, limited
        self._rims = (0.0, 0.0)  # left, right rim speeds sent last (m/s)
        self._last_cmd = -math.inf
        self._last_output: float | None = None
        self.rejected = 0
        self.stale = 0

    def command(self, linear: float, angular: float, now: float,
                others: tuple[float, ...] = (), age: float | None = None) -> bool:
        """Follow a body twist from `now` on; `age`: how old its stamp is (s), if stamped.

        Raises CommandRejected (StaleCommand for an old stamp); False if held by the estop.
        """
        if age is not None and age > self.cmd_timeout:
            self.stale += 1
            raise StaleCommand(f"stamped {age:.3f} s ago, more than cmd_timeout "
                               f"({self.cmd_timeout:g} s)")
        try:
            check_twist(linear, angular, self.limits, others)
        except CommandRejected:
            self.rejected += 1
            raise
        self._last_cmd = now
        if self.estop:
            return False
        self._hold = False
        self._target = limit_twist(linear, angular, self.geometry, self.limits)
        return True

    def set_estop(self, engaged: bool) -> bool:
        """Latch or release the estop; True if that changed it. Releasing moves nothing."""
        if engaged == self.estop:
            return False
        self.estop = engaged
        self._hold = True
        self._target = (0.0, 0.0)
        return True

    def reconfigure(self, cmd_timeout: float | None = None, **limits: float) -> None:
        """New cmd_timeout and DriveLimits fields (e.g. max_linear); the next command obeys."""
        if cmd_timeout is not None:
            self.cmd_timeout = cmd_timeout
        if limits:
            self.limits = replace(self.limits, **limits)

    def state(self, now: float) -> GateState:
        """The twist last sent and the reasons it is what it is."""
        linear, angular = self._twist(self._rims)
        return GateState(linear, angular, self.estop, self._hold,
                         now - self._last_cmd > self.cmd_timeout, self.rejected, self.stale)

    def output(self, now: float) -> GateState:
        """The twist to send at `now`: the target, or zero, reached at the allowed rate."""
        dt = 0.0 if self._last_output is None else max(0.0, now - self._last_output)
        self._last_output = now
        stopped = self.estop or self._hold or now - self._last_cmd > self.cmd_timeout
        target = (0.0, 0.0) if stopped else self._target
        step = (self.limits.stop_accel if stopped else self.limits.max_accel) * dt
        r = self.geometry.wheel_radius
        goal = tuple(w * r for w in twist_to_wheel_speeds(*target, self.geometry))
        self._rims = tuple(_toward(v, g, step) for v, g in zip(self._rims, goal, strict=True))
        return self.state(now)

    def _twist(self, rims: tuple[float, float]) -> tuple[float, float]:
        r = self.geometry.wheel_radius
        return wheel_speeds_to_twist(rims[0] / r, rims[1] / r, self.geometry)


def _toward(value: float, goal: float, step: float) -> float:
    """`value` moved toward `goal` by at most `step` (within rounding: a stop ends at 0.0)."""
    if abs(goal - value) <= step + 1e-9:
        return goal
    return value + math.copysign(step, goal - value)
