"""Radiation mapping figures: source localisation error and dose-map error against ground
truth, over seeded variants of the south_pole reactor site.

Each seed moves the reactor core (within 3 m of the site centre), turns the berm's opening
to a random azimuth and draws 10 s GMC-320 readings (Poisson counts, M4011 calibration) at
240 points on two rounds of 18 m and 25 m about the site centre (outside the 15 m keep-out).
Printed per seed and as medians: the horizontal error of the core and of the two coolant
loops (nearest estimate), the core's strength error, and the dose map's median relative error
on the rounds' ring (16..27 m) at the sensor's height.

    .venv/bin/python bench/bench_radiation_mapping.py [SEEDS]
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys
import time

import numpy as np

from ilrs_robots.core import radiation_mapping as rm
from ilrs_robots.core.dosimetry import estimate
from ilrs_robots.sim.radiation import CountGenerator, PointSource, RadiationField
from ilrs_robots.sim.world import load_world

SENSOR_Z = 0.5


def variant(seed: int) -> RadiationField:
    """The south_pole reactor field with the core moved and the berm's opening turned."""
    base = RadiationField.from_world(load_world("south_pole"))
    rng = np.random.default_rng(seed)
    shift = rng.uniform(-3.0, 3.0, 2)
    sources = []
    for s in base.sources:
        if s.name == "reactor_core":
            s = PointSource(s.name, (s.position[0] + shift[0], s.position[1] + shift[1],
                                     s.position[2]), s.dose_rate_at_1m)
        sources.append(s)
    berm = dataclasses.replace(base.berms[0], center=(base.berms[0].center[0] + shift[0],
                                                      base.berms[0].center[1] + shift[1]),
                               gap_azimuth_deg=float(rng.uniform(0.0, 360.0)))
    return RadiationField(sources, [berm], base.background, base.mu)


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    center = (130.0, 100.0)
    a = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    path = np.vstack([np.column_stack([center[0] + r * np.cos(a), center[1] + r * np.sin(a),
                                       np.full(len(a), SENSOR_Z)]) for r in (18.0, 25.0)])
    xs = np.arange(center[0] - 30, center[0] + 30.1, 1.0)
    ys = np.arange(center[1] - 30, center[1] + 30.1, 1.0)
    gx, gy = np.meshgrid(xs, ys)
    ring = np.abs(np.hypot(gx - center[0], gy - center[1]) - 21.5) < 5.5
    grid = np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, SENSOR_Z)])
    rows = []
    print(f"{'seed':>4} {'core m':>7} {'east m':>7} {'west m':>7} {'core S %':>8} "
          f"{'map %':>6} {'found':>5} {'fit s':>6}")
    for seed in range(seeds):
        field = variant(seed)
        gen = CountGenerator(seed, dead_time=0.0)
        dose, std = [], []
        for rate in field.dose_rates(path) / 0.0065 / 60.0:
            e = estimate(gen.counts(rate, 10.0), 10.0, 0.0065)
            dose.append(e.dose_rate)
            std.append(e.dose_rate_stddev)
        t0 = time.perf_counter()
        fit = rm.localize_sources(path, dose, std, transmission=field.transmission)
        fit_s = time.perf_counter() - t0
        errors = {}
        for s in field.sources:
            nearest = min(fit.sources, key=lambda f, q=s.position: math.dist(f.position[:2],
                                                                                 q[:2]))
            errors[s.name] = (math.dist(nearest.position[:2], s.position[:2]),
                              nearest.strength / s.dose_rate_at_1m - 1.0)
        m = rm.dose_map(path, dose, std, xs, ys, SENSOR_Z, fit=fit)
        truth = field.dose_rates(grid).reshape(gx.shape)
        map_err = float(np.median(np.abs(m.dose[ring] / truth[ring] - 1.0)))
        row = (errors["reactor_core"][0], errors["coolant_loop_east"][0],
               errors["coolant_loop_west"][0], 100 * errors["reactor_core"][1],
               100 * map_err, len(fit.sources), fit_s)
        rows.append(row)
        print(f"{seed:>4} {row[0]:7.2f} {row[1]:7.2f} {row[2]:7.2f} {row[3]:8.1f} "
              f"{row[4]:6.1f} {row[5]:5d} {row[6]:6.1f}")
    med = [statistics.median(abs(r[i]) for r in rows) for i in range(7)]
    print(f"{'med':>4} {med[0]:7.2f} {med[1]:7.2f} {med[2]:7.2f} {med[3]:8.1f} "
          f"{med[4]:6.1f} {med[5]:5.0f} {med[6]:6.1f}")


if __name__ == "__main__":
    main()
