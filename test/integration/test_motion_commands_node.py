"""motion_commands over real DDS: simulator + base_driver + motion_commands processes from the
rover stack, commands on `motion_commands/request`, statuses on `motion_commands/status`.

The pose comes from the simulator's ground truth (`odom_topic: sim/ground_truth`); the global
costmap is published by the test: the flat world, free, with a lethal wall along y = WALL_Y
(the rover starts at (-20, 0) facing +x). One stack serves the module: each test starts from
wherever the previous one left the rover. The navigator runs too, for goto commands.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sim_support import rover_nodes, start
from std_msgs.msg import Bool

from ilrs_interfaces.msg import MotionCommand, MotionCommandStatus
from ilrs_robots.core.geometry import Pose2D, wrap_angle
from ilrs_robots.nodes.qos import MOTION_STATUSES
from ilrs_robots.runner.missions import at_rest, odom_pose
from ilrs_robots.runner.processes import Supervisor
from ilrs_robots.runner.ros_client import LATCHED, Inbox, RosClient, wait_until

NS = "/rover1"
WALL_Y = 5.0  # a row of lethal cells across the whole map (m)
RES, SIZE = 0.5, 60.0
DONE_TIMEOUT = 180.0  # s of wall time for a short command on a loaded machine
S = MotionCommandStatus

pytestmark = pytest.mark.timeout(1500)


def costmap_message(*walls: float) -> OccupancyGrid:
    """The flat world's costmap: free (cost 0), lethal rows at y = WALL_Y and `walls`."""
    n = int(SIZE / RES)
    occ = np.zeros((n, n), dtype=np.int8)
    for y in (WALL_Y, *walls):
        occ[int((y + SIZE / 2) / RES), :] = 100
    msg = OccupancyGrid()
    msg.header.frame_id = "map"
    msg.info.resolution = RES
    msg.info.height, msg.info.width = n, n
    msg.info.origin.position.x = msg.info.origin.position.y = -SIZE / 2
    msg.info.origin.orientation.w = 1.0
    msg.data = occ.ravel().tolist()
    return msg


def ready(msg: DiagnosticArray) -> bool:
    """True for motion_commands' diagnostics once it has a costmap and a fresh pose."""
    return any(s.name.endswith("motion_commands: commands") and s.level == DiagnosticStatus.OK
               for s in msg.status)


def navigator_ready(msg: DiagnosticArray) -> bool:
    """True for the navigator's diagnostics once it has a costmap and a fresh pose."""
    return any(s.name.endswith("navigator: navigation") and s.level == DiagnosticStatus.OK
               for s in msg.status)


@dataclass
class Rover:
    """The running processes and the test's view of them."""

    sup: Supervisor
    ros: RosClient
    truth: Inbox
    statuses: Inbox
    cmd_vel: Inbox
    requests: object
    estop: object

    def pose(self) -> Pose2D:
        """The rover's true pose now."""
        return odom_pose(self.truth.last())

    def settle(self, timeout: float = 60.0) -> Pose2D:
        """The true pose once a fresh ground truth shows the rover at rest."""
        seen = self.truth.received

        def still():
            got = self.truth.next_after(seen, timeout=0)
            return got if got is not None and at_rest(got[0], 0.02, 0.02) else None

        got = wait_until(still, timeout)
        assert got is not None, f"the rover did not come to rest\n{self.logs()}"
        return odom_pose(got[0])

    def send(self, kind: str, **fields: float) -> str:
        """Publish a command; its id."""
        cid = uuid.uuid4().hex[:8]
        msg = MotionCommand(id=cid, kind=kind, **fields)
        msg.stamp = self.ros.node.get_clock().now().to_msg()
        self.requests.publish(msg)
        return cid

    def states(self, cid: str) -> list[MotionCommandStatus]:
        """The statuses of command `cid` received so far, oldest first."""
        return [m for m in self.statuses.messages if m.id == cid]

    def final(self, cid: str, timeout: float = DONE_TIMEOUT) -> MotionCommandStatus:
        """The status that ended command `cid`."""
        ends = (S.STATE_DONE, S.STATE_REFUSED, S.STATE_FAILED, S.STATE_CANCELLED)
        got = self.statuses.wait_for(lambda m: m.id == cid and m.state in ends, timeout)
        assert got is not None, (f"command {cid} did not end: "
                                 f"{[m.state for m in self.states(cid)]}\n{self.logs()}")
        return got

    def logs(self) -> str:
        """motion_commands' output, for failure messages."""
        proc = next(p for key, p in self.sup.procs.items() if key.endswith("motion_commands"))
        return f"motion_commands alive: {proc.alive}\n{proc.output()[-3000:]}"


@pytest.fixture(scope="module")
def rover(tmp_path_factory) -> Iterator[Rover]:
    """sim (flat world, no cameras), base_driver, navigator and motion_commands on ground
    truth."""
    run_dir: Path = tmp_path_factory.mktemp("run")
    # in real time, as on the Moon: at twice real time a starved node's late stop turned a
    # 90 deg turn into 106 deg in a stress run
    nodes = rover_nodes(run_dir, ("sim", "base_driver", "navigator", "motion_commands"),
                        rate=1.0)
    nodes[2].parameters["keep_outs"] = ""
    sup = start(nodes, run_dir)
    ros = RosClient("motion_commands_test")
    try:
        ros.publisher(OccupancyGrid, f"{NS}/costmap", LATCHED).publish(costmap_message())
        truth = ros.subscribe(Odometry, f"{NS}/sim/ground_truth")
        statuses = ros.subscribe(MotionCommandStatus, f"{NS}/motion_commands/status",
                                 MOTION_STATUSES)
        cmd_vel = ros.subscribe(Twist, f"{NS}/cmd_vel")
        estop = ros.publisher(Bool, f"{NS}/estop", LATCHED)
        estop.publish(Bool(data=False))
        requests = ros.publisher(MotionCommand, f"{NS}/motion_commands/request",
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
                                 wait_for_subscribers=60)
        assert truth.wait_for(timeout=90), "no ground truth from the simulator"
        diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
        running = Rover(sup, ros, truth, statuses, cmd_vel, requests, estop)
        assert diagnostics.wait_for(ready, timeout=90), running.logs()
        assert diagnostics.wait_for(navigator_ready, timeout=120), "the navigator is not ready"
        assert requests.get_subscription_count() > 0, running.logs()
        yield running
    finally:
        ros.close()
        sup.stop()


def test_a_2_m_drive_is_done_and_moves_the_rover_2_m(rover):
    start = rover.settle()
    cid = rover.send(MotionCommand.KIND_DRIVE, distance=2.0)
    end_status = rover.final(cid)
    assert end_status.state == S.STATE_DONE, (end_status.reason, rover.logs())
    assert end_status.progress == pytest.approx(1.0)
    states = [m.state for m in rover.states(cid)]
    assert states[:2] == [S.STATE_RECEIVED, S.STATE_EXECUTING], states
    end = rover.settle()
    assert math.hypot(end.x - start.x, end.y - start.y) == pytest.approx(2.0, abs=0.3)
    assert abs(wrap_angle(end.yaw - start.yaw)) < 0.2  # straight ahead
    assert rover.cmd_vel.wait_for(lambda m: m.linear.x == 0.0 and m.angular.z == 0.0, 5)


def test_a_90_degree_turn_ends_near_90_degrees(rover):
    start = rover.settle()
    cid = rover.send(MotionCommand.KIND_TURN, angle=math.pi / 2)
    end_status = rover.final(cid)
    assert end_status.state == S.STATE_DONE, (end_status.reason, rover.logs())
    end = rover.settle()
    turned = wrap_angle(end.yaw - start.yaw)
    assert turned == pytest.approx(math.pi / 2, abs=0.2)
    assert math.hypot(end.x - start.x, end.y - start.y) < 0.5  # in place


def test_a_drive_into_a_planted_hazard_is_refused_before_any_motion(rover):
    here = rover.settle()
    # face the wall (+y), then ask for a drive that ends past it
    face = rover.send(MotionCommand.KIND_TURN, angle=wrap_angle(math.pi / 2 - here.yaw))
    assert rover.final(face).state == S.STATE_DONE, rover.logs()
    start = rover.settle()
    assert start.y < WALL_Y - 1.0 and abs(wrap_angle(start.yaw - math.pi / 2)) < 0.3
    cid = rover.send(MotionCommand.KIND_DRIVE, distance=WALL_Y - start.y + 1.5)
    end_status = rover.final(cid, timeout=60)
    assert end_status.state == S.STATE_REFUSED, rover.logs()
    assert "crosses a hazard at" in end_status.reason and "global costmap" in end_status.reason
    assert S.STATE_EXECUTING not in [m.state for m in rover.states(cid)]
    count = rover.truth.received
    assert rover.truth.next_after(count + 20, timeout=60)  # a while later (20 poses)
    end = rover.settle()
    assert math.hypot(end.x - start.x, end.y - start.y) < 0.05, "the rover moved"
    # a drive that stops short of the wall is fine
    short = rover.send(MotionCommand.KIND_DRIVE, distance=max(0.3, WALL_Y - start.y - 2.0))
    assert rover.final(short).state == S.STATE_DONE, rover.logs()


def test_a_velocity_command_stops_by_itself_after_its_duration(rover):
    here = rover.settle()
    away = rover.send(MotionCommand.KIND_TURN, angle=wrap_angle(-math.pi / 2 - here.yaw))
    assert rover.final(away).state == S.STATE_DONE, rover.logs()  # away from the wall
    start = rover.settle()
    cid = rover.send(MotionCommand.KIND_VELOCITY, linear=0.2, angular=0.0, duration=3.0)
    end_status = rover.final(cid)
    assert end_status.state == S.STATE_DONE, (end_status.reason, rover.logs())
    end = rover.settle()
    moved = math.hypot(end.x - start.x, end.y - start.y)
    assert 0.2 < moved < 1.2, moved  # about 0.2 m/s for 3 s, then it stopped
    assert rover.cmd_vel.wait_for(lambda m: m.linear.x == 0.0 and m.angular.z == 0.0, 5)


def test_estop_during_a_drive_fails_it_and_stops_the_wheels(rover):
    start = rover.settle()
    cid = rover.send(MotionCommand.KIND_DRIVE, distance=6.0)

    def moving() -> bool:
        p = rover.pose()
        return math.hypot(p.x - start.x, p.y - start.y) > 0.4
    assert wait_until(moving, DONE_TIMEOUT), rover.logs()
    try:
        rover.estop.publish(Bool(data=True))
        end_status = rover.final(cid, timeout=60)
        assert end_status.state == S.STATE_FAILED, rover.logs()
        assert "estop" in end_status.reason
        assert 0.0 < end_status.progress < 1.0
        stopped = rover.settle(timeout=60)
        assert math.hypot(stopped.x - start.x, stopped.y - start.y) < 5.0
        # while the estop is latched, a new command is refused
        again = rover.send(MotionCommand.KIND_DRIVE, distance=1.0)
        refused = rover.final(again, timeout=60)
        assert refused.state == S.STATE_REFUSED and refused.reason == "estop latched"
    finally:
        rover.estop.publish(Bool(data=False))


def test_a_stop_cancels_the_running_command(rover):
    start = rover.settle()
    cid = rover.send(MotionCommand.KIND_DRIVE, distance=5.0)
    assert rover.statuses.wait_for(lambda m: m.id == cid and m.state == S.STATE_EXECUTING,
                                   60), rover.logs()

    def moving() -> bool:
        p = rover.pose()
        return math.hypot(p.x - start.x, p.y - start.y) > 0.3
    assert wait_until(moving, DONE_TIMEOUT), rover.logs()
    stop = rover.send(MotionCommand.KIND_STOP)
    cancelled = rover.final(cid, timeout=60)
    assert cancelled.state == S.STATE_CANCELLED and stop in cancelled.reason
    assert rover.final(stop, timeout=60).state == S.STATE_DONE
    stopped = rover.settle(timeout=60)
    assert math.hypot(stopped.x - start.x, stopped.y - start.y) < 4.5


def test_a_hazard_that_appears_ahead_stops_the_drive(rover):
    here = rover.settle()
    face = rover.send(MotionCommand.KIND_TURN, angle=wrap_angle(-math.pi / 2 - here.yaw))
    assert rover.final(face).state == S.STATE_DONE, rover.logs()  # away from the wall, -y
    start = rover.settle()
    assert start.y > -SIZE / 2 + 8.0
    cid = rover.send(MotionCommand.KIND_DRIVE, distance=6.0)

    def moving() -> bool:
        p = rover.pose()
        return math.hypot(p.x - start.x, p.y - start.y) > 0.3
    assert wait_until(moving, DONE_TIMEOUT), rover.logs()
    costmap = rover.ros.publisher(OccupancyGrid, f"{NS}/costmap", LATCHED)
    rock_y = rover.pose().y - 2.5  # a new lethal row across the way, 2.5 m ahead
    try:
        costmap.publish(costmap_message(rock_y))
        end_status = rover.final(cid, timeout=60)
        assert end_status.state == S.STATE_FAILED, rover.logs()
        assert end_status.reason.startswith("hazard ahead at"), end_status.reason
        stopped = rover.settle(timeout=60)
        assert stopped.y > rock_y + 1.0, (stopped, rock_y)  # stopped well short of it
    finally:
        costmap.publish(costmap_message())


def test_a_goto_is_driven_by_the_navigator(rover):
    start = rover.settle()
    goal = (start.x + 3.0, start.y)
    cid = rover.send(MotionCommand.KIND_GOTO, x=goal[0], y=goal[1])
    end_status = rover.final(cid, timeout=400)
    assert end_status.state == S.STATE_DONE, (end_status.reason, rover.logs())
    assert end_status.progress == pytest.approx(1.0)
    assert S.STATE_EXECUTING in [m.state for m in rover.states(cid)]
    end = rover.settle()
    assert math.hypot(end.x - goal[0], end.y - goal[1]) < 0.8  # the navigator's 0.5 m


def test_a_stop_cancels_a_goto_and_the_navigator_stops(rover):
    start = rover.settle()
    cid = rover.send(MotionCommand.KIND_GOTO, x=start.x + 8.0, y=start.y)

    def moving() -> bool:
        p = rover.pose()
        return math.hypot(p.x - start.x, p.y - start.y) > 0.5
    assert wait_until(moving, 400), rover.logs()
    stop = rover.send(MotionCommand.KIND_STOP)
    cancelled = rover.final(cid, timeout=60)
    assert cancelled.state == S.STATE_CANCELLED and stop in cancelled.reason
    stopped = rover.settle(timeout=60)
    count = rover.truth.received
    assert rover.truth.next_after(count + 20, timeout=60)  # a while later: still there
    later = rover.pose()
    assert math.hypot(later.x - stopped.x, later.y - stopped.y) < 0.05, "the navigator drove on"
    assert math.hypot(stopped.x - start.x, stopped.y - start.y) < 7.0


@pytest.mark.parametrize("kind,fields,words", [
    (MotionCommand.KIND_DRIVE, {"distance": math.nan}, "not a finite number"),
    (MotionCommand.KIND_DRIVE, {"distance": 50.0}, "over max_distance 10 m"),
    (MotionCommand.KIND_VELOCITY, {"linear": 3.0, "duration": 2.0}, "over max_linear"),
    (MotionCommand.KIND_VELOCITY, {"linear": 0.1, "duration": 60.0}, "max_duration"),
    (MotionCommand.KIND_TURN, {"angle": math.inf}, "not a finite number"),
    (MotionCommand.KIND_GOTO, {"x": 50.0, "y": 0.0}, "is off the global costmap"),
    (MotionCommand.KIND_GOTO, {"x": 0.0, "y": WALL_Y + 0.25}, "is on a hazard"),
    (MotionCommand.KIND_GOTO, {"x": 0.0, "y": 500.0}, "over max_goto_distance"),
    ("jump", {}, "unknown kind 'jump'"),
])
def test_malformed_or_over_limit_commands_are_refused(rover, kind, fields, words):
    start = rover.settle()
    cid = rover.send(kind, **fields)
    end_status = rover.final(cid, timeout=60)
    assert end_status.state == S.STATE_REFUSED, rover.logs()
    assert words in end_status.reason, end_status.reason
    assert [m.state for m in rover.states(cid)] == [S.STATE_RECEIVED, S.STATE_REFUSED]
    end = rover.pose()
    assert math.hypot(end.x - start.x, end.y - start.y) < 0.05
