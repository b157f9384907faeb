"""Dose rate and its Poisson uncertainty from Geiger counts, with and without dead time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilrs_robots.core.dosimetry import CountWindow, estimate
from ilrs_robots.sim.radiation import CountGenerator, recorded_rate


def test_estimate_without_dead_time() -> None:
    e = estimate(600, 60.0, 0.0065)
    assert e.cpm == pytest.approx(600.0)
    assert e.dose_rate == pytest.approx(600 * 0.0065)
    assert e.dose_rate_stddev == pytest.approx(math.sqrt(600) * 0.0065)
    short = estimate(60, 6.0, 0.0065)  # same rate, a tenth of the counts: sqrt(10) worse
    assert short.dose_rate == pytest.approx(e.dose_rate)
    assert short.dose_rate_stddev == pytest.approx(e.dose_rate_stddev * math.sqrt(10))
    zero = estimate(0, 10.0, 0.0065)
    assert zero.dose_rate == 0.0 and zero.dose_rate_stddev > 0.0
    with pytest.raises(ValueError):
        estimate(1, 0.0, 0.0065)


def test_dead_time_correction_undoes_the_counter() -> None:
    tau, n = 90e-6, 10000.0
    m = recorded_rate(n, tau)
    e = estimate(round(m * 10), 10.0, 0.0065, dead_time=tau)
    assert e.dose_rate == pytest.approx(n * 60 * 0.0065, rel=1e-3)
    assert e.cpm == pytest.approx(m * 60, rel=1e-3)
    plain = estimate(round(m * 10), 10.0, 0.0065)
    assert e.dose_rate_stddev > plain.dose_rate_stddev
    assert estimate(20000, 1.0, 0.0065, dead_time=tau).saturated


def test_window_slides() -> None:
    w = CountWindow(5.0)
    for t in range(10):
        w.add(float(t), 10 + t)
    assert w.totals(9.0) == (15 + 16 + 17 + 18 + 19, 5)
    assert w.newest == 9.0
    assert w.estimate(100.0, 0.0065) is None  # all too old
    w.add(101.0, 3)
    assert w.totals(101.0) == (3, 1)
    # by number, not by arrival: jittered arrivals still give five seconds of exposure
    j = CountWindow(5.0)
    for t in (0.0, 0.97, 2.04, 2.99, 4.02, 5.01):
        j.add(t, 1)
    assert j.totals(5.02) == (5, 5)
    assert j.estimate(5.02, 0.0065).seconds == 5.0


def test_stddev_matches_the_spread_of_simulated_readings() -> None:
    """Readings over 10 s windows of simulated counts: their spread is the stated stddev."""
    gen = CountGenerator(seed=9)
    rate = 10.0 / 0.0065 / 60  # 10 uSv/h
    readings, stated = [], []
    for _ in range(400):
        counts = sum(gen.counts(rate) for _ in range(10))
        e = estimate(counts, 10.0, 0.0065)
        readings.append(e.dose_rate)
        stated.append(e.dose_rate_stddev)
    assert np.mean(readings) == pytest.approx(10.0, rel=0.02)
    assert np.std(readings) == pytest.approx(np.mean(stated), rel=0.1)
