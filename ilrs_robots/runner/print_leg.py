"""The construction leg of a mission: a `PrintStructure` job on the construction robot,
watched from a ROS client while the rest of the mission goes on, and a summary of what was
printed (lines, layers, material, and the site's height image against the design)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rclpy.action import ActionClient
from sensor_msgs.msg import Image

from ilrs_interfaces.action import PrintStructure
from ilrs_robots.core.construction.jobs import PrintedComparison, compare_printed
from ilrs_robots.drivers.print_files import load_plan
from ilrs_robots.nodes.goal_requests import send_goal
from ilrs_robots.runner.ros_client import RosClient, wait_until

CODES = {v: k for k, v in vars(PrintStructure.Result).items()
         if k.isupper() and isinstance(v, int)}


@dataclass
class PrintReport:
    """What a print job did."""

    design: str
    accepted: bool = False
    done: bool = False
    error_code: int = PrintStructure.Result.UNKNOWN
    error_msg: str = ""
    lines_sent: int = 0
    lines_total: int = 0
    layer: int = 0
    layers_total: int = 0
    percent: float = 0.0
    material_kg: float = 0.0
    material_planned_kg: float = 0.0
    wall_s: float = 0.0
    printed: PrintedComparison | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """The job ended with every line acknowledged."""
        return self.done and self.error_code == PrintStructure.Result.NONE

    @property
    def error_name(self) -> str:
        """The result code's name (e.g. PRINTER_LOST)."""
        return CODES.get(self.error_code, str(self.error_code))

    def describe(self) -> list[str]:
        """Lines for a person."""
        head = (f"print of {Path(self.design).name}: "
                + ("complete" if self.succeeded else
                   f"{'FAILED ' + self.error_name if self.done else 'still running'}"
                   f"{': ' + self.error_msg if self.error_msg else ''}"))
        lines = [head,
                 f"  {self.lines_sent} lines acknowledged ({self.lines_total} sliced, and the "
                 f"node's waits between layers), layer {self.layer}/"
                 f"{self.layers_total} ({self.percent:.0f} %), {self.material_kg:.1f} of "
                 f"{self.material_planned_kg:.1f} kg of regolith, {self.wall_s:.0f} s wall"]
        if self.printed is not None:
            lines.append(f"  site camera: {self.printed.describe()}")
        lines += [f"  {n}" for n in self.notes]
        return lines


class PrintWatch:
    """Starts a print on `/<robot>/print_structure` and follows it to its end."""

    def __init__(self, ros: RosClient, design: str | Path, robot: str = "builder1") -> None:
        self.ros = ros
        self.ns = "/" + robot.strip("/")
        self.plan = load_plan(design)  # refuses a bad design here, before anything is sent
        self.report = PrintReport(
            design=str(design), lines_total=len(self.plan.commands),
            layers_total=max(self.plan.layers, default=-1) + 1,
            material_planned_kg=self.plan.mass_kg[-1] if self.plan.mass_kg else 0.0)
        self._client = ActionClient(ros.node, PrintStructure, f"{self.ns}/print_structure")
        self._heights = ros.subscribe(Image, f"{self.ns}/site_camera/height", 2)
        self._lock = threading.Lock()
        self._result_future = None
        self._goal_handle = None
        self._t0 = 0.0

    def start(self, timeout: float = 60.0) -> str | None:
        """Send the goal; None once accepted, else the reason."""
        if not self._client.wait_for_server(timeout_sec=timeout):
            return f"no {self.ns}/print_structure action server within {timeout:g} s"
        self._t0 = time.monotonic()
        handle = send_goal(self._client,
                           PrintStructure.Goal(design=str(Path(self.report.design).resolve())),
                           timeout=timeout, feedback_callback=self._on_feedback)
        if handle is None:
            return f"the print goal got no answer within {timeout:g} s"
        if not handle.accepted:
            return "the construction node refused the print goal"
        self._goal_handle = handle
        self.report.accepted = True
        self._result_future = handle.get_result_async()
        return None

    def _on_feedback(self, msg: PrintStructure.Impl.FeedbackMessage) -> None:
        fb = msg.feedback
        with self._lock:
            self.report.layer = int(fb.layer)
            self.report.layers_total = int(fb.layers_total) or self.report.layers_total
            self.report.percent = float(fb.percent)
            self.report.material_kg = float(fb.material_used_kg)

    def finished(self) -> bool:
        """The job has ended (or was never started)."""
        return self._result_future is None or self._result_future.done()

    def finish(self, timeout: float) -> PrintReport:
        """Wait up to `timeout` s for the end, then compare the site with the design."""
        if self._result_future is not None and wait_until(self._result_future.done, timeout):
            result = self._result_future.result().result
            with self._lock:
                self.report.done = True
                self.report.error_code = int(result.error_code)
                self.report.error_msg = result.error_msg
                self.report.lines_sent = int(result.lines_sent)
                if self.report.succeeded:
                    self.report.percent = 100.0
                    self.report.layer = self.report.layers_total
        self.report.wall_s = time.monotonic() - self._t0 if self._t0 else 0.0
        if self.report.done:
            self._compare()
        return self.report

    def cancel(self, timeout: float = 5.0) -> None:
        """Cancel a running job."""
        if self._goal_handle is not None and not self.finished():
            wait_until(self._goal_handle.cancel_goal_async().done, timeout)

    def _compare(self, timeout: float = 10.0) -> None:
        """The freshest site height image against the design."""
        if self.plan.design is None:
            return
        count = self._heights.received
        # an image taken after the end, so the last layer is in it
        fresh = self._heights.next_after(count, timeout)
        msg = fresh[0] if fresh else self._heights.last()
        if msg is None or msg.encoding != "32FC1":
            self.report.notes.append(f"no site height image within {timeout:g} s: the printed "
                                     f"structure was not compared with its design")
            return
        image = np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width)
        self.report.printed = compare_printed(image, self.plan)
