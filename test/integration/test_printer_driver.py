"""The printer host streaming jobs to the Marlin emulator over a real pty, with faults."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from ilrs_robots.core.construction.designs import parse_design, parse_printer_yaml
from ilrs_robots.core.construction.gcode import job_tables, parse_program
from ilrs_robots.core.construction.resume import resume_preamble
from ilrs_robots.core.construction.slicer import (
    HeightGrid,
    compare_height_fields,
    expected_height_field,
    slice_design,
    write_gcode,
)
from ilrs_robots.drivers.printer import (
    PROBE,
    ErrorCode,
    JobResult,
    PrinterHost,
    PrintJob,
    Progress,
)
from ilrs_robots.sim.devices.printer_emulator import PrinterEmulator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

ROOT = Path(__file__).resolve().parents[2]
PRINTER = parse_printer_yaml((ROOT / "config/printers/regolith_paste_gantry.yaml").read_text())
BERM = parse_design({"name": "berm", "type": "blast_berm", "radius": 1.2, "arc_deg": 180.0,
                     "base_width": 0.5, "height": 0.1, "batter_deg": 60.0})
GRID = HeightGrid(-1.5, -1.5, 0.025, 120, 120)


@pytest.fixture(scope="module")
def berm() -> tuple[PrintJob, object]:
    result = slice_design(BERM, PRINTER)
    program = parse_program(write_gcode(result))
    layers, times, mass = job_tables(program, PRINTER)
    return PrintJob(program.commands, layers, times, mass, "berm"), result


def wait_for(condition, timeout: float = 20.0, state=None) -> None:
    """Poll `condition`; at timeout fail with `state()` (what the emulator holds) if given."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time" + (f": {state()}" if state else ""))
        time.sleep(0.005)


def emulator_state(emu: PrinterEmulator, job: PrintJob) -> str:
    """The job lines the emulator has not executed, and what it still holds."""
    done = set(emu.executed_numbers())
    missing = [n for n in range(1, len(job.commands) + 1) if n not in done]
    with emu._cv:
        queued = [n for n, _, _ in emu._queue]
        planned = [b.number for b in emu._planner]
        unnumbered = [text for n, text in emu.executed if n is None]
    return (f"{len(missing)} job lines not executed {missing[:20]}; last line {emu.last_line}, "
            f"halted {emu.halted}, queue {queued}, planner {planned}, unnumbered commands "
            f"executed {unnumbered[:5]}, lines corrupted {emu.lines_corrupted}")


def emulator(tmp_path: Path, **kwargs) -> PrinterEmulator:
    options = dict(grid=GRID, bead_width=PRINTER.bead_width, speedup=2000.0,
                   busy_interval=0.1, seed=11)
    options.update(kwargs)
    return PrinterEmulator(tmp_path / "printer", 115200, **options)


def job_commands_executed(emu: PrinterEmulator) -> list[str]:
    with emu._cv:
        return [text for n, text in emu.executed
                if n is not None and not text.startswith("M110")]


def finished(emu: PrinterEmulator, job: PrintJob) -> bool:
    return len(emu.executed_numbers()) >= len(job.commands) or emu.halted


@pytest.mark.parametrize("advanced_ok", [True, False], ids=["advanced_ok", "plain_ok"])
def test_berm_prints_exactly_once_through_corrupted_lines_and_lost_oks(
        tmp_path: Path, berm, advanced_ok: bool) -> None:
    job, result = berm
    with emulator(tmp_path, advanced_ok=advanced_ok) as emu:
        emu.corrupt_lines(rate=0.01)
        emu.lose_oks(rate=0.01)
        progress: list[Progress] = []
        host = PrinterHost(str(emu.link), ok_timeout=0.4, on_progress=progress.append,
                           progress_interval=0.0)
        with host:
            outcome = host.print_job(job)
        assert outcome.error_code == ErrorCode.NONE, outcome
        assert emu.lines_corrupted > 0 and emu.oks_lost > 0  # the faults happened
        # resends never overflow the receive ring (an overflow splices two lines into one,
        # which Marlin's 7-bit checksum passes one time in 128; the old host dropped 118 to
        # 291 bytes a run). Only a lost-ok probe may, under load, while refused lines are
        # still queued (2 bytes once in CI): its head is N0, which no firmware accepts.
        assert emu.bytes_dropped <= len(PROBE) * outcome.probes
        wait_for(lambda: finished(emu, job), state=lambda: emulator_state(emu, job))
        assert emu.executed_numbers() == list(range(1, len(job.commands) + 1))
        assert job_commands_executed(emu) == job.commands  # none lost, twice, or reordered
        expected = expected_height_field(BERM, result.layer_height, GRID)
        deviation = compare_height_fields(emu.height_field, expected, GRID.cell,
                                          PRINTER.bead_width, PRINTER.bead_height)
        assert deviation.ok, deviation
        assert emu.height_field.max() == pytest.approx(BERM.height)
    last = progress[-1]
    assert (last.lines_acked, last.lines_total) == (len(job.commands), len(job.commands))
    assert last.percent == pytest.approx(100.0) and last.layers_total == 5
    assert last.material_kg == pytest.approx(result.estimates.mass_kg, rel=0.02)
    assert [p.lines_acked for p in progress] == sorted(p.lines_acked for p in progress) or \
        not advanced_ok  # with plain oks a resend may take an ack back


def test_lost_oks_are_recovered_without_sending_a_line_twice(tmp_path: Path, berm) -> None:
    job, _ = berm
    with emulator(tmp_path, advanced_ok=False) as emu:  # plain oks: every loss stalls
        emu.lose_oks(rate=0.03)
        with PrinterHost(str(emu.link), ok_timeout=0.3) as host:
            outcome = host.print_job(job)
        assert outcome.error_code == ErrorCode.NONE, outcome
        assert emu.oks_lost > 0 and outcome.probes > 0
        assert outcome.resends == 0 and outcome.lines_sent == len(job.commands)
        wait_for(lambda: finished(emu, job))
        assert job_commands_executed(emu) == job.commands
    # a host blind to the ring, 16 lines in flight, while a 1 s dwell holds a small
    # command buffer and planner: the ring must overflow, deterministically
    part = PrintJob(["G4 S1"] + [f"M117 line {i} of the blind host" for i in range(60)]
                    + ["G4 S1"] + [f"M117 line {i} after the second dwell" for i in range(60)],
                    name="dwell and messages")
    (tmp_path / "blind").mkdir()
    with emulator(tmp_path / "blind", speedup=1.0, buffer_size=2, planner_size=2) as emu:
        with PrinterHost(str(emu.link), window=16, rx_buffer=0, ok_timeout=0.5) as host:
            outcome = host.print_job(part)
        assert outcome.error_code == ErrorCode.NONE, outcome
        wait_for(lambda: finished(emu, part))
        assert emu.bytes_dropped > 0 and emu.lines_rejected > 0  # the ring overflowed
        assert outcome.resends > 0
        assert job_commands_executed(emu) == part.commands


def run_in_thread(host: PrinterHost, job: PrintJob) -> tuple[threading.Thread, list]:
    out: list[JobResult] = []
    thread = threading.Thread(target=lambda: out.append(host.print_job(job)), daemon=True)
    thread.start()
    return thread, out


def test_port_vanishes_mid_job_and_the_job_resumes_where_the_firmware_stopped(
        tmp_path: Path, berm) -> None:
    job, _ = berm
    with emulator(tmp_path, speedup=200.0) as emu:
        host = PrinterHost(str(emu.link), ok_timeout=0.5, backoff_min=0.02)
        thread, out = run_in_thread(host, job)
        wait_for(lambda: len(emu.executed_numbers()) >= 40)
        emu.disconnect_for(0.3)
        thread.join(timeout=60)
        host.close()
        (outcome,) = out
        assert outcome.error_code == ErrorCode.NONE, outcome
        assert outcome.reconnects == 1
        wait_for(lambda: finished(emu, job))
        assert job_commands_executed(emu) == job.commands


def test_a_job_waits_for_a_printer_that_is_not_there_yet(tmp_path: Path) -> None:
    """A controller still booting (no port yet) is waited for up to reconnect_timeout, as a
    vanished one is; past it the job fails naming the port; a cancel ends the wait."""
    part = PrintJob(["G28", "M117 the printer came up late"], name="late")
    port = tmp_path / "printer"  # where emulator(tmp_path) will put its link
    host = PrinterHost(str(port), reconnect_timeout=60.0, backoff_max=0.2)
    outcome: list[JobResult] = []
    worker = threading.Thread(target=lambda: outcome.append(host.print_job(part)))
    worker.start()
    try:
        wait_for(lambda: host._backoff.delay > host._backoff.minimum)  # it tried, and waits
        assert worker.is_alive() and not outcome
        with emulator(tmp_path) as emu:
            worker.join(60.0)
            assert outcome and outcome[0].error_code == ErrorCode.NONE, outcome
            wait_for(lambda: finished(emu, part))
            assert job_commands_executed(emu) == part.commands
    finally:
        host.cancel()
        worker.join(10.0)
        host.close()
    # nobody comes: LINK_LOST after the timeout, naming the port
    with PrinterHost(str(tmp_path / "absent"), reconnect_timeout=0.5) as host:
        result = host.print_job(part)
    assert result.error_code == ErrorCode.LINK_LOST and "absent" in result.error_msg, result
    assert "waited 0.5 s" in result.error_msg
    # a cancel while waiting ends the job at once
    host = PrinterHost(str(tmp_path / "absent"), reconnect_timeout=600.0)
    outcome.clear()
    worker = threading.Thread(target=lambda: outcome.append(host.print_job(part)))
    worker.start()
    wait_for(lambda: host._backoff.delay > host._backoff.minimum)
    host.cancel()
    worker.join(10.0)
    assert not worker.is_alive() and outcome[0].error_code == ErrorCode.CANCELLED, outcome


def test_emergency_stop_halts_within_one_line(tmp_path: Path, berm) -> None:
    job, _ = berm
    with emulator(tmp_path, speedup=20.0) as emu:  # moves of tens of milliseconds
        host = PrinterHost(str(emu.link))
        thread, out = run_in_thread(host, job)
        wait_for(lambda: len(emu.executed_numbers()) >= 30)
        done_before = len(emu.executed)
        host.emergency_stop()
        thread.join(timeout=10)
        host.close()
        (outcome,) = out
        assert outcome.error_code == ErrorCode.EMERGENCY_STOP, outcome
        assert emu.halted and emu.halt_reason == "M112"
        assert emu.queued_at_kill >= 2  # it overtook lines queued in the firmware
        assert done_before <= emu.executed_at_kill <= done_before + 1
        assert len(emu.executed) == emu.executed_at_kill  # nothing after the halt
        assert outcome.lines_acked < len(job.commands)


def test_pause_holds_the_job_and_resume_completes_it(tmp_path: Path, berm) -> None:
    job, _ = berm
    with emulator(tmp_path, speedup=200.0) as emu:
        host = PrinterHost(str(emu.link))
        thread, out = run_in_thread(host, job)
        wait_for(lambda: len(emu.executed_numbers()) >= 20)
        host.pause()
        # the lines in flight finish; then nothing more comes
        wait_for(lambda: len(emu.executed_numbers()) == emu.last_line and not emu._planner)
        held = emu.last_line
        assert held < len(job.commands) - host.window
        time.sleep(0.2)  # a paused host sends nothing
        assert emu.last_line == held and not out
        host.resume()
        thread.join(timeout=60)
        host.close()
        assert out[0].error_code == ErrorCode.NONE
        wait_for(lambda: finished(emu, job))
        assert job_commands_executed(emu) == job.commands


def test_over_temperature_halt_fails_the_job_with_the_reason(tmp_path: Path, berm) -> None:
    job, _ = berm
    with emulator(tmp_path, speedup=200.0) as emu:
        host = PrinterHost(str(emu.link))
        thread, out = run_in_thread(host, job)
        wait_for(lambda: len(emu.executed_numbers()) >= 10)
        emu.over_temperature()
        thread.join(timeout=10)
        host.close()
        (outcome,) = out
        assert outcome.error_code == ErrorCode.FIRMWARE_HALTED
        assert "MAXTEMP" in outcome.error_msg


def test_journal_resumes_a_new_host_where_the_firmware_stopped(tmp_path: Path, berm) -> None:
    job, _ = berm
    journal = tmp_path / "journal"
    with emulator(tmp_path, speedup=200.0) as emu:
        first = PrinterHost(str(emu.link), journal_dir=journal)
        thread, out = run_in_thread(first, job)
        wait_for(lambda: len(emu.executed_numbers()) >= 50)
        first.cancel()
        thread.join(timeout=10)
        first.close()
        assert out[0].error_code == ErrorCode.CANCELLED
        saved = first.journal.load()
        assert saved["job_id"] == job.job_id and 0 < saved["acked"] < len(job.commands)
        second = PrinterHost(str(emu.link), journal_dir=journal)
        with second:
            outcome = second.print_job(job)
        assert outcome.error_code == ErrorCode.NONE
        assert outcome.resumed_from >= saved["acked"]
        wait_for(lambda: finished(emu, job))
        assert job_commands_executed(emu) == job.commands
        assert second.journal.load()["state"] == "done"


def test_journal_renumbers_after_the_controller_restarted(tmp_path: Path, berm) -> None:
    job, _ = berm
    journal = tmp_path / "journal"
    with emulator(tmp_path, speedup=200.0) as emu:
        first = PrinterHost(str(emu.link), journal_dir=journal)
        thread, out = run_in_thread(first, job)
        wait_for(lambda: len(emu.executed_numbers()) >= 50)
        first.cancel()
        thread.join(timeout=10)
        first.close()
        wait_for(lambda: len(emu.executed_numbers()) == emu.last_line and not emu._planner)
        done = job_commands_executed(emu)
        acked = first.journal.load()["acked"]
        assert len(done) == acked  # every acknowledged line was executed
        emu.reset()  # power cycle: numbering, modes (M83) and position are forgotten
        with PrinterHost(str(emu.link), journal_dir=journal) as second:
            outcome = second.print_job(job)
        assert outcome.error_code == ErrorCode.NONE and outcome.resumed_from == acked
        preamble = resume_preamble(job.commands, acked)
        assert "M83" in preamble and any(c.startswith("G92 E") for c in preamble)
        wait_for(lambda: len(job_commands_executed(emu)) >= len(job.commands) + len(preamble))
        executed = job_commands_executed(emu)
        # the job's lines once each, in order, with the settings replayed at the restart
        assert executed[acked:acked + len(preamble)] == preamble
        assert executed[:acked] + executed[acked + len(preamble):] == job.commands
        # and the berm is as designed: no bead dragged from the home position, no lost M83
        _, result = berm
        expected = expected_height_field(BERM, result.layer_height, GRID)
        deviation = compare_height_fields(emu.height_field, expected, GRID.cell,
                                          PRINTER.bead_width, PRINTER.bead_height)
        assert deviation.ok, deviation


def test_the_receive_buffer_is_never_overfilled_and_an_overfilled_one_costs_resends_only(
        tmp_path: Path, berm) -> None:
    """Marlin's 128-byte receive ring: the host keeps its bytes in flight under it; a host
    that does not (16 lines in flight) loses bytes, and the checksums still let nothing
    through twice or out of order."""
    job, _ = berm
    with emulator(tmp_path, speedup=400.0) as emu:
        with PrinterHost(str(emu.link), window=16) as host:
            outcome = host.print_job(job)
        assert outcome.error_code == ErrorCode.NONE, outcome
        wait_for(lambda: finished(emu, job))
        # nothing dropped; only a probe for an ok late on a loaded machine is ever refused
        assert emu.bytes_dropped == 0 and emu.lines_rejected <= outcome.probes
        assert job_commands_executed(emu) == job.commands
