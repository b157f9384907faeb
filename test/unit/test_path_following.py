"""Regulated pure pursuit, driven in a small kinematic simulator (unicycle integration)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ilrs_robots.core.geometry import Pose2D, wrap_angle
from ilrs_robots.core.path_following import (
    ARRIVED,
    ROTATING,
    UNSAFE,
    FollowerLimits,
    PurePursuitFollower,
    Regulation,
    confidence_scale,
    hazard_scale,
    rollout,
    slope_scale,
)

DT = 0.1
LIMITS = FollowerLimits()


def advance(pose: Pose2D, linear: float, angular: float, dt: float = DT) -> Pose2D:
    """The rover's motion over one step (exact arc of a unicycle)."""
    return rollout(pose, linear, angular, dt, dt)[0]


def straight(x0: float, y0: float, x1: float, y1: float, spacing: float = 0.2) -> list[Pose2D]:
    n = max(1, int(math.hypot(x1 - x0, y1 - y0) / spacing))
    yaw = math.atan2(y1 - y0, x1 - x0)
    return [Pose2D(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, yaw) for i in range(n + 1)]


def quarter_circle(radius: float = 5.0, n: int = 80) -> list[Pose2D]:
    """From (0, 0) heading +x, turning left around (0, radius) by 90 degrees."""
    out = []
    for i in range(n + 1):
        a = 0.5 * math.pi * i / n
        out.append(Pose2D(radius * math.sin(a), radius * (1.0 - math.cos(a)), a))
    return out


def drive(follower: PurePursuitFollower, pose: Pose2D, steps: int = 1500,
          regulation: Regulation | None = None):
    """Run the follower until it arrives; the poses and commands on the way."""
    poses, commands = [pose], []
    for _ in range(steps):
        cmd = follower.compute(pose, DT, regulation)
        commands.append(cmd)
        if cmd.goal_reached:
            break
        pose = advance(pose, cmd.linear, cmd.angular)
        poses.append(pose)
    return poses, commands


def test_rollout_follows_straight_lines_and_arcs():
    line = rollout(Pose2D(1.0, 2.0, math.pi / 2), 0.5, 0.0, 2.0, 0.5)
    assert len(line) == 4
    assert (line[-1].x, line[-1].y) == pytest.approx((1.0, 3.0))
    # half a circle of radius 1 (v = 1, w = 1, t = pi) ends 2 m to the left, heading back
    arc = rollout(Pose2D(), 1.0, 1.0, math.pi, math.pi / 10)
    assert (arc[-1].x, arc[-1].y) == pytest.approx((0.0, 2.0), abs=1e-9)
    assert abs(wrap_angle(arc[-1].yaw - math.pi)) < 1e-9
    spin = rollout(Pose2D(3.0, 4.0, 0.0), 0.0, 0.5, 1.0, 0.5)
    assert all((p.x, p.y) == (3.0, 4.0) for p in spin) and spin[-1].yaw == pytest.approx(0.5)


def test_tracks_a_straight_path_and_stops_at_the_goal():
    follower = PurePursuitFollower(LIMITS)
    follower.set_path(straight(0.0, 0.0, 12.0, 0.0))
    poses, commands = drive(follower, Pose2D(0.0, 0.4, 0.2))
    assert commands[-1].state == ARRIVED and commands[-1].linear == 0.0
    end = poses[-1]
    assert math.hypot(end.x - 12.0, end.y) <= LIMITS.goal_tolerance
    assert abs(wrap_angle(end.yaw)) <= LIMITS.yaw_tolerance + 1e-9
    # converges onto the line and stays on it
    assert max(abs(p.y) for p in poses if p.x > 3.0) < 0.1
    assert max(c.linear for c in commands) == pytest.approx(LIMITS.max_linear)
    assert all(abs(c.angular) <= LIMITS.max_angular + 1e-9 for c in commands)


def test_tracks_a_curve_within_tolerance():
    follower = PurePursuitFollower(LIMITS)
    path = quarter_circle(radius=5.0)
    follower.set_path(path)
    poses, commands = drive(follower, Pose2D())
    assert commands[-1].goal_reached
    for p in poses:  # distance to the arc of radius 5 around (0, 5), in its quarter
        assert abs(math.hypot(p.x, p.y - 5.0) - 5.0) < 0.3
    end, goal = poses[-1], path[-1]
    assert math.hypot(end.x - goal.x, end.y - goal.y) <= LIMITS.goal_tolerance
    assert abs(wrap_angle(end.yaw - goal.yaw)) <= LIMITS.yaw_tolerance + 1e-9


def test_turns_in_place_when_the_path_is_behind():
    follower = PurePursuitFollower(LIMITS)
    follower.set_path(straight(0.0, 0.0, 8.0, 0.0))
    pose = Pose2D(0.0, 0.0, math.pi)
    first = follower.compute(pose, DT)
    assert first.state == ROTATING and first.linear == 0.0 and first.angular != 0.0
    poses, commands = drive(follower, pose)
    assert commands[-1].goal_reached
    # it turned before it drove: no forward motion while facing away from the path
    for p, c in zip(poses, commands, strict=False):
        if abs(wrap_angle(p.yaw)) > math.radians(60):
            assert c.linear < 0.05


def test_goal_heading_is_reached_by_turning_in_place():
    follower = PurePursuitFollower(LIMITS)
    path = straight(0.0, 0.0, 5.0, 0.0)
    path[-1] = Pose2D(5.0, 0.0, math.pi / 2)
    follower.set_path(path)
    poses, commands = drive(follower, Pose2D())
    assert commands[-1].goal_reached
    assert any(c.state == "rotating_to_goal_heading" for c in commands)
    assert abs(wrap_angle(poses[-1].yaw - math.pi / 2)) <= LIMITS.yaw_tolerance + 1e-9


def steady_speed(regulation: Regulation, limits: FollowerLimits = LIMITS) -> float:
    """The speed the follower settles at on a long straight path, far from its goal."""
    follower = PurePursuitFollower(limits)
    follower.set_path(straight(0.0, 0.0, 100.0, 0.0))
    cmd = None
    for _ in range(50):
        cmd = follower.compute(Pose2D(), DT, regulation)
    return cmd.linear


def test_slows_on_slopes_near_hazards_and_in_the_dark():
    flat = steady_speed(Regulation())
    assert flat == pytest.approx(LIMITS.max_linear)
    gentle = steady_speed(Regulation(slope=math.radians(10)))
    steep = steady_speed(Regulation(slope=math.radians(18)))
    assert flat > gentle > steep > 0.0
    assert steady_speed(Regulation(slope=-math.radians(18))) == pytest.approx(steep)
    near = steady_speed(Regulation(hazard_cost=0.8))
    assert 0.0 < near < steady_speed(Regulation(hazard_cost=0.2)) < flat
    dark = steady_speed(Regulation(confidence=0.1))
    assert 0.0 < dark < flat
    combined = steady_speed(Regulation(math.radians(18), 0.8, 0.1))
    assert 0.0 < combined <= min(steep, near, dark)


def test_scales_are_monotonic_and_bounded():
    slopes = [slope_scale(math.radians(d), LIMITS) for d in range(0, 21)]
    assert slopes == sorted(slopes, reverse=True) and slopes[0] == 1.0
    assert slopes[-1] == pytest.approx(LIMITS.min_slope_scale)
    assert hazard_scale(0.0, LIMITS) == 1.0
    assert hazard_scale(5.0, LIMITS) == LIMITS.min_hazard_scale
    assert confidence_scale(1.0, LIMITS) == 1.0
    assert confidence_scale(math.nan, LIMITS) == LIMITS.min_confidence_scale
    assert hazard_scale(math.nan, LIMITS) == LIMITS.min_hazard_scale


def test_refuses_to_drive_beyond_the_tilt_limit():
    follower = PurePursuitFollower(LIMITS)
    follower.set_path(straight(0.0, 0.0, 10.0, 0.0))
    cmd = follower.compute(Pose2D(), DT, Regulation(slope=math.radians(25)))
    assert (cmd.linear, cmd.angular, cmd.state) == (0.0, 0.0, UNSAFE)
    assert "tilt" in cmd.unsafe_reason


def test_slows_down_approaching_the_goal():
    follower = PurePursuitFollower(LIMITS)
    follower.set_path(straight(0.0, 0.0, 10.0, 0.0))
    _, commands = drive(follower, Pose2D())
    cruising = [c.linear for c in commands if c.distance_remaining > 3.0]
    final = [c.linear for c in commands if 0.0 < c.distance_remaining < 0.6]
    assert min(cruising[20:]) == pytest.approx(LIMITS.max_linear)
    assert final and max(final) < 0.5 * LIMITS.max_linear


def test_acceleration_is_limited_from_rest():
    follower = PurePursuitFollower(LIMITS)
    follower.set_path(straight(0.0, 0.0, 10.0, 0.0))
    speeds = [follower.compute(Pose2D(), DT).linear for _ in range(5)]
    assert speeds[0] <= LIMITS.max_linear_accel * DT + 1e-9
    steps = [b - a for a, b in zip(speeds, speeds[1:], strict=False)]
    assert all(step <= LIMITS.max_linear_accel * DT + 1e-9 for step in steps)


def test_stops_before_a_hazard_reported_ahead():
    rock = (6.0, 0.0, 0.5)  # x, y, radius
    checked: list[list[Pose2D]] = []

    def check_motion(poses):
        checked.append(list(poses))
        for p in poses:
            if math.hypot(p.x - rock[0], p.y - rock[1]) < rock[2] + 0.4:
                return "rock ahead"
        return None

    follower = PurePursuitFollower(LIMITS, check_motion=check_motion)
    follower.set_path(straight(0.0, 0.0, 12.0, 0.0))
    pose = Pose2D()
    cmd = None
    for _ in range(400):
        cmd = follower.compute(pose, DT)
        if cmd.state == UNSAFE:
            break
        pose = advance(pose, cmd.linear, cmd.angular)
    assert cmd.state == UNSAFE and cmd.unsafe_reason == "rock ahead"
    assert (cmd.linear, cmd.angular) == (0.0, 0.0)
    assert math.hypot(pose.x - rock[0], pose.y) > rock[2] + 0.4
    # the checked motion lies ahead of the rover and reaches some way out
    assert all(p.x >= 0.0 for p in checked[0])
    assert max(p.x for p in checked[5]) >= LIMITS.min_rollout_distance - 1e-9
    # it stays stopped while the hazard is there
    assert follower.compute(pose, DT).state == UNSAFE


def test_a_failing_motion_check_stops_the_rover():
    def broken(poses):
        raise RuntimeError("elevation map not ready")

    follower = PurePursuitFollower(LIMITS, check_motion=broken)
    follower.set_path(straight(0.0, 0.0, 5.0, 0.0))
    cmd = follower.compute(Pose2D(), DT)
    assert cmd.state == UNSAFE and (cmd.linear, cmd.angular) == (0.0, 0.0)
    assert "elevation map not ready" in cmd.unsafe_reason


def test_no_path_and_bad_paths():
    follower = PurePursuitFollower(LIMITS)
    assert follower.compute(Pose2D(), DT).state == "no_path"
    with pytest.raises(ValueError):
        follower.set_path([])
    with pytest.raises(ValueError):
        follower.set_path([Pose2D(), Pose2D(math.nan, 0.0)])
    follower.set_path([Pose2D(0.2, 0.0)])  # a one-pose path within the tolerance
    assert follower.compute(Pose2D(), DT).goal_reached


def test_limits_are_validated():
    with pytest.raises(ValueError, match="max_linear"):
        FollowerLimits(max_linear=-1.0)
    with pytest.raises(ValueError, match="goal_tolerance"):
        FollowerLimits(goal_tolerance=math.nan)
    with pytest.raises(ValueError, match="max_lookahead"):
        FollowerLimits(min_lookahead=3.0, max_lookahead=1.0)


def test_max_speed_per_path_lowers_the_limit():
    follower = PurePursuitFollower(LIMITS)
    follower.set_path(straight(0.0, 0.0, 50.0, 0.0), max_speed=0.2)
    speeds = [follower.compute(Pose2D(), DT).linear for _ in range(30)]
    assert max(speeds) == pytest.approx(0.2)


finite_or_not = st.one_of(st.floats(-50.0, 50.0), st.just(math.nan), st.just(math.inf),
                          st.just(-math.inf))


@given(x=finite_or_not, y=finite_or_not, yaw=finite_or_not, dt=finite_or_not,
       slope=finite_or_not, cost=finite_or_not, conf=finite_or_not, speed=finite_or_not)
def test_never_a_non_finite_or_excessive_command(x, y, yaw, dt, slope, cost, conf, speed):
    follower = PurePursuitFollower(LIMITS)
    follower.set_path(quarter_circle(5.0, 20))
    for _ in range(3):
        cmd = follower.compute(Pose2D(x, y, yaw), dt, Regulation(slope, cost, conf), speed)
        assert math.isfinite(cmd.linear) and math.isfinite(cmd.angular)
        assert 0.0 <= cmd.linear <= LIMITS.max_linear + 1e-9
        assert abs(cmd.angular) <= LIMITS.max_angular + 1e-9
        assert math.isfinite(cmd.distance_remaining)


def test_turns_in_place_slowly_on_a_slope():
    """On a slope a turn in place slides the rover: it turns no faster than
    slope_rotate_speed there (for visual odometry to see the slide), at rotate_speed on
    flat ground."""
    def peak_turn(slope: float) -> float:
        follower = PurePursuitFollower(LIMITS)
        follower.set_path(straight(0.0, 0.0, 8.0, 0.0))
        pose, peak = Pose2D(0.0, 0.0, math.pi), 0.0
        for _ in range(300):
            cmd = follower.compute(pose, DT, Regulation(slope=slope))
            if cmd.state != ROTATING:
                break
            assert cmd.linear == 0.0
            peak = max(peak, abs(cmd.angular))
            pose = advance(pose, cmd.linear, cmd.angular)
        assert abs(wrap_angle(pose.yaw)) < math.radians(45.0)  # turned towards the path
        return peak

    assert peak_turn(0.0) == pytest.approx(LIMITS.rotate_speed)
    assert peak_turn(LIMITS.slope_rotate_start - 0.01) == pytest.approx(LIMITS.rotate_speed)
    for slope in (LIMITS.slope_rotate_start, -math.radians(8.0)):
        assert peak_turn(slope) == pytest.approx(LIMITS.slope_rotate_speed)
    with pytest.raises(ValueError):
        FollowerLimits(slope_rotate_speed=0.0)


def test_a_turn_that_began_on_a_slope_stays_slow_when_the_tilt_reading_drops():
    """The IMU's tilt moves with the heading (a body-fixed accelerometer bias): a turn
    begun slow on a slope must not speed up when the reading dips under the threshold."""
    follower = PurePursuitFollower(LIMITS)
    follower.set_path(straight(0.0, 0.0, 8.0, 0.0))
    pose = Pose2D(0.0, 0.0, math.pi)
    rates = []
    for k in range(400):
        slope = LIMITS.slope_rotate_start if k < 5 else 0.0
        cmd = follower.compute(pose, DT, Regulation(slope=slope))
        if cmd.state != ROTATING:
            break
        rates.append(abs(cmd.angular))
        pose = advance(pose, cmd.linear, cmd.angular)
    assert len(rates) > 20 and max(rates) == pytest.approx(LIMITS.slope_rotate_speed)
    # the next turn, on flat ground, is fast again
    follower.set_path(straight(0.0, 0.0, -8.0, 0.0))
    cmd = follower.compute(Pose2D(0.0, 0.0, 0.0), 2.0, Regulation(slope=0.0))
    assert cmd.state == ROTATING and abs(cmd.angular) > LIMITS.slope_rotate_speed
