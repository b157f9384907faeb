"""The GMC driver against the GMC-320 firmware emulator on a real pty (no ROS): identification,
polled counts, heartbeats, garbage, short replies, a hung unit, a vanishing port, a busy port."""

from __future__ import annotations

import time

import pytest
import serial

from ilrs_robots.drivers.gmc import GmcClient, LinkLost, NoReply, PortBusy
from ilrs_robots.protocols import gmc
from ilrs_robots.runner.ros_client import wait_until
from ilrs_robots.sim.devices.gmc_emulator import GmcCounter, parse_dose_script
from ilrs_robots.sim.devices.pty_device import PtyDevice


@pytest.fixture
def counter(tmp_path):
    # a tick every 1000 s: the counts of the last minute stay put while a test reads them
    dev = GmcCounter(tmp_path / "gmc", dose=1.0, seed=5, interval=1000.0).start()
    yield dev
    dev.stop()


def test_identifies_and_reads_polled_values(counter):
    with GmcClient(str(counter.link)) as client:
        assert client.version == gmc.Version("GMC-320", 4, 26, "GMC-320Re 4.26")
        assert client.width == 2
        assert client.read_cpm() == counter.cpm() > 0
        assert client.read_cps() == counter.cps()
        assert client.read_volts() == pytest.approx(4.1)
    assert counter.commands >= 5


def test_four_byte_firmware(tmp_path):
    dev = GmcCounter(tmp_path / "gmc", dose=1000.0, firmware="5.73", seed=1,
                     interval=1000.0).start()
    try:
        with GmcClient(str(dev.link)) as client:
            assert client.width == 4
            assert client.read_cpm() == dev.cpm()
            assert dev.cpm() > 0xFFFF  # more than two bytes hold
    finally:
        dev.stop()


def test_garbage_and_short_replies_are_asked_again(counter):
    with GmcClient(str(counter.link)) as client:
        truth = counter.cpm()
        counter.noise_next(1, nbytes=3)
        assert client.read_cpm() == truth
        assert client.counters.bad_replies == 1 and client.counters.garbage_bytes == 3
        counter.short_next(1)
        assert client.read_cpm() == truth
        assert client.counters.timeouts == 1
        counter.babble(7)  # unsolicited bytes between requests are flushed
        time.sleep(0.05)
        assert client.read_cpm() == truth
        counter.short_next(5)
        with pytest.raises(NoReply):
            client.read_cpm()  # every retry short: a clear failure, not a wrong value
        assert client.is_open
        assert client.read_cpm() == truth


def test_heartbeats_are_the_seconds_counted(tmp_path):
    dev = GmcCounter(tmp_path / "gmc", dose=5.0, seed=7, interval=0.25).start()
    try:
        with GmcClient(str(dev.link)) as client:
            client.start_heartbeat()
            seconds = []
            assert wait_until(lambda: seconds.extend(client.read_heartbeats(0.2)) or
                              len(seconds) >= 8, 20)
            sent = [c for _, _, c in dev.history]
            got = [s.counts for s in seconds]
            assert _is_run_of(got, sent), (got, sent)
            assert sum(got) > 0

            before = len(dev.history)
            more = []
            dev.noise_next(1, nbytes=2)  # a heartbeat with garbage: dropped, not misread
            assert wait_until(lambda: more.extend(client.read_heartbeats(0.1)) or
                              dev.noise_bytes == 2, 10)
            dev.short_next(1)  # then one cut short
            assert wait_until(lambda: more.extend(client.read_heartbeats(0.1)) or
                              dev.replies_shortened == 1, 10)
            assert wait_until(lambda: more.extend(client.read_heartbeats(0.2)) or
                              len(dev.history) >= before + 8, 20)
            assert client.counters.bad_bursts >= 2
            sent = [c for _, _, c in dev.history]
            got = [s.counts for s in more]
            assert len(got) >= 5 and all(c in sent for c in got)
            assert _is_subsequence(got, sent[before - 1:])

            client.stop_heartbeat()
            assert client.read_cpm() == dev.cpm() or client.read_cpm() == dev.cpm()
    finally:
        dev.stop()


def test_silent_unit_then_vanishing_port_then_return(tmp_path):
    dev = GmcCounter(tmp_path / "gmc", dose=2.0, seed=3, interval=0.25).start()
    client = GmcClient(str(dev.link), heartbeat_timeout=1.0, backoff_min=0.05, backoff_max=0.2)
    try:
        assert client.ensure_open()
        client.start_heartbeat()
        assert wait_until(lambda: client.read_heartbeats(0.2), 10)
        dev.silence()
        with pytest.raises(NoReply):
            for _ in range(40):
                client.read_heartbeats(0.2)
        dev.silence(False)
        assert wait_until(lambda: client.read_heartbeats(0.2), 10)  # resumes by itself

        dev.vanish()
        with pytest.raises(LinkLost):
            for _ in range(20):
                client.read_heartbeats(0.2)
        assert not client.is_open
        assert not client.ensure_open()  # still gone: refused quietly, backoff
        assert "does not exist" in client.last_error
        dev.reappear()
        assert wait_until(client.ensure_open, 10)
        assert client.counters.reconnects == 1
        client.start_heartbeat()  # the unit came back with its heartbeat off
        assert wait_until(lambda: client.read_heartbeats(0.2), 10)
    finally:
        client.close()
        dev.stop()


def test_busy_port_and_a_device_that_is_no_gmc(tmp_path, counter):
    holder = serial.Serial(str(counter.link), 115200, exclusive=True)
    try:
        with pytest.raises(PortBusy) as info:
            GmcClient(str(counter.link)).open()
        assert str(counter.link) in str(info.value)
    finally:
        holder.close()

    mute = PtyDevice(tmp_path / "mute").start()  # answers nothing
    try:
        client = GmcClient(str(mute.link), timeout=0.1, retries=1)
        with pytest.raises(LinkLost, match="refused"):
            client.open()
        assert client.counters.refused == 1 and not client.is_open
    finally:
        mute.stop()


def test_dose_script() -> None:
    dose = parse_dose_script("0:0.1,10:5,20:0.2")
    assert [dose(t) for t in (0, 9.9, 10, 15, 25)] == [0.1, 0.1, 5.0, 5.0, 0.2]
    looped = parse_dose_script("0:1,10:2,20:1", loop=True)
    assert looped(25) == 1.0 and looped(35) == 2.0
    with pytest.raises(ValueError):
        parse_dose_script("5:1")


def _is_run_of(got: list[int], sent: list[int]) -> bool:
    """`got` appears in `sent` as consecutive items."""
    n = len(got)
    return any(sent[i:i + n] == got for i in range(len(sent) - n + 1))


def _is_subsequence(got: list[int], sent: list[int]) -> bool:
    it = iter(sent)
    return all(any(c == s for s in it) for c in got)


def test_counter_in_the_world_field_follows_the_sensor(tmp_path):
    """Embedded as the simulator does: counts follow the field at the sensor's position, in
    the core's beam through the berm's opening and behind the berm."""
    from ilrs_robots.sim.radiation import RadiationField
    from ilrs_robots.sim.world import load_world

    world = load_world("south_pole")
    field = RadiationField.from_world(world)
    where = {"p": (110.0, 100.0, 0.5)}  # 20 m west of the core, in the opening's beam
    dev = GmcCounter.from_world(tmp_path / "gmc", world, lambda: where["p"], seed=2,
                                interval=0.2).start()
    try:
        with GmcClient(str(dev.link)) as client:
            client.start_heartbeat()
            beam: list[int] = []
            assert wait_until(lambda: beam.extend(s.counts for s in
                                                  client.read_heartbeats(0.2)) or
                              len(beam) >= 20, 30)
            expected = field.dose_rate(where["p"]) / 0.0065 / 60  # counts per second
            assert dev.last_dose == pytest.approx(field.dose_rate(where["p"]))
            assert np_mean(beam) == pytest.approx(expected, rel=0.1)

            where["p"] = (130.0, 120.0, 0.5)  # 20 m north, behind the berm
            shadow_dose = field.dose_rate(where["p"])
            assert wait_until(lambda: dev.last_dose == pytest.approx(shadow_dose), 5)
            client.read_heartbeats(0.3)  # drop the seconds counted before the move
            shadow: list[int] = []
            assert wait_until(lambda: shadow.extend(s.counts for s in
                                                    client.read_heartbeats(0.2)) or
                              len(shadow) >= 20, 30)
            assert np_mean(shadow) < np_mean(beam) / 10
    finally:
        dev.stop()


def np_mean(values: list[int]) -> float:
    return sum(values) / len(values)
