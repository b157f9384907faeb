"""The VC0706 camera driver against the firmware emulator on a real pty.

Most frames are small or strongly compressed so that the paced wire time (10 bits per byte at
38400 or 115200 baud) stays short; one test reads a full 640x480 frame.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from ilrs_robots.drivers.vc0706 import BadFrame, LinkLost, NoReply, Vc0706Client, decode_picture
from ilrs_robots.protocols.vc0706 import Cmd
from ilrs_robots.sim.devices.vc0706_emulator import Vc0706Camera

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "cv2 could not decode the JPEG"
    return img


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[Vc0706Camera]:
    with Vc0706Camera(tmp_path / "camera0", seed=3) as cam:
        yield cam


@pytest.fixture
def client(camera: Vc0706Camera) -> Iterator[Vc0706Client]:
    # 0.6 s for a reply: at 0.2 s a loaded machine made the emulator's reply late, and a
    # spurious timeout and retry changed the counts these tests check
    with Vc0706Client(str(camera.link), timeout=0.6, chunk_size=512) as host:
        yield host


def small(client: Vc0706Client, size: tuple[int, int] = (160, 120)) -> None:
    client.set_size(*size)
    client.set_compression(0xFF)


def test_version_size_and_small_frames_at_38400(camera, client) -> None:
    assert os.readlink(camera.link).startswith("/dev/pts/")
    assert client.version() == "VC0703 1.00"
    for size in ((160, 120), (320, 240)):
        small(client, size)
        assert client.get_size() == size
        img = decode(client.capture())
        assert img.shape == (size[1], size[0], 3)
    assert camera.frozen_frame is None  # resumed after each capture
    c = client.counters
    assert c.frames == 2 and c.bad_frames == 0 and c.corrupt_replies == 0
    # a retry only after a reply later than 0.6 s (a stress run starved the emulator once)
    assert c.retries == c.timeouts, c


@pytest.mark.parametrize("size", [(160, 120), (320, 240), (640, 480)])
def test_each_size_at_115200(camera, client, size) -> None:
    client.set_compression(0xFF)
    client.set_baud(115200)
    assert camera.current_baud == 115200 and client.baud == 115200
    client.set_size(*size)
    first, second = client.capture(), client.capture()
    assert decode(first).shape == (size[1], size[0], 3)
    assert first != second  # a new frame each time (the counter moves)


def test_full_size_default_compression_at_115200(camera, client) -> None:
    client.set_baud(115200)
    jpeg = client.capture()
    assert decode(jpeg).shape == (480, 640, 3)
    assert len(jpeg) > 8000


def test_host_at_the_old_baud_is_not_understood(camera, client) -> None:
    client.set_baud(115200)
    stale = Vc0706Client(str(camera.link), 38400, timeout=0.05, retries=1)
    stale.open()
    try:
        with pytest.raises(NoReply):
            stale.version()
    finally:
        stale.close()
    assert camera.bytes_garbled > 0
    client.open()  # reopened at 115200 by the client itself
    assert client.version() == "VC0703 1.00"


def test_reset_comes_back_at_38400(camera, client) -> None:
    small(client)
    client.set_baud(115200)
    client.reset()
    assert client.baud == 38400 and camera.current_baud == 38400 and camera.resets == 1
    assert client.get_size() == (160, 120)  # EEPROM survives the reset
    assert camera.compression == 0x36  # the register does not
    client.set_compression(0xFF)
    assert decode(client.capture()).shape == (120, 160, 3)


def test_short_reads(tmp_path) -> None:
    with Vc0706Camera(tmp_path / "clone", short_reads=200, seed=1) as cam, \
            Vc0706Client(str(cam.link), chunk_size=512) as host:
        small(host)
        jpeg = host.capture()
        decode(jpeg)
        # the first short chunk is read again; the same 200 bytes twice: the camera's limit,
        # asked for from then on (no more short chunks, no more re-reads)
        assert host.device_chunk == 200 and host.counters.short_chunks == 2
        assert host.counters.retries == 1 and host.counters.misaligned_chunks == 0
        assert cam.short_replies == 2


def test_corrupted_and_dropped_chunks_are_retried(camera, client) -> None:
    small(client)
    camera.corrupt_next(2, Cmd.READ_FBUF)
    decode(client.capture())
    assert client.counters.corrupt_replies == 2 and client.counters.chunk_retries == 2
    camera.drop_next(2, Cmd.READ_FBUF)
    decode(client.capture())
    assert client.counters.timeouts == 2 and client.counters.chunk_retries == 4
    camera.corrupt_next(1)  # the stop reply: retried, the frame stays frozen
    camera.drop_next(1, Cmd.GET_FBUF_LEN)
    decode(client.capture())
    assert client.counters.frames == 3 and client.counters.corrupt_replies == 3


def test_garbage_before_replies_is_skipped(camera, client) -> None:
    small(client)
    camera.noise_next(5, 40)
    decode(client.capture())
    assert client.counters.garbage_bytes == 200 and client.counters.retries == 0


def test_no_reply_after_every_retry(camera, client) -> None:
    camera.drop_next(client.retries + 1)
    with pytest.raises(NoReply):
        client.version()
    assert client.version() == "VC0703 1.00"


def test_vanish_reappear_and_reconnect(camera, client) -> None:
    small(client)
    client.set_baud(115200)
    camera.vanish()
    with pytest.raises(LinkLost):
        client.capture()
    assert not client.is_open
    with pytest.raises(LinkLost):
        client.reconnect()  # still unplugged
    camera.reappear()  # a power cycle: the camera is back at 38400
    assert client.reconnect() == "VC0703 1.00"
    assert client.baud == 38400 and client.counters.reconnects == 1
    client.set_compression(0xFF)
    assert decode(client.capture()).shape == (120, 160, 3)


def test_standalone_emulator(tmp_path) -> None:
    link = tmp_path / "cam"
    proc = subprocess.Popen([sys.executable, "-m", "ilrs_robots.sim.devices.vc0706_emulator",
                             "--link", str(link), "--size", "160x120", "--compression", "255"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == str(link)
        with Vc0706Client(str(link)) as host:
            assert host.get_size() == (160, 120)
            decode(host.capture())
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_lost_bytes_never_reach_a_picture(tmp_path) -> None:
    """A noisy UART loses one byte in 5 % of READ_FBUF replies: every picture the host
    returns is byte for byte a picture the camera held, and each loss was seen and retried."""
    with Vc0706Camera(tmp_path / "noisy", seed=7) as cam, \
            Vc0706Client(str(cam.link), chunk_size=512) as host:
        host.set_baud(115200)
        host.set_size(320, 240)
        cam.lose_bytes(0.05)
        pictures = [host.capture_picture((320, 240)) for _ in range(10)]
        held = set(cam.held_frames)
        for picture in pictures:
            assert picture.jpeg in held
            assert picture.image.shape == (240, 320, 3)
        c = host.counters
        assert cam.bytes_lost >= 1
        assert c.misaligned_chunks + c.timeouts + c.corrupt_replies >= cam.bytes_lost
        assert c.frames == 10 and host.device_chunk == 0  # losses are not a short-read clone


def test_pictures_that_do_not_decode_cleanly_are_refused() -> None:
    ok, buf = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    good = buf.tobytes()
    assert decode_picture(good, len(good), (160, 120)).shape == (120, 160, 3)
    with pytest.raises(BadFrame, match="160x120"):
        decode_picture(good, len(good), (320, 240))
    with pytest.raises(BadFrame, match="announced"):
        decode_picture(good, len(good) + 1)
    with pytest.raises(BadFrame, match="EOI"):
        decode_picture(good[:-1] + b"\x00")
    scan = good.rindex(b"\xff\xda")
    missing = good[:scan + 40] + good[scan + 41:]  # a byte lost inside the scan data
    with pytest.raises(BadFrame, match="corrupt JPEG"):
        decode_picture(missing)
