"""Inspection rounds: ``config/inspection/*.yaml``, validated.

A round is an ordered list of inspection points at one site of the world YAML, each a pose in
the map frame and the checks to perform there (units: m, degrees, s, uSv, uSv/h)::

    name: reactor_round
    site: reactor_site          # a site of the world YAML (config/worlds/*.yaml)
    keep_out_radius: 10.0       # m around the site's reactor (its object of role 'reactor')
    dose_budget_usv: 20.0       # the rover electronics' dose budget for the whole round
    points:
      - name: gauges_west
        pose: {x: 118.5, y: 97.0, yaw_deg: 0.0}      # map frame, yaw CCW from +x
        checks:
          - photo: {target: target_cable_tray, max_changed_fraction: 0.02,
                    baseline: baselines/target_cable_tray.png}   # optional, relative to the file
          - gauge: {name: gauge_coolant_pressure, units: bar, range: [4.0, 8.0],
                    scale: {min_angle_deg: -135, max_angle_deg: 135, min_value: 0, max_value: 10}}
          - radiation: {dwell_s: 30, max_usv_h: 60.0}             # max_usv_h optional

Gauge angles are those of the needle on the dial face, in degrees clockwise from 12 o'clock
(straight up); the value is linear in the angle between the scale's two ends.

A malformed round raises :class:`RoundError` naming the file, the point and the field; typed
reads reuse the construction designs' field reader. :func:`check_round_site` refuses points
inside the reactor's keep-out radius and checks naming no object of the site;
:func:`forecast_dose` estimates the dose a round gives the rover, against its budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from ilrs_robots.core.construction.designs import DesignError, _Fields
from ilrs_robots.core.geometry import Pose2D
from ilrs_robots.resources import config_path

CHECK_KINDS = ("photo", "gauge", "radiation")


class RoundError(ValueError):
    """A round that cannot be run; the message names the file, the point and the field."""

    def __init__(self, source: str, field: str, reason: str, point: int | None = None,
                 point_name: str = "") -> None:
        where = source
        if point is not None:
            where += f": point {point}" + (f" ({point_name})" if point_name else "")
        super().__init__(f"{where}: field '{field}' {reason}")
        self.source = source
        self.field = field
        self.reason = reason
        self.point = point
        self.point_name = point_name


@dataclass(frozen=True)
class GaugeScale:
    """A dial's scale: the needle at ``min_angle_deg`` reads ``min_value``, at
    ``max_angle_deg`` ``max_value``, linearly between (angles clockwise from 12 o'clock)."""

    min_angle_deg: float
    max_angle_deg: float
    min_value: float
    max_value: float

    def value(self, angle_deg: float) -> float:
        """The reading of a needle at ``angle_deg`` (extrapolated beyond the scale's ends)."""
        t = (angle_deg - self.min_angle_deg) / (self.max_angle_deg - self.min_angle_deg)
        return self.min_value + t * (self.max_value - self.min_value)

    def angle(self, value: float) -> float:
        """The needle angle (degrees) that reads ``value``."""
        t = (value - self.min_value) / (self.max_value - self.min_value)
        return self.min_angle_deg + t * (self.max_angle_deg - self.min_angle_deg)

    @property
    def degrees_per_unit(self) -> float:
        """Needle sweep per unit of the value (signed)."""
        return (self.max_angle_deg - self.min_angle_deg) / (self.max_value - self.min_value)


@dataclass(frozen=True)
class PhotoCheck:
    """Photograph ``target`` and compare it with its baseline image; a changed area above
    ``max_changed_fraction`` of the aligned image is a finding. ``baseline`` None: the
    inspector's baseline store (recorded on the first clean round) by target name."""

    target: str
    max_changed_fraction: float = 0.02
    baseline: str | None = None
    kind: str = "photo"


@dataclass(frozen=True)
class GaugeCheck:
    """Read the analogue gauge ``gauge``; a value outside ``range`` is a finding."""

    gauge: str
    range: tuple[float, float]
    scale: GaugeScale
    units: str = ""
    kind: str = "gauge"

    def in_range(self, value: float) -> bool:
        """Whether ``value`` lies in the expected range (ends included)."""
        return self.range[0] <= value <= self.range[1]


@dataclass(frozen=True)
class RadiationCheck:
    """Stand still for ``dwell_s`` seconds and average the dose rate; above ``max_usv_h``
    (when given) is a finding."""

    dwell_s: float
    max_usv_h: float | None = None
    kind: str = "radiation"


Check = PhotoCheck | GaugeCheck | RadiationCheck


@dataclass(frozen=True)
class InspectionPoint:
    """One stop of a round: where to stand (map frame) and what to check there."""

    name: str
    pose: Pose2D
    checks: tuple[Check, ...]

    def of_kind(self, kind: str) -> list[Check]:
        """This point's checks of one kind (``photo``, ``gauge``, ``radiation``)."""
        return [c for c in self.checks if c.kind == kind]


@dataclass(frozen=True)
class Round:
    """A validated inspection round."""

    name: str
    site: str
    keep_out_radius: float
    dose_budget_usv: float
    points: tuple[InspectionPoint, ...]
    source: str = "<round>"
    world: str | None = None

    @property
    def base_dir(self) -> Path | None:
        """The folder of the round's file (relative baselines are resolved there)."""
        return Path(self.source).parent if self.source not in ("<round>", "") else None

    def baseline_path(self, check: PhotoCheck) -> Path | None:
        """The baseline image file of a photo check, when the round names one."""
        if check.baseline is None:
            return None
        p = Path(check.baseline)
        return p if p.is_absolute() or self.base_dir is None else self.base_dir / p

    @property
    def total_dwell_s(self) -> float:
        """Seconds of radiation dwell over the whole round."""
        return sum(c.dwell_s for p in self.points for c in p.checks
                   if isinstance(c, RadiationCheck))


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------
def _photo(f: _Fields) -> PhotoCheck:
    target = f.text("target")
    frac = f.number("max_changed_fraction", 0.02, lo=0.0, hi=1.0, lo_open=True)
    baseline = f.text("baseline") if f.data.get("baseline") is not None else None
    f.used.add("baseline")
    f.done()
    return PhotoCheck(target, frac, baseline)


def _gauge(f: _Fields) -> GaugeCheck:
    name = f.text("name")
    units = f.text("units") if f.data.get("units") is not None else ""
    f.used.add("units")
    lo, hi = f.pair("range")
    if not lo < hi:
        raise f.error("range", f"must be [low, high] with low < high, got [{lo:g}, {hi:g}]")
    s = f.sub("scale")
    a0 = s.number("min_angle_deg", lo=-360.0, hi=360.0)
    a1 = s.number("max_angle_deg", lo=-360.0, hi=360.0)
    v0 = s.number("min_value")
    v1 = s.number("max_value")
    s.done()
    if not 0.0 < abs(a1 - a0) <= 360.0:
        raise s.error("max_angle_deg", f"the needle's sweep from min_angle_deg must be "
                      f"within (0, 360] degrees, got {a1 - a0:g}")
    if v1 == v0:
        raise s.error("max_value", f"must differ from min_value ({v0:g})")
    scale = GaugeScale(a0, a1, v0, v1)
    low, high = min(v0, v1), max(v0, v1)
    if lo > high or hi < low:
        raise f.error("range", f"[{lo:g}, {hi:g}] lies outside the scale [{low:g}, {high:g}]")
    f.done()
    return GaugeCheck(name, (lo, hi), scale, units)


def _radiation(f: _Fields) -> RadiationCheck:
    dwell = f.number("dwell_s", lo=0.0, hi=3600.0, lo_open=True)
    limit = (f.number("max_usv_h", lo=0.0, lo_open=True)
             if f.data.get("max_usv_h") is not None else None)
    f.used.add("max_usv_h")
    f.done()
    return RadiationCheck(dwell, limit)


_CHECK_PARSERS = {"photo": _photo, "gauge": _gauge, "radiation": _radiation}


def _check(data: Any, field: str) -> Check:
    if not isinstance(data, dict) or len(data) != 1:
        raise DesignError(field, f"must be a mapping of one check kind ({', '.join(CHECK_KINDS)})"
                                 f", got {data!r}")
    (kind, body), = data.items()
    if kind not in _CHECK_PARSERS:
        raise DesignError(f"{field}.{kind}", f"is no check kind (known: {', '.join(CHECK_KINDS)})")
    return _CHECK_PARSERS[kind](_Fields(body, "", f"{field}.{kind}."))


def _point(data: Any) -> InspectionPoint:
    f = _Fields(data, "")
    name = f.text("name")
    pose = f.sub("pose")
    x, y = pose.number("x"), pose.number("y")
    yaw = pose.number("yaw_deg", lo=-360.0, hi=360.0)
    pose.done()
    f.used.add("checks")
    items = f.data.get("checks")
    if not isinstance(items, list) or not items:
        raise f.error("checks", f"must be a non-empty list of checks, got {items!r}")
    checks = tuple(_check(c, f"checks[{i}]") for i, c in enumerate(items))
    f.done()
    return InspectionPoint(name, Pose2D(x, y, math.radians(yaw)), checks)


def parse_round(data: Any, source: str = "<round>") -> Round:
    """A round from a parsed YAML mapping; :class:`RoundError` names ``source``, the point
    and the field of the first fault."""
    try:
        f = _Fields(data, source)
        name = f.text("name")
        site = f.text("site")
        world = f.text("world") if f.data.get("world") is not None else None
        f.used.add("world")
        f.used.add("description")
        keep_out = f.number("keep_out_radius", lo=0.0)
        budget = f.number("dose_budget_usv", lo=0.0, lo_open=True)
        f.used.add("points")
        raw = f.data.get("points")
        if not isinstance(raw, list) or not raw:
            raise f.error("points", f"must be a non-empty list of inspection points, got {raw!r}")
        f.done()
    except DesignError as exc:
        raise RoundError(source, exc.field, exc.reason) from None
    points: list[InspectionPoint] = []
    for i, p in enumerate(raw):
        pname = p.get("name", "") if isinstance(p, dict) else ""
        pname = pname if isinstance(pname, str) else ""
        try:
            point = _point(p)
        except DesignError as exc:
            raise RoundError(source, exc.field, exc.reason, i, pname) from None
        if any(q.name == point.name for q in points):
            raise RoundError(source, "name", f"repeats the point name {point.name!r}", i, pname)
        points.append(point)
    return Round(name, site, keep_out, budget, tuple(points), source, world)


def parse_round_yaml(text: str, source: str = "<round>") -> Round:
    """A round from YAML text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoundError(source, "(yaml)", f"is not valid YAML: {exc}") from None
    return parse_round(data, source)


def round_path(name: str | Path) -> Path:
    """The file of a round: a path as given, or a bare name (``reactor_round``) in the
    package's ``config/inspection``."""
    p = Path(name)
    if p.suffix or p.exists():
        return p
    return config_path("inspection", f"{p.name}.yaml")


def load_round(name: str | Path) -> Round:
    """Read and validate a round file (a path, or a bare name in ``config/inspection``)."""
    p = round_path(name)
    try:
        text = p.read_text()
    except OSError as exc:
        raise RoundError(str(p), "(file)", f"cannot be read: {exc.strerror}") from None
    return parse_round_yaml(text, str(p))


# ---------------------------------------------------------------------------------------
# Against the world's site
# ---------------------------------------------------------------------------------------
class SiteObjectLike(Protocol):
    """What a round needs of a site object (``ilrs_robots.sim.world.SiteObject``)."""

    name: str
    type: str
    role: str
    position: tuple[float, float, float]


class SiteLike(Protocol):
    """What a round needs of a site (``ilrs_robots.sim.world.Site``)."""

    name: str
    position: tuple[float, float]
    objects: Sequence[SiteObjectLike]


def keep_out_center(site: SiteLike) -> tuple[float, float]:
    """Map position of the site's reactor (its object of role ``reactor``; the site's
    centre without one)."""
    sx, sy = site.position
    for o in site.objects:
        if o.role == "reactor":
            return sx + o.position[0], sy + o.position[1]
    return float(sx), float(sy)


def check_round_site(rnd: Round, site: SiteLike, require_objects: bool = True) -> None:
    """Refuse a round that does not fit its site: a different site, a point inside the
    reactor's keep-out radius, and (``require_objects``) photo targets or gauges the site
    does not have. Raises :class:`RoundError` naming the point and the field."""
    if site.name != rnd.site:
        raise RoundError(rnd.source, "site", f"names {rnd.site!r}, checked against site "
                                             f"{site.name!r}")
    cx, cy = keep_out_center(site)
    by_name = {o.name: o for o in site.objects}
    for i, p in enumerate(rnd.points):
        d = math.hypot(p.pose.x - cx, p.pose.y - cy)
        if d < rnd.keep_out_radius:
            raise RoundError(rnd.source, "pose", f"({p.pose.x:g}, {p.pose.y:g}) is {d:.2f} m "
                             f"from the reactor at ({cx:g}, {cy:g}), inside the keep-out radius "
                             f"of {rnd.keep_out_radius:g} m", i, p.name)
        if not require_objects:
            continue
        for j, c in enumerate(p.checks):
            if isinstance(c, PhotoCheck):
                field, name, want = f"checks[{j}].photo.target", c.target, None
            elif isinstance(c, GaugeCheck):
                field, name, want = f"checks[{j}].gauge.name", c.gauge, "gauge"
            else:
                continue
            obj = by_name.get(name)
            if obj is None:
                raise RoundError(rnd.source, field, f"names {name!r}, which site {site.name!r} "
                                 f"does not have (objects: {sorted(by_name)})", i, p.name)
            if want is not None and obj.type != want:
                raise RoundError(rnd.source, field, f"names {name!r}, a {obj.type}, not a "
                                 f"{want}", i, p.name)


# ---------------------------------------------------------------------------------------
# Dose forecast
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DoseForecast:
    """The dose (uSv) a round is expected to give the rover: per leg (driving to point i)
    and per stop (standing at point i), and in total."""

    legs: tuple[float, ...]
    stops: tuple[float, ...]

    @property
    def total(self) -> float:
        """Whole round, uSv."""
        return sum(self.legs) + sum(self.stops)


def forecast_dose(rnd: Round, dose_rate: Callable[[np.ndarray], np.ndarray],
                  start: tuple[float, float], speed: float = 0.3,
                  seconds_per_check: float = 15.0, step: float = 0.5,
                  from_point: int = 0) -> DoseForecast:
    """The dose of driving the round in straight legs from ``start`` at ``speed`` (m/s) and
    standing at each point for its radiation dwells plus ``seconds_per_check`` per other
    check, from ``dose_rate`` (uSv/h at map points (n, 2)), e.g. the radiation map's. Routes
    around obstacles are longer than straight legs: compare with a margin."""
    if speed <= 0.0:
        raise ValueError(f"speed must be positive, got {speed}")
    legs, stops = [], []
    here = np.asarray(start, dtype=float)
    for p in rnd.points[from_point:]:
        there = np.array([p.pose.x, p.pose.y])
        length = float(np.linalg.norm(there - here))
        n = max(1, int(math.ceil(length / step)))
        mids = here + (np.arange(n)[:, None] + 0.5) / n * (there - here)
        rates = np.asarray(dose_rate(mids), dtype=float)
        legs.append(float(rates.mean()) * length / speed / 3600.0)
        stay = sum(c.dwell_s if isinstance(c, RadiationCheck) else seconds_per_check
                   for c in p.checks)
        stops.append(float(np.asarray(dose_rate(there[None, :]), dtype=float)[0])
                     * stay / 3600.0)
        here = there
    return DoseForecast(tuple(legs), tuple(stops))
