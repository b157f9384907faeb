"""What a restarted controller is told before a job resumes (core/construction/resume)."""

from __future__ import annotations

import pytest

from ilrs_robots.core.construction.resume import machine_state, resume_preamble

PASTE = ["G21", "G90", "M83", "M104 S60", "M106 S128", "G0 Z20 F1200", "G0 X10 Y5 F18000",
         "G1 X20 Y5 E2.5 F900", "G1 X30 Y5 E2.5", "G0 Z40", "G1 X30 Y15 E1"]


def test_state_follows_modes_moves_and_extrusion():
    s = machine_state(PASTE, 9)
    assert s.position == [30.0, 5.0, 20.0] and s.relative_e and not s.relative
    assert s.e == pytest.approx(5.0) and s.feed == 900.0
    assert s.heaters == {"M104": "60"} and s.fan == "M106 S128"


def test_preamble_lifts_homes_heats_returns_and_restores_modes_in_order():
    pre = resume_preamble(PASTE, 9)
    assert pre[:6] == ["G21", "G91", "G0 Z20", "G90", "G28 X Y", "G28 Z"]
    assert pre.index("M109 S60") < pre.index("G0 X30 Y5")  # heated before it travels
    travel = pre.index("G0 X30 Y5")
    assert pre[travel - 1].startswith("G0 Z40") and pre[travel + 1] == "G0 Z20"
    assert pre[-4:] == ["G92 E5", "G90", "M83", "G1 F900"]


def test_relative_positioning_and_absolute_extrusion_are_restored():
    job = ["G21", "M82", "G92 E0", "G0 Z5", "G91", "G1 X10 E3 F600", "G1 Y10 E3"]
    s = machine_state(job, 7)
    assert s.position == [10.0, 10.0, 5.0] and s.e == pytest.approx(6.0)
    pre = resume_preamble(job, 7)
    assert "G0 X10 Y10" in pre  # travel in absolute coordinates, then back to G91
    assert pre[-4:] == ["G92 E6", "G91", "M82", "G1 F600"]


def test_the_laser_is_off_during_the_travel_and_back_on_last():
    job = ["G21", "G90", "M3 S200", "G0 Z2", "G1 X5 Y5 F600", "M5", "M4 S150", "G1 X9 F600"]
    pre = resume_preamble(job, 8)
    assert pre[0] == "M5" and pre[-1] == "M4 S150"
    assert resume_preamble(job, 6)[-1] == "G1 F600"  # M5 was the last word: stays off


def test_nothing_to_restore_before_the_first_line_and_shifted_axes_are_refused():
    assert resume_preamble(PASTE, 0) == []
    with pytest.raises(ValueError, match="shifts its coordinates"):
        resume_preamble(["G21", "G92 X10", "G1 X20 E1"], 3)


def test_inches_lift_by_the_same_distance():
    pre = resume_preamble(["G20", "G90", "G0 Z1 F30", "G1 X2 Y2 E0.1"], 4)
    assert pre[0] == "G20" and "G0 Z0.7874" in pre
