"""The localization pipeline around :class:`~ilrs_robots.core.estimation.RoverEKF`: which
measurement goes where, the visual odometry bookkeeping (reference clones, refusals and
their reasons, rates) and the map -> odom transform. Pure: numbers and arrays in and out;
the ``localization`` node only converts messages.

Thread use: :meth:`Localizer.visual_odometry` runs the expensive image work outside the lock
and then fuses under it, so wheel and IMU updates are not held up by a slow frame.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
import transforms3d

from ilrs_robots.core.estimation import (
    EkfConfig,
    RoverEKF,
    SlipStatus,
    increment_matrix,
    map_to_odom,
    planar_increment,
)
from ilrs_robots.core.geometry import Pose2D, wrap_angle
from ilrs_robots.core.stereo import StereoRig, pose_matrix
from ilrs_robots.core.visual_odometry import StereoVisualOdometry, VOConfig, VOResult

#: a camera step beyond the wheels' down a slope (EkfConfig.skid_min_slope or steeper) may
#: be a skid when its excess over the wheels is no faster than this (m/s)
SKID_MAX_SPEED = 0.5


def transform_matrix(xyz: tuple[float, float, float] | np.ndarray,
                     xyzw: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
    """4x4 transform from a translation and a ROS-order (x, y, z, w) quaternion."""
    x, y, z, w = (float(v) for v in xyzw)
    return pose_matrix(transforms3d.quaternions.quat2mat([w, x, y, z]), xyz)


def matrix_quaternion(T: np.ndarray) -> tuple[float, float, float, float]:
    """ROS-order (x, y, z, w) quaternion of a 4x4 transform's rotation."""
    w, x, y, z = transforms3d.quaternions.mat2quat(T[:3, :3])
    return float(x), float(y), float(z), float(w)


def rpy_quaternion(roll: float, pitch: float, yaw: float) -> tuple[float, float, float, float]:
    """ROS-order quaternion of ZYX Euler angles (REP-103 roll, pitch, yaw)."""
    w, x, y, z = transforms3d.euler.euler2quat(yaw, pitch, roll, "rzyx")
    return float(x), float(y), float(z), float(w)


class TransformTree:
    """Static transforms (parent -> child 4x4) as /tf_static carries them, composed along
    the chain from a frame up to a base frame."""

    def __init__(self) -> None:
        self._parent: dict[str, tuple[str, np.ndarray]] = {}

    def add(self, parent: str, child: str, T: np.ndarray) -> None:
        """Record ``child``'s pose in ``parent``."""
        self._parent[child] = (parent, np.asarray(T, dtype=np.float64))

    def lookup(self, base: str, frame: str) -> np.ndarray | None:
        """Pose of ``frame`` in ``base`` (4x4), or None while the chain is incomplete."""
        T = np.eye(4)
        f = frame
        for _ in range(32):
            if f == base:
                return T
            if f not in self._parent:
                return None
            parent, P = self._parent[f]
            T = P @ T
            f = parent
        return None


@dataclass
class VOStats:
    """What visual odometry did lately, for diagnostics."""

    frames: int = 0
    fused: int = 0
    gated: int = 0
    refused: int = 0
    reasons: Counter = field(default_factory=Counter)
    last: VOResult | None = None
    last_reason: str = ""
    seconds: deque = field(default_factory=lambda: deque(maxlen=20))  # processing times
    stamps: deque = field(default_factory=lambda: deque(maxlen=20))  # frame stamps fused/seen

    def rate(self) -> float:
        """Frames processed per second of sensor time over the recent window (0 if unknown).
        """
        if len(self.stamps) < 2 or self.stamps[-1] <= self.stamps[0]:
            return 0.0
        return (len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0])

    def mean_seconds(self) -> float:
        """Mean processing time of a frame (s)."""
        return float(np.mean(self.seconds)) if self.seconds else math.nan


@dataclass(frozen=True)
class Estimate:
    """A snapshot of the filter for publishing."""

    stamp: float
    pose: Pose2D
    z: float
    rpy: tuple[float, float, float]
    covariance6: np.ndarray
    velocity: tuple[float, float]
    twist_covariance6: np.ndarray
    map_to_odom: Pose2D | None
    slip: SlipStatus


class Localizer:
    """EKF fed by wheel odometry, IMU and stereo visual odometry (see the module docstring).
    """

    def __init__(self, pose: Pose2D, z: float = 0.0, ekf: EkfConfig | None = None,
                 vo: VOConfig | None = None, gravity: float = 1.62,
                 wheel_interval: float = 0.05, max_yaw_rate: float = 0.15,
                 min_rate: float = 0.0, max_latency: float = math.inf) -> None:
        """Start at ``pose`` (map frame) and height ``z``; wheel odometry is fused at most
        every ``wheel_interval`` s of its stamps; visual odometry only while the rover turns
        slower than ``max_yaw_rate`` rad/s (0: always), at ``min_rate`` Hz or more, with
        results ready within ``max_latency`` s of the frame."""
        self.lock = threading.Lock()
        self.ekf = RoverEKF(ekf, pose, gravity=gravity)
        self.ekf.z = z
        self.vo_config = vo
        self.vo: StereoVisualOdometry | None = None
        self.stats = VOStats()
        self._odom_pose: Pose2D | None = None
        self._wheel_stamp: float | None = None
        self.wheel_interval = wheel_interval
        self.max_yaw_rate = max_yaw_rate
        self.min_rate = min_rate
        self.max_latency = max_latency
        self._disagreed = False
        self._pending: deque[tuple[float, float, float]] = deque()  # wheels ahead of the IMU
        self._imu_seen = False
        self.max_wait = 1.0  # s to hold wheel (stamps) and camera (wall) data for the IMU
        self.wheel_fused = 0
        # a starved node: IMU samples that came behind the filter's time (their rate missed
        # the heading's integration), how far behind, and wheel measurements fused without
        # waiting for the IMU
        self.imu_late = 0
        self.imu_late_max = 0.0
        self.wheels_unwaited = 0
        self._clone_stamp: float | None = None  # label of the filter's VO reference clone
        self._clone_time: float | None = None  # filter time at which it was taken
        self._history: deque[tuple[float, float, float, float]] = deque(maxlen=1000)
        self._local = (0.0, 0.0, 0.0)  # dead-reckoned pose (predictions only), any origin
        self._pose0: Pose2D | None = None  # the filter's pose after the last update
        self._imu_rotation = np.eye(3)

    # -- set-up -----------------------------------------------------------------------------
    def set_camera(self, rig: StereoRig, base_from_camera: np.ndarray) -> None:
        """(Re)build visual odometry for a rig whose left optical frame sits at
        ``base_from_camera`` in base_link."""
        with self.lock:
            self.vo = StereoVisualOdometry(rig, self.vo_config, base_from_camera)

    def set_imu_rotation(self, base_from_imu: np.ndarray) -> None:
        """Rotation of the IMU's axes in base_link (identity by default)."""
        self._imu_rotation = np.asarray(base_from_imu, dtype=np.float64)[:3, :3]

    def reset(self, pose: Pose2D, covariance: np.ndarray | None = None,
              z: float | None = None) -> None:
        """Put the rover at ``pose`` (as ``initialpose`` does); VO starts a new reference."""
        with self.lock:
            self.ekf.reset(pose, covariance, z=z)
            self._wheel_stamp = None
            self._pending.clear()
            self._clone_stamp = self._clone_time = None
            self._history.clear()
            self._pose0 = None
            if self.vo is not None:
                self.vo.reset()

    # -- measurements -----------------------------------------------------------------------
    def wheel_odometry(self, stamp: float, speed: float, yaw_rate: float,
                       odom_pose: Pose2D) -> Estimate:
        """Fuse the base's odometry twist; ``odom_pose`` (odom -> base_link at the same
        stamp) gives the map -> odom transform of the returned estimate.

        A stamp ahead of the IMU samples fused so far waits (up to ``max_wait``) for them,
        so that measurements are fused in time order when a busy node takes its messages
        late. A stamp behind the filter's time (set by the IMU) is taken as the filter's time: a
        base whose ROS clock lags (a busy process under ``use_sim_time``) publishes current
        speeds with stale stamps, in bursts sharing one stamp; integrated at those stamps,
        the wheels' distance over a visual odometry step jumps between 0 and twice the truth
        and reads as slip. A twist is fused only when at least ``wheel_interval`` s passed
        since the last fused one: fusing a burst as independent measurements would make the
        filter sure of a lagging speed (it then learns a wrong wheel scale)."""
        with self.lock:
            self._odom_pose = odom_pose
            now = self.ekf.stamp
            if now is not None and stamp > now and self._imu_seen:
                # ahead of the IMU samples fused so far (they may be queued behind it):
                # wait for them, or the yaw over the gap is integrated at a stale rate
                self._pending.append((stamp, speed, yaw_rate))
                if stamp - self._pending[0][0] > self.max_wait:
                    self.wheels_unwaited += len(self._pending)
                    self._flush_wheels(math.inf)  # the IMU went quiet: do not wait
            else:
                self._wheel(stamp, speed, yaw_rate)
            return self._estimate()

    def _flush_wheels(self, up_to: float) -> None:
        """Fuse the waiting wheel measurements stamped up to ``up_to``, in order."""
        while self._pending and self._pending[0][0] <= up_to:
            self._wheel(*self._pending.popleft())

    def _wheel(self, stamp: float, speed: float, yaw_rate: float) -> None:
        last = self._wheel_stamp
        now = self.ekf.stamp
        if now is not None and now - 1.0 <= stamp < now:
            stamp = now
        if last is None or stamp >= last + self.wheel_interval or stamp < last - 1.0:
            self._advance(stamp)
            self.ekf.update_wheel_odometry(stamp, speed, yaw_rate)
            self._corrected()
            self._wheel_stamp = stamp
            self.wheel_fused += 1

    def imu(self, stamp: float, accel: np.ndarray, gyro: np.ndarray) -> None:
        """Fuse one IMU sample (IMU axes; rotated into base_link)."""
        R = self._imu_rotation
        with self.lock:
            now = self.ekf.stamp
            if now is not None and stamp < now - 1e-3:
                self.imu_late += 1
                self.imu_late_max = max(self.imu_late_max, now - stamp)
            self._advance(stamp)
            self.ekf.update_imu(stamp, R @ np.asarray(accel), R @ np.asarray(gyro))
            self._corrected()
            self._imu_seen = True
            self._flush_wheels(stamp)

    def visual_odometry(self, stamp: float, left: np.ndarray, right: np.ndarray
                        ) -> VOResult | None:
        """Process a rectified pair taken at ``stamp`` and fuse the motion it gives. None
        while no camera is set. Refusals are counted by reason."""
        vo = self.vo
        if vo is None:
            return None
        t0 = time.perf_counter()
        res = vo.process(left, right, stamp)
        st = self.stats
        st.seconds.append(time.perf_counter() - t0)
        st.stamps.append(stamp)
        st.frames += 1
        st.last = res
        # a frame ahead of the IMU samples fused so far waits for them: fusing it first would
        # advance the filter past samples still queued, whose turn would then be lost
        deadline = time.monotonic() + self.max_wait
        while (self._imu_seen and (self.ekf.stamp or 0.0) < stamp
               and time.monotonic() < deadline):
            time.sleep(0.005)
        with self.lock:
            if vo is not self.vo:
                return res  # camera or pose reset meanwhile
            if self._imu_seen and (self.ekf.stamp or 0.0) < stamp:
                st.refused += 1
                st.last_reason = "IMU behind the camera (node too busy)"
                st.reasons["IMU behind the camera"] += 1
                vo.reset()
                return res
            held = self._too_late(res) or self._turning(res) or self._implausible(res)
            if held:
                st.refused += 1
                st.last_reason = held
                st.reasons[_reason_key(held)] += 1
                if held.startswith("moves less"):
                    # waiting for confirmation: the next step starts from this frame
                    self._advance(res.stamp_to)
                    self.ekf.vo_reference(res.stamp_to)
                    self._cloned(res.stamp_to)
                else:
                    # start afresh from the next frame (the tracker's motion prior, its
                    # last step, would carry a bad step into the next one)
                    vo.reset()
            elif res.ok and res.motion is not None and res.covariance is not None:
                motion, cov = self._latency_compensated(res)
                self._advance(res.stamp_to)
                fused = self.ekf.update_visual_odometry(res.stamp_from, res.stamp_to, motion,
                                                        cov)
                self._corrected()
                self._cloned(res.stamp_to, force=True)
                if fused:
                    st.fused += 1
                    st.last_reason = ""
                else:
                    st.gated += 1
                    st.last_reason = "increment rejected by the filter (gate or no reference)"
                    st.reasons["rejected by the filter"] += 1
            else:
                st.refused += 1
                st.last_reason = res.reason
                st.reasons[_reason_key(res.reason)] += 1
                if res.stamp_from is not None:
                    self._advance(res.stamp_from)
                    self.ekf.vo_reference(res.stamp_from)
                    self._cloned(res.stamp_from)
        return res

    def _implausible(self, res: VOResult) -> str:
        """Why an increment is held back because it disagrees with what the wheels and the
        IMU made of the same interval, or "" to fuse it. A step turning otherwise than the
        gyro is always held (slip does not fool the gyro), and so is one going sideways or
        further than the wheels. A step shorter than the wheels' (slip, or a tracker fooled
        by a wrong motion prior) is held once; a second one in a row is fused and the filter
        judges it (a stalled rover's camera sees the same "no motion" again)."""
        if not res.ok or res.motion is None or res.stamp_from is None or res.stamp_to is None:
            return ""
        pred = _relative(self._pose_at(res.stamp_from), self._pose_at(res.stamp_to))
        (dx, dy, dyaw), _ = planar_increment(res.motion, res.covariance)
        miss = math.hypot(dx - pred[0], dy - pred[1])
        turn = abs(wrap_angle(dyaw - pred[2]))
        step = math.hypot(pred[0], pred[1])
        if turn > math.radians(0.5) + 0.1 * abs(pred[2]):
            # wheel slip does not fool the gyro: a step turning otherwise is a tracking error
            return (f"turns otherwise than the gyro: by {math.degrees(turn):.2f} deg")
        # a turn in place on a slope slides the rover, which the wheels do not see: allow
        # the slide it may cause (EkfConfig.turn_slide_noise) as well
        tol = 0.03 + 0.3 * step + self.ekf.config.turn_slide_noise * abs(pred[2])
        if miss <= tol:
            self._disagreed = False
            return ""
        if self._downhill(dx - pred[0], dy - pred[1], res.stamp_to - res.stamp_from):
            self._disagreed = False
            return ""  # a skid down the slope: the filter judges it (EkfConfig.skid_noise)
        along = dx if pred[0] >= 0.0 else -dx  # in the direction the wheels rolled
        if abs(dy - pred[1]) > tol or along > abs(pred[0]) or along < -tol:
            # sideways, further than the wheels rolled, or back against them: slip only
            # shortens the wheels' motion, so this is a tracking error (held twice in a row it
            # used to be fused, and ungated, as slip)
            return f"moves otherwise than the wheels: by {miss:.3f} m"
        if self._disagreed:
            return ""  # shorter than the wheels twice in a row: let the filter judge (slip)
        self._disagreed = True
        return f"moves less than the wheels: by {miss:.3f} m (held once for confirmation)"

    def _downhill(self, ex: float, ey: float, span: float) -> bool:
        """True when the camera's motion beyond the wheels' (``ex``, ``ey``: m, in the
        level frame of the step's start heading) points down the slope the IMU measures
        (within 45 deg, on EkfConfig.skid_min_slope or more) at no more than SKID_MAX_SPEED: the
        rover skids there further than its wheels turn, which only the camera sees."""
        down = self.ekf.tilt.downhill()
        slope = math.hypot(*down)
        excess = math.hypot(ex, ey)
        if (slope < math.sin(self.ekf.config.skid_min_slope)
                or excess > SKID_MAX_SPEED * max(span, 0.0)):
            return False
        return ex * down[0] + ey * down[1] >= math.cos(math.radians(45.0)) * excess * slope

    def _too_late(self, res: VOResult) -> str:
        """Why an increment is not fused because it came too late or too seldom (a busy
        computer: the filter then runs on wheels + IMU), or ""."""
        if not res.ok:
            return ""
        late = (self.ekf.stamp or 0.0) - (res.stamp_to or 0.0)
        if late > self.max_latency:
            return f"processed too late: {late:.2f} s > {self.max_latency:g} s after the frame"
        rate = self.stats.rate()
        if rate < self.min_rate:
            return f"too few frames processed: {rate:.1f} Hz < {self.min_rate:g} Hz"
        return ""

    def _turning(self, res: VOResult) -> str:
        """Why a good-looking increment is not fused because the rover turns too fast for
        it (frames far apart in angle fool the tracker with confident wrong rotations),
        or "" when it may be fused."""
        if not res.ok or res.motion is None or self.max_yaw_rate <= 0:
            return ""
        rate = abs(self.ekf.velocity[1])
        span = (res.stamp_to or 0.0) - (res.stamp_from or 0.0)
        if span > 0:
            rate = max(rate, abs(math.atan2(res.motion[1, 0], res.motion[0, 0])) / span)
        if rate > self.max_yaw_rate:
            return (f"turning too fast for visual odometry: {rate:.2f} rad/s > "
                    f"{self.max_yaw_rate:g}")
        return ""

    # -- latency of visual odometry ---------------------------------------------------------
    def _advance(self, stamp: float) -> None:
        """Predict the filter to ``stamp`` and move the local dead-reckoned pose by the
        predicted motion only (corrections are left out), recording it: relative motions
        between recent instants then come from a smooth track, not from one that jumps
        with each correction (a jump would read as motion and feed back)."""
        e = self.ekf
        e.predict(stamp)
        if e.stamp is None:
            return
        if self._pose0 is not None:
            self._local = _compose(self._local, _relative(self._pose0, e.pose))
        self._pose0 = e.pose
        if self._history and e.stamp < self._history[-1][0]:
            self._history.clear()
        self._history.append((e.stamp, *self._local))

    def _corrected(self) -> None:
        """After an update: the next prediction starts from the corrected pose."""
        self._pose0 = self.ekf.pose

    def _cloned(self, stamp: float, force: bool = False) -> None:
        """Note that the filter's VO reference (labelled ``stamp``) was taken now, unless it
        already was at that stamp (the filter then keeps it)."""
        tol = self.ekf.config.clone_tolerance
        if force or self._clone_stamp is None or abs(self._clone_stamp - stamp) > tol:
            self._clone_stamp = stamp
            self._clone_time = self.ekf.stamp

    def _pose_at(self, t: float) -> Pose2D:
        """The local dead-reckoned pose at time ``t`` (interpolated; see :meth:`_advance`).
        """
        h = self._history
        if not h or t >= h[-1][0]:
            return Pose2D(*self._local)
        if t <= h[0][0]:
            return Pose2D(*h[0][1:])
        stamps = [r[0] for r in h]
        i = bisect_left(stamps, t)
        (t0, x0, y0, a0), (t1, x1, y1, a1) = h[i - 1], h[i]
        f = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        return Pose2D(x0 + f * (x1 - x0), y0 + f * (y1 - y0),
                      wrap_angle(a0 + f * wrap_angle(a1 - a0)))

    def _latency_compensated(self, res: VOResult) -> tuple[np.ndarray, np.ndarray]:
        """The increment the filter can compare: the filter compares its state *now* with
        its reference clone, taken when the previous frame was processed, not at the
        frames' stamps. The motion from the clone's time back to the first frame and from
        the second frame on to now comes from the filter's own recent poses (short,
        precise), and the covariance grows with those latencies."""
        now = self.ekf.stamp
        if self._clone_time is None or now is None or res.stamp_from is None \
                or res.stamp_to is None:
            return res.motion, res.covariance
        a = _relative(self._pose_at(self._clone_time), self._pose_at(res.stamp_from))
        b = _relative(self._pose_at(res.stamp_to), Pose2D(*self._local))
        motion = increment_matrix(*a) @ res.motion @ increment_matrix(*b)
        lag = abs(self._clone_time - res.stamp_from) + abs(now - res.stamp_to)
        extra = np.array([(0.002 + 0.01 * lag) ** 2] * 3 + [(0.0005 + 0.002 * lag) ** 2] * 3)
        return motion, res.covariance + np.diag(extra)

    # -- output -----------------------------------------------------------------------------
    def estimate(self) -> Estimate:
        """The current estimate."""
        with self.lock:
            return self._estimate()

    def _estimate(self) -> Estimate:
        e = self.ekf
        pose = e.pose
        m2o = None if self._odom_pose is None else map_to_odom(pose, self._odom_pose)
        return Estimate(e.stamp or 0.0, pose, e.z, e.rpy, e.covariance6(), e.velocity,
                        e.twist_covariance6(), m2o, e.slip)


def _relative(a: Pose2D, b: Pose2D) -> tuple[float, float, float]:
    """(dx, dy, dyaw) of pose ``b`` in the frame of pose ``a``."""
    c, s = math.cos(a.yaw), math.sin(a.yaw)
    dx, dy = b.x - a.x, b.y - a.y
    return c * dx + s * dy, -s * dx + c * dy, wrap_angle(b.yaw - a.yaw)


def _compose(p: tuple[float, float, float], d: tuple[float, float, float]
             ) -> tuple[float, float, float]:
    """Pose ``p`` moved by ``d`` = (dx, dy, dyaw) in its own frame."""
    c, s = math.cos(p[2]), math.sin(p[2])
    return (p[0] + c * d[0] - s * d[1], p[1] + s * d[0] + c * d[1], wrap_angle(p[2] + d[2]))


def _reason_key(reason: str) -> str:
    """A refusal reason without its numbers, to count refusals by kind."""
    head = reason.split(":")[0].split(";")[0].strip()
    return head or "unknown"
