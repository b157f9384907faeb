"""The embedded simulator's core loop: physics bound to the firmware emulators, no ROS.

The RoboClaw emulator runs in external-plant mode: each step reads what the base driver
commanded (speed and acceleration per motor, as the firmware would ramp them), turns the
wheels of the MuJoCo rover, and hands the wheel joints' encoder counts, speeds and motor
currents back to the emulator, which serves them on its pseudo-terminal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transforms3d.quaternions import mat2quat, quat2mat

from ilrs_robots.core.drive_config import Wheel
from ilrs_robots.core.geometry import to_xyzw
from ilrs_robots.sim.devices.roboclaw_emulator import EmulatedMotor, RoboClawBus
from ilrs_robots.sim.model import WHEEL_NAMES
from ilrs_robots.sim.physics import RoverPhysics


@dataclass(frozen=True)
class MotorModel:
    """How wheel torque shows as motor current (gearbox included)."""

    torque_per_amp: float = 2.5  # N m at the wheel per A
    no_load_current: float = 0.3  # A


@dataclass
class _Channel:
    index: int  # physics wheel index (WHEEL_NAMES order)
    motor: EmulatedMotor
    direction: int
    setpoint: float = 0.0  # counts/s, ramped toward the command like the firmware does


def bind_wheels(wheels: Sequence[Wheel], bus: RoboClawBus) -> list[_Channel]:
    """Pair each physics wheel with the emulated motor channel the base driver drives."""
    channels = []
    for index, name in enumerate(WHEEL_NAMES):
        match = [w for w in wheels if w.name.startswith(name)]
        if len(match) != 1:
            raise ValueError(f"wheel {name!r} of the rover model has no single entry in the "
                             f"base driver's 'wheels' ({[w.name for w in wheels]})")
        w = match[0]
        channels.append(_Channel(index, bus.motor(w.address, w.channel), w.direction))
    return channels


class Simulator:
    """One rover: its physics and its RoboClaw bus, stepped together."""

    def __init__(self, physics: RoverPhysics, wheels: Sequence[Wheel], counts_per_rev: float,
                 link: str | Path, addresses: Sequence[int], baud: int = 115200,
                 motor: MotorModel | None = None) -> None:
        self.physics = physics
        self.counts_per_rad = counts_per_rev / (2.0 * math.pi)
        self.motor = motor or MotorModel()
        self.bus = RoboClawBus(link, addresses, baud, external_plant=True)
        self.channels = bind_wheels(wheels, self.bus)
        self._report()

    def start(self) -> Simulator:
        """Serve the emulated devices."""
        self.bus.start()
        return self

    def stop(self) -> None:
        """Stop serving the devices and free the renderers."""
        self.bus.stop()
        self.physics.close()

    def step(self, dt: float) -> None:
        """Advance by `dt` seconds: apply the firmware's ramped speed commands, then report."""
        speeds = np.zeros(len(WHEEL_NAMES))
        for ch in self.channels:
            target, accel = ch.motor.command()
            if accel <= 0:
                ch.setpoint = target
            else:
                ch.setpoint += float(np.clip(target - ch.setpoint, -accel * dt, accel * dt))
            speeds[ch.index] = ch.setpoint * ch.direction / self.counts_per_rad
        self.physics.set_wheel_speeds(speeds)
        self.physics.advance(dt)
        self._report()

    def _report(self) -> None:
        pos = self.physics.wheel_positions()
        vel = self.physics.wheel_velocities()
        torque = self.physics.wheel_torques()
        for ch in self.channels:
            i = ch.index
            current = self.motor.no_load_current + abs(torque[i]) / self.motor.torque_per_amp
            ch.motor.set_measured(pos[i] * self.counts_per_rad * ch.direction,
                                  vel[i] * self.counts_per_rad * ch.direction, current)

    def wheel_travel(self) -> np.ndarray:
        """Distance rolled by each wheel's rim since the start (m), WHEEL_NAMES order."""
        return self.physics.wheel_positions() * self.physics.rover.wheel_radius


class Every:
    """Tells when something running at `rate` Hz (of sim time) is due; rate 0: never."""

    def __init__(self, rate: float) -> None:
        self.period = 1.0 / rate if rate > 0 else math.inf
        self.next = 0.0

    def set_rate(self, rate: float) -> None:
        """Change the rate: due at most one new period after the last occasion; 0 stops it."""
        period = 1.0 / rate if rate > 0 else math.inf
        if math.isinf(period):
            self.next = math.inf
        elif math.isinf(self.period):
            self.next = 0.0  # was off: due at once
        else:
            self.next = min(self.next, self.next - self.period + period)
        self.period = period

    def due(self, now: float) -> bool:
        """True once per period; skips periods that were missed instead of bursting."""
        if now + 1e-9 < self.next:
            return False
        self.next = max(self.next + self.period, now)
        return True


def optical_offsets(physics: RoverPhysics) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per camera, (xyz, quaternion x y z w) of its ROS optical frame in base_link.

    MuJoCo cameras look along -z with +y up; a ROS optical frame looks along +z with +y down.
    """
    base_pos, base_wxyz, _, _ = physics.ground_truth()
    base_rot = quat2mat(base_wxyz)
    flip = np.diag([1.0, -1.0, -1.0])
    out = {}
    for name in physics.camera_names:
        pos, rot = physics.camera_pose(name)
        rel_pos = base_rot.T @ (pos - base_pos)
        out[name] = (rel_pos, np.array(to_xyzw(mat2quat(base_rot.T @ rot @ flip))))
    return out
