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


def _clock_publisher(ros, seconds: float):
    """Publish a frozen sim clock at `seconds` until the returned event is set."""
    import threading

    from rosgraph_msgs.msg import Clock

    from ilrs_robots.nodes.messages import stamp_of

    pub = ros.publisher(Clock, "/clock")
    stop = threading.Event()

    def run():
        while not stop.wait(0.05):
            pub.publish(Clock(clock=stamp_of(seconds)))
    threading.Thread(target=run, daemon=True).start()
    return stop


def test_lossy_line_publishes_only_the_pictures_the_camera_held(ros, launcher, tmp_path):
    """One byte lost in 5 % of READ_FBUF replies: every published JPEG is byte for byte a
    picture the camera froze, the losses are counted on /diagnostics, and the stamps are
    the node's (sim) clock at the capture, not wall time."""
    cam = Vc0706Camera(tmp_path / "vc0706", size=(320, 240), seed=11).start()
    cam.lose_bytes(0.05)
    stop_clock = _clock_publisher(ros, 7000.0)
    jpegs = ros.subscribe(CompressedImage, "/rover1/hazcam/image_raw/compressed")
    diag = ros.subscribe(DiagnosticArray, "/diagnostics")
    node = launcher.start("vc0706_camera", namespace="rover1/hazcam", parameters={
        "port": str(cam.link), "baud": 115200, "width": 320, "height": 240, "period": 0.1,
        "use_sim_time": True})
    try:
        assert wait_until(lambda: len(jpegs.messages) >= 8, 120), node.output()
        held = set(cam.held_frames)
        for msg in jpegs.messages[:8]:
            assert bytes(msg.data) in held
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            assert 6990.0 < stamp < 7000.0  # sim time, less the picture's age
        assert cam.bytes_lost >= 1

        def counted():
            s = camera_status(diag)
            if s is None:
                return None
            values = {kv.key: kv.value for kv in s.values}
            errors = sum(int(values[k]) for k in ("misaligned_chunks", "timeouts",
                                                  "corrupt_replies"))
            return errors >= 1 and int(values["frames"]) >= 8 and values
        assert wait_until(counted, 10), camera_status(diag)
    finally:
        stop_clock.set()
        cam.stop()


def test_live_period_and_refused_values(ros, launcher, tmp_path):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    bad = launcher.start("vc0706_camera", parameters={"port": "/dev/null", "compression": 300})
    assert wait_until(lambda: not bad.alive, 15)
    assert bad.returncode == 2 and "parameter 'compression'" in bad.output()

    cam = Vc0706Camera(tmp_path / "vc0706", size=(160, 120)).start()
    jpegs = ros.subscribe(CompressedImage, "/cam/image_raw/compressed")
    node = launcher.start("vc0706_camera", namespace="cam", parameters={
        "port": str(cam.link), "width": 160, "height": 120, "period": 0.0})
    try:
        client = AsyncParameterClient(ros.node, "/cam/vc0706_camera")
        assert client.wait_for_services(timeout_sec=30.0), node.output()

        def set_(*params):
            future = client.set_parameters(list(params))
            assert wait_until(future.done, 30)
            return future.result().results
        assert cam.requests_served == 0 or not jpegs.messages  # period 0: on request only
        refused = set_(Parameter("baud", Parameter.Type.INTEGER, 38400),
                       Parameter("compression", Parameter.Type.INTEGER, 999))
        assert not refused[0].successful and not refused[1].successful
        assert "compression" in refused[1].reason
        ok = set_(Parameter("period", Parameter.Type.INTEGER, 1))  # an int for a double
        assert ok[0].successful, ok[0].reason
        assert wait_until(lambda: len(jpegs.messages) >= 2, 60), node.output()
    finally:
        cam.stop()
