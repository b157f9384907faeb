"""Stereo visual odometry: ORB features with stereo depth, tracked frame to frame, motion by
PnP with RANSAC (OpenCV). Pure: images in, relative motion out.

Per frame: the left image is contrast-equalised (CLAHE: the sun is 3 deg above the horizon)
and ORB keypoints are detected; each is found in the right image by pyramidal Lucas-Kanade
along the (rectified) row, giving its depth. From the keyframe to the new frame the keypoints
are tracked by Lucas-Kanade (forward-backward checked) or, when that loses them, associated by
their ORB descriptors (ratio test) and refined to sub-pixel; ``cv2.solvePnPRansac`` then gives
the new camera's pose in the keyframe camera's frame, refined on the inliers. The keyframe is
kept until the rover moved ``keyframe_distance`` or turned ``keyframe_angle_deg`` or the
inliers thin out; each result is the step since the previous good frame, and steps measured
from one keyframe telescope, so errors grow per keyframe, not per frame. The covariance
comes from the reprojection residuals and the PnP Jacobian, inflated for the depth errors
the Jacobian does not see.

A frame that cannot give a motion (too dark, too few features, too few matches) is refused
with a reason; the reference is kept while the rover may still see the same ground, so the
next good frame measures the motion since the last good one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ilrs_robots.core.stereo import StereoRig, make_clahe, pose_matrix, to_gray


@dataclass(frozen=True)
class VOConfig:
    """Feature, matching and acceptance settings."""

    max_features: int = 1200
    fast_threshold: int = 10  # ORB's FAST threshold (after CLAHE)
    min_features: int = 50  # ORB keypoints a frame needs
    min_stereo: int = 30  # keypoints with a valid depth a reference needs
    min_matches: int = 25
    min_inliers: int = 40
    min_inlier_fraction: float = 0.1  # of the keyframe's stereo points (few: ambiguous)
    min_descriptor_inliers: int = 100  # when LK tracking failed and descriptors matched
    ratio: float = 0.8  # Lowe's ratio test on Hamming distances
    max_row_error: float = 1.0  # px, left-right match off the rectified row
    min_depth: float = 0.8  # m
    max_depth: float = 25.0
    ransac_reprojection: float = 1.5  # px
    ransac_iterations: int = 200
    clahe_clip: float = 3.0
    keyframe_distance: float = 0.15  # m the rover moves before a new keyframe
    keyframe_angle_deg: float = 3.0
    keyframe_inlier_fraction: float = 0.5  # of the keyframe's stereo points
    covariance_inflation: float = 10.0  # x the Jacobian covariance (depth errors unseen)
    min_translation_sigma: float = 0.002  # m, floor of each translation sigma
    min_rotation_sigma: float = 0.0005  # rad, floor of each rotation sigma


@dataclass
class VOResult:
    """The outcome of one frame. When ``ok`` is False, ``motion`` is None and ``reason``
    says why; ``stamp_from`` is then the reference the next frame will be measured from.

    ``motion`` is the 4x4 pose of the new frame in the reference frame (base frame when the
    odometry was given ``base_from_camera``, else the left camera's optical frame), and
    ``covariance`` the 6x6 covariance of its (translation, rotation vector), in that frame.
    """

    ok: bool
    reason: str = ""
    motion: np.ndarray | None = None
    covariance: np.ndarray | None = None
    stamp_from: float | None = None
    stamp_to: float | None = None
    features: int = 0
    stereo_points: int = 0
    matches: int = 0
    inliers: int = 0
    reprojection_rms: float = math.nan

    @property
    def inlier_ratio(self) -> float:
        """Inliers over matches (0 when nothing matched)."""
        return self.inliers / self.matches if self.matches else 0.0


@dataclass
class _Frame:
    gray: np.ndarray
    keypoints: np.ndarray  # N x 2 px
    descriptors: np.ndarray | None  # N x 32 uint8
    points: np.ndarray  # N x 3, optical frame, NaN where no depth
    stamp: float | None = None
    stereo: int = field(default=0)


class StereoVisualOdometry:
    """Frame-to-frame stereo visual odometry for one rectified rig."""

    def __init__(self, rig: StereoRig, config: VOConfig | None = None,
                 base_from_camera: np.ndarray | None = None) -> None:
        """``base_from_camera``: 4x4 pose of the left optical frame in ``base_link``; when
        given, motions and covariances are reported for ``base_link``."""
        self.rig = rig
        self.config = c = config or VOConfig()
        self.base_from_camera = (np.eye(4) if base_from_camera is None
                                 else np.asarray(base_from_camera, dtype=np.float64))
        self._orb = cv2.ORB_create(nfeatures=c.max_features, fastThreshold=c.fast_threshold,
                                   edgeThreshold=15, patchSize=15)
        self._clahe = make_clahe(c.clahe_clip)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self._K = rig.camera_matrix()
        self._ref: _Frame | None = None  # the keyframe
        self._key_to_last = np.eye(4)  # last good frame in the keyframe (reporting frame)
        self._last_stamp: float | None = None
        self._last_step = np.eye(4)  # the last good step (reporting frame): a prior for LK
        self._lk = dict(winSize=(21, 21), maxLevel=4,
                        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))

    def reset(self) -> None:
        """Forget the reference frame (the next frame becomes the reference)."""
        self._ref = None
        self._last_step = np.eye(4)

    @property
    def has_reference(self) -> bool:
        """True once a frame with enough stereo features is held as the reference."""
        return self._ref is not None

    # -- frame preparation ------------------------------------------------------------------
    def _prepare(self, left: np.ndarray, right: np.ndarray, stamp: float | None) -> _Frame:
        gl, gr = to_gray(left), to_gray(right)
        if gl.shape != (self.rig.height, self.rig.width) or gr.shape != gl.shape:
            raise ValueError(f"images must be {self.rig.width}x{self.rig.height}")
        if self._clahe is not None:
            gl, gr = self._clahe.apply(gl), self._clahe.apply(gr)
        kps, desc = self._orb.detectAndCompute(gl, None)
        pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
        xyz = np.full((len(pts), 3), np.nan)
        if len(pts):
            xyz = self._triangulate(gl, gr, pts)
        return _Frame(gl, pts, desc, xyz, stamp, int(np.isfinite(xyz[:, 2]).sum()))

    def _triangulate(self, gl: np.ndarray, gr: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """3-D points (optical frame) of left keypoints found in the right image by LK."""
        c, r = self.config, self.rig
        p0 = pts.reshape(-1, 1, 2)
        p1, st, _ = cv2.calcOpticalFlowPyrLK(gl, gr, p0, None, **self._lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gr, gl, p1, None, **self._lk)
        p1 = p1.reshape(-1, 2)
        d = pts[:, 0] - p1[:, 0]
        ok = ((st.ravel() == 1) & (st2.ravel() == 1)
              & (np.abs(p1[:, 1] - pts[:, 1]) <= c.max_row_error)
              & (np.linalg.norm(back.reshape(-1, 2) - pts, axis=1) <= 0.5) & (d > 0.1))
        z = np.where(ok, r.fx * r.baseline / np.where(ok, d, 1.0), np.nan)
        ok &= (z >= c.min_depth) & (z <= c.max_depth)
        z = np.where(ok, z, np.nan)
        x = (pts[:, 0] - r.cx) * z / r.fx
        y = (pts[:, 1] - r.cy) * z / r.fy
        return np.column_stack([x, y, z])

    # -- motion -----------------------------------------------------------------------------
    def process(self, left: np.ndarray, right: np.ndarray, stamp: float | None = None
                ) -> VOResult:
        """Measure the motion since the reference frame from a new rectified pair."""
        c = self.config
        cur = self._prepare(left, right, stamp)
        ref = self._ref
        base = VOResult(False, features=len(cur.keypoints), stereo_points=cur.stereo,
                        stamp_to=stamp, stamp_from=None if ref is None else self._last_stamp)
        if len(cur.keypoints) < c.min_features:
            base.reason = (f"too few features: {len(cur.keypoints)} < {c.min_features} "
                           "(image too dark or without texture)")
            return base
        if ref is None:
            return self._new_reference(cur, base, "first frame: reference set")
        best: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        for associate in (self._track, self._match):
            rows = associate(ref, cur)
            if len(rows) < c.min_matches:
                continue
            obj = ref.points[rows[:, 0].astype(np.intp)]
            img = rows[:, 1:3].astype(np.float64)
            # seeded with the constant-velocity prediction: on a ground plane a free
            # solution can flip to the mirror pose that fits the image as well
            rvec0, tvec0 = self._predicted_params()
            ok, rvec, tvec, inl = cv2.solvePnPRansac(
                obj, img, self._K, None, rvec0, tvec0, useExtrinsicGuess=True,
                iterationsCount=c.ransac_iterations, reprojectionError=c.ransac_reprojection,
                confidence=0.999, flags=cv2.SOLVEPNP_ITERATIVE)
            n_in = 0 if (not ok or inl is None) else len(inl)
            if associate == self._match and n_in < c.min_descriptor_inliers:
                n_in = 0  # descriptors alone are fooled by repeating texture: ask for more
            if best is None or n_in > best[0]:
                best = (n_in, obj, img, np.hstack([rvec, tvec]) if ok else None, inl)
                base.matches = len(rows)
            if n_in >= max(c.min_inliers, 0.5 * len(rows)):
                break
        if best is None:
            base.reason = "too few matches with the reference"
            return self._new_reference(cur, base, base.reason)
        n_in, obj, img, params, inl = best
        base.inliers = n_in
        need = max(c.min_inliers, int(c.min_inlier_fraction * ref.stereo))
        if params is None or n_in < need:
            base.reason = f"too few PnP inliers: {n_in} < {need}"
            return self._new_reference(cur, base, base.reason)
        rvec, tvec = params[:, :1].copy(), params[:, 1:].copy()
        inl = inl.ravel()
        rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], self._K, None, rvec, tvec)
        proj, jac = cv2.projectPoints(obj[inl], rvec, tvec, self._K, None)
        resid = (proj.reshape(-1, 2) - img[inl]).ravel()
        rms = float(np.sqrt(np.mean(resid ** 2)))
        cov_params = self._param_covariance(jac[:, :6], rms, n_in)
        key_to_cur, cov = self._motion(rvec.ravel(), tvec.ravel(), cov_params)
        # report the step since the last good frame: steps measured from one keyframe
        # telescope, so their errors do not add up frame after frame
        motion = np.linalg.inv(self._key_to_last) @ key_to_cur
        self._last_step = motion
        base.ok, base.motion, base.covariance = True, motion, cov
        base.reprojection_rms = rms
        self._last_stamp = stamp
        step = np.linalg.norm(key_to_cur[:3, 3])
        turn = math.degrees(np.linalg.norm(cv2.Rodrigues(key_to_cur[:3, :3])[0]))
        if (step > c.keyframe_distance or turn > c.keyframe_angle_deg
                or n_in < c.keyframe_inlier_fraction * ref.stereo):
            if cur.stereo >= c.min_stereo:
                self._ref = cur
                self._key_to_last = np.eye(4)
            else:
                self._ref = None
        else:
            self._key_to_last = key_to_cur
        return base

    def _new_reference(self, cur: _Frame, res: VOResult, reason: str) -> VOResult:
        if cur.stereo >= self.config.min_stereo:
            self._ref = cur
            self._key_to_last = np.eye(4)
            self._last_stamp = cur.stamp
            res.reason = reason
            res.stamp_from = cur.stamp
        else:
            res.reason = f"{reason}; only {cur.stereo} features with depth"
        return res

    def _predicted_camera(self) -> np.ndarray:
        """Predicted pose of the current camera in the keyframe camera (last step repeated).
        """
        X = self.base_from_camera
        return np.linalg.inv(X) @ self._key_to_last @ self._last_step @ X

    def _predicted_params(self) -> tuple[np.ndarray, np.ndarray]:
        """(rvec, tvec) mapping keyframe-camera points into the predicted current camera."""
        inv = np.linalg.inv(self._predicted_camera())
        rvec, _ = cv2.Rodrigues(inv[:3, :3])
        return rvec.reshape(3, 1), inv[:3, 3].reshape(3, 1).copy()

    def _track(self, ref: _Frame, cur: _Frame) -> np.ndarray:
        """Rows (ref index, u, v) of reference keypoints with depth followed into the current
        image by pyramidal LK, kept when tracking back lands within 0.5 px of the start."""
        has_depth = np.flatnonzero(np.isfinite(ref.points[:, 2]))
        if len(has_depth) == 0:
            return np.zeros((0, 3))
        p0 = ref.keypoints[has_depth].reshape(-1, 1, 2)
        # start LK where the keyframe's points would be if the last step repeated
        guess = p0.copy()
        world = ref.points[has_depth]
        inv = np.linalg.inv(self._predicted_camera())
        cam = world @ inv[:3, :3].T + inv[:3, 3]
        front = cam[:, 2] > 0.3
        if np.any(front):
            uv = cam[front, :2] / cam[front, 2:3] * [self.rig.fx, self.rig.fy]
            guess[front, 0] = (uv + [self.rig.cx, self.rig.cy]).astype(np.float32)
        p1, st, _ = cv2.calcOpticalFlowPyrLK(ref.gray, cur.gray, p0, guess,
                                             flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **self._lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(cur.gray, ref.gray, p1, p0.copy(),
                                                flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **self._lk)
        p1 = p1.reshape(-1, 2)
        r = self.rig
        ok = ((st.ravel() == 1) & (st2.ravel() == 1)
              & (np.linalg.norm(back.reshape(-1, 2) - p0.reshape(-1, 2), axis=1) <= 0.5)
              & (p1[:, 0] >= 0) & (p1[:, 0] <= r.width - 1)
              & (p1[:, 1] >= 0) & (p1[:, 1] <= r.height - 1))
        return np.column_stack([has_depth[ok], p1[ok]])

    def _match(self, ref: _Frame, cur: _Frame) -> np.ndarray:
        """Rows (ref index, u, v) of reference keypoints with depth matched to current
        keypoints by ORB descriptors (ratio test, one-to-one), refined by LK to sub-pixel.
        Used when LK tracking lost the reference (large rotation between frames)."""
        if ref.descriptors is None or cur.descriptors is None or len(cur.keypoints) < 2:
            return np.zeros((0, 3))
        has_depth = np.flatnonzero(np.isfinite(ref.points[:, 2]))
        if len(has_depth) == 0:
            return np.zeros((0, 3))
        knn = self._matcher.knnMatch(ref.descriptors[has_depth], cur.descriptors, k=2)
        rows = []
        used: set[int] = set()
        for pair in knn:
            if len(pair) < 2:
                continue
            m, n = pair
            if m.distance < self.config.ratio * n.distance and m.trainIdx not in used:
                used.add(m.trainIdx)
                rows.append((has_depth[m.queryIdx], m.trainIdx))
        if not rows:
            return np.zeros((0, 3))
        idx = np.array(rows, dtype=np.int64)
        p0 = ref.keypoints[idx[:, 0]].reshape(-1, 1, 2)
        guess = cur.keypoints[idx[:, 1]].reshape(-1, 1, 2).copy()
        p1, st, _ = cv2.calcOpticalFlowPyrLK(ref.gray, cur.gray, p0, guess.copy(),
                                             flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **self._lk)
        p1 = p1.reshape(-1, 2)
        g = guess.reshape(-1, 2)
        refined = (st.ravel() == 1) & (np.linalg.norm(p1 - g, axis=1) < 2.0)
        uv = np.where(refined[:, None], p1, g)
        return np.column_stack([idx[:, 0], uv])

    @staticmethod
    def _param_covariance(jac: np.ndarray, rms: float, n: int) -> np.ndarray:
        """Covariance of (rvec, tvec) from the reprojection Jacobian and residual RMS."""
        sigma2 = max(rms, 0.1) ** 2
        info = jac.T @ jac
        try:
            return sigma2 * np.linalg.inv(info)
        except np.linalg.LinAlgError:
            return np.eye(6) * 1e3

    def _motion(self, rvec: np.ndarray, tvec: np.ndarray, cov_params: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Pose of the new frame in the reference frame (base or optical) and the covariance
        of its (translation, rotation vector), propagated by finite differences."""
        X = self.base_from_camera
        Xi = np.linalg.inv(X)

        def pose(p: np.ndarray) -> np.ndarray:
            R, _ = cv2.Rodrigues(p[:3])
            cam = np.linalg.inv(pose_matrix(R, p[3:]))  # new camera in reference camera
            return X @ cam @ Xi

        def vec(T: np.ndarray) -> np.ndarray:
            r, _ = cv2.Rodrigues(T[:3, :3])
            return np.concatenate([T[:3, 3], r.ravel()])

        p0 = np.concatenate([rvec, tvec])
        T0 = pose(p0)
        v0 = vec(T0)
        J = np.zeros((6, 6))
        for i in range(6):
            dp = np.zeros(6)
            dp[i] = 1e-6
            J[:, i] = (vec(pose(p0 + dp)) - v0) / 1e-6
        c = self.config
        cov = c.covariance_inflation * (J @ cov_params @ J.T)
        floor = np.array([c.min_translation_sigma] * 3 + [c.min_rotation_sigma] * 3) ** 2
        cov += np.diag(floor)
        return T0, 0.5 * (cov + cov.T)
