"""Slicing a design into layers and toolpaths, and writing Marlin G-code.

Each layer is the design's section at the layer's mid-height, filled with beads of the
printer's width: rings and sectors with concentric passes (the outermost and innermost are the
perimeters, those between the infill; sectors get a closed perimeter loop), discs and
rectangles with perimeters and a serpentine infill that alternates 0/90 degrees per layer.
Arcs are polylines within the printer's chord tolerance. The nozzle's Z for a layer is the top
of its beads, ``(k + 1) * layer_height``.

G-code (millimetres, absolute XYZ): paste printers extrude with relative E (``M83``), E being
the ram stroke of the deposited volume; laser printers sinter with ``M3``/``M4 S<power>`` on
for the deposited moves and ``M5`` off for travel. Estimates: constant-speed moves at the
commanded feeds (no acceleration), mass from the bead cross-section and density, energy from
motion power over the whole time plus extrusion or laser power while depositing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ilrs_robots.core.construction.designs import (
    TWO_PI,
    Design,
    PrinterConfig,
    Rect,
    Region,
    Ring,
    check_design,
)

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))  # seam stagger between layers


@dataclass
class Layer:
    """One layer: index, nozzle height (top of the beads, m), deposited polylines (m)."""

    index: int
    z: float
    paths: list[np.ndarray] = field(default_factory=list)

    @property
    def deposit_length(self) -> float:
        """Length of bead laid in this layer, m."""
        return float(sum(np.linalg.norm(np.diff(p, axis=0), axis=1).sum() for p in self.paths))


@dataclass(frozen=True)
class Estimates:
    """What a print will take."""

    layers: int
    deposit_length_m: float
    travel_length_m: float
    time_s: float
    mass_kg: float
    energy_j: float
    volume_m3: float

    def summary(self) -> str:
        """One line per figure, for the command line."""
        h, rem = divmod(self.time_s, 3600.0)
        return (f"layers:        {self.layers}\n"
                f"bead length:   {self.deposit_length_m:.1f} m "
                f"(travel {self.travel_length_m:.1f} m)\n"
                f"print time:    {int(h)} h {rem / 60.0:.1f} min ({self.time_s:.0f} s)\n"
                f"regolith:      {self.mass_kg:.1f} kg ({self.volume_m3:.3f} m^3)\n"
                f"energy:        {self.energy_j / 3.6e6:.2f} kWh")


@dataclass
class SliceResult:
    """A sliced design: its layers, the printer, and the estimates."""

    design: Design
    printer: PrinterConfig
    layer_height: float
    layers: list[Layer]
    estimates: Estimates


# -- toolpaths -----------------------------------------------------------------------------------

def _arc(cx: float, cy: float, r: float, a0: float, sweep: float, tol: float) -> np.ndarray:
    """Polyline of an arc (sweep may be negative), chord error at most ``tol``."""
    if r <= tol:
        step = math.pi / 4
    else:
        step = 2.0 * math.acos(max(-1.0, 1.0 - tol / r))
    n = max(2 if abs(sweep) < TWO_PI - 1e-9 else 8, int(math.ceil(abs(sweep) / step)))
    t = a0 + np.linspace(0.0, sweep, n + 1)
    return np.column_stack((cx + r * np.cos(t), cy + r * np.sin(t)))


def _ring_paths(ring: Ring, w: float, tol: float, layer: int) -> list[np.ndarray]:
    seam = (layer * GOLDEN_ANGLE) % TWO_PI
    if ring.r_in <= 1e-9 and ring.full:
        return _disc_paths(ring, w, tol, seam, layer)
    width = ring.r_out - ring.r_in
    n = max(1, int(round(width / w)))
    pitch = width / n
    radii = ring.r_in + (np.arange(n) + 0.5) * pitch
    paths: list[np.ndarray] = []
    if ring.full:
        order = [n - 1, 0, *range(1, n - 1)]  # perimeters first, then the infill
        for k, i in enumerate(order):
            sweep = TWO_PI if k % 2 == 0 else -TWO_PI
            paths.append(_arc(ring.cx, ring.cy, float(radii[i]), seam, sweep, tol))
        return paths
    if n == 1:
        r = float(radii[0])
        inset = min(w / 2 / r, ring.sweep / 2)
        return [_arc(ring.cx, ring.cy, r, ring.start + inset, ring.sweep - 2 * inset, tol)]
    r_o, r_i = float(radii[-1]), float(radii[0])
    a_o, a_i = min(w / 2 / r_o, ring.sweep / 2), min(w / 2 / r_i, ring.sweep / 2)
    outer = _arc(ring.cx, ring.cy, r_o, ring.start + a_o, ring.sweep - 2 * a_o, tol)
    inner = _arc(ring.cx, ring.cy, r_i, ring.start + ring.sweep - a_i,
                 -(ring.sweep - 2 * a_i), tol)
    paths.append(np.vstack((outer, inner, outer[:1])))  # closed perimeter loop
    infill: list[np.ndarray] = []
    for k, i in enumerate(range(n - 2, 0, -1)):
        r = float(radii[i])
        a = min(w / r, ring.sweep / 2)  # meets the perimeter's radial end, half a bead over
        if ring.sweep - 2 * a <= 0:
            continue
        if k % 2 == 0:
            arc = _arc(ring.cx, ring.cy, r, ring.start + ring.sweep - a, -(ring.sweep - 2 * a),
                       tol)
        else:
            arc = _arc(ring.cx, ring.cy, r, ring.start + a, ring.sweep - 2 * a, tol)
        infill.append(arc)
    if infill:
        paths.append(np.vstack(infill))  # serpentine: each arc joins the next radially
    return paths


def _raster(half_w: np.ndarray, v: np.ndarray, c: float, s: float, cx: float, cy: float
            ) -> np.ndarray:
    """Serpentine through chords (u from -half_w to half_w at offsets v), rotated by c, s."""
    u0, u1 = -half_w, half_w
    flip = (np.arange(len(v)) % 2).astype(bool)
    start = np.where(flip, u1, u0)
    end = np.where(flip, u0, u1)
    us = np.column_stack((start, end)).ravel()
    vs = np.repeat(v, 2)
    return np.column_stack((cx + c * us - s * vs, cy + s * us + c * vs))


def _disc_paths(ring: Ring, w: float, tol: float, seam: float, layer: int
                ) -> list[np.ndarray]:
    r = ring.r_out
    paths: list[np.ndarray] = []
    perimeters = 2 if r >= 3 * w else (1 if r >= w else 0)
    for k in range(perimeters):
        paths.append(_arc(ring.cx, ring.cy, r - (k + 0.5) * w, seam, TWO_PI, tol))
    r_fill = r - perimeters * w
    if r_fill >= w / 2:
        count = max(1, int(round(2 * r_fill / w)))
        v = -r_fill + (np.arange(count) + 0.5) * (2 * r_fill / count)
        half = np.sqrt(np.clip(r_fill ** 2 - v ** 2, 0.0, None)) + w / 4  # overlap inwards
        angle = 0.0 if layer % 2 == 0 else math.pi / 2
        paths.append(_raster(half, v, math.cos(angle), math.sin(angle), ring.cx, ring.cy))
    elif r < w:
        paths.append(np.array([[ring.cx, ring.cy], [ring.cx, ring.cy]]))
    return paths


def _rect_paths(rect: Rect, w: float, layer: int) -> list[np.ndarray]:
    n = max(1, int(round(rect.width / w)))
    pitch = rect.width / n
    c, s = math.cos(rect.yaw), math.sin(rect.yaw)

    def pts(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.column_stack((rect.cx + c * u - s * v, rect.cy + s * u + c * v))

    hl = max(rect.length / 2 - w / 2, 0.0)
    if n == 1:
        return [pts(np.array([-hl, hl]), np.zeros(2))]
    hv = rect.width / 2 - pitch / 2
    loop = pts(np.array([-hl, hl, hl, -hl, -hl]), np.array([-hv, -hv, hv, hv, -hv]))
    if layer % 2:
        loop = loop[::-1]
    paths = [loop]
    if n > 2:
        v = -hv + pitch * np.arange(1, n - 1)
        hu = np.full(len(v), max(hl - w, 0.0))
        paths.append(_raster(hu, v, c, s, rect.cx, rect.cy))
    return paths


def _region_paths(region: Region, w: float, tol: float, layer: int) -> list[np.ndarray]:
    if isinstance(region, Ring):
        return _ring_paths(region, w, tol, layer)
    return _rect_paths(region, w, layer)


def slice_design(design: Design, printer: PrinterConfig,
                 layer_height: float | None = None) -> SliceResult:
    """Check the design against the printer and cut it into layers of toolpaths.

    Raises DesignError (naming the field) for a design the printer cannot build.
    """
    h = check_design(design, printer, layer_height)
    w, tol = printer.bead_width, printer.chord_tolerance
    layers: list[Layer] = []
    for k, z_mid in enumerate(design.layers(h)):
        regions = design.section(float(z_mid))
        if not regions:
            continue
        paths: list[np.ndarray] = []
        for region in regions:
            for p in _region_paths(region, w, tol, k):
                x, y = design.to_printer(p[:, 0], p[:, 1])
                paths.append(np.column_stack((x, y)))
        layers.append(Layer(len(layers), (k + 1) * h, paths))
    return SliceResult(design, printer, h, layers, _estimate(layers, printer, h))


def _estimate(layers: list[Layer], printer: PrinterConfig, h: float) -> Estimates:
    deposit = travel = 0.0
    pos = np.zeros(2)
    for layer in layers:
        for p in layer.paths:
            travel += float(np.linalg.norm(p[0] - pos))
            deposit += float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())
            pos = p[-1]
    z_total = (layers[-1].z if layers else 0.0) * 2  # up layer by layer, then back down
    t_dep = deposit / (printer.print_feed / 60000.0)
    t = t_dep + travel / (printer.travel_feed / 60000.0) + z_total / (printer.z_feed / 60000.0)
    volume = deposit * printer.bead_width * h
    if printer.mode == "laser":
        dep_power = printer.laser_power_w * printer.laser_s / printer.laser_s_max
    else:
        dep_power = printer.extrusion_power_w
    energy = printer.motion_power_w * t + dep_power * t_dep
    return Estimates(len(layers), deposit, travel, t, volume * printer.density_kg_m3, energy,
                     volume)


# -- G-code ------------------------------------------------------------------------------------

def write_gcode(result: SliceResult) -> str:
    """Marlin G-code of a sliced design (millimetres, absolute XYZ)."""
    p, d, e = result.printer, result.design, result.estimates
    laser = p.mode == "laser"
    e_per_mm = p.bead_width * 1000.0 * result.layer_height * 1000.0 / p.ram_area_mm2
    f_print, f_travel, f_z = int(p.print_feed), int(p.travel_feed), int(p.z_feed)
    on = f"{'M4' if p.laser_dynamic else 'M3'} S{p.laser_s:g}"
    out = [
        f"; ilrs_robots slicer: design {d.name} ({d.type}), printer {p.name} ({p.mode})",
        f"; layer height {result.layer_height * 1000:g} mm, bead width "
        f"{p.bead_width * 1000:g} mm, layers {e.layers}",
        f"; estimate: time {e.time_s:.0f} s, mass {e.mass_kg:.2f} kg, "
        f"energy {e.energy_j / 3.6e6:.3f} kWh",
        "G21 ; millimetres",
        "G90 ; absolute XYZ",
    ]
    out.append("M5 ; laser off" if laser else "M83 ; relative extrusion")
    for layer in result.layers:
        z = layer.z * 1000.0
        out.append(f";LAYER:{layer.index}")
        out.append(f"G0 Z{z:.1f} F{f_z}")
        for path in layer.paths:
            mm = np.round(path * 1000.0, 1)
            out.append(f"G0 X{mm[0, 0]:.1f} Y{mm[0, 1]:.1f} F{f_travel}")
            xs, ys = mm[1:, 0].tolist(), mm[1:, 1].tolist()
            if laser:
                out.append(on)
                out.append(f"G1 X{xs[0]:.1f} Y{ys[0]:.1f} F{f_print}")
                out.extend([f"G1 X{x:.1f} Y{y:.1f}" for x, y in zip(xs[1:], ys[1:],
                                                                   strict=True)])
                out.append("M5")
            else:
                seg = np.linalg.norm(np.diff(mm, axis=0), axis=1) * e_per_mm
                es = seg.tolist()
                out.append(f"G1 X{xs[0]:.1f} Y{ys[0]:.1f} E{es[0]:.4f} F{f_print}")
                out.extend([f"G1 X{x:.1f} Y{y:.1f} E{de:.4f}"
                            for x, y, de in zip(xs[1:], ys[1:], es[1:], strict=True)])
    top = (result.layers[-1].z if result.layers else 0.0) * 1000.0
    lift = min(top + 50.0, p.envelope_max[2] * 1000.0)
    out.append(f"G0 Z{lift:.1f} F{f_z} ; clear the structure")
    out.append("M400 ; wait for the last move")
    out.append("")
    return "\n".join(out)


# -- height fields -------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeightGrid:
    """A square-celled grid of the site in the printer's frame: cell (i, j) is centred at
    (x0 + (j + 0.5) * cell, y0 + (i + 0.5) * cell); heights in metres."""

    x0: float
    y0: float
    cell: float
    nx: int
    ny: int

    @classmethod
    def for_printer(cls, printer: PrinterConfig, cell: float | None = None) -> HeightGrid:
        """A grid covering the printer's envelope (cell: half a bead by default)."""
        cell = cell or printer.bead_width / 2
        (x0, y0, _), (x1, y1, _) = printer.envelope_min, printer.envelope_max
        return cls(x0, y0, cell, int(math.ceil((x1 - x0) / cell)),
                   int(math.ceil((y1 - y0) / cell)))

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre coordinates as 2-D arrays (y rows, x columns)."""
        xs = self.x0 + (np.arange(self.nx) + 0.5) * self.cell
        ys = self.y0 + (np.arange(self.ny) + 0.5) * self.cell
        return np.meshgrid(xs, ys)

    def zeros(self) -> np.ndarray:
        """An empty height field on this grid."""
        return np.zeros((self.ny, self.nx))


def expected_height_field(design: Design, layer_height: float, grid: HeightGrid) -> np.ndarray:
    """The design's solid as a height field on ``grid``: each cell's top, in whole layers."""
    heights = grid.zeros()
    x, y = grid.centres()
    lx, ly = design.to_local(x, y)
    for k, z_mid in enumerate(design.layers(layer_height)):
        regions = design.section(float(z_mid))
        if not regions:
            continue
        mask = np.zeros(heights.shape, bool)
        for region in regions:
            mask |= region.contains(lx, ly)
        heights[mask] = (k + 1) * layer_height
    return heights


@dataclass(frozen=True)
class Deviation:
    """How a printed height field departs from the expected one."""

    cells_out: int  # cells beyond the tolerance
    cells_checked: int
    worst_m: float  # largest departure beyond the tolerance band, m

    @property
    def ok(self) -> bool:
        """True when every cell is within the tolerance."""
        return self.cells_out == 0


def height_excess(observed: np.ndarray, low_src: np.ndarray, high_src: np.ndarray, cell: float,
                  bead_width: float, bead_height: float) -> tuple[np.ndarray, np.ndarray]:
    """How far each observed cell lies outside the band a printed structure may occupy, and
    the band's top before the bead-height margin (``high_src`` grown by a bead width).

    A cell may lie between the lowest ``low_src`` height and the highest ``high_src`` height
    within one bead width around it, give or take one bead height: beads are laid on centre
    lines, so an edge can land up to a bead width off and a layer one bead high off. Voids
    narrower than two cells (hairlines where beads meet edge to edge) are closed first; an
    observation of another size is resampled onto the expected grid.
    """
    radius = max(1, int(math.ceil(bead_width / cell)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    obs = observed.astype(np.float32)
    if obs.shape != low_src.shape:
        obs = cv2.resize(obs, (low_src.shape[1], low_src.shape[0]),
                         interpolation=cv2.INTER_AREA)
    obs = cv2.morphologyEx(obs, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8),
                           borderType=cv2.BORDER_REPLICATE)
    low = cv2.erode(low_src.astype(np.float32), kernel,
                    borderType=cv2.BORDER_REPLICATE) - bead_height
    grown = cv2.dilate(high_src.astype(np.float32), kernel, borderType=cv2.BORDER_REPLICATE)
    excess = np.maximum(np.clip(low - obs, 0.0, None), np.clip(obs - (grown + bead_height),
                                                                0.0, None))
    return excess, grown


def compare_height_fields(printed: np.ndarray, expected: np.ndarray, cell: float,
                          bead_width: float, bead_height: float) -> Deviation:
    """Printed against expected within a bead's tolerance (see :func:`height_excess`)."""
    excess, _ = height_excess(printed, expected, expected, cell, bead_width, bead_height)
    out = excess > 1e-6
    return Deviation(int(out.sum()), int(out.size), float(excess.max(initial=0.0)))
