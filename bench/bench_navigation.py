"""Navigation success and speed made good over seeded random goals, on the whole rover stack.

The real stack of `ilrs sim` (simulator, base driver over its emulated RoboClaws, localization,
terrain mapper, navigator) runs in the embedded simulator, faster than real time; goals go to
the navigator by NavigateToPose only. Each goal lies 50-150 m from where the rover stands, in a
random direction, on a cell the first (prior) costmap calls free, 15 m inside the map. A goal
counts as a success when the navigator reports it reached, the true position is within the goal
tolerance (+0.1 m), and the rover never tipped over (true tilt under 45 deg; the tilt limit of
20 deg is reported too). Speed made good is the straight-line distance over the leg's sim
time, against the navigator's maximum speed (`max_linear`).

    .venv/bin/python bench/bench_navigation.py [--goals 20] [--seed 1] [--rate 2]

Targets (issue 8): success >= 95 % with no tip-over, speed made good >= 60 %; the
localization's error at each goal is set against the traverse's target (< 2 % of the distance
driven, < 2 deg).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from ilrs_robots.resources import config_path
from ilrs_robots.runner.environment import ros_environment

SUCCESS_TARGET = 95.0
SPEED_TARGET = 60.0
TIP_OVER_DEG = 45.0
TILT_LIMIT_DEG = 20.0
LOC_TARGET_PCT = 2.0  # localization: final error per distance driven (issue 8, ilrs sim)
LOC_TARGET_DEG = 2.0


def navigator_limits() -> tuple[float, float]:
    """(max_linear m/s, goal_tolerance m) of config/params/navigator.yaml."""
    data = yaml.safe_load(Path(config_path("params/navigator.yaml")).read_text())
    params = next(iter(data.values()))["ros__parameters"]
    return float(params["max_linear"]), float(params["goal_tolerance"])


def pick_goal(rng: np.random.Generator, costmap, x: float, y: float, lo: float, hi: float,
              margin: float = 15.0, clearance: float = 2.0) -> tuple[float, float] | None:
    """A goal lo..hi m from (x, y) whose cells within `clearance` m are known and free
    (cost < 50) on `costmap` (an OccupancyGrid), `margin` m inside it; None after 2000
    draws."""
    info = costmap.info
    res = info.resolution
    cells = np.asarray(costmap.data, dtype=np.int16).reshape(info.height, info.width)
    ox, oy = info.origin.position.x, info.origin.position.y
    r = int(math.ceil(clearance / res))
    for _ in range(2000):
        d, bearing = rng.uniform(lo, hi), rng.uniform(-math.pi, math.pi)
        gx, gy = x + d * math.cos(bearing), y + d * math.sin(bearing)
        col, row = int((gx - ox) / res), int((gy - oy) / res)
        m = int(margin / res)
        if not (m <= col < info.width - m and m <= row < info.height - m):
            continue
        patch = cells[row - r:row + r + 1, col - r:col + r + 1]
        if np.all((patch >= 0) & (patch < 50)):
            return gx, gy
    return None


def main() -> int:
    """Run the goals, print one line per goal and the table against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=20, help="number of goals (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--world", default="south_pole")
    parser.add_argument("--min-distance", type=float, default=50.0)
    parser.add_argument("--max-distance", type=float, default=150.0)
    parser.add_argument("--rate", type=float, default=2.0,
                        help="sim speed (1 real time, 0 flat out; default 2)")
    parser.add_argument("--camera", default="320x240", help="stereo size WxH (320x240)")
    parser.add_argument("--stereo-rate", type=float, default=2.0)
    parser.add_argument("--run-dir", default=None, help="keep the stack's logs here")
    parser.add_argument("--domain-id", type=int, default=90 + os.getpid() % 10)
    args = parser.parse_args()
    os.environ.update(ros_environment(args.domain_id))

    from ilrs_robots.runner.cli import parse_size, resolve_world, running_stack, sim_overrides
    from ilrs_robots.runner.traverse import MissionGoal, Traverse

    args.camera = parse_size(args.camera)
    world = resolve_world(args.world)
    max_linear, tolerance = navigator_limits()
    rng = np.random.default_rng(args.seed)
    rows = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ilrs-bench-") as tmp, \
            running_stack("rover", "sim", Path(args.run_dir or tmp), args.domain_id,
                          sim_overrides(args, world)) as sup, \
            Traverse("rover1", say=lambda text: print(f"    {text}", flush=True)) as trav:
        missing = trav.wait_until_ready(timeout=240)
        if missing is not None:
            sys.exit(f"the stack did not come up: no {missing}")
        print(f"stack up in {time.monotonic() - t0:.0f} s; {args.goals} goals "
              f"{args.min_distance:g}-{args.max_distance:g} m away, seed {args.seed}, sim at "
              f"{args.rate:g}x", flush=True)
        for i in range(1, args.goals + 1):
            here = trav.truth()
            target = pick_goal(rng, trav.first_costmap, here.x, here.y, args.min_distance,
                               args.max_distance)
            if target is None:
                sys.exit(f"no free goal {args.min_distance}-{args.max_distance} m from "
                         f"({here.x:.1f}, {here.y:.1f})")
            yaw = math.atan2(target[1] - here.y, target[0] - here.x)
            goal = MissionGoal(f"goal {i}", target[0], target[1], yaw)
            report = trav.run_leg(goal, label=f"goal {i}/{args.goals}", every=60.0,
                                  check=sup.check)
            tilt = math.degrees(report.max_tilt)
            ok = (report.succeeded and report.goal_error <= tolerance + 0.1
                  and tilt < TIP_OVER_DEG)
            rows.append((report, ok, tilt))
            loc, _ = report.localization_error
            made_good = (f"{100 * report.speed_made_good / max_linear:4.0f} %"
                         if report.sim_time >= 1.0 else "   - ")  # a refusal drives nothing
            print(f"  goal {i:2d} ({goal.x:+7.1f}, {goal.y:+7.1f}) {report.straight:6.1f} m: "
                  f"{'OK  ' if ok else 'FAIL'} {report.error_name:<15} true error "
                  f"{report.goal_error:5.2f} m, localization {loc:5.2f} m, "
                  f"{report.sim_time:5.0f} s sim, made good {made_good}, max tilt "
                  f"{tilt:4.1f} deg, {report.recoveries} recoveries"
                  + ("" if report.succeeded else f" ({report.error_msg})"), flush=True)
            if not sup.check():
                print(f"  required process {sup.failed} died: stopping", flush=True)
                break
    n = len(rows)
    successes = sum(ok for _, ok, _ in rows)
    tipped = sum(t >= TIP_OVER_DEG for _, _, t in rows)
    over_limit = sum(t >= TILT_LIMIT_DEG for _, _, t in rows)
    reached = [r for r, ok, _ in rows if ok]
    made_good = (100 * sum(r.straight for r in reached) / sum(r.sim_time for r in reached)
                 / max_linear) if reached else 0.0
    success = 100.0 * successes / n if n else 0.0
    print()
    print(f"navigation over {n} seeded goals ({args.world}, seed {args.seed}, "
          f"{args.min_distance:g}-{args.max_distance:g} m; "
          f"{time.monotonic() - t0:.0f} s wall)")
    print("| figure | value | target | |\n|---|---|---|---|")
    verdict = "OK" if success >= SUCCESS_TARGET else "MISS"
    print(f"| success | {successes}/{n} = {success:.0f} % | >= {SUCCESS_TARGET:g} % over >= 20 | "
          f"{verdict if n >= 20 else verdict + ' (fewer than 20 goals)'} |")
    print(f"| tip-overs (tilt >= {TIP_OVER_DEG:g} deg) | {tipped} | 0 | "
          f"{'OK' if tipped == 0 else 'MISS'} |")
    print(f"| goals with tilt over the {TILT_LIMIT_DEG:g} deg limit | {over_limit} | 0 | "
          f"{'OK' if over_limit == 0 else 'MISS'} |")
    print(f"| speed made good / max_linear {max_linear:g} m/s (reached goals) | "
          f"{made_good:.0f} % | >= {SPEED_TARGET:g} % | "
          f"{'OK' if made_good >= SPEED_TARGET else 'MISS'} |")
    driven = [(r.localization_error, r.driven) for r, _, _ in rows
              if r.driven > 0 and math.isfinite(r.localization_error[0])]
    if driven:
        worst_pct = max(100.0 * e[0] / d for e, d in driven)
        worst_deg = max(math.degrees(e[1]) for e, _ in driven)
        print(f"| localization error at each goal's end, worst, % of the leg driven | "
              f"{worst_pct:.1f} % | < {LOC_TARGET_PCT:g} % | "
              f"{'OK' if worst_pct < LOC_TARGET_PCT else 'MISS'} |")
        print(f"| heading error at each goal's end, worst | {worst_deg:.1f} deg | "
              f"< {LOC_TARGET_DEG:g} deg | {'OK' if worst_deg < LOC_TARGET_DEG else 'MISS'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
