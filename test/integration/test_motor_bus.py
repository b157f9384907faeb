"""The RoboClaw host (drivers/roboclaw.py) and the skid-steer loop, on real ptys, without ROS.

Against the firmware emulator and against ptys whose other end is not a RoboClaw at all.
"""

from __future__ import annotations

import os
import random
import select
import sys
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from ilrs_robots.core.drive_config import DEFAULT_CHANNELS, DEFAULT_WHEELS, parse_wheels
from ilrs_robots.core.kinematics import DriveLimits, SkidSteerGeometry
from ilrs_robots.drivers.roboclaw import FaultLog, RoboClawBus
from ilrs_robots.drivers.serial_port import PortBusy, port_holders
from ilrs_robots.drivers.skid_steer_base import BaseState, SkidSteerBase
from ilrs_robots.protocols.roboclaw import Cmd
from ilrs_robots.runner.ros_client import wait_until
from ilrs_robots.sim.devices.roboclaw_emulator import RoboClawBus as EmulatedBus

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

ADDRESSES = [128, 129, 130]
WHEELS = parse_wheels(DEFAULT_WHEELS, DEFAULT_CHANNELS, [1] * 6, ADDRESSES)
GEOMETRY = SkidSteerGeometry(0.25, 1.2, 8192.0)
LIMITS = DriveLimits(0.5, 0.8, 0.6, 2.0, 4.0)


class Faults:
    """A FaultLog sink that keeps what was logged."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, level: str, message: str) -> None:
        with self._lock:
            self.lines.append((level, message))

    def find(self, level: str, text: str) -> bool:
        with self._lock:
            return any(lv == level and text in m for lv, m in self.lines)


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[EmulatedBus]:
    with EmulatedBus(tmp_path / "roboclaw", ADDRESSES, baud=115200) as bus:
        yield bus


def make_base(port: str, faults: Faults | None = None, **kwargs) -> SkidSteerBase:
    log = FaultLog(faults, period=0.0)
    bus = RoboClawBus(port, 115200, addresses=ADDRESSES, serial_timeout=0.5, faults=log)
    return SkidSteerBase(bus, WHEELS, GEOMETRY, LIMITS, cmd_timeout=2.0, **kwargs)


def targets(emu: EmulatedBus) -> list[float]:
    return [m.target_qpps for m in emu.motors()]


def moving(emu: EmulatedBus) -> bool:
    return all(t > 0 for t in targets(emu))


def stopped(emu: EmulatedBus) -> bool:
    return all(t == 0 for t in targets(emu))


def state_has(base: SkidSteerBase, predicate) -> bool:
    """True once the base has published a state satisfying `predicate`."""
    state = base.state()
    return state is not None and bool(predicate(state))


def keep_commanding(base: SkidSteerBase, until, timeout: float = 10.0) -> bool:
    """Send a forward command every 20 ms until `until()` holds; its last value."""
    return bool(wait_until(lambda: base.command(0.3, 0.0) and until(), timeout))


# -- identification and serial timeout -----------------------------------------------------

def test_connect_identifies_every_controller_and_sets_its_serial_timeout(emu) -> None:
    bus = RoboClawBus(str(emu.link), 115200, addresses=ADDRESSES, serial_timeout=0.7)
    bus.open()
    try:
        assert set(bus.identified) == set(ADDRESSES)
        assert all(v.startswith("RoboClaw") for v in bus.identified.values())
        for address in ADDRESSES:
            assert emu.controller(address).serial_timeout == pytest.approx(0.7)
            assert bus.read_serial_timeout(address) == pytest.approx(0.7)
    finally:
        bus.close()


def test_a_silent_controller_is_not_driven_until_it_answers_its_version(emu) -> None:
    emu.silence(130, True)
    base = make_base(str(emu.link))
    base.start()
    try:
        assert 130 not in base.bus.identified and {128, 129} <= set(base.bus.identified)
        assert wait_until(lambda: state_has(base, lambda s: not s.link_ok), 10)
        assert emu.motor(130, 1).speed_command_count == 0
        emu.silence(130, False)
        assert wait_until(lambda: 130 in base.bus.identified, 10)
        assert emu.controller(130).serial_timeout == pytest.approx(0.5)
        assert keep_commanding(base, lambda: moving(emu))
    finally:
        base.stop()


class ForeignDevice:
    """A pty at `link` whose other end is not a RoboClaw: silent, an echo, or babbling."""

    def __init__(self, link: Path, mode: str) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.slave = slave
        os.symlink(os.ttyname(slave), link)
        self.mode = mode
        self.received = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rng = random.Random(3)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.01)
            if self.mode == "garbage":
                os.write(self.master, self._rng.randbytes(8))
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            with self._lock:
                self.received += data
            if self.mode == "echo":
                os.write(self.master, data)

    def requests(self) -> bytes:
        with self._lock:
            return bytes(self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.master)
        os.close(self.slave)


def only_version_requests(data: bytes) -> bool:
    """True if `data` is nothing but [address, 21] read requests."""
    pairs = [data[i:i + 2] for i in range(0, len(data), 2)]
    return len(data) % 2 == 0 and all(p[0] in ADDRESSES and p[1] == Cmd.READ_VERSION
                                      for p in pairs)


@pytest.mark.parametrize("mode", ["silent", "echo", "garbage"])
def test_a_port_that_is_not_a_roboclaw_gets_nothing_but_version_requests(tmp_path, mode):
    device = ForeignDevice(tmp_path / "not_a_roboclaw", mode)
    faults = Faults()
    base = make_base(str(tmp_path / "not_a_roboclaw"), faults)
    try:
        base.start()  # a refused port is not an error of start(): it is retried
        # it keeps trying (with backoff), and keeps being refused, while commands stream in
        assert wait_until(lambda: base.command(0.3, 0.0) is not None
                          and base.bus.refused >= 3, 20), base.bus.last_error
        assert not base.bus.is_open
        state = base.state()
        assert state is not None and not state.port_open and not state.link_ok
        data = device.requests()
        assert data and only_version_requests(data), data[:64].hex()
        assert faults.find("error", "no RoboClaw answered"), faults.lines
    finally:
        base.stop()
        data = device.requests()
        device.close()
    assert only_version_requests(data), data[:64].hex()  # stop() sent nothing either


def test_the_serial_timeout_stops_wheels_when_the_host_goes_quiet(emu) -> None:
    base = make_base(str(emu.link))
    base.start()
    assert keep_commanding(base, lambda: moving(emu))
    base._stop.set()  # the control thread ends as if the host hung: no packet any more
    base._thread.join()
    assert wait_until(lambda: stopped(emu), 10)
    assert all(emu.timeout_stops(a) == 2 for a in ADDRESSES)
    base.bus.close()


# -- exclusive port ------------------------------------------------------------------------

def test_a_second_bus_on_a_held_port_is_refused_and_told_who_holds_it(emu) -> None:
    first = RoboClawBus(str(emu.link), 115200, addresses=ADDRESSES)
    first.open()
    second = RoboClawBus(str(emu.link), 115200, addresses=ADDRESSES)
    try:
        with pytest.raises(PortBusy) as info:
            second.open()
        assert str(emu.link) in str(info.value)
        assert not second.is_open and first.is_open
        assert first.read_encoders(128) == (0, 0)  # the holder is undisturbed
    finally:
        first.close()
    second.open()  # free again
    second.close()


def test_port_holders_names_a_process_holding_a_lock(emu, tmp_path) -> None:
    import subprocess

    code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(emu.link)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        holders = port_holders(str(emu.link))
        assert [pid for pid, _ in holders] == [holder.pid]
        assert "fcntl" in holders[0][1]
    finally:
        holder.communicate("")


# -- the loop's faults ---------------------------------------------------------------------

def test_a_failing_publish_callback_is_counted_and_does_not_close_the_port(emu) -> None:
    calls = []

    def on_cycle(state: BaseState) -> None:
        calls.append(state.cycles)
        raise RuntimeError("cannot publish")

    faults = Faults()
    base = make_base(str(emu.link), faults, on_cycle=on_cycle)
    base.start()
    try:
        assert keep_commanding(base, lambda: base.cycle_errors >= 20 and moving(emu))
        assert base.bus.reconnects == 0 and base.bus.is_open
        state = base.state()
        assert state.port_open and state.link_ok and not state.holding
        assert state.cycle_errors >= 19
        assert faults.find("error", "cannot publish")
    finally:
        base.stop()


def test_odometry_is_stamped_at_its_encoder_reads_not_at_publish(emu) -> None:
    """The stamp is taken around the encoder reads; the wheel commands and the publish come
    after it. A controller that stops answering leaves the cycle with no stamp."""
    stamps: list[tuple[int | None, int]] = []
    base = make_base(str(emu.link), stamp_clock=time.monotonic_ns,
                     on_cycle=lambda s: stamps.append((s.read_stamp, time.monotonic_ns())))
    reads: list[int] = []

    def timed(read):
        def call(address):
            reads.append(time.monotonic_ns())
            try:
                return read(address)
            finally:
                reads.append(time.monotonic_ns())
        return call

    base.bus.read_encoders = timed(base.bus.read_encoders)
    base.bus.read_speeds = timed(base.bus.read_speeds)
    base.bus.open()
    base.cycle()  # the first reads are the odometry's baseline
    base.command(0.3, 0.0)
    reads.clear()
    state = base.cycle()
    assert state.odometry_ok and state.read_stamp is not None
    assert len(reads) == 12 and reads[0] < state.read_stamp < reads[-1]  # amid the reads
    previous = state.read_stamp
    base.command(0.3, 0.0)
    assert base.cycle().read_stamp > previous
    emu.silence(128, True)
    emu.silence(129, True)
    emu.silence(130, True)
    try:
        state = base.cycle()
        assert not state.odometry_ok and state.read_stamp is None
    finally:
        base.bus.close()


def test_reconnect_holds_the_wheels_until_a_fresh_command(emu) -> None:
    faults = Faults()
    base = make_base(str(emu.link), faults)
    base.start()
    try:
        assert keep_commanding(base, lambda: moving(emu))
        emu.vanish()
        assert wait_until(lambda: state_has(base, lambda s: not s.port_open), 10)
        # the cycle whose I/O lost the port shows it closed; the next one logs the loss
        assert wait_until(lambda: faults.find("error", "lost"), 10)
        emu.reappear()
        assert wait_until(lambda: base.bus.reconnects == 1
                          and state_has(base, lambda s: s.port_open), 15)
        assert wait_until(lambda: stopped(emu), 5)
        state = base.state()
        assert state.holding and state.link_ok
        assert faults.find("warning", "reopened")
        # a command sent before the loss does not count: still held
        assert not wait_until(lambda: not stopped(emu) or not base.state().holding, 0.5)
        assert keep_commanding(base, lambda: moving(emu))
    finally:
        base.stop()


def test_reconfigure_applies_new_limits_to_the_next_command(emu) -> None:
    base = make_base(str(emu.link))
    base.start()
    try:
        full = round(0.3 / (2 * 3.141592653589793 * 0.25) * 8192)
        assert keep_commanding(base, lambda: targets(emu) == [full] * 6)
        base.reconfigure(max_linear=0.1, cmd_timeout=1.0, rate=20.0)
        assert base.cmd_timeout == 1.0 and base.period == pytest.approx(0.05)
        slow = round(0.1 / (2 * 3.141592653589793 * 0.25) * 8192)
        assert keep_commanding(base, lambda: targets(emu) == [slow] * 6)
    finally:
        base.stop()
