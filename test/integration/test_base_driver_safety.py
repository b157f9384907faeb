"""base_driver processes over real DDS against the emulator (or a foreign device) on ptys:
what keeps the wheels safe when the host dies, an estop races the commands, two drivers
share a port, or the port is not a RoboClaw at all."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
from std_msgs.msg import Bool
from test_base_driver import ADDRESSES, PARAMS, Rover, twist
from test_motor_bus import ForeignDevice, only_version_requests

from ilrs_robots.protocols.roboclaw import Cmd
from ilrs_robots.runner.ros_client import LATCHED, wait_until
from ilrs_robots.sim.devices.roboclaw_emulator import RoboClawBus


class Streamer:
    """Publishes cmd_vel at `rate` Hz in a thread until stopped."""

    def __init__(self, pub, msg: Twist, rate: float = 50.0) -> None:
        self.pub, self.msg, self.rate = pub, msg, rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0 / self.rate):
            self.pub.publish(self.msg)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def moving(rover: Rover) -> bool:
    return all(t > 0 for t in rover.targets([(a, m) for a in ADDRESSES for m in (1, 2)]))


def test_sigkill_of_the_driver_lets_the_controllers_stop_themselves(ros, launcher, tmp_path):
    rover = Rover(ros, launcher, tmp_path, serial_timeout=0.3)
    try:
        assert all(rover.emu.controller(a).serial_timeout == pytest.approx(0.3)
                   for a in ADDRESSES)
        streamer = Streamer(rover.cmd, twist(0.3, 0.0))
        try:
            assert wait_until(lambda: moving(rover), 10), rover.node.output()
            os.killpg(rover.node.proc.pid, signal.SIGKILL)  # mid-stream: no stop is sent
            assert wait_until(lambda: not rover.node.alive, 10)
        finally:
            streamer.stop()
        assert rover.node.returncode == -signal.SIGKILL
        assert wait_until(rover.all_stopped, 10)
        assert wait_until(lambda: all(m.speed == 0 for m in rover.emu.motors()), 10)
        # it was the firmware's own timeout that stopped every motor, not a host command
        assert [rover.emu.timeout_stops(a) for a in ADDRESSES] == [2, 2, 2]
    finally:
        rover.close()


def test_a_final_stop_lost_on_the_line_is_sent_again_until_acknowledged(ros, launcher,
                                                                        tmp_path):
    """SIGINT while a teleop still streams: the driver's final stop to one controller is lost
    twice on the line (more than the library's own retries). The driver sends it again, so
    every wheel is stopped by the driver, none by the firmware's serial timeout."""
    rover = Rover(ros, launcher, tmp_path, serial_timeout=2.0)
    try:
        streamer = Streamer(rover.cmd, twist(0.3, 0.0))
        try:
            assert wait_until(lambda: moving(rover), 10), rover.node.output()
            rover.emu.lose_stops(ADDRESSES[-1], 2)
            rover.node.proc.send_signal(signal.SIGINT)
            assert wait_until(lambda: not rover.node.alive, 30), rover.node.output()
        finally:
            streamer.stop()
        assert rover.node.returncode == 0, rover.node.output()
        assert rover.all_stopped(), rover.targets([(a, m) for a in ADDRESSES for m in (1, 2)])
        assert [rover.emu.timeout_stops(a) for a in ADDRESSES] == [0, 0, 0]
    finally:
        rover.close()


def test_no_move_command_follows_the_stop_of_a_latched_estop(ros, launcher, tmp_path):
    rover = Rover(ros, launcher, tmp_path, cmd_timeout=3.0)
    log: list[tuple[float, int, tuple[int, ...]]] = []
    lock = threading.Lock()

    def record(request, now: float) -> None:
        if request.cmd == Cmd.SPEED_ACCEL_MIXED:
            with lock:
                log.append((now, request.address, request.args))

    def stops_since(t: float) -> dict[int, int]:
        with lock:
            counts = dict.fromkeys(ADDRESSES, 0)
            for now, address, args in log:
                if now > t and args[1] == 0 and args[2] == 0:
                    counts[address] += 1
            return counts

    rover.emu.on_request = record
    streamer = Streamer(rover.cmd, twist(0.3, 0.1), rate=100.0)
    windows = []
    try:
        for i in range(20):
            if i == 10:  # the same after a reconnect
                rover.emu.vanish()
                rover.wait_status("drive", DiagnosticStatus.ERROR, timeout=15)
                rover.emu.reappear()
                rover.wait_status("drive", DiagnosticStatus.OK, timeout=20)
            assert wait_until(lambda: moving(rover), 15), f"round {i}: never moved"
            latched = time.monotonic()
            rover.estop.publish(Bool(data=True))
            assert wait_until(rover.all_stopped, 10), f"round {i}: never stopped"
            # several control cycles pass with the estop latched and cmd_vel streaming
            assert wait_until(lambda t=latched: min(stops_since(t).values()) >= 5, 10)
            released = time.monotonic()
            rover.estop.publish(Bool(data=False))
            windows.append((latched, released))
    finally:
        streamer.stop()
        rover.close()
    with lock:
        records = list(log)
    for i, (latched, released) in enumerate(windows):
        for address in ADDRESSES:
            seen = [(t, args) for t, a, args in records if a == address
                    and latched < t < released]
            first_stop = next(k for k, (_, args) in enumerate(seen)
                              if args[1] == 0 and args[2] == 0)
            late = [(round((t - seen[first_stop][0]) * 1000, 2), args)
                    for t, args in seen[first_stop:] if args[1] or args[2]]
            assert not late, f"round {i}, RoboClaw {address}: moves after its stop {late}"


def test_a_second_driver_on_a_port_in_use_exits_naming_port_and_holder(ros, launcher,
                                                                       tmp_path):
    rover = Rover(ros, launcher, tmp_path)
    try:
        second = launcher.start("base_driver", namespace="rover2",
                                parameters={**PARAMS, "port": str(rover.emu.link)})
        assert wait_until(lambda: not second.alive, 30)
        out = second.output()
        assert second.returncode not in (0, None), out
        assert str(rover.emu.link) in out and f"pid {rover.node.proc.pid}" in out, out
        assert "Traceback" not in out
        assert rover.follows(0.3) and rover.node.alive  # the first one is undisturbed
    finally:
        rover.close()


@pytest.mark.parametrize("mode", ["echo", "garbage"])
def test_the_driver_never_sends_motion_to_a_device_that_is_not_a_roboclaw(ros, launcher,
                                                                          tmp_path, mode):
    link = tmp_path / "stale_pts"
    device = ForeignDevice(link, mode)
    try:
        node = launcher.start("base_driver", namespace="rover1",
                              parameters={**PARAMS, "port": str(link)})
        cmd = ros.publisher(Twist, "/rover1/cmd_vel", wait_for_subscribers=15)
        estop = ros.publisher(Bool, "/rover1/estop", LATCHED)
        diag = ros.subscribe(DiagnosticArray, "/diagnostics")
        streamer = Streamer(cmd, twist(0.3, 0.0))
        try:
            def refused() -> bool:
                last = diag.last()
                return last is not None and any(
                    s.name.endswith("drive") and s.level == DiagnosticStatus.ERROR
                    and "refused" in s.message for s in last.status)
            assert wait_until(refused, 20), node.output()
            estop.publish(Bool(data=True))  # the urgent stop path does not write either
            assert wait_until(lambda: "no RoboClaw answered" in node.output()
                              and "estop latched" in node.output(), 10), node.output()
        finally:
            streamer.stop()
        assert node.alive
        out = node.output()
        assert "[ERROR]" in out and str(link) in out, out
        node.stop()
        data = device.requests()
        assert data and only_version_requests(data), data[:64].hex()
    finally:
        device.close()


def test_a_missing_port_is_logged_then_opened_when_it_appears(ros, launcher, tmp_path):
    link = tmp_path / "later"
    node = launcher.start("base_driver", namespace="rover1",
                          parameters={**PARAMS, "port": str(link)})
    assert wait_until(lambda: "[ERROR]" in node.output() and "does not exist" in node.output(),
                      20), node.output()
    with RoboClawBus(link, ADDRESSES, baud=115200) as emu:
        assert wait_until(lambda: all(c.serial_timeout > 0 for c in emu.controllers.values()),
                          30), node.output()
        assert wait_until(lambda: f"serial port {link} open" in node.output(), 10)
        assert node.alive
