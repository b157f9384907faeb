"""Host side of a serial bus of Basicmicro RoboClaw motor controllers.

The packet-serial transactions themselves go through the manufacturer's library
(`basicmicro`); this module adds what a rover needs around it: a short per-request timeout,
CRC and timeout counters per controller, ACK checking, detection of a vanished port, and
reopening with exponential backoff. Our own codec in `protocols/roboclaw.py` serves the
firmware emulator, so the two implementations check each other.

Every connection is checked before it is trusted:

- the port is opened exclusively (flock, as pyserial's ``exclusive=True``): a port another
  process holds raises :class:`PortBusy`, naming the holder;
- each controller is identified (firmware version, command 21) before it gets any write, and
  its serial timeout (command 14) is set so that it stops its motors by itself when the host
  dies; a port where no controller answers as a RoboClaw is refused (closed again, retried
  with backoff), so nothing but version requests is ever written to an unrelated device;
- a write can carry a guard, checked in the bus turn right before the bytes go out, so a
  command computed before an emergency stop is dropped rather than sent after it.
"""

from __future__ import annotations

import logging
import os
import termios
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import serial
from basicmicro import Basicmicro
from basicmicro.exceptions import BasicmicroError, CommunicationError

from ilrs_robots.drivers.backoff import Backoff
from ilrs_robots.drivers.serial_port import LinkLost, PortBusy, open_exclusive
from ilrs_robots.protocols.roboclaw import Cmd, serial_timeout_tenths

# The library logs every failed attempt; failures are counted and reported on diagnostics.
logging.getLogger("basicmicro").setLevel(logging.CRITICAL)

ACK = 0xFF


class NotIdentified(LookupError):
    """A write to a controller that has not been identified on this connection."""


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


class FaultLog:
    """Logs faults as they happen, at most once per `period` per kind of fault.

    `sink(level, message)` gets level "info", "warning" or "error". A kind that was cleared
    (the fault went away) is logged at once the next time it happens.
    """

    def __init__(self, sink: Callable[[str, str], None] | None = None, period: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.period = period
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def report(self, level: str, kind: str, message: str) -> bool:
        """Log `message` unless the same kind was logged within `period`; True if logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.period:
                return False
            self._last[kind] = now
        if self.sink is not None:
            try:
                self.sink(level, message)
            except Exception:  # noqa: BLE001 - a failing log must not stop the caller
                logging.getLogger(__name__).exception("logging a fault failed: %s", message)
        return True

    def active(self, kind: str) -> bool:
        """True if this kind was reported and not cleared since."""
        with self._lock:
            return kind in self._last

    def clear(self, kind: str) -> bool:
        """The fault went away; True if it had been reported."""
        with self._lock:
            return self._last.pop(kind, None) is not None


class _PacketPort:
    """A serial port whose writes are held until the request is complete (its reply is read,
    or `send` is called), so each request leaves in one write. The library writes a packet
    field by field, and a RoboClaw drops a packet whose bytes arrive more than 10 ms apart,
    which a loaded host can make them (the final stop of a base driver was lost that way)."""

    def __init__(self, port: serial.Serial) -> None:
        self._port = port
        self._pending = bytearray()

    def write(self, data: bytes) -> int:
        self._pending += data
        return len(data)

    def send(self) -> None:
        """Write what is held, in one write."""
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            self._port.write(data)

    def read(self, size: int = 1) -> bytes:
        self.send()
        return self._port.read(size)

    def close(self) -> None:
        self._pending.clear()
        self._port.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)


class _CountingClient(Basicmicro):
    """basicmicro's client, counting CRC mismatches and checking that writes get 0xFF."""

    def __init__(self, port: str, baud: int, timeout: float, retries: int) -> None:
        super().__init__(port, baud, timeout=min(timeout, 0.01), retries=retries)
        self.request_timeout = timeout
        self.crc_errors = 0
        self.attempts = 0

    def Open(self) -> bool:  # noqa: D102 - library API
        self.connect()
        return True

    def connect(self) -> None:
        """Open the port exclusively, as the library would but with a lock and our timeout.

        Raises PortBusy when another process holds the port, LinkLost when it cannot be opened.
        """
        self.close()
        port = open_exclusive(self.comport, self.rate, timeout=self.request_timeout,
                              write_timeout=0.5, inter_byte_timeout=self.timeout,
                              bytesize=serial.EIGHTBITS, parity=serial.PARITY_NONE,
                              stopbits=serial.STOPBITS_ONE)
        try:
            port.reset_input_buffer()
            port.reset_output_buffer()
        except (OSError, termios.error, serial.SerialException) as exc:
            port.close()
            raise LinkLost(f"serial port {self.comport} failed: {exc}") from exc
        self._port = _PacketPort(port)
        self._connected = True

    def set_serial_timeout(self, address: int, tenths: int) -> bool:
        """Command 14 with the exact byte (the library truncates seconds * 10)."""
        return self._write(address, int(Cmd.SET_SERIAL_TIMEOUT), tenths, types=["byte"])

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
        self._port.send()  # the packet, whole (errors reach the library's retry loop)
        ok, value = self._readbyte()
        if ok and value != ACK:
            self.crc_errors += 1
            return False
        return ok


class RoboClawBus:
    """One serial port with several RoboClaws on it. Thread-safe: one transaction at a time.

    `addresses` are the controllers expected on the bus: each is identified on every
    (re)connect, and its serial timeout set to `serial_timeout` seconds (0.1 s steps; None
    leaves the controller's own setting). A connection where none of them answers is refused.
    """

    def __init__(self, port: str, baud: int = 115200, timeout: float = 0.02, retries: int = 2,
                 backoff_min: float = 0.2, backoff_max: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, *,
                 addresses: Sequence[int] = (), serial_timeout: float | None = 0.3,
                 faults: FaultLog | None = None) -> None:
        self.port = port
        self.baud = baud
        self.timeout = timeout
        self.retries = retries
        self.addresses = list(addresses)
        self.serial_timeout_tenths = (None if serial_timeout is None
                                      else serial_timeout_tenths(serial_timeout))
        self.faults = faults or FaultLog()
        self.counters: dict[int, LinkCounters] = {}
        self.identified: dict[int, str] = {}  # address -> firmware, on this connection
        self.reconnects = 0
        self.refused = 0  # connections refused: nothing answered as a RoboClaw
        self.last_error = ""
        self._client: _CountingClient | None = None
        self._trusted = False  # an identified RoboClaw answered on this connection
        self._lock = threading.Lock()  # guards the client; held for one transaction
        self._turns = threading.Condition()
        self._busy = False
        self._urgent_waiting = 0
        self._backoff = Backoff(backoff_min, backoff_max, clock)
        self._ever_opened = False

    # -- connection -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """True while the port is open and a RoboClaw on it was identified."""
        client = self._client
        return client is not None and self._trusted and client.is_connected

    def open(self) -> None:
        """Open the port and identify the controllers now.

        Raises PortBusy if another process holds the port, LinkLost if it cannot be opened or
        nothing on it answers as a RoboClaw.
        """
        with self._lock:
            self._open_locked()
        self._accept()

    def _open_locked(self) -> None:
        self._trusted = False
        self.identified = {}
        if not os.path.exists(self.port):
            raise LinkLost(f"serial port {self.port} does not exist")
        client = _CountingClient(self.port, self.baud, self.timeout, self.retries)
        client.connect()
        self._client = client

    def _accept(self) -> None:
        """Identify the expected controllers; refuse the port if none answers as a RoboClaw."""
        silent = []
        for address in self.addresses:
            try:
                self.identify(address, trusted_only=False)
            except NoReply:
                silent.append(address)
        if self.addresses and len(silent) == len(self.addresses):
            with self._lock:
                self._drop_locked()
            self.refused += 1
            names = ", ".join(str(a) for a in silent)
            raise LinkLost(f"refused serial port {self.port}: no RoboClaw answered a firmware "
                           f"version request (addresses {names})")
        self._trusted = True
        if self._ever_opened:
            self.reconnects += 1
        self._ever_opened = True
        self._backoff.succeeded()

    def ensure_open(self) -> bool:
        """Reopen a lost port when its backoff delay has passed; True if the port is open.

        Raises PortBusy (after closing) when another process holds the port: the caller
        decides whether that ends it or it retries.
        """
        if self.is_open:
            return True
        if not self._backoff.ready():
            return False
        try:
            self.open()
            return True
        except PortBusy as exc:
            self.last_error = str(exc)
            self._backoff.failed()
            raise
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
        self._trusted = False
        self.identified = {}

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
                  urgent: bool = False, *, guard: Callable[[], bool] | None = None,
                  motion: bool = False, trusted_only: bool = True) -> Any:
        """Run one library call for `address`, classifying every failure.

        `guard` is called in the bus turn right before the call: False drops the call (returns
        None, nothing written). A `motion` call needs an identified controller.
        """
        with self._turn(urgent), self._lock:
            client = self._client
            if client is None or not client.is_connected or (trusted_only and not self._trusted):
                raise LinkLost(f"serial port {self.port} is not open")
            if motion and address not in self.identified:
                raise NotIdentified(f"RoboClaw {address} is not identified on {self.port}")
            if guard is not None and not guard():
                return None
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
              urgent: bool = False, guard: Callable[[], bool] | None = None) -> bool:
        """Both motors to signed speeds (counts/s) with an acceleration (counts/s^2), cmd 40.

        `urgent` puts the command before any poll waiting for the bus. `guard`, checked in the
        bus turn just before writing, may drop the command: False then. Raises NotIdentified
        for a controller not identified on this connection.
        """
        result = self._transact(address, "mixed speed command",
                                lambda c: c.SpeedAccelM1M2(address, accel, speed_m1, speed_m2),
                                urgent, guard=guard, motion=True)
        return result is not None

    def duty(self, address: int, duty_m1: int, duty_m2: int) -> None:
        """Open-loop duty of M1 and M2, -32767..32767 (commands 32, 33)."""
        self._transact(address, "duty M1", lambda c: c.DutyM1(address, duty_m1), motion=True)
        self._transact(address, "duty M2", lambda c: c.DutyM2(address, duty_m2), motion=True)

    def reset_encoders(self, address: int) -> None:
        """Zero both encoders (command 20)."""
        self._transact(address, "reset encoders", lambda c: c.ResetEncoders(address))

    def read_version(self, address: int, trusted_only: bool = True) -> str:
        """Firmware version string (command 21)."""
        result = self._transact(address, "read version", lambda c: c.ReadVersion(address),
                                trusted_only=trusted_only)
        return str(result[1]).strip()

    def identify(self, address: int, trusted_only: bool = True) -> str:
        """Read the firmware version, set the serial timeout; from then on `address` may move.

        Raises NoReply if the controller does not answer as a RoboClaw, LinkLost if the port
        fails. Returns the firmware version.
        """
        version = self.read_version(address, trusted_only)
        if not version:
            raise NoReply(address, "read version (empty version string)")
        tenths = self.serial_timeout_tenths
        if tenths is not None:
            self._transact(address, "set serial timeout",
                           lambda c: c.set_serial_timeout(address, tenths),
                           trusted_only=trusted_only)
        with self._lock:
            if self._client is not None:
                self.identified[address] = version
        return version

    def forget(self, address: int) -> None:
        """`address` must be identified again before its next motion command (it was lost)."""
        with self._lock:
            self.identified.pop(address, None)

    def read_serial_timeout(self, address: int) -> float:
        """The controller's serial timeout in seconds (command 15; 0: off)."""
        result = self._transact(address, "read serial timeout", lambda c: c.GetTimeout(address))
        return float(result[1])

    def read_health(self, address: int,
                    between: Callable[[], None] | None = None) -> Health:
        """Battery, temperature, currents and status bits (commands 24, 82, 49, 90).

        `between` runs between two of the four transactions (to write a fresh command).
        """
        def pause() -> None:
            if between is not None:
                between()

        volts = self._transact(address, "read battery",
                               lambda c: c.ReadMainBatteryVoltage(address))
        pause()
        temp = self._transact(address, "read temperature", lambda c: c.ReadTemp(address))
        pause()
        cur = self._transact(address, "read currents", lambda c: c.ReadCurrents(address))
        pause()
        status = self._transact(address, "read status", lambda c: c.ReadError(address))
        return Health(battery_v=volts[1] / 10.0, temperature_c=temp[1] / 10.0,
                      currents_a=(cur[1] / 100.0, cur[2] / 100.0), status_bits=int(status[1]))

