"""Byte-level codec of the Basicmicro RoboClaw packet-serial protocol (standard library only).

Wire format (big-endian everywhere):

* read:  host sends ``[address, cmd]`` (no CRC); the device answers
  ``[payload..., crc_hi, crc_lo]`` where the CRC covers address, cmd and payload.
* write: host sends ``[address, cmd, args..., crc_hi, crc_lo]``; the device answers a single
  ``0xFF`` (:data:`ACK`), or nothing at all when the CRC is wrong.

Host side: :func:`encode_read`, :func:`encode_write`, :func:`reply_length`, :func:`decode_reply`.
Device side: :class:`RequestParser`, :func:`encode_reply`.
"""

from __future__ import annotations

import math
import struct
from enum import IntEnum, IntFlag
from typing import NamedTuple

ACK = 0xFF
MIN_ADDRESS = 0x80
MAX_ADDRESS = 0x87
MAX_DUTY = 32767
VERSION_MAX_LEN = 48  # version string including its NUL terminator
PACKET_TIMEOUT_S = 0.010  # firmware drops a partial packet after this inter-byte gap
MAX_SERIAL_TIMEOUT_S = 25.5  # command 14 takes one byte of tenths of a second


class RoboClawProtocolError(ValueError):
    """Bad input to an encoder, or a malformed / corrupted reply."""


class Cmd(IntEnum):
    """Supported packet-serial command numbers."""

    SET_SERIAL_TIMEOUT = 14  # tenths of a second without a valid packet before a stop; 0: off
    READ_SERIAL_TIMEOUT = 15
    READ_ENC_M1 = 16
    READ_ENC_M2 = 17
    READ_SPEED_M1 = 18
    READ_SPEED_M2 = 19
    RESET_ENC = 20
    READ_VERSION = 21
    READ_MAIN_BATTERY = 24
    DUTY_M1 = 32
    DUTY_M2 = 33
    SPEED_ACCEL_M1 = 38
    SPEED_ACCEL_M2 = 39
    SPEED_ACCEL_MIXED = 40
    READ_CURRENTS = 49
    READ_ENCODERS = 78  # both encoder counts in one reply
    READ_TEMP = 82
    READ_STATUS = 90
    READ_SPEEDS = 108  # both average speeds (counts/s) in one reply


class ErrorFlag(IntFlag):
    """Error bits: low 16 bits of the READ_STATUS word (same meaning as basicmicro ERROR_*)."""

    ESTOP = 0x0001
    TEMP = 0x0002
    TEMP2 = 0x0004
    MBATHIGH = 0x0008
    LBATHIGH = 0x0010
    LBATLOW = 0x0020
    SPEED1 = 0x0100
    SPEED2 = 0x0200
    POS1 = 0x0400
    POS2 = 0x0800
    CURRENTM1 = 0x1000
    CURRENTM2 = 0x2000
    MBATLOW = 0x4000
    MBATHIGH_HYST = 0x8000


class WarnFlag(IntFlag):
    """Warning bits: high 16 bits of the READ_STATUS word (same meaning as basicmicro WARN_*)."""

    OVERCURRENTM1 = 0x0001
    OVERCURRENTM2 = 0x0002
    MBATHIGH = 0x0004
    MBATLOW = 0x0008
    TEMP = 0x0010
    TEMP2 = 0x0020
    S4 = 0x0040
    S5 = 0x0080
    SPEED1 = 0x0100
    SPEED2 = 0x0200
    POS1 = 0x0400
    POS2 = 0x0800
    CAN = 0x1000
    BOOT = 0x2000
    OVERREGENM1 = 0x4000
    OVERREGENM2 = 0x8000


# Encoder status byte bits (reply of READ_ENC_M1/M2).
ENC_STATUS_UNDERFLOW = 0x01
ENC_STATUS_BACKWARD = 0x02
ENC_STATUS_OVERFLOW = 0x04


class EncoderReading(NamedTuple):
    """Reply of READ_ENC_M1/M2."""

    count: int
    status: int


class PairReading(NamedTuple):
    """Reply of READ_ENCODERS (counts) or READ_SPEEDS (counts/s): M1 and M2, signed."""

    m1: int
    m2: int


class SpeedReading(NamedTuple):
    """Reply of READ_SPEED_M1/M2 (direction: 0 forward, 1 backward)."""

    counts_per_s: int
    direction: int = 0


class Currents(NamedTuple):
    """Reply of READ_CURRENTS, in amperes."""

    m1_a: float
    m2_a: float


class Status(NamedTuple):
    """Reply of READ_STATUS split into error (low word) and warning (high word) flags."""

    errors: ErrorFlag
    warnings: WarnFlag

    @property
    def value(self) -> int:
        """The raw 32-bit status word."""
        return (int(self.warnings) << 16) | int(self.errors)

    @classmethod
    def from_value(cls, value: int) -> Status:
        """Split a raw 32-bit status word."""
        return cls(ErrorFlag(value & 0xFFFF), WarnFlag((value >> 16) & 0xFFFF))


class Request(NamedTuple):
    """A complete request seen by the device; ``crc_ok`` False means a rejected write."""

    address: int
    cmd: Cmd
    args: tuple[int, ...]
    raw: bytes
    crc_ok: bool = True

    @property
    def rejected(self) -> bool:
        """True for a write whose CRC was wrong (firmware ignores it, no ack)."""
        return not self.crc_ok


# Struct formats (without the '>' prefix) of write arguments and read payloads.
WRITE_ARGS: dict[Cmd, str] = {
    Cmd.SET_SERIAL_TIMEOUT: "B",
    Cmd.RESET_ENC: "",
    Cmd.DUTY_M1: "h",
    Cmd.DUTY_M2: "h",
    Cmd.SPEED_ACCEL_M1: "Ii",
    Cmd.SPEED_ACCEL_M2: "Ii",
    Cmd.SPEED_ACCEL_MIXED: "Iii",
}
READ_PAYLOAD: dict[Cmd, str | None] = {
    Cmd.READ_SERIAL_TIMEOUT: "B",
    Cmd.READ_ENC_M1: "iB",
    Cmd.READ_ENC_M2: "iB",
    Cmd.READ_SPEED_M1: "iB",
    Cmd.READ_SPEED_M2: "iB",
    Cmd.READ_VERSION: None,  # NUL-terminated string
    Cmd.READ_MAIN_BATTERY: "H",
    Cmd.READ_CURRENTS: "hh",
    Cmd.READ_ENCODERS: "ii",
    Cmd.READ_TEMP: "H",
    Cmd.READ_STATUS: "I",
    Cmd.READ_SPEEDS: "ii",
}
_RANGES = {
    "B": (0, 0xFF),
    "h": (-0x8000, 0x7FFF),
    "H": (0, 0xFFFF),
    "i": (-0x80000000, 0x7FFFFFFF),
    "I": (0, 0xFFFFFFFF),
}


def serial_timeout_tenths(seconds: float) -> int:
    """Command 14's argument for a serial timeout in seconds (rounded to 0.1 s; 0: off)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
            or not 0.0 <= seconds <= MAX_SERIAL_TIMEOUT_S:
        raise RoboClawProtocolError(f"serial timeout must be 0..{MAX_SERIAL_TIMEOUT_S} s, "
                                    f"got {seconds!r}")
    return round(seconds * 10)


def crc16(data: bytes, crc: int = 0) -> int:
    """CRC16-CCITT (poly 0x1021, init 0, XMODEM) of ``data``, continuing from ``crc``."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def is_read(cmd: int) -> bool:
    """True for a supported read command."""
    return cmd in READ_PAYLOAD


def is_write(cmd: int) -> bool:
    """True for a supported write command."""
    return cmd in WRITE_ARGS


def _check_address(address: object) -> int:
    if type(address) is not int or not MIN_ADDRESS <= address <= MAX_ADDRESS:
        raise RoboClawProtocolError(f"address must be an int 0x80..0x87, got {address!r}")
    return address


def _pack(fmt: str, values: tuple[object, ...], what: str) -> bytes:
    if len(values) != len(fmt):
        raise RoboClawProtocolError(f"{what}: expected {len(fmt)} values, got {len(values)}")
    for code, value in zip(fmt, values, strict=True):
        low, high = _RANGES[code]
        if type(value) is not int or not low <= value <= high:
            raise RoboClawProtocolError(f"{what}: {value!r} is not an int in {low}..{high}")
    return struct.pack(">" + fmt, *values)


def _with_crc(data: bytes) -> bytes:
    return data + crc16(data).to_bytes(2, "big")


def _reply(head: bytes, payload: bytes) -> bytes:
    return payload + crc16(head + payload).to_bytes(2, "big")


def encode_read(address: int, cmd: int) -> bytes:
    """Request bytes of a read command: ``[address, cmd]`` (no CRC)."""
    _check_address(address)
    if not is_read(cmd):
        raise RoboClawProtocolError(f"not a supported read command: {cmd!r}")
    return bytes((address, cmd))


def encode_write(address: int, cmd: int, *args: int) -> bytes:
    """Request bytes of a write command with its arguments and CRC.

    Arguments: SET_SERIAL_TIMEOUT tenths of a second (0..255, 0: off); RESET_ENC none;
    DUTY_M1/M2 duty (-32767..32767); SPEED_ACCEL_M1/M2 accel (u32),
    speed (s32); SPEED_ACCEL_MIXED accel (u32), speed M1 (s32), speed M2 (s32).
    """
    _check_address(address)
    if not is_write(cmd):
        raise RoboClawProtocolError(f"not a supported write command: {cmd!r}")
    fmt = WRITE_ARGS[Cmd(cmd)]
    if fmt == "h" and len(args) == 1 and args[0] == -0x8000:
        raise RoboClawProtocolError("duty must be in -32767..32767")
    return _with_crc(bytes((address, cmd)) + _pack(fmt, args, Cmd(cmd).name))


def reply_length(cmd: int) -> int | None:
    """Total reply length in bytes (payload + CRC, or 1 for a write's ack); None if variable."""
    if is_write(cmd):
        return 1
    if not is_read(cmd):
        raise RoboClawProtocolError(f"unsupported command: {cmd!r}")
    fmt = READ_PAYLOAD[Cmd(cmd)]
    return None if fmt is None else struct.calcsize(">" + fmt) + 2


def request_length(cmd: int) -> int:
    """Total request length in bytes, as the device must receive it."""
    if is_read(cmd):
        return 2
    if is_write(cmd):
        return 4 + struct.calcsize(">" + WRITE_ARGS[Cmd(cmd)])
    raise RoboClawProtocolError(f"unsupported command: {cmd!r}")


Reply = EncoderReading | SpeedReading | Currents | Status | float | str


def decode_reply(address: int, cmd: int, data: bytes) -> Reply:
    """Check the CRC of a complete read reply and decode its payload.

    Returns EncoderReading, SpeedReading, PairReading, Currents, Status, a float (battery volts,
    temperature in degC or serial timeout in s) or the version string. Raises
    RoboClawProtocolError on any problem.
    """
    _check_address(address)
    if not is_read(cmd):
        raise RoboClawProtocolError(f"not a supported read command: {cmd!r}")
    cmd = Cmd(cmd)
    data = bytes(data)
    expected = reply_length(cmd)
    if expected is not None and len(data) != expected:
        raise RoboClawProtocolError(f"{cmd.name}: reply of {len(data)} bytes, want {expected}")
    if len(data) < 3:
        raise RoboClawProtocolError(f"{cmd.name}: reply too short ({len(data)} bytes)")
    payload, crc = data[:-2], int.from_bytes(data[-2:], "big")
    if crc16(bytes((address, cmd)) + payload) != crc:
        raise RoboClawProtocolError(f"{cmd.name}: CRC mismatch")
    if cmd is Cmd.READ_VERSION:
        if len(payload) > VERSION_MAX_LEN or payload.find(0) != len(payload) - 1:
            raise RoboClawProtocolError("READ_VERSION: malformed version string")
        return payload[:-1].decode("latin-1")
    values = struct.unpack(">" + READ_PAYLOAD[cmd], payload)
    if cmd in (Cmd.READ_ENC_M1, Cmd.READ_ENC_M2):
        return EncoderReading(*values)
    if cmd in (Cmd.READ_SPEED_M1, Cmd.READ_SPEED_M2):
        return SpeedReading(*values)
    if cmd is Cmd.READ_CURRENTS:
        return Currents(values[0] / 100.0, values[1] / 100.0)
    if cmd in (Cmd.READ_ENCODERS, Cmd.READ_SPEEDS):
        return PairReading(*values)
    if cmd is Cmd.READ_STATUS:
        return Status.from_value(values[0])
    return values[0] / 10.0  # READ_MAIN_BATTERY (V), READ_TEMP (degC), READ_SERIAL_TIMEOUT (s)


def _scaled(value: object, scale: float, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RoboClawProtocolError(f"{what}: {value!r} is not a number")
    scaled = value * scale
    if not math.isfinite(scaled):
        raise RoboClawProtocolError(f"{what}: {value!r} is out of range")
    return round(scaled)


def encode_reply(address: int, cmd: int, *values: object) -> bytes:
    """Reply bytes (payload + CRC) of a read command, as the firmware sends them.

    Values: ENC count (s32), status byte; SPEED counts/s (s32, direction byte derived);
    VERSION str (ASCII, at most 47 chars, no NUL); MAIN_BATTERY volts; CURRENTS m1_a, m2_a;
    TEMP degC; SERIAL_TIMEOUT seconds (0..25.5); STATUS raw u32 (or a Status); ENCODERS,
    SPEEDS two s32.
    """
    _check_address(address)
    if not is_read(cmd):
        raise RoboClawProtocolError(f"not a supported read command: {cmd!r}")
    cmd = Cmd(cmd)
    name = cmd.name
    head = bytes((address, cmd))
    if cmd is Cmd.READ_VERSION:
        if len(values) != 1 or not isinstance(values[0], str):
            raise RoboClawProtocolError("READ_VERSION: expected one str")
        try:
            text = values[0].encode("ascii")
        except UnicodeEncodeError as exc:
            raise RoboClawProtocolError("READ_VERSION: version must be ASCII") from exc
        if b"\0" in text or len(text) >= VERSION_MAX_LEN:
            raise RoboClawProtocolError("READ_VERSION: version too long or contains NUL")
        return _reply(head, text + b"\0")
    if cmd in (Cmd.READ_SPEED_M1, Cmd.READ_SPEED_M2):
        if len(values) != 1:
            raise RoboClawProtocolError(f"{name}: expected one speed")
        speed = values[0]
        direction = 1 if isinstance(speed, int) and speed < 0 else 0
        return _reply(head, _pack("iB", (speed, direction), name))
    if cmd in (Cmd.READ_MAIN_BATTERY, Cmd.READ_TEMP, Cmd.READ_SERIAL_TIMEOUT):
        if len(values) != 1:
            raise RoboClawProtocolError(f"{name}: expected one value")
        fmt = READ_PAYLOAD[cmd]
        return _reply(head, _pack(fmt, (_scaled(values[0], 10, name),), name))
    if cmd is Cmd.READ_CURRENTS:
        scaled = tuple(_scaled(v, 100, name) for v in values)
        return _reply(head, _pack("hh", scaled, name))
    if cmd is Cmd.READ_STATUS and len(values) == 1 and isinstance(values[0], Status):
        values = (values[0].value,)
    return _reply(head, _pack(READ_PAYLOAD[cmd], values, name))


class RequestParser:
    """Incremental device-side parser of host requests, behaving like the firmware.

    Bytes that cannot start a packet (not an address 0x80..0x87) are discarded; an unknown
    command byte after an address discards that address; a partial packet is dropped when more
    than ``packet_timeout`` seconds pass between two bytes. Writes with a bad CRC come out as
    requests with ``crc_ok=False``.
    """

    def __init__(self, packet_timeout: float = PACKET_TIMEOUT_S) -> None:
        self.packet_timeout = packet_timeout
        self._buf = bytearray()
        self._need = 0
        self._last: float | None = None

    def reset(self) -> None:
        """Forget any partial packet."""
        self._buf.clear()
        self._need = 0

    def feed(self, data: bytes, now: float) -> list[Request]:
        """Consume ``data`` received at time ``now`` (s); return the requests it completes."""
        if self._buf and self._last is not None and now - self._last > self.packet_timeout:
            self.reset()
        self._last = now
        out: list[Request] = []
        for byte in bytes(data):
            request = self._push(byte)
            if request is not None:
                out.append(request)
        return out

    def _push(self, byte: int) -> Request | None:
        if not self._buf:
            if MIN_ADDRESS <= byte <= MAX_ADDRESS:
                self._buf.append(byte)
            return None
        if len(self._buf) == 1:
            if not (is_read(byte) or is_write(byte)):
                self.reset()
                return self._push(byte)  # the byte may itself start a packet
            self._need = request_length(byte)
        self._buf.append(byte)
        if len(self._buf) < self._need:
            return None
        raw = bytes(self._buf)
        self.reset()
        address, cmd = raw[0], Cmd(raw[1])
        if is_read(cmd):
            return Request(address, cmd, (), raw)
        body, crc = raw[:-2], int.from_bytes(raw[-2:], "big")
        if crc16(body) != crc:
            return Request(address, cmd, (), raw, crc_ok=False)
        args = struct.unpack(">" + WRITE_ARGS[cmd], body[2:])
        return Request(address, cmd, tuple(args), raw)
