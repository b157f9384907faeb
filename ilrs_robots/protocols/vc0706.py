"""Byte-level codec of the VC0706 serial JPEG camera protocol (standard library only).

The protocol of the Vimicro VC0706 (LinkSprite LS-Y201, Adafruit 397/613 and their clones),
after the "VC0706 Serial Port Transmission Communication Protocol" manual:

* request: ``56 <serial> <cmd> <len> <args...>`` (``len`` = number of argument bytes);
* reply:   ``76 <serial> <cmd> <status> <len> <data...>`` (status 0 = executed);
* READ_FBUF is the exception: its reply is the header ``76 <serial> 32 00 00``, then the
  requested image bytes (the header's length byte stays 0), then the same 5-byte header again.

There is no checksum anywhere: a corrupted image byte cannot be detected by the protocol, only
the framing (headers, status, lengths) can. The serial number is 0x00 unless changed.

Host side: the ``encode_*`` request builders and :class:`ReplyParser`.
Device side: :class:`RequestParser`, :func:`encode_reply`, :func:`encode_fbuf_reply`.
Decoders raise :class:`Vc0706ProtocolError` and nothing else.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import NamedTuple

REQUEST_SIGN = 0x56
REPLY_SIGN = 0x76
DEFAULT_SERIAL = 0x00
DEFAULT_BAUD = 38400
DEFAULT_VERSION = "VC0703 1.00"  # what VC0706 modules answer to GEN_VERSION
HEADER_LEN = 5  # reply header: sign, serial, cmd, status, len
READ_FBUF_MODE = 0x0A  # control mode used by LinkSprite's and Adafruit's hosts
READ_FBUF_DELAY = 10  # default interval between header / data / header, 0.01 ms units
PACKET_TIMEOUT_S = 0.010  # the emulator drops a partial request after this inter-byte gap
BOOT_END = b"Init end\r\n"  # last line of the text printed after SYSTEM_RESET


class Vc0706ProtocolError(ValueError):
    """Bad input to an encoder, or a malformed / corrupted reply."""


class Cmd(IntEnum):
    """Command bytes (datasheet names)."""

    GEN_VERSION = 0x11
    SET_PORT = 0x24
    SYSTEM_RESET = 0x26
    READ_DATA = 0x30
    WRITE_DATA = 0x31
    READ_FBUF = 0x32
    GET_FBUF_LEN = 0x34
    FBUF_CTRL = 0x36


class Status(IntEnum):
    """Reply status byte."""

    OK = 0
    NOT_RECEIVED = 1  # the system did not receive the command (unsupported command)
    LENGTH_ERROR = 2  # data-length error
    FORMAT_ERROR = 3  # data-format error
    CANNOT_EXECUTE = 4  # the command cannot be executed now
    EXECUTE_ERROR = 5  # received, but executed wrong


class FbufCtrl(IntEnum):
    """Control flags of FBUF_CTRL."""

    STOP_CURRENT = 0x00
    STOP_NEXT = 0x01
    STEP = 0x02
    RESUME = 0x03


class MemType(IntEnum):
    """Memory (data type) byte of READ_DATA / WRITE_DATA."""

    CHIP_REGISTER = 1
    SENSOR_REGISTER = 2
    CCIR656_REGISTER = 3
    I2C_EEPROM = 4
    SPI_EEPROM = 5
    SPI_FLASH = 6


PORT_UART = 0x01  # SET_PORT interface byte
IMAGE_SIZE_ADDR = 0x0019  # image size, 1 byte, in the I2C EEPROM (type 4)
COMPRESSION_ADDR = 0x1204  # JPEG compression ratio, 1 byte, chip register (type 1)
DEFAULT_COMPRESSION = 0x36

SIZE_CODES: dict[tuple[int, int], int] = {(640, 480): 0x00, (320, 240): 0x11, (160, 120): 0x22}
SIZES: dict[int, tuple[int, int]] = {code: size for size, code in SIZE_CODES.items()}
BAUD_CODES: dict[int, int] = {
    9600: 0xAEC8,
    19200: 0x56E4,
    38400: 0x2AF2,
    57600: 0x1C4C,
    115200: 0x0DA6,
}
BAUDS: dict[int, int] = {code: baud for baud, code in BAUD_CODES.items()}
_STATUSES = frozenset(int(s) for s in Status)
_FBUF_FLAGS = frozenset(int(f) for f in FbufCtrl)
_MEM_TYPES = frozenset(int(m) for m in MemType)


class Request(NamedTuple):
    """A complete request as the camera receives it."""

    serial: int
    cmd: int  # a Cmd value, or an unsupported command byte
    args: bytes
    raw: bytes


class Reply(NamedTuple):
    """A complete reply as the host receives it (``data`` without the framing)."""

    serial: int
    cmd: int
    status: int
    data: bytes

    @property
    def ok(self) -> bool:
        """True when the camera executed the command."""
        return self.status == Status.OK


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _byte(value: object, what: str) -> int:
    if not _is_int(value) or not 0 <= value <= 0xFF:
        raise Vc0706ProtocolError(f"{what} must be an int 0..255, got {value!r}")
    return int(value)


def _uint(value: object, nbytes: int, what: str) -> bytes:
    if not _is_int(value) or not 0 <= value < 1 << (8 * nbytes):
        raise Vc0706ProtocolError(f"{what} must be an int 0..{(1 << 8 * nbytes) - 1}, "
                                  f"got {value!r}")
    return int(value).to_bytes(nbytes, "big")


# -- host side: requests ---------------------------------------------------------------------

def encode_command(cmd: int, args: bytes = b"", serial: int = DEFAULT_SERIAL) -> bytes:
    """Request bytes ``56 serial cmd len args``."""
    args = bytes(args)
    if len(args) > 0xFF:
        raise Vc0706ProtocolError(f"at most 255 argument bytes, got {len(args)}")
    return bytes((REQUEST_SIGN, _byte(serial, "serial"), _byte(cmd, "cmd"), len(args))) + args


def encode_version(serial: int = DEFAULT_SERIAL) -> bytes:
    """GEN_VERSION: ``56 00 11 00``."""
    return encode_command(Cmd.GEN_VERSION, b"", serial)


def encode_reset(serial: int = DEFAULT_SERIAL) -> bytes:
    """SYSTEM_RESET: ``56 00 26 00``."""
    return encode_command(Cmd.SYSTEM_RESET, b"", serial)


def encode_fbuf_ctrl(flag: int, serial: int = DEFAULT_SERIAL) -> bytes:
    """FBUF_CTRL with a :class:`FbufCtrl` flag, e.g. stop: ``56 00 36 01 00``."""
    if _byte(flag, "flag") not in _FBUF_FLAGS:
        raise Vc0706ProtocolError(f"unknown FBUF_CTRL flag {flag!r}")
    return encode_command(Cmd.FBUF_CTRL, bytes((flag,)), serial)


def encode_get_fbuf_len(fbuf_type: int = 0, serial: int = DEFAULT_SERIAL) -> bytes:
    """GET_FBUF_LEN of the current (0) or next (1) frame: ``56 00 34 01 00``."""
    if fbuf_type not in (0, 1):
        raise Vc0706ProtocolError(f"frame buffer type must be 0 or 1, got {fbuf_type!r}")
    return encode_command(Cmd.GET_FBUF_LEN, bytes((fbuf_type,)), serial)


def encode_read_fbuf(address: int, length: int, delay: int = READ_FBUF_DELAY,
                     fbuf_type: int = 0, mode: int = READ_FBUF_MODE,
                     serial: int = DEFAULT_SERIAL) -> bytes:
    """READ_FBUF: ``56 00 32 0C type mode addr(4) length(4) delay(2)``, big-endian.

    ``delay`` is the camera's pause between the reply's parts, in units of 0.01 ms.
    """
    if fbuf_type not in (0, 1):
        raise Vc0706ProtocolError(f"frame buffer type must be 0 or 1, got {fbuf_type!r}")
    if _is_int(length) and length == 0:
        raise Vc0706ProtocolError("READ_FBUF length must be positive")
    args = (bytes((fbuf_type, _byte(mode, "mode"))) + _uint(address, 4, "address")
            + _uint(length, 4, "length") + _uint(delay, 2, "delay"))
    return encode_command(Cmd.READ_FBUF, args, serial)


def encode_write_data(mem: int, address: int, data: bytes,
                      serial: int = DEFAULT_SERIAL) -> bytes:
    """WRITE_DATA: ``56 00 31 len mem count addr(2) data...``."""
    if _byte(mem, "memory type") not in _MEM_TYPES:
        raise Vc0706ProtocolError(f"unknown memory type {mem!r}")
    data = bytes(data)
    if not 1 <= len(data) <= 16:
        raise Vc0706ProtocolError(f"WRITE_DATA takes 1..16 bytes, got {len(data)}")
    args = bytes((mem, len(data))) + _uint(address, 2, "address") + data
    return encode_command(Cmd.WRITE_DATA, args, serial)


def encode_read_data(mem: int, address: int, count: int,
                     serial: int = DEFAULT_SERIAL) -> bytes:
    """READ_DATA: ``56 00 30 04 mem count addr(2)``."""
    if _byte(mem, "memory type") not in _MEM_TYPES:
        raise Vc0706ProtocolError(f"unknown memory type {mem!r}")
    if not _is_int(count) or not 1 <= count <= 16:
        raise Vc0706ProtocolError(f"READ_DATA reads 1..16 bytes, got {count!r}")
    args = bytes((mem, count)) + _uint(address, 2, "address")
    return encode_command(Cmd.READ_DATA, args, serial)


def size_code(width: int, height: int) -> int:
    """Image size register value of a resolution (640x480, 320x240 or 160x120)."""
    try:
        return SIZE_CODES[(width, height)]
    except (KeyError, TypeError):
        sizes = ", ".join(f"{w}x{h}" for w, h in SIZE_CODES)
        raise Vc0706ProtocolError(f"unsupported size {width}x{height} (one of {sizes})") from None


def encode_set_size(width: int, height: int, serial: int = DEFAULT_SERIAL) -> bytes:
    """Image size: ``56 00 31 05 04 01 00 19 code``."""
    code = size_code(width, height)
    return encode_write_data(MemType.I2C_EEPROM, IMAGE_SIZE_ADDR, bytes((code,)), serial)


def encode_get_size(serial: int = DEFAULT_SERIAL) -> bytes:
    """Read the image size: ``56 00 30 04 04 01 00 19``; reply data is the size code."""
    return encode_read_data(MemType.I2C_EEPROM, IMAGE_SIZE_ADDR, 1, serial)


def encode_set_compression(ratio: int, serial: int = DEFAULT_SERIAL) -> bytes:
    """JPEG compression ratio (0..255, higher = smaller): ``56 00 31 05 01 01 12 04 ratio``."""
    return encode_write_data(MemType.CHIP_REGISTER, COMPRESSION_ADDR,
                             bytes((_byte(ratio, "compression"),)), serial)


def encode_set_baud(baud: int, serial: int = DEFAULT_SERIAL) -> bytes:
    """SET_PORT of the UART: ``56 00 24 03 01 hi lo`` with the datasheet's baud code."""
    if not _is_int(baud) or baud not in BAUD_CODES:
        raise Vc0706ProtocolError(f"unsupported baud {baud!r} (one of {sorted(BAUD_CODES)})")
    return encode_command(Cmd.SET_PORT, bytes((PORT_UART,)) + _uint(BAUD_CODES[baud], 2, "code"),
                          serial)


def decode_fbuf_len(reply: Reply) -> int:
    """Frame length (bytes) from a GET_FBUF_LEN reply."""
    if reply.cmd != Cmd.GET_FBUF_LEN or not reply.ok or len(reply.data) != 4:
        raise Vc0706ProtocolError(f"not a GET_FBUF_LEN reply with 4 data bytes: {reply!r}")
    return int.from_bytes(reply.data, "big")


def decode_version(reply: Reply) -> str:
    """Version text from a GEN_VERSION reply."""
    if reply.cmd != Cmd.GEN_VERSION or not reply.ok:
        raise Vc0706ProtocolError(f"not a successful GEN_VERSION reply: {reply!r}")
    return reply.data.decode("latin-1")


# -- host side: replies ----------------------------------------------------------------------

class ReplyParser:
    """Incremental parser of the reply to one request; feed it bytes as they arrive.

    Bytes before the reply header ``76 serial cmd`` are skipped (counted in ``skipped``), so
    the parser resynchronises after garbage. Once the header is found, an unknown status, a
    data length other than ``data_length`` (when given) or a READ_FBUF trailer that differs
    from the header raise :class:`Vc0706ProtocolError`. ``fbuf_length`` is the number of image
    bytes requested by READ_FBUF; a camera that sends fewer (a short read) is accepted by
    :meth:`finish` once the line goes quiet and the bytes received end with the trailer.
    """

    def __init__(self, cmd: int, serial: int = DEFAULT_SERIAL, data_length: int | None = None,
                 fbuf_length: int | None = None) -> None:
        self.cmd = _byte(cmd, "cmd")
        self.serial = _byte(serial, "serial")
        if cmd == Cmd.READ_FBUF and (not _is_int(fbuf_length) or fbuf_length <= 0):
            raise Vc0706ProtocolError("READ_FBUF replies need a positive fbuf_length")
        self.data_length = data_length
        self.fbuf_length = fbuf_length if cmd == Cmd.READ_FBUF else None
        self.skipped = 0
        self.remainder = b""  # bytes that followed a complete reply
        self._sync = bytes((REPLY_SIGN, self.serial, self.cmd))
        self._buf = bytearray()
        self._done: Reply | None = None

    @property
    def header(self) -> bytes:
        """The 5-byte header of a successful reply without data (READ_FBUF's frame)."""
        return self._sync + b"\x00\x00"

    def feed(self, data: bytes) -> Reply | None:
        """Consume ``data``; return the reply once it is complete (then keep returning it)."""
        if self._done is not None:
            self.remainder += bytes(data)
            return self._done
        self._buf += data
        if not self._synced():
            return None
        status, length = self._buf[3], self._buf[4]
        if status not in _STATUSES:
            self._fail(f"unknown status 0x{status:02x}")
        if status == Status.OK and self.fbuf_length is not None:
            if length != 0:
                self._fail(f"READ_FBUF header with length byte {length}")
            end = 2 * HEADER_LEN + self.fbuf_length
            if len(self._buf) < end:
                return None
            if bytes(self._buf[end - HEADER_LEN:end]) != self.header:
                self._fail("READ_FBUF trailer does not match its header")
            return self._complete(bytes(self._buf[HEADER_LEN:end - HEADER_LEN]), end)
        if status == Status.OK and self.data_length is not None and length != self.data_length:
            self._fail(f"data length {length}, want {self.data_length}")
        end = HEADER_LEN + length
        if len(self._buf) < end:
            return None
        return self._complete(bytes(self._buf[HEADER_LEN:end]), end)

    def finish(self) -> Reply | None:
        """The line went quiet: accept a short READ_FBUF reply, if that is what arrived."""
        if self._done is not None:
            return self._done
        if self.fbuf_length is None or not self._synced() or self._buf[3] != Status.OK:
            return None
        if len(self._buf) > 2 * HEADER_LEN and bytes(self._buf[-HEADER_LEN:]) == self.header:
            return self._complete(bytes(self._buf[HEADER_LEN:-HEADER_LEN]), len(self._buf))
        return None

    def _synced(self) -> bool:
        """Drop bytes before the header; True once sign, serial, cmd, status, len are in."""
        index = self._buf.find(self._sync)
        if index < 0:
            keep = 0
            for n in (2, 1):  # a partial header at the end may complete with the next read
                if self._buf.endswith(self._sync[:n]):
                    keep = n
                    break
            drop = len(self._buf) - keep
            self.skipped += drop
            del self._buf[:drop]
            return False
        self.skipped += index
        del self._buf[:index]
        return len(self._buf) >= HEADER_LEN

    def _complete(self, data: bytes, end: int) -> Reply:
        self.remainder = bytes(self._buf[end:])
        self._done = Reply(self.serial, self.cmd, self._buf[3], data)
        self._buf.clear()
        return self._done

    def _fail(self, why: str) -> None:
        self._buf.clear()
        name = Cmd(self.cmd).name if self.cmd in {int(c) for c in Cmd} else f"0x{self.cmd:02x}"
        raise Vc0706ProtocolError(f"{name}: {why}")


# -- device side -----------------------------------------------------------------------------

def encode_reply(cmd: int, status: int = Status.OK, data: bytes = b"",
                 serial: int = DEFAULT_SERIAL) -> bytes:
    """Reply bytes ``76 serial cmd status len data``."""
    data = bytes(data)
    if len(data) > 0xFF:
        raise Vc0706ProtocolError(f"at most 255 data bytes, got {len(data)}")
    head = (REPLY_SIGN, _byte(serial, "serial"), _byte(cmd, "cmd"), _byte(status, "status"))
    return bytes(head) + bytes((len(data),)) + data


def encode_fbuf_reply(data: bytes, serial: int = DEFAULT_SERIAL) -> bytes:
    """READ_FBUF reply: header ``76 serial 32 00 00``, the image bytes, the header again."""
    header = encode_reply(Cmd.READ_FBUF, Status.OK, b"", serial)
    return header + bytes(data) + header


class ReadFbufArgs(NamedTuple):
    """Decoded arguments of READ_FBUF."""

    fbuf_type: int
    mode: int
    address: int
    length: int
    delay: int


def decode_read_fbuf_args(args: bytes) -> ReadFbufArgs:
    """Split the 12 argument bytes of READ_FBUF."""
    if len(args) != 12:
        raise Vc0706ProtocolError(f"READ_FBUF takes 12 argument bytes, got {len(args)}")
    return ReadFbufArgs(args[0], args[1], int.from_bytes(args[2:6], "big"),
                        int.from_bytes(args[6:10], "big"), int.from_bytes(args[10:12], "big"))


class DataArgs(NamedTuple):
    """Decoded arguments of READ_DATA (``data`` empty) or WRITE_DATA."""

    mem: int
    count: int
    address: int
    data: bytes


def decode_data_args(cmd: int, args: bytes) -> DataArgs:
    """Split the arguments of READ_DATA (4 bytes) or WRITE_DATA (4 + count bytes)."""
    if len(args) < 4:
        raise Vc0706ProtocolError(f"data command with {len(args)} argument bytes")
    mem, count, address = args[0], args[1], int.from_bytes(args[2:4], "big")
    if cmd == Cmd.READ_DATA:
        if len(args) != 4:
            raise Vc0706ProtocolError("READ_DATA takes 4 argument bytes")
        return DataArgs(mem, count, address, b"")
    if cmd != Cmd.WRITE_DATA:
        raise Vc0706ProtocolError(f"not a data command: {cmd!r}")
    if len(args) != 4 + count:
        raise Vc0706ProtocolError(f"WRITE_DATA of {count} bytes with {len(args) - 4} given")
    return DataArgs(mem, count, address, bytes(args[4:]))


class RequestParser:
    """Incremental camera-side parser of host requests.

    Bytes that cannot start a request (not 0x56) are discarded and counted in ``discarded``;
    a partial request is dropped when more than ``packet_timeout`` seconds pass between two
    bytes, so a stray 0x56 cannot swallow the next real request for long.
    """

    def __init__(self, packet_timeout: float = PACKET_TIMEOUT_S) -> None:
        self.packet_timeout = packet_timeout
        self.discarded = 0
        self._buf = bytearray()
        self._last: float | None = None

    def reset(self) -> None:
        """Forget any partial request."""
        self.discarded += len(self._buf)
        self._buf.clear()

    def feed(self, data: bytes, now: float) -> list[Request]:
        """Consume ``data`` received at ``now`` (s); return the requests it completes."""
        if self._buf and self._last is not None and now - self._last > self.packet_timeout:
            self.reset()
        self._last = now
        out: list[Request] = []
        for byte in bytes(data):
            if not self._buf and byte != REQUEST_SIGN:
                self.discarded += 1
                continue
            self._buf.append(byte)
            if len(self._buf) >= 4 and len(self._buf) == 4 + self._buf[3]:
                raw = bytes(self._buf)
                self._buf.clear()
                out.append(Request(raw[1], raw[2], raw[4:], raw))
        return out


# -- the picture: a JPEG check without a decoder library ---------------------------------------

class JpegError(Vc0706ProtocolError):
    """The picture is not a complete, consistent JPEG."""


def _huffman_table(seg: bytes, at: int) -> tuple[int, int, dict[str, int], int]:
    """One table of a DHT segment: (class, id, code bits -> symbol, next offset)."""
    if at + 17 > len(seg):
        raise JpegError("DHT segment truncated")
    tc, th = seg[at] >> 4, seg[at] & 15
    counts = seg[at + 1:at + 17]
    at += 17
    codes: dict[str, int] = {}
    code = 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            if at >= len(seg) or code >= 1 << length:
                raise JpegError("DHT table inconsistent")
            codes[format(code, f"0{length}b")] = seg[at]
            at += 1
            code += 1
        code <<= 1
    return tc, th, codes, at


class _Decoder:
    """Walks the Huffman-coded data of one restart interval, symbol by symbol."""

    def __init__(self, data: bytes) -> None:
        self.bits = bin(int.from_bytes(data, "big"))[2:].zfill(8 * len(data)) if data else ""
        self.pos = 0
        self.dc: dict[int, int] = {}  # DC predictor of each component

    def symbol(self, codes: dict[str, int]) -> int:
        bits, pos = self.bits, self.pos
        for length in range(1, 17):
            if pos + length > len(bits):
                break
            value = codes.get(bits[pos:pos + length])
            if value is not None:
                self.pos = pos + length
                return value
        raise JpegError("scan data does not decode (lost or changed bytes)")

    def skip(self, n: int) -> None:
        self.pos += n
        if self.pos > len(self.bits):
            raise JpegError("scan data ends early")

    def block(self, dc: dict[str, int], ac: dict[str, int], component: int) -> None:
        size = self.symbol(dc)
        if size > 11:
            raise JpegError("DC difference of more than 11 bits")
        diff = 0
        if size:
            diff = int(self.bits[self.pos:self.pos + size] or "0", 2)
            if diff < 1 << (size - 1):
                diff -= (1 << size) - 1
        self.skip(size)
        self.dc[component] = value = self.dc.get(component, 0) + diff
        if not -2048 <= value <= 2047:
            raise JpegError("DC coefficient out of range (scan data corrupt)")
        k = 1
        while k < 64:
            rs = self.symbol(ac)
            run, size = rs >> 4, rs & 15
            if size == 0:
                if run != 15:
                    return  # end of block
                k += 16
                continue
            k += run
            if k > 63:
                raise JpegError("coefficient index past 63")
            if size > 10:
                raise JpegError("AC coefficient of more than 10 bits")
            self.skip(size)
            k += 1

    def finish(self) -> None:
        rest = self.bits[self.pos:]
        if len(rest) >= 8 or rest.strip("1"):
            raise JpegError("bytes left over after the last block of a scan interval")


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def check_jpeg(data: bytes) -> tuple[int, int]:
    """Check a JPEG as far as the bytes allow and return its (width, height).

    SOI first, EOI last, every segment's length, and for a baseline (SOF0/SOF1) single-scan
    picture, as cameras make, the whole Huffman-coded scan: each restart interval must decode
    into exactly its number of blocks, with DC values in range, and end with padding only
    (the conditions libjpeg reports as "Corrupt JPEG data" fail here too). Huffman codes
    resynchronise, so a byte lost inside the scan is caught only sometimes (measured: from
    about 1 in 10 for noisy pictures to 2 in 3 for smooth ones; libjpeg itself notices no
    more): the transport (READ_FBUF framing) must catch lost bytes, this is the second line.
    Other kinds (progressive, several scans) are checked up to their first scan only.
    """
    data = bytes(data)
    if not data.startswith(b"\xff\xd8"):
        raise JpegError("no SOI marker (FF D8) at the start")
    if not data.endswith(b"\xff\xd9"):
        raise JpegError("no EOI marker (FF D9) at the end")
    pos, restart, baseline = 2, 0, False
    frame: tuple[int, int, dict[int, tuple[int, int]]] | None = None
    tables: dict[tuple[int, int], dict[str, int]] = {}
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise JpegError(f"no marker segment at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1  # fill byte
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        seg = data[pos + 4:pos + 2 + length]
        if length < 2 or len(seg) != length - 2:
            raise JpegError(f"segment FF {marker:02X} runs past the end")
        pos += 2 + length
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if len(seg) < 6 or len(seg) != 6 + 3 * seg[5]:
                raise JpegError("SOF segment inconsistent")
            height, width = int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big")
            comps = {seg[6 + 3 * i]: (seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15)
                     for i in range(seg[5])}
            if not width or not height or any(not h or not v for h, v in comps.values()):
                raise JpegError("SOF with a zero size or sampling factor")
            frame, baseline = (width, height, comps), marker in (0xC0, 0xC1)
        elif marker == 0xC4:
            at = 0
            while at < len(seg):
                tc, th, codes, at = _huffman_table(seg, at)
                tables[(tc, th)] = codes
        elif marker == 0xDD:
            restart = int.from_bytes(seg[:2], "big")
        elif marker == 0xDA:
            break
        elif marker == 0xD9:
            raise JpegError("EOI before any scan")
    if frame is None:
        raise JpegError("no frame header (SOF) before the scan")
    width, height, comps = frame
    if not baseline:
        return width, height
    if not seg or len(seg) != 1 + 2 * seg[0] + 3:
        raise JpegError("SOS segment inconsistent")
    scan = []
    for i in range(seg[0]):
        cid, sel = seg[1 + 2 * i], seg[2 + 2 * i]
        dc, ac = tables.get((0, sel >> 4)), tables.get((1, sel & 15))
        if cid not in comps or dc is None or ac is None:
            raise JpegError("scan names a component or table that is not defined")
        scan.append((comps[cid], dc, ac))
    hmax = max(h for h, _ in comps.values())
    vmax = max(v for _, v in comps.values())
    if len(scan) == 1:
        (h, v), dc, ac = scan[0]
        cols = _ceil(_ceil(width * h, hmax), 8)
        rows = _ceil(_ceil(height * v, vmax), 8)
        mcus, units = cols * rows, [(1, dc, ac, 0)]
    else:
        mcus = _ceil(width, 8 * hmax) * _ceil(height, 8 * vmax)
        units = [(h * v, dc, ac, i) for i, ((h, v), dc, ac) in enumerate(scan)]
    return _check_scan(data[pos:-2], mcus, restart, units, (width, height))


def _check_scan(body: bytes, mcus: int, restart: int,
                units: list[tuple[int, dict[str, int], dict[str, int], int]],
                size: tuple[int, int]) -> tuple[int, int]:
    parts = re.split(rb"\xff([\xd0-\xd7])", body)
    intervals, markers = parts[0::2], parts[1::2]
    per = restart or mcus
    if len(intervals) != _ceil(mcus, per):
        raise JpegError(f"{len(intervals)} restart intervals, the picture needs "
                        f"{_ceil(mcus, per)}")
    for i, marker in enumerate(markers):
        if marker[0] != 0xD0 + i % 8:
            raise JpegError("restart markers out of sequence")
    for i, interval in enumerate(intervals):
        if re.search(rb"\xff(?!\x00)", interval):
            raise JpegError("a marker inside the scan data")
        decoder = _Decoder(interval.replace(b"\xff\x00", b"\xff"))
        for _ in range(min(per, mcus - i * per)):
            for count, dc, ac, component in units:
                for _ in range(count):
                    decoder.block(dc, ac, component)
        decoder.finish()
    return size
