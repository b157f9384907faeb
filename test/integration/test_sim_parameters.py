"""The sim node's parameters over the real parameter services: ranges, read-only, live."""

from __future__ import annotations

import pytest
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu

from ilrs_robots.runner.ros_client import RosClient, wait_until


def call(ros: RosClient, future) -> object:
    assert wait_until(future.done, 60), "no answer from the parameter service"
    return future.result()


@pytest.fixture
def sim(launcher, tmp_path, ros):
    proc = launcher.start("sim", parameters={"world": "test_flat", "run_dir": str(tmp_path),
                                             "stereo_rate": 0.0, "mast_rate": 0.0,
                                             "imu_rate": 10.0, "rate": 1,
                                             "clock_rate": 20.0})
    client = AsyncParameterClient(ros.node, "/sim")
    assert client.wait_for_services(timeout_sec=60.0), proc.output()
    return proc, client


def test_ranges_read_only_and_live_rates(sim, ros):
    proc, client = sim
    described = call(ros, client.describe_parameters(["rate", "camera_width", "world"]))
    rate, width, world = described.descriptors
    assert rate.type == ParameterType.PARAMETER_DOUBLE  # `rate:=1` accepted as a double
    assert (rate.floating_point_range[0].from_value, rate.floating_point_range[0].to_value) \
        == (0.0, 100.0) and not rate.read_only
    assert width.integer_range[0].to_value == 4096 and width.read_only and world.read_only

    refused = call(ros, client.set_parameters([Parameter("world", value="south_pole"),
                                               Parameter("rate", value=-1.0)])).results
    assert not refused[0].successful and not refused[1].successful
    assert "rate" in refused[1].reason and "range" in refused[1].reason

    imu = ros.subscribe(Imu, "/rover1/imu/data", 200)
    assert imu.wait_for(timeout=60), proc.output()

    def stamps_per_sim_second() -> float | None:
        """IMU messages per second of their own (sim-time) stamps, over 20 fresh ones."""
        seen = imu.received
        got = wait_until(lambda: imu.received >= seen + 20, 120)
        assert got, "IMU stopped"
        msgs = imu.messages[-20:]
        t = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for m in msgs]
        return (len(t) - 1) / (t[-1] - t[0])

    assert stamps_per_sim_second() == pytest.approx(10.0, rel=0.05)
    done = call(ros, client.set_parameters([Parameter("imu_rate", value=50.0)])).results
    assert done[0].successful, done[0].reason
    imu.clear()
    assert stamps_per_sim_second() == pytest.approx(50.0, rel=0.05)  # applied live
    assert proc.alive


def test_clock_rate_at_launch_and_live(sim, ros):
    proc, client = sim
    clock = ros.subscribe(Clock, "/clock", 200)

    def ticks_per_sim_second() -> float:
        """/clock messages per second of the time they carry, over 15 fresh ones."""
        seen = clock.received
        assert wait_until(lambda: clock.received >= seen + 15, 120), proc.output()
        t = [m.clock.sec + 1e-9 * m.clock.nanosec for m in clock.messages[-15:]]
        return (len(t) - 1) / (t[-1] - t[0])

    assert ticks_per_sim_second() == pytest.approx(20.0, rel=0.05)  # not one per 10 ms step
    done = call(ros, client.set_parameters([Parameter("clock_rate", value=50.0)])).results
    assert done[0].successful, done[0].reason
    clock.clear()
    assert ticks_per_sim_second() == pytest.approx(50.0, rel=0.05)
    refused = call(ros, client.set_parameters([Parameter("clock_rate", value=0.0)])).results
    assert not refused[0].successful and "range" in refused[0].reason
