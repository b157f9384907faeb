"""Slicer: toolpaths stay within the design and cover it; G-code for paste and laser;
estimates agree with the G-code's own."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ilrs_robots.core.construction.designs import parse_design, parse_printer_yaml
from ilrs_robots.core.construction.gcode import estimate, parse_program
from ilrs_robots.core.construction.slicer import (
    HeightGrid,
    compare_height_fields,
    expected_height_field,
    slice_design,
    write_gcode,
)

ROOT = Path(__file__).resolve().parents[2]
PASTE = parse_printer_yaml((ROOT / "config/printers/regolith_paste_gantry.yaml").read_text())
LASER = parse_printer_yaml((ROOT / "config/printers/regolith_laser_sinter.yaml").read_text())

SMALL = {
    "landing_pad": {"diameter": 2.0, "thickness": 0.04, "rim_width": 0.15, "rim_height": 0.04},
    "blast_berm": {"radius": 1.5, "arc_deg": 90.0, "center_azimuth_deg": 30.0,
                   "base_width": 0.4, "height": 0.1, "batter_deg": 60.0},
    "straight_wall": {"length": 1.5, "thickness": 0.2, "height": 0.1, "origin": [0.5, -0.5],
                      "yaw_deg": 30.0},
    "curved_wall": {"radius": 1.5, "arc_deg": 120.0, "thickness": 0.15, "height": 0.1},
    "corbelled_dome": {"diameter": 2.0, "height": 1.6, "wall_thickness": 0.15,
                       "oculus_diameter": 0.4},
    "shield_ring": {"radius": 1.2, "thickness": 0.3, "height": 0.06, "gap_deg": 40.0,
                    "gap_azimuth_deg": 180.0},
}


def design(kind: str):
    return parse_design({"name": kind, "type": kind, **SMALL[kind]})


def stamp(result, grid: HeightGrid) -> np.ndarray:
    """Beads laid along the toolpaths (an independent rasterisation)."""
    heights = grid.zeros()
    x, y = grid.centres()
    half = result.printer.bead_width / 2
    pad = int(math.ceil(half / grid.cell)) + 1
    for layer in result.layers:
        for path in layer.paths:
            for p0, p1 in zip(path[:-1], path[1:], strict=True):
                j0, i0 = ((np.minimum(p0, p1) - (grid.x0, grid.y0)) / grid.cell).astype(int)
                j1, i1 = ((np.maximum(p0, p1) - (grid.x0, grid.y0)) / grid.cell).astype(int)
                window = (slice(max(i0 - pad, 0), i1 + pad + 1),
                          slice(max(j0 - pad, 0), j1 + pad + 1))
                wx, wy = x[window], y[window]
                d = p1 - p0
                length2 = float(d @ d) or 1e-12
                t = np.clip(((wx - p0[0]) * d[0] + (wy - p0[1]) * d[1]) / length2, 0, 1)
                near = (wx - p0[0] - t * d[0]) ** 2 + (wy - p0[1] - t * d[1]) ** 2 <= half ** 2
                np.maximum(heights[window], np.where(near, layer.z, 0.0), out=heights[window])
    return heights


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_toolpaths_fill_the_design_within_a_bead(kind: str) -> None:
    d = design(kind)
    result = slice_design(d, PASTE)
    h = result.layer_height
    assert len(result.layers) == math.ceil(d.height / h - 1e-9)
    assert [layer.z for layer in result.layers] == pytest.approx(
        [(k + 1) * h for k in range(len(result.layers))])
    grid = HeightGrid(-2.0, -2.0, 0.0125, 320, 320)
    expected = expected_height_field(d, h, grid)
    printed = stamp(result, grid)
    deviation = compare_height_fields(printed, expected, grid.cell, PASTE.bead_width, h)
    assert deviation.ok, deviation
    # the beads cover the design: few expected cells are left without their top layer
    solid = expected > 0
    missing = solid & (printed < expected - 1e-9)
    assert missing.sum() <= 0.25 * solid.sum(), (missing.sum(), solid.sum())


def test_the_comparison_sees_a_missing_layer_and_a_stray_bead() -> None:
    d = design("curved_wall")
    result = slice_design(d, PASTE)
    grid = HeightGrid(-2.0, -2.0, 0.0125, 320, 320)
    expected = expected_height_field(d, result.layer_height, grid)
    printed = stamp(result, grid)
    short = printed.copy()
    short[short > 0.06] = 0.06  # the last two layers were never printed
    assert not compare_height_fields(short, expected, grid.cell, 0.05, 0.02).ok
    stray = printed.copy()
    stray[10:14, 10:14] = 0.06  # three layers of beads far from the wall
    assert compare_height_fields(stray, expected, grid.cell, 0.05, 0.02).cells_out == 16


def test_paste_gcode_extrudes_and_its_estimate_matches_the_slicer() -> None:
    result = slice_design(design("landing_pad"), PASTE)
    text = write_gcode(result)
    program = parse_program(text)
    codes = {ln.command.code for ln in program.lines}
    assert {"G21", "G90", "M83", "G0", "G1", "M400"} <= codes and "M3" not in codes
    assert program.layers_total == len(result.layers)
    est = estimate(program)
    e = result.estimates
    assert est.total_time_s == pytest.approx(e.time_s, rel=0.02)
    assert est.extruded_mm[-1] / 1000.0 == pytest.approx(e.deposit_length_m, rel=0.01)
    volume_from_e = est.e_total[-1] * PASTE.ram_area_mm2 * 1e-9
    assert volume_from_e == pytest.approx(e.volume_m3, rel=0.01)
    assert e.mass_kg == pytest.approx(e.volume_m3 * PASTE.density_kg_m3)
    assert e.energy_j > PASTE.motion_power_w * e.time_s
    z_moves = [ln.command.get("Z") for ln in program.lines
               if ln.command.code == "G0" and ln.command.has("Z")]
    assert z_moves[:2] == [20.0, 40.0]


def test_laser_gcode_sinters_with_m4_power_and_m5_for_travel() -> None:
    d = parse_design({"name": "tile", "type": "landing_pad", "diameter": 1.0,
                      "thickness": 0.02})
    result = slice_design(d, LASER)
    program = parse_program(write_gcode(result))
    lines = [ln.command for ln in program.lines]
    assert not any(c.has("E") for c in lines)
    on = [c for c in lines if c.code == "M4"]
    assert on and all(c.get("S") == 800 for c in on)
    laser = False
    for c in lines:  # travel never with the laser on, deposition never with it off
        if c.code in ("M3", "M4"):
            laser = True
        elif c.code == "M5":
            laser = False
        elif c.code == "G0":
            assert not laser
        elif c.code == "G1":
            assert laser
    e = result.estimates
    assert e.energy_j == pytest.approx(
        LASER.motion_power_w * e.time_s
        + 3000.0 * 0.8 * e.deposit_length_m / (LASER.print_feed / 60000.0), rel=1e-6)
    assert len(result.layers) == 2  # 20 mm at 10 mm layers


def test_arcs_keep_to_the_chord_tolerance() -> None:
    result = slice_design(design("shield_ring"), PASTE)
    ring = result.design.section(0.01)[0]
    for path in result.layers[0].paths:
        r_end = np.hypot(path[:, 0], path[:, 1])
        # every vertex lies inside the ring, half a bead in
        assert r_end.min() >= ring.r_in + PASTE.bead_width / 2 - 1e-6
        assert r_end.max() <= ring.r_out - PASTE.bead_width / 2 + 1e-6
        on_arc = np.isclose(r_end[1:], r_end[:-1], atol=1e-9)  # segments along an arc
        mids = (path[1:] + path[:-1]) / 2
        sag = r_end[1:] - np.hypot(mids[:, 0], mids[:, 1])
        assert on_arc.sum() > 50
        assert sag[on_arc].max() <= PASTE.chord_tolerance + 1e-9


def test_dome_layers_step_inward_and_stop_at_the_oculus() -> None:
    d = design("corbelled_dome")
    result = slice_design(d, PASTE)
    outer = [max(np.hypot(p[:, 0], p[:, 1]).max() for p in layer.paths)
             for layer in result.layers]
    inner = [min(np.hypot(p[:, 0], p[:, 1]).min() for p in layer.paths)
             for layer in result.layers]
    assert all(b <= a + 1e-9 for a, b in zip(outer, outer[1:], strict=False))
    assert min(inner) >= 0.2 + PASTE.bead_width / 2 - 1e-6
    steps = -np.diff(outer)
    assert steps.max() <= PASTE.max_corbel_step * PASTE.bead_width + 0.002
