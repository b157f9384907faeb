"""base_driver node in its own process, over real DDS, against the RoboClaw emulator on a pty."""

from __future__ import annotations

import math
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from ilrs_robots.protocols.roboclaw import Cmd
from ilrs_robots.runner.ros_client import LATCHED, wait_until
from ilrs_robots.sim.devices.roboclaw_emulator import RoboClawBus

RADIUS, TRACK, CPR = 0.25, 1.2, 8192.0
PARAMS = {"wheel_radius": RADIUS, "track_width": TRACK, "counts_per_rev": CPR,
          "max_accel": 2.0, "stop_accel": 4.0, "cmd_timeout": 0.5}
ADDRESSES = (128, 129, 130)
LEFT = [(128, 1), (129, 1), (130, 1)]
RIGHT = [(128, 2), (129, 2), (130, 2)]


def counts_per_s(wheel_speed_m_s: float) -> float:
    """Encoder counts/s of a wheel rim speed, from the geometry above (computed by hand)."""
    return wheel_speed_m_s / (2 * math.pi * RADIUS) * CPR


def twist(v: float = 0.0, w: float = 0.0) -> Twist:
    msg = Twist()
    msg.linear.x, msg.angular.z = v, w
    return msg


class Rover:
    """The emulator, a base_driver process and the test's publishers and inboxes."""

    def __init__(self, ros, launcher, tmp_path, **params):
        self.emu = RoboClawBus(tmp_path / "roboclaw", ADDRESSES, baud=115200).start()
        self.node = launcher.start("base_driver", namespace="rover1",
                                   parameters={**PARAMS, "port": str(self.emu.link), **params})
        self.cmd = ros.publisher(Twist, "/rover1/cmd_vel", wait_for_subscribers=15)
        self.estop = ros.publisher(Bool, "/rover1/estop", LATCHED)
        self.odom = ros.subscribe(Odometry, "/rover1/odom")
        self.joints = ros.subscribe(JointState, "/rover1/joint_states")
        self.diag = ros.subscribe(DiagnosticArray, "/diagnostics")
        assert self.cmd.get_subscription_count() > 0, self.node.output()
        assert self.odom.wait_for(timeout=10) is not None, self.node.output()

    def drive(self, v: float, w: float, seconds: float, rate: float = 20.0) -> int:
        """Publish (v, w) at `rate` for `seconds`; how many commands went out."""
        end = time.monotonic() + seconds
        sent = 0
        while time.monotonic() < end:
            self.cmd.publish(twist(v, w))
            sent += 1
            time.sleep(1.0 / rate)
        return sent

    def held_settles(self, quiet: float = 1.0) -> bool:
        """True when held() has not changed over `quiet` seconds."""
        before = self.held()
        time.sleep(quiet)
        return self.held() == before

    def held(self) -> int:
        """Commands the driver received while its estop (or a lost link) held the wheels."""
        s = self.status("drive")
        return int({v.key: v.value for v in s.values}["held_commands"]) if s else -1

    def drive_until(self, v: float, w: float, condition, timeout: float = 10.0,
                    rate: float = 20.0) -> bool:
        """Publish (v, w) at `rate` until `condition()` holds; False at timeout."""
        return bool(wait_until(lambda: self.cmd.publish(twist(v, w)) is None and condition(),
                               timeout, period=1.0 / rate))

    def follows(self, v: float, wheels=None) -> bool:
        """Drive straight at v until the wheels' targets are its counts/s."""
        wheels = wheels or LEFT + RIGHT
        return self.drive_until(v, 0.0, lambda: self.targets(wheels) == pytest.approx(
            [counts_per_s(v)] * len(wheels), abs=1))

    def targets(self, wheels) -> list[float]:
        return [self.emu.motor(a, m).target_qpps for a, m in wheels]

    def speeds(self, wheels) -> list[float]:
        return [self.emu.motor(a, m).speed for a, m in wheels]

    def all_stopped(self) -> bool:
        return all(t == 0 for t in self.targets(LEFT + RIGHT))

    def status(self, what: str) -> DiagnosticStatus | None:
        last = self.diag.last()
        if last is None:
            return None
        return next((s for s in last.status if s.name.endswith(what)), None)

    def wait_status(self, what: str, level: int, timeout: float = 10.0,
                    message: str = "") -> DiagnosticStatus:
        found = wait_until(lambda: (s := self.status(what)) is not None and s.level == level
                           and s.message.startswith(message) and s, timeout)
        assert found, f"{what} never reached level {level}: {self.status(what)}"
        return found

    def close(self):
        self.emu.stop()


@pytest.fixture
def rover(ros, launcher, tmp_path):
    r = Rover(ros, launcher, tmp_path)
    yield r
    r.close()


def test_straight_and_turning_speeds_follow_kinematics(rover):
    assert rover.follows(0.3)
    # v = 0.2 m/s, w = 0.3 rad/s: left rim 0.2 - 0.3 * 0.6, right rim 0.2 + 0.3 * 0.6
    assert rover.drive_until(0.2, 0.3, lambda: rover.targets(LEFT + RIGHT) == pytest.approx(
        [counts_per_s(0.02)] * 3 + [counts_per_s(0.38)] * 3, abs=1))
    # the motors reached those speeds, and joint_states report them in rad/s
    assert wait_until(lambda: rover.speeds(RIGHT) == pytest.approx(rover.targets(RIGHT)), 5)
    js = rover.joints.wait_for(lambda m: m.velocity[1] == pytest.approx(0.38 / RADIUS,
                                                                         rel=0.02), 10)
    assert js is not None, rover.joints.last()
    assert js.name[0] == "front_left_wheel_joint" and len(js.name) == 6


def test_square_odometry_matches_emulator_wheel_travel(rover):
    # start from standstill, with odometry that has integrated it: a message still in flight
    # from an earlier test's motion would count travel the encoders' start point excludes
    assert wait_until(lambda: all(s == 0 for s in rover.speeds(LEFT + RIGHT)), 5)
    still_at = time.monotonic()
    assert wait_until(lambda: any(t > still_at + 0.1 for t, _ in rover.odom.timed()), 5)
    start = {k: rover.emu.motor(*k).position for k in LEFT + RIGHT}
    rover.odom.clear()
    for _ in range(4):
        rover.drive(0.5, 0.0, 2.0)
        rover.drive(0.0, 0.8, math.pi / 2 / 0.8)
    rover.drive(0.0, 0.0, 1.0)
    assert wait_until(lambda: all(s == 0 for s in rover.speeds(LEFT + RIGHT)), 3)
    # odometry of the stopped wheels: wait for a message that integrated their last counts
    stopped_at = time.monotonic()
    assert wait_until(lambda: any(t > stopped_at + 0.1 for t, _ in rover.odom.timed()), 5)
    metres = 2 * math.pi * RADIUS / CPR
    left = sum(rover.emu.motor(*k).position - start[k] for k in LEFT) / 3 * metres
    right = sum(rover.emu.motor(*k).position - start[k] for k in RIGHT) / 3 * metres
    poses = [m.pose.pose for m in rover.odom.messages]
    yaws = [2 * math.atan2(p.orientation.z, p.orientation.w) for p in poses]
    turns = [(b - a + math.pi) % (2 * math.pi) - math.pi
             for a, b in zip(yaws, yaws[1:], strict=False)]
    # signed travel along the heading between successive poses: the centre's path
    path = sum((b.position.x - a.position.x) * math.cos(yaw + turn / 2)
               + (b.position.y - a.position.y) * math.sin(yaw + turn / 2)
               for a, b, yaw, turn in zip(poses, poses[1:], yaws, turns, strict=False))
    turned = sum(turns)
    assert path == pytest.approx((left + right) / 2, rel=0.01)
    assert turned == pytest.approx((right - left) / TRACK, rel=0.01)
    assert path > 3.0 and turned > 5.0  # it did drive a square: ~4 m, ~2 pi


def test_cmd_timeout_stops_wheels(rover):
    assert rover.follows(0.3)
    stopped_by = time.monotonic()
    assert wait_until(rover.all_stopped, 3.0)
    assert time.monotonic() - stopped_by >= 0.3  # not before the 0.5 s timeout

    def stopped_for_the_timeout() -> bool:
        s = rover.status("drive")
        if s is None or s.level != DiagnosticStatus.OK:
            return False
        if s.message.startswith("no cmd_vel"):
            return True
        # a loaded machine can delay the emulator (in this process) past the driver's reply
        # timeout: the controller "stopped answering", and the wheels are then held until a
        # fresh command, a stop too, reported as such; only then is that message accepted
        return (s.message.startswith("stopped, waiting for a fresh")
                and "stopped answering" in rover.node.output())

    assert wait_until(stopped_for_the_timeout, 10), (rover.status("drive"),
                                                     rover.node.output()[-2000:])


def test_estop_latches_and_needs_a_fresh_command(rover):
    assert rover.follows(0.3)
    held_before = rover.held()
    rover.estop.publish(Bool(data=True))
    assert wait_until(rover.all_stopped, 2.0)
    sent = rover.drive(0.3, 0.0, 1.0)  # ignored while latched
    assert rover.all_stopped()
    rover.wait_status("drive", DiagnosticStatus.WARN, message="estop")
    # cmd_vel and estop are not ordered with each other: a command still queued when the
    # release arrives is a fresh one. Release once the driver has held every command sent
    # while latched (and the count has stopped growing: follows()' last ones were in flight)
    assert wait_until(lambda: rover.held() >= held_before + sent, 15), (rover.held(), sent)
    assert wait_until(rover.held_settles, 15)
    rover.estop.publish(Bool(data=False))
    rover.wait_status("drive", DiagnosticStatus.OK, message="stopped, waiting for a fresh")
    assert rover.all_stopped()  # released, but nothing moves before a fresh command
    assert rover.follows(0.3)


@pytest.mark.parametrize("bad", [(math.nan, 0.0), (0.0, math.inf), (40.0, 0.0)])
def test_bad_commands_rejected(rover, bad):
    sent = set()
    rover.emu.on_request = lambda r, now: (r.cmd == Cmd.SPEED_ACCEL_MIXED
                                           and sent.update(r.args[1:]))
    assert rover.follows(0.2)
    # a stream of bad commands: rejected, and they do not feed the cmd_timeout watchdog
    assert rover.drive_until(*bad, lambda: "cmd_vel rejected" in rover.node.output()
                             and rover.all_stopped())
    good = round(counts_per_s(0.2))
    assert 0 in sent and sent <= {0, good - 1, good, good + 1}  # the good command and stops
    assert rover.node.alive


def test_corrupt_replies_are_counted_and_survived(rover):
    assert rover.follows(0.3)
    rover.emu.corrupt_crc(4)
    rover.drive(0.3, 0.0, 1.5)
    assert rover.follows(0.3)
    assert rover.node.alive
    crc = wait_until(lambda: sum(int(next(v.value for v in s.values if v.key == "crc_errors"))
                                 for s in rover.diag.last().status
                                 if s.name.startswith("base_driver: RoboClaw")
                                 and any(v.key == "crc_errors" for v in s.values)), 3)
    assert crc and crc >= 1


def test_silent_controller_stops_the_others_until_a_fresh_command(rover):
    assert rover.follows(0.3)
    rover.emu.silence(129, True)
    rover.drive(0.3, 0.0, 1.0)
    status = rover.wait_status("RoboClaw 129", DiagnosticStatus.ERROR)
    assert "129" in status.message
    assert all(t == 0 for t in rover.targets([(128, 1), (128, 2), (130, 1), (130, 2)]))
    rover.emu.silence(129, False)
    rover.wait_status("RoboClaw 129", DiagnosticStatus.OK)
    assert rover.all_stopped()  # back, but held until a fresh command
    assert rover.follows(0.3)
    assert rover.node.alive


def test_port_vanishes_and_returns(rover):
    assert rover.follows(0.3)
    rover.emu.vanish()
    rover.wait_status("drive", DiagnosticStatus.ERROR)
    rover.drive(0.3, 0.0, 0.3)
    rover.emu.reappear()
    rover.wait_status("drive", DiagnosticStatus.OK, timeout=15)
    # the emulated controllers kept their last speed; the driver stops them on reconnect
    assert wait_until(rover.all_stopped, 3)
    assert rover.follows(0.3)
    assert rover.node.alive


BAD = [("wheel_radius", -0.1), ("addresses", [12]), ("wheel_channels", ["128:3"] * 6),
       ("baud", 1234)]


@pytest.fixture(scope="module")
def bad_starts(module_launcher):
    """A base driver per bad parameter, all started at once (each must exit on its own)."""
    return {param: module_launcher.start("base_driver", parameters={"port": "/dev/null",
                                                                    param: value})
            for param, value in BAD}


@pytest.mark.parametrize("param,value", BAD)
def test_bad_parameter_is_a_clear_error(bad_starts, param, value):
    proc = bad_starts[param]
    assert wait_until(lambda: not proc.alive, 120), proc.output()
    out = proc.output()
    assert proc.returncode == 2, out
    assert f"parameter '{param}'" in out and "Traceback" not in out
