"""core/command_gate: base_driver's cmd_vel rules without ROS (gazebo_base follows them)."""

from __future__ import annotations

import math

import pytest

from ilrs_robots.core.command_gate import CommandGate, StaleCommand
from ilrs_robots.core.kinematics import CommandRejected, DriveLimits, SkidSteerGeometry

GEOMETRY = SkidSteerGeometry(0.25, 1.9, 1.0)
LIMITS = DriveLimits(max_linear=0.5, max_angular=0.8, max_wheel_speed=0.6, max_accel=0.5,
                     stop_accel=1.5)
DT = 0.02


def settle(gate: CommandGate, t: float, seconds: float) -> tuple[float, float]:
    """Run the output for `seconds` from `t` at 50 Hz; the last (linear, angular)."""
    for i in range(round(seconds / DT)):
        s = gate.output(t + (i + 1) * DT)
    return s.linear, s.angular


def test_nothing_moves_before_a_first_command():
    gate = CommandGate(GEOMETRY, LIMITS)
    s = gate.output(0.0)
    assert (s.linear, s.angular) == (0.0, 0.0) and s.holding
    assert s.describe() == ("OK", "stopped, waiting for a fresh cmd_vel")


def test_a_command_within_limits_is_reached_at_max_accel():
    gate = CommandGate(GEOMETRY, LIMITS, cmd_timeout=5.0)
    gate.output(0.0)
    assert gate.command(0.3, 0.0, 0.0)
    s = gate.output(0.1)
    assert s.linear == pytest.approx(0.05)  # 0.5 m/s^2 for 0.1 s
    assert settle(gate, 0.1, 1.0) == pytest.approx((0.3, 0.0))
    assert gate.state(1.1).describe() == ("OK", "following cmd_vel")


def test_a_command_beyond_the_limits_is_clamped_keeping_its_curvature():
    gate = CommandGate(GEOMETRY, LIMITS, cmd_timeout=5.0)
    gate.output(0.0)
    gate.command(2.0, 0.4, 0.0)
    linear, angular = settle(gate, 0.0, 3.0)
    assert linear <= 0.5 + 1e-9 and angular / linear == pytest.approx(0.4 / 2.0)
    rim = max(abs(linear - angular * 0.95), abs(linear + angular * 0.95))
    assert rim <= 0.6 + 1e-9


@pytest.mark.parametrize("bad", [(math.nan, 0.0), (0.0, math.inf), (50.0, 0.0)])
def test_a_bad_command_is_refused_and_changes_nothing(bad):
    gate = CommandGate(GEOMETRY, LIMITS, cmd_timeout=0.5)
    gate.output(0.0)
    gate.command(0.2, 0.0, 0.0)
    settle(gate, 0.0, 0.4)
    with pytest.raises(CommandRejected):
        gate.command(*bad, 0.4)
    assert gate.state(0.4).rejected == 1
    assert gate.output(0.42).linear == pytest.approx(0.2)  # still the last good command
    assert settle(gate, 0.42, 0.5) == (0.0, 0.0)  # which times out as before: not refreshed


def test_a_nan_among_the_ignored_components_is_refused():
    gate = CommandGate(GEOMETRY, LIMITS)
    with pytest.raises(CommandRejected):
        gate.command(0.1, 0.0, 0.0, others=(math.nan, 0.0, 0.0, 0.0))


def test_a_stale_stamp_is_refused():
    gate = CommandGate(GEOMETRY, LIMITS, cmd_timeout=0.5)
    with pytest.raises(StaleCommand):
        gate.command(0.3, 0.0, 0.0, age=0.6)
    assert gate.state(0.0).stale == 1 and gate.output(1.0).holding
    assert gate.command(0.3, 0.0, 1.0, age=0.1)


def test_no_command_for_cmd_timeout_stops_at_stop_accel():
    gate = CommandGate(GEOMETRY, LIMITS, cmd_timeout=0.5)
    gate.output(0.0)
    gate.command(0.3, 0.0, 0.0)
    settle(gate, 0.0, 0.5)  # up to 0.25 m/s, within the timeout
    s = gate.output(0.52)
    assert s.timed_out and s.linear == pytest.approx(0.25 - 1.5 * DT)
    assert settle(gate, 0.52, 0.2) == (0.0, 0.0)
    assert gate.state(0.72).describe() == ("OK", "no cmd_vel within cmd_timeout: wheels stopped")
    gate.command(0.1, 0.0, 1.0)  # a fresh command moves again
    assert settle(gate, 1.0, 0.4)[0] == pytest.approx(0.1)


def test_the_estop_stops_latches_and_a_release_waits_for_a_fresh_command():
    gate = CommandGate(GEOMETRY, LIMITS, cmd_timeout=5.0)
    gate.output(0.0)
    gate.command(0.3, 0.0, 0.0)
    settle(gate, 0.0, 1.0)
    assert gate.set_estop(True) and not gate.set_estop(True)
    assert settle(gate, 1.0, 0.2) == (0.0, 0.0)  # 0.3 m/s at 1.5 m/s^2
    assert not gate.command(0.3, 0.0, 1.3)  # held while latched
    assert settle(gate, 1.3, 0.5) == (0.0, 0.0)
    assert gate.state(1.8).describe() == ("WARN", "estop latched: wheels stopped")
    assert gate.set_estop(False)
    assert settle(gate, 1.8, 0.5) == (0.0, 0.0)  # released: still stopped
    assert gate.command(0.2, 0.0, 2.3)
    assert settle(gate, 2.3, 1.0)[0] == pytest.approx(0.2)


def test_reconfigure_applies_to_the_next_command():
    gate = CommandGate(GEOMETRY, LIMITS, cmd_timeout=5.0)
    gate.output(0.0)
    gate.reconfigure(cmd_timeout=0.2, max_linear=0.1)
    gate.command(0.4, 0.0, 0.0)
    assert settle(gate, 0.0, 0.18)[0] == pytest.approx(0.09)
    assert gate.output(0.2).linear == pytest.approx(0.1)
    assert settle(gate, 0.2, 0.2) == (0.0, 0.0)
