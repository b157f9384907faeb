"""Terrain heightmaps and their procedural generation (pure numpy, no I/O).

Conventions: REP-103 world axes (x east/forward, y north/left, z up), metres. A
:class:`Heightmap` stores heights at grid *nodes*: ``heights[iy, ix]`` is the height at
``x = origin[0] + ix * resolution``, ``y = origin[1] + iy * resolution``. Row 0 is the
southern (-y) edge.

Generation is reproducible: every random draw comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# A slope limit enforced between 8-neighbours (chamfer metric) bounds the gradient
# magnitude by this factor times the limit (worst case: gradient at 22.5 degrees).
_CHAMFER_FACTOR = 1.0 / math.cos(math.radians(22.5))


@dataclass
class Heightmap:
    """A regular grid of terrain heights (metres) at nodes spaced ``resolution`` apart."""

    heights: np.ndarray
    origin: tuple[float, float] = (0.0, 0.0)
    resolution: float = 1.0

    def __post_init__(self) -> None:
        self.heights = np.asarray(self.heights, dtype=np.float64)
        if self.heights.ndim != 2 or min(self.heights.shape) < 2:
            raise ValueError("heights must be a 2-D array of at least 2x2 nodes")
        if not self.resolution > 0:
            raise ValueError("resolution must be positive")
        self.origin = (float(self.origin[0]), float(self.origin[1]))

    # -- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) = (ny, nx)."""
        return self.heights.shape  # type: ignore[return-value]

    @property
    def size(self) -> tuple[float, float]:
        """Extent (x, y) in metres between the outermost nodes."""
        ny, nx = self.heights.shape
        return ((nx - 1) * self.resolution, (ny - 1) * self.resolution)

    @property
    def center(self) -> tuple[float, float]:
        """World (x, y) of the grid centre."""
        sx, sy = self.size
        return (self.origin[0] + sx / 2.0, self.origin[1] + sy / 2.0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the grid in world coordinates."""
        sx, sy = self.size
        return (self.origin[0], self.origin[1], self.origin[0] + sx, self.origin[1] + sy)

    def xs(self) -> np.ndarray:
        """World x of each column."""
        return self.origin[0] + np.arange(self.heights.shape[1]) * self.resolution

    def ys(self) -> np.ndarray:
        """World y of each row."""
        return self.origin[1] + np.arange(self.heights.shape[0]) * self.resolution

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Meshgrid (X, Y) of node coordinates, each shaped like ``heights``."""
        return np.meshgrid(self.xs(), self.ys())

    def contains(self, x: float, y: float) -> bool:
        """True when (x, y) lies inside the grid."""
        xmin, ymin, xmax, ymax = self.bounds
        return xmin <= x <= xmax and ymin <= y <= ymax

    def copy(self) -> Heightmap:
        """Deep copy."""
        return Heightmap(self.heights.copy(), self.origin, self.resolution)

    # -- sampling -------------------------------------------------------------------------
    def height_at(self, x: float | np.ndarray, y: float | np.ndarray) -> float | np.ndarray:
        """Bilinearly interpolated height at (x, y); points outside are clamped to the edge."""
        scalar = np.isscalar(x) and np.isscalar(y)
        fx = (np.asarray(x, dtype=np.float64) - self.origin[0]) / self.resolution
        fy = (np.asarray(y, dtype=np.float64) - self.origin[1]) / self.resolution
        ny, nx = self.heights.shape
        fx = np.clip(fx, 0.0, nx - 1.0)
        fy = np.clip(fy, 0.0, ny - 1.0)
        ix = np.minimum(np.floor(fx).astype(np.intp), nx - 2)
        iy = np.minimum(np.floor(fy).astype(np.intp), ny - 2)
        tx = fx - ix
        ty = fy - iy
        h = self.heights
        z = (h[iy, ix] * (1 - tx) * (1 - ty) + h[iy, ix + 1] * tx * (1 - ty)
             + h[iy + 1, ix] * (1 - tx) * ty + h[iy + 1, ix + 1] * tx * ty)
        return float(z) if scalar else z

    def gradient(self) -> tuple[np.ndarray, np.ndarray]:
        """(dz/dx, dz/dy) at every node (central differences, one-sided at edges)."""
        gy, gx = np.gradient(self.heights, self.resolution)
        return gx, gy

    def slope_deg(self) -> np.ndarray:
        """Slope angle in degrees at every node."""
        gx, gy = self.gradient()
        return np.degrees(np.arctan(np.hypot(gx, gy)))

    def normal_at(self, x: float, y: float) -> np.ndarray:
        """Unit upward surface normal at (x, y), from the bilinear surface."""
        d = 0.5 * self.resolution
        dzdx = (self.height_at(x + d, y) - self.height_at(x - d, y)) / (2 * d)
        dzdy = (self.height_at(x, y + d) - self.height_at(x, y - d)) / (2 * d)
        n = np.array([-dzdx, -dzdy, 1.0])
        return n / np.linalg.norm(n)

    # -- resampling ---------------------------------------------------------------------
    def crop(self, xmin: float, ymin: float, xmax: float, ymax: float) -> Heightmap:
        """The sub-grid of nodes inside the given world rectangle (snapped to nodes)."""
        ny, nx = self.heights.shape
        i0 = int(np.clip(math.ceil((xmin - self.origin[0]) / self.resolution - 1e-9), 0, nx - 1))
        i1 = int(np.clip(math.floor((xmax - self.origin[0]) / self.resolution + 1e-9), 0, nx - 1))
        j0 = int(np.clip(math.ceil((ymin - self.origin[1]) / self.resolution - 1e-9), 0, ny - 1))
        j1 = int(np.clip(math.floor((ymax - self.origin[1]) / self.resolution + 1e-9), 0, ny - 1))
        if i1 - i0 < 1 or j1 - j0 < 1:
            raise ValueError("crop rectangle covers fewer than 2x2 nodes")
        origin = (self.origin[0] + i0 * self.resolution, self.origin[1] + j0 * self.resolution)
        return Heightmap(self.heights[j0:j1 + 1, i0:i1 + 1].copy(), origin, self.resolution)

    def downsample(self, factor: int) -> Heightmap:
        """Every ``factor``-th node after averaging over a ``factor`` x ``factor`` window."""
        if factor < 1:
            raise ValueError("factor must be >= 1")
        if factor == 1:
            return self.copy()
        return self.resample(self.resolution * factor)

    def resample(self, resolution: float) -> Heightmap:
        """The same area on a grid of another node spacing (box-filtered, then bilinear)."""
        if not resolution > 0:
            raise ValueError("resolution must be positive")
        sx, sy = self.size
        nx = max(2, int(math.floor(sx / resolution + 1e-9)) + 1)
        ny = max(2, int(math.floor(sy / resolution + 1e-9)) + 1)
        src = self
        k = int(round(resolution / self.resolution))
        if k >= 2:  # anti-alias: a centred (odd) box filter of about one output cell
            src = Heightmap(_box_filter(self.heights, k + 1 - k % 2), self.origin,
                            self.resolution)
        xs = self.origin[0] + np.arange(nx) * resolution
        ys = self.origin[1] + np.arange(ny) * resolution
        X, Y = np.meshgrid(xs, ys)
        return Heightmap(src.height_at(X, Y), self.origin, resolution)


def _box_filter(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over a k x k window centred on each node (edge-replicated), via cumulative sums."""
    lo = k // 2
    hi = k - 1 - lo
    p = np.pad(a, ((lo, hi), (lo, hi)), mode="edge")
    c = np.cumsum(np.cumsum(p, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    ny, nx = a.shape
    s = c[k:k + ny, k:k + nx] - c[:ny, k:k + nx] - c[k:k + ny, :nx] + c[:ny, :nx]
    return s / (k * k)


# ---------------------------------------------------------------------------------------
# Craters and rocks
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Crater:
    """A simple bowl crater: centre, rim diameter (m), depth below and rim height above
    the surrounding terrain (m)."""

    x: float
    y: float
    diameter: float
    depth: float
    rim_height: float


@dataclass(frozen=True)
class Rock:
    """A rock as an ellipsoid: centre (x, y, z) in metres, semi-axes (m) and yaw (rad)."""

    x: float
    y: float
    z: float
    semi_axes: tuple[float, float, float]
    yaw: float

    @property
    def diameter(self) -> float:
        """Largest horizontal diameter."""
        return 2.0 * max(self.semi_axes[0], self.semi_axes[1])


@dataclass(frozen=True)
class KeepOut:
    """A disc (x, y, radius) in which no crater or rock is placed."""

    x: float
    y: float
    radius: float


def power_law_sizes(rng: np.random.Generator, count: int, d_min: float, d_max: float,
                    exponent: float) -> np.ndarray:
    """Draw ``count`` sizes from a truncated power law whose *cumulative* number
    N(>D) is proportional to D**-exponent, between ``d_min`` and ``d_max``."""
    if not 0 < d_min < d_max:
        raise ValueError("need 0 < d_min < d_max")
    if exponent <= 0:
        raise ValueError("exponent must be positive")
    u = rng.random(count)
    tail = (d_min / d_max) ** exponent
    return d_min * (1.0 - u * (1.0 - tail)) ** (-1.0 / exponent)


def crater_profile(r: np.ndarray, depth: float, rim_height: float) -> np.ndarray:
    """Height change of a crater at normalised radius ``r`` = distance / rim radius.

    A parabolic bowl from ``-depth`` at the centre to ``+rim_height`` at the rim (r = 1),
    then an ejecta blanket falling off as r**-3, tapered smoothly to zero at r = 3.
    """
    r = np.asarray(r, dtype=np.float64)
    inside = -depth + (depth + rim_height) * r ** 2
    rr = np.maximum(r, 1.0)
    taper = np.clip((3.0 - rr) / 2.0, 0.0, 1.0)
    taper = taper * taper * (3 - 2 * taper)  # smoothstep: 1 at r=1, 0 at r=3
    outside = rim_height * rr ** -3 * taper
    return np.where(r <= 1.0, inside, outside)


def stamp_crater(hm: Heightmap, crater: Crater) -> None:
    """Add one crater to ``hm`` in place (only the nodes within 3 radii are touched)."""
    radius = crater.diameter / 2.0
    reach = 3.0 * radius
    ny, nx = hm.heights.shape
    res = hm.resolution
    i0 = max(0, int(math.floor((crater.x - reach - hm.origin[0]) / res)))
    i1 = min(nx - 1, int(math.ceil((crater.x + reach - hm.origin[0]) / res)))
    j0 = max(0, int(math.floor((crater.y - reach - hm.origin[1]) / res)))
    j1 = min(ny - 1, int(math.ceil((crater.y + reach - hm.origin[1]) / res)))
    if i1 < i0 or j1 < j0:
        return
    xs = hm.origin[0] + np.arange(i0, i1 + 1) * res - crater.x
    ys = hm.origin[1] + np.arange(j0, j1 + 1) * res - crater.y
    r = np.hypot(xs[None, :], ys[:, None]) / radius
    hm.heights[j0:j1 + 1, i0:i1 + 1] += crater_profile(r, crater.depth, crater.rim_height)


def _clear_of(x: float, y: float, margin: float, keep_out: Sequence[KeepOut]) -> bool:
    return all(math.hypot(x - k.x, y - k.y) > k.radius + margin for k in keep_out)


def generate_craters(rng: np.random.Generator, bounds: tuple[float, float, float, float],
                     count: int, d_min: float, d_max: float, exponent: float = 2.0,
                     depth_ratio: tuple[float, float] = (0.1, 0.2), rim_ratio: float = 0.2,
                     keep_out: Sequence[KeepOut] = ()) -> list[Crater]:
    """Place ``count`` craters uniformly in ``bounds`` with a power-law size-frequency
    distribution; depth/diameter is uniform in ``depth_ratio`` (degraded .. fresh),
    rim height is ``rim_ratio`` times depth. Craters whose ejecta (2 radii) would reach a
    keep-out disc are redrawn at another position (up to 20 tries, else dropped)."""
    xmin, ymin, xmax, ymax = bounds
    sizes = np.sort(power_law_sizes(rng, count, d_min, d_max, exponent))[::-1]
    craters = []
    for d in sizes:
        ratio = rng.uniform(*depth_ratio)
        for _ in range(20):
            x = rng.uniform(xmin, xmax)
            y = rng.uniform(ymin, ymax)
            if _clear_of(x, y, d, keep_out):
                depth = ratio * d
                craters.append(Crater(float(x), float(y), float(d), float(depth),
                                      float(rim_ratio * depth)))
                break
    return craters


def generate_rocks(rng: np.random.Generator, hm: Heightmap, count: int, d_min: float = 0.1,
                   d_max: float = 1.0, exponent: float = 2.5, embed: float = 0.35,
                   keep_out: Sequence[KeepOut] = (), margin: float = 1.0) -> list[Rock]:
    """Scatter ``count`` ellipsoidal rocks (power-law diameters) over ``hm``, each sunk by
    ``embed`` of its height into the ground, outside the keep-out discs."""
    xmin, ymin, xmax, ymax = hm.bounds
    sizes = power_law_sizes(rng, count, d_min, d_max, exponent)
    rocks = []
    for d in sizes:
        aspect = rng.uniform(0.6, 1.0, size=2)
        yaw = rng.uniform(-math.pi, math.pi)
        for _ in range(20):
            x = rng.uniform(xmin + margin, xmax - margin)
            y = rng.uniform(ymin + margin, ymax - margin)
            if _clear_of(x, y, d, keep_out):
                a = d / 2.0
                semi = (float(a), float(a * aspect[0]), float(a * aspect[0] * aspect[1]))
                z = float(hm.height_at(x, y)) + semi[2] * (1.0 - 2.0 * embed)
                rocks.append(Rock(float(x), float(y), z, semi, float(yaw)))
                break
    return rocks


# ---------------------------------------------------------------------------------------
# Smooth random fields, slope limiting, pads
# ---------------------------------------------------------------------------------------
def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], resolution: float,
                 wavelength: float, amplitude: float) -> np.ndarray:
    """Gaussian random field (std ``amplitude``) with correlation length ~``wavelength``,
    by Gaussian filtering white noise in the Fourier domain."""
    ny, nx = shape
    white = rng.standard_normal((ny, nx))
    kx = np.fft.rfftfreq(nx, d=resolution)
    ky = np.fft.fftfreq(ny, d=resolution)
    k2 = kx[None, :] ** 2 + ky[:, None] ** 2
    sigma = wavelength / (2.0 * math.pi)
    filt = np.exp(-2.0 * (math.pi ** 2) * k2 * sigma ** 2)
    field_ = np.fft.irfft2(np.fft.rfft2(white) * filt, s=(ny, nx))
    std = field_.std()
    if std > 0:
        field_ *= amplitude / std
    return field_


def _envelope_below(h: np.ndarray, step: float) -> np.ndarray:
    """Largest L <= h with |L_i - L_j| <= step * chamfer_distance(i, j) (lower envelope).

    Two raster passes; rows are vectorised and horizontal propagation is a cumulative min.
    """
    diag = step * math.sqrt(2.0)
    L = h.copy()
    ny, nx = L.shape
    ramp = step * np.arange(nx)
    inf = np.inf

    def relax_row(row: np.ndarray, prev: np.ndarray, forward: bool) -> np.ndarray:
        cand = np.minimum(row, prev + step)
        cand[1:] = np.minimum(cand[1:], prev[:-1] + diag)
        cand[:-1] = np.minimum(cand[:-1], prev[1:] + diag)
        if forward:
            return np.minimum.accumulate(cand - ramp) + ramp
        rev = cand[::-1]
        return (np.minimum.accumulate(rev - ramp) + ramp)[::-1]

    prev = np.full(nx, inf)
    for j in range(ny):  # forward: moves down, down-left, down-right, right
        row = relax_row(L[j], prev, True)
        L[j] = row
        prev = row
    prev = np.full(nx, inf)
    for j in range(ny - 1, -1, -1):  # backward: moves up, up-left, up-right, left
        row = relax_row(L[j], prev, False)
        L[j] = row
        prev = row
    return L


def limit_slope(hm: Heightmap, max_slope_deg: float) -> Heightmap:
    """A copy of ``hm`` whose slopes do not exceed ``max_slope_deg``.

    Takes the mean of the slope-limited lower and upper envelopes: where a wall is too
    steep its top is cut and its foot filled by about the same amount (material slumping
    to the angle of repose); nodes far from any over-steep wall are unchanged.
    """
    step = math.tan(math.radians(max_slope_deg)) / _CHAMFER_FACTOR * hm.resolution
    lower = _envelope_below(hm.heights, step)
    upper = -_envelope_below(-hm.heights, step)
    return Heightmap(0.5 * (lower + upper), hm.origin, hm.resolution)


@dataclass(frozen=True)
class Pad:
    """A flattened disc: centre (x, y), flat radius, blend width (m); height None = the
    mean terrain height over the disc."""

    x: float
    y: float
    radius: float
    blend: float = 5.0
    height: float | None = None


def pad_height(hm: Heightmap, pad: Pad) -> float:
    """The height a pad will be flattened to."""
    if pad.height is not None:
        return float(pad.height)
    X, Y = hm.grid()
    inside = np.hypot(X - pad.x, Y - pad.y) <= pad.radius
    if not inside.any():
        return float(hm.height_at(pad.x, pad.y))
    return float(hm.heights[inside].mean())


def flatten_pad(hm: Heightmap, pad: Pad) -> float:
    """Flatten ``hm`` in place over the pad (smoothstep blend outside); returns its height."""
    z = pad_height(hm, pad)
    X, Y = hm.grid()
    d = np.hypot(X - pad.x, Y - pad.y)
    t = np.clip((d - pad.radius) / max(pad.blend, 1e-9), 0.0, 1.0)
    w = t * t * (3 - 2 * t)
    hm.heights[:] = z * (1 - w) + hm.heights * w
    return z


# ---------------------------------------------------------------------------------------
# Whole terrains
# ---------------------------------------------------------------------------------------
@dataclass
class CraterFieldParams:
    """Parameters of :func:`crater_field` (sizes in metres)."""

    size: tuple[float, float] = (400.0, 400.0)
    resolution: float = 0.5
    center: tuple[float, float] = (0.0, 0.0)
    base_height: float = 0.0
    crater_count: int = 1500
    crater_min_diameter: float = 2.0
    crater_max_diameter: float = 80.0
    crater_exponent: float = 2.0
    depth_ratio: tuple[float, float] = (0.1, 0.2)
    rim_ratio: float = 0.2
    undulation_amplitude: float = 1.5
    undulation_wavelength: float = 60.0
    max_slope_deg: float = 30.0
    pads: list[Pad] = field(default_factory=list)


def empty_grid(size: tuple[float, float], resolution: float,
               center: tuple[float, float] = (0.0, 0.0), height: float = 0.0) -> Heightmap:
    """A flat heightmap of (about) ``size`` metres centred on ``center``."""
    nx = max(2, int(round(size[0] / resolution)) + 1)
    ny = max(2, int(round(size[1] / resolution)) + 1)
    origin = (center[0] - (nx - 1) * resolution / 2, center[1] - (ny - 1) * resolution / 2)
    return Heightmap(np.full((ny, nx), float(height)), origin, resolution)


def sloped_plane(size: tuple[float, float], resolution: float, angle_deg: float,
                 uphill_azimuth_deg: float = 0.0, center: tuple[float, float] = (0.0, 0.0),
                 height: float = 0.0) -> Heightmap:
    """A plane tilted by ``angle_deg``, rising towards ``uphill_azimuth_deg`` (CCW from +x);
    its height at ``center`` is ``height``."""
    hm = empty_grid(size, resolution, center)
    X, Y = hm.grid()
    az = math.radians(uphill_azimuth_deg)
    u = (X - center[0]) * math.cos(az) + (Y - center[1]) * math.sin(az)
    hm.heights[:] = height + math.tan(math.radians(angle_deg)) * u
    return hm


def crater_field(params: CraterFieldParams, seed: int) -> tuple[Heightmap, list[Crater]]:
    """Generate a cratered terrain reproducibly from ``seed``; returns it and its craters.

    Order: gentle undulation, craters (clear of the pads), slope limiting, pads flattened,
    pads' blend rings slope-limited again while the pads stay exactly flat.
    """
    rng = np.random.default_rng(seed)
    hm = empty_grid(params.size, params.resolution, params.center, params.base_height)
    if params.undulation_amplitude > 0:
        hm.heights += smooth_noise(rng, hm.shape, hm.resolution, params.undulation_wavelength,
                                   params.undulation_amplitude)
    keep = [KeepOut(p.x, p.y, p.radius + p.blend) for p in params.pads]
    craters = generate_craters(rng, hm.bounds, params.crater_count, params.crater_min_diameter,
                               params.crater_max_diameter, params.crater_exponent,
                               params.depth_ratio, params.rim_ratio, keep)
    for c in craters:
        stamp_crater(hm, c)
    hm = limit_slope(hm, params.max_slope_deg)
    apply_pads(hm, params.pads, params.max_slope_deg)
    return hm, craters


def apply_pads(hm: Heightmap, pads: Sequence[Pad], max_slope_deg: float | None) -> list[float]:
    """Flatten ``pads`` in ``hm`` in place (pads exactly flat), then, unless
    ``max_slope_deg`` is None, limit the slopes of their blend rings; returns pad heights."""
    if not pads:
        return []
    X, Y = hm.grid()
    heights = [flatten_pad(hm, p) for p in pads]
    if max_slope_deg is not None:
        hm.heights[:] = limit_slope(hm, max_slope_deg).heights
    for p, z in zip(pads, heights, strict=True):
        inside = np.hypot(X - p.x, Y - p.y) <= p.radius
        hm.heights[inside] = z
    return heights


def prior_map(heightmap: Heightmap, resolution: float, noise_sigma: float,
              seed: int) -> Heightmap:
    """The orbital prior map: ``heightmap`` box-filtered onto a coarser grid plus Gaussian
    height noise of std ``noise_sigma`` (m), reproducible from ``seed``."""
    if resolution < heightmap.resolution:
        raise ValueError("prior map resolution must not be finer than the terrain's")
    coarse = heightmap.resample(resolution)
    rng = np.random.default_rng(seed)
    coarse.heights += rng.normal(0.0, noise_sigma, coarse.shape)
    return coarse


def hillshade(hm: Heightmap, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Lambertian shading in 0..1 of ``hm`` lit from ``azimuth_deg`` (CCW from +x) and
    ``elevation_deg`` above the horizon (self-shadowing ignored)."""
    gx, gy = hm.gradient()
    az = math.radians(azimuth_deg)
    el = math.radians(elevation_deg)
    sun = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    norm = np.sqrt(gx ** 2 + gy ** 2 + 1.0)
    shade = (-gx * sun[0] - gy * sun[1] + sun[2]) / norm
    return np.clip(shade, 0.0, 1.0)
