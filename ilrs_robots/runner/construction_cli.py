"""The `ilrs slice` and `ilrs print` commands.

    ilrs slice DESIGN.yaml -o OUT.gcode [--printer NAME|YAML] [--layer-height M]
    ilrs print FILE.gcode --port PORT [--baud 115200] [--journal-dir DIR] [--printer ...]

`slice` checks the design against the printer, writes the G-code and prints the estimates.
`print` reads and checks the whole file first (a malformed line is refused before anything is
sent), streams it with a progress bar, and exits 0 once every line is acknowledged, non-zero
with the reason otherwise. A design YAML given to `print` is sliced on the way. With
`--journal-dir`, a print that was interrupted resumes where the printer stopped.

Registered on `ilrs` by runner/cli.py (``python -m ilrs_robots.runner.cli slice|print ...``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ilrs_robots.core.construction.slicer import write_gcode
from ilrs_robots.drivers.print_files import (
    DEFAULT_PRINTER,
    InputError,
    load_job,
    load_printer,
    slice_file,
)
from ilrs_robots.drivers.printer import ErrorCode, PrinterHost, Progress
from ilrs_robots.drivers.serial_port import PortBusy

__all__ = ["DEFAULT_PRINTER", "InputError", "load_job", "load_printer", "register",
           "slice_file"]

EXIT_BAD_INPUT = 2
EXIT_PRINT_FAILED = 1


# -- commands ----------------------------------------------------------------------------------

def cmd_slice(args: argparse.Namespace) -> int:
    """`ilrs slice`: write G-code, print the estimates."""
    try:
        result = slice_file(args.design, args.printer, args.layer_height)
    except InputError as exc:
        print(f"ilrs slice: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.output) if args.output else Path(args.design).with_suffix(".gcode")
    text = write_gcode(result)
    out.write_text(text)
    d, p = result.design, result.printer
    print(f"{d.name} ({d.type}) on {p.name} ({p.mode}), layer {result.layer_height * 1000:g} "
          f"mm, bead {p.bead_width * 1000:g} mm")
    print(result.estimates.summary())
    print(f"G-code:        {out} ({text.count(chr(10))} lines)")
    return 0


class ProgressBar:
    """A one-line progress bar on a terminal (plain lines when not a terminal)."""

    def __init__(self, stream: Any = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_decile = -1

    def __call__(self, p: Progress) -> None:
        filled = int(self.width * p.percent / 100.0)
        eta_min = p.remaining_s / 60.0
        text = (f"[{'#' * filled}{'.' * (self.width - filled)}] {p.percent:5.1f} % "
                f"line {p.lines_acked}/{p.lines_total} layer {p.layer + 1}/{p.layers_total} "
                f"{p.material_kg:.1f} kg, {eta_min:.1f} min left"
                f"{' PAUSED' if p.paused else ''}")
        if self.tty:
            self.stream.write("\r" + text)
            self.stream.flush()
        elif int(p.percent // 10) != self._last_decile:
            self._last_decile = int(p.percent // 10)
            self.stream.write(text + "\n")
            self.stream.flush()

    def end(self) -> None:
        """Finish the bar's line."""
        if self.tty:
            self.stream.write("\n")


def cmd_print(args: argparse.Namespace) -> int:
    """`ilrs print`: stream a file; 0 once every line is acknowledged."""
    if args.window < 1 or args.rx_buffer < 0:
        print("ilrs print: --window must be at least 1 and --rx-buffer at least 0",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        job, program, printer = load_job(args.file, args.printer, args.layer_height)
    except InputError as exc:
        print(f"ilrs print: refused, nothing sent: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    bar = None if args.quiet else ProgressBar()
    host = PrinterHost(args.port, args.baud, window=args.window, rx_buffer=args.rx_buffer,
                       ok_timeout=args.ok_timeout,
                       reconnect_timeout=args.reconnect_timeout, journal_dir=args.journal_dir,
                       on_progress=bar)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        host.cancel()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = host.print_job(job)
    except PortBusy as exc:
        print(f"ilrs print: {exc}", file=sys.stderr)
        return EXIT_PRINT_FAILED
    finally:
        host.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
        if bar is not None:
            bar.end()
    if result.error_code == ErrorCode.NONE:
        extra = f", resumed after line {result.resumed_from}" if result.resumed_from else ""
        print(f"printed {job.name}: {result.lines_total} lines acknowledged ({result.resends} "
              f"resent on request, {result.probes} probes, {result.reconnects} reconnects"
              f"{extra})")
        return 0
    print(f"ilrs print: failed at line {result.lines_acked} of {result.lines_total}: "
          f"{result.error_msg}", file=sys.stderr)
    return EXIT_PRINT_FAILED


def register(subparsers: Any) -> None:
    """Add `slice` and `print` to an argparse subparsers object."""
    p = subparsers.add_parser("slice", help="slice a design YAML into G-code, print estimates",
                              description=cmd_slice.__doc__)
    p.add_argument("design", help="design YAML (see config/designs)")
    p.add_argument("-o", "--output", help="G-code file to write (default: DESIGN.gcode)")
    p.add_argument("--printer", help="printer config name or YAML (default: the design's)")
    p.add_argument("--layer-height", type=float, default=None,
                   help="layer height in m (default: the design's, else the bead height)")
    p.set_defaults(func=cmd_slice)
    p = subparsers.add_parser("print", help="stream a G-code file (or a design) to a printer",
                              description=cmd_print.__doc__)
    p.add_argument("file", help="G-code file, or a design YAML to slice first")
    p.add_argument("--port", required=True, help="serial port of the printer's controller")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--printer", help=f"printer config name or YAML (default {DEFAULT_PRINTER})")
    p.add_argument("--layer-height", type=float, default=None, help="for a design YAML, m")
    p.add_argument("--journal-dir", help="keep the job's progress here; resume from it")
    p.add_argument("--window", type=int, default=4, help="lines in flight (default 4)")
    p.add_argument("--rx-buffer", type=int, default=128,
                   help="the controller's receive buffer in bytes, never overfilled (Marlin's "
                        "RX_BUFFER_SIZE, default 128; 0: no limit)")
    p.add_argument("--ok-timeout", type=float, default=4.0,
                   help="s without an ok before probing the printer (default 4)")
    p.add_argument("--reconnect-timeout", type=float, default=30.0,
                   help="s to wait for a vanished port to come back (default 30)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_print)
