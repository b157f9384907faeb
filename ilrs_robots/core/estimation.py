"""State estimation of the rover: an EKF fusing wheel odometry, the IMU and stereo visual
odometry, a tilt filter on the accelerometer, and wheel-slip detection. Pure numpy.

Frames (REP-105): the filter estimates ``base_link`` in ``map``. Its state is
``[x, y, yaw, v, w, b, k, kw]``: planar position (m), heading (rad), forward speed (m/s), yaw
rate (rad/s), the gyro's yaw-rate bias (rad/s), the wheels' speed scale ``k`` (wheel speed =
``k`` x true speed: worn tyres, soft soil) and their yaw-rate scale ``kw`` (skid steering
turns less than the wheels say). Roll and pitch come from :class:`TiltFilter`
(gyro, corrected towards the gravity direction the accelerometer sees) and project the
forward speed onto the level plane; height ``z`` is dead-reckoned from the pitch.

Visual odometry gives *relative* motion between two camera frames. The filter keeps a
stochastic clone of the pose at the reference frame's time and updates on the increment
since then, so repeated increments never count the same information twice.

Measurements are applied at the filter's current time: a measurement that arrives late is
treated as current (no re-ordering); for visual odometry this shifts an increment's end
but not its sum over a traverse.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from ilrs_robots.core.geometry import Pose2D, wrap_angle

X, Y, YAW, V, W, BIAS, SCALE, YAW_SCALE = range(8)
N_CORE = 8
N_STATE = N_CORE + 3  # plus the clone (x, y, yaw) at the visual odometry reference
#: what a rate measurement (wheels, gyro, zero velocity) never corrects: it says what the
#: rates are now. Fed back through the cross-covariances, the wheels' yaw rate moved the pose
#: by metres and the heading by tens of degrees whenever the rates changed faster than the
#: model (a skid-steer turn in place after a drive), as if the past track had been wrong.
#: The wheels correct neither the pose nor the heading (nor the visual odometry clone)...
POSE_STATES = (X, Y, YAW, N_CORE, N_CORE + 1, N_CORE + 2)
#: ... and the gyro not the position: it corrects the heading through its bias, whose error
#: the heading has integrated
IMU_CONSIDER = (X, Y, N_CORE, N_CORE + 1)
YAW_HISTORY = 5.0  # s of predictions kept for late gyro samples; later ones are not corrected


@dataclass(frozen=True)
class EkfConfig:
    """Noise and detection settings (standard deviations unless said otherwise)."""

    accel_noise: float = 0.3  # m/s^2 /sqrt(s): random walk of the forward speed
    yaw_accel_noise: float = 0.3  # rad/s^2 /sqrt(s): random walk of the yaw rate
    gyro_bias_walk: float = 2e-6  # rad/s /sqrt(s)
    scale_walk: float = 1e-4  # 1/sqrt(s), drift of the wheel speed scale
    position_noise: float = 0.005  # m /sqrt(s), unmodelled planar motion (side slip)
    # a skid-steer turn in place drags the wheels sideways: on a slope of a few degrees the
    # rover slides downhill by up to ~0.7 m per radian turned (south_pole, lunar gravity),
    # which the wheels cannot see; the position uncertainty grows by this much per
    # sqrt(rad) turned, fading out with the forward speed, so that visual odometry (or the
    # rover's later view) is trusted to measure the slide
    turn_slide_noise: float = 0.5  # m /sqrt(rad)
    turn_slide_speed: float = 0.15  # m/s: at this forward speed and above, no turn slide
    heading_noise: float = 0.0001  # rad /sqrt(s)
    wheel_speed_sigma: float = 0.02  # m/s
    wheel_yaw_rate_sigma: float = 0.08  # rad/s (skid steering is a poor yaw sensor)
    zero_velocity_sigma: float = 0.003  # m/s and rad/s, when the wheels stand still
    # ... and the gyro agrees: its rate, less the bias, within this (rad/s; plus 3 sigma of
    # the bias). Wheel odometry
    # that lags the gyro (a busy base driver, its stamps late) says "at rest" while a turn
    # has begun; clamped to zero then, the yaw rate lost the turn's first moments and the
    # bias took the gyro's reading (0.1 s of lag: 19 deg off after six turns in place)
    zero_velocity_gyro_gate: float = 0.02
    # m/s: slower wheels (not turning) are a parked rover whose wheels creep: the yaw rate is
    # still clamped to zero (and the gyro bias learned), the speed taken as read. The
    # simulator's velocity loops hold a parked rover at ~1.3 mm/s on 1.4 deg and ~4 mm/s on
    # 7 deg (no integral term), and the bias, learned only at exact rest, was not ready after
    # 3 minutes (2 minutes with visual odometry's help)
    creep_speed: float = 0.01
    gyro_sigma: float = 0.002  # rad/s per sample
    slip_speed_sigma: float = 1.0  # m/s, the wheels' speed noise while slipping
    # the rover moving further than its wheels turn is a skid: backing down a slope, a
    # slide with the wheels held; no wheel sees it. Its ratio (the share of visual
    # odometry's step the wheels did not roll) raises a flag with slip_on / slip_off; while
    # it is up the wheels' speed counts as while slipping, nothing clamps the speed to zero,
    # and the position may move by this much (m/s, a random walk) beyond the motion model,
    # so that visual odometry carries the slide (backing down the crater rim the filter
    # followed the wheels, 0.06 m/s, while the rover slid at 0.19: 4 m off in 3 minutes)
    skid_noise: float = 0.2  # m/s /sqrt(s); 0: skids are not modelled
    skid_min_slope: float = math.radians(3.0)  # rad: on flatter ground nothing skids
    initial_gyro_bias_sigma: float = 0.005  # rad/s
    initial_scale_sigma: float = 0.05
    initial_yaw_scale_sigma: float = 0.3
    yaw_scale_walk: float = 1e-3  # 1/sqrt(s)
    vo_gate: float = 21.1  # chi^2 (3 dof, 99.99 %): VO increments beyond are rejected
    clone_tolerance: float = 0.02  # s, VO reference stamp vs the clone's
    slip_on: float = 0.5  # slip ratio that raises the flag
    slip_off: float = 0.2  # slip ratio under which the flag drops
    slip_filter: float = 0.5  # weight of a new slip measurement in the filtered ratio
    slip_min_distance: float = 0.02  # m the wheels must roll for a linear slip measurement
    slip_min_yaw_rate: float = 0.05  # rad/s the wheels must turn for a yaw slip measurement
    yaw_slip_filter: float = 0.05  # weight per wheel sample of the yaw slip filter
    max_dt: float = 0.05  # s, longest prediction step (longer gaps are sub-stepped)
    # s: a longer step forward is a jump of the clock (sim time beside wall time, a clock
    # set), not motion: the filter's time moves without integrating it (counted)
    max_gap: float = 5.0


@dataclass(frozen=True)
class SlipStatus:
    """Wheel slip: ``ratio`` = 1 - true speed / wheel speed (0 rolling, 1 stalled) from the
    wheels against visual odometry (``linear_ratio``, the same), and ``slipping``, its flag
    with hysteresis: the wheels turn, the rover does not travel. ``yaw_ratio`` compares the
    wheels' turn rate (over the learnt yaw scale) with the gyro's and is reported only: a
    skid-steer rover's turn rate departs from its wheels' with the turn's radius and the
    ground, and a flag raised by it sent the navigator backing up on open ground."""

    ratio: float
    slipping: bool
    linear_ratio: float
    yaw_ratio: float
    skid_ratio: float = 0.0  # 1 - wheel travel / visual odometry's (0 rolling, 1 sliding)
    skidding: bool = False  # the rover moves further than its wheels (EkfConfig.skid_noise)


class TiltFilter:
    """Roll and pitch (rad, ZYX Euler as in REP-103: positive pitch = nose down) from the
    gyro, corrected towards the accelerometer's gravity direction with time constant ``tau``
    while the specific force is close to ``gravity``."""

    def __init__(self, gravity: float = 1.62, tau: float = 2.0) -> None:
        """``gravity`` m/s^2 (the Moon's by default)."""
        self.gravity = gravity
        self.tau = tau
        self.roll = 0.0
        self.pitch = 0.0
        self.initialised = False

    @staticmethod
    def from_accel(accel: np.ndarray) -> tuple[float, float]:
        """(roll, pitch) that make gravity appear as ``accel`` (specific force, body axes)."""
        ax, ay, az = (float(a) for a in accel)
        return math.atan2(ay, az), math.atan2(-ax, math.hypot(ay, az))

    def update(self, dt: float, accel: np.ndarray, gyro: np.ndarray,
               centripetal: float = 0.0, forward: float = 0.0) -> None:
        """Propagate by ``dt`` with the body rates and correct with the accelerometer
        (``centripetal`` = v w and ``forward`` = dv/dt, m/s^2, are removed from the lateral
        and forward axes first: under lunar gravity 0.3 m/s^2 of acceleration alone would
        read as 10 deg of tilt)."""
        a = np.array(accel, dtype=np.float64)
        a[0] -= forward
        a[1] -= centripetal
        r_acc, p_acc = self.from_accel(a)
        err = abs(float(np.linalg.norm(a)) - self.gravity) / self.gravity
        trust = max(0.0, 1.0 - err / 0.1)  # fades out beyond 10 % of g of acceleration
        if not self.initialised:
            if trust > 0.5:
                self.roll, self.pitch, self.initialised = r_acc, p_acc, True
            return
        gx, gy, gz = (float(g) for g in gyro)
        sr, cr = math.sin(self.roll), math.cos(self.roll)
        tp = math.tan(self.pitch)
        self.roll += (gx + (gy * sr + gz * cr) * tp) * dt
        self.pitch += (gy * cr - gz * sr) * dt
        alpha = min(1.0, trust * dt / self.tau)
        self.roll += alpha * wrap_angle(r_acc - self.roll)
        self.pitch += alpha * (p_acc - self.pitch)

    def downhill(self) -> tuple[float, float]:
        """The way down the slope in the level frame of the heading (x forward, y left),
        its length the sine of the tilt (0 on level ground)."""
        return math.sin(self.pitch) * math.cos(self.roll), -math.sin(self.roll)

    def yaw_rate(self, gyro: np.ndarray) -> float:
        """Rate of the heading (rad/s) from the body rates at the current tilt."""
        sr, cr = math.sin(self.roll), math.cos(self.roll)
        return (float(gyro[1]) * sr + float(gyro[2]) * cr) / max(math.cos(self.pitch), 0.1)


class RoverEKF:
    """The rover's localization filter (see the module's documentation)."""

    def __init__(self, config: EkfConfig | None = None, pose: Pose2D | None = None,
                 covariance: np.ndarray | None = None, stamp: float | None = None,
                 gravity: float = 1.62) -> None:
        """Start at ``pose`` (default the origin) with a 3x3 (x, y, yaw) ``covariance``."""
        self.config = config or EkfConfig()
        self.tilt = TiltFilter(gravity)
        self.x = np.zeros(N_STATE)
        self.P = np.eye(N_STATE) * 1e-9
        self.z = 0.0
        self.stamp = stamp
        self.time_jumps = 0  # steps forward longer than max_gap, taken without motion
        self._clone_stamp: float | None = None
        self._clone_tilt = (0.0, 0.0)
        self._wheel_since_clone = 0.0
        self._last_gyro: float | None = None
        self._wheel_stamp: float | None = None
        self._imu_stamp: float | None = None
        # (from, to, yaw rate) of the predictions of the last YAW_HISTORY seconds: what a late
        # gyro sample corrects; the starts alone, for bisection
        self._yaw_rates: list[tuple[float, float, float]] = []
        self._yaw_starts: list[float] = []
        self._imu_speed = 0.0  # the speed at the previous IMU sample (forward acceleration)
        self._imu_accel = 0.0  # smoothed forward acceleration (m/s^2)
        self._linear_slip = 0.0
        self._yaw_slip = 0.0
        self._slipping = False
        self._skid = 0.0
        self._skidding = False
        c = self.config
        self.x[SCALE] = self.x[YAW_SCALE] = 1.0
        self.P[BIAS, BIAS] = c.initial_gyro_bias_sigma ** 2
        self.P[SCALE, SCALE] = c.initial_scale_sigma ** 2
        self.P[YAW_SCALE, YAW_SCALE] = c.initial_yaw_scale_sigma ** 2
        self.P[V, V] = self.P[W, W] = 0.1 ** 2
        self.reset(pose or Pose2D(), covariance, stamp)

    # -- state access -----------------------------------------------------------------------
    def reset(self, pose: Pose2D, covariance: np.ndarray | None = None,
              stamp: float | None = None, z: float | None = None) -> None:
        """Set the pose (as ``initialpose`` from RViz does): x, y, yaw and its 3x3
        covariance (default 1 cm, 0.5 deg); speeds, gyro bias and wheel scale are kept,
        cross-correlations dropped, and the visual odometry reference forgotten."""
        cov = (np.diag([0.01, 0.01, math.radians(0.5)]) ** 2 if covariance is None
               else np.asarray(covariance, dtype=np.float64).reshape(3, 3))
        self.x[[X, Y, YAW]] = (pose.x, pose.y, wrap_angle(pose.yaw))
        keep = self.P[V:N_CORE, V:N_CORE].copy()
        self.P = np.eye(N_STATE) * 1e-9
        self.P[V:N_CORE, V:N_CORE] = keep
        self.P[:3, :3] = 0.5 * (cov + cov.T)
        if z is not None:
            self.z = z
        if stamp is not None:
            self.stamp = stamp
        self._clone_stamp = None

    @property
    def pose(self) -> Pose2D:
        """Planar pose of base_link in map."""
        return Pose2D(float(self.x[X]), float(self.x[Y]), float(self.x[YAW]))

    @property
    def pose_covariance(self) -> np.ndarray:
        """3x3 covariance of (x, y, yaw)."""
        return self.P[:3, :3].copy()

    @property
    def velocity(self) -> tuple[float, float]:
        """(forward speed m/s, yaw rate rad/s) in base_link."""
        return float(self.x[V]), float(self.x[W])

    @property
    def gyro_bias(self) -> float:
        """Estimated yaw-rate bias of the gyro, rad/s."""
        return float(self.x[BIAS])

    @property
    def gyro_bias_sigma(self) -> float:
        """Standard deviation of the gyro bias estimate, rad/s: it falls while the rover
        stands still (the wheels then say the yaw rate is zero), and its error turns the
        heading by that much per second."""
        return math.sqrt(max(0.0, float(self.P[BIAS, BIAS])))

    @property
    def wheel_scale(self) -> float:
        """Estimated wheel speed / true speed."""
        return float(self.x[SCALE])

    @property
    def wheel_yaw_scale(self) -> float:
        """Estimated wheel yaw rate / true yaw rate."""
        return float(self.x[YAW_SCALE])

    @property
    def rpy(self) -> tuple[float, float, float]:
        """(roll, pitch, yaw) of base_link in map, rad."""
        return self.tilt.roll, self.tilt.pitch, float(self.x[YAW])

    def covariance6(self, tilt_sigma: float = math.radians(1.0), z_sigma: float = 0.5
                    ) -> np.ndarray:
        """6x6 pose covariance in the order of geometry_msgs/PoseWithCovariance
        (x, y, z, rotation about x, y, z)."""
        c = np.zeros((6, 6))
        idx = [0, 1, 5]
        c[np.ix_(idx, idx)] = self.P[:3, :3]
        c[2, 2] = z_sigma ** 2
        c[3, 3] = c[4, 4] = tilt_sigma ** 2
        return c

    def twist_covariance6(self) -> np.ndarray:
        """6x6 twist covariance (vx, vy, vz, wx, wy, wz) of the body velocity."""
        c = np.diag([0.0, 1e-4, 1e-4, 1e-3, 1e-3, 0.0])
        c[0, 0] = self.P[V, V]
        c[5, 5] = self.P[W, W]
        c[0, 5] = c[5, 0] = self.P[V, W]
        return c

    @property
    def slip(self) -> SlipStatus:
        """The current slip ratio and flag (see SlipStatus)."""
        return SlipStatus(self._linear_slip, self._slipping, self._linear_slip, self._yaw_slip,
                          self._skid, self._skidding)

    # -- prediction -------------------------------------------------------------------------
    def predict(self, stamp: float) -> None:
        """Advance the state to ``stamp`` (s); an earlier stamp leaves it unchanged."""
        if self.stamp is None:
            self.stamp = stamp
            return
        dt = stamp - self.stamp
        if dt <= 0:
            return
        if dt > self.config.max_gap:
            self.time_jumps += 1
            self.stamp = stamp
            return
        steps = max(1, int(math.ceil(dt / self.config.max_dt)))
        self._yaw_rates.append((self.stamp, stamp, float(self.x[W])))
        self._yaw_starts.append(self.stamp)
        if stamp - self._yaw_starts[0] > 2 * YAW_HISTORY:  # drop the older half
            keep = bisect.bisect_left(self._yaw_starts, stamp - YAW_HISTORY)
            del self._yaw_rates[:keep], self._yaw_starts[:keep]
        for _ in range(steps):
            self._predict(dt / steps)
        self.stamp = stamp

    def _predicted_turn(self, start: float, end: float) -> tuple[float, float]:
        """(seconds covered, yaw integrated) by the predictions between ``start`` and
        ``end``."""
        covered = turned = 0.0
        for i in range(bisect.bisect_left(self._yaw_starts, end) - 1, -1, -1):
            a, b, rate = self._yaw_rates[i]
            if b <= start:
                break
            overlap = min(b, end) - max(a, start)
            if overlap > 0:
                covered += overlap
                turned += rate * overlap
        return covered, turned

    def _predict(self, dt: float) -> None:
        c = self.config
        s = self.x
        yaw, v = s[YAW], s[V]
        cp = math.cos(self.tilt.pitch)
        cy, sy = math.cos(yaw), math.sin(yaw)
        s[X] += v * cp * cy * dt
        s[Y] += v * cp * sy * dt
        s[YAW] = wrap_angle(s[YAW] + s[W] * dt)
        self.z -= v * math.sin(self.tilt.pitch) * dt
        F = np.eye(N_STATE)
        F[X, YAW] = -v * cp * sy * dt
        F[X, V] = cp * cy * dt
        F[Y, YAW] = v * cp * cy * dt
        F[Y, V] = cp * sy * dt
        F[YAW, W] = dt
        q = np.zeros(N_STATE)
        q[X] = q[Y] = c.position_noise ** 2 * dt + turn_slide_variance(
            float(s[W]), float(v), dt, c)
        if self._skidding:
            q[X] += c.skid_noise ** 2 * dt
            q[Y] += c.skid_noise ** 2 * dt
        q[YAW] = c.heading_noise ** 2 * dt
        q[V] = c.accel_noise ** 2 * dt
        q[W] = c.yaw_accel_noise ** 2 * dt
        q[BIAS] = c.gyro_bias_walk ** 2 * dt
        q[SCALE] = c.scale_walk ** 2 * dt
        q[YAW_SCALE] = c.yaw_scale_walk ** 2 * dt
        self.P = F @ self.P @ F.T + np.diag(q)

    # -- updates ----------------------------------------------------------------------------
    def _update(self, innovation: np.ndarray, H: np.ndarray, R: np.ndarray,
                gate: float | None = None, consider: tuple[int, ...] = ()) -> bool:
        """Kalman update; the states in ``consider`` keep their value and variance (their
        uncertainty still weighs the update: a Schmidt "consider" update)."""
        S = H @ self.P @ H.T + R
        try:
            Si = np.linalg.inv(S)
        except np.linalg.LinAlgError:
            return False
        if gate is not None and float(innovation @ Si @ innovation) > gate:
            return False
        K = self.P @ H.T @ Si
        if consider:
            K[list(consider), :] = 0.0
        self.x += K @ innovation
        self.x[YAW] = wrap_angle(self.x[YAW])
        self.x[N_CORE + 2] = wrap_angle(self.x[N_CORE + 2])
        IKH = np.eye(N_STATE) - K @ H
        self.P = IKH @ self.P @ IKH.T + K @ R @ K.T  # Joseph form: stays symmetric PSD
        return True

    def update_wheel_odometry(self, stamp: float, speed: float, yaw_rate: float) -> bool:
        """Fuse the base's wheel odometry (forward speed m/s, yaw rate rad/s, as in the
        twist of ``odom``). Wheels at rest clamp speed and yaw rate to zero (and so observe
        the gyro bias) while the gyro agrees that the rover is not turning; while slipping,
        the wheel speed is all but ignored."""
        prev = self._wheel_stamp
        self._wheel_stamp = stamp
        self.predict(stamp)
        dt = 0.0 if prev is None else min(max(0.0, stamp - prev), 1.0)
        c = self.config
        self._wheel_since_clone += speed * dt
        self._track_yaw_slip(yaw_rate)
        H = np.zeros((2, N_STATE))
        if (abs(speed) < c.creep_speed and abs(yaw_rate) < 1e-4 and self._gyro_still()
                and not self._skidding):
            H[1, W] = 1.0
            if abs(speed) < 1e-4:  # at rest
                H[0, V] = 1.0
                innov = -self.x[[V, W]]
                R = np.eye(2) * c.zero_velocity_sigma ** 2
            else:  # creeping: the speed as the wheels read it, not turning
                H[0, V], H[0, SCALE] = self.x[SCALE], self.x[V]
                innov = np.array([speed - self.x[SCALE] * self.x[V], -self.x[W]])
                R = np.diag([c.wheel_speed_sigma ** 2, c.zero_velocity_sigma ** 2])
            return self._update(innov, H, R, consider=POSE_STATES)
        H[0, V] = self.x[SCALE]
        H[0, SCALE] = self.x[V]
        H[1, W] = self.x[YAW_SCALE]
        H[1, YAW_SCALE] = self.x[W]
        innov = np.array([speed - self.x[SCALE] * self.x[V],
                          yaw_rate - self.x[YAW_SCALE] * self.x[W]])
        sv = c.slip_speed_sigma if self._slipping or self._skidding else c.wheel_speed_sigma
        sw = c.slip_speed_sigma if self._slipping else c.wheel_yaw_rate_sigma
        # the gyro's bias is not learned from the wheels' turn rate: skid steering turns at
        # half the wheels' rate, or less, and while the yaw scale is still unsure the bias
        # took the difference (a turn in place of 2 rad left the heading 5-12 deg off)
        return self._update(innov, H, np.diag([sv ** 2, sw ** 2]),
                            consider=(BIAS, *POSE_STATES))

    def _gyro_still(self) -> bool:
        """True when the gyro's last yaw rate, less the bias, says the rover is not turning
        (or there is no gyro); the gate widens by the bias's own uncertainty, so that a
        large bias not yet learned is still learned at rest."""
        if self._last_gyro is None:
            return True
        gate = self.config.zero_velocity_gyro_gate + 3.0 * self.gyro_bias_sigma
        return abs(self._last_gyro - self.x[BIAS]) <= gate

    def update_imu(self, stamp: float, accel: np.ndarray, gyro: np.ndarray) -> bool:
        """Fuse one IMU sample: specific force (m/s^2) and body rates (rad/s) in base_link
        axes. The accelerometer drives the tilt, the gyro's heading rate the yaw rate."""
        # the tilt integrates over the time since the previous IMU sample: the filter's own
        # time may already stand at this stamp (a caller predicts first, and wheel updates
        # move it), and a zero step froze roll and pitch at their first reading
        prev = self._imu_stamp
        self._imu_stamp = stamp
        behind = None if self.stamp is None else min(stamp, self.stamp)
        self.predict(stamp)
        dt = 0.0 if prev is None else min(max(0.0, stamp - prev), 1.0)
        v = float(self.x[V])
        if dt > 0:  # the speed moves in steps at wheel updates: smoothed over 0.2 s
            raw = (v - self._imu_speed) / dt
            self._imu_accel += min(1.0, dt / 0.2) * (raw - self._imu_accel)
        self._imu_speed = v
        forward = float(np.clip(self._imu_accel, -1.0, 1.0))
        self.tilt.update(dt, accel, gyro, centripetal=v * float(self.x[W]), forward=forward)
        rate = self.tilt.yaw_rate(gyro)
        self._last_gyro = rate
        consider = IMU_CONSIDER
        if dt > 0 and behind is not None and behind > stamp - dt \
                and self.stamp - stamp < YAW_HISTORY:
            # the filter already went past (part of) this sample's interval on the wheels
            # (a starved node takes its IMU late): that stretch was turned at the yaw rate
            # of the time; turn it at the gyro's instead, and leave the heading out of the
            # update (its correlation with the yaw rate spans the whole stretch ahead)
            covered, turned = self._predicted_turn(stamp - dt, behind)
            self.x[YAW] = wrap_angle(self.x[YAW] + (rate - self.x[BIAS]) * covered - turned)
            consider = (*IMU_CONSIDER, YAW)
        H = np.zeros((1, N_STATE))
        H[0, W] = H[0, BIAS] = 1.0
        innov = np.array([rate - self.x[W] - self.x[BIAS]])
        return self._update(innov, H, np.array([[self.config.gyro_sigma ** 2]]),
                            consider=consider)

    def vo_reference(self, stamp: float) -> None:
        """Take the current pose as the visual odometry reference at ``stamp`` (the camera
        time of the frame the next increment starts from). No-op when already cloned there.
        """
        if (self._clone_stamp is not None
                and abs(self._clone_stamp - stamp) <= self.config.clone_tolerance):
            return
        self.predict(stamp)
        self._clone(stamp)

    def _clone(self, stamp: float) -> None:
        n = N_CORE
        self.x[n:n + 3] = self.x[:3]
        self.P[n:n + 3, :] = 0.0
        self.P[:, n:n + 3] = 0.0
        self.P[n:n + 3, :n] = self.P[:3, :n]
        self.P[:n, n:n + 3] = self.P[:n, :3]
        self.P[n:n + 3, n:n + 3] = self.P[:3, :3]
        self._clone_stamp = stamp
        self._clone_tilt = (self.tilt.roll, self.tilt.pitch)
        self._wheel_since_clone = 0.0

    def update_visual_odometry(self, stamp_from: float, stamp_to: float, motion: np.ndarray,
                               covariance: np.ndarray) -> bool:
        """Fuse a visual odometry increment: ``motion`` is the 4x4 pose of base_link at
        ``stamp_to`` in base_link at ``stamp_from``, ``covariance`` the 6x6 covariance of
        its (translation, rotation vector). Needs the reference cloned at ``stamp_from``
        (see :meth:`vo_reference`); returns False when it was not, or when the increment
        fails the consistency gate. The reference then moves to ``stamp_to``."""
        self.predict(stamp_to)
        if (self._clone_stamp is None
                or abs(self._clone_stamp - stamp_from) > self.config.clone_tolerance):
            self._clone(stamp_to)
            return False
        (dx, dy, dyaw), R = planar_increment(motion, covariance, self._clone_tilt,
                                             (self.tilt.roll, self.tilt.pitch))
        n = N_CORE
        xc, yc, yc_yaw = self.x[n:n + 3]
        c, s = math.cos(yc_yaw), math.sin(yc_yaw)
        ddx, ddy = self.x[X] - xc, self.x[Y] - yc
        pred = np.array([c * ddx + s * ddy, -s * ddx + c * ddy,
                         wrap_angle(self.x[YAW] - yc_yaw)])
        H = np.zeros((3, N_STATE))
        H[0, X], H[0, Y], H[0, n], H[0, n + 1] = c, s, -c, -s
        H[1, X], H[1, Y], H[1, n], H[1, n + 1] = -s, c, s, -c
        H[0, n + 2] = -s * ddx + c * ddy
        H[1, n + 2] = -c * ddx - s * ddy
        H[2, YAW], H[2, n + 2] = 1.0, -1.0
        innov = np.array([dx, dy, dyaw]) - pred
        innov[2] = wrap_angle(innov[2])
        slip_now = self._track_linear_slip(dx)
        self._track_skid(math.hypot(dx, dy))
        # a stall makes the camera disagree with the wheels beyond the gate: the camera wins
        gate = None if slip_now >= self.config.slip_on else self.config.vo_gate
        ok = self._update(innov, H, R, gate=gate)
        self._clone(stamp_to)
        return ok

    # -- slip -------------------------------------------------------------------------------
    def _track_linear_slip(self, vo_forward: float) -> float:
        c = self.config
        wheel = self._wheel_since_clone / max(self.x[SCALE], 0.5)
        if abs(wheel) >= c.slip_min_distance:
            ratio = float(np.clip(1.0 - vo_forward / wheel, 0.0, 1.0))
        else:
            ratio = 0.0
        self._linear_slip += c.slip_filter * (ratio - self._linear_slip)
        self._slipping = self._flag(self._slipping, self._linear_slip)
        return ratio

    def _track_skid(self, vo_distance: float) -> None:
        c = self.config
        if c.skid_noise <= 0:
            return
        wheel = abs(self._wheel_since_clone) / max(self.x[SCALE], 0.5)
        sloped = math.hypot(*self.tilt.downhill()) >= math.sin(c.skid_min_slope)
        if vo_distance >= c.slip_min_distance and sloped:
            ratio = float(np.clip(1.0 - wheel / vo_distance, 0.0, 1.0))
        else:
            ratio = 0.0
        self._skid += c.slip_filter * (ratio - self._skid)
        self._skidding = self._flag(self._skidding, self._skid)

    def _track_yaw_slip(self, wheel_yaw_rate: float) -> None:
        c = self.config
        if self._last_gyro is None:
            return
        if abs(wheel_yaw_rate) >= c.slip_min_yaw_rate:
            true_rate = self._last_gyro - self.x[BIAS]
            wheel = wheel_yaw_rate / max(self.x[YAW_SCALE], 0.3)
            ratio = float(np.clip(1.0 - true_rate / wheel, 0.0, 1.0))
        else:
            ratio = 0.0
        self._yaw_slip += c.yaw_slip_filter * (ratio - self._yaw_slip)

    def _flag(self, up: bool, ratio: float) -> bool:
        """A slip or skid flag ``up`` after its filtered ``ratio`` (slip_on / slip_off)."""
        if ratio >= self.config.slip_on:
            return True
        return up and ratio > self.config.slip_off


def turn_slide_variance(yaw_rate: float, speed: float, dt: float, config: EkfConfig
                        ) -> float:
    """Planar position variance (m^2, per axis) a turn at ``yaw_rate`` rad/s and forward
    ``speed`` m/s adds over ``dt`` s: the slide of a skid-steer turn in place
    (``turn_slide_noise`` m per sqrt(rad) turned), fading linearly to nothing at
    ``turn_slide_speed`` m/s of forward speed."""
    if config.turn_slide_noise <= 0 or config.turn_slide_speed <= 0:
        return 0.0
    fade = max(0.0, 1.0 - abs(speed) / config.turn_slide_speed)
    return config.turn_slide_noise ** 2 * abs(yaw_rate) * dt * fade


def _level(roll: float, pitch: float) -> np.ndarray:
    """Rotation taking base_link axes to the level frame of the same heading."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return ry @ rx


def planar_increment(motion: np.ndarray, covariance: np.ndarray,
                     tilt_from: tuple[float, float] = (0.0, 0.0),
                     tilt_to: tuple[float, float] = (0.0, 0.0)
                     ) -> tuple[tuple[float, float, float], np.ndarray]:
    """The (dx, dy, dyaw) of a 3-D base_link increment in the level frame of the start
    heading, and its 3x3 covariance, given (roll, pitch) at both ends."""
    L1 = _level(*tilt_from)
    L2 = _level(*tilt_to)
    t = L1 @ motion[:3, 3]
    Rl = L1 @ motion[:3, :3] @ L2.T
    dyaw = math.atan2(Rl[1, 0], Rl[0, 0])
    C = np.asarray(covariance, dtype=np.float64).reshape(6, 6)
    J = np.zeros((3, 6))
    J[:2, :3] = L1[:2]
    J[2, 3:] = L1[2]  # heading change = rotation about the level vertical
    cov = J @ C @ J.T
    return (float(t[0]), float(t[1]), dyaw), 0.5 * (cov + cov.T)


def increment_matrix(dx: float, dy: float, dyaw: float, dz: float = 0.0) -> np.ndarray:
    """4x4 transform of a planar increment (for tests and synthetic visual odometry)."""
    c, s = math.cos(dyaw), math.sin(dyaw)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = (dx, dy, dz)
    return T


def map_to_odom(map_base: Pose2D, odom_base: Pose2D) -> Pose2D:
    """The map -> odom transform that puts base_link at ``map_base`` when the base's odometry
    says ``odom_base`` (REP-105: the localization node publishes this one)."""
    dyaw = wrap_angle(map_base.yaw - odom_base.yaw)
    c, s = math.cos(dyaw), math.sin(dyaw)
    x = map_base.x - (c * odom_base.x - s * odom_base.y)
    y = map_base.y - (s * odom_base.x + c * odom_base.y)
    return Pose2D(x, y, dyaw)
