"""The RoboClaw emulator on a real pty, driven by the manufacturer's library ``basicmicro``.

basicmicro is an independent implementation of the packet-serial protocol, so these tests
cross-check our codec as well as the emulator's firmware behaviour and fault injection.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from basicmicro import Basicmicro
from basicmicro.exceptions import BasicmicroError, PacketTimeoutError

from ilrs_robots.protocols.roboclaw import Cmd, Request, WarnFlag, encode_write
from ilrs_robots.runner.ros_client import wait_until
from ilrs_robots.sim.devices.roboclaw_emulator import (
    DEFAULT_VERSION,
    ControllerParams,
    EmulatedController,
    EmulatedMotor,
    MotorParams,
    RoboClawBus,
    wrap_s32,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

A, B = 128, 129  # two controllers on the default bus
READ_TIMEOUT = 0.5  # s the host waits for a reply
# The firmware drops a partial packet after a 10 ms gap between bytes, and basicmicro writes a
# packet in pieces (header, each value, CRC): on a busy machine a gap grew past 10 ms and the
# emulator rightly dropped the packet (CI: a write that was to succeed on its second attempt
# failed both). These tests are about the protocol, so their bus allows 250 ms.
PACKET_GAP = 0.25


def signed(value: int) -> int:
    """basicmicro returns encoder counts and speeds as unsigned 32-bit values."""
    return value - (1 << 32) if value & 0x80000000 else value


def open_host(link: Path) -> Basicmicro:
    """basicmicro on ``link``, waiting 0.5 s for each reply (it opens with 1 s): at 50 ms a
    busy machine delayed the emulator's answers past the wait (CI: a write failed twice,
    a version was asked for again)."""
    bm = Basicmicro(str(link), 115200, timeout=0.01, retries=2)
    assert bm.Open()
    bm._port.timeout = READ_TIMEOUT
    return bm


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[RoboClawBus]:
    with RoboClawBus(tmp_path / "roboclaw0", baud=115200, seed=7,
                     packet_timeout=PACKET_GAP) as bus:
        yield bus


@pytest.fixture
def bm(bus: RoboClawBus) -> Iterator[Basicmicro]:
    host = open_host(bus.link)
    yield host
    host.close()


def timed(call):
    """Run ``call`` and return (result, time before, time after)."""
    before = time.monotonic()
    result = call()
    return result, before, time.monotonic()


# -- plain operation -------------------------------------------------------------------------

def test_version_of_each_controller_and_silence_of_absent_ones(bus, bm) -> None:
    """Each controller answers once; an absent one stays silent through both attempts."""
    assert bus.link.is_symlink() and os.readlink(bus.link).startswith("/dev/pts/")
    for address in (128, 129, 130):
        assert bm.ReadVersion(address) == (True, DEFAULT_VERSION)
    assert bm.ReadVersion(131) == (False, "")
    assert bus.requests_ignored == 2  # both of basicmicro's attempts
    assert bus.requests_served == 3


def test_mixed_speed_reaches_target_at_commanded_acceleration(bus, bm) -> None:
    accel = 40000
    ok, t_a, t_b = timed(lambda: bm.SpeedAccelM1M2(A, accel, 8000, -4000))
    assert ok
    time.sleep(0.05)
    (ok, speed, direction), t_c, t_d = timed(lambda: bm.ReadSpeedM1(A))
    assert ok and direction == 0
    # on the ramp, or at the target once the ramp is over (a busy machine may read that late)
    assert min(8000, accel * (t_c - t_b)) - 1 <= speed <= min(8000, accel * (t_d - t_a) + 1)
    (ok, speed2, direction2), t_c, t_d = timed(lambda: bm.ReadSpeedM2(A))
    assert ok and direction2 == 1
    assert min(4000, accel * (t_c - t_b)) - 1 <= -signed(speed2) <= \
        min(4000, accel * (t_d - t_a) + 1)
    # ramps take 0.2 s and 0.1 s
    assert wait_until(lambda: bm.ReadSpeedM1(A) == (1, 8000, 0), 5)
    assert signed(bm.ReadSpeedM2(A)[1]) == -4000
    assert bm.ReadSpeedM1(B) == (1, 0, 0)  # other controllers are untouched


def test_encoders_integrate_and_reset(bus, bm) -> None:
    speed = 5000
    bm.SpeedAccelM1M2(A, 0, speed, -speed)  # accel 0: immediate
    (_, e1, status1), c1, d1 = timed(lambda: bm.ReadEncM1(A))
    time.sleep(0.1)
    (_, e2, _), c2, d2 = timed(lambda: bm.ReadEncM1(A))
    assert speed * (c2 - d1) - 1 <= e2 - e1 <= speed * (d2 - c1) + 1
    assert status1 == 0
    ok, count2, status2 = bm.ReadEncM2(A)
    assert ok and signed(count2) < 0 and status2 & 0x02  # direction bit: backward
    assert bm.ResetEncoders(A)
    (_, e3, _), c3, d3 = timed(lambda: bm.ReadEncM1(A))
    assert 0 <= e3 <= speed * (d3 - c2) + 1


def test_combined_reads_agree_with_single_reads(bus, bm) -> None:
    bm.SpeedAccelM1M2(A, 0, 3000, -2000)
    time.sleep(0.05)
    (ok, enc1, enc2), t_a, _ = timed(lambda: bm.GetEncoders(A))  # command 78
    assert ok and signed(enc1) > 0 > signed(enc2)
    (_, single, _), _, t_b = timed(lambda: bm.ReadEncM1(A))
    # the wheel turned on between the two reads: at most 3000 counts/s for as long as they
    # took (measured, not assumed: a busy machine stretches it)
    assert 0 <= signed(single) - signed(enc1) <= 3000 * (t_b - t_a) + 1
    ok, s1, s2 = bm.GetSpeeds(A)  # command 108
    assert ok and (signed(s1), signed(s2)) == (3000, -2000)


def test_duty_maps_to_a_fraction_of_max_speed(bus, bm) -> None:
    assert bm.DutyM1(B, 16384)
    assert bm.DutyM2(B, -32767)
    m1, m2 = bus.motor(B, 1), bus.motor(B, 2)
    assert m1.target_qpps == pytest.approx(16384 / 32767 * m1.params.max_qpps)
    assert m2.target_qpps == pytest.approx(-m2.params.max_qpps)
    assert m1.duty_command_count == 1 and m1.speed_command_count == 0
    assert wait_until(lambda: bm.ReadSpeedM1(B)[1] > 0, 5)


def test_currents_battery_and_temperature_are_plausible(bus, bm) -> None:
    ok, idle_volts = bm.ReadMainBatteryVoltage(A)
    assert ok and idle_volts == 280  # 28.0 V, nothing drawing current
    assert bm.ReadCurrents(A) == (True, 0, 0)
    bm.SpeedAccelM1M2(A, 40000, 8000, 8000)
    assert wait_until(lambda: bm.ReadSpeedM1(A)[1] == 8000, 5)  # at speed, ramp over
    ok, c1, c2 = bm.ReadCurrents(A)
    assert ok and 50 <= c1 <= 500 and c1 == c2  # 0.5..5 A in units of 10 mA
    ok, volts = bm.ReadMainBatteryVoltage(A)
    assert ok and 240 <= volts < idle_volts
    ok, temp = bm.ReadTemp(A)
    assert ok and 245 <= temp <= 260  # 0.1 degC: rises slowly from 25 degC
    assert bm.ReadError(A) == (1, 0)


# -- observables ------------------------------------------------------------------------------

def test_last_command_time_and_speed_command_count(bus, bm) -> None:
    assert bus.last_command_time(A) is None
    m1 = bus.motor(A, 1)
    bm.ReadEncM1(A)
    assert m1.speed_command_count == 0 and m1.last_speed_command is None
    before = time.monotonic()
    bm.SpeedAccelM1(A, 1000, 300)
    bm.SpeedAccelM1M2(A, 1000, -200, 50)
    assert before <= bus.last_command_time(A) <= time.monotonic()
    assert m1.speed_command_count == 2 and m1.last_speed_command == -200
    assert bus.motor(A, 2).last_speed_command == 50
    assert bus.last_command_time(B) is None
    with pytest.raises(ValueError):
        bus.motor(A, 0)


# -- faults -----------------------------------------------------------------------------------

def test_dropped_replies(bus, bm) -> None:
    bus.drop_replies(1)
    assert bm.ReadEncM1(A)[0]  # the second attempt gets through
    bus.drop_replies(2)
    with pytest.raises(PacketTimeoutError):
        bm.ReadEncM1(A)
    m1 = bus.motor(A, 1)
    bus.drop_replies(1)
    assert bm.SpeedAccelM1(A, 1000, 700)  # lost ack: the host sends the command again
    assert m1.speed_command_count == 2 and m1.last_speed_command == 700
    assert bus.replies_dropped == 4


def test_corrupt_crc(bus, bm) -> None:
    bus.corrupt_crc(1)
    assert bm.ReadVersion(A) == (True, DEFAULT_VERSION)
    bus.corrupt_crc(2)
    with pytest.raises(PacketTimeoutError):
        bm.ReadMainBatteryVoltage(A)
    assert bus.replies_corrupted == 3
    assert bm.ReadMainBatteryVoltage(A)[0]


def test_late_replies(bus, bm) -> None:
    bus.reply_delay(0.02)  # well within the host's wait
    assert bm.ReadTemp(A)[0]
    bus.reply_delay(3 * READ_TIMEOUT)  # later than both attempts together
    with pytest.raises(PacketTimeoutError):
        bm.ReadTemp(A)
    bus.reply_delay(0)
    served = bus.requests_served
    # the emulator finishes answering the abandoned attempts (each sleeps 1.5 s first)
    assert wait_until(lambda: bm._port.in_waiting >= 2 * 4 or bus.requests_served > served,
                      10.0)
    assert bm.ReadTemp(A)[0]  # stale replies are flushed by the host before a read


def test_stall_sets_overcurrent_warning(bus, bm) -> None:
    bus.stall(A, 1)
    bm.SpeedAccelM1M2(A, 40000, 4000, 4000)
    assert wait_until(lambda: bm.ReadSpeedM2(A)[1] == 4000, 5)  # the free motor is at speed
    assert bm.ReadSpeedM1(A) == (1, 0, 0)
    ok, c1, c2 = bm.ReadCurrents(A)
    assert ok and c1 >= 1000 > c2  # >= 10 A on the stalled motor
    ok, status = bm.ReadError(A)
    assert ok and (status >> 16) & Basicmicro.WARN_OVERCURRENTM1
    assert not (status >> 16) & Basicmicro.WARN_OVERCURRENTM2
    assert status & 0xFFFF == 0
    bus.stall(A, 1, on=False)
    assert wait_until(lambda: bm.ReadSpeedM1(A)[1] > 0, 5)
    assert bm.ReadError(A) == (1, 0)


def test_babble_is_flushed_by_the_host(bus, bm) -> None:
    bus.babble(40)
    deadline = time.monotonic() + 1.0
    while bm._port.in_waiting < 40 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert bm._port.in_waiting == 40
    assert bm.ReadEncM1(A)[0]


def test_host_garbage_is_discarded_by_the_firmware(bus, bm) -> None:
    random.seed(1234)  # basicmicro's SendRandomData uses the random module
    bm.SendRandomData(200)
    time.sleep(2 * PACKET_GAP)  # a gap drops any partial packet the garbage left
    assert bm.ReadVersion(A) == (True, DEFAULT_VERSION)
    assert bm.SpeedAccelM1(A, 1000, 123)
    assert bus.motor(A, 1).last_speed_command == 123


def test_write_with_bad_crc_is_ignored(bus, bm) -> None:
    packet = bytearray(encode_write(A, 32, 20000))
    packet[-1] ^= 0xFF
    bm._port.write(bytes(packet))
    assert bm._port.read(1) == b""  # no ack
    assert bus.bad_crc_rejected == 1
    assert bus.motor(A, 1).duty_command_count == 0
    assert bm.DutyM1(A, 20000)
    assert bus.motor(A, 1).duty_command_count == 1


def test_vanish_then_reappear(bus, bm) -> None:
    bm.SpeedAccelM1(A, 0, 1000)
    bus.vanish()
    assert not os.path.lexists(bus.link)
    with pytest.raises(BasicmicroError):
        bm.ReadEncM1(A)
    assert not bm.Open()  # the path is gone
    bus.reappear()
    host = open_host(bus.link)
    try:
        assert host.ReadVersion(A) == (True, DEFAULT_VERSION)
        assert host.ReadSpeedM1(A) == (1, 1000, 0)  # the firmware state survived
    finally:
        host.close()


def test_client_can_close_and_reopen(bus, bm) -> None:
    bm.close()
    host = open_host(bus.link)
    try:
        assert host.ReadVersion(A)[0]
    finally:
        host.close()


def test_external_plant(tmp_path: Path) -> None:
    with RoboClawBus(tmp_path / "ext", addresses=[130], external_plant=True) as bus:
        host = open_host(bus.link)
        try:
            assert host.SpeedAccelM1M2(130, 3000, 1500, -1500)
            m1, m2 = bus.motor(130, 1), bus.motor(130, 2)
            assert m1.command() == (1500, 3000) and m2.command() == (-1500, 3000)
            time.sleep(0.05)
            assert host.ReadSpeedM1(130) == (1, 0, 0)  # nothing measured yet
            m1.set_measured(1234.4, 500.0, 2.5)
            m2.set_measured(-10.0, -20.0, 0.0)
            assert host.ReadEncM1(130) == (1, 1234, 0)
            assert signed(host.ReadEncM2(130)[1]) == -10
            assert host.ReadSpeedM1(130) == (1, 500, 0)
            assert host.ReadCurrents(130) == (True, 250, 0)
            assert host.ResetEncoders(130)
            m1.set_measured(1300.0, 500.0, 2.5)
            assert host.ReadEncM1(130)[1] == 66  # reset is an offset on the measurement
        finally:
            host.close()


def test_main_serves_until_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "cli" / "roboclaw"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ilrs_robots.sim.devices.roboclaw_emulator", "--link",
         str(link), "--addresses", "128", "135", "--baud", "115200"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == str(link)
        host = open_host(link)
        try:
            assert host.ReadVersion(135) == (True, DEFAULT_VERSION)
        finally:
            host.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert not os.path.lexists(link)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- plant model, without a pty ---------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_plant_acceleration_limited_tracking() -> None:
    clock = FakeClock()
    motor = EmulatedMotor(threading.RLock(), MotorParams(), clock=clock)
    motor._set_speed(1000, 2000)  # reaches 1000 counts/s after 0.5 s
    clock.t += 0.25
    assert motor.speed == pytest.approx(500)
    assert motor.position == pytest.approx(0.5 * 2000 * 0.25**2)
    clock.t += 0.75  # ramp ends at 0.5 s, then 0.5 s at full speed
    assert motor.speed == 1000
    assert motor.position == pytest.approx(0.5 * 2000 * 0.5**2 + 1000 * 0.5)
    p = motor.params
    assert motor.current_a == pytest.approx(p.no_load_a + p.k_speed_a * 1000)
    motor._set_speed(0, 2000)
    clock.t += 0.1
    assert motor.current_a == pytest.approx(p.no_load_a + p.k_accel_a * 2000 + p.k_speed_a * 800)


def test_plant_is_independent_of_sampling() -> None:
    fine_clock, coarse_clock = FakeClock(), FakeClock()
    fine = EmulatedMotor(threading.RLock(), clock=fine_clock)
    coarse = EmulatedMotor(threading.RLock(), clock=coarse_clock)
    for motor in (fine, coarse):
        motor._set_speed(-3000, 7000)
    for _ in range(137):
        fine_clock.t += 0.01
        fine.advance()
    coarse_clock.t += 1.37
    assert fine.position == pytest.approx(coarse.position)
    assert fine.encoder_count == coarse.encoder_count == round(coarse.position)


def test_controller_heats_slowly_and_battery_sags() -> None:
    clock = FakeClock()
    ctrl = EmulatedController(A, threading.RLock(), params=ControllerParams(), clock=clock)
    ctrl.motors[0]._set_speed(10000, 0)
    clock.t += 1.0
    ctrl._advance(clock.t)
    current = ctrl._total_current()
    assert current > 1.0
    assert ctrl.battery_v() == pytest.approx(28.0 - 0.05 * current)
    assert 25.0 < ctrl.temperature_c < 25.1  # tau 120 s
    ctrl._advance(clock.t + 1000)
    assert ctrl.temperature_c == pytest.approx(25.0 + 2.0 * current, abs=0.01)
    assert not ctrl.status().warnings & WarnFlag.TEMP


def test_encoder_wraps_like_a_32_bit_counter() -> None:
    assert wrap_s32(2**31) == -(2**31)
    assert wrap_s32(-(2**31) - 1) == 2**31 - 1
    assert wrap_s32(12345) == 12345


# -- serial timeout (command 14) -------------------------------------------------------------

def test_serial_timeout_is_set_read_back_and_stops_the_motors(bus, bm) -> None:
    assert bm.GetTimeout(A) == (True, 0.0)  # off until a host sets it
    assert bm.SetTimeout(A, 0.35)  # the library truncates: 3 tenths
    assert bm.GetTimeout(A) == (True, 0.3)
    assert bus.controller(A).serial_timeout == pytest.approx(0.3)
    assert bm.SpeedAccelM1M2(A, 40000, 2000, -2000)
    assert bm.SpeedAccelM1M2(B, 40000, 2000, -2000)  # B has no timeout: keeps turning
    last = time.monotonic()
    # reads are valid packets too: polling keeps A's motors going past the timeout
    while time.monotonic() - last < 0.6:
        sent = time.monotonic()  # the last valid packet left no earlier than this
        assert bm.ReadEncM1(A)[0]
    assert bus.motor(A, 1).target_qpps == 2000 and bus.timeout_stops(A) == 0
    assert wait_until(lambda: bus.motor(A, 1).speed == 0 and bus.motor(A, 2).speed == 0, 5)
    # not before the timeout (measured from the last request's sending: a busy test process
    # once took 0.24 s to return from it, so that the stop seemed early)
    assert time.monotonic() - sent >= 0.3
    assert bus.timeout_stops(A) == 2 and bus.motor(A, 2).target_qpps == 0
    assert bus.motor(B, 1).target_qpps == 2000 and bus.timeout_stops(B) == 0
    # stopped until a new motion command, which the timeout does not forbid
    assert bm.ReadSpeedM1(A) == (1, 0, 0)
    assert bm.SpeedAccelM1(A, 40000, 500)
    assert bus.motor(A, 1).target_qpps == 500


def test_serial_timeout_decelerates_at_the_last_rate_from_the_deadline() -> None:
    now = [0.0]
    lock = threading.RLock()
    controller = EmulatedController(A, lock, clock=lambda: now[0])
    controller.handle(Request(A, Cmd.SET_SERIAL_TIMEOUT, (5,), b""), 0.0)
    controller.handle(Request(A, Cmd.SPEED_ACCEL_MIXED, (1000, 0, 0), b""), 0.0)
    controller.handle(Request(A, Cmd.SPEED_ACCEL_MIXED, (1000, 400, -400), b""), 0.0)
    motor = controller.motors[0]
    now[0] = 0.45  # polled at 0.45: the deadline moves to 0.95
    controller.handle(Request(A, Cmd.READ_ENCODERS, (), b""), 0.45)
    now[0] = 0.9
    assert motor.speed == 400 and motor.target_qpps == 400
    now[0] = 1.15  # the deadline was 0.95; 0.2 s at 1000 counts/s^2 since then
    assert motor.target_qpps == 0 and motor.speed == pytest.approx(200)
    assert controller.motors[1].speed == pytest.approx(-200)
    now[0] = 2.0
    assert motor.speed == 0 and controller.timeout_stops == 2
    # ramp up 0.4 s, cruise 0.4..0.95 s, ramp down 0.4 s
    assert motor.position == pytest.approx(0.5 * 400 * 0.4 + 400 * 0.55 + 0.5 * 400 * 0.4)


def test_serial_timeout_zero_turns_it_off(bus, bm) -> None:
    assert bm.SetTimeout(A, 0.2)
    assert bm.SetTimeout(A, 0)
    assert bm.SpeedAccelM1(A, 0, 700)
    assert not wait_until(lambda: bus.motor(A, 1).target_qpps == 0, 0.6)
    assert bus.timeout_stops(A) == 0
