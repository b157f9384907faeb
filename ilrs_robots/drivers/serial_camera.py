"""Taking pictures with a VC0706 serial camera, on a timer and on request, in a thread:
configure after every (re)connection, reconnect with backoff when the port goes away.

Only pictures that passed every check of `Vc0706Client.capture_picture` reach `on_picture`;
a picture that cannot be read cleanly is retaken once, then the failure is reported
(`last_error`, `failed`)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ilrs_robots.drivers.backoff import Backoff
from ilrs_robots.drivers.vc0706 import BadFrame, LinkLost, Picture, Vc0706Client, Vc0706Error


@dataclass(frozen=True)
class SerialCameraConfig:
    """What to set on the camera after each connection."""

    size: tuple[int, int] = (640, 480)
    baud: int = 115200
    compression: int = 0x36
    period: float = 5.0  # s between timed pictures; 0: only on request


class SerialCameraLoop:
    """Owns the client; `on_picture(picture)` is called from the loop's thread."""

    def __init__(self, client: Vc0706Client, config: SerialCameraConfig,
                 on_picture: Callable[[Picture], None], retakes: int = 1) -> None:
        self.client = client
        self.config = config
        self.on_picture = on_picture
        self.retakes = retakes
        self.failed = 0  # pictures given up on (no clean copy after the retakes)
        self.retaken = 0
        self._compression_due = False
        self.backoff = Backoff()
        self.connected = False
        self.version = ""
        self.last_error = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition()
        self._requests = 0
        self._served = 0
        self._last_result: str = ""
        self._thread = threading.Thread(target=self._run, name="vc0706", daemon=True)

    def start(self) -> SerialCameraLoop:
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the port."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10.0)
        self.client.close()

    def update(self, period: float | None = None, compression: int | None = None) -> None:
        """Change the period now and the compression before the next picture."""
        changes: dict[str, object] = {}
        if period is not None:
            changes["period"] = float(period)
        if compression is not None:
            changes["compression"] = int(compression)
            self._compression_due = True
        self.config = dataclasses.replace(self.config, **changes)
        self._wake.set()

    def request(self, timeout: float) -> tuple[bool, str]:
        """Take a picture now; wait for it. (success, message)."""
        with self._done:
            self._requests += 1
            ticket = self._requests
        self._wake.set()
        with self._done:
            ok = self._done.wait_for(lambda: self._served >= ticket, timeout)
            return (ok and self._last_result == "", self._last_result if ok else
                    f"no picture within {timeout:.0f} s ({self.last_error or 'busy'})")

    def _connect(self) -> bool:
        if not self.backoff.ready():
            return False
        c = self.config
        try:
            self.version = self.client.reconnect()  # at the last baud, else the boot 38400
            self.client.set_size(*c.size)
            self.client.set_compression(c.compression)
            if self.client.baud != c.baud:
                self.client.set_baud(c.baud)
        except Vc0706Error as exc:
            self.last_error = str(exc)
            self.client.close()
            self.backoff.failed()
            return False
        self.backoff.succeeded()
        self.connected, self.last_error = True, ""
        return True

    def _take(self) -> Picture:
        """A clean picture, retaking (a new frame) after a frame that could not be read."""
        for attempt in range(self.retakes + 1):
            try:
                return self.client.capture_picture(self.config.size)
            except BadFrame:
                if attempt == self.retakes:
                    self.failed += 1
                    raise
                self.retaken += 1
        raise AssertionError("unreachable")

    def _run(self) -> None:
        next_shot = time.monotonic()
        while not self._stop.is_set():
            if not self.connected and not self._connect():
                self._wake.wait(0.2)
                continue
            with self._done:
                pending = self._requests > self._served
            timed = self.config.period > 0 and time.monotonic() >= next_shot
            if not (pending or timed):
                wait = next_shot - time.monotonic() if self.config.period > 0 else 1.0
                self._wake.wait(max(0.0, min(wait, 1.0)))
                self._wake.clear()
                continue
            if timed:
                next_shot = time.monotonic() + self.config.period
            error = ""
            try:
                if self._compression_due:
                    self._compression_due = False
                    self.client.set_compression(self.config.compression)
                self.on_picture(self._take())
                self.last_error = ""
            except LinkLost as exc:
                error = self.last_error = str(exc)
                self.connected = False
            except Vc0706Error as exc:
                error = self.last_error = str(exc)
            with self._done:
                self._served = self._requests
                self._last_result = error
                self._done.notify_all()
