"""World description: load and validate ``config/worlds/*.yaml`` and build its terrain.

One file describes terrain, sun, gravity, sites (with their objects and radiation sources)
and the rover's start pose; the MuJoCo model, the Gazebo world, the navigation prior map and
the inspection nodes are all derived from it. See ``config/worlds/south_pole.yaml`` for the
annotated schema. Every invalid field raises :class:`WorldError` naming the file and field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ilrs_robots.core import terrain as tr
from ilrs_robots.resources import config_path

TERRAIN_TYPES = ("craters", "flat", "slope", "dem")
OBJECT_TYPES = ("box", "cylinder", "sphere", "berm", "gauge")
KNOWN_SITES = ("landing_zone", "rover_depot", "construction_site", "reactor_site")

WORLDS_DIR = config_path("worlds")


class WorldError(ValueError):
    """An invalid world description; the message names the file and the field."""


# ---------------------------------------------------------------------------------------
# Dataclasses
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CraterSpec:
    """Crater population (diameters in metres)."""

    count: int = 900
    min_diameter: float = 2.0
    max_diameter: float = 70.0
    sfd_exponent: float = 2.0
    depth_ratio: tuple[float, float] = (0.08, 0.2)
    rim_ratio: float = 0.2


@dataclass(frozen=True)
class RockSpec:
    """Rock population (diameters in metres)."""

    count: int = 0
    min_diameter: float = 0.1
    max_diameter: float = 1.0
    sfd_exponent: float = 2.5
    embed: float = 0.35


@dataclass(frozen=True)
class DemSpec:
    """A 16-bit PNG digital elevation model: height = offset + count * metres_per_count.
    Image row 0 is the northern (+y) edge."""

    file: Path
    metres_per_count: float
    offset: float = 0.0


@dataclass(frozen=True)
class TerrainSpec:
    """Terrain type, extent and generation parameters."""

    type: str
    size: tuple[float, float]
    resolution: float
    center: tuple[float, float] = (0.0, 0.0)
    base_height: float = 0.0
    max_slope_deg: float = 30.0
    craters: CraterSpec = field(default_factory=CraterSpec)
    undulation_amplitude: float = 0.0
    undulation_wavelength: float = 60.0
    rocks: RockSpec = field(default_factory=RockSpec)
    slope_deg: float = 0.0
    uphill_azimuth_deg: float = 0.0
    dem: DemSpec | None = None


@dataclass(frozen=True)
class SunSpec:
    """The sun: elevation above the horizon and azimuth towards it (CCW from +x), degrees."""

    elevation_deg: float
    azimuth_deg: float
    intensity: float = 1.0

    def direction(self) -> np.ndarray:
        """Unit vector pointing from the ground towards the sun."""
        el = math.radians(self.elevation_deg)
        az = math.radians(self.azimuth_deg)
        return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az),
                         math.sin(el)])


@dataclass(frozen=True)
class PriorMapSpec:
    """How the orbital prior map is derived: resolution (m), noise std (m), noise seed."""

    resolution: float = 2.0
    noise_sigma: float = 0.15
    seed: int = 0


@dataclass(frozen=True)
class SiteObject:
    """A static object at a site. ``position`` is relative to the site centre and the pad
    surface. ``size``: box = half-extents (x, y, z); cylinder = (radius, height);
    sphere = (radius,); gauge = (face radius, post height); berm = (thickness, height) of a
    ring of ``segments`` boxes at ``radius`` with an opening of ``gap_deg`` centred on
    ``gap_azimuth_deg``. A gauge's face looks along its yaw; ``needle_deg`` is where its
    needle points, degrees clockwise from 12 o'clock as seen from the front (a round's gauge
    scale turns it into a value; a test changes it to plant an anomaly)."""

    name: str
    type: str
    role: str
    position: tuple[float, float, float]
    size: tuple[float, ...]
    yaw_deg: float = 0.0
    rgba: tuple[float, float, float, float] = (0.7, 0.7, 0.7, 1.0)
    radius: float = 0.0
    segments: int = 12
    gap_deg: float = 0.0
    gap_azimuth_deg: float = 0.0
    needle_deg: float = 0.0


@dataclass(frozen=True)
class RadiationSource:
    """A point source; ``position`` relative to its site (z above the pad surface).
    ``dose_rate_at_1m`` is in microsievert per hour at 1 m, unshielded, falling as 1/r^2."""

    name: str
    site: str
    position: tuple[float, float, float]
    dose_rate_at_1m: float


@dataclass(frozen=True)
class Site:
    """A named place with a flattened pad under it."""

    name: str
    position: tuple[float, float]
    pad_radius: float = 10.0
    pad_blend: float = 8.0
    objects: tuple[SiteObject, ...] = ()
    radiation_sources: tuple[RadiationSource, ...] = ()

    def surface_z(self, heightmap: tr.Heightmap) -> float:
        """Height of the pad surface."""
        return float(heightmap.height_at(*self.position))

    def to_world(self, rel: tuple[float, float, float], heightmap: tr.Heightmap
                 ) -> tuple[float, float, float]:
        """World (x, y, z) of a site-relative position (z above the pad surface)."""
        return (self.position[0] + rel[0], self.position[1] + rel[1],
                self.surface_z(heightmap) + rel[2])


@dataclass(frozen=True)
class RoverStart:
    """Rover start pose in world coordinates (x, y) and yaw (degrees, CCW from +x)."""

    position: tuple[float, float]
    yaw_deg: float = 0.0
    site: str | None = None


@dataclass(frozen=True)
class World:
    """A validated world description."""

    name: str
    seed: int
    gravity: float
    terrain: TerrainSpec
    sun: SunSpec
    rover_start: RoverStart
    sites: dict[str, Site] = field(default_factory=dict)
    prior_map: PriorMapSpec = field(default_factory=PriorMapSpec)
    path: Path | None = None

    def site(self, name: str) -> Site:
        """The site called ``name`` (KeyError naming the known ones otherwise)."""
        try:
            return self.sites[name]
        except KeyError:
            raise KeyError(f"no site {name!r} in world {self.name!r}; "
                           f"known: {sorted(self.sites)}") from None

    def radiation_sources(self) -> list[RadiationSource]:
        """All radiation sources of all sites."""
        return [s for site in self.sites.values() for s in site.radiation_sources]

    def pads(self) -> list[tr.Pad]:
        """The flattened pads of all sites."""
        return [tr.Pad(s.position[0], s.position[1], s.pad_radius, s.pad_blend)
                for s in self.sites.values()]


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------
class _Reader:
    """Typed access to one mapping of the YAML, with errors naming file and field path."""

    def __init__(self, data: Any, where: str, source: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise WorldError(f"{source}: field '{where or '<root>'}' must be a mapping")
        self.data = data
        self.where = where
        self.source = source

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, msg: str) -> WorldError:
        return WorldError(f"{self.source}: field '{self._name(key)}' {msg}")

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def sub(self, key: str, required: bool = False) -> _Reader:
        if required and not self.has(key):
            raise self.fail(key, "is required")
        return _Reader(self.data.get(key), self._name(key), self.source)

    def number(self, key: str, default: float | None = None, *, lo: float | None = None,
               hi: float | None = None, positive: bool = False) -> float:
        if not self.has(key):
            if default is None:
                raise self.fail(key, "is required")
            return float(default)
        v = self.data[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.fail(key, f"must be a number, got {v!r}")
        v = float(v)
        if positive and v <= 0:
            raise self.fail(key, f"must be positive, got {v}")
        if lo is not None and v < lo:
            raise self.fail(key, f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise self.fail(key, f"must be <= {hi}, got {v}")
        return v

    def integer(self, key: str, default: int | None = None, *, lo: int = 0) -> int:
        if not self.has(key):
            if default is None:
                raise self.fail(key, "is required")
            return default
        v = self.data[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, f"must be an integer, got {v!r}")
        if v < lo:
            raise self.fail(key, f"must be >= {lo}, got {v}")
        return v

    def string(self, key: str, default: str | None = None,
               choices: tuple[str, ...] | None = None) -> str:
        if not self.has(key):
            if default is None:
                raise self.fail(key, "is required")
            return default
        v = self.data[key]
        if not isinstance(v, str) or not v:
            raise self.fail(key, f"must be a non-empty string, got {v!r}")
        if choices is not None and v not in choices:
            raise self.fail(key, f"must be one of {list(choices)}, got {v!r}")
        return v

    def vector(self, key: str, n: int | tuple[int, ...], default: tuple[float, ...] | None = None,
               *, positive: bool = False, lo: float | None = None,
               hi: float | None = None) -> tuple[float, ...]:
        lengths = (n,) if isinstance(n, int) else n
        if not self.has(key):
            if default is None:
                raise self.fail(key, "is required")
            return tuple(float(x) for x in default)
        v = self.data[key]
        if not isinstance(v, list | tuple) or len(v) not in lengths:
            raise self.fail(key, f"must be a list of {' or '.join(map(str, lengths))} "
                                 f"numbers, got {v!r}")
        out = []
        for x in v:
            if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
                raise self.fail(key, f"must contain only numbers, got {v!r}")
            if positive and x <= 0:
                raise self.fail(key, f"must contain only positive numbers, got {v!r}")
            if (lo is not None and x < lo) or (hi is not None and x > hi):
                raise self.fail(key, f"values must lie in [{lo}, {hi}], got {v!r}")
            out.append(float(x))
        return tuple(out)

    def items(self, key: str) -> list[_Reader]:
        if not self.has(key):
            return []
        v = self.data[key]
        if not isinstance(v, list):
            raise self.fail(key, "must be a list")
        return [_Reader(x, f"{self._name(key)}[{i}]", self.source) for i, x in enumerate(v)]

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        for k in self.data:
            if k not in allowed:
                raise self.fail(str(k), f"is unknown (allowed: {', '.join(allowed)})")


def _terrain(r: _Reader, base_dir: Path | None) -> TerrainSpec:
    r.check_keys(("type", "size", "resolution", "center", "base_height", "max_slope_deg",
                  "craters", "undulation", "rocks", "slope", "dem"))
    kind = r.string("type", choices=TERRAIN_TYPES)
    size = r.vector("size", 2, positive=True)
    res = r.number("resolution", positive=True)
    if min(size) / res < 2:
        raise r.fail("resolution", f"is too coarse for size {list(size)}")
    if (size[0] / res + 1) * (size[1] / res + 1) > 16e6:
        raise r.fail("resolution", "gives more than 16 million height nodes")
    kw: dict[str, Any] = {
        "type": kind, "size": size, "resolution": res,
        "center": r.vector("center", 2, (0.0, 0.0)),
        "base_height": r.number("base_height", 0.0),
        "max_slope_deg": r.number("max_slope_deg", 30.0, lo=1.0, hi=80.0),
    }
    c = r.sub("craters", required=kind == "craters")
    if kind == "craters":
        c.check_keys(("count", "min_diameter", "max_diameter", "sfd_exponent", "depth_ratio",
                      "rim_ratio"))
        dmin = c.number("min_diameter", 2.0, positive=True)
        dmax = c.number("max_diameter", 70.0, positive=True)
        if dmax <= dmin:
            raise c.fail("max_diameter", f"must exceed min_diameter ({dmin})")
        dr = c.vector("depth_ratio", 2, (0.08, 0.2), lo=0.0, hi=0.5)
        if dr[1] < dr[0]:
            raise c.fail("depth_ratio", "must be [low, high] with low <= high")
        kw["craters"] = CraterSpec(c.integer("count", 900), dmin, dmax,
                                   c.number("sfd_exponent", 2.0, positive=True),
                                   (dr[0], dr[1]), c.number("rim_ratio", 0.2, lo=0.0, hi=1.0))
    u = r.sub("undulation")
    u.check_keys(("amplitude", "wavelength"))
    kw["undulation_amplitude"] = u.number("amplitude", 0.0, lo=0.0)
    kw["undulation_wavelength"] = u.number("wavelength", 60.0, positive=True)
    k = r.sub("rocks")
    k.check_keys(("count", "min_diameter", "max_diameter", "sfd_exponent", "embed"))
    rmin = k.number("min_diameter", 0.1, positive=True)
    rmax = k.number("max_diameter", 1.0, positive=True)
    if rmax <= rmin:
        raise k.fail("max_diameter", f"must exceed min_diameter ({rmin})")
    kw["rocks"] = RockSpec(k.integer("count", 0), rmin, rmax,
                           k.number("sfd_exponent", 2.5, positive=True),
                           k.number("embed", 0.35, lo=0.0, hi=0.9))
    if kind == "slope":
        s = r.sub("slope", required=True)
        s.check_keys(("angle_deg", "uphill_azimuth_deg"))
        kw["slope_deg"] = s.number("angle_deg", lo=0.0, hi=60.0)
        kw["uphill_azimuth_deg"] = s.number("uphill_azimuth_deg", 0.0)
    if kind == "dem":
        d = r.sub("dem", required=True)
        d.check_keys(("file", "metres_per_count", "offset"))
        f = Path(d.string("file"))
        if not f.is_absolute() and base_dir is not None:
            f = base_dir / f
        kw["dem"] = DemSpec(f, d.number("metres_per_count", positive=True),
                            d.number("offset", 0.0))
    return TerrainSpec(**kw)


def _site(name: str, r: _Reader) -> Site:
    r.check_keys(("position", "pad_radius", "pad_blend", "objects", "radiation_sources"))
    objects = []
    for o in r.items("objects"):
        o.check_keys(("name", "type", "role", "position", "size", "yaw_deg", "rgba", "radius",
                      "segments", "gap_deg", "gap_azimuth_deg", "needle_deg"))
        typ = o.string("type", choices=OBJECT_TYPES)
        nsize = {"box": 3, "cylinder": 2, "sphere": 1, "berm": 2, "gauge": 2}[typ]
        pos = o.vector("position", (2, 3), (0.0, 0.0, 0.0))
        objects.append(SiteObject(
            name=o.string("name"), type=typ, role=o.string("role", typ),
            position=(pos[0], pos[1], pos[2] if len(pos) == 3 else 0.0),
            size=o.vector("size", nsize, positive=True), yaw_deg=o.number("yaw_deg", 0.0),
            rgba=o.vector("rgba", 4, (0.7, 0.7, 0.7, 1.0), lo=0.0, hi=1.0),  # type: ignore[arg-type]
            radius=o.number("radius", 0.0 if typ != "berm" else None, lo=0.0),
            segments=o.integer("segments", 12, lo=3), gap_deg=o.number("gap_deg", 0.0, lo=0.0,
                                                                       hi=300.0),
            gap_azimuth_deg=o.number("gap_azimuth_deg", 0.0),
            needle_deg=o.number("needle_deg", 0.0, lo=-360.0, hi=360.0)))
    sources = []
    for s in r.items("radiation_sources"):
        s.check_keys(("name", "position", "dose_rate_at_1m"))
        pos = s.vector("position", (2, 3), (0.0, 0.0, 0.0))
        sources.append(RadiationSource(s.string("name"), name,
                                       (pos[0], pos[1], pos[2] if len(pos) == 3 else 0.0),
                                       s.number("dose_rate_at_1m", lo=0.0)))
    names = [o.name for o in objects] + [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise r.fail("objects", f"has duplicate names {dupes}")
    p = r.vector("position", 2)
    return Site(name, (p[0], p[1]), r.number("pad_radius", 10.0, positive=True),
                r.number("pad_blend", 8.0, lo=0.0), tuple(objects), tuple(sources))


def world_from_dict(data: Any, source: str = "<dict>", base_dir: Path | None = None) -> World:
    """Validate a parsed world mapping; ``source`` names it in errors."""
    r = _Reader(data, "", source)
    r.check_keys(("name", "seed", "gravity", "terrain", "sun", "prior_map", "sites",
                  "rover_start"))
    terrain = _terrain(r.sub("terrain", required=True), base_dir)
    s = r.sub("sun", required=True)
    s.check_keys(("elevation_deg", "azimuth_deg", "intensity"))
    sun = SunSpec(s.number("elevation_deg", lo=-10.0, hi=90.0), s.number("azimuth_deg"),
                  s.number("intensity", 1.0, lo=0.0))
    pm = r.sub("prior_map")
    pm.check_keys(("resolution", "noise_sigma", "seed"))
    prior = PriorMapSpec(pm.number("resolution", max(2.0, terrain.resolution), positive=True),
                         pm.number("noise_sigma", 0.15, lo=0.0), pm.integer("seed", 0))
    if prior.resolution < terrain.resolution:
        raise pm.fail("resolution", f"must not be finer than terrain.resolution "
                                    f"({terrain.resolution})")
    sites: dict[str, Site] = {}
    sr = r.sub("sites")
    xmin = terrain.center[0] - terrain.size[0] / 2
    ymin = terrain.center[1] - terrain.size[1] / 2
    for name in sr.data:
        if not isinstance(name, str):
            raise sr.fail(str(name), "site names must be strings")
        site = _site(name, sr.sub(name, required=True))
        x, y = site.position
        if not (xmin <= x <= xmin + terrain.size[0] and ymin <= y <= ymin + terrain.size[1]):
            raise sr.sub(name).fail("position", f"{list(site.position)} is outside the terrain")
        sites[name] = site
    rs = r.sub("rover_start", required=True)
    rs.check_keys(("site", "position", "yaw_deg"))
    pos = rs.vector("position", 2, (0.0, 0.0))
    site_name = rs.string("site") if rs.has("site") else None
    if site_name is not None:
        if site_name not in sites:
            raise rs.fail("site", f"names unknown site {site_name!r} (known: {sorted(sites)})")
        sp = sites[site_name].position
        pos = (sp[0] + pos[0], sp[1] + pos[1])
    if not (xmin + 2 <= pos[0] <= xmin + terrain.size[0] - 2
            and ymin + 2 <= pos[1] <= ymin + terrain.size[1] - 2):
        raise rs.fail("position", f"puts the rover at {list(pos)}, outside the terrain")
    start = RoverStart((pos[0], pos[1]), rs.number("yaw_deg", 0.0), site_name)
    seed = r.integer("seed", 0)
    return World(name=r.string("name", "world"), seed=seed,
                 gravity=r.number("gravity", 1.62, positive=True), terrain=terrain, sun=sun,
                 rover_start=start, sites=sites, prior_map=prior,
                 path=Path(source) if source != "<dict>" else None)


def load_world(path: str | Path) -> World:
    """Load and validate a world YAML file. A bare name (``south_pole``) is looked up in
    the package's ``config/worlds``."""
    p = Path(path)
    if not p.suffix and not p.exists():
        p = WORLDS_DIR / f"{p.name}.yaml"
    try:
        text = p.read_text()
    except OSError as e:
        raise WorldError(f"{p}: cannot read world file: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise WorldError(f"{p}: invalid YAML: {e}") from None
    return world_from_dict(data, str(p), p.parent)


# ---------------------------------------------------------------------------------------
# Terrain
# ---------------------------------------------------------------------------------------
def load_dem(spec: DemSpec, resolution: float, center: tuple[float, float]) -> tr.Heightmap:
    """Read a 16-bit (or 8-bit) single-channel PNG as a heightmap centred on ``center``."""
    import cv2

    img = cv2.imread(str(spec.file), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise WorldError(f"{spec.file}: field 'terrain.dem.file' cannot be read as an image")
    if img.ndim == 3:
        raise WorldError(f"{spec.file}: field 'terrain.dem.file' must be a single-channel "
                         f"(grey) image, got {img.shape[2]} channels")
    heights = spec.offset + np.flipud(img.astype(np.float64)) * spec.metres_per_count
    ny, nx = heights.shape
    origin = (center[0] - (nx - 1) * resolution / 2, center[1] - (ny - 1) * resolution / 2)
    return tr.Heightmap(heights, origin, resolution)


def build_heightmap(world: World) -> tr.Heightmap:
    """The exact terrain of ``world`` (reproducible from its seed)."""
    t = world.terrain
    pads = world.pads()
    if t.type == "craters":
        params = tr.CraterFieldParams(
            size=t.size, resolution=t.resolution, center=t.center, base_height=t.base_height,
            crater_count=t.craters.count, crater_min_diameter=t.craters.min_diameter,
            crater_max_diameter=t.craters.max_diameter, crater_exponent=t.craters.sfd_exponent,
            depth_ratio=t.craters.depth_ratio, rim_ratio=t.craters.rim_ratio,
            undulation_amplitude=t.undulation_amplitude,
            undulation_wavelength=t.undulation_wavelength, max_slope_deg=t.max_slope_deg,
            pads=pads)
        hm, _ = tr.crater_field(params, world.seed)
        return hm
    if t.type == "flat":
        hm = tr.empty_grid(t.size, t.resolution, t.center, t.base_height)
        if t.undulation_amplitude > 0:
            rng = np.random.default_rng(world.seed)
            hm.heights += tr.smooth_noise(rng, hm.shape, hm.resolution, t.undulation_wavelength,
                                         t.undulation_amplitude)
            tr.apply_pads(hm, pads, t.max_slope_deg)
        return hm
    if t.type == "slope":
        hm = tr.sloped_plane(t.size, t.resolution, t.slope_deg, t.uphill_azimuth_deg, t.center,
                            t.base_height)
        tr.apply_pads(hm, pads, None)
        return hm
    assert t.dem is not None
    hm = load_dem(t.dem, t.resolution, t.center)
    tr.apply_pads(hm, pads, None)
    return hm


def rocks(world: World, heightmap: tr.Heightmap | None = None) -> list[tr.Rock]:
    """The rocks of ``world`` (reproducible; none on pads or near the rover's start)."""
    spec = world.terrain.rocks
    if spec.count == 0:
        return []
    hm = heightmap if heightmap is not None else build_heightmap(world)
    keep = [tr.KeepOut(p.x, p.y, p.radius + p.blend) for p in world.pads()]
    keep.append(tr.KeepOut(*world.rover_start.position, 4.0))
    rng = np.random.default_rng([world.seed, 1])
    return tr.generate_rocks(rng, hm, spec.count, spec.min_diameter, spec.max_diameter,
                            spec.sfd_exponent, spec.embed, keep)


def prior_map(world: World, heightmap: tr.Heightmap | None = None) -> tr.Heightmap:
    """The orbital prior map navigation gets: coarser and noisy, never the exact terrain."""
    hm = heightmap if heightmap is not None else build_heightmap(world)
    spec = world.prior_map
    return tr.prior_map(hm, spec.resolution, spec.noise_sigma, spec.seed)
