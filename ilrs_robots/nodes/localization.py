"""localization: EKF of wheel odometry, IMU and stereo visual odometry; publishes
`odometry/filtered` (map -> base_link), the map -> odom transform on /tf, `localization/slip`
and /diagnostics. The filter and the VO bookkeeping are `core.localizer.Localizer`.

Topics (relative, the node runs in the robot's namespace): in `odom`, `imu/data`,
`stereo/{left,right}/image_raw` and `camera_info`, `initialpose`, `/tf_static`; out
`odometry/filtered`, `/tf`, `localization/slip`, `/diagnostics`. See README.md
("Localization").
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, Imu
from std_msgs.msg import Bool
from tf2_msgs.msg import TFMessage

from ilrs_robots.core.calibration import CameraCalibration
from ilrs_robots.core.estimation import EkfConfig
from ilrs_robots.core.geometry import Pose2D, quaternion_to_yaw
from ilrs_robots.core.localizer import Localizer, TransformTree, rpy_quaternion, transform_matrix
from ilrs_robots.core.stereo import StereoRig
from ilrs_robots.core.visual_odometry import VOConfig
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.backlog import take_queued
from ilrs_robots.nodes.params import ParameterError, declare, run_node
from ilrs_robots.nodes.qos import LATCHED, TF_STATIC
from ilrs_robots.nodes.service_call import call

IMU_DEPTH = 300  # IMU samples queued (3 s at the simulator's 100 Hz)


def seconds(stamp: Any) -> float:
    """A builtin_interfaces/Time in seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def _finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def start_from_world(world: str) -> tuple[Pose2D, float]:
    """(rover_start pose, terrain height there) of a world name or YAML path."""
    from ilrs_robots.sim.world import WorldError, build_heightmap, load_world

    try:
        w = load_world(world)
        hm = build_heightmap(w)
    except WorldError as exc:
        raise ParameterError("world", f"is not usable: {exc}") from exc
    x, y = w.rover_start.position
    return Pose2D(x, y, math.radians(w.rover_start.yaw_deg)), float(hm.height_at(x, y))


def world_of_node(node: Node, target: str, timeout: float) -> str:
    """The `world` parameter of node ``target`` (e.g. the simulator, "/sim"), asked through
    its parameter service before ``node`` spins; ParameterError naming `world_from` if it
    does not answer within ``timeout`` s."""
    import rclpy
    from rcl_interfaces.srv import GetParameters

    client = node.create_client(GetParameters, f"{target.rstrip('/')}/get_parameters")
    try:
        result = call(client, GetParameters.Request(names=["world"]), timeout,
                      wait=lambda f, s: rclpy.spin_until_future_complete(node, f, timeout_sec=s))
        if result is None:
            raise ParameterError("world_from", f"names {target!r}, which did not answer "
                                 f"within {timeout:g} s")
        if not result.values or not result.values[0].string_value:
            raise ParameterError("world_from", f"names {target!r}, which has no 'world'")
        return result.values[0].string_value
    finally:
        node.destroy_client(client)


def image_array(msg: Image) -> np.ndarray:
    """The pixels of an rgb8/bgr8/mono8 image (a view of the message's bytes)."""
    channels = {"mono8": 1, "8UC1": 1}.get(msg.encoding, 3)
    a = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    a = a[:, :msg.width * channels]
    return a.reshape(msg.height, msg.width, channels) if channels > 1 else a


def calibration_of(msg: CameraInfo) -> CameraCalibration:
    """The calibration a camera_info carries."""
    return CameraCalibration(msg.width, msg.height, "camera", msg.distortion_model or "plumb_bob",
                             list(msg.k), list(msg.d) or [0.0] * 5, list(msg.r), list(msg.p))


class StereoPairer:
    """Pairs left and right images by stamp (both sides of a rig share it); keeps only the
    newest pair, so a slow consumer skips frames instead of queueing them."""

    def __init__(self, max_offset: float) -> None:
        self.max_offset = max_offset
        self.left: Image | None = None
        self.right: Image | None = None
        self.pair: tuple[Image, Image] | None = None
        self.skipped = 0
        self.cond = threading.Condition()

    def put(self, msg: Image, left: bool) -> None:
        """Store one side; when the other side has the same stamp, a pair is ready."""
        with self.cond:
            if left:
                self.left = msg
            else:
                self.right = msg
            if self.left is None or self.right is None:
                return
            dt = abs(seconds(self.left.header.stamp) - seconds(self.right.header.stamp))
            if dt <= self.max_offset:
                if self.pair is not None:
                    self.skipped += 1
                self.pair = (self.left, self.right)
                self.left = self.right = None
                self.cond.notify()

    def take(self, timeout: float) -> tuple[Image, Image] | None:
        """The newest pair (removing it), or None after ``timeout`` s."""
        with self.cond:
            if self.pair is None:
                self.cond.wait(timeout)
            pair, self.pair = self.pair, None
            return pair


class LocalizationNode(Node):
    """EKF localization; see the module docstring."""

    def __init__(self) -> None:
        super().__init__("localization")
        p = self._declare_all()
        self.frames = (p["map_frame"], p["odom_frame"], p["base_frame"])
        self.publish_tf = p["publish_tf"]
        self.use_vo = p["use_visual_odometry"]
        self.vo_period = 1.0 / p["vo_max_rate"]
        self.vo_min_rate = p["vo_min_rate"]
        self.bias_ready_sigma = p["gyro_bias_ready_sigma"]
        self.vo_scale = p["vo_image_scale"]
        self.camera_override = p["camera_transform"]
        if p["world_from"] and not p["world"]:
            p["world"] = world_of_node(self, p["world_from"], p["world_from_timeout"])
        if p["world"]:
            pose, ground = start_from_world(p["world"])
            z = ground + p["base_height"]
            source = f"rover_start of world '{p['world']}'"
        else:
            x, y, yaw = p["initial_pose"]
            pose, z, source = Pose2D(x, y, yaw), 0.0, "parameter initial_pose"
        config = EkfConfig(slip_on=p["slip_on"], slip_off=p["slip_off"],
                           wheel_speed_sigma=p["wheel_speed_sigma"],
                           gyro_sigma=p["gyro_sigma"])
        vo_config = VOConfig(min_rotation_sigma=p["vo_min_rotation_sigma"],
                             min_translation_sigma=p["vo_min_translation_sigma"])
        self.loc = Localizer(pose, z, config, vo_config, gravity=p["gravity"],
                             wheel_interval=p["wheel_interval"],
                             max_yaw_rate=p["vo_max_yaw_rate"], min_rate=p["vo_min_rate"],
                             max_latency=p["vo_max_latency"])
        self.tree = TransformTree()
        self.infos: dict[str, CameraInfo] = {}
        self._camera_key: tuple | None = None
        self._camera_missing = "no camera_info yet"
        self._last_vo_stamp = -math.inf
        self._imu_late_seen = 0  # late IMU samples already reported on diagnostics
        self._slipping: bool | None = None
        self._skidding = False
        self._odom_count = 0
        self._imu_count = 0
        self._imu_mounted = False
        self.filtered_pub = self.create_publisher(Odometry, "odometry/filtered", 10)
        self.tf_pub = self.create_publisher(TFMessage, "/tf", 100)
        self.slip_pub = self.create_publisher(Bool, "localization/slip", LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Odometry, "odom", self._on_odom, 100)
        self._imu_sub = self.create_subscription(Imu, "imu/data", self._on_imu, IMU_DEPTH)
        self.create_subscription(PoseWithCovarianceStamped, "initialpose", self._on_initialpose,
                                 10)
        self.create_subscription(TFMessage, "/tf_static", self._on_tf_static, TF_STATIC)
        self.pairer = StereoPairer(p["stereo_max_offset"])
        for side in ("left", "right"):
            self.create_subscription(Image, f"stereo/{side}/image_raw",
                                     lambda m, s=side: self.pairer.put(m, s == "left"), 2)
            self.create_subscription(CameraInfo, f"stereo/{side}/camera_info",
                                     lambda m, s=side: self.infos.__setitem__(s, m), 2)
        self.diag_timer = self.create_timer(p["diagnostics_period"], self._publish_diagnostics)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._vo_loop, name="visual_odometry",
                                        daemon=True)
        self._worker.start()
        self.hardware_id = self.get_namespace().strip("/") or "robot"
        self.get_logger().info(
            f"starting at x={pose.x:.2f} y={pose.y:.2f} yaw={math.degrees(pose.yaw):.1f} deg "
            f"z={z:.2f} ({source}); visual odometry {'on' if self.use_vo else 'off'}")

    # -- parameters -------------------------------------------------------------------------
    def _declare_all(self) -> dict[str, Any]:
        d = self
        p: dict[str, Any] = {
            "world": declare(d, "world", "", "World name or YAML (simulation): start at its "
                             "rover_start, map frame = world frame; empty on a real rover",
                             read_only=True),
            "world_from_timeout": declare(d, "world_from_timeout", 60.0, "How long to wait for "
                                          "the 'world_from' node (s)", range=(0.1, 600.0),
                                          read_only=True),
            "world_from": declare(d, "world_from", "", "Node whose 'world' parameter to use "
                                  "when 'world' is empty (the simulator: /sim)",
                                  read_only=True),
            "initial_pose": declare(d, "initial_pose", [0.0, 0.0, 0.0],
                                    "Start pose [x m, y m, yaw rad] in map when 'world' is "
                                    "empty; setting it live resets the pose",
                                    lambda v: len(v) == 3 and _finite(v), "3 finite numbers"),
            "base_height": declare(d, "base_height", 0.25, "Height of base_link above the "
                                   "ground (m), for the start height on a world's terrain",
                                   range=(0.0, 5.0), read_only=True),
            "map_frame": declare(d, "map_frame", "map", "Map frame", bool, "non-empty",
                                 read_only=True),
            "odom_frame": declare(d, "odom_frame", "odom", "Odometry frame of the base "
                                  "driver", bool, "non-empty", read_only=True),
            "base_frame": declare(d, "base_frame", "base_link", "Base frame", bool,
                                  "non-empty", read_only=True),
            "publish_tf": declare(d, "publish_tf", True, "Publish map -> odom on /tf"),
            "use_visual_odometry": declare(d, "use_visual_odometry", True,
                                           "Fuse stereo visual odometry"),
            "vo_max_rate": declare(d, "vo_max_rate", 10.0, "Most stereo pairs per second "
                                   "(sensor time) visual odometry processes", range=(0.1, 60.0)),
            "vo_min_rate": declare(d, "vo_min_rate", 2.0, "Below this VO rate (Hz) its steps are "
                                   "not fused: the filter runs on wheels + IMU (diagnostics "
                                   "say so)", range=(0.0, 60.0)),
            "vo_max_latency": declare(d, "vo_max_latency", 0.5, "VO steps whose result is "
                                      "ready later than this after the frame (s) are not "
                                      "fused", range=(0.01, 10.0)),
            "vo_max_yaw_rate": declare(d, "vo_max_yaw_rate", 0.15, "Visual odometry is not "
                                       "fused while the rover turns faster (rad/s; 0: always)",
                                       range=(0.0, 10.0)),
            "vo_min_rotation_sigma": declare(
                d, "vo_min_rotation_sigma", 0.003, "Floor of each rotation sigma of a visual "
                "odometry step (rad): above the gyro's, so the gyro keeps the heading",
                range=(1e-5, 1.0), read_only=True),
            "vo_min_translation_sigma": declare(
                d, "vo_min_translation_sigma", 0.002, "Floor of each translation sigma of a "
                "visual odometry step (m)", range=(1e-5, 1.0), read_only=True),
            "vo_image_scale": declare(d, "vo_image_scale", 1.0, "Scale images by this before "
                                      "visual odometry (0.5: 640x480 -> 320x240)",
                                      range=(0.1, 1.0), read_only=True),
            "stereo_max_offset": declare(d, "stereo_max_offset", 0.005, "Largest stamp "
                                         "difference of a left/right pair (s)",
                                         range=(0.0, 1.0), read_only=True),
            "camera_transform": declare(d, "camera_transform", [0.0],
                                        "Pose of the left optical frame in base_link [x y z "
                                        "qx qy qz qw] when /tf_static has none; [0.0]: from "
                                        "/tf_static only",
                                        lambda v: len(v) in (1, 7) and _finite(v),
                                        "1 or 7 finite numbers", read_only=True),
            "gravity": declare(d, "gravity", 1.62, "Gravity (m/s^2) the accelerometer sees",
                               range=(0.1, 30.0), read_only=True),
            "slip_on": declare(d, "slip_on", 0.5, "Slip ratio that raises the slip flag",
                               range=(0.05, 1.0), read_only=True),
            "slip_off": declare(d, "slip_off", 0.2, "Slip ratio under which the flag drops",
                                range=(0.0, 1.0), read_only=True),
            "wheel_speed_sigma": declare(d, "wheel_speed_sigma", 0.02, "Wheel speed noise "
                                         "(m/s)", range=(1e-4, 10.0), read_only=True),
            "wheel_interval": declare(d, "wheel_interval", 0.05, "Wheel odometry is fused at "
                                      "most once per this much of its stamps (s); repeated "
                                      "stamps are dropped", range=(0.0, 1.0), read_only=True),
            "gyro_sigma": declare(d, "gyro_sigma", 0.002, "Gyro noise per sample (rad/s)",
                                  range=(1e-6, 1.0), read_only=True),
            "gyro_bias_ready_sigma": declare(
                d, "gyro_bias_ready_sigma", 0.0005, "The filter reports WARN, learning the "
                "gyro bias (keep the rover still), until the bias is known this well (rad/s: "
                "its error turns the heading by as much per second)", range=(1e-6, 1.0)),
            "diagnostics_period": declare(d, "diagnostics_period", 1.0, "Period of "
                                          "/diagnostics and of localization/slip (s)",
                                          range=(0.05, 60.0)),
        }
        if p["slip_off"] >= p["slip_on"]:
            raise ParameterError("slip_off", f"must be below slip_on ({p['slip_on']:g})")
        return p

    def on_parameters_set(self, changed: dict[str, Any]) -> None:
        """Apply live changes: TF publishing, VO use and rates, the bias readiness, a new
        initial pose."""
        if "publish_tf" in changed:
            self.publish_tf = bool(changed["publish_tf"])
        if "use_visual_odometry" in changed:
            self.use_vo = bool(changed["use_visual_odometry"])
        if "vo_max_rate" in changed:
            self.vo_period = 1.0 / float(changed["vo_max_rate"])
        if "vo_max_yaw_rate" in changed:
            self.loc.max_yaw_rate = float(changed["vo_max_yaw_rate"])
        if "vo_min_rate" in changed:
            self.vo_min_rate = self.loc.min_rate = float(changed["vo_min_rate"])
        if "vo_max_latency" in changed:
            self.loc.max_latency = float(changed["vo_max_latency"])
        if "gyro_bias_ready_sigma" in changed:
            self.bias_ready_sigma = float(changed["gyro_bias_ready_sigma"])
        if "diagnostics_period" in changed:
            self.diag_timer.timer_period_ns = int(changed["diagnostics_period"] * 1e9)
        if "initial_pose" in changed:
            x, y, yaw = changed["initial_pose"]
            self.loc.reset(Pose2D(x, y, yaw))
            self.get_logger().info(f"pose reset to x={x:.2f} y={y:.2f} yaw={yaw:.3f} rad")

    # -- inputs -----------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        o = msg.pose.pose.orientation
        odom_pose = Pose2D(msg.pose.pose.position.x, msg.pose.pose.position.y,
                           quaternion_to_yaw(o.x, o.y, o.z, o.w))
        est = self.loc.wheel_odometry(seconds(msg.header.stamp), msg.twist.twist.linear.x,
                                      msg.twist.twist.angular.z, odom_pose)
        self._odom_count += 1
        self._publish(est, msg.header.stamp)

    def _on_imu(self, msg: Imu) -> None:
        # the samples queued behind this one too: taken one per wake-up, the IMU fell behind
        # the wheels' odometry on a starved node (see backlog)
        for m in (msg, *take_queued(self._imu_sub, IMU_DEPTH)):
            self._fuse_imu(m)

    def _fuse_imu(self, msg: Imu) -> None:
        a, g = msg.linear_acceleration, msg.angular_velocity
        self.loc.imu(seconds(msg.header.stamp), np.array([a.x, a.y, a.z]),
                     np.array([g.x, g.y, g.z]))
        self._imu_count += 1
        if not self._imu_mounted and msg.header.frame_id:
            T = self.tree.lookup(self.frames[2], msg.header.frame_id)
            if T is not None:  # until /tf_static says otherwise: IMU axes = base_link's
                self.loc.set_imu_rotation(T)
                self._imu_mounted = True

    def _on_initialpose(self, msg: PoseWithCovarianceStamped) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.frames[0]:
            self.get_logger().warning(f"initialpose in frame '{msg.header.frame_id}' ignored: "
                                      f"it must be in '{self.frames[0]}'")
            return
        p, o = msg.pose.pose.position, msg.pose.pose.orientation
        pose = Pose2D(p.x, p.y, quaternion_to_yaw(o.x, o.y, o.z, o.w))
        c = np.asarray(msg.pose.covariance, dtype=np.float64).reshape(6, 6)
        idx = [0, 1, 5]
        cov = c[np.ix_(idx, idx)]
        if not (np.all(np.isfinite(cov)) and np.all(np.diag(cov) > 0)):
            cov = None  # RViz sends a usable one; a zero covariance means "exact": default
        self.loc.reset(pose, cov, z=p.z if p.z != 0.0 else None)
        self.get_logger().info(f"initialpose: x={pose.x:.2f} y={pose.y:.2f} "
                               f"yaw={math.degrees(pose.yaw):.1f} deg")

    def _on_tf_static(self, msg: TFMessage) -> None:
        for t in msg.transforms:
            tr, r = t.transform.translation, t.transform.rotation
            self.tree.add(t.header.frame_id, t.child_frame_id,
                          transform_matrix((tr.x, tr.y, tr.z), (r.x, r.y, r.z, r.w)))

    # -- visual odometry --------------------------------------------------------------------
    def _camera(self, left: Image) -> bool:
        """Build VO for the pair's camera once its calibration and mounting are known."""
        li, ri = self.infos.get("left"), self.infos.get("right")
        if li is None or ri is None:
            self._camera_missing = "no camera_info on stereo/left and stereo/right yet"
            return False
        if len(self.camera_override) == 7:
            v = self.camera_override
            base_from_cam = transform_matrix(v[:3], v[3:])
        else:
            base_from_cam = self.tree.lookup(self.frames[2], left.header.frame_id)
            if base_from_cam is None:
                self._camera_missing = (f"no {self.frames[2]} -> {left.header.frame_id} on "
                                        "/tf_static (or set camera_transform)")
                return False
        key = (tuple(li.p), tuple(ri.p), li.width, li.height, left.width, left.height,
               tuple(base_from_cam.ravel()))
        if key == self._camera_key:
            return True
        try:
            rig = StereoRig.from_calibrations(calibration_of(li), calibration_of(ri))
        except ValueError as exc:
            self._camera_missing = f"camera_info unusable: {exc}"
            return False
        w = max(16, int(round(left.width * self.vo_scale)))
        h = max(16, int(round(left.height * self.vo_scale)))
        rig = rig.scaled(w, h)
        self.loc.set_camera(rig, base_from_cam)
        self._camera_key = key
        self._camera_missing = ""
        self.get_logger().info(f"visual odometry on {w}x{h} images, baseline "
                               f"{rig.baseline:.3f} m")
        return True

    def _vo_loop(self) -> None:
        import cv2

        while not self._stop.is_set():
            pair = self.pairer.take(0.2)
            if pair is None or not self.use_vo:
                continue
            left, right = pair
            stamp = seconds(left.header.stamp)
            if stamp - self._last_vo_stamp < self.vo_period - 1e-3 and \
                    stamp > self._last_vo_stamp:
                continue
            try:
                if not self._camera(left):
                    continue
                a, b = image_array(left), image_array(right)
                vo = self.loc.vo
                if vo is not None and (a.shape[1], a.shape[0]) != (vo.rig.width, vo.rig.height):
                    size = (vo.rig.width, vo.rig.height)
                    a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
                    b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
                self._last_vo_stamp = stamp
                self.loc.visual_odometry(stamp, a, b)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not end the worker
                if not self.context.ok():
                    return
                self.get_logger().error(f"visual odometry failed: {exc}",
                                        throttle_duration_sec=5.0)

    # -- outputs ----------------------------------------------------------------------------
    def _publish(self, est: Any, stamp: Any) -> None:
        map_f, odom_f, base_f = self.frames
        msg = messages.odometry(stamp, map_f, base_f, est.pose, est.velocity[0],
                                est.velocity[1], [0.0] * 6, [0.0] * 6)
        msg.pose.pose.position.z = float(est.z)
        o = msg.pose.pose.orientation
        o.x, o.y, o.z, o.w = rpy_quaternion(*est.rpy)
        msg.pose.covariance = [float(v) for v in est.covariance6.ravel()]
        msg.twist.covariance = [float(v) for v in est.twist_covariance6.ravel()]
        self.filtered_pub.publish(msg)
        if self.publish_tf and est.map_to_odom is not None:
            tf = messages.planar_transform(stamp, map_f, odom_f, est.map_to_odom)
            self.tf_pub.publish(TFMessage(transforms=[tf]))
        if est.slip.slipping != self._slipping:
            self._slipping = est.slip.slipping
            self.slip_pub.publish(Bool(data=est.slip.slipping))
            if est.slip.slipping:
                self.get_logger().warning(f"wheel slip: ratio {est.slip.ratio:.2f}")
            else:
                self.get_logger().info("wheel slip over")
        if est.slip.skidding != self._skidding:
            self._skidding = est.slip.skidding
            if est.slip.skidding:
                self.get_logger().warning(f"skidding: the rover moves further than its wheels "
                                          f"(ratio {est.slip.skid_ratio:.2f}); following the "
                                          "camera")
            else:
                self.get_logger().info("skid over")

    def _publish_diagnostics(self) -> None:
        est = self.loc.estimate()
        st = self.loc.stats
        hw = f"{self.hardware_id}/localization"
        sx, sy = math.sqrt(est.covariance6[0, 0]), math.sqrt(est.covariance6[1, 1])
        syaw = math.sqrt(est.covariance6[5, 5])
        ekf = self.loc.ekf
        filt_level, filt_msg = "OK", "fusing wheels and IMU"
        if self._odom_count == 0:
            filt_level, filt_msg = "WARN", "no wheel odometry on 'odom' yet"
        elif self._imu_count == 0:
            filt_level, filt_msg = "WARN", "no IMU on 'imu/data' yet: wheels only"
        elif self.loc.imu_late > self._imu_late_seen:
            filt_level, filt_msg = "WARN", (
                f"{self.loc.imu_late - self._imu_late_seen} IMU samples came up to "
                f"{self.loc.imu_late_max:.2f} s behind the filter's time: the node is "
                "starved, the heading integrates stale rates")
            self.get_logger().warning(filt_msg, throttle_duration_sec=10.0)
        elif ekf.gyro_bias_sigma > self.bias_ready_sigma:
            filt_level, filt_msg = "WARN", (
                f"learning the gyro bias (sigma {ekf.gyro_bias_sigma:.5f} rad/s > "
                f"{self.bias_ready_sigma:g}): keep the rover still, or the heading "
                "drifts")
        status = [messages.diagnostic(
            f"{self.get_name()}: filter", hw, filt_level, filt_msg,
            [("x", f"{est.pose.x:.3f}"), ("y", f"{est.pose.y:.3f}"),
             ("yaw_deg", f"{math.degrees(est.pose.yaw):.2f}"), ("z", f"{est.z:.3f}"),
             ("sigma_xy", f"{math.hypot(sx, sy):.3f}"),
             ("sigma_yaw_deg", f"{math.degrees(syaw):.3f}"),
             ("gyro_bias", f"{ekf.gyro_bias:.5f}"),
             ("gyro_bias_sigma", f"{ekf.gyro_bias_sigma:.5f}"),
             ("wheel_scale", f"{ekf.wheel_scale:.4f}"),
             ("wheel_yaw_scale", f"{ekf.wheel_yaw_scale:.4f}"),
             ("wheel_messages", self._odom_count), ("wheel_fused", self.loc.wheel_fused),
             ("imu_messages", self._imu_count), ("imu_late", self.loc.imu_late),
             ("imu_late_max_s", f"{self.loc.imu_late_max:.3f}"),
             ("wheels_unwaited", self.loc.wheels_unwaited),
             ("time_jumps", ekf.time_jumps)])]
        self._imu_late_seen = self.loc.imu_late
        rate = st.rate()
        last = st.last
        if not self.use_vo:
            level, text = "WARN", "visual odometry off (parameter): wheels + IMU only"
        elif self._camera_missing:
            level, text = "WARN", f"visual odometry waiting: {self._camera_missing}"
        elif st.frames == 0:
            level, text = "WARN", "no stereo pairs yet: wheels + IMU only"
        elif rate < self.vo_min_rate:
            level, text = "WARN", (f"visual odometry at {rate:.1f} Hz, below {self.vo_min_rate:g}"
                                   " Hz: the filter runs on wheels + IMU")
        elif st.last_reason:
            level, text = "WARN", f"last frame refused: {st.last_reason}"
        else:
            level, text = "OK", f"visual odometry at {rate:.1f} Hz"
        status.append(messages.diagnostic(
            f"{self.get_name()}: visual odometry", hw, level, text,
            [("rate_hz", f"{rate:.2f}"), ("processing_ms", f"{st.mean_seconds() * 1e3:.1f}"),
             ("frames", st.frames), ("fused", st.fused), ("gated", st.gated),
             ("refused", st.refused), ("skipped_pairs", self.pairer.skipped),
             ("features", last.features if last else 0),
             ("matches", last.matches if last else 0),
             ("inliers", last.inliers if last else 0),
             ("inlier_ratio", f"{last.inlier_ratio:.2f}" if last else "0"),
             ("reprojection_rms", f"{last.reprojection_rms:.3f}" if last else "nan"),
             ("last_refusal", st.last_reason or "-"),
             *((f"refused: {k}", v) for k, v in sorted(st.reasons.items()))]))
        slip = est.slip
        if slip.slipping:
            text = f"slipping (ratio {slip.ratio:.2f})"
        elif slip.skidding:
            text = f"skidding: moving further than the wheels (ratio {slip.skid_ratio:.2f})"
        else:
            text = "rolling"
        status.append(messages.diagnostic(
            f"{self.get_name()}: wheel slip", hw,
            "WARN" if slip.slipping or slip.skidding else "OK", text,
            [("slip_ratio", f"{slip.ratio:.3f}"), ("linear_ratio", f"{slip.linear_ratio:.3f}"),
             ("yaw_ratio", f"{slip.yaw_ratio:.3f}"), ("slipping", slip.slipping),
             ("skid_ratio", f"{slip.skid_ratio:.3f}"), ("skidding", slip.skidding)]))
        array = DiagnosticArray(status=status)
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)
        self.slip_pub.publish(Bool(data=slip.slipping))

    def close(self) -> None:
        """Stop the visual odometry worker."""
        self._stop.set()
        self._worker.join(timeout=2.0)


def main(args: list[str] | None = None) -> None:
    """Console script `localization`."""
    raise SystemExit(run_node(LocalizationNode, args))


if __name__ == "__main__":
    main()
