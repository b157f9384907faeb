"""Rover physics in MuJoCo: driving, turning, slip on slopes, cameras, settling."""

import math
import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ilrs_robots.sim.model import RoverSpec  # noqa: E402
from ilrs_robots.sim.physics import RoverPhysics  # noqa: E402

R = RoverSpec().wheel_radius


@pytest.fixture(scope="module")
def flat():
    p = RoverPhysics("test_flat")
    yield p
    p.close()


@pytest.fixture(scope="module")
def slope():
    p = RoverPhysics("test_slope")
    yield p
    p.close()


def drive(p: RoverPhysics, speeds, seconds: float):
    """Drive; return (truth displacement xyz, mean wheel travel m)."""
    pos0 = p.ground_truth()[0]
    w0 = p.wheel_positions()
    p.set_wheel_speeds(speeds)
    p.advance(seconds)
    p.set_wheel_speeds([0.0] * 6)
    return p.ground_truth()[0] - pos0, float(np.mean(p.wheel_positions() - w0)) * R


def test_settles_on_terrain_without_falling_through(flat):
    flat.reset_pose(-20.0, 0.0, 0.0)
    pos, quat, vel, omega = flat.ground_truth()
    assert pos[2] == pytest.approx(R, abs=0.01)  # base_link at axle height
    assert np.linalg.norm(vel) < 0.01 and np.linalg.norm(omega) < 0.01
    flat.advance(3.0)
    assert flat.ground_truth()[0][2] == pytest.approx(R, abs=0.01)
    accel, gyro = flat.imu()
    assert accel[2] == pytest.approx(1.62, abs=0.3) and np.abs(gyro).max() < 0.02


def test_rolls_20_m_straight(flat):
    flat.reset_pose(-20.0, 0.0, 0.0)
    pos0 = flat.ground_truth()[0]
    w0 = flat.wheel_positions()
    flat.set_wheel_speeds([2.0] * 6)  # 0.5 m/s
    while np.mean(flat.wheel_positions() - w0) * R < 20.0:
        flat.step(5)
    flat.set_wheel_speeds([0.0] * 6)
    flat.advance(2.0)
    wheel = float(np.mean(flat.wheel_positions() - w0)) * R
    d = flat.ground_truth()[0] - pos0
    assert np.hypot(d[0], d[1]) == pytest.approx(wheel, rel=0.02)
    assert np.hypot(d[0], d[1]) == pytest.approx(20.0, rel=0.02)
    assert abs(d[1]) < 0.2 and abs(math.degrees(flat.yaw())) < 1.0


def test_turns_in_place(flat):
    flat.reset_pose(0.0, 10.0, 0.0)
    pos0 = flat.ground_truth()[0]
    yaw0 = flat.yaw()
    flat.set_wheel_speeds([-1.5, 1.5] * 3)  # left backward, right forward: CCW
    flat.advance(8.0)
    flat.set_wheel_speeds([0.0] * 6)
    flat.advance(1.0)
    dyaw = math.degrees(flat.yaw() - yaw0)
    assert dyaw > 30.0  # skid steering scrubs, but it turns, counter-clockwise
    assert np.hypot(*(flat.ground_truth()[0] - pos0)[:2]) < 0.3


def test_skid_steer_turn_efficiency(flat):
    # Turning in place, the yaw rate is what the wheel speeds predict ((v_r - v_l) / track)
    # times an efficiency < 1, as the wheels scrub sideways: a Coulomb estimate for this
    # geometry gives ~0.7, 6-wheel skid steers on loose soil reach ~0.4-0.7.
    flat.reset_pose(0.0, 10.0, 0.0)
    flat.set_wheel_speeds([-1.5, 1.5] * 3)
    flat.advance(2.0)  # past the spin-up
    yaw0, w0, pos0 = flat.yaw(), flat.wheel_positions(), flat.ground_truth()[0]
    steps, grounded = 500, 0
    for _ in range(steps):
        flat.step(1)
        grounded += flat.contacts_with("wheel_") >= 6
    seconds = steps * flat.timestep
    flat.set_wheel_speeds([0.0] * 6)
    dw = flat.wheel_positions() - w0
    predicted = (np.mean(dw[1::2]) - np.mean(dw[0::2])) * R / RoverSpec().track_width
    efficiency = math.remainder(flat.yaw() - yaw0, 2 * math.pi) / predicted
    assert 0.35 < efficiency < 0.8
    assert np.mean(dw[1::2]) / seconds == pytest.approx(1.5, rel=0.05)  # speeds are held
    assert grounded / steps > 0.9  # the wheels stay on the ground while they scrub
    assert np.hypot(*(flat.ground_truth()[0] - pos0)[:2]) < 0.1


def test_gentle_arc_follows_the_commanded_yaw_rate(flat):
    # v = 0.3 m/s, w = 0.2 rad/s through the skid-steer kinematics: the rover curves the
    # commanded way at a yaw rate somewhat below the kinematic one (the wheels scrub).
    v, w = 0.3, 0.2
    half = RoverSpec().track_width / 2
    flat.reset_pose(-20.0, 0.0, 0.0)
    flat.set_wheel_speeds([(v - w * half) / R, (v + w * half) / R] * 3)
    flat.advance(2.0)
    yaw0 = flat.yaw()
    flat.advance(6.0)
    rate = math.remainder(flat.yaw() - yaw0, 2 * math.pi) / 6.0
    speed = flat.ground_truth(local_velocity=True)[2][0]
    flat.set_wheel_speeds([0.0] * 6)
    assert 0.3 * w < rate < 1.05 * w
    assert speed == pytest.approx(v, rel=0.1)


def test_slip_when_climbing_a_20_degree_slope(flat, slope):
    # Same command on flat ground and up the 20-degree plane (rising towards +x).
    flat.reset_pose(-20.0, -10.0, 0.0)
    d_flat, w_flat = drive(flat, [2.0] * 6, 10.0)
    slope.reset_pose(-15.0, 0.0, 0.0)
    d_up, w_up = drive(slope, [2.0] * 6, 10.0)
    slip_flat = 1.0 - np.linalg.norm(d_flat) / w_flat
    slip_up = 1.0 - np.linalg.norm(d_up) / w_up
    assert slip_flat < 0.05
    assert slip_up > 0.10 and slip_up > slip_flat + 0.08
    assert d_up[0] > 2.0  # it still climbs


def test_drifts_downhill_when_crossing_a_slope(flat, slope):
    flat.reset_pose(-20.0, -10.0, math.pi / 2)
    d_flat, _ = drive(flat, [2.0] * 6, 10.0)
    slope.reset_pose(0.0, -15.0, math.pi / 2)  # facing +y, across the slope
    d_across, w_across = drive(slope, [2.0] * 6, 10.0)
    assert abs(d_flat[0]) < 0.02
    assert d_across[0] < -0.1  # slid down the slope (towards -x)
    assert d_across[1] < w_across


def test_camera_renders_and_changes_when_moving(flat):
    flat.reset_pose(-20.0, 0.0, 0.0)
    assert {"nav_left", "nav_right", "mast"} <= set(flat.camera_names)
    a = flat.render("nav_left", 320, 240)
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8 and a.std() > 5
    b = flat.render("nav_right", 320, 240)
    assert not np.array_equal(a, b)  # the stereo baseline shows
    drive(flat, [2.0] * 6, 4.0)
    c = flat.render("nav_left", 320, 240)
    assert np.abs(c.astype(int) - a.astype(int)).mean() > 1.0
    k = flat.camera_intrinsics("nav_left", 320, 240)
    assert k.fx == pytest.approx(120 / math.tan(math.radians(30)))
    assert (k.cx, k.cy) == (159.5, 119.5)


def test_deterministic():
    def run():
        p = RoverPhysics("test_flat", settle_time=0.5)
        p.set_wheel_speeds([1.0, 2.0, 1.0, 2.0, 1.0, 2.0])
        p.advance(3.0)
        out = p.ground_truth()[0], p.imu()[0]
        p.close()
        return out

    (a, ia), (b, ib) = run(), run()
    assert np.array_equal(a, b) and np.array_equal(ia, ib)


def test_wheel_interface(flat):
    with pytest.raises(ValueError):
        flat.set_wheel_speeds([1.0] * 5)
    flat.reset_pose(-20.0, 0.0, 0.0)
    flat.set_wheel_speeds([1.0] * 6)
    flat.advance(2.0)
    assert np.allclose(flat.wheel_velocities(), 1.0, atol=0.05)
    assert np.all(flat.wheel_torques() > 0)
    assert flat.time == pytest.approx(2.0, abs=flat.timestep)


def test_render_terrain_follows_camera_and_matches_full_terrain():
    # A 160 m undulating terrain: larger than the render patch, so the level of detail is on.
    from ilrs_robots.core.terrain import Heightmap, smooth_noise

    rng = np.random.default_rng(3)
    h = smooth_noise(rng, (321, 321), 0.5, 20.0, 1.5)
    hm = Heightmap(h, (-80.0, -80.0), 0.5)
    lod = RoverPhysics("test_flat", heightmap=hm, rocks=[], settle_time=0.3)
    full = RoverPhysics("test_flat", heightmap=hm, rocks=[], settle_time=0.3, render_patch=0)
    try:
        assert full.render_terrain_centre() is None
        for x, y, yaw in ((-20.0, 0.0, 0.0), (50.0, 40.0, 2.0)):
            for p in (lod, full):
                p.reset_pose(x, y, yaw, settle_time=0.3)
            a = lod.render("nav_left", 160, 120).astype(int)
            b = full.render("nav_left", 160, 120).astype(int)
            assert np.abs(a - b).mean() < 2.0  # same picture, far fewer triangles
            cx, cy = lod.render_terrain_centre()
            assert math.hypot(cx - x, cy - y) < 40.0
    finally:
        lod.close()
        full.close()
