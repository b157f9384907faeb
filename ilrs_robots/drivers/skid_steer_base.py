"""The control loop of a skid-steer base on a RoboClaw bus, without ROS.

One thread, the control thread, is the only one that writes motion commands. It polls encoders
and speeds of every controller, refreshes the wheel speed commands, integrates odometry and
reads the controllers' health now and then. `command()` only sets the targets and wakes it: it
writes them at once (between two bus transactions), so a cmd_vel reaches the motors within one
transaction, not one cycle. Safety rules live here, where they can be tested against the
firmware emulator:

- no command for `cmd_timeout`, a latched estop, or a lost controller: wheels stopped;
- an estop goes to the bus at once, ahead of any poll waiting for it, from the caller's thread;
  every stop that must win (estop, hold) bumps a generation, and a move command is written only
  if the generation it was computed in is still current when its bus turn comes, so no move
  follows the stop of a latched estop;
- after an estop is released or a lost controller (or port) comes back, the wheels stay
  stopped until a fresh command arrives;
- a NaN, infinite or absurd command is rejected (CommandRejected), never sent;
- only a serial-link failure closes the port; any other fault of a cycle (a publish callback
  that raises) is logged and counted.
"""

from __future__ import annotations

import math
import termios
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import serial

from ilrs_robots.core.drive_config import Wheel
from ilrs_robots.core.geometry import Pose2D
from ilrs_robots.core.kinematics import (
    DriveLimits,
    SkidSteerGeometry,
    WheelOdometry,
    WheelTravel,
    check_twist,
    counts_to_rad,
    limit_twist,
    rad_per_s_to_counts,
    twist_to_wheel_speeds,
    wheel_speeds_to_twist,
)
from ilrs_robots.drivers.roboclaw import FaultLog, Health, NoReply, NotIdentified, RoboClawBus
from ilrs_robots.drivers.serial_port import LinkLost, PortBusy

# Errors of the serial link itself: only these close the port.
LINK_ERRORS = (LinkLost, OSError, termios.error, serial.SerialException)
FINAL_STOP_ATTEMPTS = 3  # sends of the stop to a controller that does not acknowledge it


@dataclass
class ControllerState:
    """What the base knows of one controller."""

    address: int
    firmware: str = ""
    answering: bool = False
    health: Health | None = None
    encoders: tuple[int, int] = (0, 0)
    speeds: tuple[int, int] = (0, 0)
    error: str = ""


@dataclass
class BaseState:
    """A consistent snapshot of the base, handed out after every control cycle."""

    pose: Pose2D
    linear: float  # measured, m/s
    angular: float  # measured, rad/s
    wheel_names: list[str]
    wheel_positions: list[float]  # rad
    wheel_velocities: list[float]  # rad/s
    controllers: list[ControllerState]
    estop: bool
    command_timed_out: bool
    holding: bool  # stopped until a fresh command arrives
    port_open: bool
    odometry_ok: bool
    rejected_commands: int
    cycles: int
    held_commands: int = 0  # good commands that arrived while the estop or a lost link held
    distance: float = 0.0
    notes: list[str] = field(default_factory=list)
    cycle_errors: int = 0  # cycles (or publish callbacks) that raised, not link faults
    read_stamp: int | None = None  # stamp_clock at the encoder reads behind `pose` (None: no
    # reads this cycle, or no stamp_clock)

    @property
    def link_ok(self) -> bool:
        """Every controller answers."""
        return self.port_open and all(c.answering for c in self.controllers)


class SkidSteerBase:
    """Drives a skid-steer base through a RoboClawBus; see the module docstring."""

    def __init__(self, bus: RoboClawBus, wheels: Sequence[Wheel], geometry: SkidSteerGeometry,
                 limits: DriveLimits, cmd_timeout: float = 0.5, rate: float = 50.0,
                 health_period: float = 0.5, lost_after: int = 3,
                 on_cycle: Callable[[BaseState], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 faults: FaultLog | None = None,
                 stamp_clock: Callable[[], int] | None = None) -> None:
        if not wheels or not any(w.left for w in wheels) or all(w.left for w in wheels):
            raise ValueError("a skid-steer base needs wheels on both sides")
        self.bus = bus
        self.wheels = list(wheels)
        self.geometry = geometry
        self.limits = limits
        self.cmd_timeout = cmd_timeout
        self.period = 1.0 / rate
        self.health_period = health_period
        self.lost_after = lost_after
        self.on_cycle = on_cycle
        self.faults = faults or bus.faults
        self._clock = clock
        self._stamp_clock = stamp_clock  # e.g. the ROS clock in ns: stamps the reads
        self._read_stamp: int | None = None
        self.addresses = sorted({w.address for w in wheels})
        if not bus.addresses:
            bus.addresses = list(self.addresses)
        self.controllers = {a: ControllerState(a) for a in self.addresses}
        self.odometry = WheelOdometry(geometry.track_width)
        self._lock = threading.Lock()
        self._targets: dict[int, tuple[int, int]] = self._zero()
        self._last_cmd = -math.inf
        self._estop = False
        self._hold = True  # nothing moves before a first command
        self._generation = 0  # bumped by every stop a queued move must not overtake
        self._pending = False  # new targets wait for the control thread
        self._wake = threading.Event()
        self._rejected = 0
        self._held = 0
        self._travel = WheelTravel({(w.address, w.channel): (w.left, w.direction)
                                    for w in wheels}, geometry.counts_per_metre)
        self._last_count_time = 0.0
        self._health_next = 0.0
        self._health_index = 0
        self._connection_seen: RoboClawBus | None = None
        self._reconnects_seen = 0
        self._port_was_open = False
        self._cycles = 0
        self.cycle_errors = 0
        self._state: BaseState | None = None
        self.last_exception = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- commands (any thread) ------------------------------------------------------------
    def command(self, linear: float, angular: float, others: tuple[float, ...] = ()) -> bool:
        """Follow a body twist. Raises CommandRejected for a bad one; False if held stopped.

        No I/O here: the control thread writes the new targets as soon as it can.
        """
        limits = self.limits
        try:
            check_twist(linear, angular, limits, others)
        except ValueError:
            self._rejected += 1
            raise
        linear, angular = limit_twist(linear, angular, self.geometry, limits)
        left, right = twist_to_wheel_speeds(linear, angular, self.geometry)
        targets = self._wheel_targets(left, right)
        with self._lock:
            self._last_cmd = self._clock()
            if self._estop or not self._link_healthy():
                self._held += 1
                return False
            self._hold = False
            self._targets = targets
            self._pending = True
        self._wake.set()
        return True

    def set_estop(self, engaged: bool) -> None:
        """Latch or release the emergency stop. Releasing does not restart the wheels.

        Latching writes the stop from this thread at once, ahead of any queued poll; moves
        computed before it are dropped in their bus turn.
        """
        with self._lock:
            if engaged == self._estop:
                return
            self._estop = engaged
            self._stop_locked()
        if engaged:
            self._send(self._zero(), self._accel(self.limits.stop_accel), urgent=True)
        self._wake.set()

    def reconfigure(self, *, max_linear: float | None = None, max_angular: float | None = None,
                    max_wheel_speed: float | None = None, max_accel: float | None = None,
                    stop_accel: float | None = None, cmd_timeout: float | None = None,
                    rate: float | None = None, health_period: float | None = None) -> None:
        """Change limits, timeouts and rates while running (thread-safe; None: unchanged).

        New limits apply to the next command; the running motion keeps its targets until then.
        """
        changes = {k: v for k, v in (("max_linear", max_linear), ("max_angular", max_angular),
                                     ("max_wheel_speed", max_wheel_speed),
                                     ("max_accel", max_accel), ("stop_accel", stop_accel))
                   if v is not None}
        with self._lock:
            if changes:
                self.limits = replace(self.limits, **changes)
            if cmd_timeout is not None:
                self.cmd_timeout = cmd_timeout
            if rate is not None:
                self.period = 1.0 / rate
            if health_period is not None:
                self.health_period = health_period
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------
    def start(self) -> None:
        """Open the port (if it is there) and start the control thread.

        Raises PortBusy if another process holds the port.
        """
        self.bus.ensure_open()
        self._thread = threading.Thread(target=self._run, name="skid_steer_base", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the wheels, stop the thread and close the port."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with self._lock:
            self._stop_locked()
        unconfirmed = self._final_stop()
        if unconfirmed:
            tenths = self.bus.serial_timeout_tenths
            after = f"their serial timeout ({tenths / 10:.1f} s)" if tenths else "nothing"
            self.faults.report("error", "final stop",
                               f"RoboClaws {unconfirmed} on {self.bus.port} did not confirm "
                               f"the final stop; {after} stops them")
        self.bus.close()

    def _final_stop(self) -> list[int]:
        """Zero speed to every controller, each sent again until it acknowledges (up to
        FINAL_STOP_ATTEMPTS); the addresses that never did. A controller not identified on
        this connection was never told to move by it and is skipped."""
        accel = self._accel(self.limits.stop_accel)
        unconfirmed: list[int] = []
        for i, address in enumerate(self.addresses):
            for _ in range(FINAL_STOP_ATTEMPTS):
                try:
                    if self.bus.drive(address, accel, 0, 0):
                        break
                except NotIdentified:
                    break
                except NoReply:
                    time.sleep(0.02)  # a late ack is flushed before the next attempt
                except LINK_ERRORS:
                    return unconfirmed + list(self.addresses[i:]) if self._port_was_open else []
            else:
                unconfirmed.append(address)
        return unconfirmed

    def state(self) -> BaseState | None:
        """The latest snapshot (None before the first cycle)."""
        return self._state

    def cycle_period(self) -> float:
        """Seconds between cycles: 1 / rate, but short enough to keep the controllers' serial
        timeout from firing while the host is alive (three cycles per timeout)."""
        tenths = self.bus.serial_timeout_tenths
        if tenths:
            return min(self.period, tenths / 30.0)
        return self.period

    def _run(self) -> None:
        next_time = self._clock()
        while not self._stop.is_set():
            self._guarded(self.cycle)
            period = self.cycle_period()
            next_time += period
            while not self._stop.is_set():  # serve fresh commands until the next cycle
                delay = next_time - self._clock()
                if delay < -period:  # fell behind (a slow bus): do not try to catch up
                    next_time = self._clock()
                    break
                if delay <= 0:
                    break
                if self._wake.wait(delay):
                    self._wake.clear()
                    self._guarded(self._flush)

    def _guarded(self, step: Callable[[], object]) -> None:
        """Run one step; a link fault closes the port, anything else is logged and counted."""
        try:
            step()
        except LINK_ERRORS as exc:
            self.last_exception = f"{type(exc).__name__}: {exc}"
            self.bus.close()  # start again from a clean port
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any one fault
            self.cycle_errors += 1
            self.last_exception = f"{type(exc).__name__}: {exc}"
            self.faults.report("error", "cycle", f"control cycle failed (the port stays open, "
                               f"{self.cycle_errors} so far): {self.last_exception}")

    def cycle(self) -> BaseState:
        """One control cycle: reconnect if needed, poll, command, integrate, report."""
        now = self._clock()
        notes: list[str] = []
        if not self._connect(notes):
            for c in self.controllers.values():
                c.answering = False
                c.error = self.bus.last_error or "serial port closed"
            with self._lock:
                self._stop_locked()
            self._travel.reset()
            return self._publish(now, port_open=False, odometry_ok=False, notes=notes)
        fresh = self._poll()
        lost = [a for a in self.addresses if not self.controllers[a].answering]
        with self._lock:
            timed_out = now - self._last_cmd > self.cmd_timeout
            if lost and not self._hold:
                self._stop_locked()
            stopped = self._estop or self._hold or timed_out
            targets = self._zero() if stopped else dict(self._targets)
            generation = self._generation
            self._pending = False
            accel = self.limits.stop_accel if stopped else self.limits.max_accel
        self._send(targets, self._accel(accel),
                   guard=None if stopped else self._still(generation))
        self._read_health(now)
        odometry_ok = self._integrate(fresh, now)
        return self._publish(now, port_open=self.bus.is_open, odometry_ok=odometry_ok,
                             notes=notes, timed_out=timed_out)

    # -- helpers --------------------------------------------------------------------------
    def _zero(self) -> dict[int, tuple[int, int]]:
        return {a: (0, 0) for a in self.addresses}

    def _stop_locked(self) -> None:
        """Hold the wheels stopped until a fresh command; queued moves are dropped (lock held)."""
        self._hold = True
        self._targets = self._zero()
        self._generation += 1
        self._pending = False

    def _still(self, generation: int) -> Callable[[], bool]:
        """A guard: True while no stop happened since `generation` was read."""
        return lambda: (self._generation == generation and not self._estop
                        and not self._hold)

    def _flush(self) -> None:
        """Write targets that arrived since the last write (control thread)."""
        with self._lock:
            if not self._pending:
                return
            self._pending = False
            if self._estop or self._hold:
                return
            targets, generation = dict(self._targets), self._generation
            accel = self.limits.max_accel
        self._send(targets, self._accel(accel), urgent=True, guard=self._still(generation))

    def _connect(self, notes: list[str]) -> bool:
        """Open the port if needed; log faults and reconnects; False while it is closed."""
        bus = self.bus
        try:
            ok = bus.ensure_open()
        except PortBusy as exc:
            ok = False
            self.faults.report("error", f"port:{exc}", f"{exc}: wheels stopped, retrying")
        if not ok:
            if self._port_was_open:
                self._port_was_open = False
                self.faults.report("error", "port lost",
                                   f"serial port {bus.port} lost ({bus.last_error}): wheels "
                                   f"stopped, reconnecting")
            elif bus.last_error:
                self.faults.report("error", f"port:{bus.last_error}",
                                   f"{bus.last_error}: wheels stopped, retrying")
            return False
        if not self._port_was_open:
            self._port_was_open = True
            self.faults.clear("port lost")
        if self._connection_seen is None or bus.reconnects != self._reconnects_seen:
            self._new_connection(notes)
        return True

    def _new_connection(self, notes: list[str]) -> None:
        bus = self.bus
        first = self._connection_seen is None
        self._connection_seen = bus
        self._reconnects_seen = bus.reconnects
        with self._lock:
            self._stop_locked()
        self._travel.reset()
        for address, c in self.controllers.items():
            c.firmware = bus.identified.get(address, c.firmware)
            c.answering = address in bus.identified
            c.error = "" if c.answering else "no answer to a firmware version request"
            if not c.answering:
                self.faults.report("error", f"controller {address}",
                                   f"RoboClaw {address} on {bus.port} does not answer: "
                                   f"wheels stopped")
        versions = ", ".join(f"{a}: {v}" for a, v in sorted(bus.identified.items()))
        if first:
            self.faults.report("info", "connected", f"serial port {bus.port} open; RoboClaws "
                               f"{versions}")
        else:
            note = (f"serial port {bus.port} reopened (reconnect {bus.reconnects}; RoboClaws "
                    f"{versions}): wheels held until a fresh command")
            notes.append(note)
            self.faults.report("warning", f"reconnect {bus.reconnects}", note)

    def _link_healthy(self) -> bool:
        return self.bus.is_open and all(c.answering for c in self.controllers.values())

    def _accel(self, metres_per_s2: float) -> int:
        return max(1, int(round(metres_per_s2 * self.geometry.counts_per_metre)))

    def _wheel_targets(self, left: float, right: float) -> dict[int, tuple[int, int]]:
        speeds = {a: [0, 0] for a in self.addresses}
        for w in self.wheels:
            rad = (left if w.left else right) * w.direction
            speeds[w.address][w.channel - 1] = rad_per_s_to_counts(rad, self.geometry)
        return {a: (s[0], s[1]) for a, s in speeds.items()}

    def _send(self, targets: dict[int, tuple[int, int]], accel: int, urgent: bool = False,
              guard: Callable[[], bool] | None = None) -> None:
        for address, (m1, m2) in targets.items():
            try:
                if not self.bus.drive(address, accel, m1, m2, urgent, guard):
                    return  # the guard dropped it: a stop overtook this command
            except NotIdentified:
                continue
            except NoReply as exc:
                self._mark_failure(address, str(exc))
            except LinkLost:
                return

    def _mark_failure(self, address: int, error: str) -> None:
        counters = self.bus.counters.get(address)
        state = self.controllers[address]
        state.error = error
        if counters is None or counters.consecutive_failures >= self.lost_after:
            if state.answering:
                self.faults.report("error", f"controller {address}",
                                   f"RoboClaw {address} on {self.bus.port} stopped answering "
                                   f"({error}): wheels stopped")
            state.answering = False
            self.bus.forget(address)  # identified again before it may move

    def _poll(self) -> dict[tuple[int, int], int]:
        """Read encoders and speeds of every controller; the counts that arrived.

        A controller not identified on this connection is asked its firmware version instead.
        """
        fresh: dict[tuple[int, int], int] = {}
        first: int | None = None
        self._read_stamp = None
        for address in self.addresses:
            state = self.controllers[address]
            self._flush()
            try:
                if address not in self.bus.identified:
                    state.firmware = self.bus.identify(address)
                    self.faults.report("warning", f"controller {address} back",
                                       f"RoboClaw {address} answers again ({state.firmware}): "
                                       f"wheels held until a fresh command")
                    self.faults.clear(f"controller {address} back")
                    with self._lock:
                        self._stop_locked()
                    self.faults.clear(f"controller {address}")
                if self._stamp_clock is not None and first is None:
                    first = self._stamp_clock()
                state.encoders = self.bus.read_encoders(address)
                state.speeds = self.bus.read_speeds(address)
            except NoReply as exc:
                self._mark_failure(address, str(exc))
                continue
            except LinkLost as exc:
                for c in self.controllers.values():
                    c.answering = False
                    c.error = str(exc)
                return {}
            state.answering = True
            state.error = ""
            fresh[(address, 1)] = state.encoders[0]
            fresh[(address, 2)] = state.encoders[1]
        if fresh and first is not None and self._stamp_clock is not None:
            self._read_stamp = (first + self._stamp_clock()) // 2  # the middle of the reads
        return fresh

    def _read_health(self, now: float) -> None:
        if now < self._health_next:
            return
        self._health_next = now + self.health_period / len(self.addresses)
        address = self.addresses[self._health_index % len(self.addresses)]
        self._health_index += 1
        try:
            self.controllers[address].health = self.bus.read_health(address, self._flush)
        except (NoReply, LinkLost):
            pass

    def _integrate(self, fresh: dict[tuple[int, int], int], now: float) -> bool:
        """Odometry from encoder deltas (core.kinematics.WheelTravel: a wheel that missed a
        cycle rejoins without its travel counted twice; a reset controller re-baselines)."""
        dt = max(now - self._last_count_time, self.period)
        # Only a jump no wheel could make (a controller that reset its counters) is dropped;
        # the margin is wide because a simulator catching up, or a late cycle, is legitimate.
        limit = (10 * self.limits.max_wheel_speed * self.geometry.counts_per_metre * dt
                 + self.geometry.counts_per_rev)
        travel = self._travel.step(fresh, limit)
        if travel is None:
            return False
        self._last_count_time = now
        self.odometry.update(*travel)
        return True

    def _publish(self, now: float, port_open: bool, odometry_ok: bool, notes: list[str],
                 timed_out: bool | None = None) -> BaseState:
        if timed_out is None:
            timed_out = now - self._last_cmd > self.cmd_timeout
        positions, velocities = [], []
        left_speeds, right_speeds = [], []
        for w in self.wheels:
            c = self.controllers[w.address]
            positions.append(counts_to_rad(c.encoders[w.channel - 1] * w.direction,
                                           self.geometry))
            vel = counts_to_rad(c.speeds[w.channel - 1] * w.direction, self.geometry)
            velocities.append(vel)
            if c.answering:
                (left_speeds if w.left else right_speeds).append(vel)
        linear = angular = 0.0
        if left_speeds and right_speeds:
            linear, angular = wheel_speeds_to_twist(sum(left_speeds) / len(left_speeds),
                                                    sum(right_speeds) / len(right_speeds),
                                                    self.geometry)
        self._cycles += 1
        state = BaseState(
            pose=self.odometry.pose, linear=linear, angular=angular,
            wheel_names=[w.name for w in self.wheels], wheel_positions=positions,
            wheel_velocities=velocities,
            controllers=[replace(c) for c in self.controllers.values()],
            estop=self._estop, command_timed_out=timed_out, holding=self._hold,
            port_open=port_open, odometry_ok=odometry_ok, rejected_commands=self._rejected,
            cycles=self._cycles, held_commands=self._held,
            distance=self.odometry.distance, notes=notes,
            cycle_errors=self.cycle_errors,
            read_stamp=self._read_stamp if odometry_ok else None)
        self._state = state
        if self.on_cycle is not None:
            try:
                self.on_cycle(state)
            except Exception as exc:  # noqa: BLE001 - a publish fault is not a link fault
                self.cycle_errors += 1
                self.last_exception = f"{type(exc).__name__}: {exc}"
                self.faults.report("error", "on_cycle",
                                   f"publishing the base state failed ({self.cycle_errors} "
                                   f"cycle errors so far): {self.last_exception}")
        return state


ERROR_MASK = 0x0000FFFF  # RoboClaw status: errors in the low 16 bits, warnings above


@dataclass
class Report:
    """One line of a diagnostics report: what, how bad, why, and the figures."""

    what: str
    level: str  # OK, WARN, ERROR
    message: str
    values: list[tuple[str, object]]


def assess(state: BaseState, bus: RoboClawBus, last_exception: str = "") -> list[Report]:
    """Diagnostics of a base: the drive itself, then one report per controller."""
    if not state.port_open:
        why = bus.last_error or "closed"
        drive = Report("drive", "ERROR", f"serial port {bus.port} not open ({why}): wheels "
                       f"stopped", [])
    elif not state.link_ok:
        drive = Report("drive", "ERROR", "a motor controller is not answering: wheels stopped",
                       [])
    elif state.estop:
        drive = Report("drive", "WARN", "estop latched: wheels stopped", [])
    elif state.holding:
        drive = Report("drive", "OK", "stopped, waiting for a fresh cmd_vel", [])
    elif state.command_timed_out:
        drive = Report("drive", "OK", "no cmd_vel within cmd_timeout: wheels stopped", [])
    else:
        drive = Report("drive", "OK", "following cmd_vel", [])
    drive.values = [("port", bus.port), ("baud", bus.baud), ("reconnects", bus.reconnects),
                    ("odometry_ok", state.odometry_ok),
                    ("rejected_commands", state.rejected_commands),
                    ("held_commands", state.held_commands),
                    ("x", f"{state.pose.x:.3f}"), ("y", f"{state.pose.y:.3f}"),
                    ("yaw", f"{state.pose.yaw:.4f}"), ("cycle_errors", state.cycle_errors),
                    ("refused_connections", bus.refused), ("last_exception", last_exception)]
    reports = [drive]
    for c in state.controllers:
        counters = bus.counters.get(c.address)
        values: list[tuple[str, object]] = [("address", c.address), ("firmware", c.firmware)]
        level, message = "OK", "answering"
        if c.health is not None:
            h = c.health
            values += [("main_battery_v", f"{h.battery_v:.1f}"),
                       ("temperature_c", f"{h.temperature_c:.1f}"),
                       ("current_m1_a", f"{h.currents_a[0]:.2f}"),
                       ("current_m2_a", f"{h.currents_a[1]:.2f}"),
                       ("status_bits", f"0x{h.status_bits:08x}")]
            if h.status_bits & ERROR_MASK:
                level, message = "ERROR", f"controller error flags 0x{h.status_bits:08x}"
            elif h.status_bits:
                level, message = "WARN", f"controller warning flags 0x{h.status_bits:08x}"
        if counters is not None:
            values += [("requests", counters.requests), ("crc_errors", counters.crc_errors),
                       ("timeouts", counters.timeouts), ("failures", counters.failures)]
        values += [("encoder_m1", c.encoders[0]), ("encoder_m2", c.encoders[1])]
        if not c.answering:
            level, message = "ERROR", c.error or "not answering"
        reports.append(Report(f"RoboClaw {c.address}", level, message, values))
    return reports
