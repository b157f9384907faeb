"""construction: the construction robot's printer as a ROS node (namespace `builder1`).

Serves `print_structure` (ilrs_interfaces/action/PrintStructure): the goal's `design` is a
design YAML (sliced here), a G-code file, or the name of a design in config/designs. The input
is read and checked whole before anything is sent (a malformed line is refused with
INVALID_DESIGN naming it, a structure that does not fit with OUT_OF_ENVELOPE). The job streams
through `drivers/printer.PrinterHost` in a worker thread; feedback comes from its progress.

* One job at a time: a goal that arrives while one runs is aborted at once with BUSY (a
  printer user expects a queue-less printer to refuse, not to drop the structure half built).
* `pause` / `resume` (std_srvs/Trigger); cancel ends the job (CANCELED).
* `estop` (std_msgs/Bool, latched, transient local): True sends M112 ahead of every queued
  line; the job ends with PRINTER_HALTED, and goals are refused while it stays latched.
* The job's progress is journaled in `journal_dir`: a node started again (after a crash, a
  SIGKILL, a power cut) and given the same goal resumes at the printer's last accepted line.
* Layer check: with `site_camera_topic` set and a design goal, an `M400` goes before each
  layer change (its `ok` comes once the layer's moves finished); the first site image after
  that is compared with the design's layers (`core/construction/jobs.layer_deviation`). When
  more than `deviation_threshold` of the structure's cells are off by more than a bead, the
  job pauses and /diagnostics says DEVIATION; `resume` goes on, cancel ends it with
  DEVIATION. The image is a top-down height map of the printer's envelope (sensor_msgs/Image,
  32FC1, metres above the site, row 0 at +y, column 0 at -x), as a depth camera over the
  gantry gives after reprojection; the simulator publishes one. Without a camera (or for a
  G-code goal, which has no design to compare with) layers are not checked, and
  /diagnostics says so.

Result `lines_sent`: the job's lines the printer has accepted (a resumed job counts those
accepted before the restart; resends are on /diagnostics).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from ilrs_interfaces.action import PrintStructure
from ilrs_robots.core.construction.jobs import (
    InputError,
    JobPlan,
    expected_layers,
    height_image_to_grid,
    layer_deviation,
    with_layer_waits,
)
from ilrs_robots.core.construction.slicer import HeightGrid
from ilrs_robots.drivers.print_files import find_input, load_plan, load_printer, print_job_of
from ilrs_robots.drivers.printer import ErrorCode, JobResult, PrinterHost, Progress
from ilrs_robots.drivers.serial_port import PortBusy
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.goal_requests import RESULT_TIMEOUT
from ilrs_robots.nodes.params import ParameterError, declare, run_node
from ilrs_robots.nodes.qos import LATCHED

R = PrintStructure.Result
BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 250000, 460800, 500000, 921600, 1000000)
CODES = {  # drivers/printer.ErrorCode -> PrintStructure result codes
    ErrorCode.NONE: R.NONE,
    ErrorCode.CANCELLED: R.CANCELED,
    ErrorCode.EMERGENCY_STOP: R.PRINTER_HALTED,
    ErrorCode.FIRMWARE_HALTED: R.PRINTER_HALTED,
    ErrorCode.LINK_LOST: R.PRINTER_LOST,
    ErrorCode.NO_REPLY: R.PRINTER_LOST,
    ErrorCode.CONTROLLER_RESTARTED: R.PRINTER_LOST,
    ErrorCode.PORT_BUSY: R.PRINTER_LOST,
    ErrorCode.BAD_JOB: R.INVALID_DESIGN,
}


def result_code(code: int) -> int:
    """The action's code for a driver ErrorCode (UNKNOWN for one it does not know)."""
    return CODES.get(code, R.UNKNOWN)


class _LayerCheck:
    """Compares site images with the design's layers as they finish (executor thread)."""

    def __init__(self, plan: JobPlan, done_at: list[int], cell: float) -> None:
        assert plan.design is not None
        printer = plan.printer
        self.grid = HeightGrid.for_printer(printer, cell)
        self.printer = printer
        self.done_at = done_at
        self._fields = expected_layers(plan.design, plan.layer_height, self.grid)
        self._cache: dict[int, np.ndarray] = {}
        self._computed = -1
        self.next = 0  # next layer to check
        self.pending_since: float | None = None

    def expected(self, layer: int) -> np.ndarray:
        """The design's height field after printed layer ``layer`` (forward only)."""
        layer = max(layer, 0)
        while self._computed < layer:
            field = next(self._fields, None)
            if field is None:
                break
            self._computed += 1
            self._cache[self._computed] = field.astype(np.float32)
        for k in [k for k in self._cache if k < self.next - 1]:
            del self._cache[k]
        return self._cache[min(layer, self._computed)]

    def judge(self, image: np.ndarray, layer: int, printing: int) -> tuple[float, str]:
        """(share of the structure's cells off, text) for an image taken after ``layer``
        finished while ``printing`` was under way."""
        done = self.expected(layer)
        upto = self.expected(max(layer, printing))
        observed = height_image_to_grid(image, done.shape)
        p = self.printer
        dev = layer_deviation(observed, done, upto, self.grid.cell, p.bead_width,
                              p.bead_height)
        return dev.fraction, (f"layer {layer + 1}: {dev.cells_out} of {dev.footprint} cells "
                              f"({100 * dev.fraction:.1f} %) off by more than a bead, worst "
                              f"{dev.worst_m * 1000:.0f} mm")


class ConstructionNode(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("construction")
        d = self
        self.port = declare(d, "port", "/dev/ttyACM0", "Serial port of the printer's Marlin "
                            "controller", bool, "a device path", read_only=True)
        baud = declare(d, "baud", 115200, "Baud rate of the controller", lambda b: b in BAUDS,
                       f"one of {BAUDS}", read_only=True)
        journal = declare(d, "journal_dir", "~/.ilrs/builder1/print_journal",
                          "Where the job's progress is kept (resume after a restart)", bool,
                          "a directory", read_only=True)
        self.printer_name = declare(d, "printer", "regolith_paste_gantry",
                                    "Printer config: a name in config/printers or a YAML path",
                                    bool, "non-empty", read_only=True)
        window = declare(d, "window", 4, "Lines in flight (sent, not acknowledged)",
                         range=(1, 32), read_only=True)
        rx_buffer = declare(d, "rx_buffer", 128, "The controller's receive buffer in bytes "
                            "(Marlin's RX_BUFFER_SIZE): no more is ever in flight; 0: no limit",
                            range=(0, 65536), read_only=True)
        ok_timeout = declare(d, "ok_timeout", 4.0, "s without an ok before probing the "
                             "controller for its last line", range=(0.05, 120.0),
                             read_only=True)
        reconnect = declare(d, "reconnect_timeout", 30.0, "s to wait for a vanished port to "
                            "come back before the job fails with PRINTER_LOST",
                            range=(0.5, 3600.0), read_only=True)
        self.camera_topic = declare(d, "site_camera_topic", "",
                                    "Height image of the site (32FC1, m) for the layer check;"
                                    " empty: no check", read_only=True)
        self.threshold = declare(d, "deviation_threshold", 0.05, "Pause when this share of "
                                 "the structure's cells is off by more than a bead",
                                 range=(0.0, 1.0))
        self.camera_timeout = declare(d, "camera_timeout", 10.0, "s to wait for a site image "
                                      "after a layer before skipping its check",
                                      range=(0.1, 600.0))
        self.check_cell = declare(d, "check_cell", 0.05, "Grid cell of the layer check (m)",
                                  range=(0.005, 1.0), read_only=True)
        try:
            self.printer = load_printer(self.printer_name)
        except InputError as exc:
            raise ParameterError("printer", f"is not usable: {exc}") from exc
        self.host = PrinterHost(self.port, baud, window=window, rx_buffer=rx_buffer,
                                ok_timeout=ok_timeout,
                                reconnect_timeout=reconnect,
                                journal_dir=Path(os.path.expanduser(journal)),
                                on_progress=self._on_progress, progress_interval=0.05)
        self._lock = threading.Lock()
        self._job_lock = threading.Lock()
        self._progress: Progress | None = None
        self._job = ""  # name of the job running
        self._active: bytes | None = None  # goal id of the job running
        self._last: JobResult | None = None
        self._last_text = "no job yet"
        self._deviation: str | None = None
        self._last_check = "no layer checked yet"
        self._estop = False
        self._image: tuple[float, np.ndarray] | None = None  # arrival, heights
        self._image_note = ""
        self._closing = False
        group = ReentrantCallbackGroup()
        self.action = ActionServer(self, PrintStructure, "print_structure", self._execute,
                                   goal_callback=lambda _g: GoalResponse.ACCEPT,
                                   cancel_callback=self._on_cancel, callback_group=group,
                                   result_timeout=RESULT_TIMEOUT)
        self.create_service(Trigger, "pause", self._on_pause, callback_group=group)
        self.create_service(Trigger, "resume", self._on_resume, callback_group=group)
        self.create_subscription(Bool, "estop", self._on_estop, LATCHED, callback_group=group)
        if self.camera_topic:
            self.create_subscription(Image, self.camera_topic, self._on_image, 1,
                                     callback_group=group)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0, self._diagnostics, clock=steady, callback_group=group)
        self.get_logger().info(
            f"printer {self.printer.name} ({self.printer.mode}) on {self.port} at {baud} baud;"
            f" journal {journal}; layer check "
            f"{'on ' + self.camera_topic if self.camera_topic else 'off (no site camera)'}")

    # -- parameters, topics, services -------------------------------------------------------
    def on_parameters_set(self, changed: dict) -> None:
        """Apply accepted live changes."""
        if "deviation_threshold" in changed:
            self.threshold = float(changed["deviation_threshold"])
        if "camera_timeout" in changed:
            self.camera_timeout = float(changed["camera_timeout"])

    def _on_progress(self, progress: Progress) -> None:
        with self._lock:
            self._progress = progress

    def _on_image(self, msg: Image) -> None:
        if msg.encoding != "32FC1":
            self._image_note = f"site image encoding {msg.encoding!r} ignored (32FC1 wanted)"
            return
        heights = np.frombuffer(bytes(msg.data), np.float32)
        if heights.size != msg.height * msg.width:
            self._image_note = "site image of the wrong size ignored"
            return
        self._image = (time.monotonic(), heights.reshape(msg.height, msg.width))

    def _on_estop(self, msg: Bool) -> None:
        self._estop = bool(msg.data)
        if self._estop:
            self.host.emergency_stop()
            self.get_logger().error("estop: M112 sent, the printer halts")
        else:
            self.get_logger().warning("estop released (the controller needs a reset)")

    def _on_pause(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        if not self._job_lock.locked():
            res.success, res.message = False, "no job is running"
            return res
        self.host.pause()
        p = self._progress
        res.success = True
        res.message = (f"paused {self._job}: the lines in flight finish" +
                       (f" (line {p.lines_acked} of {p.lines_total})" if p else ""))
        self.get_logger().info(res.message)
        return res

    def _on_resume(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        if not self._job_lock.locked():
            res.success, res.message = False, "no job is running"
            return res
        was = self._deviation
        self._deviation = None
        self.host.resume()
        res.success = True
        res.message = f"resumed {self._job}" + (f" despite the deviation ({was})" if was else "")
        self.get_logger().info(res.message)
        return res

    def _on_cancel(self, goal: ServerGoalHandle) -> CancelResponse:
        if self._active is not None and bytes(goal.goal_id.uuid) == self._active:
            self.host.cancel()
        return CancelResponse.ACCEPT

    # -- the job ------------------------------------------------------------------------------
    def _execute(self, goal: ServerGoalHandle) -> PrintStructure.Result:
        if not self._job_lock.acquire(blocking=False):
            return self._end(goal, R.BUSY, f"busy: printing {self._job}; cancel it first", 0)
        try:
            return self._run(goal)
        finally:
            with self._lock:
                self._active = None
                self._deviation = None
            self._job_lock.release()

    def _end(self, goal: ServerGoalHandle, code: int, text: str, lines: int
             ) -> PrintStructure.Result:
        result = R(error_code=code, error_msg=text, lines_sent=lines)
        if code == R.NONE:
            goal.succeed()
        elif goal.is_cancel_requested and code in (R.CANCELED, R.DEVIATION):
            goal.canceled()
        else:
            goal.abort()
        self._last_text = f"{code} {text}".strip()
        level = self.get_logger().info if code == R.NONE else self.get_logger().warning
        level(f"goal {goal.request.design!r}: {text or 'printed'} (code {code}, {lines} lines)")
        return result

    def _run(self, goal: ServerGoalHandle) -> PrintStructure.Result:
        request = goal.request
        if self._estop:
            return self._end(goal, R.PRINTER_HALTED, "estop is latched: release it first", 0)
        try:
            plan = load_plan(find_input(request.design), self.printer_name,
                             float(request.layer_height) or None)
        except InputError as exc:
            code = R.OUT_OF_ENVELOPE if exc.kind == "envelope" else R.INVALID_DESIGN
            return self._end(goal, code, f"refused, nothing sent: {exc}", 0)
        check: _LayerCheck | None = None
        if self.camera_topic and plan.design is not None:
            plan, done_at = with_layer_waits(plan)
            check = _LayerCheck(plan, done_at, self.check_cell)
        job = print_job_of(plan)
        with self._lock:
            self._job, self._progress = plan.name, None
            self._active = bytes(goal.goal_id.uuid)
            self._deviation = None
        self._last_check = ("layers checked against the site camera" if check else
                            "layers not checked: " + ("no site camera configured"
                                                      if not self.camera_topic else
                                                      "a G-code goal has no design"))
        self.host.resume()
        outcome: list[JobResult | BaseException] = []
        worker = threading.Thread(target=self._print, args=(job, outcome), daemon=True,
                                  name="print-job")
        worker.start()
        sent_feedback = None
        while worker.is_alive():
            worker.join(0.05)
            p = self._progress
            if p is not None and p != sent_feedback and goal.is_active:
                goal.publish_feedback(self._feedback(p))
                sent_feedback = p
            if check is not None and p is not None:
                self._step_check(check, p)
        result = outcome[0] if outcome else RuntimeError("the print thread ended silently")
        if isinstance(result, PortBusy):
            return self._end(goal, R.PRINTER_LOST, str(result), 0)
        if isinstance(result, BaseException):
            return self._end(goal, R.UNKNOWN, f"{type(result).__name__}: {result}", 0)
        self._last = result
        lines = result.lines_acked
        if result.error_code == ErrorCode.CANCELLED and self._deviation:
            return self._end(goal, R.DEVIATION, f"cancelled after a deviation: "
                             f"{self._deviation}", lines)
        if result.error_code != ErrorCode.NONE:
            return self._end(goal, result_code(result.error_code), result.error_msg, lines)
        if check is not None:
            text = self._final_check(check)
            if text:
                return self._end(goal, R.DEVIATION, text, lines)
        return self._end(goal, R.NONE, "", lines)

    def _print(self, job: object, outcome: list) -> None:
        try:
            outcome.append(self.host.print_job(job))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - handed to the goal
            outcome.append(exc)

    @staticmethod
    def _feedback(p: Progress) -> PrintStructure.Feedback:
        fb = PrintStructure.Feedback()
        fb.layer, fb.layers_total = int(p.layer), int(p.layers_total)
        fb.percent = float(p.percent)
        sec = max(0.0, p.remaining_s)
        fb.estimated_time_remaining = Duration(sec=int(sec), nanosec=int((sec % 1) * 1e9))
        fb.material_used_kg = float(p.material_kg)
        return fb

    def _step_check(self, check: _LayerCheck, p: Progress) -> None:
        """Advance the layer check: notice finished layers, judge the first image after."""
        last = len(check.done_at) - 1  # the last layer is judged when the job ends
        if check.next >= last:
            return
        now = time.monotonic()
        if check.pending_since is None:
            if p.lines_acked >= check.done_at[check.next]:
                check.pending_since = now
            return
        image = self._image
        if image is not None and image[0] > check.pending_since:
            self._judge(check, image[1], check.next, p.layer)
        elif now - check.pending_since > self.camera_timeout:
            self._last_check = (f"layer {check.next + 1} not checked: no site image within "
                                f"{self.camera_timeout:g} s")
            self.get_logger().warning(self._last_check)
        else:
            return
        check.next += 1
        check.pending_since = None

    def _judge(self, check: _LayerCheck, image: np.ndarray, layer: int, printing: int) -> bool:
        fraction, text = check.judge(image, layer, printing)
        self._last_check = text
        if fraction <= self.threshold:
            return True
        self._deviation = text
        if layer < len(check.done_at) - 1:
            self.host.pause()
        self.get_logger().error(f"DEVIATION: {text} (threshold {100 * self.threshold:g} %): "
                                f"paused; resume to go on, cancel to end the job")
        return False

    def _final_check(self, check: _LayerCheck) -> str:
        since = time.monotonic()
        deadline = since + self.camera_timeout
        while time.monotonic() < deadline and not self._closing:
            image = self._image
            if image is not None and image[0] > since:
                last = len(check.done_at) - 1
                if self._judge(check, image[1], last, last):
                    return ""
                return f"the finished structure deviates: {self._deviation}"
            time.sleep(0.05)
        self._last_check = "last layer not checked: no site image after the job"
        return ""

    # -- diagnostics ---------------------------------------------------------------------------
    def _diagnostics(self) -> None:
        p, last, host = self._progress, self._last, self.host
        running = self._job_lock.locked()
        state = "printing" if running else "idle"
        if running and host.paused:
            state = "paused"
        level, message = "OK", state
        if self._deviation:
            level, message = "ERROR", f"DEVIATION: {self._deviation}; paused"
        elif self._estop:
            level, message = "ERROR", "estop latched"
        elif state == "paused":
            level = "WARN"
        elif running and not host.is_open:
            level, message = "WARN", "printing: link lost, reconnecting"
        link = "open" if host.is_open else ("closed (opens with the next job)"
                                            if os.path.exists(self.port) else "port missing")
        values: list[tuple[str, object]] = [
            ("state", state), ("link", link), ("port", self.port), ("job", self._job),
            ("layer", f"{p.layer + 1}/{p.layers_total}" if p else ""),
            ("lines_acked", p.lines_acked if p else 0),
            ("lines_total", p.lines_total if p else 0),
            ("lines_sent", p.lines_sent if p else 0),
            ("material_kg", f"{p.material_kg:.2f}" if p else "0"),
            ("layer_check", self._last_check), ("deviation", self._deviation or ""),
            ("last_result", self._last_text)]
        if last is not None:
            values += [("last_resends", last.resends), ("last_probes", last.probes),
                       ("last_reconnects", last.reconnects),
                       ("last_resumed_from", last.resumed_from)]
        if self._image_note:
            values.append(("site_camera", self._image_note))
        ns = self.get_namespace().strip("/") or "robot"
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status.append(messages.diagnostic(f"{self.get_name()}: printer",
                                                f"{ns}/printer@{self.port}", level, message,
                                                values))
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Cancel a running job (journaled) and close the port."""
        self._closing = True
        self.host.cancel()
        deadline = time.monotonic() + 5.0
        while self._job_lock.locked() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.host.close()


def main(args: list[str] | None = None) -> None:
    """Console script `construction`."""
    raise SystemExit(run_node(ConstructionNode, args, threads=4))


if __name__ == "__main__":
    main()
