"""The localization pipeline (core/localizer.py): which visual odometry steps are fused,
with a scripted stand-in for the stereo tracker (no images)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilrs_robots.core.estimation import increment_matrix
from ilrs_robots.core.geometry import Pose2D
from ilrs_robots.core.localizer import Localizer
from ilrs_robots.core.visual_odometry import VOResult

G = 1.62
COV = np.diag([0.005 ** 2] * 3 + [0.002 ** 2] * 3)


class ScriptedVO:
    """Gives the increments it is handed, in turn, as the stereo tracker would."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, float, float]] = []
        self.last: float | None = None

    def process(self, left: np.ndarray, right: np.ndarray, stamp: float) -> VOResult:
        """The next scripted increment from the previous frame to this one."""
        if self.last is None:
            self.last = stamp
            return VOResult(False, "no reference yet", stamp_from=stamp)
        dx, dy, dyaw = self.steps.pop(0)
        res = VOResult(True, motion=increment_matrix(dx, dy, dyaw), covariance=COV,
                       stamp_from=self.last, stamp_to=stamp, inliers=200, matches=220)
        self.last = stamp
        return res

    def reset(self) -> None:
        """Forget the reference."""
        self.last = None


def drive(loc: Localizer, vo: ScriptedVO, t0: float, seconds: float, speed: float,
          vo_steps: list[tuple[float, float, float]] | None = None,
          pitch: float = 0.0) -> float:
    """Wheels and IMU at 20 Hz driving straight at `speed` (on a slope of `pitch` rad,
    positive nose down); a frame every 0.2 s whose increment is the true one unless
    `vo_steps` says otherwise. Returns the end time."""
    accel = np.array([-G * math.sin(pitch), 0.0, G * math.cos(pitch)])
    frame = np.zeros((2, 2), dtype=np.uint8)
    t = t0
    for k in range(1, int(round(seconds / 0.05)) + 1):
        t = t0 + 0.05 * k
        loc.imu(t, accel, np.zeros(3))
        loc.wheel_odometry(t, speed, 0.0, Pose2D(speed * t, 0.0, 0.0))
        if k % 4 == 0:
            vo.steps.append(vo_steps.pop(0) if vo_steps else (0.2 * speed, 0.0, 0.0))
            loc.visual_odometry(t, frame, frame)
    return t


def test_a_step_back_against_the_wheels_is_a_tracking_error_not_slip():
    loc = Localizer(Pose2D(), max_yaw_rate=0.15)
    vo = ScriptedVO()
    loc.vo = vo
    t = drive(loc, vo, 0.0, 4.0, 0.5)
    assert loc.stats.fused >= 15
    # the tracker twice in a row says the rover went 0.3 m back while the wheels rolled
    # 0.1 m forward: slip only shortens the wheels' motion, so neither step is fused
    t = drive(loc, vo, t, 0.4, 0.5, vo_steps=[(-0.3, 0.0, 0.0), (-0.3, 0.0, 0.0)])
    t = drive(loc, vo, t, 2.0, 0.5)
    est = loc.estimate()
    assert abs(est.pose.x - 0.5 * t) < 0.1, f"estimate {est.pose.x:.2f} m, truth {0.5 * t:.2f}"
    assert abs(est.pose.yaw) < math.radians(0.5)
    assert loc.stats.reasons["moves otherwise than the wheels"] == 2


@pytest.mark.parametrize("pitch", [-0.25, 0.0])
def test_backing_down_a_slope_faster_than_the_wheels_is_a_skid_on_a_slope_only(pitch):
    """Nose up (pitch < 0) the rear is downhill: the camera's steps back beyond the wheels'
    are the rover skidding and are fused; on level ground they are tracking errors."""
    loc = Localizer(Pose2D(), max_yaw_rate=0.15)
    vo = ScriptedVO()
    loc.vo = vo
    t = drive(loc, vo, 0.0, 2.0, 0.0, pitch=pitch)
    x0 = loc.estimate().pose.x
    # the wheels say 0.05 m/s back, the rover slides at 0.25 m/s (0.05 m per frame)
    t = drive(loc, vo, t, 8.0, -0.05, vo_steps=[(-0.05, 0.0, 0.0)] * 40, pitch=pitch)
    moved = x0 - loc.estimate().pose.x
    refused = loc.stats.reasons["moves otherwise than the wheels"]
    if pitch:
        assert moved > 0.8 * 2.0 * math.cos(pitch), f"{moved:.2f} m of 2 m slid"
        assert refused == 0 and loc.estimate().slip.skidding
    else:
        assert moved < 0.6, f"{moved:.2f} m: a tracker's error taken for motion"
        assert refused >= 15 and loc.stats.reasons["no reference yet"] >= 15  # after each


def test_a_camera_that_sees_no_motion_twice_is_fused_as_slip():
    """The stall case the rule above must not break: the wheels roll, the camera twice sees
    the rover stand still; the second step is fused and the estimate stops short."""
    loc = Localizer(Pose2D(), max_yaw_rate=0.15)
    vo = ScriptedVO()
    loc.vo = vo
    t = drive(loc, vo, 0.0, 2.0, 0.5)
    x0 = loc.estimate().pose.x
    t = drive(loc, vo, t, 2.0, 0.5, vo_steps=[(0.0, 0.0, 0.0)] * 10)
    assert loc.estimate().pose.x - x0 < 0.5  # the wheels said 1 m
    assert loc.stats.reasons["moves less than the wheels"] >= 1


def test_a_starved_node_counts_late_imu_samples_and_wheels_fused_without_them():
    """Wheels 1.5 s ahead of the IMU are fused without it (the IMU went quiet); the IMU
    samples that then arrive behind the filter's time are counted, with how late they are."""
    loc = Localizer(Pose2D(0.0, 0.0, 0.0))
    g = np.array([0.0, 0.0, 1.62])
    loc.imu(0.0, g, np.zeros(3))
    for k in range(1, 31):  # 1.5 s of wheel odometry while the IMU's samples are queued
        loc.wheel_odometry(0.05 * k, 0.2, 0.0, Pose2D(0.01 * k, 0.0, 0.0))
    assert loc.wheels_unwaited > 0 and loc.imu_late == 0
    for k in range(1, 11):  # the queued samples arrive at last
        loc.imu(0.01 * k, g, np.zeros(3))
    assert loc.imu_late == 10
    assert 1.0 < loc.imu_late_max < 1.5  # the filter went on to the wheels flushed at 1.1 s
    loc.imu(1.6, g, np.zeros(3))  # on time again
    assert loc.imu_late == 10


@pytest.mark.parametrize("delay", [0.5, 1.5])
def test_a_turn_whose_imu_samples_come_late_keeps_its_heading(delay: float):
    """A starved node takes the IMU ``delay`` s late while the wheels come on time: within
    max_wait the wheels wait for it; beyond, the filter goes on with them and corrects each
    stretch it turned at a stale rate when that stretch's gyro sample comes. The turn (0.9
    rad at 0.3 rad/s, the wheels saying half of it, as skid steering does) ends on the
    gyro's heading (18 deg off at 1.5 s without the correction)."""
    loc = Localizer(Pose2D(0.0, 0.0, 0.0))
    g = np.array([0.0, 0.0, 1.62])

    def rate(t: float) -> float:
        return 0.3 if 1.0 <= t < 4.0 else 0.0

    imu = [(0.01 * k, rate(0.01 * k)) for k in range(801)]  # 8 s at 100 Hz
    delivered = 0
    for k in range(161):  # wheels at 20 Hz, on time
        t = 0.05 * k
        while delivered < len(imu) and imu[delivered][0] <= t - delay:
            loc.imu(imu[delivered][0], g, np.array([0.0, 0.0, imu[delivered][1]]))
            delivered += 1
        loc.wheel_odometry(t, 0.0, 0.5 * rate(t), Pose2D(0.0, 0.0, 0.0))
    for stamp, w in imu[delivered:]:
        loc.imu(stamp, g, np.array([0.0, 0.0, w]))
    late = delay > loc.max_wait
    assert (loc.wheels_unwaited > 0) == late  # the case under test happened
    assert math.degrees(abs(loc.ekf.pose.yaw - 0.9)) < (2.0 if late else 0.5)


def test_imu_samples_from_another_clock_are_not_corrected_and_stay_cheap():
    """IMU stamps of sim time beside wheel stamps of wall time (a node left without
    use_sim_time): the filter's step to the wheels' time is a clock jump, not 1.8e9 s of
    motion in 0.05 s sub-steps (the node hung there and never answered its parameter
    service), and the IMU, late by decades, is fused without the late correction."""
    loc = Localizer(Pose2D(0.0, 0.0, 0.0))
    g = np.array([0.0, 0.0, 1.62])
    loc.imu(0.01, g, np.zeros(3))
    for k in range(60):  # wall-clock wheels, flushed after max_wait
        loc.wheel_odometry(1.8e9 + 0.05 * k, 0.0, 0.0, Pose2D(0.0, 0.0, 0.0))
    assert loc.ekf.time_jumps == 1
    yaw = loc.ekf.pose.yaw
    for k in range(2, 2000):
        loc.imu(0.01 * k, g, np.array([0.0, 0.0, 0.3]))
    assert loc.imu_late == 1998
    assert abs(loc.ekf.pose.yaw - yaw) < 0.01  # no stretch of decades re-turned
