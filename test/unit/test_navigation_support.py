"""The navigator's pure glue: planner refusals as NavigateToPose codes, keep-outs, motion
check with and without the footprint, goal checks, tilt."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilrs_robots.core.costmap import CostGrid, KeepOut
from ilrs_robots.core.geometry import Pose2D, yaw_to_quaternion
from ilrs_robots.core.navigation import NavError, Navigator, NavState, PlanningFailed
from ilrs_robots.core.navigation_support import (
    GridPlanner,
    MotionCheck,
    NoHeadway,
    goal_problem,
    parse_keep_outs,
    plan_error_code,
    tilt_of,
)
from ilrs_robots.core.path_following import PurePursuitFollower
from ilrs_robots.core.planning import PlanError


def free_grid(size: float = 40.0, res: float = 0.5) -> CostGrid:
    """A free square grid centred on the origin."""
    n = int(size / res)
    return CostGrid(np.zeros((n, n), np.float32), (-size / 2, -size / 2), res)


def test_every_planner_refusal_has_a_navigation_code():
    assert {plan_error_code(c) for c in PlanError if c is not PlanError.NONE} <= set(NavError)
    assert plan_error_code(PlanError.GOAL_OUTSIDE_MAP) is NavError.OFF_MAP
    assert plan_error_code(PlanError.GOAL_OCCUPIED) is NavError.IN_HAZARD
    assert plan_error_code(PlanError.GOAL_IN_KEEP_OUT) is NavError.IN_KEEP_OUT
    assert plan_error_code(PlanError.NO_VALID_PATH) is NavError.UNREACHABLE


def test_planner_refuses_with_codes_and_names_the_keep_out():
    planner = GridPlanner(keep_outs=[KeepOut(10.0, 0.0, 3.0, "reactor exclusion zone")],
                          footprint_radius=1.0)
    with pytest.raises(PlanningFailed) as no_map:
        planner(Pose2D(), Pose2D(5.0, 0.0))
    assert "no global costmap" in no_map.value.message
    planner.update(free_grid())
    cases = [(Pose2D(50.0, 0.0), NavError.OFF_MAP, "off the map"),
             (Pose2D(10.0, 1.0), NavError.IN_KEEP_OUT, "reactor exclusion zone"),
             (Pose2D(10.0, 3.5), NavError.IN_KEEP_OUT, "reactor exclusion zone")]  # inflation
    for goal, code, words in cases:
        with pytest.raises(PlanningFailed) as refused:
            planner(Pose2D(), goal)
        assert refused.value.code is code and words in refused.value.message
    # a path around the zone, ending with the goal's heading
    path = planner(Pose2D(0.0, 0.0), Pose2D(18.0, 0.0, 1.0))
    assert path[-1] == Pose2D(18.0, 0.0, 1.0)
    assert min(math.hypot(p.x - 10.0, p.y) for p in path) > 3.0
    assert planner.blocked(path) is None
    grid = planner.grid
    grid.mark_lethal(*_midpoint(path), 0.5)
    assert "hazard on the path" in planner.blocked(path)


def _midpoint(path: list[Pose2D]) -> tuple[float, float]:
    p = path[len(path) // 2]
    return p.x, p.y


def test_navigator_core_refuses_through_the_grid_planner():
    planner = GridPlanner()
    planner.update(free_grid())
    nav = Navigator(planner, PurePursuitFollower(), path_blocked=planner.blocked)
    response = nav.set_goal(Pose2D(30.0, 0.0), 0.0, Pose2D())
    assert not response.accepted and response.error_code is NavError.OFF_MAP
    assert nav.state is NavState.FAILED
    assert nav.set_goal(Pose2D(5.0, 5.0), 1.0, Pose2D()).accepted


def test_the_planner_keeps_away_from_where_the_rover_made_no_headway():
    planner = GridPlanner(no_headway=NoHeadway(radius=1.5, ahead=1.0, cost=0.9))
    planner.update(free_grid())
    start, goal = Pose2D(-10.0, 0.0), Pose2D(10.0, 0.0)
    straight = planner(start, goal)
    assert max(abs(p.y) for p in straight) < 0.3
    # it slipped at (-1, 0) heading east: the spot is 1 m on, at (0, 0)
    assert planner.remember_no_headway(Pose2D(-1.0, 0.0, 0.0), 1.0) == pytest.approx((0.0, 0.0))
    around = planner(Pose2D(-1.6, 0.0), goal)  # from where the back-up left it
    assert min(math.hypot(p.x, p.y) for p in around) > 1.4
    assert around[-1].x == pytest.approx(10.0)
    # the spot holds on every costmap that comes later, and the source grid is not touched
    fresh = free_grid()
    planner.update(fresh)
    assert not np.any(fresh.cost)
    assert planner.grid.cost[planner.grid.world_to_cell(0.0, 0.0)] == pytest.approx(0.9)
    assert min(math.hypot(p.x, p.y) for p in planner(Pose2D(-1.6, 0.0), goal)) > 1.4
    # costly, not lethal: nothing is blocked by it, and a goal inside it is still reached
    assert planner.blocked(straight) is None
    assert planner(start, Pose2D(0.0, 0.0))[-1].x == pytest.approx(0.0)
    # backing up, the spot is behind; off (radius 0) nothing is remembered
    assert planner.remember_no_headway(Pose2D(5.0, 5.0, 0.0), -1.0) == pytest.approx((4.0, 5.0))
    assert len(planner.spots) == 2
    off = GridPlanner()  # off by default
    off.update(free_grid())
    assert off.remember_no_headway(Pose2D(), 1.0) is None and not off.spots
    assert off.remember_no_headway(Pose2D(math.nan, 0.0), 1.0) is None
    with pytest.raises(ValueError):
        NoHeadway(cost=1.0)  # lethal would wall a rover in where it only slipped


def test_the_navigator_tells_the_planner_where_it_slipped():
    planner = GridPlanner(no_headway=NoHeadway(radius=1.5))
    planner.update(free_grid())
    told: list[tuple[Pose2D, float]] = []

    def remember(pose: Pose2D, direction: float) -> tuple[float, float] | None:
        told.append((pose, direction))
        return planner.remember_no_headway(pose, direction)

    nav = Navigator(planner, PurePursuitFollower(), path_blocked=planner.blocked,
                    on_no_headway=remember)
    assert nav.set_goal(Pose2D(10.0, 0.0), 0.0, Pose2D(-10.0, 0.0)).accepted
    t, pose = 0.0, Pose2D(-10.0, 0.0)
    out = None
    for _ in range(100):  # commanded forward, the rover does not move: slip, then recovery
        t += 0.1
        out = nav.step(t, pose)
        if out.state is NavState.RECOVERING:
            break
    assert out is not None and out.state is NavState.RECOVERING, out
    assert len(told) == 1 and told[0][0] == pose and told[0][1] == 1.0
    assert "planning around (-9.0, 0.0)" in out.note


def test_motion_check_allows_for_the_footprint_and_leaving_a_hazard():
    grid = free_grid()
    grid.mark_lethal(5.0, 0.0, 0.4)
    beside = [Pose2D(x, 1.0) for x in np.arange(0.5, 9.0, 0.5)]  # passes 1 m from it
    centre_only = MotionCheck(lambda: [("local costmap", grid)], radius=0.0)
    footprint = MotionCheck(lambda: [("local costmap", grid)], radius=0.9)
    assert centre_only(beside) is None
    assert "hazard ahead" in footprint(beside) and "local costmap" in footprint(beside)
    through = [Pose2D(x, 0.0) for x in np.arange(0.5, 9.0, 0.5)]
    assert centre_only(through) is not None
    leaving = [Pose2D(x, 0.0) for x in np.arange(5.0, 8.0, 0.25)]  # starts inside it
    assert centre_only(leaving) is None
    assert MotionCheck(lambda: [])(through) is None  # no map: nothing to veto


def test_keep_outs_parse_and_refuse_bad_entries():
    zones = parse_keep_outs("reactor exclusion zone: 130, 100, 20; lander: -120, 110.5, 3")
    assert zones == [KeepOut(130.0, 100.0, 20.0, "reactor exclusion zone"),
                     KeepOut(-120.0, 110.5, 3.0, "lander")]
    assert parse_keep_outs("") == []
    for bad in ("zone: 1, 2", "zone: 1, 2, -3", "zone: a, b, c", "zone: 1, nan, 2"):
        with pytest.raises(ValueError, match="keep-out"):
            parse_keep_outs(bad)


def test_goal_problems_and_tilt():
    q = yaw_to_quaternion(0.5)
    assert goal_problem("map", "map", (1.0, 2.0, 0.0), q) is None
    assert goal_problem("", "map", (1.0, 2.0, 0.0), q) is None
    assert "frame 'odom'" in goal_problem("odom", "map", (1.0, 2.0, 0.0), q)
    assert "NaN" in goal_problem("map", "map", (math.nan, 2.0, 0.0), q)
    assert "zero quaternion" in goal_problem("map", "map", (1.0, 2.0, 0.0), (0, 0, 0, 0))
    assert tilt_of(q) == pytest.approx(0.0, abs=1e-9)
    roll = (math.sin(0.2 / 2), 0.0, 0.0, math.cos(0.2 / 2))
    assert tilt_of(roll) == pytest.approx(0.2)
    assert math.isnan(tilt_of((0.0, 0.0, 0.0, 0.0)))
