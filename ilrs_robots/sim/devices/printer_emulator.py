"""Firmware emulator of a Marlin-controlled regolith printer, served on a pty.

What a host sees is Marlin's serial behaviour:

* lines are checked as Marlin does (``protocols/marlin.check_line``): a wrong line number or
  checksum gives ``Error:<reason>, Last Line: <n>``, ``Resend: <n + 1>`` and ``ok``, and what
  was still in the receive buffer is flushed;
* bytes wait in a receive ring of ``rx_buffer`` bytes (Marlin's RX_BUFFER_SIZE, 128) until
  the command buffer takes their line; what arrives while the ring is full is dropped, as
  Marlin's serial interrupt drops it (the line then fails its checksum and is asked again);
  the line being assembled keeps at most ``MAX_CMD_SIZE - 1`` characters and ignores the rest
  up to its end of line, as Marlin's ``get_serial_commands`` does, so a line that lost its
  newline never holds the ring full;
  ``M112`` is seen even then (the emergency parser reads every byte received);
* a small command buffer (``buffer_size``, Marlin's BUFSIZE) feeds a planner of
  ``planner_size`` blocks; ``ok`` (ADVANCED_OK by default: ``ok N<n> P<free> B<free>``) is sent
  when a command has been handed to the planner, so a full planner holds the oks back;
* moves take their time at the commanded feed rate divided by ``speedup``; ``M400`` waits for
  the planner to drain; while a command waits, ``echo:busy: processing`` is sent every
  ``busy_interval`` seconds;
* ``M105`` and ``M155 S<s>`` report temperatures, ``M114`` the position; ``M112`` is acted on
  as the bytes arrive (Marlin's emergency parser), ahead of everything queued, and halts the
  firmware (``Error:Printer halted. kill() called!``) until :meth:`reset`.

Material: a G1 that advances E (paste) or runs with the laser on (``M3``/``M4 S>0``) lays a
bead ``bead_width`` wide whose top is at the nozzle's Z into :attr:`PrinterEmulator.height_field`
(a numpy grid of the site, see ``core/construction/slicer.HeightGrid``).

Faults: :meth:`corrupt_lines`, :meth:`lose_oks`, :meth:`disconnect_for` (the pty vanishes and
comes back; the firmware keeps running), :meth:`over_temperature` (MAXTEMP halt); and
:meth:`reset` (power cycle: line numbers and position restart, the printed site stays).

Run standalone::

    python -m ilrs_robots.sim.devices.printer_emulator --link /tmp/x/printer --speedup 50
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ilrs_robots.core.construction.designs import parse_printer_yaml
from ilrs_robots.core.construction.gcode import Command, GcodeError, parse_command
from ilrs_robots.core.construction.slicer import HeightGrid
from ilrs_robots.protocols.marlin import (
    MAX_COMMAND_LENGTH,
    MSG_BUSY_PROCESSING,
    MSG_HALTED,
    MarlinProtocolError,
    Temperature,
    check_line,
    emergency_command,
    format_ok,
    format_position,
    format_temperatures,
    parse_framed,
)
from ilrs_robots.resources import config_path
from ilrs_robots.sim.devices.pty_device import PtyDevice, serve_until_signalled

LINE_CHARS = MAX_COMMAND_LENGTH - 1  # characters of a line Marlin keeps; the rest it ignores

FIRMWARE = "echo:Marlin 2.1.2 (ilrs_robots emulator)"
MOTION_CODES = ("G0", "G1", "G2", "G3")


@dataclass
class Block:
    """One planned command: its line number, text, and for moves start, target and timing."""

    number: int | None
    text: str
    duration: float = 0.0  # s of real (emulated) time at speed-up 1
    start: tuple[float, float, float, float] | None = None
    target: tuple[float, float, float, float] | None = None
    deposit: bool = False


class PrinterEmulator(PtyDevice):
    """A Marlin controller with a gantry and a regolith deposition head on a pty.

    Observables (read any time): :attr:`executed` (line number and command text of every
    command the machine finished, in order), :attr:`height_field`, :attr:`position`,
    :attr:`last_line`, :attr:`halted`, :attr:`halt_reason`, and the counters
    ``lines_received``, ``lines_rejected``, ``oks_lost``, ``lines_corrupted``.
    """

    def __init__(self, link: str | os.PathLike[str], baud: int | None = None, *,
                 grid: HeightGrid | None = None, bead_width: float = 0.05,
                 speedup: float = 1.0, buffer_size: int = 4, planner_size: int = 16,
                 rx_buffer: int = 128, advanced_ok: bool = True, busy_interval: float = 2.0,
                 max_temp: float = 275.0, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(link, baud)
        if speedup <= 0:
            raise ValueError(f"speedup must be positive, got {speedup}")
        if buffer_size < 1 or planner_size < 1:
            raise ValueError("buffer_size and planner_size must be at least 1")
        self.grid = grid or HeightGrid(-8.0, -8.0, 0.025, 640, 640)
        self.bead_width = bead_width
        self.speedup = speedup
        self.buffer_size = buffer_size
        self.planner_size = planner_size
        self.rx_buffer = rx_buffer  # bytes; 0: unbounded
        self.bytes_dropped = 0  # received while the ring was full
        self.advanced_ok = advanced_ok
        self.busy_interval = busy_interval
        self.max_temp = max_temp
        self._clock = clock
        self._rng = random.Random(seed)
        self._cv = threading.Condition()
        # the firmware's serial output, in the order it was produced (appended under _cv):
        # an ok produced just before an M112 goes out before the halt message, as from the
        # firmware's transmit buffer; _tx keeps two writers from reordering their parts
        self._outbox: list[str] = []
        self._tx = threading.Lock()
        self._heights = self.grid.zeros()
        self.executed: list[tuple[int | None, str]] = []
        self.lines_received = 0
        self.lines_rejected = 0
        self.lines_corrupted = 0
        self.oks_lost = 0
        self.kills = 0
        self.queued_at_kill = 0  # commands buffered or planned when the last halt came
        self.executing_at_kill: int | None = None  # line in progress when it came
        self.executed_at_kill = 0  # commands finished when it came
        self.deposited_mm = 0.0
        self.on_executed: Callable[[int | None, str], None] | None = None
        self._corrupt_rate = 0.0
        self._corrupt_next = 0
        self._lose_rate = 0.0
        self._lose_next = 0
        self._stop_threads = False
        self._threads: list[threading.Thread] = []
        self._power_on()

    # -- state -----------------------------------------------------------------------------------
    def _power_on(self) -> None:
        self._partial = b""
        self._urgent_partial = b""
        self._rx: deque[bytes] = deque()
        self._queue: deque[tuple[int | None, Command | None, str]] = deque()
        self._planner: deque[Block] = deque()
        self._abort = 0  # bumped to cut the move in progress short
        self.last_line = 0
        self.halted = False
        self.halt_reason = ""
        self._pos = [0.0, 0.0, 0.0, 0.0]  # planned X Y Z E (mm)
        self.position = (0.0, 0.0, 0.0, 0.0)  # executed
        self._relative = False
        self._relative_e = False
        self._feed = 3000.0
        self._feed_scale = 1.0
        self._laser_power = 0.0
        self._laser_on = False
        self._temps = {"T": Temperature(25.0, 0.0), "B": Temperature(25.0, 0.0)}
        self._auto_report = 0.0
        self._next_report = 0.0

    @property
    def height_field(self) -> np.ndarray:
        """A copy of the deposited height field (m), rows along y, columns along x."""
        with self._cv:
            return self._heights.copy()

    def save_height_field(self, path: str | os.PathLike[str]) -> Path:
        """Save the height field and its grid to a ``.npz`` file."""
        g = self.grid
        path = Path(path)
        np.savez(path, heights=self.height_field, x0=g.x0, y0=g.y0, cell=g.cell)
        return path

    def executed_numbers(self) -> list[int]:
        """Line numbers of the numbered commands executed, in order (``M110`` left out)."""
        with self._cv:
            return [n for n, text in self.executed
                    if n is not None and not text.startswith("M110")]

    def temperature(self, heater: str = "T") -> float:
        """Current temperature of a heater, degC."""
        with self._cv:
            return self._temps[heater].current

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> PrinterEmulator:
        """Serve the pty and start the firmware and motion threads."""
        super().start()
        if not self._threads:
            self._stop_threads = False
            for target, name in ((self._firmware_loop, "fw"), (self._motion_loop, "motion")):
                thread = threading.Thread(target=target, name=f"printer-{name}", daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop the threads and the pty."""
        with self._cv:
            self._stop_threads = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads = []
        super().stop()

    def reset(self) -> None:
        """Power cycle the controller: buffers, numbering and position restart."""
        with self._cv:
            self._abort += 1
            self._power_on()
            self._outbox.append(f"start\n{FIRMWARE}\n")
            self._cv.notify_all()
        self._flush()

    # -- faults ----------------------------------------------------------------------------------
    def corrupt_lines(self, rate: float = 0.0, next_n: int = 0) -> None:
        """Flip one byte in a fraction ``rate`` of received lines, and in the next ``next_n``."""
        with self._cv:
            self._corrupt_rate, self._corrupt_next = float(rate), int(next_n)

    def lose_oks(self, rate: float = 0.0, next_n: int = 0) -> None:
        """Drop a fraction ``rate`` of ``ok`` replies, and the next ``next_n`` ones."""
        with self._cv:
            self._lose_rate, self._lose_next = float(rate), int(next_n)

    def disconnect_for(self, seconds: float) -> threading.Thread:
        """The port vanishes now and comes back after ``seconds``; the firmware runs on."""
        self.vanish()

        def back() -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not self._stop_threads:
                time.sleep(0.01)
            if not self._stop_threads:
                self.reappear()

        thread = threading.Thread(target=back, name="printer-outage", daemon=True)
        thread.start()
        return thread

    def over_temperature(self, heater: str = "T") -> None:
        """The heater runs away past MAXTEMP: the firmware halts."""
        with self._cv:
            self._temps[heater] = Temperature(self.max_temp + 15.0, self._temps[heater].target)
        heater_id = "0" if heater == "T" else "bed"
        self._kill(f"MAXTEMP triggered, system stopped! Heater_ID: {heater_id}")

    def _kill(self, reason: str) -> None:
        with self._cv:
            if self.halted:
                return
            self.halted = True
            self.halt_reason = reason
            self.kills += 1
            self.queued_at_kill = len(self._queue) + len(self._planner)
            self.executing_at_kill = self._planner[0].number if self._planner else None
            self.executed_at_kill = len(self.executed)
            self._queue.clear()
            self._planner.clear()
            self._rx.clear()
            self._partial = b""
            self._laser_on = False
            self._abort += 1
            if reason != "M112":
                self._outbox.append(f"Error:{reason}\n")
            self._outbox.append(f"Error:{MSG_HALTED}\n")
            self._cv.notify_all()
        self._flush()

    def _flush(self) -> None:
        """Write the firmware's output produced so far, in order."""
        with self._tx:
            with self._cv:
                data = "".join(self._outbox)
                self._outbox.clear()
            if data:
                self.write(data.encode())

    # -- serial input (reader thread) ------------------------------------------------------------
    def on_bytes(self, data: bytes, now: float) -> None:
        """Act on emergency commands at once; keep what fits in the receive ring, split into
        lines for the firmware."""
        kill = False
        with self._cv:
            if self.halted:
                return
            data = data.replace(b"\r", b"\n")
            *seen, self._urgent_partial = (self._urgent_partial + data).split(b"\n")
            for line in seen:
                urgent = emergency_command(line)
                if urgent == "M112":
                    kill = True
                    break
                if urgent == "M410":
                    self._quick_stop()
            if not kill:
                if self.rx_buffer:
                    room = max(0, self.rx_buffer - 1 - self._rx_bytes())
                    if len(data) > room:
                        self.bytes_dropped += len(data) - room
                        data = data[:room]
                *lines, partial = (self._partial + data).split(b"\n")
                self._partial = partial[:LINE_CHARS]
                self._rx.extend(line[:LINE_CHARS] for line in lines if line.strip())
            self._cv.notify_all()
        if kill:
            self._kill("M112")

    def _rx_bytes(self) -> int:
        """Bytes waiting in the receive ring (lock held)."""
        return len(self._partial) + sum(len(line) + 1 for line in self._rx)

    def _quick_stop(self) -> None:
        self._planner.clear()
        self._abort += 1

    # -- firmware (command processing) -----------------------------------------------------------
    def _firmware_loop(self) -> None:
        busy_since: float | None = None
        last_busy = 0.0
        while True:
            out: list[str] = []
            with self._cv:
                if self._stop_threads:
                    return
                now = time.monotonic()
                if self._auto_report and now >= self._next_report and not self.halted:
                    self._next_report = now + self._auto_report
                    out.append(" " + format_temperatures(self._temps) + "\n")
                waiting = False
                if not self.halted:
                    while self._rx and len(self._queue) < self.buffer_size:
                        self._receive(self._rx.popleft(), out)
                    if self._queue:
                        if self._process(out):
                            self._queue.popleft()
                            busy_since = None
                        else:
                            waiting = True
                if waiting:
                    if busy_since is None:
                        busy_since, last_busy = now, now
                    elif now - last_busy >= self.busy_interval:
                        last_busy = now
                        out.append(f"echo:{MSG_BUSY_PROCESSING}\n")
                self._outbox.extend(out)  # before any wait: a kill meanwhile comes after it
                idle = not out and not (self._rx and len(self._queue) < self.buffer_size)
                if idle or (waiting and not out):
                    self._cv.wait(0.05)
            if out:
                self._flush()
                if waiting:
                    with self._cv:
                        self._cv.wait(0.05)

    def _ok(self, out: list[str], number: int | None, extra: str = "") -> None:
        if self._lose_next > 0 or (self._lose_rate and self._rng.random() < self._lose_rate):
            self._lose_next = max(0, self._lose_next - 1)
            self.oks_lost += 1
            return
        if self.advanced_ok:
            # the command being acknowledged leaves the buffer with this ok
            out.append(format_ok(number, self.planner_size - len(self._planner),
                                 self.buffer_size - len(self._queue) + 1, extra))
        else:
            out.append(format_ok(extra=extra))

    def _corrupt(self, raw: bytes) -> bytes:
        if not raw:
            return raw
        i = self._rng.randrange(len(raw))
        choices = [c for c in b"0123456789GXYZEMN *.-" if c != raw[i]]
        self.lines_corrupted += 1
        return raw[:i] + bytes((self._rng.choice(choices),)) + raw[i + 1:]

    def _receive(self, raw: bytes, out: list[str]) -> None:
        """Marlin's get_serial_commands for one line (lock held)."""
        self.lines_received += 1
        if self._corrupt_next > 0 or (self._corrupt_rate
                                      and self._rng.random() < self._corrupt_rate):
            self._corrupt_next = max(0, self._corrupt_next - 1)
            raw = self._corrupt(raw)
        try:
            framed = parse_framed(raw)
            new_last, error = check_line(framed, self.last_line)
        except MarlinProtocolError:
            framed, new_last = None, None
            error = f"checksum mismatch, Last Line: {self.last_line}"
        if error is not None or framed is None or new_last is None:
            self.lines_rejected += 1
            out.append(f"Error:{error}\nResend: {self.last_line + 1}\n")
            self._ok(out, None)
            self._rx.clear()  # Marlin flushes the serial buffer with a resend request,
            self._partial = b""  # the line it was assembling included
            return
        self.last_line = new_last
        if not framed.command:
            return
        try:
            command = parse_command(framed.command, firmware=True)
        except GcodeError:
            command = None
        self._queue.append((framed.number, command, framed.command))

    def _process(self, out: list[str]) -> bool:
        """Process the command at the head of the buffer; False while it has to wait."""
        number, command, text = self._queue[0]
        if command is None:
            out.append(f'echo:Unknown command: "{text}"\n')
            self._ok(out, number)
            return True
        code = command.code
        if code == "M400" and self._planner:
            return False
        if len(self._planner) >= self.planner_size:
            return False
        block = Block(number, text)
        extra = ""
        if code in MOTION_CODES or code == "G28":
            self._plan_move(command, block)
        elif code == "G4":
            block.duration = (command.get("P") or 0.0) / 1000.0 + (command.get("S") or 0.0)
        elif code == "G90":
            self._relative = False
        elif code == "G91":
            self._relative = True
        elif code == "M82":
            self._relative_e = False
        elif code == "M83":
            self._relative_e = True
        elif code == "G92":
            for k, axis in enumerate("XYZE"):
                value = command.get(axis)
                if value is not None:
                    self._pos[k] = value
        elif code in ("M3", "M4"):
            power = command.get("S")
            if power is not None:
                self._laser_power = power
            self._laser_on = self._laser_power > 0
        elif code == "M5":
            self._laser_on = False
        elif code in ("M104", "M109", "M140", "M190"):
            heater = "T" if code in ("M104", "M109") else "B"
            target = command.get("S") or 0.0
            reached = code in ("M109", "M190")
            current = target if reached else self._temps[heater].current
            self._temps[heater] = Temperature(current, target)
        elif code == "M105":
            extra = format_temperatures(self._temps, {"T": 0, "B": 0})
        elif code == "M114":
            x, y, z, e = self._pos
            out.append(format_position(x, y, z, e))
        elif code == "M155":
            self._auto_report = command.get("S") or 0.0
            self._next_report = time.monotonic() + self._auto_report
        elif code == "M220":
            self._feed_scale = (command.get("S") or 100.0) / 100.0
        elif code in ("M117", "M118"):
            if code == "M118":
                out.append(f"{command.text}\n")
        self._planner.append(block)
        self._cv.notify_all()
        self._ok(out, number, extra)
        return True

    def _plan_move(self, command: Command, block: Block) -> None:
        start = tuple(self._pos)
        target = list(self._pos)
        if command.code == "G28":
            homed = [a for a in "XYZ" if command.has(a)] or list("XYZ")
            for k, axis in enumerate("XYZ"):
                if axis in homed:
                    target[k] = 0.0
        else:
            for k, axis in enumerate("XYZ"):
                value = command.get(axis)
                if value is not None:
                    target[k] = self._pos[k] + value if self._relative else value
            e = command.get("E")
            if e is not None:
                target[3] = self._pos[3] + e if (self._relative or self._relative_e) else e
            feed = command.get("F")
            if feed is not None:
                self._feed = feed
        dist = math.dist(start[:3], target[:3]) or abs(target[3] - start[3])
        feed = self._feed * self._feed_scale
        block.duration = dist / (feed / 60.0) if feed > 0 else 0.0
        block.start, block.target = start, tuple(target)
        moved_xy = start[0] != target[0] or start[1] != target[1]
        if command.code in ("G1", "G2", "G3") and moved_xy:
            block.deposit = target[3] > start[3] or self._laser_on
        self._pos = target

    # -- motion ----------------------------------------------------------------------------------
    def _motion_loop(self) -> None:
        while True:
            with self._cv:
                while not self._planner and not self._stop_threads:
                    self._cv.wait(0.1)
                if self._stop_threads:
                    return
                block = self._planner[0]
                abort = self._abort
                deadline = time.monotonic() + block.duration / self.speedup
                while (self._abort == abort and not self._stop_threads
                       and (remaining := deadline - time.monotonic()) > 0):
                    self._cv.wait(remaining)
                if self._abort != abort or self._stop_threads:
                    continue  # cut short: the planner was cleared
                self._apply(block)
                self._planner.popleft()
                self._cv.notify_all()
                callback = self.on_executed
            if callback is not None:
                callback(block.number, block.text)

    def _apply(self, block: Block) -> None:
        if block.target is not None:
            self.position = block.target
            if block.deposit and block.start is not None:
                self._stamp(block.start, block.target)
        self.executed.append((block.number, block.text))

    def _stamp(self, start: tuple[float, ...], target: tuple[float, ...]) -> None:
        g = self.grid
        p0 = np.array(start[:2]) / 1000.0
        p1 = np.array(target[:2]) / 1000.0
        z = target[2] / 1000.0
        half = self.bead_width / 2
        lo = np.minimum(p0, p1) - half
        hi = np.maximum(p0, p1) + half
        j0 = max(0, int(math.floor((lo[0] - g.x0) / g.cell)))
        j1 = min(g.nx, int(math.ceil((hi[0] - g.x0) / g.cell)))
        i0 = max(0, int(math.floor((lo[1] - g.y0) / g.cell)))
        i1 = min(g.ny, int(math.ceil((hi[1] - g.y0) / g.cell)))
        if j0 >= j1 or i0 >= i1:
            return
        xs = g.x0 + (np.arange(j0, j1) + 0.5) * g.cell
        ys = g.y0 + (np.arange(i0, i1) + 0.5) * g.cell
        px, py = np.meshgrid(xs, ys)
        d = p1 - p0
        length2 = float(d @ d)
        if length2 > 0:
            t = np.clip(((px - p0[0]) * d[0] + (py - p0[1]) * d[1]) / length2, 0.0, 1.0)
        else:
            t = np.zeros_like(px)
        dist2 = (px - p0[0] - t * d[0]) ** 2 + (py - p0[1] - t * d[1]) ** 2
        region = self._heights[i0:i1, j0:j1]
        np.maximum(region, np.where(dist2 <= half * half, z, 0.0), out=region)
        self.deposited_mm += math.sqrt(length2) * 1000.0


def main(argv: list[str] | None = None) -> int:
    """Serve an emulated Marlin regolith printer until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link", required=True, help="symlink path to publish the pty under")
    parser.add_argument("--baud", type=int, default=115200,
                        help="emulated baud rate for wire-time pacing (0: no pacing)")
    parser.add_argument("--printer", default="regolith_paste_gantry",
                        help="printer config: a name in config/printers or a YAML path")
    parser.add_argument("--speedup", type=float, default=1.0,
                        help="moves run this many times faster than their feed rate")
    parser.add_argument("--buffer-size", type=int, default=4, help="Marlin's BUFSIZE")
    parser.add_argument("--rx-buffer", type=int, default=128,
                        help="Marlin's RX_BUFFER_SIZE in bytes (0: unbounded)")
    parser.add_argument("--plain-ok", action="store_true", help="ok without ADVANCED_OK fields")
    args = parser.parse_args(argv)
    if args.baud < 0:
        parser.error("--baud must be >= 0")
    if args.speedup <= 0:
        parser.error("--speedup must be > 0")
    path = Path(args.printer)
    if not path.is_file():
        path = config_path("printers", f"{args.printer}.yaml")
    try:
        printer = parse_printer_yaml(path.read_text())
    except (OSError, ValueError) as exc:
        parser.error(f"--printer {args.printer}: {exc}")
    device = PrinterEmulator(args.link, args.baud or None, grid=HeightGrid.for_printer(printer),
                             bead_width=printer.bead_width, speedup=args.speedup,
                             buffer_size=max(1, args.buffer_size),
                             rx_buffer=max(0, args.rx_buffer),
                             advanced_ok=not args.plain_ok)
    return serve_until_signalled(device)


if __name__ == "__main__":
    sys.exit(main())
