"""gazebo_base over real DDS: what reaches Gazebo's DiffDrive (gz/cmd_vel, which the export's
bridge.yaml hands to it) for what comes on cmd_vel and estop, as base_driver's rules say.

The node runs as in the rover stack's gazebo mode (the shipped export's gazebo_base.yaml:
rover_base.yaml's cmd_timeout 0.5 s and limits); this process plays the navigator, the estop
button and the bridge, subscribing to gz/cmd_vel as ros_gz_bridge does.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist, TwistStamped
from rclpy.time import Time
from std_msgs.msg import Bool

from ilrs_robots.resources import config_path
from ilrs_robots.runner.ros_client import LATCHED, wait_until

NS = "/rover1"
PARAMS_FILE = config_path("gazebo", "gazebo_base.yaml")


def twist(linear: float, angular: float = 0.0) -> Twist:
    msg = Twist()
    msg.linear.x, msg.angular.z = linear, angular
    return msg


class Commander:
    """Publishes a cmd_vel message at 20 Hz in a thread (a navigator) until told otherwise."""

    def __init__(self, pub) -> None:
        self.pub = pub
        self.msg: object | None = None
        self.last_sent = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def send(self, msg: object | None) -> None:
        """Publish `msg` from now on (None: stop publishing)."""
        self.msg = msg

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            msg = self.msg
            if msg is not None:
                self.pub.publish(msg() if callable(msg) else msg)
                self.last_sent = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Base:
    """A gazebo_base process with its cmd_vel, estop, gz/cmd_vel and diagnostics."""

    def __init__(self, ros, launcher, **parameters) -> None:
        self.node = launcher.start("gazebo_base", NS.strip("/"), parameters, (PARAMS_FILE,))
        stamped = parameters.get("enable_stamped_cmd_vel", False)
        self.out = ros.subscribe(Twist, f"{NS}/gz/cmd_vel")
        self.diag = ros.subscribe(DiagnosticArray, "/diagnostics")
        self.cmd = ros.publisher(TwistStamped if stamped else Twist, f"{NS}/cmd_vel",
                                 wait_for_subscribers=30)
        self.estop = ros.publisher(Bool, f"{NS}/estop", LATCHED)
        self.commander = Commander(self.cmd)
        assert self.out.wait_for(timeout=30) is not None, self.node.output()

    def last(self) -> tuple[float, float]:
        msg = self.out.last()
        return (msg.linear.x, msg.angular.z)

    def moving_at(self, linear: float, angular: float = 0.0) -> bool:
        return self.last() == pytest.approx((linear, angular), abs=1e-6)

    def stopped(self) -> bool:
        return self.last() == (0.0, 0.0)

    def stays_stopped(self, seconds: float) -> bool:
        """True if everything sent to Gazebo for `seconds` from now is zero."""
        start = self.out.received
        time.sleep(seconds)
        new = self.out.received - start
        sent = self.out.messages[-new:] if new else []
        return len(sent) > 5 and all((m.linear.x, m.angular.z) == (0.0, 0.0) for m in sent)

    def status(self, message: str) -> DiagnosticStatus | None:
        """The node's next drive status whose message starts with `message`, or None."""
        self.diag.clear()

        def drive(array: DiagnosticArray) -> bool:
            return any(s.name == "gazebo_base: drive" and s.message.startswith(message)
                       for s in array.status)
        array = self.diag.wait_for(drive, timeout=10)
        return None if array is None else next(
            s for s in array.status if s.name == "gazebo_base: drive")

    def close(self) -> None:
        self.commander.close()


@pytest.fixture
def base(ros, launcher):
    b = Base(ros, launcher)
    yield b
    b.close()


def test_commands_are_forwarded_within_limits_and_zero_after_cmd_timeout(base):
    assert base.stopped() and base.status("stopped, waiting for a fresh cmd_vel")
    base.commander.send(twist(0.3, 0.2))
    assert wait_until(lambda: base.moving_at(0.3, 0.2), 10), base.node.output()
    assert base.status("following cmd_vel").level == DiagnosticStatus.OK
    # 2 m/s asked: max_linear 0.5 m/s, the curvature kept
    base.commander.send(twist(2.0, 0.4))
    assert wait_until(lambda: base.moving_at(0.5, 0.1), 10), base.last()
    assert all(abs(m.linear.x) <= 0.5 + 1e-9 for m in base.out.messages)
    # the navigator stops talking: zero within cmd_timeout (0.5 s) and the stop's ramp
    base.commander.send(None)
    assert wait_until(base.stopped, 5), base.last()
    assert time.monotonic() - base.commander.last_sent >= 0.5 - 0.05
    assert base.stays_stopped(1.0)  # and zero goes on being sent
    assert base.status("no cmd_vel within cmd_timeout: wheels stopped")


def test_estop_zeroes_and_latches_until_released_and_commanded(base):
    base.commander.send(twist(0.3))
    assert wait_until(lambda: base.moving_at(0.3), 10), base.node.output()
    base.estop.publish(Bool(data=True))
    assert wait_until(base.stopped, 5), base.last()
    assert base.stays_stopped(1.0), "moved under a latched estop while commanded"
    status = base.status("estop latched: wheels stopped")
    assert status.level == DiagnosticStatus.WARN
    # released while no command comes: stays stopped; a fresh command moves it again
    base.commander.send(None)
    base.estop.publish(Bool(data=False))
    assert wait_until(lambda: "estop released" in base.node.output(), 10)
    assert base.stays_stopped(0.7)
    base.commander.send(twist(0.2))
    assert wait_until(lambda: base.moving_at(0.2), 10), base.last()


def test_nan_and_absurd_commands_are_refused(base):
    base.commander.send(twist(math.nan, 0.1))
    assert wait_until(lambda: "cmd_vel refused: non-finite value nan" in base.node.output(),
                      10), base.node.output()
    base.commander.send(twist(0.0, 1e6))
    assert wait_until(lambda: "is absurd" in base.node.output(), 10), base.node.output()
    assert base.stays_stopped(0.5)
    status = base.status("stopped, waiting for a fresh cmd_vel")
    rejected = {v.key: v.value for v in status.values}["rejected_commands"]
    assert int(rejected) >= 2
    assert base.node.alive


def stamped(ros, linear: float, age: float | None) -> TwistStamped:
    """A TwistStamped stamped `age` s ago (None: a zero stamp)."""
    msg = TwistStamped()
    msg.twist.linear.x = linear
    if age is not None:
        now = ros.node.get_clock().now()
        msg.header.stamp = Time(nanoseconds=now.nanoseconds - int(age * 1e9)).to_msg()
    return msg


def test_stamped_cmd_vel_stale_is_refused_fresh_is_followed(ros, launcher):
    base = Base(ros, launcher, enable_stamped_cmd_vel=True)
    try:
        base.commander.send(lambda: stamped(ros, 0.3, 2.0))  # cmd_timeout is 0.5 s
        assert wait_until(lambda: "stamped 2.0" in base.node.output(), 10), base.node.output()
        assert base.stays_stopped(0.5)
        base.commander.send(lambda: stamped(ros, 0.3, 0.01))
        assert wait_until(lambda: base.moving_at(0.3), 10), base.node.output()
        stale = {v.key: v.value for v in base.status("following cmd_vel").values}
        assert int(stale["stale_commands"]) > 0
    finally:
        base.close()
