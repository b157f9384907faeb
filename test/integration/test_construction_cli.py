"""`ilrs slice` and `ilrs print` as processes, against the printer emulator on a pty."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ilrs_robots.core.construction.gcode import parse_program
from ilrs_robots.core.construction.slicer import HeightGrid
from ilrs_robots.sim.devices.printer_emulator import PrinterEmulator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "ilrs_robots.runner.cli"]
BERM = {"name": "cli_berm", "type": "blast_berm", "printer": "regolith_paste_gantry",
        "radius": 1.2, "arc_deg": 120.0, "base_width": 0.4, "height": 0.1, "batter_deg": 60.0}


def run(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def gcode(tmp_path: Path) -> Path:
    design = tmp_path / "berm.yaml"
    design.write_text(yaml.safe_dump(BERM))
    out = tmp_path / "berm.gcode"
    result = run("slice", str(design), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "regolith:" in result.stdout and "print time:" in result.stdout
    return out


def emulator(tmp_path: Path, speedup: float = 2000.0) -> PrinterEmulator:
    return PrinterEmulator(tmp_path / "printer", 115200, grid=HeightGrid(-2, -2, 0.025, 160, 160),
                           speedup=speedup, busy_interval=0.1)


def executed_job(emu: PrinterEmulator) -> list[str]:
    with emu._cv:
        return [t for n, t in emu.executed if n is not None and not t.startswith("M110")]


def test_slice_writes_gcode_and_prints_estimates(tmp_path: Path) -> None:
    out = tmp_path / "pad.gcode"
    result = run("slice", str(ROOT / "config/designs/landing_pad_small.yaml"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "landing_pad_small (landing_pad)" in result.stdout
    for figure in ("layers:", "print time:", "regolith:", "energy:"):
        assert figure in result.stdout
    assert parse_program(out.read_text()).layers_total == 4


def test_slice_refuses_a_bad_design_with_the_reason(tmp_path: Path) -> None:
    design = tmp_path / "huge.yaml"
    design.write_text(yaml.safe_dump(dict(BERM, radius=30.0)))
    result = run("slice", str(design), "-o", str(tmp_path / "x.gcode"))
    assert result.returncode == 2
    assert "field 'radius'" in result.stderr and "outside the envelope" in result.stderr
    assert not (tmp_path / "x.gcode").exists()
    dome = tmp_path / "dome.yaml"
    dome.write_text(yaml.safe_dump({"name": "d", "type": "corbelled_dome", "diameter": 10.0,
                                    "height": 5.0, "wall_thickness": 0.3,
                                    "oculus_diameter": 1.0, "profile": "hemisphere"}))
    result = run("slice", str(dome))
    assert result.returncode == 2 and "impossible overhang" in result.stderr


def test_print_exits_zero_once_every_line_is_acknowledged(tmp_path: Path, gcode: Path) -> None:
    with emulator(tmp_path) as emu:
        result = run("print", str(gcode), "--port", str(emu.link), "--baud", "115200")
        assert result.returncode == 0, result.stderr
        assert "lines acknowledged" in result.stdout
        assert "100.0 %" in result.stderr  # the progress bar's last line
        wait_for(lambda: len(executed_job(emu)) == len(parse_program(gcode.read_text())))
        assert executed_job(emu) == parse_program(gcode.read_text()).commands


def test_malformed_gcode_is_refused_before_anything_is_sent(tmp_path: Path,
                                                            gcode: Path) -> None:
    lines = gcode.read_text().splitlines()
    lines[40] = "G1 X10 Y"  # line 41
    bad = tmp_path / "bad.gcode"
    bad.write_text("\n".join(lines))
    with emulator(tmp_path) as emu:
        result = run("print", str(bad), "--port", str(emu.link))
        assert result.returncode == 2
        assert "line 41: G1 parameter Y has no value" in result.stderr
        assert "nothing sent" in result.stderr
        assert emu.lines_received == 0
        outside = tmp_path / "outside.gcode"
        outside.write_text("G21\nG90\nG0 X0 Y0\nG1 X9000 Y0 F600\n")
        result = run("print", str(outside), "--port", str(emu.link))
        assert result.returncode == 2 and "line 4: move to X9000.0" in result.stderr
        assert emu.lines_received == 0


def test_print_fails_with_the_reason(tmp_path: Path, gcode: Path) -> None:
    result = run("print", str(gcode), "--port", str(tmp_path / "nowhere"),
                 "--reconnect-timeout", "0.5")
    assert result.returncode == 1 and "cannot open serial port" in result.stderr
    with emulator(tmp_path, speedup=100.0) as emu:
        proc = subprocess.Popen([*CLI, "print", str(gcode), "--port", str(emu.link), "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
        wait_for(lambda: len(emu.executed_numbers()) >= 20)
        emu.over_temperature()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1 and "MAXTEMP" in err and "failed at line" in err


def test_killed_host_started_again_completes_exactly_once(tmp_path: Path, gcode: Path) -> None:
    journal = tmp_path / "journal"
    commands = parse_program(gcode.read_text()).commands
    args = [*CLI, "print", str(gcode), "--journal-dir", str(journal), "-q"]
    with emulator(tmp_path, speedup=300.0) as emu:
        proc = subprocess.Popen([*args, "--port", str(emu.link)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: len(emu.executed_numbers()) >= 150)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert (journal / "print_job.json").exists()
        result = subprocess.run([*args, "--port", str(emu.link)], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "resumed after line" in result.stdout
        wait_for(lambda: len(executed_job(emu)) >= len(commands))
        assert executed_job(emu) == commands
