"""Stereo visual odometry on images rendered by the MuJoCo simulator (south_pole world at the
rover's start, low sun): the recovered motion matches the rover's true motion; dark or
blank images are refused with a reason."""

from __future__ import annotations

import math
import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import transforms3d  # noqa: E402

from ilrs_robots.core.stereo import OPTICAL_FROM_MUJOCO, StereoRig, pose_matrix  # noqa: E402
from ilrs_robots.core.visual_odometry import StereoVisualOdometry  # noqa: E402

W, H = 640, 480


@pytest.fixture(scope="module")
def sim():
    from ilrs_robots.sim.physics import RoverPhysics

    p = RoverPhysics("south_pole")
    yield p
    p.close()


def _base(p) -> np.ndarray:
    pos, q, _, _ = p.ground_truth()
    return pose_matrix(transforms3d.quaternions.quat2mat(q), pos)


def _camera(p) -> np.ndarray:
    pos, rot = p.camera_pose("nav_left")
    return pose_matrix(rot @ OPTICAL_FROM_MUJOCO, pos)


def _odometry(p) -> StereoVisualOdometry:
    k = p.camera_intrinsics("nav_left", W, H)
    rig = StereoRig(W, H, k.fx, k.fy, k.cx, k.cy, p.rover.stereo_baseline)
    return StereoVisualOdometry(rig, base_from_camera=np.linalg.inv(_base(p)) @ _camera(p))


def _pair(p, gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    imgs = [p.render(n, W, H) for n in ("nav_left", "nav_right")]
    if gain != 1.0:
        imgs = [np.clip(i.astype(np.float32) * gain, 0, 255).astype(np.uint8) for i in imgs]
    return imgs[0], imgs[1]


def _yaw(T: np.ndarray) -> float:
    return math.degrees(math.atan2(T[1, 0], T[0, 0]))


def test_recovers_driving_and_turning_motion(sim):
    sim.reset_pose(2.0, 0.0, 0.0)
    vo = _odometry(sim)
    first = vo.process(*_pair(sim), stamp=sim.time)
    assert not first.ok and first.stamp_from == pytest.approx(sim.time)
    start = _base(sim)
    total = np.eye(4)
    legs = [[2.0] * 6] * 3 + [[-1.0, 1.0] * 3] * 3 + [[1.5, 2.5] * 3] * 3
    for speeds in legs:
        before = _base(sim)
        sim.set_wheel_speeds(speeds)
        sim.advance(0.25)
        truth = np.linalg.inv(before) @ _base(sim)
        res = vo.process(*_pair(sim), stamp=sim.time)
        assert res.ok, res.reason
        assert res.inliers >= 50 and res.motion is not None and res.covariance is not None
        assert np.linalg.norm(res.motion[:3, 3] - truth[:3, 3]) < 0.02
        assert abs(_yaw(res.motion) - _yaw(truth)) < 0.2
        total = total @ res.motion
    sim.set_wheel_speeds([0.0] * 6)
    truth_total = np.linalg.inv(start) @ _base(sim)
    assert np.linalg.norm(truth_total[:3, 3]) > 0.5 and abs(_yaw(truth_total)) > 3.0
    assert np.linalg.norm(total[:3, 3] - truth_total[:3, 3]) < 0.03
    assert abs(_yaw(total) - _yaw(truth_total)) < 0.3


def test_dim_low_sun_images_still_give_motion(sim):
    sim.reset_pose(2.0, 0.0, 0.0)
    vo = _odometry(sim)
    vo.process(*_pair(sim, gain=0.3), stamp=0.0)
    before = _base(sim)
    sim.set_wheel_speeds([2.0] * 6)
    sim.advance(0.3)
    sim.set_wheel_speeds([0.0] * 6)
    truth = np.linalg.inv(before) @ _base(sim)
    res = vo.process(*_pair(sim, gain=0.3), stamp=0.3)
    assert res.ok, res.reason
    assert np.linalg.norm(res.motion[:3, 3] - truth[:3, 3]) < 0.015


def test_dark_images_are_refused_with_a_reason():
    rig = StereoRig(W, H, 415.0, 415.0, 319.5, 239.5, 0.3)
    vo = StereoVisualOdometry(rig)
    dark = np.zeros((H, W, 3), np.uint8)
    res = vo.process(dark, dark, stamp=1.0)
    assert not res.ok and res.motion is None
    assert "too few features" in res.reason
    assert not vo.has_reference
    # a flat grey wall is as useless as darkness
    grey = np.full((H, W), 90, np.uint8)
    grey = cv2.GaussianBlur(grey, (5, 5), 0)
    res = vo.process(grey, grey, stamp=2.0)
    assert not res.ok and "too few features" in res.reason
