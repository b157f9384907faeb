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
