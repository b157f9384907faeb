"""Serve an emulated serial device on a pseudo-terminal (Linux).

The device owns the pty master and keeps the slave open itself, so a client closing the port
never makes the master see EIO. The slave is published under a stable symlink chosen by the
caller. A daemon thread reads the master and hands bytes to :meth:`PtyDevice.on_bytes`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
import tty
from pathlib import Path

from ilrs_robots.core.interrupts import ignore_sigint

_log = logging.getLogger(__name__)

BITS_PER_BYTE = 10  # start + 8 data + stop
SLEEP_OVERSHOOT = 0.0002  # s: time.sleep wakes up late by about this much on Linux


def _sleep_until(deadline: float) -> None:
    """Sleep to within a few microseconds of `deadline` (monotonic): a plain sleep wakes up
    ~0.1 ms late, which per reply adds up to a slower line than the baud rate gives."""
    remaining = deadline - time.monotonic()
    if remaining > SLEEP_OVERSHOOT:
        time.sleep(remaining - SLEEP_OVERSHOOT)
    while time.monotonic() < deadline:
        time.sleep(0)  # yields the GIL while it waits out the last fraction


class PtyDevice:
    """A device served on a pty under the symlink ``link``.

    ``baud`` (optional) paces replies so that request and reply take their wire time
    (10 bits per byte): a reply is released no earlier than the moment the request would have
    finished arriving plus the reply's own transmission time.
    """

    def __init__(self, link: str | os.PathLike[str], baud: int | None = None,
                 poll_s: float = 0.05) -> None:
        if baud is not None and baud <= 0:
            raise ValueError(f"baud must be positive, got {baud}")
        self.link = Path(link)
        self.baud = baud
        self.poll_s = poll_s
        self._lock = threading.Lock()  # guards the fds and the pacing clocks
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_name: str | None = None
        self._close_requested = False
        self._closed = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._rx_end = 0.0  # when the last received byte would have finished arriving
        self._tx_end = 0.0  # when the last sent byte finishes leaving

    # -- to override -------------------------------------------------------------------------
    def on_bytes(self, data: bytes, now: float) -> None:
        """Called from the reader thread with bytes from the client, received at ``now``."""

    # -- life cycle --------------------------------------------------------------------------
    @property
    def slave_name(self) -> str | None:
        """Device path of the current pty slave (e.g. /dev/pts/7), None while vanished."""
        return self._slave_name

    @property
    def present(self) -> bool:
        """True while the pty exists and the link is published."""
        return self._master is not None

    def start(self) -> PtyDevice:
        """Create the pty, publish the link and start the reader thread."""
        if self._thread is not None:
            return self
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        with self._lock:
            self._open_pty()
        self._thread = threading.Thread(target=self._run, name=f"pty:{self.link.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the reader, close the pty and remove the link (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wake()
            thread.join()
        with self._lock:
            self._close_pty()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r, self._wake_w = -1, -1

    def __enter__(self) -> PtyDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def vanish(self) -> None:
        """Close the pty and remove the link, as if the USB device were unplugged."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            with self._lock:
                self._close_pty()
            return
        # The reader thread closes the fds itself, so it never selects on a reused fd number.
        self._closed.clear()
        with self._lock:
            self._close_requested = True
        self._wake()
        self._closed.wait(timeout=5.0)

    def reappear(self) -> None:
        """Create a fresh pty and publish it under the same link (no-op if present)."""
        with self._lock:
            if self._master is None:
                self._open_pty()
        self._wake()

    # -- I/O ---------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send bytes to the client (paced at ``baud`` if set); dropped while vanished."""
        if not data:
            return
        if self.baud:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._rx_end, self._tx_end)
                self._tx_end = start + len(data) * BITS_PER_BYTE / self.baud
                wait = self._tx_end - now
            if wait > 0:
                _sleep_until(now + wait)
        with self._lock:
            if self._master is None:
                return
            view = memoryview(bytes(data))
            while view:
                try:
                    written = os.write(self._master, view)
                except (BlockingIOError, OSError):
                    return  # nobody reading, buffer full, or hung up: bytes are lost
                view = view[written:]

    # -- internals ---------------------------------------------------------------------------
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_name = os.ttyname(slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(self._slave_name, tmp)
        os.replace(tmp, self.link)

    def _close_pty(self) -> None:
        if self._master is None:
            return
        with contextlib.suppress(OSError):
            if os.readlink(self.link) == self._slave_name:
                self.link.unlink()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = self._slave_name = None

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _run(self) -> None:
        while not self._stopping:
            with self._lock:
                if self._close_requested:
                    self._close_requested = False
                    self._close_pty()
                    self._closed.set()
                master = self._master
            fds = [self._wake_r] if master is None else [self._wake_r, master]
            ready, _, _ = select.select(fds, [], [], self.poll_s)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.read(self._wake_r, 64)
            if master is None or master not in ready:
                continue
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, OSError):
                continue
            now = time.monotonic()
            if self.baud:
                with self._lock:
                    start = max(now, self._rx_end)
                    self._rx_end = start + len(data) * BITS_PER_BYTE / self.baud
            if data:
                try:
                    self.on_bytes(data, now)
                except Exception:
                    _log.exception("%s: on_bytes failed", self.link)


def serve_until_signalled(device: PtyDevice) -> int:
    """Serve a device from a command line until SIGINT or SIGTERM; print its link first."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with device:
        print(device.link, flush=True)
        while not stop.wait(0.5):
            pass
        # under `ros2 launch` a Ctrl-C comes twice (the terminal's group SIGINT, then launch's):
        # the second must not kill the interpreter while it closes and exits
        ignore_sigint()
    return 0
