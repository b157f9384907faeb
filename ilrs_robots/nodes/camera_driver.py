"""camera_driver: an OpenCV camera (V4L2, GStreamer/Jetson CSI, file, image folder, stream),
or a stereo pair, published as image_raw, camera_info and image_raw/compressed.

Mono topics: `image_raw`, `camera_info`, `image_raw/compressed`; stereo (`stereo` = pair or
side_by_side): the same under `left/` and `right/`, both sides stamped alike. Put the node in
the namespace the topic contract wants (`/rover1/camera`, `/rover1/stereo`).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ilrs_robots.core.calibration import CalibrationError, CameraCalibration, parse_calibration
from ilrs_robots.drivers.camera import (
    CameraConfigError,
    CaptureLoop,
    CaptureSettings,
    Frame,
    FrameSource,
)
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.params import ParameterError, declare, run_node

STEREO = ("none", "pair", "side_by_side")


class _Side:
    """Publishers and calibration of one camera (or one side of a pair)."""

    def __init__(self, node: Node, prefix: str, frame_id: str, calibration: str) -> None:
        self.frame_id = frame_id
        self.image = node.create_publisher(Image, f"{prefix}image_raw", 5)
        self.info = node.create_publisher(CameraInfo, f"{prefix}camera_info", 5)
        self.jpeg = node.create_publisher(CompressedImage, f"{prefix}image_raw/compressed", 5)
        self.calibration: CameraCalibration | None = None
        if calibration:
            name = "calibration_file" if prefix != "right/" else "calibration_file_right"
            try:
                self.calibration = parse_calibration(Path(calibration).read_text())
            except (OSError, CalibrationError) as exc:
                raise ParameterError(name, f"cannot be used: {exc}") from exc

    def info_for(self, width: int, height: int) -> CameraCalibration:
        """The calibration at this image size (uncalibrated: zeros, as camera_info_manager)."""
        cal = self.calibration
        if cal is None:
            return CameraCalibration(width, height, k=[0.0] * 9, d=[], r=[0.0] * 9,
                                     p=[0.0] * 12)
        return cal if (cal.width, cal.height) == (width, height) else cal.scaled(width, height)


class CameraDriver(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("camera_driver")
        d = self
        source = declare(d, "source", "0", "V4L2 index or /dev/video*, GStreamer pipeline "
                         "(with '!'), video file, image folder, or stream URL", bool,
                         "a source")
        stereo = declare(d, "stereo", "none", "none, pair (source + source_right) or "
                         "side_by_side (one device, left half | right half)",
                         lambda s: s in STEREO, f"one of {STEREO}")
        right = declare(d, "source_right", "", "Right camera of a stereo pair")
        settings = CaptureSettings(
            width=declare(d, "width", 0, "Requested width (0: device default)",
                          lambda v: v >= 0, ">= 0"),
            height=declare(d, "height", 0, "Requested height (0: device default)",
                           lambda v: v >= 0, ">= 0"),
            fps=declare(d, "fps", 30.0, "Requested rate; files and folders play at it",
                        lambda v: v > 0, "> 0"),
            fourcc=declare(d, "fourcc", "", "Pixel format, e.g. MJPG or YUYV ('' default)",
                           lambda v: len(v) in (0, 4), "4 characters or empty"),
            buffer_size=declare(d, "buffer_size", 1, "Driver buffer in frames (1: freshest)",
                                lambda v: v >= 0, ">= 0"))
        self.encoding = declare(d, "encoding", "bgr8", "bgr8 or mono8",
                                lambda e: e in ("bgr8", "mono8"), "bgr8 or mono8")
        self.jpeg_quality = declare(d, "jpeg_quality", 80, "JPEG quality of image_raw/"
                                    "compressed", lambda q: 1 <= q <= 100, "in 1..100")
        loop = declare(d, "loop", True, "Loop video files and image folders")
        frame_id = declare(d, "frame_id", "camera_optical_frame", "Frame of the images")
        calibration = declare(d, "calibration_file", "", "camera_calibration YAML")
        if stereo == "pair" and not right:
            raise ParameterError("source_right", "is needed when stereo is 'pair'")
        try:
            sources = [FrameSource(source, settings, loop)]
            if stereo == "pair":
                sources.append(FrameSource(right, settings, loop))
        except CameraConfigError as exc:
            raise ParameterError("source", str(exc)) from exc
        if stereo == "none":
            self.sides = [_Side(self, "", frame_id, calibration)]
        else:
            self.sides = [
                _Side(self, "left/", declare(d, "frame_id_left", "left_camera_optical_frame",
                                             "Frame of the left images"), calibration),
                _Side(self, "right/", declare(d, "frame_id_right",
                                              "right_camera_optical_frame",
                                              "Frame of the right images"),
                      declare(d, "calibration_file_right", "", "Right camera calibration"))]
        self.source = source
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.capture = CaptureLoop(sources, self._on_frames, split=stereo == "side_by_side",
                                   rate=settings.fps).start()
        self.create_timer(1.0, self._diagnostics)
        self.get_logger().info(f"{sources[0].kind} source {source!r}"
                               + (f", stereo {stereo}" if stereo != "none" else ""))

    def _on_frames(self, frames: list[Frame]) -> None:
        try:
            for side, frame in zip(self.sides, frames, strict=True):
                self._publish(side, frame)
        except Exception:  # noqa: BLE001 - the context may end under the capture thread
            if self.context.ok():
                raise

    def _publish(self, side: _Side, frame: Frame) -> None:
        stamp = messages.stamp_of(frame.stamp)
        image = frame.image
        if self.encoding == "mono8" and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif self.encoding == "bgr8" and image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        height, width = image.shape[:2]
        side.image.publish(messages.image(stamp, side.frame_id, image, self.encoding))
        side.info.publish(messages.calibration_info(stamp, side.frame_id,
                                                    side.info_for(width, height)))
        if side.jpeg.get_subscription_count():
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if ok:
                side.jpeg.publish(messages.compressed_image(stamp, side.frame_id,
                                                            jpeg.tobytes()))

    def _diagnostics(self) -> None:
        cap = self.capture
        now_rate = cap.counter.rate(time.monotonic())
        refused = [r for s in cap.sources for r in s.refused]
        if not cap.link_ok:
            level, message = "ERROR", cap.last_error or "camera not open"
        elif refused:
            level, message = "WARN", "device refused settings: " + "; ".join(refused)
        else:
            level, message = "OK", f"streaming at {now_rate:.1f} fps"
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        ns = self.get_namespace().strip("/") or "robot"
        array.status.append(messages.diagnostic(
            f"{self.get_name()}: camera", f"{ns}/camera@{self.source}", level, message,
            [("source", self.source), ("kind", cap.sources[0].kind), ("fps", f"{now_rate:.1f}"),
             ("frames", cap.counter.frames), ("drops", cap.counter.drops),
             ("reconnects", cap.reconnects), ("last_error", cap.last_error)]))
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Stop capturing."""
        self.capture.stop()


def main(args: list[str] | None = None) -> None:
    """Console script `camera_driver`."""
    raise SystemExit(run_node(CameraDriver, args))


if __name__ == "__main__":
    main()
