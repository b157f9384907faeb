"""The leg control law of the runner's missions (core/control.py), without ROS."""

import math

import pytest

from ilrs_robots.core.control import Leg, LegController, LegGains, compare, route, square
from ilrs_robots.core.geometry import Pose2D, wrap_angle


def simulate(ctl: LegController, start: Pose2D, dt: float = 0.05, lag: int = 0,
             limit: int = 10000) -> tuple[Pose2D, int]:
    """A unicycle following the controller's commands; `lag`: odometry that many steps old."""
    pose, history = start, [start]
    for step in range(limit):
        seen = history[max(0, len(history) - 1 - lag)]
        cmd = ctl.update(seen)
        if cmd is None:
            return pose, step
        v, w = cmd
        pose = Pose2D(pose.x + v * dt * math.cos(pose.yaw), pose.y + v * dt * math.sin(pose.yaw),
                      wrap_angle(pose.yaw + w * dt))
        history.append(pose)
    raise AssertionError("the leg never ended")


@pytest.mark.parametrize("distance", [2.0, -1.5, 0.3])
def test_drives_a_leg_to_its_end_and_slows_down(distance):
    start = Pose2D(1.0, -2.0, 0.7)
    ctl = LegController(Leg(distance=distance), start, LegGains(speed=0.5))
    first = ctl.update(start)
    assert first == (math.copysign(min(0.5, abs(distance)), distance), 0.0)
    end, _ = simulate(ctl, start)
    assert math.hypot(end.x - start.x, end.y - start.y) == pytest.approx(abs(distance),
                                                                          abs=0.01)
    assert end.yaw == pytest.approx(start.yaw)
    left = abs(distance) - 0.1  # 10 cm before the end: 1/s * 0.1 m
    v, _ = LegController(Leg(distance=abs(distance)), start, LegGains(speed=0.5)).update(
        Pose2D(start.x + left * math.cos(0.7), start.y + left * math.sin(0.7), 0.7))
    assert v == pytest.approx(0.1)


def test_turns_beyond_half_a_turn_both_ways():
    for angle in (math.pi, -1.5 * math.pi, math.pi / 2):
        start = Pose2D(0.0, 0.0, 3.0)
        ctl = LegController(Leg(angle=angle), start)
        end, _ = simulate(ctl, start)
        assert ctl.turned == pytest.approx(angle, abs=0.01)
        assert wrap_angle(end.yaw - start.yaw - angle) == pytest.approx(0.0, abs=0.01)
        assert (end.x, end.y) == (0.0, 0.0)


def test_late_odometry_overshoots_only_by_the_slow_final_approach():
    # Odometry 5 steps (0.25 s) late: the final approach at min_speed keeps the overshoot small.
    start = Pose2D()
    ctl = LegController(Leg(distance=5.0), start)
    end, _ = simulate(ctl, start, lag=5)
    assert 5.0 <= end.x <= 5.0 + 0.25 * ctl.gains.min_speed + 0.01


def test_stalled_base_keeps_asking():
    start = Pose2D()
    ctl = LegController(Leg(distance=1.0), start)
    for _ in range(10):
        assert ctl.update(start) == (0.3, 0.0)
    assert ctl.remaining == pytest.approx(1.0)


def test_routes_and_comparison():
    assert len(square(2.0)) == 8 and sum(leg.angle for leg in square(1.0)) == pytest.approx(
        2 * math.pi)
    assert sum(leg.distance for leg in route(0.5)) == pytest.approx(12.5)
    # odometry (started at a map origin facing +y) says 1 m ahead; the truth is at (0, 1.1)
    c = compare(Pose2D(0.0, 0.0, math.pi / 2), Pose2D(1.0, 0.0, 0.0), Pose2D(0.0, 1.1,
                math.pi / 2), distance=1.1)
    assert c.position_error == pytest.approx(0.1) and c.heading_error == pytest.approx(0.0)
    assert c.drift_percent == pytest.approx(100 * 0.1 / 1.1)
