"""Images drawn with OpenCV for the visual checks' tests and benchmarks, and for a simulator
that needs a gauge face: analogue gauges at a known needle angle, a textured scene, the same
scene seen again from a slightly different viewpoint and light, with or without a planted
object. Every random choice comes from the ``seed`` given.

Angles of a gauge are degrees clockwise from 12 o'clock, as in :mod:`.rounds`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ilrs_robots.core.inspection.rounds import GaugeScale

BBox = tuple[int, int, int, int]  # x, y, width, height (pixels)


def _point_at(center: tuple[float, float], radius: float, angle_deg: float
              ) -> tuple[int, int]:
    a = math.radians(angle_deg)
    return (int(round(center[0] + radius * math.sin(a))),
            int(round(center[1] - radius * math.cos(a))))


def draw_gauge(angle_deg: float, scale: GaugeScale | None = None, size: int = 240,
               face: tuple[int, int, int] = (235, 235, 230),
               background: tuple[int, int, int] = (90, 80, 70), ticks: int = 11,
               offset: tuple[int, int] = (0, 0), tail: bool = True) -> np.ndarray:
    """A BGR image (``size`` x ``size``) of an analogue gauge whose needle points at
    ``angle_deg``: light face, dark rim, ``ticks`` tick marks between the scale's end angles,
    a dark needle to 0.8 of the radius with a short tail, and a hub. ``offset`` moves the dial
    from the image centre (pixels)."""
    scale = scale or GaugeScale(-135.0, 135.0, 0.0, 10.0)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = background
    c = (size / 2 + offset[0], size / 2 + offset[1])
    r = 0.42 * size
    ci = (int(round(c[0])), int(round(c[1])))
    cv2.circle(img, ci, int(r), face, -1, cv2.LINE_AA)
    cv2.circle(img, ci, int(r), (40, 40, 40), max(2, size // 60), cv2.LINE_AA)
    for i in range(ticks):
        a = scale.min_angle_deg + i * (scale.max_angle_deg - scale.min_angle_deg) / (ticks - 1)
        major = i % 2 == 0
        cv2.line(img, _point_at(c, r * (0.80 if major else 0.86), a), _point_at(c, r * 0.94, a),
                 (30, 30, 30), 2 if major else 1, cv2.LINE_AA)
    # a coloured band marking the top of the scale, as on real dials
    a0, a1 = scale.angle(scale.min_value + 0.8 * (scale.max_value - scale.min_value)), \
        scale.max_angle_deg
    cv2.ellipse(img, ci, (int(r * 0.97), int(r * 0.97)), -90.0, min(a0, a1), max(a0, a1),
                (40, 40, 200), max(2, size // 80), cv2.LINE_AA)
    thick = max(2, size // 70)
    cv2.line(img, _point_at(c, -0.18 * r if tail else 0.0, angle_deg),
             _point_at(c, 0.8 * r, angle_deg), (20, 20, 20), thick, cv2.LINE_AA)
    cv2.circle(img, ci, max(3, int(0.07 * r)), (20, 20, 20), -1, cv2.LINE_AA)
    return img


def degrade(img: np.ndarray, seed: int, noise: float = 6.0, blur: float = 1.2,
            gain: float = 1.0, bias: float = 0.0) -> np.ndarray:
    """``img`` with Gaussian blur (sigma px), brightness ``gain``/``bias`` and Gaussian pixel
    noise (sigma in grey levels)."""
    rng = np.random.default_rng(seed)
    out = img.astype(np.float32)
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    out = out * gain + bias + rng.normal(0.0, noise, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def textured_scene(seed: int, shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A BGR scene rich in corners and texture (boxes, discs, lines, speckle) for feature
    matching, like machinery against regolith."""
    rng = np.random.default_rng(seed)
    h, w = shape
    base = rng.normal(110.0, 25.0, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0.0, 10.0, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(60):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        kind = rng.integers(0, 3)
        if kind == 0:
            dx, dy = (int(v) for v in rng.integers(8, 60, 2))
            cv2.rectangle(img, (x, y), (x + dx, y + dy), color, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), int(rng.integers(4, 30)), color, -1, cv2.LINE_AA)
        else:
            cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), color,
                     int(rng.integers(1, 4)), cv2.LINE_AA)
    return img


def plant_object(img: np.ndarray, seed: int, size_range: tuple[int, int] = (30, 70),
                 margin: int = 40) -> tuple[np.ndarray, BBox]:
    """A copy of ``img`` with a new object (a striped, outlined polygon) at a random place,
    and its bounding box."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    sw, sh = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, 2))
    x = int(rng.integers(margin, w - margin - sw))
    y = int(rng.integers(margin, h - margin - sh))
    pts = np.array([[x + rng.integers(0, sw // 4), y], [x + sw, y + rng.integers(0, sh // 4)],
                    [x + sw - rng.integers(0, sw // 4), y + sh], [x, y + sh - rng.integers(
                        0, sh // 4)]], np.int32)
    out = img.copy()
    color = tuple(int(v) for v in rng.integers(0, 256, 3))
    cv2.fillPoly(out, [pts], color, cv2.LINE_AA)
    stripe = tuple(255 - v for v in color)
    for k in range(x, x + sw, 8):
        cv2.line(out, (k, y), (k + sh // 2, y + sh), stripe, 2)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [pts], 255)
    out[mask == 0] = img[mask == 0]
    cv2.polylines(out, [pts], True, (20, 20, 20), 2, cv2.LINE_AA)
    bx, by, bw, bh = cv2.boundingRect(pts)
    return out, (int(bx), int(by), int(bw), int(bh))


@dataclass(frozen=True)
class Viewpoint:
    """A small change of viewpoint and light: rotation (deg), shift (px), scale, a
    perspective tilt (px of corner displacement), brightness gain and bias, noise."""

    rotation_deg: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    tilt: float = 0.0
    gain: float = 1.0
    bias: float = 0.0
    noise: float = 3.0

    @classmethod
    def random(cls, seed: int, strength: float = 1.0) -> Viewpoint:
        """A random small change: about +-3 deg, +-15 px, +-3 % scale, 6 px tilt, gain
        0.75..1.3, bias +-20 (times ``strength``)."""
        rng = np.random.default_rng(seed)
        u = rng.uniform(-1.0, 1.0, 6) * strength
        return cls(3.0 * u[0], (15.0 * u[1], 15.0 * u[2]), 1.0 + 0.03 * u[3], 6.0 * strength,
                   float(np.exp(0.27 * u[4])), 20.0 * u[5], 3.0)

    def homography(self, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
        """The 3x3 map from the original image to the new view (pixels)."""
        h, w = shape
        a = cv2.getRotationMatrix2D((w / 2, h / 2), self.rotation_deg, self.scale)
        a[:, 2] += self.shift
        hm = np.vstack([a, [0.0, 0.0, 1.0]])
        if self.tilt:
            rng = np.random.default_rng(seed)
            src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
            dst = src + rng.uniform(-self.tilt, self.tilt, (4, 2)).astype(np.float32)
            hm = cv2.getPerspectiveTransform(src, dst) @ hm
        return hm

    def apply(self, img: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``img`` seen from this viewpoint (edges replicated) and the homography used."""
        hm = self.homography(img.shape[:2], seed)
        out = cv2.warpPerspective(img, hm, (img.shape[1], img.shape[0]),
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return degrade(out, seed + 1, self.noise, 0.0, self.gain, self.bias), hm


def foreshorten(img: np.ndarray, squash: float, axis_deg: float = 0.0) -> np.ndarray:
    """``img`` as seen obliquely (affine approximation): shrunk by ``squash`` (cos of the
    viewing angle) along the direction ``axis_deg`` (from the image's x axis, towards y)
    about the image centre; edges replicated."""
    h, w = img.shape[:2]
    u = np.array([math.cos(math.radians(axis_deg)), math.sin(math.radians(axis_deg))])
    m = np.eye(2) + (squash - 1.0) * np.outer(u, u)
    c = np.array([w / 2.0, h / 2.0])
    a = np.hstack([m, (c - m @ c)[:, None]])
    return cv2.warpAffine(img, a, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
