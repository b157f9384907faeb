"""Host side of a VC0706 serial JPEG camera (LinkSprite LS-Y201, Adafruit TTL camera).

Written on pyserial with our codec `protocols/vc0706.py` (the Adafruit driver targets
CircuitPython's ``busio``). Every request has its own deadline (a base ``timeout`` plus the
wire time of the request and of the expected reply at the current baud); a reply that times
out or has broken framing is retried. Garbage before a reply is skipped. A vanished port
raises :class:`LinkLost`; :meth:`Vc0706Client.reconnect` reopens it, probing 38400 baud too
since a camera that lost power comes back at its default speed.

The protocol has no checksum, so a picture is only published once it passes every check
there is: each READ_FBUF chunk must be framed exactly (``76 00 32 00 00``, exactly the bytes
asked, ``76 00 32 00 00``); a short chunk is read again, and only taken as short when the
camera sends the same short chunk twice (clones that answer with fewer bytes; their limit is
then used for the rest). The frame must have the announced length, SOI and EOI markers, a
Huffman-coded scan that decodes into exactly the picture's blocks (``check_jpeg``), and
OpenCV must decode it at the size the camera says; otherwise the frozen frame is read again
(``frame_retries``) and then the capture fails (never a corrupt picture). A byte changed in
place inside the image can still pass: nothing on the wire can tell.

Capture instant: the frame is frozen when the camera executes FBUF_CTRL stop; its reply's
arrival (less its wire time) is kept as the picture's monotonic capture time. The camera's
buffer holds the latest sensor frame, so the exposure is up to one sensor frame (~1/30 s)
older.
"""

from __future__ import annotations

import os
import termios
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
import serial

from ilrs_robots.protocols.vc0706 import (
    BAUD_CODES,
    BOOT_END,
    DEFAULT_BAUD,
    DEFAULT_SERIAL,
    HEADER_LEN,
    SIZES,
    Cmd,
    FbufCtrl,
    JpegError,
    Reply,
    ReplyParser,
    Vc0706ProtocolError,
    check_jpeg,
    decode_fbuf_len,
    decode_version,
    encode_fbuf_ctrl,
    encode_get_fbuf_len,
    encode_get_size,
    encode_read_fbuf,
    encode_reset,
    encode_set_baud,
    encode_set_compression,
    encode_set_size,
    encode_version,
)

BITS_PER_BYTE = 10
JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"


class Vc0706Error(Exception):
    """Base class of the camera driver's errors."""


class LinkLost(Vc0706Error, ConnectionError):
    """The serial port is gone (unplugged, closed by the device, or not there)."""


class NoReply(Vc0706Error, TimeoutError):
    """The camera did not answer a request correctly after every retry."""


class CameraError(Vc0706Error):
    """The camera answered with a non-zero status."""

    def __init__(self, what: str, status: int) -> None:
        super().__init__(f"VC0706 {what}: status {status}")
        self.status = status


class BadFrame(Vc0706Error):
    """The frame read back is not a complete JPEG of the announced length."""


@dataclass
class Counters:
    """Transaction counters, kept since the client was made."""

    requests: int = 0  # request attempts sent
    frames: int = 0  # valid JPEGs captured
    chunk_retries: int = 0  # READ_FBUF chunks sent again
    retries: int = 0  # all requests sent again (chunks included)
    timeouts: int = 0
    corrupt_replies: int = 0  # replies with broken framing
    short_chunks: int = 0  # READ_FBUF replies with fewer bytes than asked
    misaligned_chunks: int = 0  # short chunks that were not the camera's limit (bytes lost)
    garbage_bytes: int = 0  # bytes skipped before a reply header
    bad_frames: int = 0  # frames that failed validation (read again)
    reconnects: int = 0


def wire_time(nbytes: int, baud: int) -> float:
    """Seconds to send ``nbytes`` at ``baud`` (start + 8 data + stop bits)."""
    return nbytes * BITS_PER_BYTE / baud


@dataclass
class Picture:
    """A checked picture: the camera's JPEG, its decoded BGR pixels, its monotonic capture
    instant (s)."""

    jpeg: bytes
    image: np.ndarray
    captured: float


def validate_jpeg(data: bytes, length: int | None = None) -> None:
    """Raise BadFrame unless ``data`` starts with FF D8, ends with FF D9 and has ``length``."""
    if length is not None and len(data) != length:
        raise BadFrame(f"frame of {len(data)} bytes, camera announced {length}")
    if not data.startswith(JPEG_START):
        raise BadFrame("frame does not start with the JPEG SOI marker FF D8")
    if not data.endswith(JPEG_END):
        raise BadFrame("frame does not end with the JPEG EOI marker FF D9")


def decode_picture(data: bytes, length: int | None = None,
                   size: tuple[int, int] | None = None) -> np.ndarray:
    """The BGR pixels of a JPEG that passes every check (markers, length, scan, OpenCV
    decoding, and `size` = (width, height) if given); BadFrame says which failed."""
    validate_jpeg(data, length)
    try:
        width, height = check_jpeg(data)
    except JpegError as exc:
        raise BadFrame(f"corrupt JPEG: {exc}") from exc
    if size is not None and (width, height) != tuple(size):
        raise BadFrame(f"picture is {width}x{height}, the camera is set to {size[0]}x{size[1]}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] != (height, width):
        raise BadFrame("OpenCV cannot decode the picture")
    return image


class Vc0706Client:
    """A VC0706 camera on one serial port. Thread-safe: one transaction at a time.

    ``timeout`` is the base allowance per request (the wire time of request and reply is
    added); ``retries`` is how many times a timed-out or corrupted request is sent again;
    ``chunk_size`` is the number of image bytes asked per READ_FBUF (a multiple of 8, as the
    manuals recommend); ``gap`` is the quiet time after which a short READ_FBUF reply is taken
    as complete.
    """

    def __init__(self, port: str, baud: int = DEFAULT_BAUD, timeout: float = 0.2, *,
                 retries: int = 3, chunk_size: int = 1024, gap: float = 0.02,
                 read_delay: int = 10, boot_timeout: float = 3.0, frame_retries: int = 2,
                 serial_number: int = DEFAULT_SERIAL) -> None:
        if baud not in BAUD_CODES:
            raise ValueError(f"baud must be one of {sorted(BAUD_CODES)}, got {baud}")
        if chunk_size <= 0 or chunk_size % 8 or chunk_size > 8192:
            raise ValueError(f"chunk_size must be a multiple of 8 in 8..8192, got {chunk_size}")
        self.port = port
        self.baud = baud
        self.timeout = timeout
        self.retries = retries
        self.chunk_size = chunk_size
        self.gap = gap
        self.read_delay = read_delay
        self.boot_timeout = boot_timeout
        self.frame_retries = frame_retries
        self.device_chunk = 0  # most bytes the camera sends per READ_FBUF (0: as asked)
        self.serial_number = serial_number
        self.counters = Counters()
        self.last_error = ""
        self._ser: serial.Serial | None = None
        self._lock = threading.RLock()
        self._ever_opened = False

    # -- connection -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """True while the port is open."""
        return self._ser is not None and self._ser.is_open

    def open(self) -> None:
        """Open the port at ``baud``; raise LinkLost if it cannot be opened."""
        with self._lock:
            self._open_locked()

    def close(self) -> None:
        """Close the port (idempotent)."""
        with self._lock:
            self._drop_locked()

    def __enter__(self) -> Vc0706Client:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reconnect(self) -> str:
        """Reopen the port and find the camera at ``baud`` or at 38400; return its version."""
        with self._lock:
            self._drop_locked()
            last: Exception | None = None
            for baud in dict.fromkeys((self.baud, DEFAULT_BAUD)):
                self.baud = baud
                self._open_locked()
                try:
                    version = self._version_locked()
                except NoReply as exc:
                    last = exc
                    self._drop_locked()
                    continue
                self.counters.reconnects += 1
                return version
            raise NoReply(f"no camera answers on {self.port}") from last

    def _open_locked(self) -> None:
        self._drop_locked()
        if not os.path.exists(self.port):
            raise LinkLost(f"serial port {self.port} does not exist")
        try:
            self._ser = serial.Serial(self.port, self.baud, timeout=self.gap,
                                      write_timeout=1.0)
        except (serial.SerialException, OSError, termios.error) as exc:
            raise LinkLost(f"cannot open serial port {self.port}: {exc}") from exc
        self._ever_opened = True

    def _drop_locked(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except Exception:  # noqa: BLE001 - closing a dead port may fail any way it likes
                pass
        self._ser = None

    def _reopen_locked(self, baud: int) -> None:
        self.baud = baud
        self._open_locked()

    # -- transactions -----------------------------------------------------------------------
    def _lost(self, exc: BaseException) -> LinkLost:
        self._drop_locked()
        self.last_error = str(exc)
        return LinkLost(f"serial port {self.port} failed: {exc}")

    def _port(self) -> serial.Serial:
        ser = self._ser
        if ser is None or not ser.is_open:
            raise LinkLost(f"serial port {self.port} is not open")
        return ser

    def _attempt(self, request: bytes, parser: ReplyParser, reply_bytes: int) -> Reply:
        """Send one request and read its reply; NoReply on timeout (parse errors pass up)."""
        ser = self._port()
        deadline = (time.monotonic() + self.timeout
                    + wire_time(len(request) + reply_bytes, self.baud) * 1.25)
        try:
            ser.reset_input_buffer()
            ser.write(request)
            self.counters.requests += 1
            while True:
                data = ser.read(max(1, ser.in_waiting))
                if data:
                    try:
                        reply = parser.feed(data)
                    finally:
                        self.counters.garbage_bytes += parser.skipped
                        parser.skipped = 0
                    if reply is not None:
                        return reply
                    continue
                reply = parser.finish()
                if reply is not None:
                    return reply
                if time.monotonic() > deadline:
                    if not os.path.exists(self.port):
                        raise LinkLost(f"serial port {self.port} vanished")
                    raise NoReply(f"no reply to 0x{request[2]:02x} in time")
        except Vc0706Error:
            raise  # NoReply and LinkLost are OSErrors too
        except (serial.SerialException, OSError, termios.error) as exc:
            raise self._lost(exc) from exc

    def _drain(self) -> None:
        """Read and drop whatever still arrives until the line is quiet for ``gap``."""
        ser = self._port()
        try:
            while ser.read(max(1, ser.in_waiting)):
                pass
        except (serial.SerialException, OSError, termios.error) as exc:
            raise self._lost(exc) from exc

    def _request(self, what: str, request: bytes, cmd: int, *, data_length: int | None = None,
                 fbuf_length: int | None = None, check: bool = True) -> Reply:
        """One request with retries; returns the reply (raises CameraError on bad status)."""
        reply_bytes = HEADER_LEN + (data_length or 0)
        if fbuf_length is not None:
            reply_bytes = 2 * HEADER_LEN + fbuf_length
        failure: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.counters.retries += 1
                if cmd == Cmd.READ_FBUF:
                    self.counters.chunk_retries += 1
            parser = ReplyParser(cmd, self.serial_number, data_length, fbuf_length)
            try:
                reply = self._attempt(request, parser, reply_bytes)
            except NoReply as exc:
                self.counters.timeouts += 1
                failure = exc
                continue
            except Vc0706ProtocolError as exc:
                self.counters.corrupt_replies += 1
                failure = exc
                self._drain()
                continue
            if check and not reply.ok:
                raise CameraError(what, reply.status)
            return reply
        self.last_error = f"{what}: {failure}"
        raise NoReply(f"VC0706 did not answer {what} after {self.retries + 1} attempts: "
                      f"{failure}")

    # -- commands ---------------------------------------------------------------------------
    def version(self) -> str:
        """Firmware version text (GEN_VERSION), e.g. ``VC0703 1.00``."""
        with self._lock:
            return self._version_locked()

    def _version_locked(self) -> str:
        reply = self._request("GEN_VERSION", encode_version(self.serial_number),
                              Cmd.GEN_VERSION)
        return decode_version(reply)

    def set_size(self, width: int, height: int) -> None:
        """Select the image size: 640x480, 320x240 or 160x120."""
        request = encode_set_size(width, height, self.serial_number)
        with self._lock:
            self._request("set size", request, Cmd.WRITE_DATA, data_length=0)

    def get_size(self) -> tuple[int, int]:
        """The selected image size (width, height)."""
        with self._lock:
            reply = self._request("get size", encode_get_size(self.serial_number),
                                  Cmd.READ_DATA, data_length=1)
        try:
            return SIZES[reply.data[0]]
        except KeyError:
            raise Vc0706Error(f"unknown image size code 0x{reply.data[0]:02x}") from None

    def set_compression(self, ratio: int) -> None:
        """JPEG compression ratio, 0..255 (higher: smaller files); the camera's default 0x36."""
        request = encode_set_compression(ratio, self.serial_number)
        with self._lock:
            self._request("set compression", request, Cmd.WRITE_DATA, data_length=0)

    def set_baud(self, baud: int, verify: bool = True) -> None:
        """Switch the camera's UART to ``baud`` and reopen the port at that speed."""
        request = encode_set_baud(baud, self.serial_number)
        with self._lock:
            self._request("set baud", request, Cmd.SET_PORT, data_length=0)
            self._reopen_locked(baud)
            if verify:
                self._version_locked()

    def reset(self) -> None:
        """SYSTEM_RESET: reopen at 38400 baud and wait for the boot text (or a version)."""
        with self._lock:
            self._request("reset", encode_reset(self.serial_number), Cmd.SYSTEM_RESET,
                          data_length=0)
            self._reopen_locked(DEFAULT_BAUD)
            ser = self._port()
            text = bytearray()
            deadline = time.monotonic() + self.boot_timeout
            try:
                while BOOT_END not in text and time.monotonic() < deadline:
                    text += ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError, termios.error) as exc:
                raise self._lost(exc) from exc
            if BOOT_END not in text:
                self._version_locked()  # boot text lost: the camera must still answer

    def capture(self) -> bytes:
        """Freeze a frame, read it in chunks, resume; return the checked JPEG bytes."""
        return self.capture_picture().jpeg

    def capture_picture(self, size: tuple[int, int] | None = None) -> Picture:
        """Freeze a frame, read and check it (see the module docstring), resume.

        `size` (width, height): the size the picture must have. BadFrame if no clean copy
        of the frame could be read.
        """
        with self._lock:
            self._request("stop frame", encode_fbuf_ctrl(FbufCtrl.STOP_CURRENT,
                                                         self.serial_number),
                          Cmd.FBUF_CTRL, data_length=0)
            captured = time.monotonic() - wire_time(HEADER_LEN, self.baud)
            try:
                data, image = self._read_validated(size)
            except LinkLost:
                raise
            except Vc0706Error:
                try:
                    self._resume_locked()
                except Vc0706Error:
                    pass  # the first error says more
                raise
            self._resume_locked()
            self.counters.frames += 1
            return Picture(data, image, captured)

    def _resume_locked(self) -> None:
        self._request("resume frame", encode_fbuf_ctrl(FbufCtrl.RESUME, self.serial_number),
                      Cmd.FBUF_CTRL, data_length=0)

    def _read_validated(self, size: tuple[int, int] | None) -> tuple[bytes, np.ndarray]:
        length = decode_fbuf_len(self._request(
            "frame length", encode_get_fbuf_len(0, self.serial_number),
            Cmd.GET_FBUF_LEN, data_length=4))
        if length == 0:
            raise BadFrame("camera reports an empty frame buffer")
        for attempt in range(self.frame_retries + 1):
            data = self._read_frame(length)
            try:
                image = decode_picture(data, length, size)
            except BadFrame as exc:
                self.counters.bad_frames += 1
                self.last_error = str(exc)
                if attempt == self.frame_retries:
                    raise
                continue
            return data, image
        raise AssertionError("unreachable")

    def _read_frame(self, length: int) -> bytes:
        out = bytearray()
        while len(out) < length:
            want = min(self.device_chunk or self.chunk_size, self.chunk_size, length - len(out))
            out += self._read_chunk(len(out), want)
        return bytes(out)

    def _read_chunk(self, address: int, want: int) -> bytes:
        """`want` bytes at `address`, exactly framed; a short chunk is read again and kept
        only if the camera sends the very same short chunk twice (its own limit)."""
        request = encode_read_fbuf(address, want, self.read_delay, 0,
                                   serial=self.serial_number)
        previous: bytes | None = None
        for attempt in range(self.retries + 2):
            if attempt:
                self.counters.retries += 1
                self.counters.chunk_retries += 1
            reply = self._request("READ_FBUF", request, Cmd.READ_FBUF, fbuf_length=want)
            data = reply.data
            if len(data) == want:
                if previous is not None:
                    self.counters.misaligned_chunks += 1  # the short one had lost bytes
                return data
            if not data:
                raise BadFrame("READ_FBUF returned no data")
            self.counters.short_chunks += 1
            if data == previous:
                self.device_chunk = len(data)
                return data
            if previous is not None:
                self.counters.misaligned_chunks += 1
            previous = data
        raise BadFrame(f"READ_FBUF at {address}: no whole chunk of {want} bytes after "
                       f"{self.retries + 2} reads")
