"""Parametric regolith structures and the printers that build them.

A design is a YAML mapping (units: metres, degrees)::

    name: pad_small
    type: landing_pad            # landing_pad | blast_berm | straight_wall | curved_wall
                                 # | corbelled_dome | shield_ring
    origin: [0.0, 0.0]           # centre in the printer's frame, m
    yaw_deg: 0.0
    layer_height: 0.02           # optional: the printer's bead height
    printer: regolith_paste_gantry   # optional: config/printers/<name>.yaml
    diameter: 6.0                # ... fields of the type (see DESIGN_TYPES)

Each type gives, for a height z, the horizontal section of the solid as :class:`Ring`
(annular sectors; a disc is a ring of inner radius 0) and :class:`Rect` regions in the
design's own frame; the slicer and the expected height field both use these.

A design is checked against a printer (:func:`check_design`): it must fit the printer's
envelope, walls must be at least a bead wide, the layer height at most a bead high, and no
layer may project beyond the one below by more than the printer's corbel step (a fraction of
the bead width). A refusal is a :class:`DesignError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

TWO_PI = 2.0 * math.pi


class DesignError(ValueError):
    """A design or printer configuration that cannot be built; ``field`` names the culprit."""

    def __init__(self, field: str, message: str, where: str = "design") -> None:
        super().__init__(f"{where} field '{field}': {message}")
        self.field = field
        self.reason = message


# -- printer configuration ----------------------------------------------------------------------

@dataclass(frozen=True)
class PrinterConfig:
    """What the slicer needs to know of a printer (units: m, mm/min, W, kg/m^3)."""

    name: str
    envelope_min: tuple[float, float, float]
    envelope_max: tuple[float, float, float]
    bead_width: float
    bead_height: float
    mode: str = "paste"  # paste: G1 ... E ; laser: M3/M4 S<power> ... M5
    max_corbel_step: float = 0.5  # a layer may project this fraction of a bead width
    ram_area_mm2: float = 20000.0  # paste: E is ram stroke, mm = volume / area
    density_kg_m3: float = 2100.0
    laser_power_w: float = 0.0
    laser_s_max: float = 255.0
    laser_s: float = 255.0
    laser_dynamic: bool = False  # M4 (power follows speed) instead of M3
    print_feed: float = 9000.0
    travel_feed: float = 18000.0
    z_feed: float = 1200.0
    motion_power_w: float = 400.0
    extrusion_power_w: float = 600.0
    chord_tolerance: float = 0.002
    baud: int = 115200

    @property
    def envelope_mm(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Envelope corners in millimetres (G-code units)."""
        return (tuple(v * 1000.0 for v in self.envelope_min),
                tuple(v * 1000.0 for v in self.envelope_max))


class _Fields:
    """Typed reads of a YAML mapping, refusing bad values and unknown keys by name."""

    def __init__(self, data: Any, where: str, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise DesignError(prefix.rstrip(".") or "(top)", "must be a mapping", where)
        self.data = data
        self.where = where
        self.prefix = prefix
        self.used: set[str] = set()

    def error(self, key: str, message: str) -> DesignError:
        return DesignError(self.prefix + key, message, self.where)

    def number(self, key: str, default: float | None = None, lo: float | None = None,
               hi: float | None = None, lo_open: bool = False) -> float:
        self.used.add(key)
        value = self.data.get(key, default)
        if value is None:
            raise self.error(key, "is required")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise self.error(key, f"must be finite, got {value}")
        if lo is not None and (value < lo or (lo_open and value <= lo)):
            raise self.error(key, f"must be {'>' if lo_open else '>='} {lo:g}, got {value:g}")
        if hi is not None and value > hi:
            raise self.error(key, f"must be <= {hi:g}, got {value:g}")
        return value

    def text(self, key: str, default: str | None = None,
             choices: tuple[str, ...] | None = None) -> str:
        self.used.add(key)
        value = self.data.get(key, default)
        if value is None:
            raise self.error(key, "is required")
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        if choices and value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        self.used.add(key)
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def pair(self, key: str, default: tuple[float, float] | None = None) -> tuple[float, float]:
        self.used.add(key)
        value = self.data.get(key, default)
        if value is None:
            raise self.error(key, "is required")
        if (not isinstance(value, list | tuple) or len(value) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           and math.isfinite(v) for v in value)):
            raise self.error(key, f"must be a list of two numbers, got {value!r}")
        return float(value[0]), float(value[1])

    def sub(self, key: str) -> _Fields:
        self.used.add(key)
        return _Fields(self.data.get(key, {}), self.where, f"{self.prefix}{key}.")

    def done(self) -> None:
        unknown = sorted(set(map(str, self.data)) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown field")


def parse_printer(data: Any) -> PrinterConfig:
    """A printer configuration from a parsed YAML mapping; DesignError names a bad field."""
    f = _Fields(data, "printer")
    name = f.text("name")
    f.text("controller", "marlin", ("marlin",))
    env = f.sub("envelope")
    x, y, z = env.pair("x"), env.pair("y"), env.pair("z")
    env.done()
    for axis, (lo, hi) in zip("xyz", (x, y, z), strict=True):
        if hi <= lo:
            raise DesignError(f"envelope.{axis}", f"max must exceed min, got [{lo}, {hi}]",
                              "printer")
    bead = f.sub("bead")
    width = bead.number("width", lo=0.0, lo_open=True)
    height = bead.number("height", lo=0.0, lo_open=True)
    bead.done()
    mode = f.text("mode", "paste", ("paste", "laser"))
    corbel = f.number("max_corbel_step", 0.5, lo=0.0, hi=1.0)
    density = f.number("density_kg_m3", 2100.0, lo=0.0, lo_open=True)
    paste = f.sub("paste")
    ram = paste.number("ram_area_mm2", 20000.0, lo=0.0, lo_open=True)
    paste.done()
    laser = f.sub("laser")
    laser_w = laser.number("power_w", 0.0 if mode == "paste" else None, lo=0.0)
    s_max = laser.number("s_max", 255.0, lo=0.0, lo_open=True)
    s = laser.number("s", s_max, lo=0.0, hi=s_max)
    dynamic = laser.flag("dynamic", False)
    laser.done()
    if mode == "laser" and (laser_w <= 0 or s <= 0):
        raise DesignError("laser.power_w", "laser mode needs power_w > 0 and s > 0", "printer")
    feed = f.sub("feed")
    print_feed = feed.number("print_mm_min", 9000.0, lo=0.0, lo_open=True)
    travel = feed.number("travel_mm_min", 18000.0, lo=0.0, lo_open=True)
    z_feed = feed.number("z_mm_min", 1200.0, lo=0.0, lo_open=True)
    feed.done()
    power = f.sub("power")
    motion_w = power.number("motion_w", 400.0, lo=0.0)
    extrusion_w = power.number("extrusion_w", 600.0 if mode == "paste" else 0.0, lo=0.0)
    power.done()
    chord = f.number("chord_tolerance", 0.002, lo=0.0, lo_open=True)
    baud = int(f.number("baud", 115200, lo=1.0))
    f.done()
    return PrinterConfig(name, (x[0], y[0], z[0]), (x[1], y[1], z[1]), width, height, mode,
                         corbel, ram, density, laser_w, s_max, s, dynamic, print_feed, travel,
                         z_feed, motion_w, extrusion_w, chord, baud)


def parse_printer_yaml(text: str) -> PrinterConfig:
    """A printer configuration from YAML text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DesignError("(yaml)", f"not valid YAML: {exc}", "printer") from exc
    return parse_printer(data)


# -- regions ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ring:
    """An annular sector about (cx, cy): radii r_in..r_out, from angle ``start`` over ``sweep``
    (radians, counter-clockwise; a sweep of 2*pi is a full ring, r_in 0 a disc)."""

    cx: float
    cy: float
    r_in: float
    r_out: float
    start: float = 0.0
    sweep: float = TWO_PI

    @property
    def full(self) -> bool:
        """True for a closed ring (no ends)."""
        return self.sweep >= TWO_PI - 1e-9

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Mask of the points inside (vectorised)."""
        dx, dy = x - self.cx, y - self.cy
        r2 = dx * dx + dy * dy
        inside = (r2 <= self.r_out ** 2) & (r2 >= self.r_in ** 2)
        if not self.full:
            rel = np.mod(np.arctan2(dy, dx) - self.start, TWO_PI)
            inside &= rel <= self.sweep
        return inside


@dataclass(frozen=True)
class Rect:
    """A rectangle centred at (cx, cy), ``length`` along its yaw, ``width`` across."""

    cx: float
    cy: float
    length: float
    width: float
    yaw: float = 0.0

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Mask of the points inside (vectorised)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        dx, dy = x - self.cx, y - self.cy
        u, v = dx * c + dy * s, -dx * s + dy * c
        return (np.abs(u) <= self.length / 2) & (np.abs(v) <= self.width / 2)


Region = Ring | Rect


# -- designs -------------------------------------------------------------------------------------

@dataclass
class Design:
    """A validated structure: its type's shape plus placement in the printer's frame."""

    name: str
    type: str
    params: dict[str, Any]
    height: float
    radius_xy: tuple[float, float, float, float]  # local bbox xmin, ymin, xmax, ymax
    section: Callable[[float], list[Region]] = field(repr=False)
    profile_step: Callable[[float, float], float] = field(repr=False)  # overhang per layer
    origin: tuple[float, float] = (0.0, 0.0)
    yaw_deg: float = 0.0
    layer_height: float | None = None
    printer: str | None = None
    min_feature: float = 0.0  # narrowest wall, m
    min_feature_field: str = ""

    def layers(self, layer_height: float) -> np.ndarray:
        """Mid-heights of the layers at ``layer_height``."""
        n = max(1, int(math.ceil(self.height / layer_height - 1e-9)))
        return (np.arange(n) + 0.5) * layer_height

    def to_printer(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local (design) coordinates to the printer's frame, m."""
        c, s = math.cos(math.radians(self.yaw_deg)), math.sin(math.radians(self.yaw_deg))
        return self.origin[0] + c * x - s * y, self.origin[1] + s * x + c * y

    def to_local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Printer-frame coordinates to the design's own frame, m."""
        c, s = math.cos(math.radians(self.yaw_deg)), math.sin(math.radians(self.yaw_deg))
        dx, dy = x - self.origin[0], y - self.origin[1]
        return c * dx + s * dy, -s * dx + c * dy

    def footprint(self) -> tuple[float, float, float, float]:
        """Bounding box in the printer's frame: xmin, ymin, xmax, ymax."""
        x0, y0, x1, y1 = self.radius_xy
        xs, ys = self.to_printer(np.array([x0, x1, x1, x0]), np.array([y0, y0, y1, y1]))
        return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def _bbox_ring(radius: float, start: float, sweep: float) -> tuple[float, float, float, float]:
    if sweep >= TWO_PI - 1e-9:
        return -radius, -radius, radius, radius
    angles = [start, start + sweep]
    for k in range(-4, 9):
        a = k * math.pi / 2
        if start <= a <= start + sweep:
            angles.append(a)
    xs = [radius * math.cos(a) for a in angles] + [0.0]
    ys = [radius * math.sin(a) for a in angles] + [0.0]
    return min(xs), min(ys), max(xs), max(ys)


def _landing_pad(f: _Fields) -> dict[str, Any]:
    diameter = f.number("diameter", lo=0.0, lo_open=True)
    thickness = f.number("thickness", lo=0.0, lo_open=True)
    rim_w = f.number("rim_width", 0.0, lo=0.0)
    rim_h = f.number("rim_height", 0.0, lo=0.0)
    r = diameter / 2
    if rim_w > r:
        raise f.error("rim_width", f"{rim_w:g} m is wider than the pad's radius {r:g} m")
    if rim_h > 0 and rim_w == 0:
        raise f.error("rim_width", "must be > 0 when rim_height is")

    def section(z: float) -> list[Region]:
        if z < thickness:
            return [Ring(0.0, 0.0, 0.0, r)]
        return [Ring(0.0, 0.0, r - rim_w, r)] if z < thickness + rim_h else []

    narrow = (rim_w, "rim_width") if rim_h > 0 else (diameter, "diameter")
    return dict(height=thickness + (rim_h if rim_w > 0 else 0.0), bbox=(-r, -r, r, r),
                section=section, step=lambda z, h: 0.0, narrow=narrow)


def _arc_fields(f: _Fields) -> tuple[float, float, float]:
    radius = f.number("radius", lo=0.0, lo_open=True)
    arc = f.number("arc_deg", 360.0, lo=0.0, hi=360.0, lo_open=True)
    centre = f.number("center_azimuth_deg", 0.0, lo=-360.0, hi=360.0)
    return radius, arc, centre


def _blast_berm(f: _Fields) -> dict[str, Any]:
    radius, arc, centre = _arc_fields(f)
    base = f.number("base_width", lo=0.0, lo_open=True)
    height = f.number("height", lo=0.0, lo_open=True)
    batter = f.number("batter_deg", 60.0, lo=0.0, hi=90.0, lo_open=True)
    inset = height / math.tan(math.radians(batter)) if batter < 90.0 else 0.0
    top = base - 2.0 * inset
    if base / 2 > radius:
        raise f.error("base_width", f"{base:g} m is wider than twice the radius {radius:g} m")
    start, sweep = math.radians(centre - arc / 2), math.radians(arc)

    def section(z: float) -> list[Region]:
        if z >= height:
            return []
        half = base / 2 - (z / height) * inset if height > 0 else base / 2
        return [Ring(0.0, 0.0, radius - half, radius + half, start, sweep)]

    if top <= 0:
        raise f.error("batter_deg", f"{batter:g} deg is too shallow: the faces meet below the "
                      f"height {height:g} m (top width {top:.3f} m)")
    return dict(height=height, bbox=_bbox_ring(radius + base / 2, start, sweep),
                section=section, step=lambda z, h: 0.0, narrow=(top, "batter_deg"))


def _straight_wall(f: _Fields) -> dict[str, Any]:
    length = f.number("length", lo=0.0, lo_open=True)
    thickness = f.number("thickness", lo=0.0, lo_open=True)
    height = f.number("height", lo=0.0, lo_open=True)

    def section(z: float) -> list[Region]:
        return [Rect(0.0, 0.0, length, thickness)] if z < height else []

    return dict(height=height, bbox=(-length / 2, -thickness / 2, length / 2, thickness / 2),
                section=section, step=lambda z, h: 0.0, narrow=(thickness, "thickness"))


def _curved_wall(f: _Fields) -> dict[str, Any]:
    radius, arc, centre = _arc_fields(f)
    thickness = f.number("thickness", lo=0.0, lo_open=True)
    height = f.number("height", lo=0.0, lo_open=True)
    if thickness / 2 > radius:
        raise f.error("thickness", f"{thickness:g} m is more than twice the radius")
    start, sweep = math.radians(centre - arc / 2), math.radians(arc)

    def section(z: float) -> list[Region]:
        if z >= height:
            return []
        return [Ring(0.0, 0.0, radius - thickness / 2, radius + thickness / 2, start, sweep)]

    return dict(height=height, bbox=_bbox_ring(radius + thickness / 2, start, sweep),
                section=section, step=lambda z, h: 0.0, narrow=(thickness, "thickness"))


def _shield_ring(f: _Fields) -> dict[str, Any]:
    radius = f.number("radius", lo=0.0, lo_open=True)
    thickness = f.number("thickness", lo=0.0, lo_open=True)
    height = f.number("height", lo=0.0, lo_open=True)
    gap = f.number("gap_deg", 0.0, lo=0.0, hi=359.0)
    gap_az = f.number("gap_azimuth_deg", 0.0, lo=-360.0, hi=360.0)
    if thickness / 2 > radius:
        raise f.error("thickness", f"{thickness:g} m is more than twice the radius")
    # the ring runs from the gap's far edge all the way round to its near edge
    start, sweep = math.radians(gap_az + gap / 2), math.radians(360.0 - gap)

    def section(z: float) -> list[Region]:
        if z >= height:
            return []
        return [Ring(0.0, 0.0, radius - thickness / 2, radius + thickness / 2, start, sweep)]

    return dict(height=height, bbox=_bbox_ring(radius + thickness / 2, start, sweep),
                section=section, step=lambda z, h: 0.0, narrow=(thickness, "thickness"))


def _dome_profile(kind: str, radius: float, height: float) -> Callable[[np.ndarray], np.ndarray]:
    if kind == "hemisphere":  # elliptical: a hemisphere when height == radius
        return lambda z: radius * np.sqrt(np.clip(1.0 - (z / height) ** 2, 0.0, None))
    if kind == "cone":
        return lambda z: radius * np.clip(1.0 - z / height, 0.0, None)
    rho = (radius ** 2 + height ** 2) / (2.0 * radius)  # ogive: pointed arch of radius rho
    return lambda z: np.clip(radius - rho + np.sqrt(np.clip(rho ** 2 - z ** 2, 0.0, None)),
                             0.0, None)


def _corbelled_dome(f: _Fields) -> dict[str, Any]:
    diameter = f.number("diameter", lo=0.0, lo_open=True)
    apex = f.number("height", lo=0.0, lo_open=True)
    wall = f.number("wall_thickness", lo=0.0, lo_open=True)
    oculus = f.number("oculus_diameter", 0.0, lo=0.0)
    kind = f.text("profile", "ogive", ("ogive", "hemisphere", "cone"))
    radius = diameter / 2
    if oculus / 2 + wall >= radius:
        raise f.error("oculus_diameter", "leaves no dome: the oculus plus the wall is as wide "
                      "as the base")
    outer = _dome_profile(kind, radius, apex)
    # printed height: where the inner face reaches the oculus
    zs = np.linspace(0.0, apex, 20001)
    inner = outer(zs) - wall
    reach = np.nonzero(inner <= oculus / 2)[0]
    top = float(zs[reach[0]]) if len(reach) else apex
    if oculus == 0.0:
        closed = np.nonzero(outer(zs) <= 1e-9)[0]
        top = float(zs[closed[0]]) if len(closed) else apex

    def section(z: float) -> list[Region]:
        if z >= top:
            return []
        r_out = float(outer(np.asarray(z)))
        r_in = max(r_out - wall, oculus / 2)
        return [Ring(0.0, 0.0, r_in, r_out)] if r_out > r_in else []

    def step(z: float, layer: float) -> float:
        """How far the inner face of the layer at z + layer projects beyond the one at z."""
        r0, r1 = outer(np.asarray(z)), outer(np.asarray(z + layer))
        return float(r0 - r1) if (r1 - wall) > oculus / 2 or oculus == 0.0 else 0.0

    return dict(height=top, bbox=(-radius, -radius, radius, radius), section=section,
                step=step, narrow=(wall, "wall_thickness"))


DESIGN_TYPES: dict[str, Callable[[_Fields], dict[str, Any]]] = {
    "landing_pad": _landing_pad,
    "blast_berm": _blast_berm,
    "straight_wall": _straight_wall,
    "curved_wall": _curved_wall,
    "corbelled_dome": _corbelled_dome,
    "shield_ring": _shield_ring,
}


def parse_design(data: Any) -> Design:
    """A design from a parsed YAML mapping (shape checks only; see :func:`check_design`)."""
    f = _Fields(data, "design")
    name = f.text("name")
    kind = f.text("type", choices=tuple(DESIGN_TYPES))
    origin = f.pair("origin", (0.0, 0.0))
    yaw = f.number("yaw_deg", 0.0, lo=-360.0, hi=360.0)
    layer = f.data.get("layer_height")
    layer_height = f.number("layer_height", lo=0.0, lo_open=True) if layer is not None else None
    f.used.add("layer_height")
    printer = f.text("printer") if f.data.get("printer") is not None else None
    f.used.add("printer")
    f.used.add("description")
    shape = DESIGN_TYPES[kind](f)
    f.done()
    params = {k: v for k, v in f.data.items()
              if k not in ("name", "type", "origin", "yaw_deg", "layer_height", "printer",
                           "description")}
    return Design(name, kind, params, shape["height"], shape["bbox"], shape["section"],
                  shape["step"], origin, yaw, layer_height, printer, shape["narrow"][0],
                  shape["narrow"][1])


def parse_design_yaml(text: str) -> Design:
    """A design from YAML text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DesignError("(yaml)", f"not valid YAML: {exc}") from exc
    return parse_design(data)


def check_design(design: Design, printer: PrinterConfig,
                 layer_height: float | None = None) -> float:
    """Refuse a design this printer cannot build; returns the layer height to print at.

    ``layer_height`` (None or 0: the design's, else the printer's bead height) overrides.
    Raises DesignError naming the field: envelope (``origin`` or a size field), narrow walls,
    a layer height above the bead height, or a corbel overhang beyond the printer's limit.
    """
    layer = layer_height or design.layer_height or printer.bead_height
    if layer > printer.bead_height + 1e-12:
        raise DesignError("layer_height", f"{layer:g} m is higher than the printer "
                          f"{printer.name!r} bead height {printer.bead_height:g} m")
    if design.min_feature < printer.bead_width - 1e-9:
        raise DesignError(design.min_feature_field,
                          f"the narrowest wall is {design.min_feature:.3f} m, less than the "
                          f"printer {printer.name!r} bead width {printer.bead_width:g} m")
    x0, y0, x1, y1 = design.footprint()
    ex0, ey0, ez0 = printer.envelope_min
    ex1, ey1, ez1 = printer.envelope_max
    if x0 < ex0 - 1e-9 or x1 > ex1 + 1e-9 or y0 < ey0 - 1e-9 or y1 > ey1 + 1e-9:
        size_field = next((k for k in ("diameter", "radius", "length") if k in design.params),
                          "origin")
        raise DesignError(size_field if design.origin == (0.0, 0.0) else "origin",
                          f"footprint x {x0:.2f}..{x1:.2f} m, y {y0:.2f}..{y1:.2f} m is "
                          f"outside the envelope of printer {printer.name!r} (x {ex0:g}.."
                          f"{ex1:g}, y {ey0:g}..{ey1:g} m)")
    if ez0 + design.height > ez1 + 1e-9:
        raise DesignError("height", f"{design.height:.2f} m is taller than the envelope of "
                          f"printer {printer.name!r} ({ez1 - ez0:g} m)")
    limit = printer.max_corbel_step * printer.bead_width
    worst, worst_z = 0.0, 0.0
    for z in design.layers(layer)[:-1]:
        step = design.profile_step(float(z), layer)
        if step > worst:
            worst, worst_z = step, float(z)
    if worst > limit + 1e-9:
        angle = math.degrees(math.atan2(worst, layer))
        field_name = "profile" if "profile" in design.params or design.type == "corbelled_dome" \
            else "height"
        raise DesignError(field_name, f"impossible overhang: the layer above z = {worst_z:.3f} m "
                          f"projects {worst * 1000:.1f} mm ({angle:.0f} deg from vertical), "
                          f"more than a corbelled layer can hold ({limit * 1000:.1f} mm = "
                          f"{printer.max_corbel_step:g} of a {printer.bead_width * 1000:g} mm "
                          f"bead)")
    return layer
