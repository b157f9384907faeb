"""Visual inspection checks: gauge reading error in degrees over seeded synthetic gauges,
change-detection precision and recall over seeded planted anomalies, and the time per check.

Gauges (ilrs_robots.core.inspection.synthetic.draw_gauge): needle angle uniform over a
-135..135 deg scale, dial off-centre by up to 12 px, brightness gain 0.7..1.2 and bias +-20,
at image qualities "clear" (240 px, noise 8, blur 1.5 px), "poor" (120 px, noise 15, blur
2.5 px), and "clear" seen 37 deg and 45 deg off-axis (foreshortened to 0.8 and 0.7 along a
random direction). Error: |read - true| needle angle; a refused reading counts as a failure.

Changes: a textured 640x480 scene, seen again from a random small change of viewpoint and
light (Viewpoint.random: strength 1 = +-3 deg, +-15 px, +-3 % scale, 6 px tilt, gain
0.76..1.31, bias +-20; strength 1.5 = half as much again), half the pairs with a planted
object (30..70 px). A region hits the object when their boxes' IoU > 0.3; precision = hits /
regions reported, recall = objects hit / objects planted; clean pairs with any region count
as false alarms.

    .venv/bin/python bench/bench_inspection.py [GAUGES] [PAIRS]
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from ilrs_robots.core.inspection.rounds import GaugeScale
from ilrs_robots.core.inspection.synthetic import (
    Viewpoint,
    degrade,
    draw_gauge,
    foreshorten,
    plant_object,
    textured_scene,
)
from ilrs_robots.core.inspection.visual import (
    AlignmentError,
    GaugeError,
    detect_changes,
    iou,
    read_gauge,
)

SCALE = GaugeScale(-135.0, 135.0, 0.0, 10.0)
QUALITIES = {"clear": (240, 8.0, 1.5, 1.0), "poor": (120, 15.0, 2.5, 1.0),
             "oblique 37 deg": (240, 8.0, 1.5, 0.8), "oblique 45 deg": (240, 8.0, 1.5, 0.7)}


def bench_gauges(n: int) -> list[tuple[str, ...]]:
    rows = []
    for name, (size, noise, blur, squash) in QUALITIES.items():
        errors, times, failed = [], [], 0
        for seed in range(n):
            rng = np.random.default_rng(10_000 + seed)
            angle = float(rng.uniform(-135.0, 135.0))
            off = tuple(int(v) for v in rng.integers(-size // 20, size // 20 + 1, 2))
            img = draw_gauge(angle, SCALE, size=size, offset=off)
            if squash < 1.0:
                img = foreshorten(img, squash, float(rng.uniform(0.0, 180.0)))
            img = degrade(img, seed, noise, blur, float(rng.uniform(0.7, 1.2)),
                          float(rng.uniform(-20.0, 20.0)))
            t = time.perf_counter()
            try:
                reading = read_gauge(img, SCALE)
            except GaugeError:
                failed += 1
                continue
            finally:
                times.append(time.perf_counter() - t)
            errors.append(abs(reading.angle_deg - angle))
        e = np.array(errors) if errors else np.array([np.nan])
        rows.append((f"gauge {name}, {size} px", str(n), f"{np.mean(e):.2f}",
                     f"{np.percentile(e, 95):.2f}", f"{np.max(e):.2f}", str(failed),
                     f"{1000 * statistics.median(times):.0f}"))
    return rows


def bench_changes(n: int) -> list[tuple[str, ...]]:
    rows = []
    for strength in (1.0, 1.5):
        hits = regions = planted = false_alarms = refused = 0
        times = []
        for seed in range(n):
            scene = textured_scene(seed)
            plant = seed % 2 == 0
            changed, box = plant_object(scene, 500 + seed) if plant else (scene, None)
            view, _ = Viewpoint.random(900 + seed, strength).apply(changed, seed)
            planted += plant
            t = time.perf_counter()
            try:
                result = detect_changes(scene, view)
            except AlignmentError:
                refused += 1
                continue
            finally:
                times.append(time.perf_counter() - t)
            regions += len(result.regions)
            hit = box is not None and any(iou(r.bbox, box) > 0.3 for r in result.regions)
            hits += hit
            false_alarms += (not plant) and bool(result.regions)
        precision = hits / regions if regions else float("nan")
        recall = hits / planted if planted else float("nan")
        rows.append((f"change, view strength {strength:g}", str(n), f"{precision:.2f}",
                     f"{recall:.2f}", f"{false_alarms}/{n - planted}", str(refused),
                     f"{1000 * statistics.median(times):.0f}"))
    return rows


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    print()


def main() -> None:
    gauges = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    _table(("gauge reading", "n", "mean deg", "p95 deg", "max deg", "refused", "ms/check"),
           bench_gauges(gauges))
    _table(("change detection", "pairs", "precision", "recall", "false alarms", "refused",
            "ms/check"), bench_changes(pairs))


if __name__ == "__main__":
    main()
