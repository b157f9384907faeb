"""The simulated radiation field (inverse square, berm shielding, background) and the counts
of a dead-time-limited GM tube."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilrs_robots.sim import radiation as rad
from ilrs_robots.sim.radiation import Berm, CountGenerator, PointSource, RadiationField
from ilrs_robots.sim.world import load_world


def test_inverse_square_plus_background() -> None:
    f = RadiationField([PointSource("s", (0.0, 0.0, 1.0), 100.0)], background=0.1)
    assert f.dose_rate((1.0, 0.0, 1.0)) == pytest.approx(100.1)
    assert f.dose_rate((0.0, 2.0, 1.0)) == pytest.approx(25.1)
    assert f.dose_rate((3.0, 4.0, 1.0)) == pytest.approx(4.1)
    assert f.dose_rate((0.0, 0.0, 1.0)) == pytest.approx(100 / 0.09 + 0.1)  # clamped, finite
    two = RadiationField([PointSource("a", (0, 0, 0), 10.0), PointSource("b", (4, 0, 0), 10.0)],
                         background=0.0)
    assert two.dose_rate((2.0, 0.0, 0.0)) == pytest.approx(5.0)  # superposition
    assert np.allclose(two.dose_rates([(2, 0, 0), (1, 0, 0)]), [5.0, 10.0 + 10.0 / 9])


BERM = Berm((0.0, 0.0), 0.0, radius=6.0, thickness=1.5, height=2.0, gap_deg=40.0,
            gap_azimuth_deg=180.0)


def test_berm_path_lengths() -> None:
    src = (0.0, 0.0, 1.0)
    assert BERM.path_length(src, (20.0, 0.0, 1.0)) == pytest.approx(1.5)  # radial, east
    assert BERM.path_length(src, (0.0, -20.0, 1.0)) == pytest.approx(1.5)  # radial, south
    assert BERM.path_length(src, (-20.0, 0.0, 1.0)) == 0.0  # through the opening (west)
    assert BERM.path_length(src, (-20.0, 20 * math.tan(math.radians(15)), 1.0)) == 0.0
    assert BERM.path_length(src, (4.0, 0.0, 1.0)) == 0.0  # inside the ring
    assert BERM.path_length(src, (6.0, 0.0, 1.0)) == pytest.approx(0.75)  # mid-wall
    assert BERM.path_length(src, (20.0, 0.0, 30.0)) == 0.0  # over the top (steep line)
    # a chord on the line x = 6, east side: it misses the inner circle (r 5.25)
    chord = BERM.path_length((6.0, -10.0, 1.0), (6.0, 10.0, 1.0))
    assert chord == pytest.approx(2 * math.sqrt(6.75 ** 2 - 36))
    # both ends outside, passing through both walls (east and west of the ring)
    through = BERM.path_length((-20.0, 1.0, 1.0), (20.0, 1.0, 1.0))
    assert 1.5 < through < 1.6  # west wall is in the opening; only the east wall counts
    through_ns = BERM.path_length((1.0, -20.0, 1.0), (1.0, 20.0, 1.0))
    assert 3.0 < through_ns < 3.2  # north and south walls


def test_berm_attenuates_and_the_opening_does_not() -> None:
    src = PointSource("core", (0.0, 0.0, 1.5), 5000.0)
    f = RadiationField([src], [BERM], background=0.0, mu=5.0)
    open_field = RadiationField([src], [], background=0.0)
    east, west = (20.0, 0.0, 0.5), (-20.0, 0.0, 0.5)
    assert f.dose_rate(west) == pytest.approx(open_field.dose_rate(west))
    ratio = f.dose_rate(east) / open_field.dose_rate(east)
    length = BERM.path_length(src.position, east)
    assert length >= 1.5
    assert ratio == pytest.approx(math.exp(-5.0 * length))
    assert ratio < 1e-3


def test_world_sources_and_berm_in_world_coordinates() -> None:
    world = load_world("south_pole")
    f = RadiationField.from_world(world)
    names = {s.name: s for s in f.sources}
    assert set(names) == {"reactor_core", "coolant_loop_east", "coolant_loop_west"}
    assert names["reactor_core"].position == (130.0, 100.0, 1.5)
    assert names["coolant_loop_east"].position == (142.0, 100.0, 1.0)
    assert len(f.berms) == 1
    b = f.berms[0]
    assert (b.center, b.radius, b.thickness, b.height, b.gap_deg, b.gap_azimuth_deg) == (
        (130.0, 100.0), 6.0, 1.5, 2.0, 40.0, 180.0)
    # 20 m west of the core, in the opening's beam: the core dominates
    west = f.dose_rate((110.0, 100.0, 0.5))
    assert west == pytest.approx(5000 / (20 ** 2 + 1) + 0.2, rel=0.05)
    # 20 m north, behind the berm: only the coolant loops and the background are left
    north = f.dose_rate((130.0, 120.0, 0.5))
    assert north < 0.5
    assert north > f.background


def test_tube_count_rate_and_dead_time() -> None:
    assert rad.expected_cpm(0.0065) == pytest.approx(1.0)
    assert rad.expected_cpm(1.0, 0.0065) == pytest.approx(153.846, rel=1e-4)
    n = 10000.0
    m = rad.recorded_rate(n, 90e-6)
    assert m == pytest.approx(n / 1.9)
    assert rad.true_rate(m, 90e-6) == pytest.approx(n)
    assert rad.true_rate(1 / 90e-6, 90e-6) == math.inf


def test_counts_are_poisson_at_low_rates_and_seeded() -> None:
    gen = CountGenerator(seed=3)
    counts = np.array([gen.counts(5.0) for _ in range(4000)])
    assert counts.mean() == pytest.approx(5.0, rel=0.04)
    assert counts.var() == pytest.approx(5.0, rel=0.1)  # Poisson: variance = mean
    again = CountGenerator(seed=3)
    assert [again.counts(5.0) for _ in range(50)] == list(counts[:50])
    other = CountGenerator(seed=4)
    assert [other.counts(5.0) for _ in range(50)] != list(counts[:50])
    assert gen.counts(0.0) == 0


@pytest.mark.parametrize("rate", [2000.0, 20000.0])
def test_counts_follow_non_paralysable_dead_time(rate: float) -> None:
    tau = 90e-6
    gen = CountGenerator(seed=1, dead_time=tau)
    counts = np.array([gen.counts(rate, 1.0) for _ in range(300)])
    expected = rate / (1 + rate * tau)
    assert counts.mean() == pytest.approx(expected, rel=0.01)
    # a dead-time counter is under-dispersed: variance ~ m / (1 + n tau)^2
    assert counts.var() < counts.mean()
    assert counts.var() == pytest.approx(expected / (1 + rate * tau) ** 2, rel=0.3)


def test_dead_time_carries_across_short_intervals() -> None:
    """Counting in 10 ms slices gives the same rate as in 1 s slices (no free restarts)."""
    tau, rate = 90e-6, 20000.0
    gen = CountGenerator(seed=2, dead_time=tau)
    total = sum(gen.counts(rate, 0.01) for _ in range(3000))
    assert total / 30.0 == pytest.approx(rate / (1 + rate * tau), rel=0.01)


def test_vectorised_field_matches_point_by_point() -> None:
    f = RadiationField.from_world(load_world("south_pole"))
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(100, 160, 300), rng.uniform(70, 130, 300),
                           rng.uniform(0.0, 3.0, 300)])
    assert np.allclose(f.dose_rates(pts), [f.dose_rate(p) for p in pts], rtol=1e-9)
    core = f.sources[0].position
    lengths = f.berms[0].path_lengths(core, pts)
    assert np.allclose(lengths, [f.berms[0].path_length(core, p) for p in pts])
    assert np.allclose(f.transmission(core, pts), np.exp(-f.mu * lengths))
