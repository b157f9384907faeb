"""GQ-RFC1201: the serial protocol of GQ GMC Geiger counters (GMC-300, GMC-320, ...).

Requests are ASCII, ``<`` + command + ``>>`` (``<GETVER>>``); replies are raw bytes with no
framing, no length and no checksum, so a host can only tell a reply by its expected length and
by the quiet line after it. What this module holds:

* ``<GETVER>>``: 14 ASCII bytes, 7 of model and 7 of firmware (``GMC-320Re 4.26``). Newer units
  send other lengths (``GMC-320+V5\\x00RRe 5.73``, with a NUL in it): :func:`decode_version`
  takes any of them.
* ``<GETCPM>>``: counts per minute, big-endian. RFC1201 (GMC-280/300/320 up to firmware 4.x)
  says 2 bytes; the GMC-320+V5 (firmware 5.xx) and the GMC-500/600/800 send 4. The width
  follows from the version (:func:`cpm_width`); :func:`decode_cpm` takes 2 or 4 bytes.
* ``<GETCPS>>``: counts in the last second, same widths; on 2 bytes only the low 14 bits count.
* ``<HEARTBEAT1>>``: from then on, every second, the counts of that second, big-endian; on the
  2-byte units only the low 14 bits are valid (bits 15 and 14 are reserved and are seen set).
  ``<HEARTBEAT0>>`` stops it (no reply).
* ``<GETVOLT>>``: one byte, battery volts x 10 (the 500/600 series send 5 ASCII bytes,
  ``4.1v\\0``).
* ``<GETSERIAL>>``: 7 bytes.
* Factory baud 115200 (the GMC-320 can be set to 1200..115200).

Host side, :class:`BurstFramer` cuts the unframed stream into replies by timing (a heartbeat
arrives as one burst of 2 or 4 bytes each second; anything of another length is garbage).
Emulator side, :class:`CommandParser` finds the commands in a byte stream and resynchronises
after garbage. Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_BAUD = 115200
BAUDS = (1200, 2400, 4800, 9600, 14400, 19200, 28800, 38400, 57600, 115200)

GETVER = "GETVER"
GETCPM = "GETCPM"
GETCPS = "GETCPS"
HEARTBEAT1 = "HEARTBEAT1"
HEARTBEAT0 = "HEARTBEAT0"
GETVOLT = "GETVOLT"
GETSERIAL = "GETSERIAL"
COMMANDS = (GETVER, GETCPM, GETCPS, HEARTBEAT1, HEARTBEAT0, GETVOLT, GETSERIAL)

VERSION_LEN = 14  # RFC1201; newer firmware may send more (see decode_version)
SERIAL_LEN = 7
VOLT_LEN = 1
HEARTBEAT_MASK_2 = 0x3FFF  # low 14 bits of a 2-byte heartbeat / CPS
MAX_COMMAND_LEN = 32  # longest '<...>>' the parser keeps before calling it garbage

_COMMAND_RE = re.compile(rb"[A-Z0-9]{1,28}")
_VERSION_RE = re.compile(r"^(?P<model>GMC-[^\s]*?)\s*Re\s*(?P<major>\d+)\.(?P<minor>\d+)")


class GmcProtocolError(ValueError):
    """Bytes that are not a valid GMC request or reply."""


@dataclass(frozen=True)
class Version:
    """A decoded ``<GETVER>>`` reply: model (``GMC-320``), firmware (major, minor), raw text."""

    model: str
    major: int
    minor: int
    text: str

    @property
    def firmware(self) -> str:
        """Firmware as printed, ``4.26``."""
        return f"{self.major}.{self.minor:02d}"


def encode_command(command: str) -> bytes:
    """``<COMMAND>>`` for an upper-case ASCII command name."""
    raw = command.encode("ascii", "strict") if command.isascii() else b""
    if not _COMMAND_RE.fullmatch(raw):
        raise GmcProtocolError(f"not a GMC command name: {command!r}")
    return b"<" + raw + b">>"


def decode_version(data: bytes) -> Version:
    """Decode a version reply (14 bytes on RFC1201 units, other lengths on newer ones)."""
    text = data.decode("latin-1")
    # 'GMC-320+V5\x00RRe 5.73': the model ends at the NUL, the firmware follows 'Re'
    clean = text.replace("\x00", " ").strip()
    m = _VERSION_RE.match(clean)
    if m is None:
        idx = clean.rfind("Re")
        head = clean[:idx].split(" ")[0] if idx > 0 else ""
        m2 = re.match(r"\s*(\d+)\.(\d+)", clean[idx + 2:]) if idx > 0 else None
        if not head.startswith("GMC-") or m2 is None:
            raise GmcProtocolError(f"not a GMC version reply: {data!r}")
        return Version(head, int(m2.group(1)), int(m2.group(2)), text)
    return Version(m.group("model"), int(m.group("major")), int(m.group("minor")), text)


def encode_version(model: str = "GMC-320", firmware: str = "4.26") -> bytes:
    """What a unit answers to ``<GETVER>>``: ``model`` + ``Re `` + ``firmware`` (14 bytes for a
    7-character model and a 4-character firmware)."""
    return f"{model}Re {firmware}".encode("latin-1")


def cpm_width(version: Version) -> int:
    """Bytes in a GETCPM / GETCPS / heartbeat reply of this unit: 4 on the GMC-500/600/800
    and on GMC-320 firmware 5.xx and later, 2 on the rest (RFC1201)."""
    digits = re.match(r"GMC-(\d+)", version.model)
    series = int(digits.group(1)) if digits else 0
    if series >= 500 or (series == 320 and version.major >= 5):
        return 4
    return 2


def encode_count(value: int, width: int = 2, reserved: int = 0) -> bytes:
    """A count as a ``width``-byte big-endian reply, saturated at what the width holds.
    ``reserved`` sets bits 15..14 of a 2-byte heartbeat (as some units do)."""
    _check_width(width)
    value = max(0, int(value))
    if width == 2:
        return ((min(value, 0xFFFF)) | ((reserved & 0x3) << 14)).to_bytes(2, "big")
    return min(value, 0xFFFFFFFF).to_bytes(4, "big")


def encode_heartbeat(counts: int, width: int = 2, reserved: int = 0) -> bytes:
    """One second of counts as sent after ``<HEARTBEAT1>>`` (14 bits on 2-byte units)."""
    if width == 2:
        return encode_count(min(max(0, int(counts)), HEARTBEAT_MASK_2), 2, reserved)
    return encode_count(counts, width)


def decode_cpm(data: bytes) -> int:
    """Counts per minute from a 2- or 4-byte big-endian GETCPM reply."""
    _check_width(len(data))
    return int.from_bytes(data, "big")


def decode_heartbeat(data: bytes) -> int:
    """Counts of one second from a heartbeat (or GETCPS) reply: low 14 bits of 2 bytes, or
    4 bytes whole."""
    _check_width(len(data))
    value = int.from_bytes(data, "big")
    return value & HEARTBEAT_MASK_2 if len(data) == 2 else value


def encode_volt(volts: float) -> bytes:
    """One byte, volts x 10 (RFC1201)."""
    return bytes([max(0, min(255, round(volts * 10)))])


def decode_volt(data: bytes) -> float:
    """Battery volts from a GETVOLT reply: 1 byte (x 10), or 5 ASCII bytes ``4.1v\\0``."""
    if len(data) == 1:
        return data[0] / 10.0
    text = data.decode("latin-1").replace("\x00", "").strip().rstrip("vV")
    try:
        value = float(text)
    except ValueError:
        raise GmcProtocolError(f"not a GMC voltage reply: {data!r}") from None
    if not 0.0 <= value < 100.0:
        raise GmcProtocolError(f"implausible GMC voltage {value}")
    return value


def _check_width(width: int) -> None:
    if width not in (2, 4):
        raise GmcProtocolError(f"a GMC count reply has 2 or 4 bytes, not {width}")


class CommandParser:
    """Finds ``<COMMAND>>`` requests in a byte stream (the emulator's side).

    Bytes before a ``<`` are dropped, as is a partial request older than ``timeout`` seconds
    or longer than :data:`MAX_COMMAND_LEN`; ``garbage`` counts the bytes dropped."""

    def __init__(self, timeout: float = 0.5) -> None:
        self.timeout = timeout
        self.garbage = 0
        self._buf = bytearray()
        self._started = 0.0

    def reset(self) -> None:
        """Forget a partial request."""
        self.garbage += len(self._buf)
        self._buf.clear()

    def feed(self, data: bytes, now: float = 0.0) -> list[str]:
        """Commands completed by ``data`` received at ``now`` (s), in order."""
        if self._buf and now - self._started > self.timeout:
            self.reset()
        out: list[str] = []
        for byte in data:
            if not self._buf:
                if byte != ord("<"):
                    self.garbage += 1
                    continue
                self._started = now
                self._buf.append(byte)
                continue
            if byte == ord("<"):  # a new request starts: what came before was garbage
                self.garbage += len(self._buf)
                self._buf = bytearray(b"<")
                self._started = now
                continue
            self._buf.append(byte)
            if self._buf.endswith(b">>"):
                body = bytes(self._buf[1:-2])
                self._buf.clear()
                if _COMMAND_RE.fullmatch(body):
                    out.append(body.decode("ascii"))
                else:
                    self.garbage += len(body) + 3
            elif len(self._buf) > MAX_COMMAND_LEN:
                self.reset()
        return out


class BurstFramer:
    """Cuts an unframed reply stream into bursts by timing (the host's side).

    Bytes are fed with their arrival time; a burst ends when no byte came for ``gap`` seconds.
    :meth:`poll` returns the bursts that ended by ``now``; a heartbeat is a burst of exactly
    the reply width, anything else is garbage (counted by the caller)."""

    def __init__(self, gap: float = 0.1) -> None:
        self.gap = gap
        self._buf = bytearray()
        self._last = 0.0
        self._done: list[tuple[float, bytes]] = []

    def feed(self, data: bytes, now: float) -> None:
        """Bytes received at ``now``."""
        if not data:
            return
        if self._buf and now - self._last > self.gap:
            self._done.append((self._last, bytes(self._buf)))
            self._buf.clear()
        self._buf.extend(data)
        self._last = now

    def poll(self, now: float) -> list[tuple[float, bytes]]:
        """(time of the last byte, bytes) of every burst complete by ``now``."""
        if self._buf and now - self._last > self.gap:
            self._done.append((self._last, bytes(self._buf)))
            self._buf.clear()
        done, self._done = self._done, []
        return done

    def clear(self) -> None:
        """Drop everything buffered."""
        self._buf.clear()
        self._done.clear()
