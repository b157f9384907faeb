"""Localization EKF over a long synthetic traverse: final position error as % of the
distance driven, and heading error, against dead reckoning. Prints a table against the
targets (< 2 % and < 2 deg).

The traverse and its sensors come from the unit test's generator (test/unit/
test_estimation.py: wheel odometry with a 3 % scale error and a 15 % skid yaw error, a gyro
with a 0.002 rad/s bias, tilted terrain, and stereo visual odometry with 2 mm / 0.03 deg
noise per keyframe-relative pose, a 0.3 % scale error and 10 % dropped frames). This is not
the simulator's traverse: the figure for ``ilrs sim`` belongs to the localization node.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("test_estimation",
                                              ROOT / "test" / "unit" / "test_estimation.py")
assert spec is not None and spec.loader is not None
gen = importlib.util.module_from_spec(spec)
sys.modules["test_estimation"] = gen  # dataclasses look their module up
spec.loader.exec_module(gen)

TARGET_PCT = 2.0
TARGET_DEG = 2.0
DURATION = 2400.0  # s at 0.5 m/s with stops: about a kilometre


def _err(a, b) -> tuple[float, float]:
    return (math.hypot(a.x - b.x, a.y - b.y),
            abs(math.degrees(gen.wrap_angle(a.yaw - b.yaw))))


def main() -> int:
    print(f"{'seed':>4} {'km':>6} {'fused %':>8} {'fused deg':>9} {'max %':>6} "
          f"{'wheels %':>9} {'wheel+gyro %':>12} {'no-VO %':>8} {'no-VO deg':>9} {'s':>5}")
    worst_pct = worst_deg = 0.0
    for seed in (1, 2, 3):
        t0 = time.perf_counter()
        run = gen.synthetic_run(DURATION, seed=seed)
        blind = gen.synthetic_run(DURATION, seed=seed, vo_dropout=1.0)
        wall = time.perf_counter() - t0
        d = run.distance
        pos, head = _err(run.fused, run.truth)
        wpos, _ = _err(run.wheels_only, run.truth)
        gpos, _ = _err(run.wheels_gyro, run.truth)
        bpos, bhead = _err(blind.fused, blind.truth)
        peak = max(e for _, e, _ in run.error_log) / d * 100
        worst_pct = max(worst_pct, pos / d * 100)
        worst_deg = max(worst_deg, head)
        print(f"{seed:>4} {d / 1000:>6.2f} {pos / d * 100:>8.2f} {head:>9.2f} {peak:>6.2f} "
              f"{wpos / d * 100:>9.2f} {gpos / d * 100:>12.2f} {bpos / blind.distance * 100:>8.2f}"
              f" {bhead:>9.2f} {wall:>5.1f}")
    ok = worst_pct < TARGET_PCT and worst_deg < TARGET_DEG
    print(f"\nworst final position error {worst_pct:.2f} % of distance (target < {TARGET_PCT} %)"
          f", worst heading error {worst_deg:.2f} deg (target < {TARGET_DEG} deg): "
          f"{'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
