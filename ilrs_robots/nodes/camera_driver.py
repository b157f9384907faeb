"""camera_driver: an OpenCV camera (V4L2, GStreamer/Jetson CSI, file, image folder, stream),
or a stereo pair, published as image_raw, camera_info and image_raw/compressed.

Mono topics: `image_raw`, `camera_info`, `image_raw/compressed` and the service
`set_camera_info`; stereo (`stereo` = pair or side_by_side): the same under `left/` and
`right/`. Put the node in the namespace the topic contract wants (`/rover1/camera`,
`/rover1/stereo`).

Stamps: the node's clock (sim time under `use_sim_time`) at the capture instant, i.e. now
minus the frame's age measured from its grab (less the V4L2 driver's latency where the
buffer timestamp gives it, see `drivers/camera.py`). Under sim time nothing is published
before the first /clock. A pair is grabbed on both devices, then retrieved: each side keeps
its own stamp and the measured offset is on /diagnostics (`stereo_offset_ms_mean/_max`).

Calibration, as camera_info_manager does it: read at start from `calibration_file`
(`calibration_file_right` for the right camera), or when that is empty from the default
`$ROS_HOME/camera_info/<camera_name>.yaml` (ROS_HOME defaults to ~/.ros; `camera_name`
defaults to the node's full name with `/` as `_`, plus `_left` / `_right` for a pair). A
missing file means uncalibrated (zeros). `set_camera_info` (sensor_msgs/SetCameraInfo, what
ROS's camera_calibration calls) validates the CameraInfo, writes that file atomically in
camera_calibration's YAML and publishes the new calibration from then on.

Live parameters: `jpeg_quality`, `encoding`; the rest are read-only (a new source, size or
rate means reopening the device: restart the node).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from sensor_msgs.srv import SetCameraInfo

from ilrs_robots.core.calibration import (
    CalibrationError,
    CameraCalibration,
    check_calibration,
    format_calibration,
    parse_calibration,
)
from ilrs_robots.drivers.camera import (
    CameraConfigError,
    CaptureLoop,
    CaptureSettings,
    Frame,
    FrameSource,
    clock_stamp,
)
from ilrs_robots.files import write_atomically
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.params import ParameterError, declare, run_node

STEREO = ("none", "pair", "side_by_side")
ENCODINGS = ("bgr8", "mono8")
RECENT = 5.0  # s: a drop or an undecodable image this recent makes the status WARN


def default_calibration_path(camera_name: str) -> Path:
    """Where camera_info_manager keeps a camera's calibration when no file is named."""
    ros_home = os.environ.get("ROS_HOME") or os.path.join(os.path.expanduser("~"), ".ros")
    return Path(ros_home) / "camera_info" / f"{camera_name}.yaml"


def calibration_of(info: CameraInfo, name: str) -> CameraCalibration:
    """A CameraInfo as a checked calibration (CalibrationError names what is wrong)."""
    return check_calibration(CameraCalibration(
        int(info.width), int(info.height), name, info.distortion_model,
        [float(v) for v in info.k], [float(v) for v in info.d], [float(v) for v in info.r],
        [float(v) for v in info.p]))


class _Side:
    """Publishers, calibration and set_camera_info of one camera (or one side of a pair)."""

    def __init__(self, node: CameraDriver, prefix: str, frame_id: str, parameter: str,
                 file: str, camera_name: str) -> None:
        self.node = node
        self.frame_id = frame_id
        self.camera_name = camera_name
        self.image = node.create_publisher(Image, f"{prefix}image_raw", 5)
        self.info = node.create_publisher(CameraInfo, f"{prefix}camera_info", 5)
        self.jpeg = node.create_publisher(CompressedImage, f"{prefix}image_raw/compressed", 5)
        self.path = Path(file) if file else default_calibration_path(camera_name)
        self.calibration: CameraCalibration | None = None
        if self.path.exists():
            try:
                self.calibration = parse_calibration(self.path.read_text())
            except (OSError, CalibrationError) as exc:
                raise ParameterError(parameter, f"cannot be used ({self.path}): {exc}") from exc
        else:
            node.get_logger().info(f"no calibration at {self.path}: uncalibrated until "
                                   f"{prefix}set_camera_info writes it")
        node.create_service(SetCameraInfo, f"{prefix}set_camera_info", self._on_set)

    def info_for(self, width: int, height: int) -> CameraCalibration:
        """The calibration at this image size (uncalibrated: zeros, as camera_info_manager)."""
        cal = self.calibration
        if cal is None:
            return CameraCalibration(width, height, k=[0.0] * 9, d=[], r=[0.0] * 9,
                                     p=[0.0] * 12)
        return cal if (cal.width, cal.height) == (width, height) else cal.scaled(width, height)

    def _on_set(self, request: SetCameraInfo.Request, response: SetCameraInfo.Response
                ) -> SetCameraInfo.Response:
        try:
            cal = calibration_of(request.camera_info, self.camera_name)
            write_atomically(self.path, format_calibration(cal))
        except (CalibrationError, OSError) as exc:
            response.success, response.status_message = False, f"refused: {exc}"
            self.node.get_logger().warning(f"set_camera_info {response.status_message}")
            return response
        self.calibration = cal
        response.success = True
        response.status_message = f"calibration written to {self.path}"
        self.node.get_logger().info(response.status_message)
        return response


class CameraDriver(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("camera_driver")
        d = self
        source = declare(d, "source", "0", "V4L2 index, /dev/video*, /dev/v4l/by-id/... or "
                         "any character device, GStreamer pipeline (with '!'), video file, "
                         "image folder, or stream URL", bool, "a source", read_only=True)
        stereo = declare(d, "stereo", "none", "none, pair (source + source_right) or "
                         "side_by_side (one device, left half | right half)",
                         lambda s: s in STEREO, f"one of {STEREO}", read_only=True)
        right = declare(d, "source_right", "", "Right camera of a stereo pair", read_only=True)
        settings = CaptureSettings(
            width=declare(d, "width", 0, "Requested width (0: device default)",
                          range=(0, 16384), read_only=True),
            height=declare(d, "height", 0, "Requested height (0: device default)",
                           range=(0, 16384), read_only=True),
            fps=declare(d, "fps", 30.0, "Requested rate (Hz); files and folders play at it",
                        range=(0.1, 120.0), read_only=True),
            fourcc=declare(d, "fourcc", "", "Pixel format, e.g. MJPG or YUYV ('' default)",
                           lambda v: len(v) in (0, 4), "4 characters or empty",
                           read_only=True),
            buffer_size=declare(d, "buffer_size", 1, "Driver buffer in frames (1: freshest)",
                                range=(0, 32), read_only=True))
        self.encoding = declare(d, "encoding", "bgr8", "bgr8 or mono8",
                                lambda e: e in ENCODINGS, "bgr8 or mono8")
        self.jpeg_quality = declare(d, "jpeg_quality", 80, "JPEG quality of image_raw/"
                                    "compressed", range=(1, 100))
        loop = declare(d, "loop", True, "Loop video files and image folders", read_only=True)
        name = self.get_fully_qualified_name().strip("/").replace("/", "_")
        camera_name = declare(d, "camera_name", name, "Name of the calibration (and of its "
                              "default file under $ROS_HOME/camera_info)", bool, "non-empty",
                              read_only=True)
        calibration = declare(d, "calibration_file", "", "camera_calibration YAML; '' for "
                              "$ROS_HOME/camera_info/<camera_name>.yaml", read_only=True)
        if stereo == "pair" and not right:
            raise ParameterError("source_right", "is needed when stereo is 'pair'")
        try:
            sources = [FrameSource(source, settings, loop)]
            if stereo == "pair":
                sources.append(FrameSource(right, settings, loop))
        except CameraConfigError as exc:
            raise ParameterError("source", str(exc)) from exc
        if stereo == "none":
            frame_id = declare(d, "frame_id", "camera_optical_frame", "Frame of the images",
                               bool, "non-empty", read_only=True)
            self.sides = [_Side(self, "", frame_id, "calibration_file", calibration,
                                camera_name)]
        else:
            left_id = declare(d, "frame_id_left", "left_camera_optical_frame",
                              "Frame of the left images", bool, "non-empty", read_only=True)
            right_id = declare(d, "frame_id_right", "right_camera_optical_frame",
                               "Frame of the right images", bool, "non-empty", read_only=True)
            right_cal = declare(d, "calibration_file_right", "", "Right camera calibration; "
                                "'' for $ROS_HOME/camera_info/<camera_name>_right.yaml",
                                read_only=True)
            self.sides = [
                _Side(self, "left/", left_id, "calibration_file", calibration,
                      f"{camera_name}_left"),
                _Side(self, "right/", right_id, "calibration_file_right", right_cal,
                      f"{camera_name}_right")]
        self.source = source
        self.waiting_for_clock = 0  # frames not published: sim time had not started
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.capture = CaptureLoop(sources, self._on_frames, split=stereo == "side_by_side",
                                   rate=settings.fps).start()
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # diagnostics go on if sim time stops
        self.create_timer(1.0, self._diagnostics, clock=steady)
        self.get_logger().info(f"{sources[0].kind} source {source!r}"
                               + (f", stereo {stereo}" if stereo != "none" else ""))

    def on_parameters_set(self, changed: dict) -> None:
        """Apply accepted live changes (params.py validated them)."""
        if "jpeg_quality" in changed:
            self.jpeg_quality = int(changed["jpeg_quality"])
        if "encoding" in changed:
            self.encoding = str(changed["encoding"])

    def _stamps(self, frames: list[Frame]) -> list[Time] | None:
        """The frames' capture instants on the node's clock (one reading of the clocks for
        all, so a pair keeps its measured offset); None before sim time starts."""
        now = self.get_clock().now().nanoseconds
        mono = time.monotonic()
        if now == 0:
            return None
        return [messages.stamp_of(max(0.0, clock_stamp(now * 1e-9, f.stamp, mono)))
                for f in frames]

    def _on_frames(self, frames: list[Frame]) -> None:
        try:
            stamps = self._stamps(frames)
            if stamps is None:
                self.waiting_for_clock += 1
                return
            for side, frame, stamp in zip(self.sides, frames, stamps, strict=True):
                self._publish(side, frame, stamp)
        except Exception:  # noqa: BLE001 - the context may end under the capture thread
            if self.context.ok():
                raise

    def _publish(self, side: _Side, frame: Frame, stamp: Time) -> None:
        image = frame.image
        encoding = self.encoding
        if encoding == "mono8" and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif encoding == "bgr8" and image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        height, width = image.shape[:2]
        side.image.publish(messages.image(stamp, side.frame_id, image, encoding))
        side.info.publish(messages.calibration_info(stamp, side.frame_id,
                                                    side.info_for(width, height)))
        if side.jpeg.get_subscription_count():
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if ok:
                side.jpeg.publish(messages.compressed_image(stamp, side.frame_id,
                                                            jpeg.tobytes()))

    def _diagnostics(self) -> None:
        cap = self.capture
        now = time.monotonic()
        now_rate = cap.counter.rate(now)
        refused = [r for s in cap.sources for r in s.refused]
        undecodable, drops = cap.undecodable, cap.counter.drops
        last_bad = next((s.last_undecodable for s in cap.sources if s.last_undecodable), "")
        if not cap.link_ok:
            level, message = "ERROR", cap.last_error or "camera not open"
        elif refused:
            level, message = "WARN", "device refused settings: " + "; ".join(refused)
        elif cap.last_problem and now - cap.last_problem < RECENT:
            level, message = "WARN", (f"{undecodable} undecodable images skipped"
                                      + (f" (last {last_bad})" if last_bad else "")
                                      + f", {drops} frames dropped")
        elif self.waiting_for_clock and self.get_clock().now().nanoseconds == 0:
            level, message = "WARN", "waiting for /clock (use_sim_time is set)"
        else:
            level, message = "OK", f"streaming at {now_rate:.1f} fps"
        values: list[tuple[str, object]] = [
            ("source", self.source), ("kind", cap.sources[0].kind), ("fps", f"{now_rate:.1f}"),
            ("frames", cap.counter.frames), ("drops", drops), ("undecodable", undecodable),
            ("reconnects", cap.reconnects), ("last_error", cap.last_error),
            ("driver_latency_ms", f"{1000 * cap.sources[0].latency:.2f}")]
        if len(cap.sources) == 2:
            off = cap.offsets
            values += [("stereo_pairs", off.count),
                       ("stereo_offset_ms_mean", f"{1000 * off.mean:.3f}"),
                       ("stereo_offset_ms_max", f"{1000 * off.max:.3f}")]
        for side in self.sides:
            values.append((f"{side.camera_name}_calibration",
                           f"{side.path}" if side.calibration else "uncalibrated"))
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        ns = self.get_namespace().strip("/") or "robot"
        array.status.append(messages.diagnostic(
            f"{self.get_name()}: camera", f"{ns}/camera@{self.source}", level, message,
            values))
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Stop capturing."""
        self.capture.stop()


def main(args: list[str] | None = None) -> None:
    """Console script `camera_driver`."""
    raise SystemExit(run_node(CameraDriver, args))


if __name__ == "__main__":
    main()
