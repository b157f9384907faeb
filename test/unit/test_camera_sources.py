"""Source classification and the pure helpers of drivers/camera.py."""

from __future__ import annotations

import os

import pytest
import yaml

from ilrs_robots.drivers.camera import (
    classify,
    clock_stamp,
    is_character_device,
)
from ilrs_robots.files import write_atomically
from ilrs_robots.resources import config_path


def test_character_devices_and_v4l_names_are_v4l2(tmp_path):
    link = tmp_path / "usb-Cam-video-index0"
    link.symlink_to("/dev/null")
    video = tmp_path / "clip.avi"
    video.write_bytes(b"")
    assert is_character_device(str(link)) and not is_character_device(str(video))
    assert classify(str(link)) == "v4l2"
    assert classify("/dev/v4l/by-id/usb-unplugged-video-index0") == "v4l2"  # not there yet
    assert classify("/dev/v4l/by-path/pci-0000:00:14.0-usb-0:1:1.0-video-index0") == "v4l2"
    assert classify("/dev/video4") == classify("2") == "v4l2"
    assert classify(str(video)) == "file" and classify(str(tmp_path)) == "folder"


def test_clock_stamp_takes_the_age_off_the_clock():
    assert clock_stamp(1000.0, captured=50.0, monotonic_now=50.25) == pytest.approx(999.75)
    assert clock_stamp(1000.0, captured=50.5, monotonic_now=50.25) == 1000.0  # never ahead


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "a" / "b" / "cal.yaml"
    write_atomically(path, "one: 1\n")
    write_atomically(path, "two: 2\n")
    assert path.read_text() == "two: 2\n" and os.listdir(path.parent) == ["cal.yaml"]


def test_rover_stack_names_cameras_stably():
    stack = yaml.safe_load(config_path("stacks", "rover.yaml").read_text())
    nodes = stack["nodes"] if isinstance(stack, dict) else stack
    cams = [n for n in nodes if n.get("executable") == "camera_driver"]
    sources = [v for n in cams for k, v in n["parameters"].items()
               if k in ("source", "source_right")]
    assert len(sources) == 3
    assert all(s.startswith("/dev/v4l/") and classify(s) == "v4l2" for s in sources)
