"""Firmware emulator of a serial bus of RoboClaw motor controllers, served on a pty.

Each controller has two motors with a built-in plant (acceleration-limited speed tracking) or,
with ``external_plant=True``, a physics simulator feeds measured values through
:meth:`EmulatedMotor.set_measured` and reads the commands through :meth:`EmulatedMotor.command`.
Dynamics advance lazily on each request and on each read from Python; there is no dynamics
thread. Faults can be injected from the same process (see :class:`RoboClawBus`).

The serial timeout (command 14) works as in the firmware: once set, a controller that receives
no valid packet addressed to it for that long stops both motors (they decelerate at the rate of
their last command) and stays stopped until a new motion command. The stop is applied lazily,
at the instant it falls due, so observers see it even when no request arrives any more.

Run standalone::

    python -m ilrs_robots.sim.devices.roboclaw_emulator --link /tmp/x/roboclaw --baud 115200
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ilrs_robots.protocols.roboclaw import (
    ACK,
    ENC_STATUS_BACKWARD,
    MAX_ADDRESS,
    MAX_DUTY,
    MIN_ADDRESS,
    PACKET_TIMEOUT_S,
    Cmd,
    ErrorFlag,
    Request,
    RequestParser,
    Status,
    WarnFlag,
    encode_reply,
)
from ilrs_robots.sim.devices.pty_device import PtyDevice, serve_until_signalled

DEFAULT_ADDRESSES = (128, 129, 130)
DEFAULT_VERSION = "RoboClaw 2x15A v4.2.8\n"

Clock = Callable[[], float]


def wrap_s32(value: int) -> int:
    """Wrap an integer to signed 32-bit two's complement, like the firmware's counters."""
    return ((value + 0x80000000) & 0xFFFFFFFF) - 0x80000000


@dataclass(frozen=True)
class MotorParams:
    """Built-in plant of one motor (speeds in encoder counts/s)."""

    max_qpps: float = 10000.0  # speed at full duty
    default_accel: float = 20000.0  # counts/s^2 used by duty commands
    no_load_a: float = 0.3
    k_accel_a: float = 2e-5  # A per count/s^2 while accelerating
    k_speed_a: float = 1e-4  # A per count/s
    stall_a: float = 12.0  # current of a stalled motor that is commanded to move
    overcurrent_a: float = 10.0  # warning threshold


@dataclass(frozen=True)
class ControllerParams:
    """Battery and thermal model of one controller."""

    battery_v: float = 28.0
    battery_r_ohm: float = 0.05
    battery_low_v: float = 21.0
    ambient_c: float = 25.0
    heat_c_per_a: float = 2.0  # steady-state temperature rise per ampere
    thermal_tau_s: float = 120.0
    temp_warn_c: float = 85.0
    temp_error_c: float = 100.0


class EmulatedMotor:
    """One motor channel: commands, built-in plant or external measurements, encoder."""

    def __init__(self, lock: threading.RLock, params: MotorParams | None = None,
                 external_plant: bool = False, clock: Clock = time.monotonic) -> None:
        self.params = params or MotorParams()
        self.external_plant = external_plant
        self._lock = lock
        self._clock = clock
        self._t = clock()
        self._target = 0.0
        self._accel = 0.0
        self._speed = 0.0
        self._position = 0.0
        self._current = 0.0
        self._enc_offset = 0.0
        self.duty = 0
        self.stalled = False
        self.last_speed_command: int | None = None
        self.speed_command_count = 0
        self.duty_command_count = 0
        self.stop_at: float | None = None  # serial-timeout deadline (set by the controller)
        self.timeout_stops = 0  # stops the serial timeout caused

    # -- plant -------------------------------------------------------------------------------
    def advance(self, now: float | None = None) -> None:
        """Advance the built-in plant to ``now`` (default: the clock); thread-safe."""
        with self._lock:
            self._advance(self._clock() if now is None else now)

    def _advance(self, now: float) -> None:
        stop_at = self.stop_at
        if stop_at is not None and now >= stop_at:
            self.stop_at = None
            self._advance(stop_at)  # run up to the deadline, then stop from there on
            if self._target != 0:
                self._target = 0.0
                if self._accel <= 0:
                    self._accel = self.params.default_accel
                self.timeout_stops += 1
        dt = now - self._t
        if dt <= 0:
            return
        self._t = now
        if self.external_plant:
            return
        p = self.params
        if self.stalled:
            self._speed = 0.0
            self._current = p.stall_a if self._target != 0 else 0.0
            return
        v0, target, accel = self._speed, self._target, self._accel
        dv = target - v0
        if accel <= 0 or abs(dv) <= accel * dt:
            t_ramp = abs(dv) / accel if accel > 0 else 0.0
            self._position += (v0 + target) / 2 * t_ramp + target * (dt - t_ramp)
            self._speed = target
        else:
            self._speed = v0 + math.copysign(accel * dt, dv)
            self._position += (v0 + self._speed) / 2 * dt
        ramping = self._speed != self._target and accel > 0
        moving = ramping or self._speed != 0
        self._current = ((p.no_load_a if moving else 0.0)
                         + (p.k_accel_a * accel if ramping else 0.0)
                         + p.k_speed_a * abs(self._speed))

    # -- external plant ----------------------------------------------------------------------
    def command(self) -> tuple[float, float]:
        """The commanded (target speed counts/s, acceleration counts/s^2)."""
        with self._lock:
            return self._target, self._accel

    def set_measured(self, position_counts: float, speed_qpps: float, current_a: float) -> None:
        """Feed measurements from an external plant (encoder position, speed, current)."""
        with self._lock:
            self._position = float(position_counts)
            self._speed = float(speed_qpps)
            self._current = float(current_a)

    # -- firmware side (lock held by the caller) ---------------------------------------------
    def _set_speed(self, target: int, accel: int) -> None:
        self._target, self._accel = float(target), float(accel)
        self.last_speed_command = target
        self.speed_command_count += 1

    def _set_duty(self, duty: int) -> None:
        self.duty = max(-MAX_DUTY, min(MAX_DUTY, duty))
        self._target = self.duty / MAX_DUTY * self.params.max_qpps
        self._accel = self.params.default_accel
        self.duty_command_count += 1

    def _reset_encoder(self) -> None:
        self._enc_offset = self._position

    def _encoder(self) -> int:
        return wrap_s32(round(self._position - self._enc_offset))

    # -- observers (advance to the clock first) ----------------------------------------------
    def _observe(self, attr: str) -> float:
        with self._lock:
            self._advance(self._clock())
            return getattr(self, attr)

    @property
    def speed(self) -> float:
        """Actual speed, counts/s."""
        return self._observe("_speed")

    @property
    def position(self) -> float:
        """Position in counts since start (not affected by encoder resets)."""
        return self._observe("_position")

    @property
    def current_a(self) -> float:
        """Motor current, A."""
        return self._observe("_current")

    @property
    def target_qpps(self) -> float:
        """Commanded speed, counts/s."""
        return self._observe("_target")

    @property
    def encoder_count(self) -> int:
        """Encoder count as the firmware reports it."""
        with self._lock:
            self._advance(self._clock())
            return self._encoder()


class EmulatedController:
    """One RoboClaw: two motors, battery, temperature, status, request handling."""

    def __init__(self, address: int, lock: threading.RLock, version: str = DEFAULT_VERSION,
                 motor_params: MotorParams | None = None,
                 params: ControllerParams | None = None,
                 external_plant: bool = False, clock: Clock = time.monotonic) -> None:
        self.address = address
        self.version = version
        self.params = params or ControllerParams()
        self.motors = (EmulatedMotor(lock, motor_params, external_plant, clock),
                       EmulatedMotor(lock, motor_params, external_plant, clock))
        self.temperature_c = self.params.ambient_c
        self.last_command_time: float | None = None
        self.serial_timeout = 0.0  # s without a valid packet before both motors stop; 0: off
        self._t = clock()

    def heard(self, now: float) -> None:
        """A valid packet for this controller arrived at ``now``: restart the serial timeout."""
        deadline = now + self.serial_timeout if self.serial_timeout > 0 else None
        for motor in self.motors:
            motor._advance(now)
            motor.stop_at = deadline

    @property
    def timeout_stops(self) -> int:
        """How many motor stops the serial timeout caused (the lock is not needed)."""
        return sum(m.timeout_stops for m in self.motors)

    def _advance(self, now: float) -> None:
        """Advance motors and temperature to ``now`` (lock held)."""
        for motor in self.motors:
            motor._advance(now)
        dt = now - self._t
        if dt <= 0:
            return
        self._t = now
        p = self.params
        steady = p.ambient_c + p.heat_c_per_a * self._total_current()
        self.temperature_c += (steady - self.temperature_c) * (1 - math.exp(-dt / p.thermal_tau_s))

    def _total_current(self) -> float:
        return sum(abs(m._current) for m in self.motors)

    def battery_v(self) -> float:
        """Main battery voltage, sagging with the motors' current (lock held)."""
        return self.params.battery_v - self.params.battery_r_ohm * self._total_current()

    def status(self) -> Status:
        """Error and warning flags for the present state (lock held)."""
        p = self.params
        errors, warnings = ErrorFlag(0), WarnFlag(0)
        for motor, warn in zip(self.motors, (WarnFlag.OVERCURRENTM1, WarnFlag.OVERCURRENTM2),
                               strict=True):
            if abs(motor._current) >= motor.params.overcurrent_a:
                warnings |= warn
        if self.battery_v() < p.battery_low_v:
            warnings |= WarnFlag.MBATLOW
        if self.temperature_c >= p.temp_warn_c:
            warnings |= WarnFlag.TEMP
        if self.temperature_c >= p.temp_error_c:
            errors |= ErrorFlag.TEMP
        return Status(errors, warnings)

    def handle(self, request: Request, now: float) -> bytes:
        """Apply a valid request at ``now`` and return the reply bytes (lock held)."""
        self._advance(now)
        self.heard(now)
        cmd, args, m1, m2 = request.cmd, request.args, self.motors[0], self.motors[1]
        if cmd in (Cmd.READ_ENC_M1, Cmd.READ_ENC_M2):
            motor = m1 if cmd is Cmd.READ_ENC_M1 else m2
            status = ENC_STATUS_BACKWARD if motor._speed < 0 else 0
            return encode_reply(self.address, cmd, motor._encoder(), status)
        if cmd in (Cmd.READ_SPEED_M1, Cmd.READ_SPEED_M2):
            motor = m1 if cmd is Cmd.READ_SPEED_M1 else m2
            return encode_reply(self.address, cmd, wrap_s32(round(motor._speed)))
        if cmd is Cmd.READ_ENCODERS:
            return encode_reply(self.address, cmd, m1._encoder(), m2._encoder())
        if cmd is Cmd.READ_SPEEDS:
            return encode_reply(self.address, cmd, wrap_s32(round(m1._speed)),
                                wrap_s32(round(m2._speed)))
        if cmd is Cmd.READ_VERSION:
            return encode_reply(self.address, cmd, self.version)
        if cmd is Cmd.READ_MAIN_BATTERY:
            return encode_reply(self.address, cmd, _clamp(self.battery_v(), 0.0, 6553.5))
        if cmd is Cmd.READ_CURRENTS:
            amps = (_clamp(m._current, -327.67, 327.67) for m in self.motors)
            return encode_reply(self.address, cmd, *amps)
        if cmd is Cmd.READ_TEMP:
            return encode_reply(self.address, cmd, _clamp(self.temperature_c, 0.0, 6553.5))
        if cmd is Cmd.READ_STATUS:
            return encode_reply(self.address, cmd, self.status().value)
        if cmd is Cmd.READ_SERIAL_TIMEOUT:
            return encode_reply(self.address, cmd, self.serial_timeout)
        # write commands
        if cmd is Cmd.RESET_ENC:
            m1._reset_encoder()
            m2._reset_encoder()
        elif cmd is Cmd.SET_SERIAL_TIMEOUT:
            self.serial_timeout = args[0] / 10.0
            self.heard(now)
        else:
            self.last_command_time = now
            if cmd is Cmd.DUTY_M1:
                m1._set_duty(args[0])
            elif cmd is Cmd.DUTY_M2:
                m2._set_duty(args[0])
            elif cmd is Cmd.SPEED_ACCEL_M1:
                m1._set_speed(args[1], args[0])
            elif cmd is Cmd.SPEED_ACCEL_M2:
                m2._set_speed(args[1], args[0])
            elif cmd is Cmd.SPEED_ACCEL_MIXED:
                m1._set_speed(args[1], args[0])
                m2._set_speed(args[2], args[0])
        return bytes((ACK,))


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


class RoboClawBus(PtyDevice):
    """Several emulated RoboClaws sharing one serial line served on a pty at ``link``.

    Fault injection (callable from any thread): :meth:`drop_replies`, :meth:`corrupt_crc`,
    :meth:`reply_delay`, :meth:`stall`, :meth:`silence`, :meth:`babble`, and :meth:`vanish` /
    :meth:`reappear`.
    Counters: ``requests_served``, ``bad_crc_rejected``, ``requests_ignored`` (other addresses),
    ``replies_dropped``, ``replies_corrupted``.
    """

    def __init__(self, link: str | os.PathLike[str],
                 addresses: Iterable[int] = DEFAULT_ADDRESSES, baud: int | None = None, *,
                 external_plant: bool = False, version: str = DEFAULT_VERSION,
                 motor_params: MotorParams | None = None,
                 controller_params: ControllerParams | None = None,
                 packet_timeout: float = PACKET_TIMEOUT_S, seed: int | None = None,
                 clock: Clock = time.monotonic) -> None:
        super().__init__(link, baud)
        addresses = tuple(addresses)
        for address in addresses:
            if not MIN_ADDRESS <= address <= MAX_ADDRESS:
                raise ValueError(f"RoboClaw address must be 128..135, got {address}")
        encode_reply(MIN_ADDRESS, Cmd.READ_VERSION, version)  # validates the version string
        self.lock = threading.RLock()
        self.external_plant = external_plant
        self._clock = clock
        self.controllers = {
            a: EmulatedController(a, self.lock, version, motor_params, controller_params,
                                  external_plant, clock)
            for a in addresses
        }
        self._parser = RequestParser(packet_timeout)
        self._rng = random.Random(seed)
        self._drop = 0
        self._corrupt = 0
        self._delay = 0.0
        self._silenced: set[int] = set()
        self._stops_to_lose: dict[int, int] = {}
        # Called as on_request(request, now) for every request a controller acted on
        # (benchmarks time command arrival with it).
        self.on_request: Callable[[Request, float], None] | None = None
        self.requests_served = 0
        self.bad_crc_rejected = 0
        self.requests_ignored = 0
        self.replies_dropped = 0
        self.replies_corrupted = 0

    # -- observables -------------------------------------------------------------------------
    def controller(self, address: int) -> EmulatedController:
        """The controller at ``address`` (KeyError if not on this bus)."""
        return self.controllers[address]

    def motor(self, address: int, motor: int) -> EmulatedMotor:
        """Motor ``motor`` (1 for M1, 2 for M2) of the controller at ``address``."""
        if motor not in (1, 2):
            raise ValueError(f"motor must be 1 (M1) or 2 (M2), got {motor}")
        return self.controllers[address].motors[motor - 1]

    def motors(self) -> list[EmulatedMotor]:
        """All motors, in address order, M1 before M2."""
        return [m for a in sorted(self.controllers) for m in self.controllers[a].motors]

    def timeout_stops(self, address: int) -> int:
        """Motor stops caused by the serial timeout of the controller at ``address`` so far."""
        with self.lock:
            controller = self.controllers[address]
            controller._advance(self._clock())
            return controller.timeout_stops

    def last_command_time(self, address: int) -> float | None:
        """Clock time of the last motion command (duty or speed) accepted at ``address``."""
        with self.lock:
            return self.controllers[address].last_command_time

    def advance(self, now: float | None = None) -> None:
        """Advance every controller to ``now`` (default: the clock)."""
        with self.lock:
            now = self._clock() if now is None else now
            for controller in self.controllers.values():
                controller._advance(now)

    # -- fault injection ---------------------------------------------------------------------
    def drop_replies(self, n: int) -> None:
        """Swallow the next ``n`` replies (acks included); the requests still take effect."""
        with self.lock:
            self._drop = max(0, int(n))

    def corrupt_crc(self, n: int) -> None:
        """Send the next ``n`` read replies with a wrong CRC (acks carry no CRC)."""
        with self.lock:
            self._corrupt = max(0, int(n))

    def reply_delay(self, seconds: float) -> None:
        """Answer every request ``seconds`` late from now on (0 to stop)."""
        with self.lock:
            self._delay = max(0.0, float(seconds))

    def stall(self, address: int, motor: int, on: bool = True) -> None:
        """Block a motor (built-in plant): it won't turn and draws stall current when driven."""
        with self.lock:
            m = self.motor(address, motor)
            m._advance(self._clock())
            m.stalled = on

    def lose_stops(self, address: int, count: int) -> None:
        """The next `count` zero-speed mixed commands (cmd 40) to `address` are lost on the
        line: neither acted on nor answered, as a packet the firmware dropped."""
        with self.lock:
            self.controller(address)  # KeyError for an address not on this bus
            self._stops_to_lose[address] = count

    def silence(self, address: int, on: bool = True) -> None:
        """Cut one controller off the bus: it neither hears nor answers (a broken cable)."""
        with self.lock:
            self.controller(address)  # KeyError for an address not on this bus
            (self._silenced.add if on else self._silenced.discard)(address)

    def babble(self, nbytes: int) -> None:
        """Send ``nbytes`` random garbage bytes to the host now."""
        self.write(self._rng.randbytes(nbytes))

    # -- firmware loop -----------------------------------------------------------------------
    def on_bytes(self, data: bytes, now: float) -> None:
        """Parse requests and answer those addressed to a controller on this bus."""
        for request in self._parser.feed(data, now):
            reply = self._serve(request)
            if reply is None:
                continue
            with self.lock:
                delay = self._delay
            if delay > 0:
                time.sleep(delay)
            self.write(reply)

    def _serve(self, request: Request) -> bytes | None:
        with self.lock:
            controller = self.controllers.get(request.address)
            if controller is None or request.address in self._silenced:
                self.requests_ignored += 1
                return None
            if (self._stops_to_lose.get(request.address) and request.crc_ok
                    and request.cmd == Cmd.SPEED_ACCEL_MIXED and request.args[1:] == (0, 0)):
                self._stops_to_lose[request.address] -= 1
                self.requests_ignored += 1
                return None
            if request.rejected:
                self.bad_crc_rejected += 1
                return None
            now = self._clock()
            reply = controller.handle(request, now)
            self.requests_served += 1
            if self.on_request is not None:
                self.on_request(request, now)
            if self._drop > 0:
                self._drop -= 1
                self.replies_dropped += 1
                return None
            if self._corrupt > 0 and reply != bytes((ACK,)):
                self._corrupt -= 1
                self.replies_corrupted += 1
                reply = reply[:-1] + bytes((reply[-1] ^ 0x5A,))
            return reply


def main(argv: list[str] | None = None) -> int:
    """Serve an emulated RoboClaw bus until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link", required=True, help="symlink path to publish the pty under")
    parser.add_argument("--addresses", type=int, nargs="+", default=list(DEFAULT_ADDRESSES),
                        help="controller addresses on the bus (128..135)")
    parser.add_argument("--baud", type=int, default=115200,
                        help="emulated baud rate for wire-time pacing (0: no pacing)")
    parser.add_argument("--version-string", default=DEFAULT_VERSION.strip(),
                        help="firmware version string reported by every controller")
    args = parser.parse_args(argv)
    if any(not MIN_ADDRESS <= a <= MAX_ADDRESS for a in args.addresses):
        parser.error("--addresses must be in 128..135")
    if args.baud < 0:
        parser.error("--baud must be >= 0")
    try:
        bus = RoboClawBus(args.link, args.addresses, args.baud or None,
                          version=args.version_string + "\n")
    except ValueError as exc:
        parser.error(str(exc))
    return serve_until_signalled(bus)


if __name__ == "__main__":
    sys.exit(main())
