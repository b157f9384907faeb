"""G-code parsing and checking: refused lines name their number and the reason."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ilrs_robots.core.construction.gcode import (
    Command,
    GcodeError,
    check_bounds,
    estimate,
    job_tables,
    parse_command,
    parse_program,
)

HAND_WRITTEN = """\
; hand-written test square
G21
G90 ; absolute
M83
G28
G0 X0 Y0 Z20 F6000
(start of the square)
G1 X100 Y0 E5 F1800
G1 X100 Y100 E5
g1 x0 y100 e5
G1 X0 Y0 E5
G4 P500
M105
M117 Printing layer 1; a comment after the text
M400
"""


def test_hand_written_file_parses() -> None:
    program = parse_program(HAND_WRITTEN)
    assert [ln.command.code for ln in program.lines] == [
        "G21", "G90", "M83", "G28", "G0", "G1", "G1", "G1", "G1", "G4", "M105", "M117", "M400"]
    assert program.lines[0].number == 2  # the line numbers of the file
    assert program.lines[7].command == Command("G1", (("X", 0.0), ("Y", 100.0), ("E", 5.0)))
    assert program.commands[5] == "G1 X100 Y0 E5 F1800"
    assert program.commands[11] == "M117 Printing layer 1"
    assert parse_command("G28 X Y").params == (("X", None), ("Y", None))
    assert parse_command("   ; only a comment") is None


@pytest.mark.parametrize(("text", "reason"), [
    ("G1 X1 Y", "Y has no value"),
    ("G1 X1.2.3", "unexpected character '.'"),
    ("G1 X1 X2", "X given twice"),
    ("G1 Xabc", "malformed value"),
    ("X10 Y10", "does not start with a command word"),
    ("N10 G1 X1", "line number 'N'"),
    ("G1 X1*45", "checksum"),
    ("M110 N0", "numbering belongs to the host"),
    ("G1 X1 G0", "second command word"),
    ("G1 F0", "feed rate F must be positive"),
    ("G1 F-100 X1", "feed rate F must be positive"),
    ("M3 S-5", "laser power"),
    ("M104 S900", "temperature"),
    ("G2 X1 Y1", "needs I/J or R"),
    ("G1 Q5", "does not take parameter Q"),
    ("G999", "unsupported command G999"),
    ("G1 X1 (unclosed", "unclosed '('"),
    ("G1 X1 )", "')' without '('"),
    ("G1 X1 \u00b0", "non-ASCII"),
    ("G1 X1\x07", "control character"),
    ("G1 X" + "1" * 100, "longer than"),
    ("G1 X1e999", "not finite"),
    ("!G1", "does not start with a command word"),
])
def test_malformed_lines_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(GcodeError) as info:
        parse_command(text, 7)
    assert info.value.line == 7
    assert reason in str(info.value), str(info.value)
    assert str(info.value).startswith("line 7: ")


def test_a_program_is_refused_at_its_first_bad_line_naming_it() -> None:
    lines = HAND_WRITTEN.splitlines()
    lines.insert(9, "G1 X50 Y50 E")  # becomes line 10
    lines.insert(12, "M999999")
    with pytest.raises(GcodeError) as info:
        parse_program("\n".join(lines))
    assert info.value.line == 10 and "E has no value" in str(info.value)
    assert "1 more malformed" in str(info.value)
    assert [e.line for e in info.value.errors] == [10, 13]


def test_layer_comments_set_the_layer() -> None:
    program = parse_program("G21\n;LAYER:0\nG1 X1 E1\n;LAYER:1\nG1 X2 E1\nG1 X3 E1\n")
    assert [ln.layer for ln in program.lines] == [0, 0, 1, 1]
    assert program.layers_total == 2


def test_bounds_follow_relative_moves_and_g92() -> None:
    program = parse_program("G90\nG1 X100 Y100\nG91\nG1 X50\nG1 X60\n")
    check_bounds(program, (0, 0, 0), (300, 300, 100))
    with pytest.raises(GcodeError) as info:
        check_bounds(program, (0, 0, 0), (200, 300, 100))
    assert info.value.line == 5 and "envelope" in str(info.value)
    shifted = parse_program("G1 X10\nG92 X0\nG1 X-5\n")  # absolute -5 is machine 5
    check_bounds(shifted, (0, 0, 0), (100, 100, 100))


def test_estimate_time_and_deposition() -> None:
    program = parse_program("G21\nM83\nG0 X0 Y0 F6000\nG1 X300 E2 F1800\nG0 X300 Y400 F6000\n"
                            "G4 P1500\nM3 S100\nG1 X0 Y0\nM5\nG1 X10 F600\n")
    est = estimate(program)
    # one modal feed rate for G0 and G1, as in Marlin
    assert est.total_time_s == pytest.approx(300 / 30 + 400 / 100 + 1.5 + 500 / 100 + 10 / 10)
    assert est.extruded_mm[-1] == pytest.approx(300 + 500)  # paste, then laser on
    assert est.e_total[-1] == pytest.approx(2)
    layers, times, mass = job_tables(program)
    assert layers == [0] * len(program) and mass == [] and times[-1] == est.total_time_s


# -- fuzzing ---------------------------------------------------------------------------------

numbers = st.floats(min_value=-1e5, max_value=1e5, allow_nan=False).map(lambda v: round(v, 4))


@st.composite
def moves(draw) -> Command:
    code = draw(st.sampled_from(["G0", "G1"]))
    letters = draw(st.lists(st.sampled_from("XYZEF"), unique=True, max_size=5))
    params = []
    for letter in letters:
        value = draw(numbers)
        if letter == "F":
            value = abs(value) + 1.0
        params.append((letter, value))
    return Command(code, tuple(params))


@given(moves())
def test_formatted_commands_parse_back(command: Command) -> None:
    parsed = parse_command(command.format())
    assert parsed.code == command.code
    for (a, va), (b, vb) in zip(parsed.params, command.params, strict=True):
        assert a == b and math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-5)


@given(st.text(max_size=120))
def test_any_text_parses_or_is_refused_with_a_line_number(text: str) -> None:
    try:
        program = parse_program(text)
    except GcodeError as exc:
        assert 1 <= exc.line <= max(1, len(text.splitlines()))
        assert str(exc).startswith(f"line {exc.line}: ")
        return
    for line in program.lines:
        parse_command(line.command.format())  # what is kept is well-formed


@given(st.lists(st.sampled_from(["G1", " X", "1", ".5", "-", "E", "F", ";", "(", ")", "*",
                                 "N", "M", "\n", " ", "Y2", "G0", "M83", "e3"]), max_size=40))
def test_gcode_like_noise_parses_or_is_refused_with_a_line_number(parts: list[str]) -> None:
    text = "".join(parts)
    try:
        parse_program(text)
    except GcodeError as exc:
        assert 1 <= exc.line <= len(text.splitlines())
