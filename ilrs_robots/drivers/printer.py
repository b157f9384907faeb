"""Host side of a Marlin-controlled printer: streams a G-code job over a serial port.

No maintained Python library speaks to Marlin as a host without a whole application around it
(Printrun pulls wxPython, OctoPrint is a server): this host is ours, on pyserial and
``protocols/marlin.py``; the firmware emulator (``sim/devices/printer_emulator.py``) checks it.

How a job streams (:meth:`PrinterHost.print_job`):

* job line ``i`` (0-based) is sent as ``N<i+1> <command>*<checksum>`` after ``M110 N0``, so the
  line numbers are the job's own and the job itself is the history that resends come from;
* at most ``window`` lines, and ``rx_buffer - 1`` bytes, are in flight (sent, not acknowledged:
  Marlin's receive ring holds RX_BUFFER_SIZE bytes, 128 by default, and drops what comes
  while it is full; one line always may go); an ``ok N<n>``
  (ADVANCED_OK) acknowledges every line up to ``n``, a plain ``ok`` the oldest one;
* ``Resend: <n>`` means the firmware accepted everything up to ``n - 1``: sending resumes at
  ``n`` (the ``ok`` that follows a resend request acknowledges nothing). Marlin flushes its
  receive ring with the request, but the lines sent after ``n`` may still be on their way and
  each is refused with the same request: line ``n`` goes alone until it is taken, and those
  repeated requests are not answered with more copies (stale lines and copies together would
  overflow the ring, and an overflow splices two lines into one that the 7-bit checksum
  passes one time in 128); a copy lost in a flush is found by the lost-``ok`` probe;
* ``busy:`` keep-alives hold the timeout off; when nothing arrives for ``ok_timeout`` with
  lines in flight (a lost ``ok``), the host does not resend: it sends a probe line numbered
  ``N0``, which the firmware refuses with ``Last Line: <n>`` and ``Resend: <n + 1>`` after
  everything sent before it, which tells exactly what was accepted; a line accepted once is
  never sent again, and the firmware refuses any line whose number is not the next;
* :meth:`emergency_stop` writes ``M112`` at once, ahead of every queued line (Marlin acts on it
  as the bytes arrive); :meth:`pause` stops sending (the lines in flight finish),
  :meth:`resume` goes on, :meth:`cancel` ends the job;
* a port that is not there yet when a job starts (a controller still booting) is waited for,
  with the same backoff and ``reconnect_timeout`` (:meth:`PrinterHost.open_waiting`);
* when the port vanishes the host reopens it with exponential backoff and probes the
  firmware's last line number, resuming right after it;
* a journal (``journal_dir``) keeps the last acknowledged line of the job, written atomically
  (temporary file, then rename): a host started again on the same job asks the firmware for
  its last line and resumes after it (or, when the controller restarted and lost its
  numbering, after the journal's line: it first replays the job's settings and puts the
  nozzle back where that line left it (``core/construction/resume.py``), then renumbers with
  ``M110``).

Accepted means executed: Marlin executes every line it accepted unless it is reset or halted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import serial

from ilrs_robots.core.construction.resume import resume_preamble
from ilrs_robots.drivers.backoff import Backoff
from ilrs_robots.drivers.serial_port import LinkLost, PortBusy, open_exclusive
from ilrs_robots.files import write_atomically
from ilrs_robots.protocols.marlin import (
    MarlinProtocolError,
    Reply,
    ReplyKind,
    Temperature,
    frame,
    parse_reply,
    reset_numbering,
)

PROBE = frame(0, "M105")  # no firmware expects line 0 next: answered with its last line


class ErrorCode:
    """Result codes of a job (the PrintStructure action's ``error_code``)."""

    NONE = 0
    CANCELLED = 1
    EMERGENCY_STOP = 2
    FIRMWARE_HALTED = 3
    LINK_LOST = 4
    NO_REPLY = 5
    CONTROLLER_RESTARTED = 6
    PORT_BUSY = 7
    BAD_JOB = 8


class PrintError(RuntimeError):
    """A job that could not complete; ``code`` is an :class:`ErrorCode`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class PrintJob:
    """The commands to stream, with what progress reports need per command (the tables
    come from ``core/construction/gcode.job_tables``; empty ones are allowed)."""

    commands: list[str]
    layers: list[int] = field(default_factory=list)  # layer index of each command
    time_s: list[float] = field(default_factory=list)  # cumulative estimated time
    mass_kg: list[float] = field(default_factory=list)  # cumulative estimated material
    name: str = ""

    @property
    def job_id(self) -> str:
        """A digest of the commands: the same job has the same id."""
        digest = hashlib.sha256()
        for command in self.commands:
            digest.update(command.encode("ascii", errors="replace") + b"\n")
        return digest.hexdigest()[:32]

    @property
    def layers_total(self) -> int:
        """Number of layers."""
        return (max(self.layers) + 1) if self.layers else 1


@dataclass(frozen=True)
class Progress:
    """How far a job is: what the action's feedback carries."""

    lines_acked: int
    lines_total: int
    lines_sent: int
    layer: int
    layers_total: int
    percent: float
    elapsed_s: float
    remaining_s: float
    material_kg: float
    paused: bool


@dataclass(frozen=True)
class JobResult:
    """How a job ended."""

    error_code: int
    error_msg: str
    lines_total: int
    lines_acked: int
    lines_sent: int  # frames sent, resends included
    resends: int  # lines sent again on the firmware's request
    probes: int  # lost-ok and reconnect probes
    reconnects: int
    resumed_from: int  # lines already acknowledged when this run started


class Journal:
    """The last acknowledged line of the job in ``directory``, written atomically."""

    FILE = "print_job.json"

    def __init__(self, directory: str | os.PathLike[str], fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILE
        self.fsync = fsync
        self._last: tuple | None = None

    def load(self) -> dict | None:
        """The journal's content, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, job_id: str, name: str, acked: int, total: int, state: str) -> None:
        """Record the job's state (skipped when nothing changed)."""
        key = (job_id, acked, total, state)
        if key == self._last:
            return
        text = json.dumps({"job_id": job_id, "name": name, "acked": acked, "total": total,
                           "state": state, "time": time.time()})
        write_atomically(self.path, text, fsync=self.fsync)
        self._last = key


class PrinterHost:
    """One Marlin printer on a serial port. :meth:`print_job` blocks; the control methods
    (:meth:`pause`, :meth:`resume`, :meth:`cancel`, :meth:`emergency_stop`) may be called from
    any other thread."""

    def __init__(self, port: str, baud: int = 115200, *, window: int = 4, rx_buffer: int = 128,
                 ok_timeout: float = 4.0, probe_timeout: float | None = None,
                 reconnect_timeout: float = 30.0, journal_dir: str | os.PathLike[str] | None
                 = None, backoff_min: float = 0.05, backoff_max: float = 2.0,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_message: Callable[[Reply], None] | None = None,
                 progress_interval: float = 0.2) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.port_name = port
        self.baud = baud
        self.window = window
        self.rx_buffer = rx_buffer  # the firmware's receive ring (bytes); 0: not limited
        self.ok_timeout = ok_timeout
        self.probe_timeout = probe_timeout if probe_timeout is not None else 2 * ok_timeout
        self.reconnect_timeout = reconnect_timeout
        self.journal = Journal(journal_dir) if journal_dir is not None else None
        self.on_progress = on_progress
        self.on_message = on_message
        self.progress_interval = progress_interval
        self.temperatures: dict[str, Temperature] = {}
        self.position: dict[str, float] = {}
        self.messages: list[str] = []  # echo: and Error: text of the firmware, last 100
        self._serial: serial.Serial | None = None
        self._write_lock = threading.RLock()  # a job line is checked and written under it
        self._backoff = Backoff(backoff_min, backoff_max)
        self._paused = threading.Event()
        self._cancelled = threading.Event()
        self._estop = threading.Event()
        self._rx = b""
        self._advanced = False
        self._reset_seen = False

    # -- connection ------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """True while the serial port is open."""
        return self._serial is not None

    def open(self) -> None:
        """Open the port exclusively. Raises PortBusy, or PrintError(LINK_LOST)."""
        self.close()
        try:
            port = open_exclusive(self.port_name, self.baud, timeout=0.01, write_timeout=2.0)
        except PortBusy:
            raise
        except LinkLost as exc:
            raise PrintError(ErrorCode.LINK_LOST, str(exc)) from exc
        port.reset_input_buffer()
        self._serial = port
        self._rx = b""

    def open_waiting(self) -> None:
        """:meth:`open`, waiting up to ``reconnect_timeout`` (with backoff) for a port that
        does not exist yet or does not open (a controller still booting, a cable being
        plugged in), as for one that vanished mid-job. PortBusy is raised at once; a cancel
        or an emergency stop ends the wait (the port stays closed)."""
        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            try:
                self.open()
                self._backoff.succeeded()
                return
            except PrintError as exc:
                if time.monotonic() >= deadline:
                    raise PrintError(exc.code, f"{exc} (waited {self.reconnect_timeout:g} s)"
                                     ) from exc
                self._backoff.failed()
            while not self._backoff.ready():
                if self._cancelled.is_set() or self._estop.is_set():
                    return
                time.sleep(0.01)

    def close(self) -> None:
        """Close the port (idempotent)."""
        port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def __enter__(self) -> PrinterHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            port = self._serial
            if port is None:
                raise OSError("port closed")
            port.write(data)

    def _read(self) -> list[Reply]:
        port = self._serial
        if port is None:
            raise OSError("port closed")
        data = port.read(max(1, port.in_waiting))
        if not data:
            if not os.path.exists(self.port_name):
                raise OSError(f"serial port {self.port_name} vanished")
            return []
        buf = self._rx + data
        *lines, self._rx = buf.split(b"\n")
        replies = []
        for raw in lines:
            if raw.strip():
                reply = parse_reply(raw)
                replies.append(reply)
                self._note(reply)
        return replies

    def _note(self, reply: Reply) -> None:
        if reply.temperatures:
            self.temperatures.update(reply.temperatures)
        if reply.kind is ReplyKind.POSITION:
            self.position = dict(reply.position)
        if reply.kind in (ReplyKind.ECHO, ReplyKind.ERROR):
            self.messages.append(reply.text)
            del self.messages[:-100]
        if reply.kind is ReplyKind.START:
            self._reset_seen = True
        if self.on_message is not None:
            self.on_message(reply)

    # -- control (any thread) --------------------------------------------------------------
    def pause(self) -> None:
        """Stop sending job lines; those in flight finish.

        Returns once no job line is being written (waiting at most 1 s for a blocked port):
        from then on nothing more is sent until :meth:`resume`.
        """
        self._paused.set()
        if self._write_lock.acquire(timeout=1.0):
            self._write_lock.release()

    def resume(self) -> None:
        """Go on sending after a pause."""
        self._paused.clear()

    @property
    def paused(self) -> bool:
        """True while paused."""
        return self._paused.is_set()

    def cancel(self) -> None:
        """End the job: nothing more is sent; :meth:`print_job` returns CANCELLED."""
        self._cancelled.set()

    def emergency_stop(self) -> None:
        """Send ``M112`` now, ahead of every queued line: the firmware halts."""
        self._estop.set()
        with contextlib.suppress(OSError, serial.SerialException):
            self._write(b"M112\n")

    # -- commands outside a job --------------------------------------------------------------
    def command(self, text: str, timeout: float = 5.0) -> list[Reply]:
        """Send one unnumbered command while no job runs; the replies up to its ``ok``."""
        if self._serial is None:
            self.open()
        self._write(text.strip().encode("ascii") + b"\n")
        replies: list[Reply] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for reply in self._read():
                replies.append(reply)
                if reply.kind is ReplyKind.OK:
                    return replies
                if reply.fatal:
                    raise PrintError(ErrorCode.FIRMWARE_HALTED, f"printer halted: {reply.text}")
                if reply.kind is ReplyKind.BUSY:
                    deadline = time.monotonic() + timeout
        raise PrintError(ErrorCode.NO_REPLY, f"no ok for {text!r} within {timeout:g} s")

    # -- the job -----------------------------------------------------------------------------
    def print_job(self, job: PrintJob) -> JobResult:
        """Stream a job to the end; returns its result (error_code 0 when every line was
        acknowledged). Raises PortBusy when another process holds the port."""
        self._cancelled.clear()
        self._estop.clear()
        run = _JobRun(self, job)
        try:
            run.start()
            run.stream()
        except PrintError as exc:
            run.finish("failed")
            return run.result(exc.code, str(exc))
        if not run.done:
            run.settle()
        run.finish("done" if run.done else "cancelled")
        if not run.done:
            return run.result(ErrorCode.CANCELLED, "cancelled")
        return run.result(ErrorCode.NONE, "")


class _JobRun:
    """The state of one run of a job on a host (numbers are the firmware's line numbers)."""

    def __init__(self, host: PrinterHost, job: PrintJob) -> None:
        self.host = host
        self.job = job
        self.total = len(job.commands)
        self.job_id = job.job_id
        self.acked = 0  # highest line number known accepted
        self.next = 1  # next line number to send
        self.skip_oks = 0
        self.sent = 0
        self.resends = 0
        self.probes = 0
        self.reconnects = 0
        self.resumed_from = 0
        self.replayed = 0  # settings lines replayed after a controller restart
        self.probing_since: float | None = None
        self.resync: int | None = None  # the line resent on request, alone in flight till taken
        self.last_heard = time.monotonic()
        self.started = time.monotonic()
        self.last_progress = 0.0
        self.high_water = 0  # highest line number ever sent
        self.done = False

    # -- bookkeeping -----------------------------------------------------------------------
    def result(self, code: int, message: str) -> JobResult:
        return JobResult(code, message, self.total, self.acked, self.sent, self.resends,
                         self.probes, self.reconnects, self.resumed_from)

    def finish(self, state: str) -> None:
        self.journal(state, force=True)
        self.report(force=True)

    def journal(self, state: str = "printing", force: bool = False) -> None:
        if self.host.journal is not None:
            self.host.journal.save(self.job_id, self.job.name, self.acked, self.total, state)

    def report(self, force: bool = False) -> None:
        host = self.host
        now = time.monotonic()
        if host.on_progress is None or (not force
                                        and now - self.last_progress < host.progress_interval):
            return
        self.last_progress = now
        i = min(self.acked, self.total) - 1
        job = self.job
        layer = job.layers[i] if 0 <= i < len(job.layers) else 0
        total_t = job.time_s[-1] if job.time_s else 0.0
        done_t = job.time_s[i] if 0 <= i < len(job.time_s) else 0.0
        mass = job.mass_kg[i] if 0 <= i < len(job.mass_kg) else 0.0
        percent = 100.0 * (done_t / total_t if total_t > 0 else self.acked / max(1, self.total))
        host.on_progress(Progress(self.acked, self.total, self.sent, layer, job.layers_total,
                                  percent, now - self.started, max(0.0, total_t - done_t),
                                  mass, host.paused))

    # -- start and resume ------------------------------------------------------------------
    def start(self) -> None:
        host = self.host
        if self.total == 0:
            self.done = True
            return
        if host._serial is None:
            host.open_waiting()
            if host._serial is None:  # cancelled or stopped while waiting
                return
        host._reset_seen = False
        state = host.journal.load() if host.journal is not None else None
        if (state and state.get("job_id") == self.job_id and state.get("state") != "done"
                and isinstance(state.get("acked"), int) and 0 < state["acked"] <= self.total):
            self.resume(int(state["acked"]))
        else:
            self.number_from(0)
        self.journal()

    def resume(self, journaled: int) -> None:
        """Continue a journaled job: the firmware's last line if it kept the numbering."""
        last = self.query_last_line()
        if not journaled <= last <= self.total:  # the controller restarted: renumber
            self.replay_settings(journaled)
            self.number_from(journaled)
            last = journaled
        self.acked = last
        self.next = last + 1
        self.resumed_from = last
        self.done = last >= self.total

    def replay_settings(self, upto: int) -> None:
        """A controller that restarted forgot the job's settings and where the nozzle is:
        send `core/construction/resume.resume_preamble` first, numbered and checked like job
        lines (``M110 N0`` and up), one at a time."""
        try:
            lines = resume_preamble(self.job.commands, upto)
        except ValueError as exc:
            raise PrintError(ErrorCode.BAD_JOB, str(exc)) from exc
        if not lines:
            return
        self.number_from(0)
        n, tries = 1, 0
        while n <= len(lines):
            tries += 1
            if tries > 5 * len(lines) + 10:
                raise PrintError(ErrorCode.NO_REPLY, f"the printer on {self.host.port_name} "
                                 f"kept refusing the settings replayed after its restart")
            self.send_raw(frame(n, lines[n - 1]))
            n = self._accepted_after(n)
        self.replayed = len(lines)

    def _accepted_after(self, n: int) -> int:
        """Wait for the firmware's word on line ``n``: the next line to send."""
        deadline = time.monotonic() + self.host.probe_timeout
        resend: int | None = None
        while time.monotonic() < deadline:
            for reply in self.host._read():
                self.check_fatal(reply)
                if reply.kind is ReplyKind.RESEND and reply.number is not None:
                    resend = reply.number
                elif reply.kind is ReplyKind.OK:
                    return resend if resend is not None else n + 1
                elif reply.kind is ReplyKind.BUSY:
                    deadline = time.monotonic() + self.host.probe_timeout
        if resend is not None:
            return resend  # the ok after the resend request was lost
        return self.query_last_line() + 1  # a lost ok: ask what was taken

    def number_from(self, number: int) -> None:
        """``M110 N<number>``: the next line the firmware takes is ``number + 1``."""
        self.send_raw(reset_numbering(number))
        deadline = time.monotonic() + self.host.probe_timeout
        while time.monotonic() < deadline:
            for reply in self.host._read():
                self.check_fatal(reply)
                if reply.kind is ReplyKind.OK:
                    self.acked, self.next = number, number + 1
                    return
                if reply.kind is ReplyKind.BUSY:
                    deadline = time.monotonic() + self.host.probe_timeout
        raise PrintError(ErrorCode.NO_REPLY, f"the printer on {self.host.port_name} did not "
                         f"acknowledge M110 N{number} within {self.host.probe_timeout:g} s")

    def query_last_line(self) -> int:
        """The firmware's last accepted line number (probe), waiting out what is in flight."""
        self.send_raw(PROBE)
        self.probes += 1
        deadline = time.monotonic() + self.host.probe_timeout
        last: int | None = None
        while time.monotonic() < deadline:
            for reply in self.host._read():
                self.check_fatal(reply)
                if reply.kind is ReplyKind.RESEND and reply.number is not None:
                    last = reply.number - 1  # a later resend request supersedes it
                elif reply.kind is ReplyKind.OK and last is not None:
                    return last  # the ok that follows the probe's resend request
                elif reply.kind is ReplyKind.BUSY:
                    deadline = time.monotonic() + self.host.probe_timeout
        if last is not None:
            return last  # its ok was lost
        raise PrintError(ErrorCode.NO_REPLY, f"the printer on {self.host.port_name} did not "
                         f"answer within {self.host.probe_timeout:g} s")

    # -- streaming -------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.host._write(data)

    def check_fatal(self, reply: Reply) -> None:
        if reply.fatal or (reply.kind is ReplyKind.ERROR and "halted" in reply.text.lower()):
            if self.host._estop.is_set():
                raise PrintError(ErrorCode.EMERGENCY_STOP,
                                 f"emergency stop at line {self.acked} of {self.total}")
            raise PrintError(ErrorCode.FIRMWARE_HALTED,
                             f"printer halted at line {self.acked} of {self.total}: "
                             f"{reply.text}")
        if self.host._reset_seen:
            raise PrintError(ErrorCode.CONTROLLER_RESTARTED,
                             f"the controller restarted mid-job after line {self.acked} of "
                             f"{self.total}; the queued lines are lost (print again to resume "
                             f"from the journal)")

    def stream(self) -> None:
        host = self.host
        while not self.done:
            if host._estop.is_set():
                self.await_halt()
            if host._cancelled.is_set():
                return
            if host._serial is None:
                self.reconnect()
                continue
            try:
                self.send_window()
                replies = host._read()
            except (OSError, serial.SerialException):
                host.close()
                continue
            for reply in replies:
                self.handle(reply)
            self.check_timeouts()
            if self.acked >= self.total and self.probing_since is None:
                if host._advanced:
                    self.done = True
                else:
                    self.probe()  # plain oks: confirm with the firmware's own count
            self.journal()
            self.report()

    def send_window(self) -> None:
        host = self.host
        if host._paused.is_set() or self.probing_since is not None:
            return
        if self.resync is not None and self.acked >= self.resync:
            self.resync = None
        window = 1 if self.resync is not None else host.window
        while self.next <= self.total and self.next - 1 - self.acked < window:
            n = self.next
            try:
                data = frame(n, self.job.commands[n - 1])
            except MarlinProtocolError as exc:
                raise PrintError(ErrorCode.BAD_JOB, f"job line {n}: {exc}") from exc
            if host.rx_buffer and n - 1 > self.acked \
                    and self.bytes_in_flight() + len(data) >= host.rx_buffer:
                return  # the firmware's receive ring could overflow
            with host._write_lock:  # pause(), cancel or estop: not one more line after it
                if host._paused.is_set() or host._estop.is_set() or host._cancelled.is_set():
                    return
                self.send_raw(data)
            self.sent += 1
            if n <= self.high_water:
                self.resends += 1
            self.high_water = max(self.high_water, n)
            self.next += 1
            if self.next - 1 - self.acked == 1:
                self.last_heard = time.monotonic()  # the timeout runs from the oldest line

    def bytes_in_flight(self) -> int:
        """Bytes of the lines sent and not yet acknowledged."""
        return sum(len(frame(k, self.job.commands[k - 1]))
                   for k in range(self.acked + 1, self.next))

    def handle(self, reply: Reply) -> None:
        self.check_fatal(reply)
        kind = reply.kind
        if kind in (ReplyKind.OK, ReplyKind.RESEND, ReplyKind.BUSY, ReplyKind.ERROR):
            self.last_heard = time.monotonic()
        if kind is ReplyKind.OK:
            if reply.number is not None or reply.planner_free is not None:
                self.host._advanced = True
            if reply.number is not None:
                if self.acked < reply.number < self.next:
                    self.acked = reply.number
            elif self.skip_oks > 0:
                self.skip_oks -= 1
            elif not self.host._advanced and self.acked < self.next - 1:
                self.acked += 1
        elif kind is ReplyKind.RESEND and reply.number is not None:
            n = reply.number
            if not 1 <= n <= self.total + 1:
                raise PrintError(ErrorCode.NO_REPLY, f"the printer asked for line {n}, not "
                                 f"in this job of {self.total} lines")
            self.skip_oks += 1  # the ok that follows the request acknowledges nothing
            if self.resync == n and self.next == n + 1 and self.probing_since is None:
                return  # a line sent before the resend was refused in its turn: the copy of
                # n may still be taken, and a second copy could overflow the receive ring
            self.acked = n - 1
            self.next = n
            self.resync = n
            self.probing_since = None
            if n == self.total + 1:
                self.done = True  # the firmware's own word: every line is accepted

    def settle(self) -> None:
        """After a cancel: learn which of the lines in flight the firmware took, so the
        journal holds exactly what was accepted."""
        if self.host._serial is None or self.next - 1 <= self.acked:
            return
        with contextlib.suppress(PrintError, OSError, serial.SerialException):
            last = self.query_last_line()
            if self.acked <= last <= self.total:
                self.acked = last

    def probe(self) -> None:
        self.send_raw(PROBE)
        self.probes += 1
        self.probing_since = time.monotonic()

    def check_timeouts(self) -> None:
        now = time.monotonic()
        if self.probing_since is not None:
            if now - max(self.probing_since, self.last_heard) > self.host.probe_timeout:
                self.host.close()  # nothing answers: treat the link as lost
            return
        in_flight = self.next - 1 - self.acked
        if in_flight > 0 and now - self.last_heard > self.host.ok_timeout:
            self.probe()

    def reconnect(self) -> None:
        host = self.host
        deadline = time.monotonic() + host.reconnect_timeout
        self.probing_since = None
        while time.monotonic() < deadline:
            if host._estop.is_set() or host._cancelled.is_set():
                return
            if host._backoff.ready():
                try:
                    host.open()
                    last = self.query_last_line()
                except PrintError as exc:
                    if exc.code != ErrorCode.LINK_LOST and host._serial is not None:
                        raise
                    host.close()
                    host._backoff.failed()
                    continue
                except (OSError, serial.SerialException):
                    host.close()
                    host._backoff.failed()
                    continue
                host._backoff.succeeded()
                self.reconnects += 1
                if not self.acked <= last <= self.total:
                    raise PrintError(ErrorCode.CONTROLLER_RESTARTED,
                                     f"after reconnecting, the controller's last line is {last}"
                                     f", not this job's (acknowledged {self.acked}); print again"
                                     f" to resume from the journal")
                self.acked, self.next = last, last + 1
                self.done = last >= self.total
                self.last_heard = time.monotonic()
                return
            time.sleep(0.01)
        raise PrintError(ErrorCode.LINK_LOST, f"serial port {host.port_name} lost for "
                         f"{host.reconnect_timeout:g} s at line {self.acked} of {self.total}")

    def await_halt(self) -> None:
        """After M112: read until the firmware confirms the halt (or briefly), then fail."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and self.host._serial is not None:
            try:
                for reply in self.host._read():
                    if reply.kind is ReplyKind.ERROR and "halted" in reply.text.lower():
                        deadline = 0.0
                        break
            except (OSError, serial.SerialException):
                break
        raise PrintError(ErrorCode.EMERGENCY_STOP,
                         f"emergency stop at line {self.acked} of {self.total}")


def stream_commands(port: str, commands: Sequence[str], **kwargs: object) -> JobResult:
    """Stream plain commands to a printer on ``port`` (a convenience for scripts)."""
    with PrinterHost(port, **kwargs) as host:  # type: ignore[arg-type]
        return host.print_job(PrintJob(list(commands)))
