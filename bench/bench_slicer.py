"""Slicer figure: slicing the shipped 10 m corbelled dome at 20 mm layers, and writing its
G-code. Target (issue 9): under 5 s on 2 cores.

    .venv/bin/python bench/bench_slicer.py
"""

from __future__ import annotations

import time

from ilrs_robots.core.construction.designs import parse_design_yaml, parse_printer_yaml
from ilrs_robots.core.construction.slicer import slice_design, write_gcode
from ilrs_robots.resources import config_path


def main() -> None:
    design = parse_design_yaml(config_path("designs", "corbelled_dome.yaml").read_text())
    printer = parse_printer_yaml(config_path("printers", f"{design.printer}.yaml").read_text())
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        result = slice_design(design, printer, 0.02)
        t1 = time.perf_counter()
        text = write_gcode(result)
        t2 = time.perf_counter()
        runs.append((t1 - t0, t2 - t1))
    slice_s, write_s = min(runs, key=sum)
    e = result.estimates
    print(f"dome {design.params['diameter']:g} m, {len(result.layers)} layers of 20 mm, "
          f"{text.count(chr(10))} G-code lines")
    print(f"slice {slice_s:.2f} s + G-code {write_s:.2f} s = {slice_s + write_s:.2f} s "
          f"(target < 5 s)")
    print(f"estimates: {e.time_s / 3600:.1f} h, {e.mass_kg / 1000:.1f} t, "
          f"{e.energy_j / 3.6e6:.0f} kWh")


if __name__ == "__main__":
    main()
