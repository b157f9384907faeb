"""A rock dropped on the rover's path while it drives (issue 8): the rover replans and goes
around it to its goal.

sim (test_flat, the left nav camera's depth image), base_driver, navigator and
terrain_mapper (on that depth image), all on the simulator's ground truth; the costmaps are
the terrain_mapper's, so the rock reaches the planner only through what the camera sees. The
rock comes from the simulator's `/sim/drop_rock` service, a few metres ahead on the plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from test_navigator import (
    NS,
    SUCCEEDED,
    NavStack,
    moving_away_from,
    navigation_stack,
    output_of,
    result_of,
    send,
)

from ilrs_interfaces.srv import DropRock
from ilrs_robots.runner.ros_client import LATCHED, RosClient, wait_until

GOAL = (2.0, 0.0, 0.0)  # 22 m east of test_flat's rover start (-20, 0)
RADIUS, HEIGHT = 0.6, 0.45  # m: over the wheels' 0.2 m step limit and the mapper's 0.2 m rock
AHEAD = 7.0  # m along the plan from the rover, where the rock lands
WHEELS = 0.7  # m from base_link to the outer edge of the wheels (half track + half width)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[NavStack]:
    """The flat test world mapped from the simulator's depth image at 320 x 240."""
    with navigation_stack(tmp_path_factory.mktemp("run"), "test_flat",
                          sim_parameters={"depth_rate": 4.0, "camera_width": 320,
                                          "camera_height": 240},
                          mapper_parameters={"input": "depth"}) as running:
        yield running


def drop_rock(ros: RosClient, x: float, y: float, radius: float = RADIUS,
              height: float = HEIGHT) -> DropRock.Response:
    """Call the simulator's drop_rock service; its response."""
    client = ros.node.create_client(DropRock, "/sim/drop_rock")
    try:
        assert client.wait_for_service(timeout_sec=30.0), "no /sim/drop_rock service"
        future = client.call_async(DropRock.Request(x=x, y=y, radius=radius, height=height))
        assert wait_until(future.done, 30.0), "drop_rock never answered"
        return future.result()
    finally:
        ros.node.destroy_client(client)


def along(path: PathMsg, x: float, y: float, distance: float) -> tuple[float, float]:
    """The point `distance` along `path` from its pose nearest (x, y)."""
    pts = [(p.pose.position.x, p.pose.position.y) for p in path.poses]
    i = min(range(len(pts)), key=lambda k: math.hypot(pts[k][0] - x, pts[k][1] - y))
    for (ax, ay), (bx, by) in zip(pts[i:], pts[i + 1:], strict=False):
        step = math.hypot(bx - ax, by - ay)
        if step >= distance:
            t = distance / step
            return ax + t * (bx - ax), ay + t * (by - ay)
        distance -= step
    raise AssertionError(f"the plan ends before {distance:.1f} m more")


def clearance(path: PathMsg, x: float, y: float) -> float:
    """The least distance from (x, y) to the poses of `path`."""
    return min(math.hypot(p.pose.position.x - x, p.pose.position.y - y) for p in path.poses)


def test_rocks_off_the_map_on_the_rover_or_not_finite_are_refused(stack):
    here = stack.settle()
    for (x, y, radius), words in (((500.0, 0.0, RADIUS), "off the terrain"),
                                  ((here.x + 0.5, here.y, RADIUS), "would land on the rover"),
                                  ((math.nan, 0.0, RADIUS), "x must be a finite number"),
                                  ((0.0, 0.0, math.inf), "radius must be a finite number")):
        response = drop_rock(stack.ros, x, y, radius)
        assert not response.success and words in response.status_message, response


def test_the_rover_goes_around_a_rock_dropped_on_its_path(stack):
    start = stack.settle()
    assert math.hypot(GOAL[0] - start.x, GOAL[1] - start.y) > 20.0
    plans = stack.ros.subscribe(PathMsg, f"{NS}/plan", LATCHED)
    track: list[tuple[float, float]] = []
    stack.ros.node.create_subscription(
        Odometry, f"{NS}/sim/ground_truth",
        lambda m: track.append((m.pose.pose.position.x, m.pose.pose.position.y)), 50)
    _, feedback, future = send(stack, *GOAL)
    moving_away_from(stack, start, 3.0)

    here = stack.pose()
    first = plans.last()
    rock = along(first, here.x, here.y, AHEAD)
    dropped = drop_rock(stack.ros, *rock)
    assert dropped.success, dropped.status_message
    assert dropped.top == pytest.approx(HEIGHT, abs=0.01)
    assert clearance(first, *rock) < RADIUS  # it lies on the path the rover was following
    after_drop, track_from = plans.received, len(track)

    response = result_of(future, 400.0, stack)
    assert response.status == SUCCEEDED, (response.result, stack.logs())
    assert response.result.error_code == 0

    # the navigator replanned around it: a plan published after the drop keeps clear of it
    new_plans = plans.messages[after_drop:]
    assert new_plans, "no plan was published after the drop\n" + stack.logs()
    around = [p for p in new_plans if clearance(p, *rock) > RADIUS + WHEELS]
    assert around, ([round(clearance(p, *rock), 2) for p in new_plans], stack.logs())
    # ... and drove it: no wheel touched the rock (the true track, from the drop on)
    nearest = min(math.hypot(x - rock[0], y - rock[1]) for x, y in track[track_from:])
    assert nearest > RADIUS + WHEELS, (nearest, output_of(stack.sup, "navigator")[-3000:])
    fb = feedback.messages[-1]
    print(f"rock at ({rock[0]:.1f}, {rock[1]:.1f}) {AHEAD} m ahead of ({here.x:.1f}, "
          f"{here.y:.1f}); closest pass {nearest:.2f} m; {len(new_plans)} plan(s) after "
          f"the drop; {fb.number_of_recoveries} recoveries")
