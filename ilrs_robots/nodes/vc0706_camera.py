"""vc0706_camera: a serial JPEG camera (VC0706 / LinkSprite) taking pictures on a timer and on
request, published as image_raw/compressed (the camera's own JPEG) and image_raw (bgr8).

Only pictures that passed every check (exact READ_FBUF framing, announced length, a JPEG
whose scan decodes cleanly, OpenCV decoding at the configured size) are published; the
rest are read again or retaken, and counted on /diagnostics. Stamps: the node's clock (sim
time under `use_sim_time`) at the instant the camera froze the frame.

Live parameters: `period`, `compression`, `request_timeout`; port, baud and size are
read-only (they are set on the camera at connection).
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from ilrs_robots.drivers.camera import clock_stamp
from ilrs_robots.drivers.serial_camera import SerialCameraConfig, SerialCameraLoop
from ilrs_robots.drivers.vc0706 import Picture, Vc0706Client
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.params import declare, run_node
from ilrs_robots.protocols.vc0706 import BAUD_CODES, SIZE_CODES


class Vc0706Camera(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("vc0706_camera")
        d = self
        port = declare(d, "port", "/dev/ttyUSB0", "Serial port of the camera", bool,
                       "a device path", read_only=True)
        baud = declare(d, "baud", 115200, "Baud rate to switch to after connecting",
                       lambda b: b in BAUD_CODES, f"one of {sorted(BAUD_CODES)}",
                       read_only=True)
        width = declare(d, "width", 640, "Image width", lambda w: w in {s[0] for s in
                                                                        SIZE_CODES},
                        "640, 320 or 160", read_only=True)
        height = declare(d, "height", 480, "Image height",
                         lambda h: (width, h) in SIZE_CODES, f"matching width ({SIZE_CODES})",
                         read_only=True)
        period = declare(d, "period", 5.0, "Seconds between timed pictures (0: on request)",
                         range=(0.0, 86400.0))
        compression = declare(d, "compression", 0x36, "JPEG compression ratio 0..255",
                              range=(0, 255))
        self.frame_id = declare(d, "frame_id", "vc0706_optical_frame", "Frame of the images",
                                bool, "non-empty", read_only=True)
        self.timeout = declare(d, "request_timeout", 30.0, "Longest wait of the capture "
                               "service (s)", range=(0.1, 600.0))
        self.jpeg_pub = self.create_publisher(CompressedImage, "image_raw/compressed", 2)
        self.image_pub = self.create_publisher(Image, "image_raw", 2)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.unpublished = 0  # pictures taken before sim time started
        self.client = Vc0706Client(port)
        self.loop = SerialCameraLoop(
            self.client, SerialCameraConfig((width, height), baud, compression, period),
            self._on_picture).start()
        self.create_service(Trigger, "capture", self._on_capture)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # diagnostics go on if sim time stops
        self.create_timer(1.0, self._diagnostics, clock=steady)
        self.get_logger().info(f"VC0706 camera on {port}: {width}x{height} at {baud} baud")

    def on_parameters_set(self, changed: dict) -> None:
        """Apply accepted live changes (params.py validated them)."""
        if "period" in changed or "compression" in changed:
            self.loop.update(changed.get("period"), changed.get("compression"))
        if "request_timeout" in changed:
            self.timeout = float(changed["request_timeout"])

    def _on_picture(self, picture: Picture) -> None:
        now = self.get_clock().now().nanoseconds
        if now == 0:
            self.unpublished += 1
            return
        stamp = messages.stamp_of(max(0.0, clock_stamp(now * 1e-9, picture.captured,
                                                       time.monotonic())))
        try:
            self.jpeg_pub.publish(messages.compressed_image(stamp, self.frame_id, picture.jpeg))
            self.image_pub.publish(messages.image(stamp, self.frame_id, picture.image, "bgr8"))
        except Exception:  # noqa: BLE001 - the context may end under the camera thread
            if self.context.ok():
                raise

    def _on_capture(self, request: Trigger.Request, response: Trigger.Response
                    ) -> Trigger.Response:
        response.success, response.message = self.loop.request(self.timeout)
        if response.success:
            response.message = "picture published on image_raw/compressed"
        return response

    def _diagnostics(self) -> None:
        c, loop = self.client.counters, self.loop
        level = "OK" if loop.connected else "ERROR"
        message = f"connected ({loop.version})" if loop.connected else (
            loop.last_error or "connecting")
        if loop.connected and loop.last_error:
            level, message = "WARN", f"last capture failed: {loop.last_error}"
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        ns = self.get_namespace().strip("/") or "robot"
        array.status.append(messages.diagnostic(
            f"{self.get_name()}: vc0706", f"{ns}/vc0706@{self.client.port}", level, message,
            [("baud", self.client.baud), ("frames", c.frames),
             ("chunk_retries", c.chunk_retries), ("misaligned_chunks", c.misaligned_chunks),
             ("short_chunks", c.short_chunks), ("bad_frames", c.bad_frames),
             ("retaken", loop.retaken), ("failed_pictures", loop.failed),
             ("timeouts", c.timeouts), ("corrupt_replies", c.corrupt_replies),
             ("garbage_bytes", c.garbage_bytes), ("reconnects", c.reconnects),
             ("last_error", self.client.last_error)]))
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Stop the camera thread."""
        self.loop.stop()


def main(args: list[str] | None = None) -> None:
    """Console script `vc0706_camera`."""
    raise SystemExit(run_node(Vc0706Camera, args))


if __name__ == "__main__":
    main()
