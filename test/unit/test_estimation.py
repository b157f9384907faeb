"""The localization EKF against a known synthetic traverse: wheel odometry with a scale error
and a skid-steer yaw error, a gyro with a bias, a tilted accelerometer and noisy visual
odometry. The fused estimate must beat dead reckoning and stay within a bound; a stall
must raise the slip flag, which drops again (with hysteresis) once the wheels grip."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from ilrs_robots.core.estimation import (
    EkfConfig,
    RoverEKF,
    TiltFilter,
    increment_matrix,
    map_to_odom,
    planar_increment,
    turn_slide_variance,
)
from ilrs_robots.core.geometry import Pose2D, wrap_angle

G = 1.62
START = Pose2D(3.0, -2.0, 0.4)


def _rot(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1.0]])
    ry = np.array([[cp, 0, sp], [0, 1.0, 0], [-sp, 0, cp]])
    rx = np.array([[1.0, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return rz @ ry @ rx


@dataclass
class Run:
    """Result of a synthetic run: truth, fused and dead-reckoned final poses, distance."""

    truth: Pose2D
    fused: Pose2D
    wheels_only: Pose2D
    wheels_gyro: Pose2D
    distance: float
    max_fused_error: float
    ekf: RoverEKF
    slip_log: list[tuple[float, bool, float]] = field(default_factory=list)
    error_log: list[tuple[float, float, float]] = field(default_factory=list)


def synthetic_run(duration: float, seed: int = 1, *, wheel_scale: float = 1.03,
                  wheel_yaw_scale: float = 1.15, gyro_bias: float = 0.002,
                  vo_rate: float = 5.0, vo_sigma_t: float = 0.002,
                  vo_sigma_yaw: float = 0.0005, vo_scale: float = 0.997,
                  vo_dropout: float = 0.1, stall: tuple[float, float] | None = None,
                  partial_slip: tuple[float, float, float] | None = None,
                  speed: float = 0.5, start: Pose2D = START,
                  tilt_deg: tuple[float, float] = (6.0, 4.0)) -> Run:
    """Drive a seeded random route (curvature segments and stops over tilted terrain) and
    feed the EKF at 50 Hz IMU, 10 Hz wheels and ``vo_rate`` Hz visual odometry.

    ``stall`` = (t0, t1): the wheels keep turning at full speed but the rover stands still.
    ``partial_slip`` = (t0, t1, ratio): the rover makes (1 - ratio) of the wheels' speed.
    """
    rng = np.random.default_rng(seed)
    dt = 0.02
    ekf = RoverEKF(pose=start, stamp=0.0)
    x, y, yaw, z = start.x, start.y, start.yaw, 0.0
    wx, wy, wyaw = x, y, yaw  # wheels only
    gx, gy, gyaw = x, y, yaw  # wheels + raw gyro
    dist = 0.0
    seg_end, cmd_v, cmd_w = 0.0, 0.0, 0.0
    ramp_v = ramp_w = 0.0
    v_prev = 0.0
    t = 0.0
    vo_every = int(round(1.0 / (vo_rate * dt)))
    wheel_every = 5
    pose_ref = None  # (T at reference) for VO
    max_err = 0.0
    run = Run(start, start, start, start, 0.0, 0.0, ekf)
    step = 0
    while t < duration - 1e-9:
        if t >= seg_end:  # new segment: drive on a random arc, or stop now and then
            seg_end = t + rng.uniform(5.0, 20.0)
            stop = rng.random() < 0.1
            cmd_v = 0.0 if stop else speed
            cmd_w = 0.0 if stop else rng.choice([0.0, 0.0, rng.uniform(-0.15, 0.15)])
        # the base ramps its speed (0.5 m/s^2) and turn rate
        ramp_v += float(np.clip(cmd_v - ramp_v, -0.5 * dt, 0.5 * dt))
        ramp_w += float(np.clip(cmd_w - ramp_w, -0.5 * dt, 0.5 * dt))
        wheel_v, wheel_w = ramp_v, ramp_w
        true_v, true_w = ramp_v, ramp_w
        if stall and stall[0] <= t < stall[1]:
            wheel_v, true_v, true_w, wheel_w = speed, 0.0, 0.0, 0.0
        if partial_slip and partial_slip[0] <= t < partial_slip[1]:
            wheel_v, wheel_w = speed, 0.0
            true_v, true_w = speed * (1.0 - partial_slip[2]), 0.0
        # terrain tilt varies with the distance travelled
        pitch = math.radians(tilt_deg[0]) * math.sin(dist / 15.0)
        roll = math.radians(tilt_deg[1]) * math.sin(dist / 23.0 + 1.0)
        x += true_v * math.cos(pitch) * math.cos(yaw) * dt
        y += true_v * math.cos(pitch) * math.sin(yaw) * dt
        z -= true_v * math.sin(pitch) * dt
        yaw = wrap_angle(yaw + true_w * dt)
        dist += abs(true_v) * dt
        t += dt
        step += 1
        # IMU: specific force = gravity seen in the body + motion accelerations
        R = _rot(roll, pitch, yaw)
        f = R.T @ np.array([0.0, 0.0, G])
        f += np.array([(true_v - v_prev) / dt, true_v * true_w, 0.0])
        v_prev = true_v
        accel = f + rng.normal(0.0, 0.02, 3)
        # body rates giving the yaw rate true_w at this tilt (roll/pitch rates neglected)
        w_body = R.T @ np.array([0.0, 0.0, true_w])
        gyro = w_body + np.array([0.0, 0.0, gyro_bias]) + rng.normal(0.0, 0.002, 3)
        ekf.update_imu(t, accel, gyro)
        gyaw = wrap_angle(gyaw + float(gyro[2]) * dt)
        if step % wheel_every == 0:
            meas_v = wheel_scale * wheel_v + (rng.normal(0.0, 0.01) if wheel_v else 0.0)
            meas_w = wheel_yaw_scale * wheel_w + (rng.normal(0.0, 0.02) if wheel_w else 0.0)
            ekf.update_wheel_odometry(t, meas_v, meas_w)
            wdt = wheel_every * dt
            wyaw = wrap_angle(wyaw + meas_w * wdt)
            wx += meas_v * math.cos(wyaw) * wdt
            wy += meas_v * math.sin(wyaw) * wdt
            gx += meas_v * math.cos(gyaw) * wdt
            gy += meas_v * math.sin(gyaw) * wdt
        if step % vo_every == 0:
            T = np.eye(4)
            T[:3, :3] = R
            T[:3, 3] = (x, y, z)
            if pose_ref is None:
                pose_ref = (T, t, np.eye(4))  # (keyframe truth, stamp, last measured)
                ekf.vo_reference(t)
            elif rng.random() >= vo_dropout:
                # like StereoVisualOdometry: noisy poses relative to a keyframe, reported as
                # steps since the last frame (so they telescope), new keyframe every 0.25 m
                T0, t0, last = pose_ref
                m = np.linalg.inv(T0) @ T
                m[:3, 3] = m[:3, 3] * vo_scale + rng.normal(0.0, vo_sigma_t, 3)
                m[:3, :3] = m[:3, :3] @ _rot(0.0, 0.0, rng.normal(0.0, vo_sigma_yaw))
                cov = np.diag([vo_sigma_t] * 3 + [vo_sigma_yaw] * 3) ** 2
                ekf.update_visual_odometry(t0, t, np.linalg.inv(last) @ m, cov)
                if np.linalg.norm(m[:3, 3]) > 0.25 or abs(math.atan2(m[1, 0], m[0, 0])) > 0.09:
                    pose_ref = (T, t, np.eye(4))
                else:
                    pose_ref = (T0, t, m)
            p = ekf.pose
            max_err = max(max_err, math.hypot(p.x - x, p.y - y))
            run.slip_log.append((t, ekf.slip.slipping, ekf.slip.ratio))
            run.error_log.append((t, math.hypot(p.x - x, p.y - y),
                                  math.degrees(wrap_angle(p.yaw - yaw))))
    run.truth = Pose2D(x, y, yaw)
    run.fused = ekf.pose
    run.wheels_only = Pose2D(wx, wy, wyaw)
    run.wheels_gyro = Pose2D(gx, gy, gyaw)
    run.distance = dist
    run.max_fused_error = max_err
    return run


def _err(a: Pose2D, b: Pose2D) -> tuple[float, float]:
    return math.hypot(a.x - b.x, a.y - b.y), abs(math.degrees(wrap_angle(a.yaw - b.yaw)))


def test_fused_estimate_beats_dead_reckoning_and_stays_bounded():
    run = synthetic_run(300.0, seed=3)
    pos, head = _err(run.fused, run.truth)
    wpos, _ = _err(run.wheels_only, run.truth)
    gpos, ghead = _err(run.wheels_gyro, run.truth)
    assert run.distance > 100.0
    assert pos < 0.5 * min(wpos, gpos)
    assert pos < 0.02 * run.distance
    assert run.max_fused_error < 0.02 * run.distance + 0.1
    assert head < 2.0 and head < ghead
    # the filter learnt the gyro bias and the wheels' speed scale
    assert run.ekf.gyro_bias == pytest.approx(0.002, abs=0.0007)
    assert run.ekf.wheel_scale == pytest.approx(1.03, abs=0.01)
    assert not any(s for _, s, _ in run.slip_log)


def test_without_visual_odometry_gyro_and_wheels_still_beat_wheels_alone():
    run = synthetic_run(200.0, seed=4, vo_dropout=1.0)
    pos, head = _err(run.fused, run.truth)
    wpos, whead = _err(run.wheels_only, run.truth)
    assert head < whead
    assert pos < wpos


def test_stall_raises_slip_flag_and_estimate_does_not_run_away():
    run = synthetic_run(60.0, seed=5, stall=(20.0, 30.0))
    during = [(t, s) for t, s, _ in run.slip_log if 20.0 <= t < 30.0]
    first = next(t for t, s in during if s)
    assert first < 21.5  # flagged within 1.5 s of the stall
    assert all(s for t, s in during if t > first)
    before = [s for t, s, _ in run.slip_log if t < 20.0]
    assert not any(before)
    after = [s for t, s, _ in run.slip_log if t > 33.0]
    assert after and not any(after)  # gripping again clears the flag
    pos, _ = _err(run.fused, run.truth)
    wpos, _ = _err(run.wheels_gyro, run.truth)
    assert wpos > 4.0 and pos < 0.3


def test_slip_flag_has_hysteresis():
    # stall raises the flag; 35 % slip keeps it (between off 0.2 and on 0.5); grip drops it
    run = synthetic_run(60.0, seed=6, stall=(10.0, 14.0), partial_slip=(14.0, 30.0, 0.35))
    flags = {round(t, 2): s for t, s, _ in run.slip_log}
    assert flags[13.0]
    assert all(s for t, s in flags.items() if 15.0 <= t < 30.0)
    assert not any(s for t, s in flags.items() if t > 33.0)
    ratios = [r for t, _, r in run.slip_log if 20.0 <= t < 30.0]
    assert np.median(ratios) == pytest.approx(0.35, abs=0.08)
    # and 35 % slip from a clean start does not raise it
    calm = synthetic_run(40.0, seed=6, partial_slip=(10.0, 30.0, 0.35))
    assert not any(s for _, s, _ in calm.slip_log)


def test_reset_sets_pose_and_covariance():
    ekf = RoverEKF(stamp=0.0)
    cov = np.diag([0.25, 0.25, 0.01])
    ekf.reset(Pose2D(10.0, -5.0, 1.0), cov, stamp=1.0)
    assert ekf.pose == Pose2D(10.0, -5.0, 1.0)
    np.testing.assert_allclose(ekf.pose_covariance, cov)
    ekf.update_wheel_odometry(2.0, 0.5, 0.0)
    ekf.update_wheel_odometry(3.0, 0.5, 0.0)
    dx, dy = ekf.pose.x - 10.0, ekf.pose.y + 5.0
    assert math.hypot(dx, dy) > 0.3  # drove off along the new heading
    assert abs(math.atan2(dy, dx) - 1.0) < 0.05
    c6 = ekf.covariance6()
    assert c6.shape == (6, 6) and c6[0, 0] > 0.25 and c6[5, 5] >= 0.01


def test_vo_increment_without_reference_is_refused_then_used():
    ekf = RoverEKF(stamp=0.0)
    assert not ekf.update_visual_odometry(0.0, 0.5, increment_matrix(0.2, 0, 0), np.eye(6))
    # the refusal took the reference at 0.5 s: the next increment is used
    ekf.update_wheel_odometry(0.6, 0.2, 0.0)
    ekf.update_wheel_odometry(0.8, 0.2, 0.0)
    ekf.predict(1.0)
    before = ekf.pose.x
    assert before > 0.0  # the wheels' speed carried it forward
    assert ekf.update_visual_odometry(0.5, 1.0, increment_matrix(0.0, 0.0, 0.0),
                                      np.diag([1e-6] * 3 + [1e-6] * 3))
    assert ekf.pose.x < before  # the camera says it did not move: pulled back


def test_tilt_from_accelerometer():
    f = _rot(math.radians(5), math.radians(-8), 0.7).T @ np.array([0, 0, G])
    roll, pitch = TiltFilter.from_accel(f)
    assert math.degrees(roll) == pytest.approx(5.0, abs=1e-6)
    assert math.degrees(pitch) == pytest.approx(-8.0, abs=1e-6)


@pytest.mark.parametrize("roll_deg, pitch_deg", [(0.0, 0.0), (5.0, -8.0), (-12.0, 3.0),
                                                  (0.0, 20.0)])
def test_downhill_is_where_the_ground_falls_in_the_heading_frame(roll_deg, pitch_deg):
    yaw = 0.7
    R = _rot(math.radians(roll_deg), math.radians(pitch_deg), yaw)
    normal = R @ np.array([0.0, 0.0, 1.0])  # the ground's normal leans down the slope
    c, s = math.cos(yaw), math.sin(yaw)
    expected = (c * normal[0] + s * normal[1], -s * normal[0] + c * normal[1])
    tilt = TiltFilter(G)
    tilt.roll, tilt.pitch = math.radians(roll_deg), math.radians(pitch_deg)
    assert tilt.downhill() == pytest.approx(expected, abs=1e-9)
    # its length is the sine of the tilt: the angle between the normal and the vertical
    assert math.hypot(*tilt.downhill()) == pytest.approx(
        math.sin(math.acos(normal[2])), abs=1e-9)


def test_planar_increment_levels_a_tilted_motion():
    pitch = math.radians(10)
    m = increment_matrix(0.1, 0.0, 0.0)  # 0.1 m forward along a base pitched 10 deg
    (dx, dy, dyaw), cov = planar_increment(m, np.eye(6) * 1e-4, (0.0, pitch), (0.0, pitch))
    assert dx == pytest.approx(0.1 * math.cos(pitch), abs=1e-9)
    assert dy == pytest.approx(0.0, abs=1e-9) and dyaw == pytest.approx(0.0, abs=1e-9)
    assert cov.shape == (3, 3) and np.all(np.linalg.eigvalsh(cov) > 0)


def test_map_to_odom_composes_back_to_the_map_pose():
    m, o = Pose2D(5.0, 2.0, 0.5), Pose2D(1.0, -1.0, -0.3)
    t = map_to_odom(m, o)
    c, s = math.cos(t.yaw), math.sin(t.yaw)
    assert t.x + c * o.x - s * o.y == pytest.approx(m.x)
    assert t.y + s * o.x + c * o.y == pytest.approx(m.y)
    assert wrap_angle(t.yaw + o.yaw - m.yaw) == pytest.approx(0.0, abs=1e-12)


def test_tilt_follows_the_ground_when_the_filter_is_predicted_before_each_imu_sample():
    """As the localization does (predict to a sample's stamp, then fuse it, with wheel
    updates in between): roll and pitch follow the accelerometer, not their first reading."""
    ekf = RoverEKF(stamp=0.0)
    g = 1.62
    pitch = math.radians(8.0)  # nose down on a slope: gravity leans to +x in the body
    t = 0.0
    for i in range(2000):  # 1 s level, then 19 s on the slope
        t += 0.01
        tilt = 0.0 if t < 1.0 else pitch
        accel = np.array([g * math.sin(tilt), 0.0, g * math.cos(tilt)])
        ekf.predict(t)
        ekf.update_imu(t, accel, np.zeros(3))
        if i % 5 == 0:
            ekf.update_wheel_odometry(t, 0.0, 0.0)
    roll, p, _ = ekf.rpy
    assert abs(roll) < math.radians(0.2)
    assert p == pytest.approx(-pitch, abs=math.radians(0.3))


def test_speeding_up_on_level_ground_is_not_read_as_tilt():
    """Under lunar gravity the base's 0.5 m/s^2 reads as 17 deg of pitch on the
    accelerometer: the filter takes the acceleration out before it levels the tilt."""
    ekf = RoverEKF(stamp=0.0)
    g, t, v, worst = 1.62, 0.0, 0.0, 0.0
    for i in range(600):  # 1 s at rest, 0.8 s speeding up to 0.4 m/s, then cruising
        t += 0.01
        a = 0.5 if 1.0 <= t < 1.8 else 0.0
        v += a * 0.01
        ekf.predict(t)
        ekf.update_imu(t, np.array([a, 0.0, g]), np.zeros(3))
        if i % 5 == 0:
            ekf.update_wheel_odometry(t, v, 0.0)
        worst = max(worst, abs(ekf.rpy[1]))
    assert worst < math.radians(1.5)


def _turn_in_place_sliding(config: EkfConfig) -> tuple[RoverEKF, Pose2D]:
    """A 20 s turn in place at 0.1 rad/s during which the rover slides 1 m downhill (map -y,
    as on a slope of a few degrees): the wheels say 0 m/s (and twice the true turn rate, as
    skid steering does), the gyro the true rate, stereo VO at 5 Hz the true increments."""
    ekf = RoverEKF(config, Pose2D(0.0, 0.0, 0.0), stamp=0.0)
    rate, slide = 0.1, 0.05
    truth = Pose2D(0.0, 0.0, 0.0)
    cov = np.diag([0.005 ** 2] * 3 + [0.002 ** 2] * 3)
    ekf.vo_reference(0.0)
    prev, t = truth, 0.0
    for k in range(1, 401):
        t = k * 0.05
        truth = Pose2D(0.0, -slide * t, rate * t)
        ekf.update_imu(t, np.array([0.0, 0.0, G]), np.array([0.0, 0.0, rate]))
        ekf.update_wheel_odometry(t, 0.0, 2.0 * rate)
        if k % 4 == 0:
            c, s = math.cos(prev.yaw), math.sin(prev.yaw)
            dx, dy = truth.x - prev.x, truth.y - prev.y
            motion = increment_matrix(c * dx + s * dy, -s * dx + c * dy, truth.yaw - prev.yaw)
            ekf.update_visual_odometry(t - 0.2, t, motion, cov)
            prev = truth
    return ekf, truth


def test_a_slide_during_a_turn_in_place_is_followed_through_visual_odometry():
    ekf, truth = _turn_in_place_sliding(EkfConfig())
    pos, yaw = _err(ekf.pose, truth)
    assert pos < 0.15, f"slid 1 m, estimate {pos:.2f} m off"
    assert yaw < 1.0  # deg
    # without the turn-slide model the filter is sure the rover turned on the spot and
    # gates or waters down the camera's slide
    stiff, _ = _turn_in_place_sliding(EkfConfig(turn_slide_noise=0.0))
    assert _err(stiff.pose, truth)[0] > 3 * pos


def _skidding(config: EkfConfig, wheel_speed: float, body_velocity: tuple[float, float],
              roll: float, pitch: float) -> tuple[RoverEKF, Pose2D, list[tuple[bool, bool]]]:
    """15 s on a slope (``roll``, ``pitch``) moving at ``body_velocity`` (m/s, base_link x
    and y, along the ground) while the wheels say ``wheel_speed`` and no turn: the gyro
    reads zero, the accelerometer the tilt, stereo VO at 5 Hz the true increments."""
    ekf = RoverEKF(config, Pose2D(0.0, 0.0, 0.0), stamp=0.0)
    accel = _rot(roll, pitch, 0.0).T @ np.array([0.0, 0.0, G])
    cov = np.diag([0.005 ** 2] * 3 + [0.002 ** 2] * 3)
    level = _rot(roll, pitch, 0.0)  # base_link axes in map (heading 0)
    step = level @ np.array([body_velocity[0], body_velocity[1], 0.0]) * 0.05
    truth = np.zeros(3)
    flags = []
    ekf.vo_reference(0.0)
    for k in range(1, 301):
        t = k * 0.05
        truth += step
        ekf.update_imu(t, accel, np.zeros(3))
        ekf.update_wheel_odometry(t, wheel_speed, 0.0)
        if k % 4 == 0:
            v = np.array([body_velocity[0], body_velocity[1], 0.0]) * 0.2
            ekf.update_visual_odometry(t - 0.2, t, increment_matrix(*v[:2], 0.0, v[2]), cov)
            flags.append((ekf.slip.skidding, ekf.slip.slipping))
    return ekf, Pose2D(float(truth[0]), float(truth[1]), 0.0), flags


@pytest.mark.parametrize("wheel_speed, body_velocity, roll, pitch", [
    (-0.06, (-0.19, 0.0), 0.0, -0.25),  # backing down the crater rim, wheels a third
    (0.0, (0.0, -0.12), 0.2, 0.0),  # a sideways slide with the wheels held
])
def test_a_skid_further_than_the_wheels_is_followed_through_visual_odometry(
        wheel_speed, body_velocity, roll, pitch):
    ekf, truth, flags = _skidding(EkfConfig(), wheel_speed, body_velocity, roll, pitch)
    slid = math.hypot(truth.x, truth.y)
    pos, yaw = _err(ekf.pose, truth)
    assert slid > 1.5
    assert pos < 0.1 * slid, f"slid {slid:.2f} m, estimate {pos:.2f} m off"
    assert yaw < 0.5  # deg: the slide is not explained by a turn
    assert any(skid for skid, _ in flags) and ekf.slip.skidding
    assert not any(slip for _, slip in flags), "a skid is not 'the wheels turn in vain'"
    assert ekf.slip.skid_ratio > 0.5
    # without the skid model the filter believes its wheels and waters the camera down
    stiff, _, _ = _skidding(EkfConfig(skid_noise=0.0), wheel_speed, body_velocity, roll, pitch)
    assert _err(stiff.pose, truth)[0] > 3 * pos


def test_on_level_ground_the_camera_outrunning_the_wheels_is_not_a_skid():
    _, _, flags = _skidding(EkfConfig(), 0.0, (0.0, -0.12), 0.0, 0.0)
    assert not any(skid for skid, _ in flags)


def test_turn_slide_grows_the_position_uncertainty_only_when_turning_slowly_forward():
    cfg = EkfConfig()
    assert turn_slide_variance(0.0, 0.0, 1.0, cfg) == 0.0
    assert turn_slide_variance(0.5, 0.0, 1.0, cfg) == pytest.approx(0.5 ** 2 * 0.5)
    assert turn_slide_variance(-0.5, 0.0, 1.0, cfg) == turn_slide_variance(0.5, 0.0, 1.0, cfg)
    assert turn_slide_variance(0.5, 0.5, 1.0, cfg) == 0.0  # driving an arc: no slide
    ekf = RoverEKF(cfg, Pose2D(), stamp=0.0)
    for k in range(1, 101):  # 10 s turning on the spot at 0.2 rad/s
        ekf.update_imu(k * 0.1, np.array([0.0, 0.0, G]), np.array([0.0, 0.0, 0.2]))
        ekf.update_wheel_odometry(k * 0.1, 0.0, 0.3)
    sigma = math.sqrt(ekf.pose_covariance[0, 0])
    assert 0.5 < sigma < 1.5  # ~0.5 m per sqrt(rad) over 2 rad


def test_skid_steer_wheels_turning_twice_the_gyro_rate_do_not_bias_the_heading():
    """A fast turn in place (visual odometry held): the wheels say 0.2 rad/s, the gyro the
    true 0.1 rad/s. The gyro's bias must not take the difference while the yaw scale is
    learned (it did: 4.8 deg off after 2 rad)."""
    ekf = RoverEKF(EkfConfig(), Pose2D(), stamp=0.0)
    for k in range(1, 401):
        t = k * 0.05
        ekf.update_imu(t, np.array([0.0, 0.0, G]), np.array([0.0, 0.0, 0.1]))
        ekf.update_wheel_odometry(t, 0.0, 0.2)
    assert _err(ekf.pose, Pose2D(0.0, 0.0, 2.0))[1] < 1.5
    assert abs(ekf.gyro_bias) < 0.001
    assert ekf.wheel_yaw_scale == pytest.approx(2.0, abs=0.2)


def test_a_turn_in_place_after_a_drive_does_not_move_the_pose():
    """A drive with gentle turns (wheels 1.2x the true yaw rate), a turn in place (wheels 4x:
    skid steering), a drive again, no visual odometry. The rates change faster than the
    filter's model; fed back through the cross-covariances, the rate updates moved the pose
    3 m during a 3 s turn in place, shortened the next drive by two thirds and left the
    heading 37 deg off. Rate sensors now correct rates (and the gyro the heading)."""
    ekf = RoverEKF(EkfConfig(), Pose2D(), stamp=0.0)
    t = 0.0

    def run(seconds: float, wheel_speed: float, wheel_yaw: float, gyro_yaw: float) -> float:
        nonlocal t
        start = ekf.pose
        for _ in range(round(seconds / 0.05)):
            t += 0.05
            ekf.update_imu(t, np.array([0.0, 0.0, G]), np.array([0.0, 0.0, gyro_yaw]))
            ekf.update_wheel_odometry(t, wheel_speed, wheel_yaw)
        return math.hypot(ekf.pose.x - start.x, ekf.pose.y - start.y)

    # 15 m on an arc of radius 10 m: 13.6 m from end to end
    assert run(30.0, 0.5, 0.06, 0.05) == pytest.approx(20.0 * math.sin(0.75), abs=0.2)
    assert run(3.0, 0.0, 0.4, 0.1) < 0.1  # turning in place: the rover stays put
    assert run(3.0, 0.5, 0.0, 0.0) == pytest.approx(1.5, abs=0.1)
    assert run(10.0, 0.0, 0.4, 0.1) < 0.1
    assert run(3.0, 0.5, 0.06, 0.05) == pytest.approx(1.5, abs=0.1)
    assert abs(wrap_angle(ekf.pose.yaw - (33 * 0.05 + 13 * 0.1))) < math.radians(2.0)


def test_a_turn_rate_the_wheels_overstate_is_reported_but_is_not_slip():
    """Driving on, the wheels' turn rate departs from the gyro's (a tighter skid-steer arc on
    looser ground): the yaw ratio says so on diagnostics, but the slip flag, which sends the
    navigator backing up because the wheels turn and the rover does not travel, stays down
    (it rose, and five of seven recoveries on a mission's first 70 m were for it)."""
    ekf = RoverEKF(EkfConfig(), Pose2D(), stamp=0.0)
    t, flags = 0.0, []
    for seconds, wheel_yaw in ((10.0, 0.06), (10.0, 0.2)):
        for _ in range(round(seconds / 0.05)):
            t += 0.05
            ekf.update_imu(t, np.array([0.0, 0.0, G]), np.array([0.0, 0.0, 0.05]))
            ekf.update_wheel_odometry(t, 0.5, wheel_yaw)
            flags.append(ekf.slip.slipping)
        if wheel_yaw == 0.2:
            assert ekf.slip.yaw_ratio > 0.3
    assert not any(flags)


@pytest.mark.parametrize("creep", [0.0, -0.0013, 0.006])
def test_the_gyro_bias_is_learned_standing_still_and_its_sigma_says_when(creep: float) -> None:
    """At rest the wheels say the yaw rate is zero, so what the gyro reads is its bias: the
    estimate converges on it and its sigma falls (the localization node reports WARN until
    it is below `gyro_bias_ready_sigma`); a rover that never stood still drives on with
    its initial uncertainty."""
    rng = np.random.default_rng(3)
    bias = -0.0012
    ekf = RoverEKF(EkfConfig(), START, stamp=0.0)
    start_sigma = ekf.gyro_bias_sigma
    sigmas = []
    for i in range(1, 501):  # 5 s at rest: IMU at 100 Hz, wheels at 20 Hz
        t = i * 0.01
        ekf.update_imu(t, np.array([0.0, 0.0, G]), np.array([0.0, 0.0,
                                                             bias + rng.normal(0.0, 0.002)]))
        if i % 5 == 0:
            ekf.update_wheel_odometry(t, creep, 0.0)  # a parked rover's wheels may creep
        if i % 100 == 0:
            sigmas.append(ekf.gyro_bias_sigma)
    assert start_sigma == pytest.approx(EkfConfig().initial_gyro_bias_sigma)
    assert all(b < a for a, b in zip(sigmas, sigmas[1:], strict=False)), sigmas
    assert sigmas[-1] < 0.0005 < start_sigma
    assert ekf.gyro_bias == pytest.approx(bias, abs=3 * sigmas[-1])
    assert abs(math.degrees(ekf.pose.yaw - START.yaw)) < 0.1  # standing still, heading kept
    crept = (ekf.pose.x - START.x) * math.cos(START.yaw) + (ekf.pose.y - START.y) * math.sin(
        START.yaw)
    assert crept == pytest.approx(creep * 5.0, abs=0.005)  # and the creep followed


@pytest.mark.parametrize("lag", [0.1, 0.5])
def test_wheel_odometry_lagging_the_gyro_does_not_cost_the_heading(lag: float) -> None:
    """Six turns in place of 1.2 rad between drives, the wheels' odometry `lag` s behind the
    gyro (a busy base driver): at a turn's start the wheels still say "at rest" while the
    gyro turns. Clamping the yaw rate to zero then lost each turn's first moments and gave
    the bias the gyro's reading: 19 deg off after six turns with 0.1 s of lag, 88 deg with
    0.5 s (a mission under load ended 23 deg off after 10 m)."""
    bias = 0.001
    ekf = RoverEKF(EkfConfig(), Pose2D(), stamp=0.0)
    t, true_yaw, history = 0.0, 0.0, []
    plan = [(5.0, 0.0, 0.0)] + [(3.0, 0.0, 0.4), (4.0, 0.5, 0.0)] * 6
    for seconds, speed, rate in plan:
        for _ in range(round(seconds / 0.01)):
            t += 0.01
            true_yaw += rate * 0.01
            history.append((speed, rate))
            ekf.update_imu(t, np.array([0.0, 0.0, G]), np.array([0.0, 0.0, rate + bias]))
            if len(history) % 2 == 0:  # wheels at 50 Hz, telling what was `lag` s ago
                old_speed, old_rate = history[max(0, len(history) - 1 - round(lag / 0.01))]
                ekf.update_wheel_odometry(t, old_speed, 2.0 * old_rate)  # skid steering
    assert abs(math.degrees(wrap_angle(ekf.pose.yaw - true_yaw))) < 1.0
    assert ekf.gyro_bias == pytest.approx(bias, abs=0.0005)


def test_a_large_gyro_bias_is_still_learned_at_rest() -> None:
    """The wheels' "at rest" is trusted while the gyro agrees within a gate that widens by
    the bias's own uncertainty: a bias of 1.4 deg/s, beyond the gate alone, is learned."""
    bias = 0.025
    ekf = RoverEKF(EkfConfig(), START, stamp=0.0)
    assert bias > EkfConfig().zero_velocity_gyro_gate
    for i in range(1, 1001):  # 10 s at rest
        t = i * 0.01
        ekf.update_imu(t, np.array([0.0, 0.0, G]), np.array([0.0, 0.0, bias]))
        if i % 5 == 0:
            ekf.update_wheel_odometry(t, 0.0, 0.0)
    assert ekf.gyro_bias == pytest.approx(bias, abs=0.001)
    assert ekf.gyro_bias_sigma < 0.0005
