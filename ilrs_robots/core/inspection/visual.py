"""Visual checks of an inspection round (OpenCV): change detection against a baseline photo,
and reading analogue gauges.

Change detection (:func:`detect_changes`). The new photo is aligned onto the baseline by ORB
features (AKAZE where the OpenCV build has it), a ratio test and a RANSAC homography; too few
inliers, too small an inlier share or a warp far from the expected small change of viewpoint
refuse the comparison with the reason (:class:`AlignmentError`) instead of reporting the whole
picture as changed. The baseline is then relit as the photo was taken (per channel gain and
offset fitted pixel to pixel, robustly, then clipped like the camera clips, so over-exposure
is no change) and both are compared in Lab; a pixel counts as changed only where it lies
outside the range of the other image's neighbourhood of ``tolerance_px``, both ways (residual
misalignment at edges does not count; an object that appeared or left does), and the changed
pixels are opened, closed and grouped into regions (bounding box in the baseline's pixels,
share of the compared area).

Gauge reading (:func:`read_gauge`). The dial is a Hough circle, or the largest elliptical blob
when no circle fits its rim (searched in a given region of interest; small pictures upscaled
to 240 px), refined by a circle fitted to the rim's edge along 180 rays; a dial seen obliquely
(an ellipse fitted to the rim) is stretched back into a circle along its minor axis, and a
dial whose rim does not then lie on its circle is refused. The needle is the peak of the
dial's radial darkness profile (mean darkness along rays from the hub to 0.75 of the radius,
every 0.25 deg), refined by the profile's centroid around the peak and then by a line fitted
to the needle's dark pixels (which an error of the dial's centre does not bias; a line that
misses the centre is refused). Its angle (clockwise from 12 o'clock) becomes a value through
the gauge's :class:`~ilrs_robots.core.inspection.rounds.GaugeScale`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ilrs_robots.core.inspection.rounds import GaugeCheck, GaugeScale

BBox = tuple[int, int, int, int]  # x, y, width, height (pixels)


class AlignmentError(ValueError):
    """The new photo could not be aligned with its baseline; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot align with the baseline: {reason}")
        self.reason = reason


class GaugeError(ValueError):
    """No dial or no needle could be found in the image."""


# ---------------------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alignment:
    """A homography mapping the new photo's pixels onto the baseline's, and its support."""

    homography: np.ndarray
    matches: int
    inliers: int

    @property
    def inlier_share(self) -> float:
        """Inliers over ratio-test matches."""
        return self.inliers / self.matches if self.matches else 0.0


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img


def _detector() -> cv2.Feature2D:
    if hasattr(cv2, "AKAZE_create"):
        return cv2.AKAZE_create()
    return cv2.ORB_create(nfeatures=3000, fastThreshold=10)


def align(baseline: np.ndarray, image: np.ndarray, min_inliers: int = 25,
          min_inlier_share: float = 0.25, max_distortion: float = 0.25,
          ratio: float = 0.8) -> Alignment:
    """The homography taking ``image`` onto ``baseline``; :class:`AlignmentError` with the
    reason when features are too few, the inliers too few or too small a share, or the warp
    scales, shears or tilts the image more than ``max_distortion`` (a different view, not the
    same one shifted)."""
    a, b = _gray(baseline), _gray(image)
    det = _detector()
    ka, da = det.detectAndCompute(a, None)
    kb, db = det.detectAndCompute(b, None)
    if da is None or db is None or len(ka) < min_inliers or len(kb) < min_inliers:
        raise AlignmentError(f"too few features (baseline {len(ka)}, photo {len(kb)}; "
                             f"need {min_inliers})")
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(db, da, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if len(good) < min_inliers:
        raise AlignmentError(f"only {len(good)} distinctive feature matches (need "
                             f"{min_inliers})")
    src = np.float32([kb[m.queryIdx].pt for m in good])
    dst = np.float32([ka[m.trainIdx].pt for m in good])
    hm, mask = cv2.findHomography(src, dst, cv2.RANSAC, 3.0, maxIters=2000, confidence=0.995)
    if hm is None:
        raise AlignmentError("no homography fits the matches")
    inliers = int(mask.sum())
    result = Alignment(hm, len(good), inliers)
    if inliers < min_inliers or result.inlier_share < min_inlier_share:
        raise AlignmentError(f"{inliers} of {len(good)} matches agree on one view "
                             f"(need {min_inliers} and {min_inlier_share:.0%})")
    lin = hm[:2, :2] / hm[2, 2]
    s = np.linalg.svd(lin, compute_uv=False)
    persp = float(np.abs(hm[2, :2] / hm[2, 2]).max()) * max(a.shape)
    if (s.max() > 1 + max_distortion or s.min() < 1 - max_distortion
            or np.linalg.det(lin) <= 0 or persp > max_distortion):
        raise AlignmentError(f"the fitted warp is no small change of viewpoint (scales "
                             f"{s.min():.2f}..{s.max():.2f}, perspective {persp:.2f})")
    return result


# ---------------------------------------------------------------------------------------
# Change detection
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """A changed region: bounding box in the baseline's pixels and its share of the compared
    area."""

    bbox: BBox
    area_fraction: float


@dataclass(frozen=True)
class ChangeResult:
    """Changed regions (largest first), their total share of the compared area, the
    alignment, and the changed-pixel mask in the baseline's frame."""

    regions: list[Region]
    changed_fraction: float
    alignment: Alignment
    mask: np.ndarray = field(repr=False)

    @property
    def changed(self) -> bool:
        """Whether any region was found."""
        return bool(self.regions)


def relight(base: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``base`` (uint8, grey or BGR, aligned with ``photo``) as the photo's exposure would
    show it: per channel a gain and offset fitted pixel to pixel over ``mask`` where the photo
    is neither black nor saturated (twice, dropping the pixels that do not follow, i.e. the
    changed ones), then clipped to 0..255 as the camera clips. Over-exposed parts of the photo
    are then over-exposed in the prediction too, and do not count as changes."""
    out = np.empty_like(base)
    b3 = base.reshape(base.shape[0], base.shape[1], -1)
    p3 = photo.reshape(b3.shape)
    o3 = out.reshape(b3.shape)
    sub = np.zeros_like(mask)
    sub[::3, ::3] = True
    for c in range(b3.shape[2]):
        x = b3[..., c].astype(np.float32)
        y = p3[..., c].astype(np.float32)
        sel = mask & sub & (y > 4) & (y < 250)
        xs, ys = x[sel], y[sel]
        g, o = 1.0, 0.0
        for _ in range(3):
            if len(xs) < 50 or float(xs.std()) < 1e-3:
                break
            g, o = (float(v) for v in np.polyfit(xs, ys, 1))
            res = np.abs(ys - (g * xs + o))
            keep = res < max(3.0, 3.0 * 1.4826 * float(np.median(res)))
            xs, ys = xs[keep], ys[keep]
        o3[..., c] = np.clip(g * x + o, 0, 255).astype(np.uint8)
    return out


def _outside_neighbourhood(new: np.ndarray, base: np.ndarray, k: int) -> np.ndarray:
    """How far each pixel of ``new`` lies outside the range of ``base`` over its k x k
    neighbourhood (0 inside)."""
    kernel = np.ones((k, k), np.uint8)
    hi = cv2.dilate(base, kernel)
    lo = cv2.erode(base, kernel)
    return np.maximum(np.maximum(new - hi, lo - new), 0.0)


def detect_changes(baseline: np.ndarray, image: np.ndarray, threshold: float = 28.0,
                   min_region_fraction: float = 0.0015, tolerance_px: int = 3,
                   alignment: Alignment | None = None) -> ChangeResult:
    """Regions of ``image`` that differ from ``baseline`` after aligning the two (BGR or
    grey, any sizes). ``threshold`` is in Lab units (lightness or chroma, the baseline
    relit as the photo, see :func:`relight`); regions smaller than ``min_region_fraction``
    of the compared area are dropped;
    ``tolerance_px`` is the neighbourhood a pixel may move by without counting as changed.
    Raises :class:`AlignmentError` when the two cannot be aligned."""
    al = alignment or align(baseline, image)
    h, w = baseline.shape[:2]
    warped = cv2.warpPerspective(image, al.homography, (w, h), flags=cv2.INTER_LINEAR)
    valid = cv2.warpPerspective(np.full(image.shape[:2], 255, np.uint8), al.homography, (w, h),
                                flags=cv2.INTER_NEAREST)
    valid = cv2.erode(valid, np.ones((2 * tolerance_px + 3,) * 2, np.uint8)) > 0
    if valid.sum() < 0.2 * h * w:
        raise AlignmentError(f"the photo covers only {valid.mean():.0%} of the baseline")
    if warped.ndim != baseline.ndim:
        warped, baseline = _gray(warped), _gray(baseline)
    a = cv2.GaussianBlur(baseline, (5, 5), 1.0)
    b = cv2.GaussianBlur(warped, (5, 5), 1.0)
    pred = relight(a, b, valid)

    def lab(img: np.ndarray) -> np.ndarray:
        bgr = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab).astype(np.float32)

    la, lb = lab(pred), lab(b)
    k = 2 * tolerance_px + 1
    channels = 1 if baseline.ndim == 2 else 3
    diff = np.zeros((h, w), np.float32)
    for c in range(channels):
        weight = 1.0 if c == 0 else 1.5  # chroma: smaller range in Lab units
        # both ways: what appeared (new outside the baseline's range) and what left
        d = np.maximum(_outside_neighbourhood(lb[..., c], la[..., c], k),
                       _outside_neighbourhood(la[..., c], lb[..., c], k))
        diff = np.maximum(diff, weight * d)
    mask = ((diff > threshold) & valid).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    area = float(valid.sum())
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    regions = []
    keep = np.zeros(n, bool)
    for i in range(1, n):
        x, y, bw, bh, px = (int(v) for v in stats[i])
        if px / area >= min_region_fraction:
            keep[i] = True
            regions.append(Region((x, y, bw, bh), px / area))
    regions.sort(key=lambda r: -r.area_fraction)
    final = keep[labels].astype(np.uint8) * 255
    return ChangeResult(regions, sum(r.area_fraction for r in regions), al, final)


def draw_regions(image: np.ndarray, regions: list[Region],
                 color: tuple[int, int, int] = (0, 0, 255)) -> np.ndarray:
    """A BGR copy of ``image`` with each region's box drawn and its share written."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for r in regions:
        x, y, w, h = r.bbox
        cv2.rectangle(out, (x, y), (x + w, y + h), color, 2)
        cv2.putText(out, f"{r.area_fraction:.1%}", (x, max(12, y - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    return out


def iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


# ---------------------------------------------------------------------------------------
# Gauges
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GaugeReading:
    """A needle angle (deg clockwise from 12 o'clock), its value on the scale, the dial
    (centre, radius in pixels of the image given), and the needle's prominence (peak over
    the profile's spread; below ~4 the reading is not to be trusted). ``off_scale``: the
    needle points outside the scale's sweep by more than 2 deg."""

    angle_deg: float
    value: float
    center: tuple[float, float]
    radius: float
    prominence: float
    off_scale: bool = False


def dial_candidates(gray: np.ndarray, n: int = 5) -> list[tuple[float, float, float]]:
    """Up to ``n`` circles (centre, radius in pixels) of a grey image, strongest first, that
    may be a gauge's dial (radius 5..55 % of the picture's smaller side), asking the Hough
    transform for less and less evidence until some are found."""
    small = min(gray.shape)
    img = cv2.medianBlur(gray, 5)
    for votes in (50, 35, 25):
        circles = cv2.HoughCircles(img, cv2.HOUGH_GRADIENT, dp=1.0, minDist=max(8, small // 10),
                                   param1=120, param2=votes, minRadius=max(8, small // 20),
                                   maxRadius=int(0.55 * small))
        if circles is not None:
            return [(float(x), float(y), float(r)) for x, y, r in circles[0][:n]]
    return []


def find_dial(gray: np.ndarray) -> tuple[float, float, float]:
    """Centre and radius (pixels) of the most prominent circle of a grey image (a gauge's
    dial); :class:`GaugeError` when there is none."""
    found = dial_candidates(gray, 1)
    if not found:
        raise GaugeError("no dial (circle) found in the image")
    return found[0]


def find_dial_outline(gray: np.ndarray) -> tuple[float, float, float] | None:
    """Centre and mean radius of the largest elliptical bright (or dark) blob of a grey
    image, by Otsu threshold, contours and an ellipse fit: a dial seen too obliquely for the
    Hough circle. None without one."""
    blur = cv2.GaussianBlur(gray, (5, 5), 1.5)
    small = min(gray.shape)
    best = None
    for flag in (cv2.THRESH_BINARY, cv2.THRESH_BINARY_INV):
        _, bw = cv2.threshold(blur, 0, 255, flag | cv2.THRESH_OTSU)
        bw = cv2.morphologyEx(bw, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
        contours, _ = cv2.findContours(bw, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for c in contours:
            bx, by, bw_, bh_ = cv2.boundingRect(c)
            if (len(c) < 20 or bx <= 1 or by <= 1 or bx + bw_ >= gray.shape[1] - 1
                    or by + bh_ >= gray.shape[0] - 1):  # cut by the frame: not a whole dial
                continue
            (ex, ey), (w, h), _ = cv2.fitEllipse(c)
            area = cv2.contourArea(c)
            fill = area / max(math.pi * w * h / 4.0, 1e-9)
            if (0.85 < fill < 1.15 and min(w, h) > 0.25 * small and min(w, h) / max(w, h) > 0.4
                    and (best is None or area > best[0])):
                best = (area, ex, ey, (w + h) / 4.0)
    return None if best is None else (best[1], best[2], best[3])


def _fit_circle(pts: np.ndarray) -> tuple[float, float, float]:
    """Least-squares (Kasa) circle through points (n, 2)."""
    x, y = pts[:, 0], pts[:, 1]
    a = np.stack([x, y, np.ones_like(x)], axis=1)
    sol, *_ = np.linalg.lstsq(a, x * x + y * y, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    return float(cx), float(cy), float(math.sqrt(max(sol[2] + cx * cx + cy * cy, 0.0)))


def _rim_points(gray: np.ndarray, center: tuple[float, float], radius: float,
                rays: int = 180) -> np.ndarray:
    """Along each of ``rays`` rays from ``center``, the steepest face-to-outside edge
    between 0.7 and 1.35 of ``radius`` (the face's rim); the strong ones, (n, 2)."""
    th = np.linspace(0.0, 2.0 * math.pi, rays, endpoint=False)[:, None]
    radii = np.arange(0.7 * radius, 1.35 * radius, 0.5)
    mx = (center[0] + radii[None, :] * np.cos(th)).astype(np.float32)
    my = (center[1] + radii[None, :] * np.sin(th)).astype(np.float32)
    prof = cv2.remap(gray.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    prof = cv2.GaussianBlur(prof, (0, 0), sigmaX=1.5, sigmaY=0.01)
    grad = np.diff(prof, axis=1)
    face = float(np.median(prof[:, :4]))
    outside = float(np.median(prof[:, -4:]))
    grad = -grad if face >= outside else grad   # the face-to-outside step, positive
    best = np.argmax(grad, axis=1)
    strong = grad[np.arange(rays), best] > 0.3 * float(np.median(grad.max(axis=1)))
    rr = radii[best] + 0.25
    return np.stack([center[0] + rr * np.cos(th[:, 0]), center[1] + rr * np.sin(th[:, 0])],
                    axis=1)[strong]


def refine_dial(gray: np.ndarray, center: tuple[float, float], radius: float,
                rays: int = 180) -> tuple[float, float, float]:
    """The dial's centre and radius refined to a fraction of a pixel: a circle fitted to the
    rim's edge points (:func:`_rim_points`), outliers (ticks, needle, glare) dropped. Returns
    the input when too few edges agree."""
    pts = _rim_points(gray, center, radius, rays)
    if len(pts) < rays // 3:
        return center[0], center[1], radius
    cx, cy, r = _fit_circle(pts)
    for _ in range(2):
        res = np.abs(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) - r)
        keep = res < max(1.0, 2.5 * float(np.median(res)) * 1.4826)
        if keep.sum() < rays // 3:
            break
        pts = pts[keep]
        cx, cy, r = _fit_circle(pts)
    if math.hypot(cx - center[0], cy - center[1]) > 0.3 * radius or abs(r - radius) > 0.3 * radius:
        return center[0], center[1], radius
    return cx, cy, r


def rim_support(gray: np.ndarray, center: tuple[float, float], radius: float,
                rays: int = 180) -> float:
    """The share of rays whose rim edge lies on the circle (within 3 % of the radius): near
    1 for a dial found where it is, low for a circle the Hough transform made up."""
    pts = _rim_points(gray, center, radius, rays)
    if len(pts) == 0:
        return 0.0
    res = np.abs(np.hypot(pts[:, 0] - center[0], pts[:, 1] - center[1]) - radius)
    return float((res < max(1.5, 0.03 * radius)).sum()) / rays


def dial_rectification(gray: np.ndarray, center: tuple[float, float], radius: float,
                       rays: int = 180, min_squash: float = 0.03) -> np.ndarray | None:
    """The affine map (2x3) that turns an obliquely seen dial (an ellipse fitted to its rim)
    back into a circle, stretching along the ellipse's minor axis about its centre; None when
    the dial is round within ``min_squash`` or no ellipse fits."""
    pts = _rim_points(gray, center, radius, rays)
    if len(pts) < rays // 3:
        return None
    for _ in range(3):
        (ex, ey), (w, h), ang = cv2.fitEllipse(pts.astype(np.float32))
        if min(w, h) <= 0:
            return None
        t = math.radians(ang)
        u, v = np.array([math.cos(t), math.sin(t)]), np.array([-math.sin(t), math.cos(t)])
        rel = pts - (ex, ey)
        rho = np.hypot(rel @ u / (w / 2), rel @ v / (h / 2))
        res = np.abs(rho - 1.0)
        keep = res < max(0.01, 2.5 * 1.4826 * float(np.median(res)))
        if keep.all() or keep.sum() < rays // 3:
            break
        pts = pts[keep]
    major, minor = max(w, h) / 2, min(w, h) / 2
    if minor / major > 1.0 - min_squash or minor / major < 0.4:
        return None
    axis = u if w < h else v  # the minor axis
    m = np.eye(2) + (major / minor - 1.0) * np.outer(axis, axis)
    c = np.array([ex, ey])
    return np.hstack([m, (c - m @ c)[:, None]])


def _split(c: tuple[float, float, float]) -> tuple[tuple[float, float], float]:
    return (c[0], c[1]), c[2]


def needle_angle(gray: np.ndarray, center: tuple[float, float], radius: float,
                 inner: float = 0.2, outer: float = 0.75, step_deg: float = 0.25
                 ) -> tuple[float, float, float]:
    """The needle's angle (deg clockwise from 12 o'clock, in [0, 360)) on a dial, from its
    radial darkness profile between ``inner`` and ``outer`` of the radius, its prominence, and
    the profile's height opposite the peak relative to the peak's (near 0 for a needle, near
    1 for a line across the dial). A face darker than its needle is inverted first."""
    angles = np.arange(0.0, 360.0, step_deg)
    radii = np.linspace(inner * radius, outer * radius, max(8, int((outer - inner) * radius)))
    th = np.radians(angles)[:, None]
    mx = (center[0] + radii[None, :] * np.sin(th)).astype(np.float32)
    my = (center[1] - radii[None, :] * np.cos(th)).astype(np.float32)
    samples = cv2.remap(gray.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    face = float(np.median(samples))
    dark = face - samples if face >= 128 else samples - face
    profile = dark.mean(axis=1)
    n = len(profile)
    sigma = max(1, int(round(0.75 / step_deg)))
    ker = cv2.getGaussianKernel(6 * sigma + 1, sigma).ravel()
    wrapped = np.concatenate([profile[-3 * sigma:], profile, profile[:3 * sigma]])
    smooth = np.convolve(wrapped, ker, mode="same")[3 * sigma:3 * sigma + n]
    peak = int(np.argmax(smooth))
    spread = float(np.median(np.abs(smooth - np.median(smooth)))) + 1e-6
    prominence = (smooth[peak] - float(np.median(smooth))) / spread
    base = float(np.median(smooth))
    opposite = (float(smooth[(peak + n // 2) % n]) - base) / max(float(smooth[peak]) - base,
                                                                 1e-6)
    half = int(round(3.0 / step_deg))
    idx = np.arange(peak - half, peak + half + 1)
    wts = profile[idx % n] - np.median(profile)
    wts = np.clip(wts, 0.0, None)
    if wts.sum() <= 0:
        return float(angles[peak]), prominence, opposite
    offset = float((wts * (idx - peak)).sum() / wts.sum()) * step_deg
    return float((angles[peak] + offset) % 360.0), prominence, opposite


def refine_needle(gray: np.ndarray, center: tuple[float, float], radius: float,
                  angle_deg: float, inner: float = 0.2, outer: float = 0.75,
                  band: float = 0.08) -> tuple[float, float]:
    """``angle_deg`` refined by a line fitted to the needle's dark pixels (within ``band``
    of the radius across the coarse ray), so that an error of the dial's centre does not
    turn into an error of the angle, and how far that line passes from ``center`` (pixels;
    NaN without a line). Returns the coarse angle when too few pixels fit."""
    a = math.radians(angle_deg)
    d = np.array([math.sin(a), -math.cos(a)])
    h, w = gray.shape
    x0 = max(0, int(center[0] - outer * radius - 2))
    x1 = min(w, int(center[0] + outer * radius + 3))
    y0 = max(0, int(center[1] - outer * radius - 2))
    y1 = min(h, int(center[1] + outer * radius + 3))
    patch = gray[y0:y1, x0:x1].astype(np.float32)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    rel = np.stack([xs - center[0], ys - center[1]], axis=-1)
    along = rel @ d
    across = np.abs(rel @ np.array([-d[1], d[0]]))
    zone = (along > inner * radius) & (along < outer * radius) & (across < band * radius)
    if zone.sum() < 10:
        return angle_deg, math.nan
    vals = patch[zone]
    face = float(np.median(gray[y0:y1, x0:x1]))
    dark = face - vals if face >= 128 else vals - face
    thr = 0.5 * float(dark.max())
    sel = dark > thr
    if sel.sum() < 8:
        return angle_deg, math.nan
    pts = np.stack([xs[zone][sel], ys[zone][sel]], axis=-1).astype(np.float64)
    wts = dark[sel] - thr
    mean = (pts * wts[:, None]).sum(0) / wts.sum()
    cov = ((pts - mean).T * wts) @ (pts - mean) / wts.sum()
    evals, evecs = np.linalg.eigh(cov)
    if evals[1] < 4.0 * max(evals[0], 1e-9):  # not elongated: no line to trust
        return angle_deg, math.nan
    v = evecs[:, 1] * (1.0 if evecs[:, 1] @ d >= 0 else -1.0)
    miss = abs(float((mean[0] - center[0]) * v[1] - (mean[1] - center[1]) * v[0]))
    refined = math.degrees(math.atan2(v[0], -v[1])) % 360.0
    diff = (refined - angle_deg + 180.0) % 360.0 - 180.0
    return (refined, miss) if abs(diff) < 5.0 else (angle_deg, miss)


def _on_scale(angle: float, scale: GaugeScale, tolerance_deg: float = 2.0
              ) -> tuple[float, bool]:
    """The representative of ``angle`` (mod 360) nearest the scale's sweep, and whether it
    lies outside the sweep by more than ``tolerance_deg`` (a needle resting on an end stop
    reads within the reading error of that end)."""
    lo, hi = sorted((scale.min_angle_deg, scale.max_angle_deg))
    best, dist = angle, math.inf
    for k in range(-2, 3):
        a = angle + 360.0 * k
        d = 0.0 if lo <= a <= hi else min(abs(a - lo), abs(a - hi))
        if d < dist:
            best, dist = a, d
    return best, dist > tolerance_deg


def _locate(gray: np.ndarray, start: tuple[float, float, float]
            ) -> tuple[np.ndarray, np.ndarray, float, float, float, float]:
    """From a rough dial (centre, radius): the refined dial, rectified when seen obliquely.
    Returns the (rectified) picture, the affine map back to ``gray``, centre, radius and the
    rim's support (:func:`rim_support`)."""
    cx, cy, r = refine_dial(gray, *_split(refine_dial(gray, *_split(start))))
    back = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    rect = dial_rectification(gray, (cx, cy), r)
    if rect is not None:  # seen obliquely: read it as if seen face-on
        gray = cv2.warpAffine(gray, rect, (gray.shape[1], gray.shape[0]),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        back = cv2.invertAffineTransform(rect)
        cx, cy = (float(v) for v in rect @ (cx, cy, 1.0))
        cx, cy, r = refine_dial(gray, *_split(refine_dial(gray, (cx, cy), r * 1.05)))
    return gray, back, cx, cy, r, rim_support(gray, (cx, cy), r)


def read_gauge(image: np.ndarray, scale: GaugeScale, roi: BBox | None = None,
               min_prominence: float = 4.0, min_rim_support: float = 0.45) -> GaugeReading:
    """Read an analogue gauge: find the dial (inside ``roi`` when given), the needle, and its
    value on ``scale``. :class:`GaugeError` when no dial is found, less than
    ``min_rim_support`` of its rim lies on the fitted circle, or no clear needle is found."""
    gray = _gray(image)
    ox, oy = 0, 0
    if roi is not None:
        ox, oy, w, h = roi
        gray = gray[oy:oy + h, ox:ox + w]
        if gray.size == 0:
            raise GaugeError(f"the region of interest {roi} lies outside the image")
    k = max(1.0, 240.0 / min(gray.shape))  # small dials: work on a 240 px picture
    if k > 1.0:
        gray = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
    located = [_locate(gray, c) for c in dial_candidates(gray)]
    if not located or max(x[-1] for x in located) < min_rim_support:
        outline = find_dial_outline(gray)  # an oblique dial: no circle, an ellipse
        if outline is not None:
            located.append(_locate(gray, outline))
    if not located:
        raise GaugeError("no dial (circle or ellipse) found in the image")
    # every candidate that is a dial with a needle; the clearest needle wins (a plain disc
    # in the scene can be rounder than the dial, never has as clear a needle)
    errors, readings = [], []
    for pic, back, cx, cy, r, support in sorted(located, key=lambda x: -x[-1]):
        if support < min_rim_support:
            errors.append(f"no dial found reliably: only {support:.0%} of its rim lies on a "
                          f"circle (the dial may be seen too obliquely or be occluded)")
            continue
        try:
            angle, prominence = _needle(pic, (cx, cy), r, min_prominence, k)
        except GaugeError as exc:
            errors.append(str(exc))
            continue
        a, off = _on_scale(angle, scale)
        cx, cy = (float(v) for v in back @ (cx, cy, 1.0))
        readings.append(GaugeReading(a, scale.value(a), ((cx + 0.5) / k - 0.5 + ox,
                                                         (cy + 0.5) / k - 0.5 + oy),
                                     r / k, prominence, off))
    if not readings:
        raise GaugeError(errors[0])
    return max(readings, key=lambda g: g.prominence)


def _needle(gray: np.ndarray, center: tuple[float, float], r: float, min_prominence: float,
            k: float) -> tuple[float, float]:
    """The needle's angle and prominence on a located dial, or :class:`GaugeError` when
    there is no clear, one-sided needle through the centre."""
    angle, prominence, opposite = needle_angle(gray, center, r)
    if prominence < min_prominence:
        raise GaugeError(f"no clear needle on the dial (prominence {prominence:.1f} < "
                         f"{min_prominence:g})")
    if opposite > 0.5:
        raise GaugeError("the 'needle' runs through the whole dial: a line across a disc, "
                         "not a gauge")
    angle, miss = refine_needle(gray, center, r, angle)
    if miss > 0.06 * r:
        raise GaugeError(f"the needle passes {miss / k:.1f} px from the dial's centre: the "
                         f"dial is not where it was found")
    return angle, prominence


def check_gauge(image: np.ndarray, check: GaugeCheck, roi: BBox | None = None
                ) -> tuple[GaugeReading, bool]:
    """Read the gauge of ``check`` and say whether its value is within the expected range
    (a needle off the scale is never in range)."""
    reading = read_gauge(image, check.scale, roi)
    return reading, (not reading.off_scale) and check.in_range(reading.value)
