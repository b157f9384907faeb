"""Skid-steer kinematics, limits, command checks and odometry."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transforms3d.euler import euler2quat

from ilrs_robots.core.geometry import (
    from_xyzw,
    quaternion_to_yaw,
    to_xyzw,
    wrap_angle,
    wxyz_to_yaw,
    yaw_to_quaternion,
)
from ilrs_robots.core.kinematics import (
    CommandRejected,
    DriveLimits,
    SkidSteerGeometry,
    WheelOdometry,
    WheelTravel,
    check_twist,
    limit_twist,
    rad_per_s_to_counts,
    twist_to_wheel_speeds,
    wheel_speeds_to_twist,
)

GEOM = SkidSteerGeometry(wheel_radius=0.25, track_width=1.2, counts_per_rev=8192)
LIMITS = DriveLimits(max_linear=0.5, max_angular=0.8, max_wheel_speed=0.6, max_accel=0.5,
                     stop_accel=1.5)


def test_straight_and_turning_wheel_speeds():
    assert twist_to_wheel_speeds(0.5, 0.0, GEOM) == pytest.approx((2.0, 2.0))
    left, right = twist_to_wheel_speeds(0.0, 1.0, GEOM)
    assert left == pytest.approx(-0.6 / 0.25) and right == pytest.approx(0.6 / 0.25)


@given(st.floats(-2, 2), st.floats(-2, 2))
def test_wheel_speeds_round_trip(v, w):
    left, right = twist_to_wheel_speeds(v, w, GEOM)
    assert wheel_speeds_to_twist(left, right, GEOM) == pytest.approx((v, w), abs=1e-9)


@given(st.floats(-5, 5), st.floats(-8, 8))
def test_limits_keep_curvature_and_bounds(v, w):
    lv, lw = limit_twist(v, w, GEOM, LIMITS)
    assert abs(lv) <= LIMITS.max_linear + 1e-9 and abs(lw) <= LIMITS.max_angular + 1e-9
    left, right = twist_to_wheel_speeds(lv, lw, GEOM)
    assert max(abs(left), abs(right)) * GEOM.wheel_radius <= LIMITS.max_wheel_speed + 1e-9
    if abs(v) > 1e-6 and abs(lv) > 1e-9:
        assert lw / lv == pytest.approx(w / v, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("v,w,others", [(math.nan, 0, ()), (0, math.inf, ()),
                                        (0.1, 0, (math.nan,)), (50.0, 0, ()), (0, -9.0, ())])
def test_bad_commands_rejected(v, w, others):
    with pytest.raises(CommandRejected):
        check_twist(v, w, LIMITS, others)


def test_sane_command_accepted():
    check_twist(0.7, -1.0, LIMITS, (0.0, 0.0, 0.0, 0.0))  # above limits: clamped, not absurd


def test_counts_conversion():
    assert rad_per_s_to_counts(2 * math.pi, GEOM) == 8192
    assert GEOM.counts_per_metre == pytest.approx(8192 / (2 * math.pi * 0.25))


def test_odometry_square_closes():
    odo = WheelOdometry(GEOM.track_width)
    quarter = math.pi / 2 * GEOM.track_width / 2
    for _ in range(4):
        for _ in range(100):
            odo.update(0.01, 0.01)
        for _ in range(50):
            odo.update(-quarter / 50, quarter / 50)
    assert odo.pose.x == pytest.approx(0.0, abs=1e-9)
    assert odo.pose.y == pytest.approx(0.0, abs=1e-9)
    assert wrap_angle(odo.pose.yaw) == pytest.approx(0.0, abs=1e-9)
    assert odo.distance == pytest.approx(4.0)


def test_odometry_arc_is_exact():
    odo = WheelOdometry(1.0)
    # one update along a quarter circle of radius 2 m (left wheel radius 1.5, right 2.5)
    odo.update(1.5 * math.pi / 2, 2.5 * math.pi / 2)
    assert (odo.pose.x, odo.pose.y) == pytest.approx((2.0, 2.0))
    assert odo.pose.yaw == pytest.approx(math.pi / 2)


@given(st.floats(-10, 10))
def test_quaternion_yaw_round_trip(yaw):
    assert quaternion_to_yaw(*yaw_to_quaternion(yaw)) == pytest.approx(wrap_angle(yaw),
                                                                      abs=1e-9) or \
        abs(abs(wrap_angle(yaw)) - math.pi) < 1e-9


def test_ros_quaternion_order_is_xyzw():
    # A quarter turn about +z: transforms3d says (w, x, y, z) = (cos 45, 0, 0, sin 45).
    wxyz = euler2quat(0.0, 0.0, math.pi / 2, "sxyz")
    assert to_xyzw(wxyz) == pytest.approx((0.0, 0.0, math.sin(math.pi / 4),
                                           math.cos(math.pi / 4)))
    assert yaw_to_quaternion(math.pi / 2) == pytest.approx(to_xyzw(wxyz))
    assert from_xyzw(to_xyzw(wxyz)) == pytest.approx(wxyz)


@given(st.floats(-1.5, 1.5), st.floats(-1.2, 1.2), st.floats(-3.1, 3.1))
def test_yaw_of_a_tilted_rover(roll, pitch, yaw):
    # On a slope the heading is still the z angle of the static x-y-z Euler angles.
    wxyz = euler2quat(roll, pitch, yaw, "sxyz")
    assert wxyz_to_yaw(wxyz) == pytest.approx(yaw, abs=1e-9)
    assert quaternion_to_yaw(*to_xyzw(wxyz)) == pytest.approx(yaw, abs=1e-9)


# three wheels a side, as the rover's three RoboClaws drive them (channel 1 left, 2 right)
SIDES = {(a, ch): (ch == 1, 1) for a in (128, 129, 130) for ch in (1, 2)}


def _counts(left: int, right: int, missing: tuple[int, ...] = ()) -> dict:
    return {(a, ch): left if ch == 1 else right
            for a in (128, 129, 130) if a not in missing for ch in (1, 2)}


def test_wheel_travel_counts_a_missed_poll_once():
    """A controller that misses a poll must not make the odometry run long (it did, by a
    third of a cycle's travel per miss, when its two-cycle delta was averaged in)."""
    travel = WheelTravel(SIDES, counts_per_metre=1000.0)
    assert travel.step(_counts(0, 0), limit=1e9) is None  # baselines
    total_left = total_right = 0.0
    for cycle in range(1, 21):
        got = travel.step(_counts(100 * cycle, 50 * cycle,
                                  missing=(129,) if cycle % 3 == 0 else ()), limit=1e9)
        assert got is not None
        total_left += got[0]
        total_right += got[1]
    assert total_left == pytest.approx(2.0) and total_right == pytest.approx(1.0)


def test_wheel_travel_skips_a_cycle_with_a_side_missing_and_loses_nothing():
    travel = WheelTravel(SIDES, counts_per_metre=1000.0)
    travel.step(_counts(0, 0), limit=1e9)
    assert travel.step({k: v for k, v in _counts(100, 100).items() if k[1] == 1},
                       limit=1e9) is None  # no right wheel answered
    assert travel.step(_counts(200, 200), limit=1e9) == pytest.approx((0.2, 0.2))


def test_wheel_travel_rebaselines_a_reset_controller():
    travel = WheelTravel(SIDES, counts_per_metre=1000.0)
    travel.step(_counts(5000, 5000), limit=1e9)
    reset = _counts(5100, 5100)
    reset[(130, 1)] = reset[(130, 2)] = 0  # controller 130 restarted its counters
    assert travel.step(reset, limit=1000) == pytest.approx((0.1, 0.1))
    assert travel.step({**_counts(5200, 5200), (130, 1): 100, (130, 2): 100},
                       limit=1000) == pytest.approx((0.1, 0.1))
