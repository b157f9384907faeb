"""The navigation state machine and the waypoint sequencer, driving a small kinematic simulator:
a unicycle with injectable stall and slip, rocks in a map, and a straight-line planner that
refuses goals off the map, in hazards, in keep-out zones or walled in."""

from __future__ import annotations

import math

import pytest

from ilrs_robots.core.geometry import Pose2D, wrap_angle
from ilrs_robots.core.navigation import (
    BACK_UP,
    REPLAN,
    TURN,
    NavError,
    NavigatorConfig,
    NavState,
    PlanningFailed,
    WaypointSequencer,
    error_code_of,
)
from ilrs_robots.core.navigation import Navigator as _Navigator
from ilrs_robots.core.path_following import (
    FollowerLimits,
    PurePursuitFollower,
    Regulation,
    rollout,
)

DT = 0.1
MAP = (-20.0, 40.0)  # square map bounds, both axes
KEEP_OUT = (30.0, 30.0, 4.0)  # x, y, radius: the reactor's exclusion zone
WALLED_IN = (-15.0, 30.0, 3.0)  # a crater floor with no way in


class World:
    """The rover in a plain with rocks; the planner only knows the rocks it has been shown."""

    def __init__(self, pose: Pose2D | None = None) -> None:
        self.pose = pose or Pose2D()
        self.t = 0.0
        self.rocks: list[tuple[float, float, float]] = []  # the real ones
        self.known_rocks: list[tuple[float, float, float]] = []  # those on the planner's map
        self.stalled = False  # wheels turn, nothing moves
        self.slip = 0.0  # fraction of the commanded speed lost
        self.plan_calls = 0
        self.commands: list[tuple[float, float]] = []

    def advance(self, linear: float, angular: float) -> None:
        self.commands.append((linear, angular))
        factor = 0.0 if self.stalled else 1.0 - self.slip
        self.pose = rollout(self.pose, linear * factor, angular * factor, DT, DT)[0]
        self.t += DT

    # -- injected into the navigator --------------------------------------------------------

    def plan(self, start: Pose2D, goal: Pose2D) -> list[Pose2D]:
        self.plan_calls += 1
        lo, hi = MAP
        if not (lo <= goal.x <= hi and lo <= goal.y <= hi):
            raise PlanningFailed("OFF_MAP", f"goal ({goal.x:.1f}, {goal.y:.1f}) is off the map")
        for x, y, r in self.known_rocks:
            if math.hypot(goal.x - x, goal.y - y) < r + 0.5:
                raise PlanningFailed(NavError.IN_HAZARD, "goal on a rock")
        if math.hypot(goal.x - KEEP_OUT[0], goal.y - KEEP_OUT[1]) < KEEP_OUT[2]:
            raise PlanningFailed(9103, "goal inside the reactor's exclusion zone")
        if math.hypot(goal.x - WALLED_IN[0], goal.y - WALLED_IN[1]) < WALLED_IN[2]:
            raise PlanningFailed("unreachable", "no path into the crater")
        points = [(start.x, start.y)]
        for x, y, r in self.known_rocks:  # go around a known rock on the way
            if _segment_distance((x, y), points[-1], (goal.x, goal.y)) < r + 0.8:
                dx, dy = goal.x - points[-1][0], goal.y - points[-1][1]
                n = math.hypot(dx, dy)
                points.append((x - dy / n * (r + 2.0), y + dx / n * (r + 2.0)))
        points.append((goal.x, goal.y))
        path: list[Pose2D] = []
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            n = max(1, int(math.hypot(x1 - x0, y1 - y0) / 0.25))
            yaw = math.atan2(y1 - y0, x1 - x0)
            path += [Pose2D(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, yaw)
                     for i in range(n)]
        path.append(goal)
        return path

    def path_blocked(self, path) -> bool:
        return any(math.hypot(p.x - x, p.y - y) < r + 0.5
                   for p in path for x, y, r in self.known_rocks)

    def check_motion(self, poses) -> str | None:
        for p in poses:
            for x, y, r in self.known_rocks:
                if math.hypot(p.x - x, p.y - y) < r + 0.4:
                    return f"rock at ({x:.1f}, {y:.1f})"
        return None


def _segment_distance(p, a, b) -> float:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    n2 = dx * dx + dy * dy
    t = 0.0 if n2 == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / n2))
    return math.hypot(p[0] - ax - t * dx, p[1] - ay - t * dy)


CONFIG = NavigatorConfig(stall_timeout=4.0, max_recoveries=3, replan_period=0.0,
                         settle_time=0.5, recovery_timeout=6.0)


def make(world: World, config: NavigatorConfig = CONFIG, blocked: bool = True) -> _Navigator:
    follower = PurePursuitFollower(FollowerLimits(), check_motion=world.check_motion)
    return _Navigator(world.plan, follower, config,
                      path_blocked=world.path_blocked if blocked else None)


def run(nav: _Navigator, world: World, seconds: float = 120.0, until=None, **step_args):
    """Step the navigator and the world; every output, up to the goal's end (or `until`)."""
    outputs = []
    for _ in range(int(seconds / DT)):
        out = nav.step(world.t, world.pose, **step_args)
        outputs.append(out)
        if out.result is not None or (until is not None and until(out)):
            break
        world.advance(out.linear, out.angular)
    return outputs


def test_reaches_a_goal_with_feedback():
    world = World()
    nav = make(world)
    response = nav.set_goal(Pose2D(15.0, 5.0, 0.0), world.t, world.pose)
    assert response.accepted and response.error_code == NavError.NONE and response.path
    assert nav.state is NavState.FOLLOWING
    outputs = run(nav, world)
    last = outputs[-1]
    assert last.result.state is NavState.SUCCEEDED and last.result.error_code == 0
    assert math.hypot(world.pose.x - 15.0, world.pose.y - 5.0) <= 0.5
    assert last.result.number_of_recoveries == 0
    feedback = [o.feedback for o in outputs[:-1]]
    assert feedback[0].distance_remaining == pytest.approx(math.hypot(15.0, 5.0), abs=0.3)
    assert feedback[-1].distance_remaining < 1.0
    times = [f.navigation_time for f in feedback]
    assert times == sorted(times) and times[-1] > 20.0
    # once cruising, the estimate is the distance over the speed made good (about 0.5 m/s)
    mid = feedback[len(feedback) // 2]
    assert mid.estimated_time_remaining == pytest.approx(mid.distance_remaining / 0.5, rel=0.2)
    # after the end: zero commands, no more results
    after = nav.step(world.t + DT, world.pose)
    assert (after.linear, after.angular, after.result) == (0.0, 0.0, None)


@pytest.mark.parametrize(("goal", "code", "words"), [
    (Pose2D(math.nan, 1.0), NavError.INVALID_GOAL, "finite"),
    (Pose2D(1.0, 1.0, math.inf), NavError.INVALID_GOAL, "finite"),
    (Pose2D(100.0, 0.0), NavError.OFF_MAP, "off the map"),
    (Pose2D(10.0, 0.0), NavError.IN_HAZARD, "rock"),
    (Pose2D(30.0, 29.0), NavError.IN_KEEP_OUT, "exclusion"),
    (Pose2D(-15.0, 30.0), NavError.UNREACHABLE, "crater"),
])
def test_refuses_impossible_goals_at_once(goal, code, words):
    world = World()
    world.known_rocks = [(10.0, 0.0, 1.0)]
    nav = make(world)
    response = nav.set_goal(goal, 0.0, world.pose)
    assert not response.accepted
    assert response.error_code == code and words in response.error_msg
    assert nav.state is NavState.FAILED and nav.result.error_code == code
    out = nav.step(DT, world.pose)
    assert (out.linear, out.angular, out.state) == (0.0, 0.0, NavState.FAILED)


def test_refuses_without_a_pose_with_estop_and_with_a_bad_speed():
    world = World()
    nav = make(world)
    assert nav.set_goal(Pose2D(5.0, 0.0), 0.0, None).error_code == NavError.NO_LOCALIZATION
    assert nav.set_goal(Pose2D(5.0, 0.0), 0.0,
                        Pose2D(math.nan, 0.0)).error_code == NavError.NO_LOCALIZATION
    assert nav.set_goal(Pose2D(5.0, 0.0), 0.0, world.pose,
                        estop=True).error_code == NavError.ESTOP
    assert nav.set_goal(Pose2D(5.0, 0.0), 0.0, world.pose,
                        max_speed=-1.0).error_code == NavError.INVALID_GOAL
    assert world.plan_calls == 0


def test_error_codes_match_the_action_definition():
    assert [int(c) for c in NavError] == [0, 9000, 9003, 9100, 9101, 9102, 9103, 9104, 9105,
                                          9106, 9107, 9108, 9109]
    assert error_code_of(PlanningFailed("keep-out", "")) is NavError.IN_KEEP_OUT
    assert error_code_of(PlanningFailed(9101, "")) is NavError.OFF_MAP
    assert error_code_of(PlanningFailed(12345, "")) is NavError.UNKNOWN
    assert error_code_of(RuntimeError("boom")) is NavError.UNKNOWN


def test_a_crashing_planner_is_a_refusal_not_a_crash():
    world = World()
    follower = PurePursuitFollower(FollowerLimits())

    def broken(start, goal):
        raise ZeroDivisionError("bug")

    nav = _Navigator(broken, follower, CONFIG)
    response = nav.set_goal(Pose2D(5.0, 0.0), 0.0, world.pose)
    assert not response.accepted and response.error_code == NavError.UNKNOWN
    assert "ZeroDivisionError" in response.error_msg


def test_replans_when_a_rock_lands_on_the_path():
    world = World()
    nav = make(world)
    assert nav.set_goal(Pose2D(20.0, 0.0), 0.0, world.pose).accepted
    assert world.plan_calls == 1
    run(nav, world, until=lambda o: world.pose.x > 5.0)
    assert nav.state is NavState.FOLLOWING and world.plan_calls == 1  # nothing changed yet
    rock = (12.0, 0.0, 1.0)
    world.rocks.append(rock)
    world.known_rocks.append(rock)  # the elevation map saw it
    outputs = run(nav, world)
    replans = [o for o in outputs if o.new_path is not None]
    assert replans and "replanned" in replans[0].note and world.plan_calls >= 2
    assert all(math.hypot(p.x - 12.0, p.y) > 1.5 for p in replans[0].new_path)
    assert outputs[-1].result.state is NavState.SUCCEEDED
    assert outputs[-1].result.number_of_recoveries == 0


def test_periodic_replanning():
    world = World()
    nav = make(world, NavigatorConfig(replan_period=2.0), blocked=False)
    nav.set_goal(Pose2D(10.0, 0.0), 0.0, world.pose)
    outputs = run(nav, world)
    assert outputs[-1].result.succeeded
    assert world.plan_calls >= 5
    assert sum(o.new_path is not None for o in outputs) == world.plan_calls - 1


def recoveries_of(outputs) -> list[str]:
    kinds = []
    for o in outputs:
        if o.note.startswith("recovery ") and "(" in o.note and o.note.split()[1].isdigit():
            kinds.append(o.note.split("(")[1].split(")")[0])
    return kinds


def test_a_stall_triggers_recoveries_in_order_then_blocked():
    world = World()
    nav = make(world)
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 3.0)
    world.stalled = True
    outputs = run(nav, world, seconds=300.0)
    result = outputs[-1].result
    assert result is not None and result.state is NavState.FAILED
    assert result.error_code == NavError.BLOCKED and "recoveries" in result.error_msg
    assert result.number_of_recoveries == CONFIG.max_recoveries
    assert recoveries_of(outputs) == [BACK_UP, TURN, REPLAN]
    assert any(o.state is NavState.RECOVERING and o.linear < 0.0 for o in outputs)  # backed up
    assert any(o.state is NavState.RECOVERING and o.angular != 0.0 and o.linear == 0.0
               for o in outputs)  # turned in place
    counts = [o.feedback.number_of_recoveries for o in outputs if o.feedback]
    assert counts == sorted(counts) and counts[-1] == CONFIG.max_recoveries
    assert (outputs[-1].linear, outputs[-1].angular) == (0.0, 0.0)


def test_a_stall_that_clears_is_recovered_from():
    world = World()
    nav = make(world)
    nav.set_goal(Pose2D(12.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 3.0)
    world.stalled = True
    run(nav, world, until=lambda o: o.state is NavState.RECOVERING)
    world.stalled = False
    outputs = run(nav, world)
    assert outputs[-1].result.state is NavState.SUCCEEDED
    assert outputs[-1].result.number_of_recoveries == 1


def test_slip_is_noticed_before_the_stall_timeout_and_the_rover_backs_out():
    world = World()
    config = NavigatorConfig(stall_timeout=30.0, max_recoveries=3, settle_time=0.5,
                             replan_period=0.0)
    nav = make(world, config)
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 4.0)
    world.slip = 0.95  # the wheels spin in soft regolith
    slipped_at = world.t
    outputs = run(nav, world, until=lambda o: o.state is NavState.RECOVERING)
    assert outputs[-1].state is NavState.RECOVERING and "slip" in outputs[-1].note
    assert world.t - slipped_at < 5.0  # far sooner than the stall timeout
    assert (outputs[-1].linear, outputs[-1].angular) == (0.0, 0.0)  # stops at once
    world.slip = 0.0  # (the soft patch is only under the front wheels)
    outputs = run(nav, world)
    # not dug in: no forward command until the recovery has backed the rover out
    during = [o for o in outputs if o.state is NavState.RECOVERING]
    assert during and all(o.linear <= 0.0 for o in during)
    assert any(o.linear < 0.0 for o in during)
    assert outputs[-1].result.state is NavState.SUCCEEDED
    assert outputs[-1].result.number_of_recoveries == 1


def test_the_localization_slip_flag_starts_a_recovery_once_it_holds():
    world = World()
    config = NavigatorConfig(stall_timeout=30.0)
    nav = make(world, config)
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 2.0)
    # a flag that drops within slip_flag_hold (a turn in place's yaw slip lingering into the
    # drive) starts nothing
    run(nav, world, seconds=0.5 * config.slip_flag_hold, slipping=True)
    run(nav, world, seconds=1.0, slipping=False)
    assert nav.state is NavState.FOLLOWING and nav.number_of_recoveries == 0
    t0 = world.t
    outputs = run(nav, world, seconds=10.0, until=lambda o: o.state is NavState.RECOVERING,
                  slipping=True)
    out = outputs[-1]
    assert out.state is NavState.RECOVERING and (out.linear, out.angular) == (0.0, 0.0)
    assert config.slip_flag_hold <= world.t - t0 <= config.slip_flag_hold + 0.5
    assert nav.number_of_recoveries == 1


def test_a_hazard_ahead_stops_then_recovers():
    world = World()
    nav = make(world, blocked=False)  # the path check is missing: only check_motion sees it
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 3.0)
    world.known_rocks.append((8.0, 0.0, 1.0))
    outputs = run(nav, world, until=lambda o: o.state is NavState.RECOVERING)
    stopped = [o for o in outputs if o.note.startswith("stopped")]
    assert stopped and all((o.linear, o.angular) == (0.0, 0.0) for o in stopped)
    assert "rock" in stopped[0].note
    assert math.hypot(world.pose.x - 8.0, world.pose.y) > 1.4
    assert outputs[-1].state is NavState.RECOVERING
    final = run(nav, world)
    assert final[-1].result.succeeded  # the recovery's replan went around the rock


def test_cancel_stops_at_once():
    world = World()
    nav = make(world)
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 4.0)
    assert world.commands[-1][0] > 0.3
    result = nav.cancel(world.t)
    assert result.state is NavState.CANCELED and result.error_code == NavError.CANCELED
    out = nav.step(world.t + DT, world.pose)
    assert (out.linear, out.angular, out.state) == (0.0, 0.0, NavState.CANCELED)
    assert nav.cancel(world.t) is None  # nothing left to cancel


def test_cancel_during_a_recovery():
    world = World()
    nav = make(world)
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    world.stalled = True
    run(nav, world, until=lambda o: o.state is NavState.RECOVERING and o.linear < 0.0)
    assert nav.cancel(world.t).error_code == NavError.CANCELED
    assert nav.step(world.t, world.pose).linear == 0.0


def test_a_new_goal_preempts_the_old_one():
    world = World()
    nav = make(world)
    first = nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 4.0)
    second = nav.set_goal(Pose2D(4.0, 6.0, math.pi / 2), world.t, world.pose)
    assert second.accepted and second.goal_id != first.goal_id
    assert second.preempted.goal_id == first.goal_id
    assert second.preempted.error_code == NavError.PREEMPTED
    outputs = run(nav, world)
    assert outputs[-1].result.goal_id == second.goal_id and outputs[-1].result.succeeded
    assert math.hypot(world.pose.x - 4.0, world.pose.y - 6.0) <= 0.5
    assert abs(wrap_angle(world.pose.yaw - math.pi / 2)) <= 0.3


def test_a_refused_new_goal_still_preempts_and_stops_the_rover():
    world = World()
    nav = make(world)
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 2.0)
    response = nav.set_goal(Pose2D(500.0, 0.0), world.t, world.pose)
    assert not response.accepted and response.error_code == NavError.OFF_MAP
    assert response.preempted.error_code == NavError.PREEMPTED
    assert nav.step(world.t, world.pose).linear == 0.0


def test_estop_and_lost_localization_end_the_goal():
    world = World()
    nav = make(world)
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 2.0)
    out = nav.step(world.t, world.pose, estop=True)
    assert (out.linear, out.result.error_code) == (0.0, NavError.ESTOP)

    nav.set_goal(Pose2D(15.0, 0.0), world.t, world.pose)
    t0 = world.t
    out = nav.step(t0 + 0.5, None)
    assert (out.linear, out.angular, out.result) == (0.0, 0.0, None)  # waits a moment
    out = nav.step(t0 + 1.0, Pose2D(math.nan, 0.0))
    assert out.result is None
    out = nav.step(t0 + 3.0, None)
    assert out.result.error_code == NavError.NO_LOCALIZATION


def test_a_stall_of_the_navigator_itself_is_not_lost_localization():
    world = World()
    nav = make(world)
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 2.0)
    t0 = world.t
    assert nav.step(t0, world.pose).result is None  # a good pose, then 3 s without a cycle
    out = nav.step(t0 + 3.0, None)  # the poses sent meanwhile are not in yet: hold, wait
    assert (out.linear, out.angular, out.result) == (0.0, 0.0, None)
    assert nav.step(t0 + 4.5, None).result is None
    out = nav.step(t0 + 5.1, None)  # still none 2 s after the stall: lost, as usual
    assert out.result.error_code == NavError.NO_LOCALIZATION


def test_goal_timeout():
    world = World()
    nav = make(world, NavigatorConfig(goal_timeout=5.0))
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    outputs = run(nav, world)
    assert outputs[-1].result.error_code == NavError.TIMEOUT
    assert 5.0 <= world.t <= 5.5


def test_waypoints_go_on_past_a_missed_one():
    world = World()
    nav = make(world)
    seq = WaypointSequencer(nav)
    waypoints = [Pose2D(5.0, 0.0), Pose2D(-15.0, 30.0), Pose2D(math.nan, 0.0),
                 Pose2D(5.0, 5.0, math.pi / 2), Pose2D(0.0, 5.0)]
    assert seq.start(waypoints, 0.0, world.pose) is None
    reached, out = [], None
    for _ in range(3000):
        out = seq.step(world.t, world.pose)
        if out.nav is not None and out.nav.result is not None and out.nav.result.succeeded:
            reached.append((round(world.pose.x), round(world.pose.y)))
        if out.result is not None:
            break
        world.advance(out.linear, out.angular)
    assert out.result.state is NavState.SUCCEEDED and out.result.error_code == NavError.NONE
    assert out.result.missed_waypoints == [1, 2]
    assert "UNREACHABLE" in out.result.missed_reasons[1]
    assert "INVALID_GOAL" in out.result.missed_reasons[2]
    assert reached == [(5, 0), (5, 5), (0, 5)]
    assert not seq.active and seq.step(world.t, world.pose).linear == 0.0


def test_waypoints_a_waypoint_failing_on_the_way_is_missed():
    world = World()
    nav = make(world)
    seq = WaypointSequencer(nav)
    seq.start([Pose2D(4.0, 0.0), Pose2D(12.0, 0.0), Pose2D(4.0, 4.0)], 0.0, world.pose)
    out = None
    for _ in range(6000):
        out = seq.step(world.t, world.pose)
        if out.result is not None:
            break
        world.stalled = seq.current_waypoint == 1 and world.pose.x > 6.0
        world.advance(out.linear, out.angular)
    assert out.result.missed_waypoints == [1]
    assert "BLOCKED" in out.result.missed_reasons[1]
    assert out.result.state is NavState.SUCCEEDED


def test_waypoints_all_missed_cancel_and_preemption():
    world = World()
    nav = make(world)
    seq = WaypointSequencer(nav)
    result = seq.start([Pose2D(100.0, 0.0), Pose2D(-15.0, 30.0)], 0.0, world.pose)
    assert result.state is NavState.FAILED and result.missed_waypoints == [0, 1]
    assert result.error_code == NavError.UNREACHABLE
    assert seq.start([], 0.0, world.pose).error_code == NavError.INVALID_GOAL

    seq.start([Pose2D(10.0, 0.0), Pose2D(0.0, 0.0)], 0.0, world.pose)
    for _ in range(20):
        world.advance(*(lambda o: (o.linear, o.angular))(seq.step(world.t, world.pose)))
    result = seq.cancel(world.t)
    assert result.state is NavState.CANCELED and result.error_code == NavError.CANCELED
    assert nav.state is NavState.CANCELED

    seq.start([Pose2D(10.0, 0.0), Pose2D(0.0, 0.0)], world.t, world.pose)
    seq.step(world.t, world.pose)
    nav.set_goal(Pose2D(0.0, 3.0), world.t, world.pose)  # a NavigateToPose goal arrives
    out = seq.step(world.t, world.pose)
    assert out.result.error_code == NavError.PREEMPTED and not seq.active


def test_config_is_validated():
    with pytest.raises(ValueError, match="stall_timeout"):
        NavigatorConfig(stall_timeout=0.0)
    with pytest.raises(ValueError, match="max_recoveries"):
        NavigatorConfig(max_recoveries=-1)


def test_a_path_still_blocked_after_replanning_starts_a_recovery():
    world = World()
    nav = make(world, NavigatorConfig(max_recoveries=1, settle_time=0.5, replan_period=0.0))
    nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
    run(nav, world, until=lambda o: world.pose.x > 2.0)
    nav.path_blocked = lambda path: "rock field"  # the map blocks every path
    calls = world.plan_calls
    outputs = run(nav, world)
    assert outputs[0].state is NavState.RECOVERING and "blocked too" in outputs[0].note
    assert outputs[-1].result.error_code == NavError.BLOCKED
    assert world.plan_calls - calls <= 3  # no replanning storm, one plan per attempt


def test_the_turn_recovery_is_slow_on_a_slope():
    def turn_rates(slope: float) -> set[float]:
        world = World()
        nav = make(world)
        nav.set_goal(Pose2D(15.0, 0.0), 0.0, world.pose)
        run(nav, world, until=lambda o: world.pose.x > 3.0)
        world.stalled = True
        outputs = run(nav, world, seconds=300.0, regulation=Regulation(slope=slope))
        return {abs(o.angular) for o in outputs
                if o.state is NavState.RECOVERING and o.linear == 0.0 and o.angular != 0.0}

    assert turn_rates(0.0) == {CONFIG.turn_speed}
    assert turn_rates(math.radians(5.0)) == {CONFIG.slope_turn_speed}
