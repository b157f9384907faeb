"""base_driver's parameters through the real parameter services, and cmd_vel as TwistStamped
(enable_stamped_cmd_vel, as Nav2 and diff_drive_controller publish it)."""

from __future__ import annotations

import functools
import threading

import pytest
from geometry_msgs.msg import TwistStamped
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.time import Time
from test_base_driver import ADDRESSES, LEFT, PARAMS, RIGHT, Rover, counts_per_s, twist

from ilrs_robots.protocols.roboclaw import Cmd
from ilrs_robots.runner.ros_client import wait_until
from ilrs_robots.sim.devices.roboclaw_emulator import RoboClawBus


@pytest.fixture
def rover(ros, launcher, tmp_path):
    r = Rover(ros, launcher, tmp_path)
    yield r
    r.close()


def set_parameters(ros, node: str, **values) -> list:
    """Set parameters of `node` through its set_parameters service; the results."""
    client = AsyncParameterClient(ros.node, node)
    assert client.wait_for_services(timeout_sec=30.0), f"no parameter services on {node}"
    future = client.set_parameters([Parameter(k, value=v) for k, v in values.items()])
    assert wait_until(future.done, 30.0), "set_parameters never answered"
    return list(future.result().results)


def drives_at(rover: Rover, v: float, expected: float) -> bool:
    """Publish v until the wheels' targets are the counts/s of `expected` m/s."""
    return bool(wait_until(
        lambda: rover.cmd.publish(twist(v)) is None
        and rover.targets(LEFT + RIGHT) == pytest.approx([counts_per_s(expected)] * 6, abs=1),
        10.0))


def test_max_linear_set_live_changes_what_reaches_the_wheels(ros, rover):
    assert drives_at(rover, 0.4, 0.4)
    (result,) = set_parameters(ros, "/rover1/base_driver", max_linear=0.2)
    assert result.successful, result.reason
    assert drives_at(rover, 0.4, 0.2)
    (result,) = set_parameters(ros, "/rover1/base_driver", max_linear=1)  # an integer literal
    assert result.successful, result.reason
    assert drives_at(rover, 0.4, 0.4)
    assert wait_until(lambda: "parameters applied: max_linear=0.2" in rover.node.output(), 5)


def test_cmd_timeout_set_live_is_followed(ros, rover):
    (result,) = set_parameters(ros, "/rover1/base_driver", cmd_timeout=2.5)
    assert result.successful, result.reason
    def firmware_stops() -> int:
        return sum(rover.emu.timeout_stops(a) for a in ADDRESSES)

    def controllers_lost() -> int:
        return rover.node.output().count("stopped answering")

    def stalled_since(before: tuple[int, int]) -> bool:
        return (firmware_stops(), controllers_lost()) != before

    for _attempt in range(3):
        assert drives_at(rover, 0.3, 0.3)
        before = (firmware_stops(), controllers_lost())
        # no stop within the old 0.5 s timeout: the wheels keep turning past it ...
        if not wait_until(rover.all_stopped, 1.2):
            break
        # ... unless the host stalled on a starved machine: the controllers' own serial
        # timeout stopped them, or the driver, its polls unanswered in time, took a
        # controller for lost and stopped (CI); neither is a cmd_timeout stop
        assert wait_until(functools.partial(stalled_since, before), 3.0), \
            "stopped before the new cmd_timeout (2.5 s)"
    else:
        pytest.fail("the controllers' serial timeout or a lost controller stopped every "
                    "attempt")
    assert wait_until(rover.all_stopped, 10)


# -- TwistStamped ------------------------------------------------------------------------------

@pytest.fixture
def stamped(ros, launcher, tmp_path):
    r = Rover.__new__(Rover)  # the Rover's helpers, with a TwistStamped publisher
    r.emu = RoboClawBus(tmp_path / "roboclaw", ADDRESSES, baud=115200).start()
    r.node = launcher.start("base_driver", namespace="rover1",
                            parameters={**PARAMS, "port": str(r.emu.link),
                                        "enable_stamped_cmd_vel": True})
    r.cmd = ros.publisher(TwistStamped, "/rover1/cmd_vel", wait_for_subscribers=15)
    assert r.cmd.get_subscription_count() > 0, r.node.output()
    yield r
    r.close()


def stamped_twist(ros, v: float, age: float | None) -> TwistStamped:
    """A TwistStamped of `v` m/s stamped `age` s ago (None: a zero stamp)."""
    msg = TwistStamped()
    msg.header.frame_id = "base_link"
    msg.twist.linear.x = v
    if age is not None:
        now = ros.node.get_clock().now()
        msg.header.stamp = Time(nanoseconds=now.nanoseconds - int(age * 1e9)).to_msg()
    return msg


def test_stamped_cmd_vel_fresh_moves_stale_is_dropped_zero_is_now(ros, stamped):
    moves: list[float] = []
    lock = threading.Lock()

    def record(request, now: float) -> None:
        if request.cmd == Cmd.SPEED_ACCEL_MIXED and request.args[1]:
            with lock:
                moves.append(now)

    stamped.emu.on_request = record
    # a fresh stamp: followed
    assert wait_until(lambda: stamped.cmd.publish(stamped_twist(ros, 0.3, 0.01)) is None
                      and stamped.targets(LEFT) == pytest.approx([counts_per_s(0.3)] * 3,
                                                                 abs=1), 10), stamped.node.output()
    assert wait_until(stamped.all_stopped, 10)  # cmd_timeout once it stops coming
    with lock:
        moves.clear()
    # stamped 2 s ago, cmd_timeout 0.5 s: dropped with a warning that gives the age
    assert wait_until(lambda: stamped.cmd.publish(stamped_twist(ros, 0.3, 2.0)) is None
                      and "stale cmd_vel dropped: stamped 2.0" in stamped.node.output(), 10), \
        stamped.node.output()
    for _ in range(20):
        stamped.cmd.publish(stamped_twist(ros, 0.3, 2.0))
    assert not wait_until(lambda: moves, 1.0)  # none of them reached a wheel
    assert stamped.all_stopped()
    # a zero stamp: taken as now, and said once
    assert wait_until(lambda: stamped.cmd.publish(stamped_twist(ros, 0.2, None)) is None
                      and stamped.targets(RIGHT) == pytest.approx([counts_per_s(0.2)] * 3,
                                                                  abs=1), 10)
    for _ in range(10):
        stamped.cmd.publish(stamped_twist(ros, 0.2, None))
    assert stamped.node.output().count("zero stamp") == 1
    assert stamped.node.alive
