"""Host side of a serial bus of Basicmicro RoboClaw motor controllers.

The packet-serial transactions themselves go through the manufacturer's library
(`basicmicro`); this module adds what a rover needs around it: a short per-request timeout,
CRC and timeout counters per controller, ACK checking, detection of a vanished port, and
reopening with exponential backoff. Our own codec in `protocols/roboclaw.py` serves the
firmware emulator, so the two implementations check each other.
"""

from __future__ import annotations

import logging
import os
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from basicmicro import Basicmicro
from basicmicro.exceptions import BasicmicroError, CommunicationError

from ilrs_robots.drivers.backoff import Backoff

# The library logs every failed attempt; failures are counted and reported on diagnostics.
logging.getLogger("basicmicro").setLevel(logging.CRITICAL)

ACK = 0xFF


class LinkLost(ConnectionError):
    """The serial port is gone (unplugged, closed by the device, or not there)."""


class NoReply(TimeoutError):
    """A controller did not answer correctly after every retry (timeout or bad CRC)."""

    def __init__(self, address: int, what: str) -> None:
        super().__init__(f"RoboClaw {address} did not answer {what}")
        self.address = address


@dataclass
class LinkCounters:
    """Per-controller transaction counters, kept since start."""

    requests: int = 0
    crc_errors: int = 0
    timeouts: int = 0
    failures: int = 0  # transactions that failed after every retry
    consecutive_failures: int = 0


@dataclass
class Health:
    """Slow-changing state of one controller."""

    battery_v: float
    temperature_c: float
    currents_a: tuple[float, float]
    status_bits: int


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


class _CountingClient(Basicmicro):
    """basicmicro's client, counting CRC mismatches and checking that writes get 0xFF."""

    def __init__(self, port: str, baud: int, timeout: float, retries: int) -> None:
        super().__init__(port, baud, timeout=min(timeout, 0.01), retries=retries)
        self.request_timeout = timeout
        self.crc_errors = 0
        self.attempts = 0

    def Open(self) -> bool:  # noqa: D102 - library API
        ok = super().Open()
        if ok:
            self._port.timeout = self.request_timeout  # the library opens with 1 s
        return ok

    def _sendcommand(self, address: int, command: int) -> None:
        self.attempts += 1
        super()._sendcommand(address, command)

    def _write(self, address: int, cmd: int, *args: Any, **kwargs: Any) -> bool:
        # The library flushes stale input before reads only; a write's ack could otherwise
        # be a stray byte of earlier garbage.
        if self._port is not None:
            try:
                self._port.reset_input_buffer()
            except (OSError, ValueError, termios.error) as exc:
                raise CommunicationError(f"serial port failed: {exc}") from exc
        return super()._write(address, cmd, *args, **kwargs)

    def _readchecksumword(self) -> tuple[bool, int]:
        ok, crc = super()._readchecksumword()
        if ok and (crc & 0xFFFF) != (self._crc & 0xFFFF):
            self.crc_errors += 1
        return ok, crc

    def _writechecksum(self) -> bool:
        self._writeword(self._crc & 0xFFFF)
        ok, value = self._readbyte()
        if ok and value != ACK:
            self.crc_errors += 1
            return False
        return ok


class RoboClawBus:
    """One serial port with several RoboClaws on it. Thread-safe: one transaction at a time."""

    def __init__(self, port: str, baud: int = 115200, timeout: float = 0.02, retries: int = 2,
                 backoff_min: float = 0.2, backoff_max: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.baud = baud
        self.timeout = timeout
        self.retries = retries
        self.counters: dict[int, LinkCounters] = {}
        self.reconnects = 0
        self.last_error = ""
        self._client: _CountingClient | None = None
        self._lock = threading.Lock()  # guards the client; held for one transaction
        self._turns = threading.Condition()
        self._busy = False
        self._urgent_waiting = 0
        self._backoff = Backoff(backoff_min, backoff_max, clock)
        self._ever_opened = False

    # -- connection -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """True while the port is open."""
        client = self._client
        return client is not None and client.is_connected

    def open(self) -> None:
        """Open the port now; raise LinkLost if it cannot be opened."""
        with self._lock:
            self._open_locked()

    def _open_locked(self) -> None:
        if not os.path.exists(self.port):
            raise LinkLost(f"serial port {self.port} does not exist")
        client = _CountingClient(self.port, self.baud, self.timeout, self.retries)
        if not client.Open():
            raise LinkLost(f"cannot open serial port {self.port}")
        self._client = client
        if self._ever_opened:
            self.reconnects += 1
        self._ever_opened = True
        self._backoff.succeeded()

    def ensure_open(self) -> bool:
        """Reopen a lost port when its backoff delay has passed; True if the port is open."""
        if self.is_open:
            return True
        if not self._backoff.ready():
            return False
        with self._lock:
            try:
                self._open_locked()
                return True
            except LinkLost as exc:
                self.last_error = str(exc)
                self._backoff.failed()
                return False

    def close(self) -> None:
        """Close the port (idempotent)."""
        with self._lock:
            self._drop_locked()

    def _drop_locked(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing a dead port may fail any way it likes
                pass
        self._client = None

    # -- transactions -----------------------------------------------------------------------
    @contextmanager
    def _turn(self, urgent: bool) -> Iterator[None]:
        """One transaction at a time; urgent ones (motion commands) go before queued polls."""
        with self._turns:
            if urgent:
                self._urgent_waiting += 1
                while self._busy:
                    self._turns.wait()
                self._urgent_waiting -= 1
            else:
                while self._busy or self._urgent_waiting:
                    self._turns.wait()
            self._busy = True
        try:
            yield
        finally:
            with self._turns:
                self._busy = False
                self._turns.notify_all()

    def _transact(self, address: int, what: str, call: Callable[[Basicmicro], Any],
                  urgent: bool = False) -> Any:
        """Run one library call for `address`, classifying every failure."""
        with self._turn(urgent), self._lock:
            client = self._client
            if client is None or not client.is_connected:
                raise LinkLost(f"serial port {self.port} is not open")
            counters = self.counters.setdefault(address, LinkCounters())
            attempts0, crc0 = client.attempts, client.crc_errors
            try:
                result = call(client)
                ok = result if isinstance(result, bool) else bool(result[0])
            except CommunicationError as exc:
                self._drop_locked()
                self.last_error = str(exc)
                raise LinkLost(f"serial port {self.port} failed: {exc}") from exc
            except BasicmicroError:
                ok, result = False, None
            except (OSError, termios.error) as exc:
                self._drop_locked()
                raise LinkLost(f"serial port {self.port} failed: {exc}") from exc
            finally:
                attempts = client.attempts - attempts0
                crc = client.crc_errors - crc0
                counters.requests += max(attempts, 1)
                counters.crc_errors += crc
            if ok:
                counters.timeouts += max(attempts - 1 - crc, 0)
                counters.consecutive_failures = 0
                return result
            counters.timeouts += max(attempts - crc, 0)
            counters.failures += 1
            counters.consecutive_failures += 1
            if not os.path.exists(self.port):
                self._drop_locked()
                raise LinkLost(f"serial port {self.port} vanished")
            raise NoReply(address, what)

    def read_encoders(self, address: int) -> tuple[int, int]:
        """Encoder counts of M1 and M2, in one transaction (command 78)."""
        reply = self._transact(address, "read encoders", lambda c: c.GetEncoders(address))
        return _signed32(reply[1]), _signed32(reply[2])

    def read_speeds(self, address: int) -> tuple[int, int]:
        """Measured speeds of M1 and M2 in counts/s, in one transaction (command 108)."""
        reply = self._transact(address, "read speeds", lambda c: c.GetSpeeds(address))
        return _signed32(reply[1]), _signed32(reply[2])

    def drive(self, address: int, accel: int, speed_m1: int, speed_m2: int,
              urgent: bool = False) -> None:
        """Both motors to signed speeds (counts/s) with an acceleration (counts/s^2), cmd 40.

        `urgent` puts the command before any poll waiting for the bus.
        """
        self._transact(address, "mixed speed command",
                       lambda c: c.SpeedAccelM1M2(address, accel, speed_m1, speed_m2), urgent)

    def duty(self, address: int, duty_m1: int, duty_m2: int) -> None:
        """Open-loop duty of M1 and M2, -32767..32767 (commands 32, 33)."""
        self._transact(address, "duty M1", lambda c: c.DutyM1(address, duty_m1))
        self._transact(address, "duty M2", lambda c: c.DutyM2(address, duty_m2))

    def reset_encoders(self, address: int) -> None:
        """Zero both encoders (command 20)."""
        self._transact(address, "reset encoders", lambda c: c.ResetEncoders(address))

    def read_version(self, address: int) -> str:
        """Firmware version string (command 21)."""
        result = self._transact(address, "read version", lambda c: c.ReadVersion(address))
        return str(result[1]).strip()

    def read_health(self, address: int) -> Health:
        """Battery, temperature, currents and status bits (commands 24, 82, 49, 90)."""
        volts = self._transact(address, "read battery",
                               lambda c: c.ReadMainBatteryVoltage(address))
        temp = self._transact(address, "read temperature", lambda c: c.ReadTemp(address))
        cur = self._transact(address, "read currents", lambda c: c.ReadCurrents(address))
        status = self._transact(address, "read status", lambda c: c.ReadError(address))
        return Health(battery_v=volts[1] / 10.0, temperature_c=temp[1] / 10.0,
                      currents_a=(cur[1] / 100.0, cur[2] / 100.0), status_bits=int(status[1]))

