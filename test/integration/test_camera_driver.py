"""camera_driver in its own process over real DDS, fed by generated video files and folders."""

from __future__ import annotations

import functools
import http.server
import threading
import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ilrs_robots.core.calibration import CameraCalibration, format_calibration
from ilrs_robots.runner.ros_client import wait_until

W, H = 320, 240


def write_video(path, width=W, height=H, frames=30):
    """An MJPG video whose frames differ (a moving bar and the frame number)."""
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (width, height))
    assert out.isOpened()
    for i in range(frames):
        img = np.full((height, width, 3), 40, np.uint8)
        cv2.rectangle(img, (i * 7 % width, 0), (i * 7 % width + 20, height), (0, 200, 255), -1)
        cv2.putText(img, str(i), (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        img[:, width // 2:, 0] = 200  # the right half differs from the left
        out.write(img)
    out.release()
    return path


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "clip.avi")


def pixels(msg: Image) -> np.ndarray:
    channels = 3 if msg.encoding == "bgr8" else 1
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, channels)


def test_video_file_streams_with_calibration(ros, launcher, video, tmp_path):
    cal = CameraCalibration.pinhole(W, H, 250.0, name="mast")
    (tmp_path / "cal.yaml").write_text(format_calibration(cal))
    images = ros.subscribe(Image, "/rover1/camera/image_raw")
    infos = ros.subscribe(CameraInfo, "/rover1/camera/camera_info")
    jpeg = ros.subscribe(CompressedImage, "/rover1/camera/image_raw/compressed")
    node = launcher.start("camera_driver", namespace="rover1/camera", parameters={
        "source": str(video), "fps": 20.0, "frame_id": "mast_optical_frame",
        "calibration_file": str(tmp_path / "cal.yaml")})
    assert wait_until(lambda: len(images.messages) >= 40, 20), node.output()
    msgs = images.messages
    first = msgs[0]
    assert (first.width, first.height, first.encoding, first.step) == (W, H, "bgr8", 3 * W)
    assert first.header.frame_id == "mast_optical_frame" and len(first.data) == W * H * 3
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    assert abs(stamps[-1] - time.time()) < 2.0  # stamped at capture, wall clock
    span = stamps[-1] - stamps[0]
    assert 15 <= (len(msgs) - 1) / span <= 25  # plays at the requested 20 fps
    assert len({bytes(m.data[:3000]) for m in msgs[:30]}) > 10  # the frames change; it loops
    info = infos.wait_for(timeout=5)
    assert info.k[0] == 250.0 and info.k[2] == pytest.approx((W - 1) / 2)
    assert (info.width, info.height) == (W, H)
    frame = jpeg.wait_for(timeout=5)
    decoded = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (H, W, 3)
    assert np.abs(decoded.astype(int) - pixels(first).astype(int)).mean() < 60


def test_image_folder_in_mono8(ros, launcher, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((60, 80, 3), 50 * i, np.uint8))
    images = ros.subscribe(Image, "/cam/image_raw")
    launcher.start("camera_driver", namespace="cam", parameters={
        "source": str(folder), "fps": 10.0, "encoding": "mono8"})
    assert wait_until(lambda: len(images.messages) >= 8, 15)
    values = [int(pixels(m)[0, 0, 0]) for m in images.messages[:8]]
    assert images.messages[0].encoding == "mono8" and images.messages[0].step == 80
    assert sorted(set(values)) == [0, 50, 100, 150]  # every picture, looping


def test_side_by_side_stereo_is_split_and_synchronised(ros, launcher, tmp_path):
    video = write_video(tmp_path / "sbs.avi", width=2 * W)
    left = ros.subscribe(Image, "/rover1/stereo/left/image_raw")
    right = ros.subscribe(Image, "/rover1/stereo/right/image_raw")
    launcher.start("camera_driver", namespace="rover1/stereo", parameters={
        "source": str(video), "stereo": "side_by_side", "fps": 15.0})
    assert wait_until(lambda: len(left.messages) >= 5 and len(right.messages) >= 5, 15)
    lm, rm = left.messages[2], right.messages[2]
    assert (lm.width, lm.height, rm.width) == (W, H, W)
    assert lm.header.stamp == rm.header.stamp
    assert pixels(rm)[:, :, 0].mean() > pixels(lm)[:, :, 0].mean() + 50  # the right half


def test_missing_source_is_reported_then_recovers(ros, launcher, tmp_path):
    path = tmp_path / "later.avi"
    images = ros.subscribe(Image, "/cam/image_raw")
    diag = ros.subscribe(DiagnosticArray, "/diagnostics")
    node = launcher.start("camera_driver", namespace="cam",
                          parameters={"source": str(path), "fps": 10.0})

    def status(level):
        last = diag.last()
        return last is not None and any(s.name.endswith("camera") and s.level == level
                                        for s in last.status) and last
    err = wait_until(lambda: status(DiagnosticStatus.ERROR), 15)
    assert err and "does not exist" in err.status[0].message
    assert node.alive and not images.messages
    write_video(path)
    assert images.wait_for(timeout=20) is not None, node.output()
    assert wait_until(lambda: status(DiagnosticStatus.OK), 10)


CONFIGURATION_ERRORS = [
    ({"source": "videotestsrc ! appsink"}, "source", "without GStreamer"),
    ({"source": "0", "stereo": "pair"}, "source_right", "needed"),
    ({"source": "0", "calibration_file": "/proc/version"}, "calibration_file", "cannot"),
    ({"source": "0", "encoding": "rgb16"}, "encoding", "bgr8 or mono8"),
    ({"source": "0", "fps": 1e9}, "fps", "in [0.1, 120]"),
    ({"source": "0", "jpeg_quality": 0}, "jpeg_quality", "in [1, 100]"),
    ({"source": "0", "sourc": "1"}, "sourc", "did you mean 'source'"),
]


@pytest.fixture(scope="module")
def misconfigured(module_launcher):
    """A camera driver per configuration error, all started at once (each must exit on its
    own), by the parameter it names."""
    return {name: module_launcher.start("camera_driver", parameters=params)
            for params, name, _text in CONFIGURATION_ERRORS}


@pytest.mark.parametrize("params,name,text", CONFIGURATION_ERRORS)
def test_configuration_errors_are_clear(misconfigured, params, name, text):
    proc = misconfigured[name]
    assert wait_until(lambda: not proc.alive, 120), proc.output()
    out = proc.output()
    assert proc.returncode == 2, out
    assert f"parameter '{name}'" in out and text in out and "Traceback" not in out


def test_missing_v4l2_device_is_named(ros, launcher):
    diag = ros.subscribe(DiagnosticArray, "/diagnostics")
    node = launcher.start("camera_driver", namespace="cam", parameters={"source": "/dev/video99"})
    found = diag.wait_for(lambda a: any("camera device /dev/video99 does not exist" in s.message
                                        for s in a.status), timeout=15)
    assert found is not None and node.alive


def test_network_stream_url(ros, launcher, video):
    """An HTTP stream (served on loopback by this test) goes through OpenCV's FFmpeg."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(video.parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        images = ros.subscribe(Image, "/net/image_raw")
        node = launcher.start("camera_driver", namespace="net", parameters={
            "source": f"http://127.0.0.1:{server.server_port}/{video.name}", "fps": 30.0})
        assert wait_until(lambda: len(images.messages) >= 10, 20), node.output()
        assert (images.messages[0].width, images.messages[0].height) == (W, H)
        assert "stream source" in node.output()
    finally:
        server.shutdown()
