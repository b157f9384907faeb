"""core.motion_commands: validation, predicted paths, hazard checks, tracking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilrs_robots.core.costmap import CostGrid
from ilrs_robots.core.geometry import Pose2D, wrap_angle
from ilrs_robots.core.motion_commands import (
    Limits,
    Motion,
    MotionTracker,
    TrackerConfig,
    check_goal,
    check_path,
    predict_path,
    validate,
)

LIMITS = Limits()


def grid(lethal: list[tuple[float, float]] = (), unknown: list[tuple[float, float]] = (),
         size: float = 20.0, res: float = 0.2) -> CostGrid:
    """A free square grid centred on the origin, built from OccupancyGrid values as the node
    gets them, with lethal (100) and unknown (-1) cells at the given points."""
    n = int(round(size / res))
    occ = np.full((n, n), 10, dtype=np.int16)
    g0 = CostGrid(np.zeros((n, n)), (-size / 2, -size / 2), res)
    for value, points in ((100, lethal), (-1, unknown)):
        for x, y in points:  # nudged off the cell edges that rounding would move
            occ[g0.world_to_cell(x + 1e-6, y + 1e-6)] = value
    return CostGrid.from_occupancy(occ.ravel().tolist(), n, n, (-size / 2, -size / 2), res)


def on(g: CostGrid, cover: bool = True) -> list[tuple[str, CostGrid, bool]]:
    return [("global costmap", g, cover)]


# -- validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("motion,words", [
    (Motion("drive", distance=50.0), "distance 50 m is over max_distance 10 m"),
    (Motion("drive", distance=math.nan), "distance nan is not a finite number"),
    (Motion("drive", distance=1.0, speed=2.0), "speed 2 m/s is over max_linear"),
    (Motion("drive", distance=1.0, speed=-0.1), "speed -0.1 must be 0"),
    (Motion("turn", angle=7.0), "angle 401 deg is over max_angle 360 deg"),
    (Motion("turn", angle=math.inf), "angle inf is not a finite number"),
    (Motion("velocity", linear=0.2, duration=30.0), "duration 30 s must be"),
    (Motion("velocity", linear=0.2, duration=0.0), "duration 0 s must be over 0"),
    (Motion("velocity", linear=0.9, duration=1.0), "linear 0.9 m/s is over max_linear"),
    (Motion("velocity", angular=-2.0, duration=1.0), "angular -2 rad/s is over max_angular"),
    (Motion("velocity", linear=math.nan, duration=1.0), "linear nan is not a finite"),
    (Motion("goto", x=math.nan), "x nan is not a finite number"),
    (Motion("jump"), "unknown kind 'jump'"),
])
def test_validation_names_the_problem(motion, words):
    reason = validate(motion, LIMITS)
    assert reason is not None and words in reason, reason


@pytest.mark.parametrize("motion", [
    Motion("drive", distance=-10.0), Motion("turn", angle=-2 * math.pi),
    Motion("velocity", linear=-0.5, angular=0.8, duration=10.0), Motion("goto", x=5, y=-3),
    Motion("stop", distance=math.nan),  # a stop is never refused for fields it does not use
])
def test_commands_within_the_limits_are_valid(motion):
    assert validate(motion, LIMITS) is None


def test_goto_distance_is_bounded_from_the_pose():
    far = Motion("goto", x=300.0, y=0.0)
    assert validate(far, LIMITS) is None  # no pose known: the map check bounds it
    assert "over max_goto_distance 100 m" in validate(far, LIMITS, Pose2D(0.0, 0.0))


# -- predicted paths ------------------------------------------------------------------------

def test_drive_path_is_straight_along_the_heading_and_dense():
    start = Pose2D(1.0, 2.0, math.pi / 2)
    path = predict_path(Motion("drive", distance=2.0), start, step=0.1)
    assert path[0] == start and len(path) == 21
    assert path[-1].x == pytest.approx(1.0) and path[-1].y == pytest.approx(4.0)
    steps = [math.hypot(b.x - a.x, b.y - a.y) for a, b in zip(path, path[1:], strict=False)]
    assert max(steps) <= 0.1 + 1e-9
    back = predict_path(Motion("drive", distance=-1.0), Pose2D(0.0, 0.0, 0.0))
    assert back[-1].x == pytest.approx(-1.0) and back[-1].yaw == 0.0


def test_turn_path_stays_in_place_and_ends_at_the_angle():
    path = predict_path(Motion("turn", angle=-math.pi / 2), Pose2D(3.0, 3.0, 0.0),
                        angle_step=math.radians(5))
    assert {(p.x, p.y) for p in path} == {(3.0, 3.0)}
    assert path[-1].yaw == pytest.approx(-math.pi / 2)
    assert len(path) == 19


def test_velocity_path_is_the_arc_over_its_duration():
    v, w, t = 0.5, 0.5, 2 * math.pi  # a half circle of radius 1
    path = predict_path(Motion("velocity", linear=v, angular=w, duration=t), Pose2D())
    end = path[-1]
    assert end.x == pytest.approx(0.0, abs=1e-6) and end.y == pytest.approx(2.0)
    assert abs(wrap_angle(end.yaw - math.pi)) < 1e-6
    steps = [math.hypot(b.x - a.x, b.y - a.y) for a, b in zip(path, path[1:], strict=False)]
    assert max(steps) <= 0.1 + 1e-6


# -- hazard checks --------------------------------------------------------------------------

def test_a_lethal_cell_on_the_path_refuses_it_and_is_named():
    g = grid(lethal=[(3.1, 0.0)])
    problem = check_path(predict_path(Motion("drive", distance=5.0), Pose2D()), on(g))
    assert problem is not None and problem.what == "hazard"
    assert problem.x == pytest.approx(3.1, abs=0.11) and problem.y == pytest.approx(0.1)
    assert problem.describe() == "the path crosses a hazard at (3.1, 0.1) in the global costmap"
    assert "hazard ahead at" in problem.describe(under_way=True)
    # stopping short of it is fine; passing beside it too, unless the footprint touches it
    assert check_path(predict_path(Motion("drive", distance=2.5), Pose2D()), on(g)) is None
    beside = predict_path(Motion("drive", distance=5.0), Pose2D(0.0, 0.6, 0.0))
    assert check_path(beside, on(g)) is None
    assert check_path(beside, on(g), footprint_radius=0.7) is not None


def test_leaving_the_global_map_is_refused_but_not_the_local_one():
    g = grid(size=10.0)  # x, y in [-5, 5)
    path = predict_path(Motion("drive", distance=8.0), Pose2D(0.0, 0.0, 0.0))
    problem = check_path(path, on(g))
    assert problem is not None and problem.what == "off_map"
    assert "leaves the global costmap" in problem.describe()
    assert check_path(path, [("local costmap", g, False)]) is None


def test_unknown_ground_is_allowed_unless_refused():
    g = grid(unknown=[(2.0, 0.0)])
    path = predict_path(Motion("drive", distance=4.0), Pose2D())
    assert check_path(path, on(g)) is None
    problem = check_path(path, on(g), refuse_unknown=True)
    assert problem is not None and problem.what == "unknown"
    # the unknown cell the rover stands on does not hold it there
    standing = grid(unknown=[(0.0, 0.0)])
    assert check_path(path, on(standing), refuse_unknown=True) is None


def test_a_rover_touching_a_hazard_may_turn_and_back_away_but_not_close_in():
    g = grid(lethal=[(0.5, 0.0)])
    start = Pose2D(0.0, 0.0, 0.0)
    r = 0.6  # the footprint touches the rock already
    assert check_path([start], on(g), r) is None
    assert check_path(predict_path(Motion("turn", angle=math.pi), start), on(g), r) is None
    assert check_path(predict_path(Motion("drive", distance=-2.0), start), on(g), r) is None
    closer = check_path(predict_path(Motion("drive", distance=1.0), start), on(g), r)
    assert closer is not None and closer.what == "hazard"


def test_a_rover_inside_a_lethal_cell_may_leave_it_but_not_go_deeper():
    rock = [(x / 10.0, y / 10.0) for x in range(-4, 30, 2) for y in range(-10, 12, 2)]
    g = grid(lethal=rock)  # a lethal block from x = -0.4 to 3, the rover at its west edge
    start = Pose2D(-0.3, 0.0, 0.0)
    assert check_path(predict_path(Motion("drive", distance=-2.0), start), on(g)) is None
    assert check_path(predict_path(Motion("drive", distance=2.0), start), on(g)) is not None


def test_goal_checks():
    g = grid(lethal=[(4.0, 4.0)], size=20.0)
    assert check_goal(2.0, 2.0, on(g)) is None
    assert "is on a hazard" in check_goal(4.0, 4.0, on(g))
    assert "is off the global costmap" in check_goal(40.0, 0.0, on(g))
    near = check_goal(4.5, 4.0, on(g), footprint_radius=0.6)
    assert near is not None and "hazard" in near


# -- tracking -------------------------------------------------------------------------------

def simulate(m: Motion, start: Pose2D, dt: float = 0.1, lag: float = 1.0, limit: float = 200.0,
             config: TrackerConfig | None = None):
    """Integrate the commanded twist (turns at `lag` of the command, as a skid-steer base
    does) until the tracker ends; the final pose, the last step and the commands."""
    tracker = MotionTracker(m, start, 0.0, config)
    pose, t, commands = start, 0.0, []
    while t < limit:
        step = tracker.step(pose, t)
        commands.append((step.linear, step.angular))
        if step.done or step.stalled:
            return pose, step, commands
        yaw = pose.yaw + step.angular * lag * dt
        pose = Pose2D(pose.x + step.linear * dt * math.cos(pose.yaw),
                      pose.y + step.linear * dt * math.sin(pose.yaw), wrap_angle(yaw))
        t += dt
    raise AssertionError("the tracker never ended")


def test_a_drive_converges_within_tolerance_at_capped_speed():
    start = Pose2D(1.0, 1.0, math.pi / 4)
    pose, step, commands = simulate(Motion("drive", distance=2.0), start)
    assert step.done and step.progress == 1.0 and commands[-1] == (0.0, 0.0)
    assert math.hypot(pose.x - start.x, pose.y - start.y) == pytest.approx(2.0, abs=0.05)
    assert max(v for v, _ in commands) == pytest.approx(0.3)  # the default speed
    assert commands[-2][0] < 0.3  # slowed near the end
    pose, _, commands = simulate(Motion("drive", distance=-1.0, speed=0.1), start)
    assert max(abs(v) for v, _ in commands) == pytest.approx(0.1)
    assert all(v <= 0.0 for v, _ in commands)


def test_a_turn_converges_on_a_base_that_turns_slower_than_commanded():
    pose, step, commands = simulate(Motion("turn", angle=math.pi / 2), Pose2D(), lag=0.63)
    assert step.done
    assert pose.yaw == pytest.approx(math.pi / 2, abs=0.04)
    pose, step, _ = simulate(Motion("turn", angle=-3 * math.pi / 2), Pose2D(), lag=0.63)
    assert step.done and wrap_angle(pose.yaw - math.pi / 2) == pytest.approx(0.0, abs=0.04)


def test_a_velocity_command_ends_after_its_duration():
    m = Motion("velocity", linear=0.2, angular=0.1, duration=3.0)
    tracker = MotionTracker(m, Pose2D(), 10.0)
    first = tracker.step(Pose2D(), 10.0)
    assert (first.linear, first.angular) == (0.2, 0.1) and first.progress == 0.0
    assert tracker.step(Pose2D(0.3, 0.0), 11.5).progress == pytest.approx(0.5)
    assert tracker.remaining(Pose2D(), 11.5).duration == pytest.approx(1.5)
    end = tracker.step(Pose2D(0.6, 0.0), 13.0)
    assert end.done and (end.linear, end.angular) == (0.0, 0.0)


def test_no_progress_for_the_stall_timeout_is_a_stall():
    config = TrackerConfig(stall_timeout=2.0)
    tracker = MotionTracker(Motion("drive", distance=2.0), Pose2D(), 0.0, config)
    assert not tracker.step(Pose2D(), 1.0).stalled
    assert not tracker.step(Pose2D(0.1, 0.0), 2.5).stalled  # progress at 2.5 s
    assert not tracker.step(Pose2D(0.1, 0.0), 4.0).stalled
    stalled = tracker.step(Pose2D(0.105, 0.0), 4.6)
    assert stalled.stalled and not stalled.done


def test_remaining_motion_shrinks_as_the_rover_goes():
    tracker = MotionTracker(Motion("drive", distance=-3.0), Pose2D(), 0.0)
    tracker.step(Pose2D(-1.0, 0.0), 1.0)
    assert tracker.remaining(Pose2D(-1.0, 0.0), 1.0).distance == pytest.approx(-2.0)
    turn = MotionTracker(Motion("turn", angle=math.pi), Pose2D(), 0.0)
    turn.step(Pose2D(0.0, 0.0, math.pi / 4), 1.0)
    assert turn.remaining(Pose2D(), 1.0).angle == pytest.approx(3 * math.pi / 4)
    with pytest.raises(ValueError):
        MotionTracker(Motion("goto", x=1.0), Pose2D(), 0.0)
