"""The terminal teleop's keys and deadman (core.teleop_keys), without a terminal or ROS."""

from __future__ import annotations

import math

import pytest

from ilrs_robots.core.teleop_keys import TeleopConfig, TeleopKeys


def sent(outcomes) -> list:
    return [o.send for o in outcomes if o.send is not None]


def test_motion_keys_send_nothing_while_disarmed() -> None:
    keys = TeleopKeys(TeleopConfig())
    for key in "ijkl":
        out = keys.key(key, now=10.0)
        assert sent(out) == []
        assert "disarmed" in out[0].say and "'d'" in out[0].say


def test_armed_keys_send_bounded_drives_and_turns() -> None:
    keys = TeleopKeys(TeleopConfig(step=0.4, angle_deg=30.0, speed=0.2))
    assert sent(keys.key("d", 0.0)) == []
    assert keys.armed(0.5)
    (fwd,) = sent(keys.key("i", 0.1))
    (back,) = sent(keys.key("k", 0.2))
    (left,) = sent(keys.key("j", 0.3))
    (right,) = sent(keys.key("l", 0.4))
    assert (fwd.kind, fwd.distance, fwd.speed) == ("drive", 0.4, 0.2)
    assert (back.kind, back.distance) == ("drive", -0.4)
    assert left.kind == "turn" and left.angle == pytest.approx(math.radians(30.0))
    assert right.kind == "turn" and right.angle == pytest.approx(-math.radians(30.0))


def test_the_window_runs_from_the_last_deadman_press_only() -> None:
    keys = TeleopKeys(TeleopConfig(arm_time=2.0))
    keys.key("d", 0.0)
    keys.key("i", 1.5)            # motion keys do not extend the window
    assert keys.tick(1.9) == []
    keys.key("d", 1.9)            # the deadman does
    assert keys.armed(3.8) and not keys.armed(3.9)
    assert keys.remaining(3.0) == pytest.approx(0.9)
    out = keys.key("i", 4.0)     # expired: the stop of the window's motion, then a refusal
    assert [m.kind for m in sent(out)] == ["stop"] and "disarmed" in out[-1].say


def test_expiry_after_a_motion_sends_one_stop() -> None:
    keys = TeleopKeys(TeleopConfig(arm_time=1.0))
    keys.key("d", 0.0)
    keys.key("i", 0.2)
    assert keys.tick(0.9) == []
    (stop,) = sent(keys.tick(1.0))
    assert stop.kind == "stop"
    assert keys.tick(1.5) == [] and keys.tick(5.0) == []  # once


def test_expiry_without_a_motion_sends_nothing() -> None:
    keys = TeleopKeys(TeleopConfig(arm_time=1.0))
    keys.key("d", 0.0)
    assert sent(keys.tick(2.0)) == []


def test_an_expired_window_stops_before_the_next_key_is_judged() -> None:
    keys = TeleopKeys(TeleopConfig(arm_time=1.0))
    keys.key("d", 0.0)
    keys.key("j", 0.5)
    out = keys.key("i", 3.0)  # no tick in between: the stop comes first, the drive is refused
    assert [m.kind for m in sent(out)] == ["stop"]
    assert "disarmed" in out[-1].say


@pytest.mark.parametrize("key", [" ", "s"])
def test_stop_is_never_gated(key: str) -> None:
    keys = TeleopKeys()
    (stop,) = sent(keys.key(key, 0.0))
    assert stop.kind == "stop"


@pytest.mark.parametrize("key", ["q", "\x03", "\x04"])
def test_quit_sends_stop_and_disarms(key: str) -> None:
    keys = TeleopKeys()
    keys.key("d", 0.0)
    out = keys.key(key, 0.1)
    assert out[-1].quit and out[-1].send is not None and out[-1].send.kind == "stop"
    assert not keys.armed(0.2)


def test_other_keys_do_nothing() -> None:
    keys = TeleopKeys()
    keys.key("d", 0.0)
    assert keys.key("x", 0.1) == [] and keys.key("\x1b", 0.1) == []
    assert "deadman" in keys.key("h", 0.2)[0].say


@pytest.mark.parametrize("config, fault", [
    (TeleopConfig(step=0.0), "step"), (TeleopConfig(step=11.0), "step"),
    (TeleopConfig(step=math.nan), "step"), (TeleopConfig(angle_deg=400.0), "angle"),
    (TeleopConfig(speed=-1.0), "speed"), (TeleopConfig(arm_time=0.05), "arm time"),
    (TeleopConfig(deadman="i"), "deadman"), (TeleopConfig(deadman="dd"), "deadman"),
    (TeleopConfig(deadman=" "), "deadman")])
def test_bad_settings_are_refused_by_name(config: TeleopConfig, fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        TeleopKeys(config)


def test_custom_deadman_key() -> None:
    keys = TeleopKeys(TeleopConfig(deadman="a"))
    assert sent(keys.key("d", 0.0)) == []   # 'd' is nothing now
    assert sent(keys.key("i", 0.1)) == []
    keys.key("a", 0.2)
    assert [m.kind for m in sent(keys.key("i", 0.3))] == ["drive"]
