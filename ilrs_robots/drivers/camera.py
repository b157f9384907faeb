"""Frame sources through OpenCV: V4L2 devices, GStreamer pipelines (Jetson CSI cameras
through nvarguscamerasrc), video files, image folders and network streams.

Each source opens, reads frames stamped at capture, and says clearly why it cannot:
`CameraUnavailable` when the device or file is not there (the driver retries with backoff),
`CameraConfigError` for a source that can never work as given (e.g. a GStreamer pipeline on
an OpenCV built without GStreamer).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ilrs_robots.drivers.backoff import Backoff

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


class CameraUnavailable(ConnectionError):
    """The source is not there now (unplugged, missing file, stream down); retry later."""


class CameraConfigError(ValueError):
    """The source can never work as configured."""


@dataclass
class CaptureSettings:
    """What the driver asks of a live device; zero or empty means the device's default."""

    width: int = 0
    height: int = 0
    fps: float = 0.0
    fourcc: str = ""
    buffer_size: int = 1


@dataclass
class Frame:
    """A captured image and when it was captured (time.time() seconds)."""

    image: np.ndarray
    stamp: float


def gstreamer_available() -> bool:
    """True if this OpenCV was built with GStreamer."""
    info = cv2.getBuildInformation()
    match = re.search(r"GStreamer:\s*(\S+)", info)
    return bool(match and match.group(1).upper().startswith("YES"))


def classify(source: str) -> str:
    """The kind of a source string: v4l2, gstreamer, stream, folder or file."""
    text = source.strip()
    if not text:
        raise CameraConfigError("empty camera source")
    if text.isdigit() or text.startswith("/dev/video"):
        return "v4l2"
    if "!" in text or text.startswith("gst:"):
        return "gstreamer"
    if _URL.match(text) and not text.startswith("file://"):
        return "stream"
    path = Path(text.removeprefix("file://"))
    if path.is_dir():
        return "folder"
    return "file"


class FrameSource:
    """Opens one source and reads frames from it."""

    def __init__(self, source: str, settings: CaptureSettings | None = None,
                 loop: bool = True) -> None:
        self.source = source.strip()
        self.kind = classify(self.source)
        self.settings = settings or CaptureSettings()
        self.loop = loop
        self.refused: list[str] = []  # settings the device silently did not take
        self._cap: cv2.VideoCapture | None = None
        self._images: list[Path] = []
        self._index = 0
        if self.kind == "gstreamer" and not gstreamer_available():
            raise CameraConfigError(
                "this OpenCV was built without GStreamer, so the pipeline source "
                f"{self.source!r} cannot open; install an OpenCV with GStreamer "
                "(e.g. JetPack's) or use a V4L2 device, a file or a stream")

    @property
    def paced(self) -> bool:
        """Files and folders give frames as fast as asked: the reader paces them."""
        return self.kind in ("file", "folder")

    @property
    def is_open(self) -> bool:
        """True while frames can be read."""
        return bool(self._images) or (self._cap is not None and self._cap.isOpened())

    def open(self) -> None:
        """Open the source; CameraUnavailable if it is not there now."""
        self.close()
        if self.kind == "folder":
            folder = Path(self.source.removeprefix("file://"))
            self._images = sorted(p for p in folder.iterdir()
                                  if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._images:
                raise CameraUnavailable(f"no images in folder {folder}")
            self._index = 0
            return
        if self.kind == "v4l2":
            device = int(self.source) if self.source.isdigit() else self.source
            if isinstance(device, str) and not os.path.exists(device):
                raise CameraUnavailable(f"camera device {device} does not exist")
            cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        elif self.kind == "gstreamer":
            cap = cv2.VideoCapture(self.source.removeprefix("gst:"), cv2.CAP_GSTREAMER)
        elif self.kind == "file":
            path = self.source.removeprefix("file://")
            if not os.path.exists(path):
                raise CameraUnavailable(f"video file {path} does not exist")
            cap = cv2.VideoCapture(path)
        else:
            cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            raise CameraUnavailable(f"cannot open {self.kind} source {self.source!r}")
        self._cap = cap
        if self.kind == "v4l2":
            self._apply_settings(cap)

    def _apply_settings(self, cap: cv2.VideoCapture) -> None:
        """Ask for the settings and read them back: set() may be silently refused."""
        s = self.settings
        self.refused = []
        wanted = []
        if s.fourcc:
            wanted.append(("fourcc", cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*s.fourcc)))
        if s.width and s.height:
            wanted += [("width", cv2.CAP_PROP_FRAME_WIDTH, s.width),
                       ("height", cv2.CAP_PROP_FRAME_HEIGHT, s.height)]
        if s.fps:
            wanted.append(("fps", cv2.CAP_PROP_FPS, s.fps))
        if s.buffer_size:
            wanted.append(("buffer_size", cv2.CAP_PROP_BUFFERSIZE, s.buffer_size))
        for _name, prop, value in wanted:
            cap.set(prop, value)
        for name, prop, value in wanted:
            got = cap.get(prop)
            if abs(got - value) > 0.5:
                self.refused.append(f"{name}: asked {value}, device gives {got:g}")

    def read(self) -> Frame:
        """The next frame; CameraUnavailable when the source stopped giving frames."""
        if self._images:
            return self._read_folder()
        if self._cap is None:
            raise CameraUnavailable("camera is not open")
        ok, image = self._cap.read()
        stamp = time.time()
        if not ok and self.kind == "file" and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
            stamp = time.time()
        if not ok or image is None:
            self.close()
            raise CameraUnavailable(f"{self.kind} source {self.source!r} gave no frame")
        return Frame(image, stamp)

    def _read_folder(self) -> Frame:
        if self._index >= len(self._images):
            if not self.loop:
                raise CameraUnavailable("image folder finished")
            self._index = 0
        path = self._images[self._index]
        self._index += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise CameraUnavailable(f"cannot read image {path}")
        return Frame(image, time.time())

    def close(self) -> None:
        """Release the device (idempotent)."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._images = []


def side_by_side(frame: Frame) -> tuple[Frame, Frame]:
    """Split one side-by-side stereo frame into left and right (views, no copy)."""
    half = frame.image.shape[1] // 2
    return (Frame(frame.image[:, :half], frame.stamp),
            Frame(frame.image[:, half:2 * half], frame.stamp))


@dataclass
class RateCounter:
    """Frames, drops and the measured rate over a sliding window."""

    window: float = 2.0
    frames: int = 0
    drops: int = 0
    _times: list[float] = field(default_factory=list)

    def tick(self, now: float) -> None:
        """Count one frame at `now`."""
        self.frames += 1
        self._times.append(now)
        while self._times and self._times[0] < now - self.window:
            self._times.pop(0)

    def rate(self, now: float) -> float:
        """Frames per second over the window."""
        recent = [t for t in self._times if t >= now - self.window]
        return len(recent) / self.window


class CaptureLoop:
    """Reads one source (mono, or side-by-side stereo) or two (a stereo pair) in a thread,
    hands every capture to `on_frames`, and reopens a vanished source with backoff."""

    def __init__(self, sources: list[FrameSource], on_frames: Callable[[list[Frame]], None],
                 split: bool = False, rate: float = 30.0,
                 backoff: Backoff | None = None) -> None:
        if not 1 <= len(sources) <= 2 or (split and len(sources) != 1):
            raise CameraConfigError("one source (or one side-by-side source) or a pair")
        self.sources = sources
        self.on_frames = on_frames
        self.split = split
        self.rate = rate
        self.backoff = backoff or Backoff()
        self.counter = RateCounter()
        self.reconnects = 0
        self.last_error = ""
        self.link_ok = False
        self._opened_once = False
        self._last_stamp = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CaptureLoop:
        """Start the capture thread."""
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop capturing and release the devices."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for s in self.sources:
            s.close()

    def _open(self) -> bool:
        if not self.backoff.ready():
            self._stop.wait(0.05)
            return False
        try:
            for s in self.sources:
                if not s.is_open:
                    s.open()
        except CameraUnavailable as exc:
            self.last_error = str(exc)
            self.link_ok = False
            self.backoff.failed()
            return False
        self.backoff.succeeded()
        self.reconnects += self._opened_once
        self._opened_once = True
        self.link_ok, self.last_error = True, ""
        return True

    def _run(self) -> None:
        next_time = time.monotonic()
        paced = any(s.paced for s in self.sources) and self.rate > 0
        while not self._stop.is_set():
            if not all(s.is_open for s in self.sources) and not self._open():
                continue
            if paced:
                next_time = max(next_time + 1.0 / self.rate, time.monotonic() - 0.5)
                delay = next_time - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
            try:
                frames = [s.read() for s in self.sources]
            except CameraUnavailable as exc:
                self.last_error = str(exc)
                self.link_ok = False
                for s in self.sources:
                    s.close()
                continue
            stamp = frames[0].stamp
            frames = [Frame(f.image, stamp) for f in frames]  # a pair shares one stamp
            if self.split:
                frames = list(side_by_side(frames[0]))
            if self._last_stamp and self.rate > 0 and \
                    stamp - self._last_stamp > 1.5 / self.rate:
                self.counter.drops += int((stamp - self._last_stamp) * self.rate - 1 + 0.5)
            self._last_stamp = stamp
            self.counter.tick(time.monotonic())
            self.on_frames(frames)
