"""radiation_sensor node in its own process over DDS, against the GMC-320 emulator on a pty."""

from __future__ import annotations

import math

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from ilrs_interfaces.msg import RadiationReading
from ilrs_robots.runner.ros_client import wait_until
from ilrs_robots.sim.devices.gmc_emulator import GmcCounter

TOPIC = "/rover1/radiation/reading"


def gmc_status(diag):
    last = diag.last()
    return next((s for s in last.status if s.name.endswith(": gmc")), None) if last else None


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def _run_sums(counts: list[int], n: int) -> set[int]:
    return {sum(counts[i:i + n]) for i in range(len(counts) - n + 1)}


def test_readings_match_the_emulated_dose_and_survive_faults(ros, launcher, tmp_path):
    dose, window = 10.0, 5.0
    dev = GmcCounter(tmp_path / "gmc", dose=dose, seed=21).start()
    readings = ros.subscribe(RadiationReading, TOPIC)
    diag = ros.subscribe(DiagnosticArray, "/diagnostics")
    node = launcher.start("radiation_sensor", namespace="rover1", parameters={
        "port": str(dev.link), "window": window, "period": 1.0, "frame_id": "gmc_link"})
    try:
        # a full window: every reading is then the sum of 5 consecutive seconds the unit sent
        assert wait_until(lambda: len(readings.messages) >= 8, 40), node.output()
        full = readings.messages[-3:]
        sent = [c for _, _, c in dev.history]
        expected_sigma = math.sqrt(dose / 0.0065 / 60 * window) / window * 60 * 0.0065
        for msg in full:
            assert msg.header.frame_id == "gmc_link"
            counts = round(msg.counts_per_minute * window / 60.0)
            assert counts in _run_sums(sent, int(window)), (counts, sent)
            assert msg.dose_rate == pytest.approx(msg.counts_per_minute * 0.0065)
            assert abs(msg.dose_rate - dose) < 4 * expected_sigma, msg
            assert 0.6 * expected_sigma < msg.dose_rate_stddev < 1.5 * expected_sigma
            assert msg.dose_rate_stddev == pytest.approx(
                math.sqrt(counts) / window * 60 * 0.0065, rel=1e-3)
        stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in full]
        assert stamps == sorted(stamps) and stamps[-1] - stamps[0] > 1.0
        status = wait_until(lambda: (s := gmc_status(diag)) and s.level == DiagnosticStatus.OK
                            and s, 15)
        assert status, gmc_status(diag)
        assert "GMC-320 4.26" in status.message

        # garbage before heartbeats and heartbeats cut short: dropped, counted, readings go on
        dev.noise_next(2, nbytes=3)
        dev.short_next(2)
        count = len(readings.messages)
        assert wait_until(lambda: len(readings.messages) >= count + 3, 30), node.output()

        def dropped():
            s = gmc_status(diag)
            return s is not None and int(values(s)["bad_bursts"]) >= 2 and s
        assert wait_until(dropped, 15), gmc_status(diag)
        # once the window holds no dropped second, readings are exact sums again: resynced
        count = len(readings.messages)
        assert wait_until(lambda: len(readings.messages) >= count + window + 1, 30)
        sent = [c for _, _, c in dev.history]
        for msg in readings.messages[-2:]:
            counts = round(msg.counts_per_minute * window / 60.0)
            assert counts in _run_sums(sent, int(window)), (counts, sent)

        # the port vanishes: ERROR, no crash, no readings; the unit returns on the same link
        dev.vanish()
        status = wait_until(lambda: (s := gmc_status(diag)) is not None
                            and s.level == DiagnosticStatus.ERROR and s, 20)
        assert status, gmc_status(diag)
        assert node.alive
        stopped = len(readings.messages)
        dev.reappear()
        assert wait_until(lambda: len(readings.messages) >= stopped + 3, 40), node.output()
        assert node.alive
        status = wait_until(lambda: (s := gmc_status(diag)) and s.level == DiagnosticStatus.OK
                            and s, 30)
        assert status, gmc_status(diag)
        assert int(values(status)["reconnects"]) >= 1
        assert "vanished" in node.output() or "does not exist" in node.output()
    finally:
        dev.stop()


def test_silent_counter_is_reported_and_found_again(ros, launcher, tmp_path):
    dev = GmcCounter(tmp_path / "gmc", dose=1.0, seed=4).start()
    readings = ros.subscribe(RadiationReading, TOPIC)
    diag = ros.subscribe(DiagnosticArray, "/diagnostics")
    node = launcher.start("radiation_sensor", namespace="rover1", parameters={
        "port": str(dev.link), "heartbeat_timeout": 2.0})
    try:
        assert wait_until(lambda: len(readings.messages) >= 2, 40), node.output()
        dev.silence()
        status = wait_until(lambda: (s := gmc_status(diag)) is not None
                            and s.level == DiagnosticStatus.ERROR and s, 20)
        assert status, gmc_status(diag)
        assert node.alive
        dev.silence(False)
        count = len(readings.messages)
        assert wait_until(lambda: len(readings.messages) >= count + 2, 40), node.output()
        assert "no heartbeat" in node.output()
    finally:
        dev.stop()


def test_cpm_mode_on_four_byte_firmware_with_dead_time(ros, launcher, tmp_path):
    """GETCPM polled from a GMC-320 firmware 5.73 (4-byte counts) near a strong source: with
    the tube's dead time corrected, the dose is the emulated one within 3 %."""
    dev = GmcCounter(tmp_path / "gmc", dose=1000.0, firmware="5.73", seed=8).start()
    readings = ros.subscribe(RadiationReading, TOPIC)
    node = launcher.start("radiation_sensor", namespace="rover1", parameters={
        "port": str(dev.link), "mode": "cpm", "period": 0.5, "dead_time": 90e-6})
    try:
        assert wait_until(lambda: len(readings.messages) >= 3, 40), node.output()
        msg = readings.messages[-1]
        assert msg.counts_per_minute > 0xFFFF  # needs the 4-byte reply
        assert abs(msg.dose_rate - 1000.0) < 30.0, msg
        assert msg.dose_rate_stddev < 10.0
        assert msg.counts_per_minute * 0.0065 < 0.9 * msg.dose_rate  # the correction acted
    finally:
        dev.stop()


def test_bad_parameters_are_refused(launcher):
    bad = launcher.start("radiation_sensor", parameters={"port": "/dev/null",
                                                         "usv_per_cpm": -1.0})
    assert wait_until(lambda: not bad.alive, 20)
    assert bad.returncode == 2 and "parameter 'usv_per_cpm'" in bad.output()
    mode = launcher.start("radiation_sensor", parameters={"port": "/dev/null", "mode": "cps"})
    assert wait_until(lambda: not mode.alive, 20)
    assert mode.returncode == 2 and "parameter 'mode'" in mode.output()
