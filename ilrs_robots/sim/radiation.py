"""The simulated radiation field of a world and what a Geiger-Mueller tube counts in it.

Model (what is in, what is not):

* Point sources (``radiation_sources`` of the world's sites, ``dose_rate_at_1m`` in uSv/h at
  1 m, unshielded) falling off as 1/r^2; r is clamped at ``min_distance`` (0.3 m) so a query
  inside a source stays finite.
* Shield berms (site objects of type ``berm``: a ring of ``radius`` with ``size`` = (thickness,
  height) and an opening of ``gap_deg`` centred on ``gap_azimuth_deg``) attenuate a source by
  exp(-mu * L), L the length of the straight source-to-point segment inside the ring's material
  (below its top, outside its gap). ``mu`` defaults to 5 /m: narrow-beam attenuation of
  ~2 MeV gammas in regolith of ~1.5 g/cm^3 (mass attenuation ~0.035 cm^2/g), no build-up and
  no sky-shine, so behind 1.5 m of berm a source is down by ~5e-4.
* A uniform background (``background``, uSv/h; 0.2 by default: what a GMC-320 shows on Earth
  is ~0.1; the world file has no field for the Moon's cosmic-ray background).
* Terrain, rocks and the other objects do not shield.

Counting: the tube's expected count rate is dose / ``usv_per_cpm`` (0.0065 uSv/h per CPM for
the GMC-320's M4011, GQ's calibration on Cs-137). Counts per second are drawn by
:class:`CountGenerator` from a seeded generator as the renewal process of a non-paralysable
counter: true events are Poisson at rate n, and after each recorded count the tube is dead for
``dead_time`` (90 us by default, the order quoted for small GM tubes such as the M4011), so the
recorded rate is n / (1 + n * tau) and its counts are (slightly under-dispersed) Poisson-like.
Dead time carries over from one second to the next.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ilrs_robots.core.terrain import Heightmap
    from ilrs_robots.sim.world import World

M4011_USV_PER_CPM = 0.0065  # uSv/h per count per minute (GMC-320, M4011 tube)
DEAD_TIME_S = 90e-6  # s, non-paralysable
BERM_MU = 5.0  # 1/m, linear attenuation of the berm's regolith
BACKGROUND_USV_H = 0.2
MIN_DISTANCE = 0.3  # m


@dataclass(frozen=True)
class PointSource:
    """A source at a world position (m) with its unshielded dose rate at 1 m (uSv/h)."""

    name: str
    position: tuple[float, float, float]
    dose_rate_at_1m: float


@dataclass(frozen=True)
class Berm:
    """A ring-shaped shield: centre (x, y) and base height z (world), ring radius (to the
    middle of the wall), wall thickness and height (m), an opening of ``gap_deg`` centred on
    ``gap_azimuth_deg`` (degrees CCW from +x, seen from the centre)."""

    center: tuple[float, float]
    base_z: float
    radius: float
    thickness: float
    height: float
    gap_deg: float = 0.0
    gap_azimuth_deg: float = 0.0

    def _in_gap(self, x: float, y: float) -> bool:
        if self.gap_deg <= 0.0:
            return False
        az = math.degrees(math.atan2(y - self.center[1], x - self.center[0]))
        rel = (az - self.gap_azimuth_deg + 180.0) % 360.0 - 180.0
        return abs(rel) < self.gap_deg / 2

    def path_length(self, p0: Sequence[float], p1: Sequence[float]) -> float:
        """Length (m) of the segment p0 -> p1 inside the berm's material."""
        return float(self.path_lengths(p0, np.asarray([p1], dtype=float))[0])

    def path_lengths(self, p0: Sequence[float], points: np.ndarray) -> np.ndarray:
        """:meth:`path_length` from ``p0`` to each of ``points`` (n, 3), vectorised."""
        a = np.asarray(p0, dtype=float)
        pts = np.asarray(points, dtype=float).reshape(-1, 3)
        d = pts - a
        total = np.linalg.norm(d, axis=1)
        ax, ay = a[0] - self.center[0], a[1] - self.center[1]
        qa = d[:, 0] ** 2 + d[:, 1] ** 2
        qb = 2 * (ax * d[:, 0] + ay * d[:, 1])
        qc = ax * ax + ay * ay
        r_out = self.radius + self.thickness / 2
        r_in = max(0.0, self.radius - self.thickness / 2)
        o0, o1 = _circle_roots(qa, qb, qc, r_out)
        i0, i1 = _circle_roots(qa, qb, qc, r_in)
        no_inner = np.isnan(i0)
        pieces = [(o0, np.where(no_inner, o1, np.minimum(o1, i0))),
                  (np.where(no_inner, np.nan, np.maximum(o0, i1)), o1)]
        top = self.base_z + self.height
        length = np.zeros(len(pts))
        n = 8  # the opening's edges: judge the azimuth piecewise
        for t0, t1 in pieces:
            t0 = np.maximum(np.nan_to_num(t0, nan=2.0), 0.0)
            t1 = np.minimum(np.nan_to_num(t1, nan=-1.0), 1.0)
            t0, t1 = _clip_linear(t0, t1, a[2], d[:, 2], self.base_z, top)
            span = np.maximum(t1 - t0, 0.0)
            if not np.any(span > 0):
                continue
            k = (np.arange(n) + 0.5) / n
            tm = t0[:, None] + span[:, None] * k[None, :]
            if self.gap_deg > 0.0:
                x = a[0] + tm * d[:, 0:1] - self.center[0]
                y = a[1] + tm * d[:, 1:2] - self.center[1]
                az = np.degrees(np.arctan2(y, x))
                rel = (az - self.gap_azimuth_deg + 180.0) % 360.0 - 180.0
                solid = np.abs(rel) >= self.gap_deg / 2
            else:
                solid = np.ones(tm.shape, dtype=bool)
            length += span / n * solid.sum(axis=1) * total
        return length


def _circle_roots(qa: np.ndarray, qb: np.ndarray, qc: float, r: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per segment, the t-interval where qa t^2 + qb t + qc <= r^2 (NaN where none; a
    vertical segment inside the circle gets (-inf, inf))."""
    n = len(qa)
    if r <= 0.0:
        return np.full(n, np.nan), np.full(n, np.nan)
    disc = qb * qb - 4 * qa * (qc - r * r)
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.sqrt(np.where(disc > 0, disc, np.nan))
        t0 = (-qb - root) / (2 * qa)
        t1 = (-qb + root) / (2 * qa)
    vertical = qa == 0.0
    inside = qc <= r * r
    t0 = np.where(vertical, -np.inf if inside else np.nan, t0)
    t1 = np.where(vertical, np.inf if inside else np.nan, t1)
    return t0, t1


def _clip_linear(t0: np.ndarray, t1: np.ndarray, z0: float, dz: np.ndarray, lo: float,
                 hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip [t0, t1] to where lo <= z0 + t dz <= hi (element-wise)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ta = (lo - z0) / dz
        tb = (hi - z0) / dz
    flat = dz == 0.0
    level_ok = (lo <= z0) & (z0 <= hi)
    ta_, tb_ = np.minimum(ta, tb), np.maximum(ta, tb)
    ta_ = np.where(flat, np.where(level_ok, -np.inf, np.inf), ta_)
    tb_ = np.where(flat, np.where(level_ok, np.inf, -np.inf), tb_)
    return np.maximum(t0, ta_), np.minimum(t1, tb_)


@dataclass
class RadiationField:
    """Dose rate (uSv/h) anywhere from point sources, berms and a background."""

    sources: list[PointSource] = field(default_factory=list)
    berms: list[Berm] = field(default_factory=list)
    background: float = BACKGROUND_USV_H
    mu: float = BERM_MU
    min_distance: float = MIN_DISTANCE

    @classmethod
    def from_world(cls, world: World, heightmap: Heightmap | None = None, **kw: float
                   ) -> RadiationField:
        """The field of a world's sources and berms. Heights are the site's pad surface
        (from ``heightmap``) plus the objects' z; without a heightmap every pad is at z = 0
        and queries must use heights above the pad."""
        sources, berms = [], []
        for site in world.sites.values():
            base = site.surface_z(heightmap) if heightmap is not None else 0.0
            sx, sy = site.position
            for s in site.radiation_sources:
                sources.append(PointSource(s.name, (sx + s.position[0], sy + s.position[1],
                                                    base + s.position[2]), s.dose_rate_at_1m))
            for o in site.objects:
                if o.type == "berm":
                    berms.append(Berm((sx + o.position[0], sy + o.position[1]),
                                      base + o.position[2], o.radius, o.size[0], o.size[1],
                                      o.gap_deg, o.gap_azimuth_deg))
        return cls(sources, berms, **kw)

    def source_dose_rate(self, source: PointSource, point: Sequence[float]) -> float:
        """The dose rate (uSv/h) of one source at ``point`` (x, y, z), shielding included."""
        p = (float(point[0]), float(point[1]), float(point[2]) if len(point) > 2 else 0.0)
        r2 = sum((p[i] - source.position[i]) ** 2 for i in range(3))
        rate = source.dose_rate_at_1m / max(r2, self.min_distance ** 2)
        if self.berms and self.mu > 0.0 and rate > 0.0:
            length = sum(b.path_length(source.position, p) for b in self.berms)
            rate *= math.exp(-self.mu * length)
        return rate

    def transmission(self, source: Sequence[float], points: np.ndarray) -> np.ndarray:
        """Fraction of a source at ``source`` reaching each of ``points`` (n, 3) through
        the berms (1 where nothing shields)."""
        pts = np.asarray(points, dtype=float).reshape(-1, 3)
        if not self.berms or self.mu <= 0.0:
            return np.ones(len(pts))
        length = sum(b.path_lengths(source, pts) for b in self.berms)
        return np.exp(-self.mu * length)

    def dose_rate(self, point: Sequence[float]) -> float:
        """Total dose rate (uSv/h) at ``point`` (x, y, z), background included."""
        return self.background + sum(self.source_dose_rate(s, point) for s in self.sources)

    def dose_rates(self, points: Iterable[Sequence[float]]) -> np.ndarray:
        """:meth:`dose_rate` of each point (n, 3), vectorised."""
        pts = np.asarray(list(points), dtype=float).reshape(-1, 3)
        out = np.full(len(pts), self.background)
        for s in self.sources:
            q = np.asarray(s.position, dtype=float)
            r2 = np.maximum(((pts - q) ** 2).sum(axis=1), self.min_distance ** 2)
            out += s.dose_rate_at_1m / r2 * self.transmission(q, pts)
        return out


def expected_cpm(dose_rate: float, usv_per_cpm: float = M4011_USV_PER_CPM) -> float:
    """True count rate (counts per minute, before dead time) of a tube at ``dose_rate``."""
    return max(0.0, dose_rate) / usv_per_cpm


def recorded_rate(true_rate: float, dead_time: float = DEAD_TIME_S) -> float:
    """Recorded rate of a non-paralysable counter: n / (1 + n tau) (same unit as n, per s)."""
    return true_rate / (1.0 + true_rate * dead_time)


def true_rate(recorded: float, dead_time: float = DEAD_TIME_S) -> float:
    """Inverse of :func:`recorded_rate`: m / (1 - m tau); inf at or past saturation."""
    denominator = 1.0 - recorded * dead_time
    return recorded / denominator if denominator > 0.0 else math.inf


class CountGenerator:
    """Counts of a non-paralysable GM tube per interval, from a seeded generator."""

    def __init__(self, seed: int | None = None, dead_time: float = DEAD_TIME_S) -> None:
        if dead_time < 0.0:
            raise ValueError(f"dead_time must be >= 0, got {dead_time}")
        self.dead_time = dead_time
        self.rng = np.random.default_rng(seed)
        self._dead_left = 0.0  # dead time carried into the next interval (s)

    def counts(self, rate_cps: float, dt: float = 1.0) -> int:
        """Counts recorded in the next ``dt`` seconds at a true event rate of ``rate_cps``."""
        if dt <= 0.0:
            return 0
        if rate_cps <= 0.0:
            self._dead_left = max(0.0, self._dead_left - dt)
            return 0
        tau = self.dead_time
        if tau == 0.0:
            return int(self.rng.poisson(rate_cps * dt))
        # renewal process: the tube is live from t; an event comes an exponential wait later,
        # and the tube is live again a dead time after it
        live = self._dead_left
        last: float | None = None
        count = 0
        while True:
            n = int((dt - live) * rate_cps * 1.2) + 16
            waits = self.rng.exponential(1.0 / rate_cps, n)
            times = live + np.cumsum(waits + tau) - tau
            inside = int(np.searchsorted(times, dt, side="left"))
            count += inside
            if inside > 0:
                last = float(times[inside - 1])
            if inside < n:
                break
            live = float(times[-1]) + tau
        if last is not None:
            self._dead_left = max(0.0, last + tau - dt)
        else:
            self._dead_left = max(0.0, self._dead_left - dt)
        return count
