"""base_driver's refusals: bad live values and read-only parameters refused through the real
parameter services by one running driver (nothing these tests do changes it), and absurd
values refused at start (a driver per value, all started at once)."""

from __future__ import annotations

import pytest
from test_base_driver import Rover
from test_base_driver_params import set_parameters

from ilrs_robots.runner.ros_client import wait_until


@pytest.fixture(scope="module")
def looked_at_rover(module_ros, module_launcher, tmp_path_factory):
    """One emulator and base driver for the tests whose changes are all refused (nothing they
    do changes the driver's state: a test that finds a value accepted fails itself)."""
    r = Rover(module_ros, module_launcher, tmp_path_factory.mktemp("rover"))
    yield r
    r.close()


@pytest.mark.parametrize(("name", "value", "words"), [
    ("cmd_timeout", -1.0, "in [0.05, 5]"),
    ("cmd_timeout", 1e300, "in [0.05, 5]"),
    ("control_rate", 1e9, "in [1, 200]"),
    ("max_linear", float("nan"), "max_linear"),
    ("pose_covariance", [1.0, 2.0], "6 values"),
])
def test_bad_live_values_are_refused_with_a_reason(module_ros, looked_at_rover, name, value,
                                                   words):
    rover = looked_at_rover
    (result,) = set_parameters(module_ros, "/rover1/base_driver", **{name: value})
    assert not result.successful
    # rclpy's own descriptor range check or ours: either names the parameter and the bound
    assert name in result.reason, result.reason
    assert words in result.reason or "out of range" in result.reason, result.reason
    assert rover.follows(0.3)  # still driving with the old values


@pytest.mark.parametrize("name", ["port", "baud", "addresses", "wheel_radius",
                                  "serial_timeout", "enable_stamped_cmd_vel"])
def test_read_only_parameters_cannot_change_while_running(module_ros, looked_at_rover, name):
    value = {"port": "/dev/ttyACM9", "baud": 9600, "addresses": [128],
             "wheel_radius": 0.3, "serial_timeout": 1.0, "enable_stamped_cmd_vel": True}[name]
    (result,) = set_parameters(module_ros, "/rover1/base_driver", **{name: value})
    assert not result.successful
    assert "read-only" in result.reason or "read only" in result.reason, result.reason


ABSURD = [("cmd_timeout", 1e300), ("control_rate", 1e9), ("serial_timeout", 30.0),
          ("cmd_timeout", 0.0)]


@pytest.fixture(scope="module")
def absurd_starts(module_launcher):
    """A base driver per absurd value, all started at once (each must exit on its own)."""
    return {case: module_launcher.start("base_driver", parameters={"port": "/dev/null",
                                                                   case[0]: case[1]})
            for case in ABSURD}


@pytest.mark.parametrize(("param", "value"), ABSURD)
def test_absurd_values_are_refused_at_start(absurd_starts, param, value):
    proc = absurd_starts[(param, value)]
    assert wait_until(lambda: not proc.alive, 60)
    out = proc.output()
    assert proc.returncode == 2, out
    assert f"parameter '{param}'" in out and "Traceback" not in out
