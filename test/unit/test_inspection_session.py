"""core/inspection/session: dose accounting, dwell averages, the dose-budget refusal, what a
navigation failure means for a round, finding texts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilrs_robots.core.inspection import session
from ilrs_robots.core.inspection.report import Finding
from ilrs_robots.core.inspection.rounds import (
    DoseForecast,
    RadiationCheck,
    forecast_dose,
    load_round,
)


def test_dose_integrator_holds_each_rate_until_the_next_reading():
    d = session.DoseIntegrator(max_gap=30.0)
    assert d.add(0.0, 36.0) == 0.0
    assert d.add(10.0, 72.0) == pytest.approx(36.0 * 10 / 3600)   # 0.1 uSv
    assert d.add(20.0, 0.0) == pytest.approx(0.1 + 0.2)
    assert d.take() == pytest.approx(0.3)
    assert d.take() == 0.0


def test_dose_integrator_does_not_extrapolate_a_silent_sensor_nor_go_back():
    d = session.DoseIntegrator(max_gap=5.0, start_usv=1.0)
    d.add(0.0, 3600.0)
    assert d.add(100.0, 3600.0) == pytest.approx(1.0 + 5.0)  # 5 s at 1 uSv/s, not 100 s
    assert d.add(50.0, 1e6) == pytest.approx(6.0)            # out of order: ignored
    assert d.add(101.0, math.nan) == pytest.approx(6.0)      # not a rate: ignored
    assert d.add(101.0, -1.0) == pytest.approx(6.0)
    assert d.take() == pytest.approx(5.0)                    # since the start value


def test_dwell_average_counts_the_independent_readings():
    readings = [session.Reading(float(t), 2.0 + 0.1 * (t % 2), 0.4) for t in range(30)]
    r = session.dwell_average(readings, dwell_s=30.0, window_s=10.0, x=1.0, y=2.0)
    assert r.dose_rate == pytest.approx(2.05)
    assert r.stddev == pytest.approx(0.4 / math.sqrt(3.0))   # 30 s of 10 s windows
    assert (r.x, r.y, r.dwell_s) == (1.0, 2.0, 30.0)
    one = session.dwell_average(readings[:1], dwell_s=30.0, window_s=10.0)
    assert one.stddev == pytest.approx(0.4)                  # one reading: its own stddev
    with pytest.raises(ValueError):
        session.dwell_average([], 10.0)


def test_dwell_failure_names_a_silent_sensor():
    check = RadiationCheck(20.0, 5.0)
    assert session.dwell_failure(check, 12, None, 6.0) is None
    text = session.dwell_failure(check, 3, 6.5, 6.0)
    assert text is not None and "stopped answering" in text and "3 reading(s)" in text
    assert "no radiation reading" in (session.dwell_failure(check, 0, None, 6.0) or "")


def test_navigation_failures_skip_the_point_or_end_the_round():
    for code in (9101, 9102, 9103, 9104, 9107, 9003):
        assert session.skips_point(code)
    for code in (9000, 9105, 9108, 9109, 1234):
        assert not session.skips_point(code)
    f = session.navigation_finding("gauges_west", 9103, "goal inside 'reactor zone'")
    assert f.severity == "critical" and f.kind == "navigation"
    assert f.summary() == ("[critical] navigation at gauges_west: not reached: IN_KEEP_OUT: "
                           "goal inside 'reactor zone'")
    assert session.navigation_error_name(4242) == "code 4242"
    assert session.heading_error(math.radians(170), math.radians(-170)) == \
        pytest.approx(math.radians(20))
    assert session.heading_error(None, 0.0) is None


def test_budget_refusal_names_the_worst_point_and_counts_a_resumed_rounds_dose():
    rnd = load_round("reactor_round")
    flat = forecast_dose(rnd, lambda xy: np.full(len(xy), 1.0), (116.0, 81.0))
    assert session.budget_refusal(rnd, flat) is None                  # a few uSv of 20
    hot = DoseForecast(tuple(0.5 for _ in rnd.points),
                       tuple(19.0 if i == 4 else 0.1 for i in range(len(rnd.points))))
    text = session.budget_refusal(rnd, hot)
    assert text is not None and "gauge_coolant_temp_west" in text and "20 uSv" in text
    # resumed after point 3: the forecast covers the rest, the dose taken so far counts
    rest = DoseForecast((1.0, 1.0), (1.0, 1.0))
    assert session.budget_refusal(rnd, rest, already_usv=10.0, from_point=4) is None
    text = session.budget_refusal(rnd, rest, margin=1.5, already_usv=15.0, from_point=4)
    assert text is not None and "taken before the resume" in text
    assert "gauge_coolant" in text and "x 1.5 margin" in text


def test_findings_summary_puts_the_most_severe_first():
    fs = [Finding("photo", "a", "baseline recorded", "info"),
          Finding("radiation", "b", "dose rate 9 uSv/h", "critical"),
          Finding("sensor", "c", "gauge check failed", "warning")]
    lines = session.findings_summary(fs)
    assert [line.split("]")[0] for line in lines] == ["[critical", "[warning", "[info"]
    assert session.budget_finding(21.0, 20.0).severity == "critical"
    assert "check failed: no dial" in session.sensor_finding("p", "gauge g", "no dial").text


def test_dose_map_picture_covers_the_round_and_marks_its_points():
    rnd = load_round("reactor_round")
    assert session.dose_map_picture([(0.0, 0.0, 1.0, 0.1)] * 2, rnd) is None
    rng = np.random.default_rng(1)
    xy = rng.uniform([110.0, 80.0], [150.0, 120.0], size=(40, 2))
    rate = 0.2 + 50.0 / (1.0 + ((xy - (118.0, 100.0)) ** 2).sum(axis=1))
    samples = [(x, y, r, 0.05 * r) for (x, y), r in zip(xy, rate, strict=True)]
    pic = session.dose_map_picture(samples, rnd)
    assert pic is not None and len(pic.points) == len(rnd.points)
    xmin, xmax, ymin, ymax = pic.extent
    assert xmin < 110.0 and xmax > 150.0 and ymin < 80.0 and ymax > 120.0
    assert np.all(np.isfinite(pic.grid)) and pic.grid.max() > 5.0 * pic.grid.min()
