"""`ilrs teleop` in a real pseudo-terminal: keys become MotionCommands on
/rover1/motion_commands/request only while the deadman is engaged, the window's end and quitting
send a stop, and the statuses of its commands are printed. The test itself subscribes to the
requests (no rover runs) and publishes a status as motion_commands would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ilrs_interfaces.msg import MotionCommand, MotionCommandStatus
from ilrs_robots.nodes.qos import MOTION_STATUSES
from ilrs_robots.runner.ros_client import RosClient, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = "/rover1/motion_commands/request"


class Terminal:
    """`ilrs teleop` on the slave side of a pty; what it prints, read from the master."""

    def __init__(self, *args: str) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ilrs_robots.runner.cli", "teleop", *args],
            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, start_new_session=True)
        os.close(slave)
        self._lock = threading.Lock()
        self._text = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # the slave closed
                return
            if not data:
                return
            with self._lock:
                self._text += data.decode("utf-8", "replace")

    @property
    def text(self) -> str:
        with self._lock:
            return self._text

    def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        if wait_until(lambda: needle in self.text, timeout) is None:
            raise AssertionError(f"no {needle!r} in the teleop's output:\n{self.text}")

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


@pytest.fixture
def terminal():
    terminals: list[Terminal] = []

    def start(*args: str) -> Terminal:
        terminals.append(Terminal(*args))
        return terminals[-1]

    yield start
    for t in terminals:
        t.close()


def kinds(inbox) -> list[str]:
    return [m.kind for m in inbox.messages]


def test_teleop_sends_bounded_commands_only_with_the_deadman(ros: RosClient, terminal) -> None:
    requests = ros.subscribe(MotionCommand, REQUESTS,
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    status = ros.publisher(MotionCommandStatus, "/rover1/motion_commands/status", MOTION_STATUSES)
    tty = terminal("--namespace", "rover1", "--step", "0.4", "--angle", "20",
                   "--arm-time", "1.5")
    tty.wait_for("motion_commands listening on /rover1/motion_commands/request")
    assert "deadman" in tty.text

    # disarmed: motion keys are refused on the terminal and nothing reaches the topic
    tty.press("i")
    tty.wait_for("disarmed: press 'd'")
    tty.press("j")
    time.sleep(1.0)
    assert requests.messages == []

    # armed: one bounded drive (both keys in one write: read within one arm time, however
    # loaded the machine)
    tty.press("di")
    tty.wait_for("armed for 1.5 s")
    drive = requests.wait_for(lambda m: m.kind == "drive", timeout=20)
    assert drive is not None, tty.text
    assert drive.distance == pytest.approx(0.4) and drive.id.startswith("teleop-")
    assert (drive.stamp.sec, drive.stamp.nanosec) != (0, 0)

    # its life, as motion_commands reports it, is printed; someone else's command is not
    wait_until(lambda: status.get_subscription_count() > 0, 20)
    status.publish(MotionCommandStatus(id=drive.id, kind="drive", state="executing",
                                       progress=0.5))
    status.publish(MotionCommandStatus(id="console-42", kind="turn", state="refused",
                                       reason="not ours"))
    status.publish(MotionCommandStatus(id=drive.id, kind="drive", state="refused",
                                       reason="lethal cell 0.3 m ahead"))
    tty.wait_for(f"{drive.id} drive: executing 50%")
    tty.wait_for(f"{drive.id} drive: refused: lethal cell 0.3 m ahead")
    assert "not ours" not in tty.text

    # the deadman released: within the arm time a stop follows the motion, then keys are dead
    assert requests.wait_for(lambda m: m.kind == "stop", timeout=10) is not None, tty.text
    tty.wait_for("disarmed (deadman released): stop -> sent")
    assert kinds(requests) == ["drive", "stop"]
    tty.press("l")
    time.sleep(1.0)
    assert kinds(requests) == ["drive", "stop"]

    # armed again: a turn to the right, then quit: a stop, and the process ends
    tty.press("dl")
    turn = requests.wait_for(lambda m: m.kind == "turn", timeout=20)
    assert turn is not None, tty.text
    assert turn.angle == pytest.approx(-0.3490658503988659)
    tty.press("q")
    assert tty.proc.wait(30) == 0, tty.text
    # the quit's own stop (the window may have run out first on a loaded machine: then its
    # stop comes before)
    quit_id = re.search(r"quit: stop -> sent \[([^\]]+)\]", tty.text)
    assert quit_id is not None, tty.text
    assert requests.wait_for(lambda m: m.id == quit_id.group(1) and m.kind == "stop", 10), \
        kinds(requests)
    assert kinds(requests)[:3] == ["drive", "stop", "turn"]
    assert set(kinds(requests)[3:]) == {"stop"}
    assert len({m.id for m in requests.messages}) == len(requests.messages)


def test_stop_key_works_disarmed_and_ctrl_c_stops(ros: RosClient, terminal) -> None:
    requests = ros.subscribe(MotionCommand, REQUESTS,
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    tty = terminal()
    tty.wait_for("motion_commands listening")
    tty.press(" ")
    assert requests.wait_for(lambda m: m.kind == "stop", timeout=20) is not None, tty.text
    tty.press("\x03")  # Ctrl-C arrives as a key (no signal): quit with a stop
    assert tty.proc.wait(30) == 0, tty.text
    assert "quit: stop -> sent" in tty.text
    assert wait_until(lambda: kinds(requests) == ["stop", "stop"], 10), kinds(requests)


def test_teleop_refuses_without_a_terminal() -> None:
    result = subprocess.run([sys.executable, "-m", "ilrs_robots.runner.cli", "teleop"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert "needs a terminal" in result.stdout


def test_against_the_real_motion_commands_node(terminal, launcher) -> None:
    """The teleop and the rover's node agree on topics and QoS: a drive reaches it and its
    answer (refused: the node has no pose in this test) is printed."""
    node = launcher.start("motion_commands", namespace="rover1")
    tty = terminal("--arm-time", "10")
    tty.wait_for("motion_commands listening", timeout=90)
    tty.press("di")
    tty.wait_for(" drive: received", timeout=30)
    tty.wait_for(" drive: refused: no pose yet", timeout=30)
    drive_id = re.search(r"drive \+0\.50 m -> sent \[([^\]]+)\]", tty.text)
    assert drive_id is not None and f"{drive_id.group(1)} drive: refused" in tty.text
    tty.press("q")
    tty.wait_for("quit: stop -> sent")
    assert tty.proc.wait(30) == 0, tty.text
    assert node.alive
