"""Host side of a GQ GMC Geiger counter (GMC-320 and kin) over pyserial, GQ-RFC1201.

The protocol's replies have no framing and no checksum, so this client trusts only what it
can check:

* the port is opened exclusively (``serial_port.open_exclusive``): a port another process
  holds raises :class:`PortBusy` naming the holder;
* before any other use the unit must answer ``<GETVER>>`` as a GMC (after ``<HEARTBEAT0>>``
  silences a heartbeat left running by an earlier host); a port where nothing answers so is
  refused (:class:`LinkLost`), so nothing but those two requests is ever written to an
  unrelated device. The version gives the width of count replies (2 or 4 bytes);
* a polled reply (GETCPM, GETCPS, GETVOLT) must have exactly the expected length and be
  followed by a quiet line (``gap``); input is flushed before each request, so garbage before
  or after a reply makes it too long and it is asked again (``retries``), a short reply times
  out and is asked again;
* heartbeats (one burst per second after ``<HEARTBEAT1>>``) are cut from the stream by
  timing (:class:`~ilrs_robots.protocols.gmc.BurstFramer`): a burst of any other length than
  the reply width is garbage and dropped, so the stream resynchronises at the next second; no
  valid heartbeat for ``heartbeat_timeout`` raises :class:`NoReply`.

A vanished port (unplugged: the device node is gone, or reads fail) raises
:class:`LinkLost` and closes; :meth:`GmcClient.ensure_open` reopens it with exponential backoff.
"""

from __future__ import annotations

import os
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from ilrs_robots.drivers.backoff import Backoff
from ilrs_robots.drivers.serial_port import LinkLost, PortBusy, open_exclusive
from ilrs_robots.protocols import gmc

__all__ = ["Counters", "GmcClient", "LinkLost", "NoReply", "PortBusy", "Second"]

BITS_PER_BYTE = 10
MAX_VERSION_LEN = 32


class NoReply(TimeoutError):
    """The counter did not answer correctly after every retry (or sent no heartbeat)."""


@dataclass
class Counters:
    """Transaction counters, kept since the client was made."""

    requests: int = 0  # request attempts sent
    retries: int = 0
    timeouts: int = 0  # replies too short or missing
    bad_replies: int = 0  # replies too long, or not decodable
    garbage_bytes: int = 0  # bytes dropped (extra bytes, garbage bursts)
    heartbeats: int = 0  # valid heartbeats received
    bad_bursts: int = 0  # heartbeat bursts of the wrong length
    reconnects: int = 0
    refused: int = 0  # ports refused: nothing answered as a GMC


@dataclass(frozen=True)
class Second:
    """The counts of one second from a heartbeat, and the monotonic time it arrived."""

    received: float
    counts: int


class GmcClient:
    """A GMC Geiger counter on one serial port. Thread-safe: one transaction at a time.

    ``timeout`` is the base allowance per request (plus the wire time at ``baud``); ``gap``
    the quiet time that ends a reply or a heartbeat burst.
    """

    def __init__(self, port: str, baud: int = gmc.DEFAULT_BAUD, timeout: float = 0.25, *,
                 retries: int = 2, gap: float = 0.03, heartbeat_timeout: float = 2.5,
                 backoff_min: float = 0.2, backoff_max: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if baud not in gmc.BAUDS:
            raise ValueError(f"baud must be one of {list(gmc.BAUDS)}, got {baud}")
        self.port = port
        self.baud = baud
        self.timeout = timeout
        self.retries = retries
        self.gap = gap
        self.heartbeat_timeout = heartbeat_timeout
        self.counters = Counters()
        self.version: gmc.Version | None = None
        self.width = 2
        self.last_error = ""
        self._ser: serial.Serial | None = None
        self._lock = threading.RLock()
        self._backoff = Backoff(backoff_min, backoff_max, clock)
        self._ever_opened = False
        self._heartbeat_on = False
        self._framer = gmc.BurstFramer(gap * 2)
        self._last_beat = 0.0

    # -- connection -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """True while the port is open and a GMC was identified on it."""
        return self._ser is not None and self.version is not None

    @property
    def heartbeat_on(self) -> bool:
        """True while this client has the heartbeat on."""
        return self._heartbeat_on

    def open(self) -> gmc.Version:
        """Open the port exclusively and identify the counter; return its version.

        Raises PortBusy if another process holds the port, LinkLost if it cannot be opened or
        nothing on it answers as a GMC counter.
        """
        with self._lock:
            self._open_locked()
            try:
                version = self._identify_locked()
            except NoReply as exc:
                self._drop_locked()
                self.counters.refused += 1
                raise LinkLost(f"refused serial port {self.port}: no GMC counter answered "
                               f"<GETVER>> ({exc})") from exc
            if self._ever_opened:
                self.counters.reconnects += 1
            self._ever_opened = True
            self._backoff.succeeded()
            return version

    def ensure_open(self) -> bool:
        """Reopen a lost port when its backoff delay has passed; True if the port is open.

        Raises PortBusy (after closing) when another process holds the port."""
        if self.is_open:
            return True
        if not self._backoff.ready():
            return False
        try:
            self.open()
            self.last_error = ""
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
        """Stop the heartbeat if on (best effort) and close the port (idempotent)."""
        with self._lock:
            if self._ser is not None and self._heartbeat_on:
                try:
                    self._ser.write(gmc.encode_command(gmc.HEARTBEAT0))
                    self._ser.flush()
                except Exception:  # noqa: BLE001 - closing a dead port may fail any way
                    pass
            self._drop_locked()

    def __enter__(self) -> GmcClient:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_locked(self) -> None:
        self._drop_locked()
        if not os.path.exists(self.port):
            raise LinkLost(f"serial port {self.port} does not exist")
        ser = open_exclusive(self.port, self.baud, timeout=self.gap, write_timeout=1.0)
        self._ser = ser

    def _drop_locked(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except Exception:  # noqa: BLE001 - closing a dead port may fail any way it likes
                pass
        self._ser = None
        self.version = None
        self._heartbeat_on = False
        self._framer.clear()

    def _lost(self, exc: BaseException | None = None) -> LinkLost:
        """Close and make the LinkLost to raise."""
        self._drop_locked()
        gone = not os.path.exists(self.port)
        why = "vanished" if gone else f"failed: {exc}"
        self.last_error = f"serial port {self.port} {why}"
        return LinkLost(self.last_error)

    # -- byte I/O ---------------------------------------------------------------------------
    def _io(self, fn: Callable[[serial.Serial], object]) -> object:
        ser = self._ser
        if ser is None:
            raise LinkLost(f"serial port {self.port} is not open")
        try:
            return fn(ser)
        except (serial.SerialException, OSError, termios.error, TypeError) as exc:
            # TypeError: pyserial's read on a port closed under it
            raise self._lost(exc) from exc

    def _send(self, command: str) -> None:
        raw = gmc.encode_command(command)
        self.counters.requests += 1
        self._io(lambda s: (s.reset_input_buffer(), s.write(raw), s.flush()))

    def _read_reply(self, nbytes: int | None) -> bytes:
        """Read a reply of ``nbytes`` (None: any length up to the gap) and the quiet after."""
        expected = nbytes or MAX_VERSION_LEN
        deadline = time.monotonic() + self.timeout + expected * BITS_PER_BYTE / self.baud
        data = bytearray()
        while time.monotonic() < deadline:
            want = (nbytes - len(data)) if nbytes else MAX_VERSION_LEN
            chunk = self._io(lambda s, n=want: s.read(max(1, n)))
            if chunk:
                data += chunk
                if nbytes is not None and len(data) >= nbytes:
                    break
            elif data and nbytes is None:
                break  # a quiet gap after some bytes ends a variable-length reply
        if nbytes is not None and len(data) >= nbytes:
            extra = self._io(lambda s: s.read(64))  # waits `gap` for trailing bytes
            if extra:
                data += extra
        if not os.path.exists(self.port):
            raise self._lost()
        return bytes(data)

    def _transact(self, command: str, nbytes: int | None,
                  check: Callable[[bytes], object] | None = None) -> bytes:
        """Send ``command`` and return its checked reply, asking again after a bad one."""
        if self._heartbeat_on:
            raise RuntimeError(f"{command} while the heartbeat is on (call stop_heartbeat)")
        for attempt in range(self.retries + 1):
            if attempt:
                self.counters.retries += 1
            self._send(command)
            data = self._read_reply(nbytes)
            if nbytes is not None and len(data) < nbytes:
                self.counters.timeouts += 1
                self.last_error = f"{command}: {len(data)} of {nbytes} bytes"
                continue
            if nbytes is not None and len(data) > nbytes:
                self.counters.bad_replies += 1
                self.counters.garbage_bytes += len(data) - nbytes
                self.last_error = f"{command}: {len(data)} bytes, expected {nbytes}"
                continue
            if check is not None:
                try:
                    check(data)
                except gmc.GmcProtocolError as exc:
                    self.counters.bad_replies += 1
                    self.counters.garbage_bytes += len(data)
                    self.last_error = f"{command}: {exc}"
                    continue
            return data
        raise NoReply(f"GMC on {self.port} did not answer {command} ({self.last_error})")

    # -- requests ---------------------------------------------------------------------------
    def _identify_locked(self) -> gmc.Version:
        # a heartbeat left on by an earlier host would mix into every reply: stop it first
        self._send(gmc.HEARTBEAT0)
        self._io(lambda s: s.read(64))
        self._heartbeat_on = False
        data = self._transact(gmc.GETVER, None, gmc.decode_version)
        self.version = gmc.decode_version(data)
        self.width = gmc.cpm_width(self.version)
        return self.version

    def identify(self) -> gmc.Version:
        """Ask the version again (the heartbeat must be off)."""
        with self._lock:
            return self._identify_locked()

    def read_cpm(self) -> int:
        """Counts per minute (GETCPM; the counter's count over the last minute)."""
        with self._lock:
            return gmc.decode_cpm(self._transact(gmc.GETCPM, self.width))

    def read_cps(self) -> int:
        """Counts in the last second (GETCPS)."""
        with self._lock:
            return gmc.decode_heartbeat(self._transact(gmc.GETCPS, self.width))

    def read_volts(self) -> float:
        """Battery volts (GETVOLT, one byte x 10)."""
        with self._lock:
            return gmc.decode_volt(self._transact(gmc.GETVOLT, gmc.VOLT_LEN))

    def start_heartbeat(self) -> None:
        """Ask for a heartbeat (the counts of each second) from now on."""
        with self._lock:
            self._send(gmc.HEARTBEAT1)
            self._framer.clear()
            self._heartbeat_on = True
            self._last_beat = time.monotonic()

    def stop_heartbeat(self) -> None:
        """Stop the heartbeat and drop what it sent meanwhile."""
        with self._lock:
            self._send(gmc.HEARTBEAT0)
            self._heartbeat_on = False
            self._io(lambda s: s.read(64))
            self._io(lambda s: s.reset_input_buffer())
            self._framer.clear()

    def read_heartbeats(self, wait: float = 0.5) -> list[Second]:
        """The heartbeats complete within the next ``wait`` s (at least one read).

        Raises NoReply when no valid heartbeat came for ``heartbeat_timeout`` s, LinkLost when
        the port is gone."""
        with self._lock:
            if not self._heartbeat_on:
                raise RuntimeError("read_heartbeats without start_heartbeat")
            out: list[Second] = []
            end = time.monotonic() + wait
            while True:
                chunk = self._io(lambda s: s.read(max(1, s.in_waiting)))
                now = time.monotonic()
                if chunk:
                    self._framer.feed(chunk, now)
                for at, burst in self._framer.poll(now):
                    if len(burst) == self.width:
                        out.append(Second(at - len(burst) * BITS_PER_BYTE / self.baud,
                                          gmc.decode_heartbeat(burst)))
                        self.counters.heartbeats += 1
                        self._last_beat = at
                    else:
                        self.counters.bad_bursts += 1
                        self.counters.garbage_bytes += len(burst)
                        self.last_error = f"heartbeat of {len(burst)} bytes dropped"
                if not os.path.exists(self.port):
                    raise self._lost()
                if now - self._last_beat > self.heartbeat_timeout:
                    self._last_beat = now  # one report per timeout
                    self.last_error = (f"no heartbeat from the GMC on {self.port} for "
                                       f"{self.heartbeat_timeout:g} s")
                    raise NoReply(self.last_error)
                if now >= end:
                    return out
