"""Firmware emulator of a VC0706 serial JPEG camera (LinkSprite LS-Y201 and kin), on a pty.

Frames come from ``frame_source`` (a callable returning a BGR image; the simulator plugs its
renderer in; the default draws a test pattern with a frame counter), are resized to the
selected image size and JPEG-encoded by OpenCV when FBUF_CTRL stops (freezes) a frame.

What is modelled:

* Replies are paced at the camera's current baud (10 bits per byte, see ``PtyDevice``).
* Baud: SET_PORT switches the camera's UART after its reply. A pty carries bytes whatever
  the speed, so a baud mismatch is modelled from the line settings the host applied to the
  pty (``termios`` speed of the slave, shared with the host's open port): while the host's
  speed differs from ``current_baud``, every byte the camera receives is lost (framing
  errors) and every byte it sends arrives as garbage. The host must reopen at the new baud.
* SYSTEM_RESET: reply, then ``boot_delay`` s deaf while booting, then the camera is back at
  38400 baud and prints its boot text ending in ``Init end``. The image size lives in EEPROM
  and survives; the compression register and the frozen frame do not.
  :meth:`reappear` after :meth:`vanish` is a power cycle (same effect, without the reply).
* ``short_reads`` (bytes, 0 = off): READ_FBUF answers with at most that many image bytes,
  framed as usual, as some clones do; the host must continue from where the data stopped.
* Faults: :meth:`drop_next` (replies not sent, requests still executed), :meth:`corrupt_next`
  (a framing byte of the reply flipped: the status byte, or READ_FBUF's trailer; image bytes
  are never corrupted since no host could notice), :meth:`noise_next` (random bytes before a
  reply), :meth:`babble` (random bytes now), :meth:`vanish` / :meth:`reappear`, and
  :meth:`lose_bytes` (a noisy UART: with a given probability, one byte anywhere in a reply,
  READ_FBUF's by default, never reaches the host; ``--lose-byte-probability`` standalone).

Every frame the camera froze is kept in ``held_frames`` (the last 256), so a test can check
that what a host published is exactly a picture the camera held.

Deviations from a real module: a new image size applies at once (some modules need a reset);
READ_FBUF before any frame was stopped answers status 4 (cannot execute); reading past the end
of the frame pads with zeros; the READ_FBUF delay field is honoured only as one pause.

Run standalone::

    python -m ilrs_robots.sim.devices.vc0706_emulator --link /tmp/x/camera
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import termios
import threading
import time
from collections import deque
from collections.abc import Callable

import cv2
import numpy as np

from ilrs_robots.protocols.vc0706 import (
    BAUDS,
    BOOT_END,
    COMPRESSION_ADDR,
    DEFAULT_BAUD,
    DEFAULT_COMPRESSION,
    DEFAULT_SERIAL,
    DEFAULT_VERSION,
    IMAGE_SIZE_ADDR,
    PACKET_TIMEOUT_S,
    PORT_UART,
    SIZE_CODES,
    SIZES,
    Cmd,
    FbufCtrl,
    MemType,
    Request,
    RequestParser,
    Status,
    Vc0706ProtocolError,
    decode_data_args,
    decode_read_fbuf_args,
    encode_fbuf_reply,
    encode_reply,
)
from ilrs_robots.sim.devices.pty_device import PtyDevice, serve_until_signalled

FrameSource = Callable[[], np.ndarray]

# termios speed constant -> baud, for reading the host's line settings off the pty
_TERMIOS_BAUDS = {getattr(termios, f"B{b}"): b for b in
                  (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
                  if hasattr(termios, f"B{b}")}


def boot_text(version: str = DEFAULT_VERSION) -> bytes:
    """What the camera prints after a reset (the last line is ``Init end``)."""
    return (f"{version}\r\nCtrl infr exist\r\nUser-defined sensor\r\n525\r\n".encode("latin-1")
            + BOOT_END)


def compression_to_quality(ratio: int) -> int:
    """JPEG quality (OpenCV, 5..100) standing in for the compression register (0..255)."""
    return max(5, min(100, round(100 - ratio * 95 / 255)))


class TestPattern:
    """Default frame source: colour gradients, a moving bar and the frame number."""

    __test__ = False  # not a pytest class

    def __init__(self, width: int = 640, height: int = 480) -> None:
        self.width, self.height = width, height
        self.count = 0
        x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
        y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
        self._base = np.dstack([np.broadcast_to(x, (height, width)),
                                np.broadcast_to(y, (height, width)),
                                np.broadcast_to((x + y) / 2, (height, width))]).astype(np.uint8)

    def __call__(self) -> np.ndarray:
        """The next frame (BGR, uint8)."""
        self.count += 1
        img = self._base.copy()
        w, h = self.width, self.height
        bar = (self.count * 16) % w
        cv2.rectangle(img, (bar, 0), (min(w - 1, bar + w // 16), h - 1), (255, 255, 255), -1)
        cv2.circle(img, (w // 2, h // 2), h // 4, (0, 0, 0), max(1, h // 60))
        cv2.putText(img, f"frame {self.count}", (w // 20, h // 6), cv2.FONT_HERSHEY_SIMPLEX,
                    h / 240, (0, 0, 0), max(1, h // 120), cv2.LINE_AA)
        return img


class Vc0706Camera(PtyDevice):
    """An emulated VC0706 camera served on a pty at ``link`` (see the module docstring).

    Counters: ``requests_served``, ``requests_ignored`` (other serial numbers),
    ``unsupported`` (unknown commands), ``bytes_garbled`` (lost to a baud mismatch, both ways),
    ``replies_dropped``, ``replies_corrupted``, ``short_replies``, ``frames_encoded``,
    ``bytes_lost``, ``resets``.
    """

    def __init__(self, link: str | os.PathLike[str], baud: int = DEFAULT_BAUD, *,
                 frame_source: FrameSource | None = None, size: tuple[int, int] = (640, 480),
                 compression: int = DEFAULT_COMPRESSION, serial: int = DEFAULT_SERIAL,
                 version: str = DEFAULT_VERSION, short_reads: int = 0,
                 boot_delay: float = 0.05, check_host_baud: bool = True,
                 packet_timeout: float = PACKET_TIMEOUT_S, seed: int | None = None) -> None:
        if baud not in BAUDS.values():
            raise ValueError(f"baud must be one of {sorted(BAUDS.values())}, got {baud}")
        if tuple(size) not in SIZE_CODES:
            raise ValueError(f"size must be one of {list(SIZE_CODES)}, got {size}")
        if not 0 <= compression <= 0xFF:
            raise ValueError(f"compression must be 0..255, got {compression}")
        if len(version.encode("latin-1")) > 0xFF:
            raise ValueError("version string too long")
        super().__init__(link, baud)
        self.frame_source: FrameSource = frame_source or TestPattern()
        self.serial = serial
        self.version = version
        self.short_reads = max(0, int(short_reads))
        self.boot_delay = boot_delay
        self.check_host_baud = check_host_baud
        self.lock = threading.RLock()
        self._parser = RequestParser(packet_timeout)
        self._rng = random.Random(seed)
        # memory: (MemType, address) -> byte; EEPROM survives resets, registers do not
        self._memory: dict[tuple[int, int], int] = {
            (MemType.I2C_EEPROM, IMAGE_SIZE_ADDR): SIZE_CODES[tuple(size)],
        }
        self._default_compression = compression
        self._memory[(MemType.CHIP_REGISTER, COMPRESSION_ADDR)] = compression
        self._frozen: bytes | None = None
        self._booting_until = 0.0
        self._timers: list[threading.Timer] = []
        self._drop, self._drop_cmd = 0, None
        self._corrupt, self._corrupt_cmd = 0, None
        self._noise, self._noise_bytes, self._noise_cmd = 0, 0, None
        self._loss, self._loss_cmd = 0.0, None
        self.held_frames: deque[bytes] = deque(maxlen=256)
        self.bytes_lost = 0
        self.requests_served = 0
        self.requests_ignored = 0
        self.unsupported = 0
        self.bytes_garbled = 0
        self.replies_dropped = 0
        self.replies_corrupted = 0
        self.short_replies = 0
        self.frames_encoded = 0
        self.resets = 0

    # -- observables -------------------------------------------------------------------------
    @property
    def current_baud(self) -> int:
        """The camera's UART speed now (the host must talk at this speed)."""
        return int(self.baud or DEFAULT_BAUD)

    @property
    def size(self) -> tuple[int, int]:
        """Selected image size (width, height)."""
        with self.lock:
            return SIZES.get(self._memory[(MemType.I2C_EEPROM, IMAGE_SIZE_ADDR)], (640, 480))

    @property
    def compression(self) -> int:
        """Compression register (0..255)."""
        with self.lock:
            return self._memory[(MemType.CHIP_REGISTER, COMPRESSION_ADDR)]

    @property
    def frozen_frame(self) -> bytes | None:
        """The JPEG in the frame buffer while a frame is stopped, else None."""
        with self.lock:
            return self._frozen

    def host_baud(self) -> int | None:
        """The speed the host set on its end of the pty (None if unknown or vanished)."""
        with self._lock:
            slave = self._slave
            if slave is None:
                return None
            try:
                speed = termios.tcgetattr(slave)[4]
            except termios.error:
                return None
        return _TERMIOS_BAUDS.get(speed)

    def _line_ok(self) -> bool:
        return not self.check_host_baud or self.host_baud() == self.current_baud

    # -- fault injection ---------------------------------------------------------------------
    def drop_next(self, n: int, cmd: int | None = None) -> None:
        """Do not send the next ``n`` replies (to ``cmd`` only, if given); still execute."""
        with self.lock:
            self._drop, self._drop_cmd = max(0, int(n)), cmd

    def corrupt_next(self, n: int, cmd: int | None = None) -> None:
        """Flip a framing byte in each of the next ``n`` replies (to ``cmd`` only, if given)."""
        with self.lock:
            self._corrupt, self._corrupt_cmd = max(0, int(n)), cmd

    def noise_next(self, n: int, nbytes: int = 16, cmd: int | None = None) -> None:
        """Send ``nbytes`` random bytes before each of the next ``n`` replies."""
        with self.lock:
            self._noise, self._noise_bytes, self._noise_cmd = max(0, int(n)), nbytes, cmd

    def lose_bytes(self, probability: float, cmd: int | None = Cmd.READ_FBUF) -> None:
        """From now on, drop one random byte of a reply (to ``cmd``; None: any) with this
        probability, as a noisy UART loses a byte; 0 turns it off."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in 0..1, got {probability}")
        with self.lock:
            self._loss, self._loss_cmd = float(probability), cmd

    def babble(self, nbytes: int) -> None:
        """Send ``nbytes`` random bytes to the host now."""
        self._send(self._rng.randbytes(nbytes))

    def power_cycle(self) -> None:
        """Reboot without a reply: back to 38400 baud, frame buffer and registers cleared."""
        with self.lock:
            self.baud = DEFAULT_BAUD
            self._frozen = None
            self._memory[(MemType.CHIP_REGISTER, COMPRESSION_ADDR)] = self._default_compression
            self._parser.reset()

    def reappear(self) -> None:
        """A fresh pty under the same link; the camera was power-cycled meanwhile."""
        self.power_cycle()
        super().reappear()

    def stop(self) -> None:
        """Stop the emulator (cancels a pending boot message)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        super().stop()

    # -- firmware loop -----------------------------------------------------------------------
    def on_bytes(self, data: bytes, now: float) -> None:
        """Parse requests and answer them, like the firmware."""
        with self.lock:
            if now < self._booting_until:
                return  # deaf while booting
        if not self._line_ok():
            with self.lock:
                self.bytes_garbled += len(data)
                self._parser.reset()
            return
        for request in self._parser.feed(data, now):
            self._serve(request)

    def _send(self, data: bytes) -> None:
        if data and not self._line_ok():
            with self.lock:
                self.bytes_garbled += len(data)
            data = self._rng.randbytes(len(data))
        self.write(data)

    def _serve(self, request: Request) -> None:
        with self.lock:
            if request.serial != self.serial:
                self.requests_ignored += 1
                return
            self.requests_served += 1
            try:
                reply, after = self._handle(request)
            except Vc0706ProtocolError:
                reply, after = encode_reply(request.cmd, Status.LENGTH_ERROR, b"",
                                            self.serial), None
            cmd = request.cmd
            if self._drop > 0 and self._drop_cmd in (None, cmd):
                self._drop -= 1
                self.replies_dropped += 1
                reply = b""
            elif self._corrupt > 0 and self._corrupt_cmd in (None, cmd):
                self._corrupt -= 1
                self.replies_corrupted += 1
                reply = bytearray(reply)
                index = len(reply) - 1 if cmd == Cmd.READ_FBUF and len(reply) > 5 else 3
                reply[index] ^= 0xA5
                reply = bytes(reply)
            if reply and self._loss and self._loss_cmd in (None, cmd) \
                    and self._rng.random() < self._loss:
                index = self._rng.randrange(len(reply))
                reply = reply[:index] + reply[index + 1:]
                self.bytes_lost += 1
            if reply and self._noise > 0 and self._noise_cmd in (None, cmd):
                self._noise -= 1
                noise = self._rng.randbytes(self._noise_bytes).replace(b"\x76", b"\x77")
                reply = noise + reply
        if request.cmd == Cmd.READ_FBUF and reply:
            time.sleep(decode_read_fbuf_args(request.args).delay * 1e-5)
        self._send(reply)
        if after is not None:
            after()

    def _handle(self, request: Request) -> tuple[bytes, Callable[[], None] | None]:
        """Execute a request (lock held); return the reply and an action to run after it."""
        cmd, args = request.cmd, request.args

        def reply(status: int = Status.OK, data: bytes = b"") -> bytes:
            return encode_reply(cmd, status, data, self.serial)

        if cmd == Cmd.GEN_VERSION:
            if args:
                return reply(Status.LENGTH_ERROR), None
            return reply(data=self.version.encode("latin-1")), None
        if cmd == Cmd.SET_PORT:
            if len(args) != 3:
                return reply(Status.LENGTH_ERROR), None
            new = BAUDS.get(int.from_bytes(args[1:3], "big"))
            if args[0] != PORT_UART or new is None:
                return reply(Status.FORMAT_ERROR), None
            return reply(), lambda: self._set_baud(new)
        if cmd == Cmd.SYSTEM_RESET:
            return reply(), self._reset
        if cmd in (Cmd.READ_DATA, Cmd.WRITE_DATA):
            return self._data(cmd, args, reply), None
        if cmd == Cmd.FBUF_CTRL:
            if len(args) != 1:
                return reply(Status.LENGTH_ERROR), None
            if args[0] == FbufCtrl.RESUME:
                self._frozen = None
            elif args[0] == FbufCtrl.STOP_CURRENT:
                if self._frozen is None:
                    self._frozen = self._encode_frame()
            elif args[0] in (FbufCtrl.STOP_NEXT, FbufCtrl.STEP):
                self._frozen = self._encode_frame()
            else:
                return reply(Status.FORMAT_ERROR), None
            return reply(), None
        if cmd == Cmd.GET_FBUF_LEN:
            if len(args) != 1:
                return reply(Status.LENGTH_ERROR), None
            if args[0] not in (0, 1):
                return reply(Status.FORMAT_ERROR), None
            length = len(self._frozen) if self._frozen is not None else 0
            return reply(data=length.to_bytes(4, "big")), None
        if cmd == Cmd.READ_FBUF:
            fb = decode_read_fbuf_args(args)
            if self._frozen is None:
                return reply(Status.CANNOT_EXECUTE), None
            if fb.length == 0:
                return reply(Status.FORMAT_ERROR), None
            length = fb.length
            if self.short_reads and length > self.short_reads:
                length = self.short_reads
                self.short_replies += 1
            data = self._frozen[fb.address:fb.address + length]
            return encode_fbuf_reply(data.ljust(length, b"\0"), self.serial), None
        self.unsupported += 1
        return reply(Status.NOT_RECEIVED), None

    def _data(self, cmd: int, args: bytes, reply: Callable[..., bytes]) -> bytes:
        try:
            da = decode_data_args(cmd, args)
        except Vc0706ProtocolError:
            return reply(Status.LENGTH_ERROR)
        if da.mem not in {int(m) for m in MemType} or not 1 <= da.count <= 16:
            return reply(Status.FORMAT_ERROR)
        if cmd == Cmd.READ_DATA:
            data = bytes(self._memory.get((da.mem, (da.address + i) & 0xFFFF), 0)
                         for i in range(da.count))
            return reply(data=data)
        if (da.mem, da.address) == (MemType.I2C_EEPROM, IMAGE_SIZE_ADDR) \
                and da.data[0] not in SIZES:
            return reply(Status.FORMAT_ERROR)
        for i, value in enumerate(da.data):
            self._memory[(da.mem, (da.address + i) & 0xFFFF)] = value
        return reply()

    def _encode_frame(self) -> bytes:
        """Grab a frame from the source and JPEG-encode it at the selected size (lock held)."""
        width, height = self.size
        img = np.asarray(self.frame_source())
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        if img.shape[:2] != (height, width):
            img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        quality = compression_to_quality(self.compression)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("cv2.imencode failed")
        self.frames_encoded += 1
        data = buf.tobytes()
        self.held_frames.append(data)
        return data

    def _set_baud(self, baud: int) -> None:
        with self.lock:
            self.baud = baud

    def _reset(self) -> None:
        """After the reset reply: deaf for ``boot_delay``, then 38400 baud and the boot text."""
        with self.lock:
            self.resets += 1
            self._booting_until = time.monotonic() + self.boot_delay
        self.power_cycle()
        text = boot_text(self.version)

        def done() -> None:
            self._send(text)

        timer = threading.Timer(self.boot_delay, done)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()


def main(argv: list[str] | None = None) -> int:
    """Serve an emulated VC0706 camera until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link", required=True, help="symlink path to publish the pty under")
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                        help="initial baud (the camera boots at 38400)")
    parser.add_argument("--size", default="640x480", help="640x480, 320x240 or 160x120")
    parser.add_argument("--compression", type=int, default=DEFAULT_COMPRESSION,
                        help="compression register, 0..255 (higher: smaller JPEGs)")
    parser.add_argument("--short-reads", type=int, default=0,
                        help="answer READ_FBUF with at most this many bytes (0: off)")
    parser.add_argument("--lose-byte-probability", type=float, default=0.0,
                        help="lose one byte of a READ_FBUF reply with this probability")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error("--size must look like 640x480")
    try:
        camera = Vc0706Camera(args.link, args.baud, size=(width, height),
                              compression=args.compression, short_reads=args.short_reads)
        camera.lose_bytes(args.lose_byte_probability)
    except ValueError as exc:
        parser.error(str(exc))
    return serve_until_signalled(camera)


if __name__ == "__main__":
    sys.exit(main())
