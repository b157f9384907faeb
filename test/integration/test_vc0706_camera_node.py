"""vc0706_camera node in its own process over DDS, against the VC0706 emulator on a pty."""

from __future__ import annotations

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from ilrs_robots.runner.ros_client import wait_until
from ilrs_robots.sim.devices.vc0706_emulator import Vc0706Camera


def call(ros, client, timeout=30.0):
    assert client.wait_for_service(timeout_sec=15)
    future = client.call_async(Trigger.Request())
    assert wait_until(future.done, timeout)
    return future.result()


def camera_status(diag):
    last = diag.last()
    return next((s for s in last.status if s.name.endswith("vc0706")), None) if last else None


def test_pictures_on_timer_and_request_and_after_the_port_returns(ros, launcher, tmp_path):
    cam = Vc0706Camera(tmp_path / "vc0706", size=(640, 480)).start()
    jpegs = ros.subscribe(CompressedImage, "/rover1/hazcam/image_raw/compressed")
    images = ros.subscribe(Image, "/rover1/hazcam/image_raw")
    diag = ros.subscribe(DiagnosticArray, "/diagnostics")
    node = launcher.start("vc0706_camera", namespace="rover1/hazcam", parameters={
        "port": str(cam.link), "baud": 115200, "width": 320, "height": 240, "period": 3.0})
    try:
        first = jpegs.wait_for(timeout=30)
        assert first is not None, node.output()
        decoded = cv2.imdecode(np.frombuffer(first.data, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (240, 320, 3) and first.format == "jpeg"
        assert cam.current_baud == 115200 and cam.size == (320, 240)  # configured the camera
        image = images.wait_for(timeout=5)
        assert (image.width, image.height, image.encoding) == (320, 240, "bgr8")

        client = ros.node.create_client(Trigger, "/rover1/hazcam/capture")
        before = len(jpegs.messages)
        result = call(ros, client)
        assert result.success, result.message
        assert wait_until(lambda: len(jpegs.messages) > before, 5)

        cam.vanish()
        status = wait_until(lambda: (s := camera_status(diag)) is not None
                            and s.level == DiagnosticStatus.ERROR and s, 20)
        assert status, camera_status(diag)
        assert node.alive
        cam.reappear()  # a power cycle: back at 38400 baud, the node must find it again
        count = len(jpegs.messages)
        assert wait_until(lambda: len(jpegs.messages) > count, 40), node.output()
        assert cam.current_baud == 115200
    finally:
        cam.stop()
