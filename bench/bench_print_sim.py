"""Printing the landing pad in simulation, end to end: speed against real time.

The builder stack runs in sim mode (the embedded simulator with the gantry printer at the
south_pole world's construction_site, the construction node streaming to it over its pty,
the layer check on the sim's site height image); a `print_structure` goal prints
config/designs/landing_pad_small.yaml. Speed factor = the slicer's estimate of the print's
real duration / the wall time from goal to result. Target (issue 9): 50x real time or faster.

The printer's moves run at `printer_speedup` times their feed rate (wall clock), so the
factor is bounded by it; what the bench shows is how much of it survives the serial line
(115200 baud), the node, the layer waits and the simulator sharing the CPU. It also times
one merge of the printed pad into the terrain (in place) against compiling the model anew.

    .venv/bin/python bench/bench_print_sim.py [--speedup 100 200] [--world south_pole]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ilrs_robots.drivers.print_files import load_plan, load_printer
from ilrs_robots.resources import config_path
from ilrs_robots.runner.cli import running_stack
from ilrs_robots.runner.ros_client import wait_until

DESIGN = config_path("designs", "landing_pad_small.yaml")


def print_once(speedup: float, world: str, domain_id: int) -> tuple[float, int, str]:
    """Run the builder sim stack, print the pad; (wall s, error code, message)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        overrides = {"sim": {"printer_speedup": float(speedup), "world": world}}
        with running_stack("builder", "sim", run_dir, domain_id, overrides):
            from rclpy.action import ActionClient

            from ilrs_interfaces.action import PrintStructure
            from ilrs_robots.nodes.goal_requests import send_goal
            from ilrs_robots.runner.ros_client import RosClient

            with RosClient("bench_print_sim") as ros:
                client = ActionClient(ros.node, PrintStructure, "/builder1/print_structure")
                if not client.wait_for_server(timeout_sec=120):
                    raise SystemExit("the construction node did not come up")
                if not wait_until(lambda: (run_dir / "builder1" / "printer").exists(), 120):
                    raise SystemExit("the simulator did not serve the printer")
                t0 = time.perf_counter()
                handle = send_goal(client, PrintStructure.Goal(design=str(DESIGN)), timeout=60)
                if handle is None or not handle.accepted:
                    raise SystemExit("the construction node did not take the print goal")
                result = handle.get_result_async()
                wait_until(result.done, 3600, period=0.05)
                wall = time.perf_counter() - t0
                r = result.result().result
                return wall, int(r.error_code), r.error_msg


def terrain_merge_costs(world: str) -> None:
    """One in-place terrain update of the printed pad vs a compile of the model."""
    import mujoco

    from ilrs_robots.core.construction.slicer import expected_height_field
    from ilrs_robots.sim.physics import RoverPhysics
    from ilrs_robots.sim.site_printer import SitePrinter
    from ilrs_robots.sim.world import load_world

    plan = load_plan(DESIGN)
    with tempfile.TemporaryDirectory() as tmp:
        physics = RoverPhysics(load_world(world))
        sp = SitePrinter(physics, "construction_site", Path(tmp) / "printer",
                         load_printer(None))
        pad = expected_height_field(plan.design, plan.layer_height, sp.grid)
        physics.render("nav_left", 320, 240)
        t0 = time.perf_counter()
        added = sp.node_heights(pad)
        physics.set_terrain_heights(sp.i0, sp.j0, sp.base + added)
        t1 = time.perf_counter()
        physics.render("nav_left", 320, 240)  # includes the re-upload to the renderer
        t2 = time.perf_counter()
        physics.render("nav_left", 320, 240)
        t3 = time.perf_counter()
        spec = mujoco.MjSpec.from_string(physics.xml)
        t4 = time.perf_counter()
        spec.compile()
        t5 = time.perf_counter()
        physics.close()
    print(f"terrain merge ({world}, {sp.base.size} nodes under the printer): in place "
          f"{(t1 - t0) * 1e3:.1f} ms; next render {(t2 - t1) * 1e3:.0f} ms vs "
          f"{(t3 - t2) * 1e3:.0f} ms without an upload; MjSpec parse {(t4 - t3) * 1e3:.0f} "
          f"ms + compile {(t5 - t4) * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speedup", type=float, nargs="+", default=[100.0])
    parser.add_argument("--world", default="south_pole")
    args = parser.parse_args()
    plan = load_plan(DESIGN)
    estimate = plan.time_s[-1]
    print(f"{plan.name}: {len(plan.commands)} lines, {plan.layers[-1] + 1} layers, estimated "
          f"{estimate:.0f} s real time; target 50x = {estimate / 50:.1f} s")
    domain = 150 + os.getpid() % 50
    for speedup in args.speedup:
        wall, code, msg = print_once(speedup, args.world, domain)
        print(f"printer_speedup {speedup:g}: {wall:.1f} s wall, {estimate / wall:.1f}x real "
              f"time (result {code}{' ' + msg if msg else ''}; target >= 50x)")
    terrain_merge_costs(args.world)


if __name__ == "__main__":
    main()
