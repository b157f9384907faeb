"""construction node in its own process over DDS, streaming to the Marlin emulator on a pty."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.action import ActionClient
from sensor_msgs.msg import Image
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from ilrs_interfaces.action import PrintStructure
from ilrs_robots.core.construction.jobs import grid_to_height_image
from ilrs_robots.core.construction.slicer import (
    HeightGrid,
    compare_height_fields,
    expected_height_field,
)
from ilrs_robots.drivers.print_files import load_plan, load_printer
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.goal_requests import send_goal
from ilrs_robots.runner.ros_client import LATCHED, wait_until
from ilrs_robots.sim.devices.printer_emulator import PrinterEmulator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

R = PrintStructure.Result
PRINTER = load_printer("regolith_paste_gantry")
GRID = HeightGrid.for_printer(PRINTER)
PAD = """name: test_pad
type: landing_pad
printer: regolith_paste_gantry
diameter: 1.0
thickness: 0.04
rim_width: 0.1
rim_height: 0.04
"""
NS = "/builder1"


@pytest.fixture
def pad(tmp_path: Path) -> Path:
    path = tmp_path / "test_pad.yaml"
    path.write_text(PAD)
    return path


def emulator(tmp_path: Path, speedup: float) -> PrinterEmulator:
    return PrinterEmulator(tmp_path / "printer", 115200, grid=GRID,
                           bead_width=PRINTER.bead_width, speedup=speedup,
                           busy_interval=0.2, seed=3).start()


def start_node(launcher, emu: PrinterEmulator, tmp_path: Path, **extra):
    parameters = {"port": str(emu.link), "journal_dir": str(tmp_path / "journal"),
                  "ok_timeout": 1.0, **extra}
    return launcher.start("construction", namespace="builder1", parameters=parameters)


class Goals:
    """An action client of print_structure with its feedback."""

    def __init__(self, ros) -> None:
        self.ros = ros
        self.client = ActionClient(ros.node, PrintStructure, f"{NS}/print_structure")
        self.feedback: list[PrintStructure.Feedback] = []

    def send(self, design: str, layer_height: float = 0.0, node=None):
        assert self.client.wait_for_server(timeout_sec=30), node.output() if node else ""
        goal = PrintStructure.Goal(design=design, layer_height=layer_height)
        handle = send_goal(self.client, goal,
                           feedback_callback=lambda m: self.feedback.append(m.feedback))
        assert handle is not None and handle.accepted, node.output() if node else "no answer"
        return handle

    @staticmethod
    def result(handle, timeout: float = 120.0, node=None):
        future = handle.get_result_async()
        assert wait_until(future.done, timeout), node.output() if node else "no result"
        return future.result()


def trigger(ros, name: str) -> Trigger.Response:
    client = ros.node.create_client(Trigger, f"{NS}/{name}")
    assert client.wait_for_service(timeout_sec=30)
    future = client.call_async(Trigger.Request())
    assert wait_until(future.done, 30)
    return future.result()


def job_lines(emu: PrinterEmulator) -> list[str]:
    with emu._cv:
        return [text for n, text in emu.executed if n is not None and not text.startswith("M110")]


def printer_status(diag):
    last = diag.last()
    if last is None:
        return None
    status = next((s for s in last.status if s.name.endswith("printer")), None)
    return None if status is None else (status, {kv.key: kv.value for kv in status.values})


def test_prints_a_design_end_to_end_with_feedback(ros, launcher, tmp_path, pad):
    plan = load_plan(pad)
    emu = emulator(tmp_path, speedup=200.0)
    try:
        node = start_node(launcher, emu, tmp_path)
        goals = Goals(ros)
        outcome = Goals.result(goals.send(str(pad), node=node), node=node)
        result = outcome.result
        assert result.error_code == R.NONE, result.error_msg
        assert result.lines_sent == len(plan.commands)
        assert emu.executed_numbers() == list(range(1, len(plan.commands) + 1))
        assert job_lines(emu) == plan.commands  # in order, none lost or twice
        percents = [f.percent for f in goals.feedback]
        assert len(percents) >= 3 and percents == sorted(percents)
        assert percents[-1] == pytest.approx(100.0)
        layers = [f.layer for f in goals.feedback]
        assert layers == sorted(layers) and goals.feedback[-1].layers_total == 4
        assert goals.feedback[-1].material_used_kg == pytest.approx(
            plan.mass_kg[-1], rel=0.01)
        design = plan.design
        expected = expected_height_field(design, plan.layer_height, GRID)
        deviation = compare_height_fields(emu.height_field, expected, GRID.cell,
                                          PRINTER.bead_width, PRINTER.bead_height)
        assert deviation.ok, deviation
    finally:
        emu.stop()


def test_bad_goals_are_refused_before_anything_is_sent(ros, launcher, tmp_path):
    bad = tmp_path / "bad.gcode"
    bad.write_text("G21\nG90\nG1 X10 Y10 Q\n")
    outside = tmp_path / "outside.gcode"
    outside.write_text("G21\nG90\nG0 X0 Y0\nG1 X9000 Y0 E1\n")
    emu = emulator(tmp_path, speedup=200.0)
    try:
        node = start_node(launcher, emu, tmp_path)
        goals = Goals(ros)
        result = Goals.result(goals.send(str(bad), node=node)).result
        assert result.error_code == R.INVALID_DESIGN
        assert "line 3" in result.error_msg and "bad.gcode" in result.error_msg
        result = Goals.result(goals.send(str(outside))).result
        assert result.error_code == R.OUT_OF_ENVELOPE and "line 4" in result.error_msg
        result = Goals.result(goals.send(str(tmp_path / "missing.yaml"))).result
        assert result.error_code == R.INVALID_DESIGN and "missing.yaml" in result.error_msg
        assert result.lines_sent == 0
        assert emu.lines_received == 0  # nothing reached the printer
    finally:
        emu.stop()


def test_pause_resume_and_a_second_goal_is_busy(ros, launcher, tmp_path, pad):
    plan = load_plan(pad)
    emu = emulator(tmp_path, speedup=20.0)
    diag = ros.subscribe(DiagnosticArray, "/diagnostics")
    try:
        node = start_node(launcher, emu, tmp_path)
        goals = Goals(ros)
        handle = goals.send(str(pad), node=node)
        assert wait_until(lambda: len(emu.executed_numbers()) >= 20, 60), node.output()
        paused = trigger(ros, "pause")
        assert paused.success, paused.message
        # the lines in flight finish, then nothing more arrives while paused
        assert wait_until(lambda: len(emu.executed_numbers()) == emu.last_line
                          and not emu._planner, 60)
        held = emu.lines_received

        def paused_twice():
            st = printer_status(diag)
            return st is not None and st[1]["state"] == "paused" and diag.received
        assert wait_until(paused_twice, 10)
        seen = diag.received
        assert wait_until(lambda: diag.received >= seen + 2, 10)  # two more seconds
        assert emu.lines_received == held and emu.last_line < len(plan.commands)
        status, values = printer_status(diag)
        assert values["state"] == "paused" and int(values["lines_acked"]) == emu.last_line

        busy = Goals.result(goals.send(str(pad))).result  # a second goal meanwhile
        assert busy.error_code == R.BUSY and "test_pad" in busy.error_msg

        resumed = trigger(ros, "resume")
        assert resumed.success, resumed.message
        result = Goals.result(handle, node=node).result
        assert result.error_code == R.NONE, result.error_msg
        assert job_lines(emu) == plan.commands
        assert not trigger(ros, "pause").success  # no job now
    finally:
        emu.stop()


def test_cancel_ends_the_job(ros, launcher, tmp_path, pad):
    plan = load_plan(pad)
    emu = emulator(tmp_path, speedup=20.0)
    try:
        node = start_node(launcher, emu, tmp_path)
        goals = Goals(ros)
        handle = goals.send(str(pad), node=node)
        assert wait_until(lambda: len(emu.executed_numbers()) >= 10, 60), node.output()
        cancel = handle.cancel_goal_async()
        assert wait_until(cancel.done, 30)
        outcome = Goals.result(handle)
        assert outcome.status == 5  # GoalStatus.STATUS_CANCELED
        assert outcome.result.error_code == R.CANCELED
        assert wait_until(lambda: not emu._planner and not emu._queue, 30)
        done = emu.executed_numbers()
        assert done == list(range(1, len(done) + 1))
        assert len(done) < len(plan.commands)
        assert outcome.result.lines_sent == len(done)  # acknowledged = executed
    finally:
        emu.stop()


def test_sigkill_mid_job_and_restart_completes_the_structure_exactly_once(
        ros, launcher, tmp_path, pad):
    plan = load_plan(pad)
    emu = emulator(tmp_path, speedup=20.0)
    diag = ros.subscribe(DiagnosticArray, "/diagnostics")
    try:
        node = start_node(launcher, emu, tmp_path)
        goals = Goals(ros)
        goals.send(str(pad), node=node)
        assert wait_until(lambda: len(emu.executed_numbers()) >= 60, 60), node.output()
        os.killpg(node.pid, signal.SIGKILL)
        assert wait_until(lambda: not node.alive, 10)
        before = len(emu.executed_numbers())
        assert before < len(plan.commands)
        diag.clear()
        again = start_node(launcher, emu, tmp_path)
        # the dead server's endpoints linger in discovery: wait for the new node itself
        assert wait_until(lambda: (st := printer_status(diag)) and st[1]["state"] == "idle",
                          60), again.output()
        goals2 = Goals(ros)
        result = Goals.result(goals2.send(str(pad), node=again), node=again).result
        assert result.error_code == R.NONE, result.error_msg
        assert result.lines_sent == len(plan.commands)
        assert wait_until(lambda: not emu._planner, 30)
        assert emu.executed_numbers() == list(range(1, len(plan.commands) + 1))
        assert job_lines(emu) == plan.commands  # no line twice, none skipped
        expected = expected_height_field(plan.design, plan.layer_height, GRID)
        assert compare_height_fields(emu.height_field, expected, GRID.cell,
                                     PRINTER.bead_width, PRINTER.bead_height).ok
    finally:
        emu.stop()


def test_estop_halts_the_printer_within_one_line(ros, launcher, tmp_path, pad):
    emu = emulator(tmp_path, speedup=2.0)  # lines of about half a second
    estop = ros.publisher(Bool, f"{NS}/estop", LATCHED)
    try:
        node = start_node(launcher, emu, tmp_path)
        goals = Goals(ros)
        handle = goals.send(str(pad), node=node)
        assert wait_until(lambda: len(emu.executed_numbers()) >= 8, 60), node.output()
        assert wait_until(lambda: estop.get_subscription_count() > 0, 30)
        done_before = len(emu.executed)
        estop.publish(Bool(data=True))
        result = Goals.result(handle, 30, node).result
        assert result.error_code == R.PRINTER_HALTED and "emergency" in result.error_msg
        assert emu.halted and emu.halt_reason == "M112"
        assert emu.queued_at_kill >= 2  # it overtook lines queued in the firmware
        assert done_before <= emu.executed_at_kill <= done_before + 1
        assert len(emu.executed) == emu.executed_at_kill  # nothing moved after the halt
        refused = Goals.result(goals.send(str(pad))).result  # still latched
        assert refused.error_code == R.PRINTER_HALTED and "estop" in refused.error_msg
    finally:
        estop.publish(Bool(data=False))
        emu.stop()


def test_layer_check_passes_a_true_site_image_and_pauses_on_a_deviation(
        ros, launcher, tmp_path, pad):
    plan = load_plan(pad)
    emu = emulator(tmp_path, speedup=30.0)
    camera = ros.publisher(Image, f"{NS}/site_camera/height", 1)
    diag = ros.subscribe(DiagnosticArray, "/diagnostics")
    broken = threading.Event()  # from now on the site shows half the structure missing
    stop = threading.Event()

    def publish() -> None:
        while not stop.wait(0.1):
            heights = emu.height_field
            if broken.is_set():
                heights[:, : heights.shape[1] // 2 + 4] = 0.0
            camera.publish(messages.image(messages.stamp_of(0.0), "site",
                                          grid_to_height_image(heights), "32FC1"))
    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        node = start_node(launcher, emu, tmp_path, site_camera_topic="site_camera/height",
                          deviation_threshold=0.05)
        goals = Goals(ros)
        handle = goals.send(str(pad), node=node)

        def checked(layer: int):
            st = printer_status(diag)
            return st and st[1]["layer_check"].startswith(f"layer {layer}:") and st[1]
        values = wait_until(lambda: checked(1), 120)
        assert values, printer_status(diag)
        assert "(0.0 %)" in values["layer_check"] and not values["deviation"]
        broken.set()
        status = wait_until(lambda: (st := printer_status(diag))
                            and st[0].level == DiagnosticStatus.ERROR and st, 120)
        assert status, printer_status(diag)
        assert status[0].message.startswith("DEVIATION") and status[1]["state"] == "paused"
        held = emu.last_line
        assert held < len(plan.commands) + 4  # paused mid-job (the M400 waits included)
        cancel = handle.cancel_goal_async()
        assert wait_until(cancel.done, 30)
        result = Goals.result(handle, node=node).result
        assert result.error_code == R.DEVIATION and "layer" in result.error_msg
        lines = emu.executed_numbers()
        assert lines == list(range(1, len(lines) + 1))
        assert any(text == "M400" for text in job_lines(emu))  # layer waits were sent
    finally:
        stop.set()
        thread.join(5)
        emu.stop()


def test_bad_parameter_is_a_clear_error(launcher, tmp_path):
    # both at once: each must exit on its own
    nodes = {name: launcher.start("construction", namespace="builder1", name=f"bad_{name}",
                                  parameters={"port": str(tmp_path / "none"), name: value})
             for name, value in (("window", 0), ("printer", "no_such"))}
    for name, node in nodes.items():
        assert wait_until(lambda node=node: not node.alive, 60), node.output()
        assert node.returncode == 2 and f"parameter '{name}'" in node.output(), node.output()


def test_height_image_round_trip():
    heights = np.zeros((GRID.ny, GRID.nx), np.float32)
    heights[0, -1] = 1.0  # -y, +x corner
    image = grid_to_height_image(heights)
    assert image[-1, -1] == 1.0  # bottom right of a north-up image
