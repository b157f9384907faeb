"""Frame sources through OpenCV: V4L2 devices, GStreamer pipelines (Jetson CSI cameras
through nvarguscamerasrc), video files, image folders and network streams.

Each source opens, reads frames stamped at capture, and says clearly why it cannot:
`CameraUnavailable` when the device or file is not there (the driver retries with backoff),
`CameraConfigError` for a source that can never work as given (e.g. a GStreamer pipeline on
an OpenCV built without GStreamer).

Capture instants are `time.monotonic()` seconds, taken when `grab()` returns; a node turns
them into its own clock with `clock_stamp()` (so in simulation, sim time). For V4L2 devices
the driver's buffer timestamp (OpenCV's `CAP_PROP_POS_MSEC`: the kernel's `v4l2_buffer`
timestamp, CLOCK_MONOTONIC on current kernels, taken when the frame reached memory) replaces
the grab time when it is plausible (0..1 s before the grab returned), which removes the
queueing latency of the driver; `FrameSource.latency` says how much that was. GStreamer,
files and streams give no such clock (their POS_MSEC is a media position): the grab time is
used, so their stamps carry the pipeline's latency.

A stereo pair is read as `grab()` on both devices, then `retrieve()` on both (the slow
decode happens after both frames are taken); each side keeps its own capture instant and the
loop measures their offset (`CaptureLoop.offsets`).
"""

from __future__ import annotations

import os
import re
import stat
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
    """A captured image and its capture instant (time.monotonic() seconds)."""

    image: np.ndarray
    stamp: float


def clock_stamp(clock_now: float, captured: float, monotonic_now: float | None = None
                ) -> float:
    """A capture instant (monotonic s) on another clock whose time now is `clock_now` (s).

    The frame's age is measured on the monotonic clock and taken off the other clock's now:
    `clock_now - (monotonic_now - captured)`. With sim time running at a real-time factor
    other than 1 the age is still wall seconds (the best a real camera's stamp can do).
    """
    now = time.monotonic() if monotonic_now is None else monotonic_now
    return clock_now - max(0.0, now - captured)


def is_character_device(path: str) -> bool:
    """True if `path` (symlinks followed, as /dev/v4l/by-id/...) is a character device."""
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def gstreamer_available() -> bool:
    """True if this OpenCV was built with GStreamer."""
    info = cv2.getBuildInformation()
    match = re.search(r"GStreamer:\s*(\S+)", info)
    return bool(match and match.group(1).upper().startswith("YES"))


def classify(source: str) -> str:
    """The kind of a source string: v4l2, gstreamer, stream, folder or file.

    V4L2: an index, any /dev/video*, /dev/v4l/... (by-id, by-path: symlinks to the device,
    also while unplugged) or any other character device.
    """
    text = source.strip()
    if not text:
        raise CameraConfigError("empty camera source")
    if (text.isdigit() or text.startswith(("/dev/video", "/dev/v4l/"))
            or is_character_device(text)):
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
        self.undecodable = 0  # folder images that could not be decoded (skipped)
        self.last_undecodable = ""
        self.latency = 0.0  # s between the driver's buffer stamp and grab() returning
        self._cap: cv2.VideoCapture | None = None
        self._images: list[Path] = []
        self._index = 0
        self._grabbed: float | None = None
        self._pending: np.ndarray | None = None
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
        self.grab()
        return self.retrieve()

    def grab(self) -> None:
        """Take the next frame (fast: no decoding) and note its capture instant."""
        if self._images:
            self._grab_folder()
            return
        if self._cap is None:
            raise CameraUnavailable("camera is not open")
        ok = self._cap.grab()
        if not ok and self.kind == "file" and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok = self._cap.grab()
        now = time.monotonic()
        if not ok:
            self.close()
            raise CameraUnavailable(f"{self.kind} source {self.source!r} gave no frame")
        self._grabbed = now - self._driver_latency(now)

    def _driver_latency(self, now: float) -> float:
        """How long the V4L2 buffer waited before grab() returned, if the driver says."""
        if self.kind != "v4l2" or self._cap is None:
            return 0.0
        buffer_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        latency = now - buffer_ms / 1000.0
        self.latency = latency if 0.0 <= latency < 1.0 else 0.0  # else: not our clock
        return self.latency

    def retrieve(self) -> Frame:
        """Decode the frame taken by grab()."""
        if self._grabbed is None:
            raise CameraUnavailable("retrieve() without a grabbed frame")
        captured, self._grabbed = self._grabbed, None
        if self._images:
            image, self._pending = self._pending, None
        elif self._cap is None:
            raise CameraUnavailable("camera is not open")
        else:
            ok, image = self._cap.retrieve()
            if not ok or image is None:
                self.close()
                raise CameraUnavailable(f"{self.kind} source {self.source!r} gave no frame")
        return Frame(image, captured)

    def _grab_folder(self) -> None:
        """The next image that decodes; undecodable ones are counted and skipped."""
        for _ in range(len(self._images)):
            if self._index >= len(self._images):
                if not self.loop:
                    raise CameraUnavailable("image folder finished")
                self._index = 0
            path = self._images[self._index]
            self._index += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                self._pending, self._grabbed = image, time.monotonic()
                return
            self.undecodable += 1
            self.last_undecodable = path.name
        raise CameraUnavailable(f"no image in folder {self.source} can be decoded")

    def close(self) -> None:
        """Release the device (idempotent)."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._images = []
        self._grabbed = self._pending = None


def side_by_side(frame: Frame) -> tuple[Frame, Frame]:
    """Split one side-by-side stereo frame into left and right (views, no copy)."""
    half = frame.image.shape[1] // 2
    return (Frame(frame.image[:, :half], frame.stamp),
            Frame(frame.image[:, half:2 * half], frame.stamp))


@dataclass
class OffsetStats:
    """Offsets between the two capture instants of a stereo pair (s), since the start."""

    count: int = 0
    total: float = 0.0
    max: float = 0.0
    last: float = 0.0

    def add(self, offset: float) -> None:
        """Count one pair's offset."""
        self.count += 1
        self.total += offset
        self.max = max(self.max, offset)
        self.last = offset

    @property
    def mean(self) -> float:
        """Mean offset (0 before the first pair)."""
        return self.total / self.count if self.count else 0.0


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
        self.offsets = OffsetStats()
        self.last_problem = 0.0  # monotonic time of the last drop or undecodable frame
        self.reconnects = 0
        self.last_error = ""
        self.link_ok = False
        self._opened_once = False
        self._last_stamp = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def undecodable(self) -> int:
        """Undecodable images skipped, over every source."""
        return sum(s.undecodable for s in self.sources)

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
            undecodable = self.undecodable
            try:
                for s in self.sources:  # both exposures first, then the slow decoding
                    s.grab()
                frames = [s.retrieve() for s in self.sources]
            except CameraUnavailable as exc:
                self.last_error = str(exc)
                self.link_ok = False
                for s in self.sources:
                    s.close()
                continue
            if self.undecodable != undecodable:
                self.last_problem = time.monotonic()
            stamp = frames[0].stamp
            if len(frames) == 2:
                self.offsets.add(abs(frames[1].stamp - frames[0].stamp))
            if self.split:
                frames = list(side_by_side(frames[0]))  # one exposure: one instant
            if not paced and self._last_stamp and self.rate > 0 and \
                    stamp - self._last_stamp > 1.5 / self.rate:
                self.counter.drops += int((stamp - self._last_stamp) * self.rate - 1 + 0.5)
                self.last_problem = time.monotonic()
            self._last_stamp = stamp
            self.counter.tick(time.monotonic())
            self.on_frames(frames)
