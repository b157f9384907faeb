"""Marlin host/firmware line protocol: framing, checksums, acceptance rules, replies."""

from __future__ import annotations

import functools
import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ilrs_robots.protocols.marlin import (
    ERR_CHECKSUM,
    ERR_LINE_NUMBER,
    ERR_NO_CHECKSUM,
    ERR_NO_LINE_NUMBER,
    MarlinProtocolError,
    ReplyKind,
    Temperature,
    check_line,
    checksum,
    emergency_command,
    format_ok,
    format_position,
    format_temperatures,
    frame,
    parse_framed,
    parse_reply,
    reset_numbering,
)

commands = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                          exclude_characters="*;"),
                   min_size=1, max_size=60)


def xor(text: str) -> int:
    return functools.reduce(operator.xor, text.encode(), 0)


def test_frame_is_number_command_and_xor_of_everything_before_the_star() -> None:
    assert frame(1, "G28") == f"N1 G28*{xor('N1 G28')}\n".encode()
    assert frame(0, "M110 N0") == b"N0 M110 N0*" + str(xor("N0 M110 N0")).encode() + b"\n"
    assert reset_numbering(41) == frame(41, "M110 N41")
    assert checksum(b"") == 0 and checksum("N1 G28") == xor("N1 G28")


@pytest.mark.parametrize("bad", ["", "  ", "G1 X1*3", "G1 ; c", "G1\nG1", "G1 X\u00e9"])
def test_frame_refuses_what_cannot_be_one_line(bad: str) -> None:
    with pytest.raises(MarlinProtocolError):
        frame(5, bad)


def test_frame_refuses_bad_numbers_and_overlong_lines() -> None:
    with pytest.raises(MarlinProtocolError):
        frame(-1, "G28")
    with pytest.raises(MarlinProtocolError, match="more than 96"):
        frame(1, "M117 " + "x" * 90)


@given(st.integers(min_value=0, max_value=10**7), commands)
def test_framed_lines_parse_back_and_are_accepted_in_sequence(n: int, command: str) -> None:
    command = command.strip()
    if not command or command.upper().startswith("M110") or command.startswith("N"):
        return
    try:
        raw = frame(n, command)
    except MarlinProtocolError:
        return  # too long
    line = parse_framed(raw)
    assert (line.number, line.command, line.checksum_ok) == (n, command, True)
    assert check_line(line, n - 1) == (n, None)
    last, error = check_line(line, n)  # a repeat of the last line is refused
    assert last is None and error == f"{ERR_LINE_NUMBER}{n}"


@given(st.integers(min_value=1, max_value=10**6), commands, st.data())
def test_any_single_byte_change_is_refused(n: int, command: str, data) -> None:
    command = command.strip()
    if not command or command.upper().startswith("M110"):
        return
    try:
        raw = bytearray(frame(n, command))
    except MarlinProtocolError:
        return
    i = data.draw(st.integers(min_value=0, max_value=len(raw) - 2))  # not the newline
    new = data.draw(st.sampled_from(b"0123456789NGXE *.-"))
    if new == raw[i]:
        return
    raw[i] = new
    try:
        line = parse_framed(bytes(raw))
    except MarlinProtocolError:
        return  # the firmware refuses it as a bad checksum
    last, error = check_line(line, n - 1)
    assert error is not None and last is None, raw  # a lost 'N' leaves a '*': refused too


def test_check_line_rules() -> None:
    ok = parse_framed(frame(8, "G1 X1"))
    assert check_line(ok, 7) == (8, None)
    assert check_line(ok, 3) == (None, f"{ERR_LINE_NUMBER}3")
    assert check_line(parse_framed(b"N8 G1 X1"), 7) == (None, f"{ERR_NO_CHECKSUM}7")
    bad = parse_framed(b"N8 G1 X1*0")
    assert not bad.checksum_ok and check_line(bad, 7) == (None, f"{ERR_CHECKSUM}7")
    assert check_line(parse_framed(reset_numbering(100)), 3) == (100, None)  # any number
    assert check_line(parse_framed(b"M110 N5"), 9) == (5, None)
    assert check_line(parse_framed(b"G28"), 9) == (9, None)  # unnumbered: unchecked
    assert check_line(parse_framed(b"G8 G1 X1*58"), 9) == (None, f"{ERR_NO_LINE_NUMBER}9")
    assert parse_framed(b"N3 G1 X1 ; comment*12").command == "G1 X1"


def test_parse_framed_errors_are_protocol_errors() -> None:
    with pytest.raises(MarlinProtocolError):
        parse_framed(b"N3 G1*x1")
    with pytest.raises(MarlinProtocolError):
        parse_framed(b"Nx G1")
    with pytest.raises(MarlinProtocolError):
        parse_framed(b"N3 G1 \xff*1")


@given(st.binary(max_size=120))
def test_parse_framed_raises_nothing_but_protocol_errors(raw: bytes) -> None:
    try:
        parse_framed(raw)
    except MarlinProtocolError:
        pass


def test_emergency_commands_are_spotted_whatever_the_framing() -> None:
    assert emergency_command(b"M112") == "M112"
    assert emergency_command(frame(7, "M112")) == "M112"
    assert emergency_command(b"N7 M112*99") == "M112"  # a bad checksum does not matter
    assert emergency_command(b"M410") == "M410"
    assert emergency_command(b"M1120") is None and emergency_command(b"G1 X1") is None


# -- replies -------------------------------------------------------------------------------

def test_replies_of_a_marlin_session() -> None:
    r = parse_reply(b"ok\n")
    assert r.kind is ReplyKind.OK and r.number is None and r.planner_free is None
    r = parse_reply("ok N123 P15 B3")
    assert (r.kind, r.number, r.planner_free, r.buffer_free) == (ReplyKind.OK, 123, 15, 3)
    r = parse_reply("ok T:210.52 /210.00 B:60.01 /60.00 @:127 B@:0")
    assert r.kind is ReplyKind.OK and r.number is None
    assert r.temperatures["T"] == Temperature(210.52, 210.0)
    assert r.temperatures["B"] == Temperature(60.01, 60.0)
    r = parse_reply(" T:25.00 /0.00 B:24.50 /0.00 @:0 B@:0")
    assert r.kind is ReplyKind.TEMPERATURE and r.temperatures["B"].current == 24.5
    r = parse_reply("Resend: 42")
    assert (r.kind, r.number) == (ReplyKind.RESEND, 42)
    assert parse_reply("rs N42").number == 42 and parse_reply("rs 43").number == 43
    r = parse_reply("Error:checksum mismatch, Last Line: 41")
    assert r.kind is ReplyKind.ERROR and r.last_line == 41 and r.line_error and not r.fatal
    r = parse_reply("Error:Line Number is not Last Line Number+1, Last Line: 7")
    assert r.last_line == 7
    r = parse_reply("Error:Printer halted. kill() called!")
    assert r.fatal and not r.line_error
    assert parse_reply("Error:MAXTEMP triggered, system stopped! Heater_ID: 0").fatal
    assert parse_reply("!! Thermal Runaway").fatal
    r = parse_reply("echo:busy: processing")
    assert r.kind is ReplyKind.BUSY and r.text == "processing"
    assert parse_reply("busy: paused for user").kind is ReplyKind.BUSY
    r = parse_reply('echo:Unknown command: "G999"')
    assert r.kind is ReplyKind.ECHO and "G999" in r.text
    r = parse_reply("X:10.00 Y:-2.50 Z:0.20 E:1.50 Count X:800 Y:-200 Z:80")
    assert r.kind is ReplyKind.POSITION
    assert r.position == {"X": 10.0, "Y": -2.5, "Z": 0.2, "E": 1.5}
    assert parse_reply("start").kind is ReplyKind.START
    assert parse_reply("FIRMWARE_NAME:Marlin 2.1").kind is ReplyKind.OTHER


def test_firmware_formatters_parse_back() -> None:
    r = parse_reply(format_ok(9, 14, 2))
    assert (r.number, r.planner_free, r.buffer_free) == (9, 14, 2)
    assert parse_reply(format_ok()).text == "ok"
    temps = {"T": Temperature(25.0, 0.0), "B": Temperature(30.5, 60.0)}
    r = parse_reply("ok " + format_temperatures(temps, {"T": 0, "B": 0}))
    assert r.temperatures == temps
    r = parse_reply(format_position(1.25, -3.5, 20.0, 4.0))
    assert r.position == {"X": 1.25, "Y": -3.5, "Z": 20.0, "E": 4.0}


@given(st.binary(max_size=200))
def test_parse_reply_never_raises(raw: bytes) -> None:
    reply = parse_reply(raw)
    assert isinstance(reply.kind, ReplyKind)
