"""vc0706_camera: a serial JPEG camera (VC0706 / LinkSprite) taking pictures on a timer and on
request, published as image_raw/compressed (the camera's own JPEG) and image_raw (bgr8)."""

from __future__ import annotations

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from ilrs_robots.drivers.serial_camera import SerialCameraConfig, SerialCameraLoop
from ilrs_robots.drivers.vc0706 import Vc0706Client
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.params import declare, run_node
from ilrs_robots.protocols.vc0706 import BAUD_CODES, SIZE_CODES


class Vc0706Camera(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("vc0706_camera")
        d = self
        port = declare(d, "port", "/dev/ttyUSB0", "Serial port of the camera", bool,
                       "a device path")
        baud = declare(d, "baud", 115200, "Baud rate to switch to after connecting",
                       lambda b: b in BAUD_CODES, f"one of {sorted(BAUD_CODES)}")
        width = declare(d, "width", 640, "Image width", lambda w: w in {s[0] for s in
                                                                        SIZE_CODES},
                        "640, 320 or 160")
        height = declare(d, "height", 480, "Image height",
                         lambda h: (width, h) in SIZE_CODES, f"matching width ({SIZE_CODES})")
        period = declare(d, "period", 5.0, "Seconds between timed pictures (0: on request)",
                         lambda p: p >= 0, ">= 0")
        compression = declare(d, "compression", 0x36, "JPEG compression ratio 0..255",
                              lambda c: 0 <= c <= 255, "in 0..255")
        self.frame_id = declare(d, "frame_id", "vc0706_optical_frame", "Frame of the images")
        self.timeout = declare(d, "request_timeout", 30.0, "Longest wait of the capture "
                               "service (s)", lambda t: t > 0, "> 0")
        self.jpeg_pub = self.create_publisher(CompressedImage, "image_raw/compressed", 2)
        self.image_pub = self.create_publisher(Image, "image_raw", 2)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.client = Vc0706Client(port)
        self.loop = SerialCameraLoop(
            self.client, SerialCameraConfig((width, height), baud, compression, period),
            self._on_jpeg).start()
        self.create_service(Trigger, "capture", self._on_capture)
        self.create_timer(1.0, self._diagnostics)
        self.get_logger().info(f"VC0706 camera on {port}: {width}x{height} at {baud} baud")

    def _on_jpeg(self, data: bytes, stamp_s: float) -> None:
        stamp = messages.stamp_of(stamp_s)
        try:
            self.jpeg_pub.publish(messages.compressed_image(stamp, self.frame_id, data))
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is not None:
                self.image_pub.publish(messages.image(stamp, self.frame_id, image, "bgr8"))
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
             ("chunk_retries", c.chunk_retries), ("timeouts", c.timeouts),
             ("corrupt_replies", c.corrupt_replies), ("reconnects", c.reconnects)]))
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Stop the camera thread."""
        self.loop.stop()


def main(args: list[str] | None = None) -> None:
    """Console script `vc0706_camera`."""
    raise SystemExit(run_node(Vc0706Camera, args))


if __name__ == "__main__":
    main()
