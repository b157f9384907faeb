"""Radiation mapping from (position, dose rate) samples: point sources located and weighed by
fitting the inverse-square law, and a dose-rate map with uncertainty by Gaussian-process
regression around that fit. Pure numpy.

Source fitting (:func:`localize_sources`). The model is

    dose(p) = b + sum_k S_k T(q_k, p) / max(|p - q_k|, r_min)^2

with background b, source positions q_k and strengths S_k (uSv/h at 1 m), and T an optional
transmission (shielding the caller knows, e.g. the site's berm; 1 without). Sources are added
one at a time: each new one is placed by a grid search over the samples' area (strength and
background solved by weighted least squares at every candidate), then all positions are
refined together by a compass search with strengths and background solved (non-negative,
linear least squares) at each step: a berm's edges put steps into chi^2 where slopes mislead
a gradient method. A source is kept while it lowers chi^2 by more than ``min_improvement``
and every source's strength is ``min_significance`` times its stddev. Weights:
1 / (sigma_i^2 + (rel_error d_i)^2), the readings' Poisson stddev plus a relative model error.
Uncertainties come from the inverse of the Gauss-Newton normal matrix (slopes over ~1 cm)
scaled by the reduced chi^2; near a berm's edges they are rough.

Dose map (:func:`dose_map`). A Gaussian process (squared-exponential kernel over x, y) on the
log of the readings less the log of the fitted model (or of their mean without one), noise
from each reading's relative stddev; the map is model x exp(GP mean), its stddev by the delta
method (dose x GP stddev). Far from the samples the map returns to the model and the
uncertainty to the prior's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# T(source xyz (3,), points (n, 3)) -> transmission factors (n,) in [0, 1]
Transmission = Callable[[np.ndarray, np.ndarray], np.ndarray]

R_MIN = 0.3  # m


@dataclass(frozen=True)
class SourceEstimate:
    """A located source: world position (m), strength (uSv/h at 1 m) and their 1-sigma."""

    position: tuple[float, float, float]
    strength: float
    position_std: tuple[float, float, float]
    strength_std: float


@dataclass(frozen=True)
class SourceFit:
    """Sources found, background (uSv/h), chi^2 and its degrees of freedom."""

    sources: list[SourceEstimate]
    background: float
    chi2: float
    dof: int
    transmission: Transmission | None = None

    def predict(self, points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Dose rate (uSv/h) of the fitted model at points (n, 3)."""
        p = _points(points)
        out = np.full(len(p), self.background)
        for s in self.sources:
            out += _source_term(np.array(s.position), s.strength, p, self.transmission)
        return out


@dataclass(frozen=True)
class DoseMap:
    """A dose-rate grid: ``dose[j, i]`` at (xs[i], ys[j]), height z; stddev likewise."""

    xs: np.ndarray
    ys: np.ndarray
    z: float
    dose: np.ndarray
    stddev: np.ndarray
    log_stddev: np.ndarray


def _points(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or p.shape[1] not in (2, 3):
        raise ValueError(f"points must be (n, 2) or (n, 3), got shape {p.shape}")
    if p.shape[1] == 2:
        p = np.column_stack([p, np.zeros(len(p))])
    return p


def _source_term(q: np.ndarray, strength: float, p: np.ndarray,
                 transmission: Transmission | None) -> np.ndarray:
    r2 = np.maximum(np.sum((p - q) ** 2, axis=1), R_MIN ** 2)
    term = strength / r2
    if transmission is not None:
        term = term * transmission(q, p)
    return term


def _weights(dose: np.ndarray, stddev: np.ndarray, rel_error: float) -> np.ndarray:
    var = stddev ** 2 + (rel_error * np.abs(dose)) ** 2
    return 1.0 / np.maximum(var, 1e-12)


def _solve_strength(g: np.ndarray, r: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares of r ~ S g + b with S, b >= 0: (S, b, chi2)."""
    sw, sg, sr = w.sum(), (w * g).sum(), (w * r).sum()
    sgg, sgr = (w * g * g).sum(), (w * g * r).sum()
    det = sgg * sw - sg * sg
    if det > 0:
        s = (sgr * sw - sg * sr) / det
        b = (sgg * sr - sg * sgr) / det
    else:
        s, b = 0.0, sr / sw
    if s < 0 or b < 0:
        options = [(max(0.0, sgr / sgg) if sgg > 0 else 0.0, 0.0), (0.0, max(0.0, sr / sw))]
        s, b = min(options, key=lambda sb: float((w * (r - sb[0] * g - sb[1]) ** 2).sum()))
    chi2 = float((w * (r - s * g - b) ** 2).sum())
    return float(s), float(b), chi2


def _grid_search(p: np.ndarray, fixed: np.ndarray, d: np.ndarray, w: np.ndarray,
                 z0: float, spacing: float, margin: float,
                 transmission: Transmission | None, max_candidates: int = 40000
                 ) -> tuple[np.ndarray, float, float, float]:
    """Best single new source over a grid: (position, strength, background, chi2)."""
    lo = p[:, :2].min(axis=0) - margin
    hi = p[:, :2].max(axis=0) + margin
    area = float(np.prod(hi - lo))
    spacing = max(spacing, math.sqrt(area / max_candidates))
    xs = np.arange(lo[0], hi[0] + spacing / 2, spacing)
    ys = np.arange(lo[1], hi[1] + spacing / 2, spacing)
    r = d - fixed
    best = (np.zeros(3), 0.0, 0.0, math.inf)
    sw, sr = w.sum(), (w * r).sum()
    for x in xs:  # one row of candidates at a time: (len(ys), n) arrays
        q = np.column_stack([np.full(len(ys), x), ys, np.full(len(ys), z0)])
        r2 = np.maximum(((p[None, :, :] - q[:, None, :]) ** 2).sum(axis=2), R_MIN ** 2)
        g = 1.0 / r2
        if transmission is not None:
            g = g * np.stack([transmission(qi, p) for qi in q])
        sg, sgg, sgr = (w * g).sum(1), (w * g * g).sum(1), (w * g * r).sum(1)
        det = sgg * sw - sg * sg
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(det > 0, (sgr * sw - sg * sr) / det, 0.0)
        s = np.maximum(s, 0.0)
        b = np.maximum((sr - s * sg) / sw, 0.0)
        chi2 = (w * (r[None, :] - s[:, None] * g - b[:, None]) ** 2).sum(axis=1)
        k = int(np.argmin(chi2))
        if chi2[k] < best[3]:
            best = (q[k].copy(), float(s[k]), float(b[k]), float(chi2[k]))
    return best


def _residuals(theta: np.ndarray, p: np.ndarray, d: np.ndarray, sqrt_w: np.ndarray,
               transmission: Transmission | None) -> np.ndarray:
    k = (len(theta) - 1) // 4
    model = np.full(len(p), math.exp(theta[-1]))
    for i in range(k):
        x, y, z, log_s = theta[4 * i:4 * i + 4]
        model += _source_term(np.array([x, y, z]), math.exp(log_s), p, transmission)
    return (model - d) * sqrt_w


class _Profile:
    """chi^2 of source positions with the strengths and background solved for (the model is
    linear in them: variable projection); columns cached by position."""

    def __init__(self, p: np.ndarray, d: np.ndarray, w: np.ndarray,
                 transmission: Transmission | None) -> None:
        self.p, self.d, self.w = p, d, w
        self.sqrt_w = np.sqrt(w)
        self.transmission = transmission
        self._columns: dict[tuple[float, float, float], np.ndarray] = {}

    def column(self, q: np.ndarray) -> np.ndarray:
        key = (float(q[0]), float(q[1]), float(q[2]))
        col = self._columns.get(key)
        if col is None:
            col = _source_term(np.array(key), 1.0, self.p, self.transmission)
            if len(self._columns) > 20000:
                self._columns.clear()
            self._columns[key] = col
        return col

    def solve(self, positions: np.ndarray) -> tuple[np.ndarray, float]:
        """Non-negative strengths and background (last) by weighted least squares, chi^2."""
        a = np.column_stack([*(self.column(q) for q in positions), np.ones(len(self.d))])
        active = list(range(a.shape[1]))
        coeffs = np.zeros(a.shape[1])
        for _ in range(a.shape[1]):  # drop negative coefficients until none is left
            sol, *_ = np.linalg.lstsq(a[:, active] * self.sqrt_w[:, None],
                                      self.d * self.sqrt_w, rcond=None)
            if np.all(sol >= 0) or len(active) == 1:
                coeffs[:] = 0.0
                coeffs[active] = np.maximum(sol, 0.0)
                break
            active = [j for j, c in zip(active, sol, strict=True) if c >= 0]
        chi2 = float((self.w * (self.d - a @ coeffs) ** 2).sum())
        return coeffs, chi2


def _pattern_search(profile: _Profile, positions: np.ndarray, lower: np.ndarray,
                    upper: np.ndarray, step: float = 0.5, min_step: float = 0.02,
                    max_evaluations: int = 4000) -> np.ndarray:
    """Compass search of the positions (k, 3) minimising the profile chi^2: robust to the
    steps a berm's edges put in it, where slopes mislead."""
    best = np.clip(np.array(positions, dtype=float), lower, upper)
    _, cost = profile.solve(best)
    evaluations = 0
    while step >= min_step and evaluations < max_evaluations:
        improved = False
        for i in range(len(best)):
            for axis in range(3):
                for sign in (1.0, -1.0):
                    trial = best.copy()
                    trial[i, axis] = np.clip(trial[i, axis] + sign * step, lower[axis],
                                             upper[axis])
                    if trial[i, axis] == best[i, axis]:
                        continue
                    _, c = profile.solve(trial)
                    evaluations += 1
                    if c < cost:
                        best, cost, improved = trial, c, True
                        break
        if not improved:
            step /= 2
    return best


def _jacobian(fun: Callable[[np.ndarray], np.ndarray], theta: np.ndarray,
              res: np.ndarray | None = None, rel_step: float = 1e-6) -> np.ndarray:
    """Forward differences (central when ``res`` is None)."""
    cols = []
    for j in range(len(theta)):
        h = rel_step * max(1.0, abs(theta[j]))
        up = theta.copy()
        up[j] += h
        if res is None:
            down = theta.copy()
            down[j] -= h
            cols.append((fun(up) - fun(down)) / (2 * h))
        else:
            cols.append((fun(up) - res) / h)
    return np.column_stack(cols)


def localize_sources(points: np.ndarray | Sequence[Sequence[float]],
                     dose: Sequence[float], stddev: Sequence[float] | None = None, *,
                     max_sources: int = 3, transmission: Transmission | None = None,
                     source_height: float = 1.0, z_range: tuple[float, float] = (0.0, 3.0),
                     spacing: float = 1.0, margin: float = 10.0, rel_error: float = 0.05,
                     min_improvement: float = 25.0, min_significance: float = 3.0
                     ) -> SourceFit:
    """Locate up to ``max_sources`` point sources from dose samples (see the module
    docstring). ``points`` (n, 3) in metres, ``dose`` and ``stddev`` in uSv/h; candidates
    start ``source_height`` above the samples' mean height and stay within ``z_range`` of
    it (samples taken at one height hardly tell a source's height: only near ones do, and
    then up to a mirror image about the sensor's height). A source is kept when it lowers
    chi^2 by ``min_improvement`` and every source's strength is ``min_significance`` times
    its stddev."""
    p = _points(points)
    d = np.asarray(dose, dtype=float)
    if len(d) != len(p) or len(p) < 5:
        raise ValueError("need at least 5 samples, one dose per point")
    sd = np.sqrt(np.maximum(d, 1e-3)) * 0.1 if stddev is None else np.asarray(stddev, float)
    w = _weights(d, sd, rel_error)
    sqrt_w = np.sqrt(w)
    z_mean = float(p[:, 2].mean())
    z0 = z_mean + source_height
    background = float(max((w * d).sum() / w.sum(), 1e-3))  # the best fit without sources
    chi2 = float((w * (d - background) ** 2).sum())
    theta = np.array([math.log(background)])
    lo_xy = p[:, :2].min(axis=0) - margin
    hi_xy = p[:, :2].max(axis=0) + margin
    for _ in range(max_sources):
        # the sources found so far, without the background (re-solved with the new source)
        fixed = _residuals(theta, p, np.zeros(len(d)), np.ones(len(d)), transmission)
        fixed -= math.exp(theta[-1])
        q, s, _, grid_chi2 = _grid_search(p, fixed, d, w, z0, spacing, margin, transmission)
        if s <= 0.0 or chi2 - grid_chi2 < min_improvement:
            break
        positions = [tuple(theta[4 * i:4 * i + 3]) for i in range((len(theta) - 1) // 4)]
        positions.append((float(q[0]), float(q[1]), float(q[2])))
        lower = np.array([lo_xy[0], lo_xy[1], z_mean + z_range[0]])
        upper = np.array([hi_xy[0], hi_xy[1], z_mean + z_range[1]])
        profile = _Profile(p, d, w, transmission)
        positions = _pattern_search(profile, np.array(positions), lower, upper,
                                    step=spacing / 2)
        coeffs, _ = profile.solve(positions)
        trial = np.concatenate([*([*xyz, math.log(max(c, 1e-9))] for xyz, c in
                                  zip(positions, coeffs[:-1], strict=True)),
                                [math.log(max(coeffs[-1], 1e-6))]])
        res = _residuals(trial, p, d, sqrt_w, transmission)
        trial_chi2 = float(res @ res)
        if chi2 - trial_chi2 < min_improvement:
            break
        # every source kept must be significant: strength over its stddev (a source fitted
        # to one noisy reading is not)
        weak = [sig < min_significance for sig in _significances(
            trial, p, d, sqrt_w, transmission, trial_chi2)]
        if any(weak):
            break
        theta, chi2 = trial, trial_chi2
    cov = _covariance(theta, p, d, sqrt_w, transmission, chi2) if len(theta) > 1 else None
    return _fit_result(theta, cov, chi2, len(d), transmission)


def _covariance(theta: np.ndarray, p: np.ndarray, d: np.ndarray, sqrt_w: np.ndarray,
                transmission: Transmission | None, chi2: float) -> np.ndarray:
    """Parameter covariance at ``theta`` from slopes over ~1 cm steps (the transmission of a
    berm's opening has edges a tiny step would see as infinitely steep)."""
    jac = _jacobian(lambda t: _residuals(t, p, d, sqrt_w, transmission), theta,
                    rel_step=1e-4)
    dof = max(1, len(d) - len(theta))
    return np.linalg.pinv(jac.T @ jac) * max(1.0, chi2 / dof)


def _significances(theta: np.ndarray, p: np.ndarray, d: np.ndarray, sqrt_w: np.ndarray,
                   transmission: Transmission | None, chi2: float) -> list[float]:
    """Each source's strength over its stddev, with the heights held (a source's height and
    strength trade off against each other when the samples are at one height)."""
    k = (len(theta) - 1) // 4
    free = [j for j in range(len(theta)) if j == len(theta) - 1 or j % 4 != 2]
    jac = _jacobian(lambda t: _residuals(t, p, d, sqrt_w, transmission), theta,
                    rel_step=1e-4)[:, free]
    dof = max(1, len(d) - len(free))
    cov = np.linalg.pinv(jac.T @ jac) * max(1.0, chi2 / dof)
    out = []
    for i in range(k):
        j = free.index(4 * i + 3)  # log-strength: its stddev is the relative one
        out.append(1.0 / max(math.sqrt(abs(cov[j, j])), 1e-12))
    return out


def _fit_result(theta: np.ndarray, cov: np.ndarray | None, chi2: float, n: int,
                transmission: Transmission | None) -> SourceFit:
    k = (len(theta) - 1) // 4
    dof = max(1, n - len(theta))
    if cov is None:
        cov = np.full((len(theta), len(theta)), np.nan)
    sources = []
    for i in range(k):
        x, y, z, log_s = theta[4 * i:4 * i + 4]
        std = np.sqrt(np.abs(np.diag(cov)[4 * i:4 * i + 4]))
        strength = math.exp(log_s)
        sources.append(SourceEstimate((float(x), float(y), float(z)), strength,
                                      (float(std[0]), float(std[1]), float(std[2])),
                                      float(strength * std[3])))
    sources.sort(key=lambda s: -s.strength)
    return SourceFit(sources, math.exp(theta[-1]), chi2, dof, transmission)


def dose_map(points: np.ndarray | Sequence[Sequence[float]], dose: Sequence[float],
             stddev: Sequence[float] | None, xs: Sequence[float], ys: Sequence[float],
             z: float, *, fit: SourceFit | None = None, length_scale: float = 5.0,
             prior_std: float = 1.0, min_rel_noise: float = 0.05, max_samples: int = 1500
             ) -> DoseMap:
    """The dose-rate map on the grid ``xs`` x ``ys`` at height ``z`` (see the module
    docstring); ``fit`` is the mean model (else the samples' geometric mean)."""
    p = _points(points)
    d = np.maximum(np.asarray(dose, dtype=float), 1e-6)
    sd = np.zeros(len(d)) if stddev is None else np.asarray(stddev, float)
    if len(p) > max_samples:  # thin evenly: the kernel solve is O(n^3)
        keep = np.linspace(0, len(p) - 1, max_samples).round().astype(int)
        p, d, sd = p[keep], d[keep], sd[keep]
    gx, gy = np.meshgrid(np.asarray(xs, float), np.asarray(ys, float))
    grid = np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, z)])
    if fit is not None:
        prior_samples = np.log(np.maximum(fit.predict(p), 1e-6))
        prior_grid = np.log(np.maximum(fit.predict(grid), 1e-6))
    else:
        mean = float(np.log(d).mean())
        prior_samples = np.full(len(d), mean)
        prior_grid = np.full(len(grid), mean)
    y = np.log(d) - prior_samples
    noise = np.maximum(sd / d, min_rel_noise)
    kxx = _kernel(p[:, :2], p[:, :2], length_scale, prior_std) + np.diag(noise ** 2)
    chol = np.linalg.cholesky(kxx + 1e-9 * np.eye(len(d)))
    chol_inv = np.linalg.inv(chol)  # once: each chunk is then a product, not a solve
    alpha = chol_inv.T @ (chol_inv @ y)
    mean_log = np.empty(len(grid))
    var_log = np.empty(len(grid))
    for start in range(0, len(grid), 4000):
        g = grid[start:start + 4000, :2]
        ks = _kernel(g, p[:, :2], length_scale, prior_std)
        mean_log[start:start + 4000] = ks @ alpha
        v = chol_inv @ ks.T
        var_log[start:start + 4000] = np.maximum(prior_std ** 2 - (v * v).sum(axis=0), 0.0)
    log_dose = prior_grid + mean_log
    dose_grid = np.exp(log_dose).reshape(gx.shape)
    log_std = np.sqrt(var_log).reshape(gx.shape)
    return DoseMap(np.asarray(xs, float), np.asarray(ys, float), float(z), dose_grid,
                   dose_grid * log_std, log_std)


def _kernel(a: np.ndarray, b: np.ndarray, length: float, std: float) -> np.ndarray:
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    return std ** 2 * np.exp(-0.5 * d2 / length ** 2)
