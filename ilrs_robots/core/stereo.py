"""Dense stereo on a rectified pair: contrast equalisation, texture masking, StereoSGBM
disparity and 3-D points in the left camera's optical frame (x right, y down, z forward).

Pure: images in (numpy arrays), points out. The images must already be rectified (as the
simulator renders them, or as ``image_proc`` publishes ``image_rect``); the geometry comes
from the two cameras' :class:`~ilrs_robots.core.calibration.CameraCalibration` (``P`` of the
right camera holds ``-fx * baseline``, as in ``sensor_msgs/CameraInfo``).

Low sun: images are dark with long black shadows. Each image is equalised with CLAHE before
matching, and pixels whose local contrast in the *raw* image is below a threshold (black
shadow, sky, saturated glare) are dropped, so they give no points: the elevation map keeps
such places "unknown" rather than calling them free.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ilrs_robots.core.calibration import CameraCalibration

OPTICAL_FROM_MUJOCO = np.diag([1.0, -1.0, -1.0])
"""Right-multiply a MuJoCo camera's rotation (x right, y up, looking -z) by this to get the
rotation of the ROS optical frame (x right, y down, looking +z)."""


@dataclass(frozen=True)
class StereoRig:
    """Geometry of a rectified stereo pair: the left camera's pinhole intrinsics (pixels)
    and the baseline (m, left to right along +x of the optical frame)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float

    @classmethod
    def from_calibrations(cls, left: CameraCalibration, right: CameraCalibration) -> StereoRig:
        """The rig of two rectified cameras' calibrations (baseline from the right P)."""
        if (left.width, left.height) != (right.width, right.height):
            raise ValueError("left and right calibrations differ in image size")
        p, pr = left.p, right.p
        fx, fy, cx, cy = p[0], p[5], p[2], p[6]
        if fx <= 0 or fy <= 0:
            raise ValueError("the left projection matrix P has no positive focal length")
        baseline = (p[3] - pr[3]) / pr[0]
        if not baseline > 0:
            raise ValueError("right camera's P[3] must be -fx * baseline with baseline > 0 "
                             f"(got P[3] = {pr[3]})")
        return cls(left.width, left.height, fx, fy, cx, cy, baseline)

    def scaled(self, width: int, height: int) -> StereoRig:
        """The same rig at another image size (pixel-centre convention kept)."""
        sx, sy = width / self.width, height / self.height
        return StereoRig(width, height, self.fx * sx, self.fy * sy,
                         (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, self.baseline)

    def camera_matrix(self) -> np.ndarray:
        """The 3x3 intrinsic matrix K of the left (rectified) camera."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def depth(self, disparity: np.ndarray | float) -> np.ndarray | float:
        """Depth (m along the optical axis) of a disparity (pixels)."""
        return self.fx * self.baseline / np.asarray(disparity, dtype=np.float64)


@dataclass(frozen=True)
class StereoConfig:
    """Matcher and filter settings; the defaults suit the rover's 0.3 m baseline."""

    num_disparities: int = 96  # multiple of 16, at 640 px width (scaled with the width)
    block_size: int = 5
    uniqueness_ratio: int = 10
    speckle_window: int = 100
    speckle_range: int = 2
    clahe_clip: float = 3.0  # CLAHE clip limit (0 disables equalisation)
    clahe_tiles: int = 8
    texture_window: int = 7  # px, side of the window of the local-contrast test
    min_texture: float = 0.4  # grey levels: std of the raw image below this -> no match
    min_range: float = 1.0  # m, points nearer (or farther than max_range) are dropped
    max_range: float = 12.0
    point_step: int = 2  # keep every n-th pixel (both axes) as a 3-D point


@dataclass
class StereoResult:
    """One pair's output: 3-D points in the left optical frame (N x 3), their pixel
    coordinates (N x 2, u v), the disparity image (pixels, NaN where invalid) and the
    mask of pixels that had enough texture to match."""

    points: np.ndarray
    pixels: np.ndarray
    disparity: np.ndarray
    textured: np.ndarray

    @property
    def valid_fraction(self) -> float:
        """Fraction of pixels with a valid disparity."""
        return float(np.mean(np.isfinite(self.disparity)))


def to_gray(image: np.ndarray) -> np.ndarray:
    """8-bit single-channel view of an RGB/BGR/grey image (colour averaged equally)."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.shape[2] == 3 else img[..., 0]
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img


def make_clahe(clip: float = 3.0, tiles: int = 8) -> cv2.CLAHE | None:
    """A CLAHE equaliser (None when ``clip`` <= 0)."""
    return cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)) if clip > 0 else None


def local_contrast(gray: np.ndarray, window: int) -> np.ndarray:
    """Standard deviation of grey levels in a ``window`` x ``window`` box at every pixel."""
    g = gray.astype(np.float32)
    mean = cv2.boxFilter(g, -1, (window, window))
    sq = cv2.boxFilter(g * g, -1, (window, window))
    return np.sqrt(np.maximum(sq - mean * mean, 0.0))


class StereoMatcher:
    """StereoSGBM with CLAHE and a texture mask, turning a rectified pair into 3-D points."""

    def __init__(self, rig: StereoRig, config: StereoConfig | None = None) -> None:
        """Matcher for images of the rig's size (others are refused)."""
        self.rig = rig
        self.config = c = config or StereoConfig()
        nd = max(16, int(round(c.num_disparities * rig.width / 640.0 / 16.0)) * 16)
        self.num_disparities = nd
        bs = c.block_size
        self._sgbm = cv2.StereoSGBM_create(
            minDisparity=0, numDisparities=nd, blockSize=bs, P1=8 * bs * bs, P2=32 * bs * bs,
            disp12MaxDiff=1, uniquenessRatio=c.uniqueness_ratio,
            speckleWindowSize=c.speckle_window, speckleRange=c.speckle_range,
            mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
        self._clahe = make_clahe(c.clahe_clip, c.clahe_tiles)
        v, u = np.mgrid[0:rig.height, 0:rig.width]
        self._u = u.astype(np.float32)
        self._v = v.astype(np.float32)

    def equalise(self, gray: np.ndarray) -> np.ndarray:
        """Contrast-equalised grey image (CLAHE), or the input when equalisation is off."""
        return self._clahe.apply(gray) if self._clahe is not None else gray

    def disparity(self, left: np.ndarray, right: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(disparity in pixels with NaN where invalid or untextured, texture mask)."""
        gl, gr = to_gray(left), to_gray(right)
        if gl.shape != (self.rig.height, self.rig.width) or gr.shape != gl.shape:
            raise ValueError(f"images must be {self.rig.width}x{self.rig.height}, got "
                             f"{gl.shape[::-1]} and {gr.shape[::-1]}")
        c = self.config
        textured = local_contrast(gl, c.texture_window) >= c.min_texture
        raw = self._sgbm.compute(self.equalise(gl), self.equalise(gr))
        disp = raw.astype(np.float32) / 16.0
        bad = (raw <= 0) | ~textured
        disp[bad] = np.nan
        return disp, textured

    def compute(self, left: np.ndarray, right: np.ndarray) -> StereoResult:
        """Points (left optical frame) of a rectified pair, filtered by range and texture."""
        disp, textured = self.disparity(left, right)
        s = max(1, self.config.point_step)
        d = disp[::s, ::s]
        u = self._u[::s, ::s]
        v = self._v[::s, ::s]
        ok = np.isfinite(d)
        d, u, v = d[ok], u[ok], v[ok]
        r = self.rig
        z = (r.fx * r.baseline) / d
        x = (u - r.cx) * z / r.fx
        y = (v - r.cy) * z / r.fy
        pts = np.column_stack([x, y, z]).astype(np.float64)
        rng = np.linalg.norm(pts, axis=1)
        keep = (rng >= self.config.min_range) & (rng <= self.config.max_range)
        return StereoResult(pts[keep], np.column_stack([u, v])[keep], disp, textured)


def pose_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 homogeneous transform of a 3x3 rotation and a translation."""
    t = np.eye(4)
    t[:3, :3] = rotation
    t[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return t


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Points (N x 3) mapped by a 4x4 transform (e.g. map <- camera optical frame)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return p @ transform[:3, :3].T + transform[:3, 3]


def range_variance(points: np.ndarray, rig: StereoRig, disparity_sigma: float = 0.25
                   ) -> np.ndarray:
    """Variance (m^2) of each point's depth from a disparity error of ``disparity_sigma``
    pixels: sigma_z = z^2 / (fx * baseline) * sigma_d."""
    z = np.asarray(points, dtype=np.float64)[:, 2]
    sz = z * z / (rig.fx * rig.baseline) * disparity_sigma
    return sz * sz


def depth_points(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                 config: StereoConfig | None = None) -> tuple[np.ndarray, float]:
    """(points N x 3 in the optical frame, valid fraction) of a depth image.

    ``depth``: metres along the optical axis per pixel (REP 118: NaN, +-inf and 0 mean no
    measurement); every ``config.point_step``-th pixel on both axes, kept within
    ``config.min_range``..``config.max_range`` of the camera, as :class:`StereoMatcher` does.
    """
    c = config or StereoConfig()
    z_all = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(z_all) & (z_all > 0)
    s = max(1, c.point_step)
    z = z_all[::s, ::s]
    v, u = np.mgrid[0:z_all.shape[0]:s, 0:z_all.shape[1]:s]
    ok = valid[::s, ::s]
    z, u, v = z[ok].astype(np.float64), u[ok], v[ok]
    pts = np.column_stack([(u - cx) * z / fx, (v - cy) * z / fy, z])
    rng = np.linalg.norm(pts, axis=1)
    keep = (rng >= c.min_range) & (rng <= c.max_range)
    return pts[keep], float(np.mean(valid)) if valid.size else 0.0


def depth_variance(points: np.ndarray, sigma_at_1m: float = 0.002) -> np.ndarray:
    """Variance (m^2) of each point's depth for a sensor whose error grows with the square of
    the depth, ``sigma_at_1m`` at 1 m (a stereo-like model; the rover's 0.3 m pair at 320 px
    and a quarter pixel is about 0.002 m at 1 m)."""
    z = np.asarray(points, dtype=np.float64)[:, 2]
    sz = sigma_at_1m * z * z
    return sz * sz
