"""The Marlin printer emulator on a real pty, driven line by line through pyserial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from ilrs_robots.core.construction.slicer import HeightGrid
from ilrs_robots.protocols.marlin import ReplyKind, frame, parse_reply, reset_numbering
from ilrs_robots.sim.devices.printer_emulator import PrinterEmulator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

GRID = HeightGrid(-1.0, -1.0, 0.025, 80, 80)


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


class Link:
    """A raw host: pyserial on the pty, reading reply lines."""

    def __init__(self, path: Path) -> None:
        self.port = serial.Serial(str(path), 115200, timeout=2.0)

    def send(self, data: bytes) -> None:
        self.port.write(data)

    def lines_until(self, predicate, limit: int = 50) -> list[str]:
        lines = []
        for _ in range(limit):
            raw = self.port.readline()
            assert raw, f"no reply; got {lines}"
            lines.append(raw.decode().strip())
            if predicate(lines[-1]):
                return lines
        raise AssertionError(lines)

    def until_ok(self) -> list[str]:
        return self.lines_until(lambda s: s.startswith("ok"))


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[PrinterEmulator]:
    with PrinterEmulator(tmp_path / "printer", grid=GRID, bead_width=0.05, speedup=100.0,
                         busy_interval=0.1, seed=3) as device:
        yield device


@pytest.fixture
def link(emu: PrinterEmulator) -> Iterator[Link]:
    host = Link(emu.link)
    yield host
    host.port.close()


def test_numbered_lines_are_acknowledged_with_advanced_ok(emu, link) -> None:
    assert os.readlink(emu.link).startswith("/dev/pts/")
    link.send(reset_numbering(0))
    (ok,) = link.until_ok()
    assert ok.startswith("ok N0 P") and ok.endswith(" B4")
    link.send(frame(1, "G1 X10 Y0 E1 F6000"))
    reply = parse_reply(link.until_ok()[-1])
    assert reply.number == 1 and reply.planner_free is not None
    link.send(frame(2, "M400"))
    assert parse_reply(link.until_ok()[-1]).number == 2
    # M400 is acknowledged once the planner drained; its own (empty) block follows at once
    deadline = time.monotonic() + 5.0
    while emu.executed_numbers() != [1, 2] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emu.executed_numbers() == [1, 2]
    assert emu.position == (10.0, 0.0, 0.0, 1.0)


def test_bad_checksum_and_wrong_number_request_a_resend(emu, link) -> None:
    link.send(reset_numbering(0))
    link.until_ok()
    bad = bytearray(frame(1, "G1 X5"))
    bad[-3] = ord("0") if bad[-3] != ord("0") else ord("1")
    link.send(bytes(bad))
    lines = link.until_ok()
    assert lines[:2] == ["Error:checksum mismatch, Last Line: 0", "Resend: 1"]
    assert parse_reply(lines[2]).kind is ReplyKind.OK and parse_reply(lines[2]).number is None
    link.send(frame(2, "G1 X5"))
    lines = link.until_ok()
    assert lines[0] == "Error:Line Number is not Last Line Number+1, Last Line: 0"
    link.send(b"N1 G1 X5\n")
    assert link.until_ok()[0] == "Error:No Checksum with line number, Last Line: 0"
    link.send(frame(1, "G1 X5"))
    assert parse_reply(link.until_ok()[-1]).number == 1
    assert emu.lines_rejected == 3
    wait_for(lambda: emu.executed_numbers() == [1])


def test_a_line_that_lost_its_end_never_holds_the_receive_ring_full(emu, link) -> None:
    """Marlin keeps 95 characters of a line and ignores the rest up to its newline: a line
    whose newline was dropped (330 bytes of run-on text) is refused and asked again; the ring
    takes the next line."""
    link.send(reset_numbering(0))
    link.until_ok()
    link.send(b"N1 M117 a line that lost its end " * 10)
    wait_for(lambda: emu.bytes_dropped > 0)  # the ring took what it could of it
    link.send(frame(1, "G1 X5"))
    lines = link.until_ok()
    assert lines[0].startswith("Error:") and lines[1] == "Resend: 1", lines  # cut: no checksum
    link.send(frame(1, "G1 X5"))
    assert parse_reply(link.until_ok()[-1]).number == 1
    wait_for(lambda: emu.executed_numbers() == [1])


def test_temperature_position_and_auto_report(emu, link) -> None:
    link.send(b"M104 S60\n")
    link.until_ok()
    link.send(b"M105\n")
    reply = parse_reply(link.until_ok()[-1])
    assert reply.kind is ReplyKind.OK and reply.temperatures["T"].target == 60.0
    link.send(b"G1 X12.5 Y-3 Z20 F6000\n")
    link.until_ok()
    link.send(b"M114\n")
    lines = link.until_ok()
    assert parse_reply(lines[0]).position == {"X": 12.5, "Y": -3.0, "Z": 20.0, "E": 0.0}
    link.send(b"M155 S0.05\n")
    link.until_ok()
    report = link.lines_until(lambda s: parse_reply(s).kind is ReplyKind.TEMPERATURE)
    assert parse_reply(report[-1]).temperatures["B"].current == 25.0


def test_busy_keepalive_while_waiting_for_a_long_move(emu, link) -> None:
    link.send(b"G1 X1000 F600\n")  # 100 s at feed, 1 s at speed-up 100
    link.until_ok()
    link.send(b"M400\n")
    lines = link.until_ok()
    assert "echo:busy: processing" in lines
    assert emu.position[0] == 1000.0


def test_m112_acts_ahead_of_queued_lines_and_halts(emu, link) -> None:
    link.send(reset_numbering(0))
    link.until_ok()
    for n in range(1, 8):  # long moves: the planner and the buffer fill up
        link.send(frame(n, f"G1 X{n * 100} F600"))
    wait_for(lambda: emu.lines_received >= 5)
    link.send(b"M112\n")
    wait_for(lambda: emu.halted)
    assert emu.halt_reason == "M112"
    assert emu.queued_at_kill >= 2  # M112 overtook the commands still queued
    assert emu.executed_numbers() == []  # the first move was cut short
    assert "Error:Printer halted. kill() called!" in link.lines_until(lambda s: "halted" in s)
    received = emu.lines_received
    link.send(frame(8, "G1 X0"))  # a halted firmware takes nothing more
    link.send(b"M105\n")
    assert link.port.readline() == b""  # no answer within the port's timeout
    assert emu.lines_received == received
    emu.reset()
    assert "start" in link.lines_until(lambda s: s == "start")
    assert not emu.halted and emu.last_line == 0


def test_over_temperature_halts_with_maxtemp(emu, link) -> None:
    emu.over_temperature()
    lines = link.lines_until(lambda s: "halted" in s)
    assert lines[0].startswith("Error:MAXTEMP triggered") and parse_reply(lines[0]).fatal
    assert emu.halted


def test_paste_and_laser_deposit_into_the_height_field(emu, link) -> None:
    for cmd in ("M83", "G0 X0 Y0 Z20 F6000", "G1 X500 Y0 E2", "G0 X0 Y200", "M3 S200",
                "G1 X500 Y200", "M5", "G1 X500 Y-300", "G0 Z40", "G1 X0 Y-300 E0", "M400"):
        link.send(cmd.encode() + b"\n")
        link.until_ok()
    h = emu.height_field
    x, y = GRID.centres()
    on_paste = (abs(y) < 0.02) & (x > 0.05) & (x < 0.45)
    on_laser = (abs(y - 0.2) < 0.02) & (x > 0.05) & (x < 0.45)
    assert (h[on_paste] == pytest.approx(0.02)) and (h[on_laser] == pytest.approx(0.02))
    # the G1 with the laser off and no E, and the travel moves, left nothing
    assert h[(abs(x - 0.5) < 0.013) & (y < -0.05) & (y > -0.25)].max() == 0.0
    assert h[(abs(y + 0.3) < 0.013)].max() == 0.0
    assert emu.deposited_mm == pytest.approx(1000.0)
    saved = emu.save_height_field(Path(emu.link).parent / "site.npz")
    import numpy as np

    assert np.load(saved)["heights"].max() == pytest.approx(0.02)


def test_lost_oks_and_corrupted_lines_are_injected(emu, link) -> None:
    link.send(reset_numbering(0))
    link.until_ok()
    emu.lose_oks(next_n=1)
    link.send(frame(1, "G1 X1"))
    link.send(frame(2, "G1 X2"))
    assert parse_reply(link.until_ok()[-1]).number == 2  # the ok of line 1 was lost
    emu.corrupt_lines(next_n=1)
    link.send(frame(3, "G1 X3"))
    assert link.until_ok()[-2] == "Resend: 3"
    assert (emu.oks_lost, emu.lines_corrupted) == (1, 1)


def test_the_port_vanishes_and_comes_back_while_the_firmware_runs(emu, link) -> None:
    link.send(b"G1 X300 F600\n")  # 0.3 s at speed-up 100
    link.until_ok()
    emu.disconnect_for(0.1)
    assert not os.path.lexists(emu.link)
    wait_for(lambda: os.path.lexists(emu.link))
    wait_for(lambda: emu.position[0] == 300.0)
    again = Link(emu.link)
    try:
        again.send(b"M114\n")
        assert parse_reply(again.until_ok()[0]).position["X"] == 300.0
    finally:
        again.port.close()


def test_main_serves_until_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "cli" / "printer"
    proc = subprocess.Popen([sys.executable, "-m", "ilrs_robots.sim.devices.printer_emulator",
                             "--link", str(link), "--speedup", "50"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == str(link)
        host = Link(link)
        try:
            host.send(b"M105\n")
            assert host.until_ok()[-1].startswith("ok")
        finally:
            host.port.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not os.path.lexists(link)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
