"""Printer streaming figure: lines per second the host streams at 115200 baud to the Marlin
emulator (moves take no time, so the serial line is the limit), against the ceiling that the
bytes of each line and of its ok round trip set. Target (issue 9): 90 % of it or more.

Ceilings, from the bytes actually sent and received:
- stop-and-wait: each line waits for its ok, (line bytes + ok bytes) x 10 bits / baud;
- full duplex: lines and oks overlap on the two wires, max(line, ok bytes) x 10 bits / baud
  (reachable only with several lines in flight).

    .venv/bin/python bench/bench_printer_stream.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ilrs_robots.core.construction.designs import parse_design_yaml, parse_printer_yaml
from ilrs_robots.core.construction.gcode import job_tables, parse_program
from ilrs_robots.core.construction.slicer import HeightGrid, slice_design, write_gcode
from ilrs_robots.drivers.printer import PrinterHost, PrintJob
from ilrs_robots.protocols.marlin import format_ok, frame
from ilrs_robots.resources import config_path
from ilrs_robots.sim.devices.printer_emulator import PrinterEmulator

BAUD = 115200
LINES = 3000


def main() -> None:
    design = parse_design_yaml(config_path("designs", "blast_berm.yaml").read_text())
    printer = parse_printer_yaml(config_path("printers", f"{design.printer}.yaml").read_text())
    program = parse_program(write_gcode(slice_design(design, printer)))
    program.lines = program.lines[:LINES]
    layers, times, mass = job_tables(program, printer)
    job = PrintJob(program.commands, layers, times, mass, "bench")
    tx = sum(len(frame(i + 1, c)) for i, c in enumerate(job.commands))
    rx = sum(len(format_ok(i + 1, 16, 4)) for i in range(len(job.commands)))
    n = len(job.commands)
    stop_and_wait = n / ((tx + rx) * 10 / BAUD)
    duplex = n / (max(tx, rx) * 10 / BAUD)
    print(f"{n} lines, {tx / n:.1f} bytes per line, {rx / n:.1f} bytes per ok, {BAUD} baud")
    print(f"ceiling: stop-and-wait {stop_and_wait:.0f} lines/s, full duplex {duplex:.0f} lines/s")
    with tempfile.TemporaryDirectory() as tmp:
        for window in (1, 2, 4):
            with PrinterEmulator(Path(tmp) / f"printer{window}", BAUD, speedup=1e9,
                                 grid=HeightGrid.for_printer(printer), planner_size=64) as emu:
                with PrinterHost(str(emu.link), BAUD, window=window) as host:
                    t0 = time.perf_counter()
                    result = host.print_job(job)
                    elapsed = time.perf_counter() - t0
                assert result.error_code == 0, result
                rate = n / elapsed
                print(f"window {window}: {rate:.0f} lines/s = {100 * rate / stop_and_wait:.0f} % "
                      f"of stop-and-wait, {100 * rate / duplex:.0f} % of full duplex "
                      f"(target >= 90 % of stop-and-wait)")


if __name__ == "__main__":
    main()
