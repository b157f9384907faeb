"""Builders of standard ROS messages from the project's plain data (shared by nodes)."""

from __future__ import annotations

import array
from collections.abc import Iterable, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, TransformStamped, Twist, TwistStamped
from nav_msgs.msg import MapMetaData, OccupancyGrid, Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState, PointCloud2, PointField

from ilrs_robots.core.calibration import CameraCalibration
from ilrs_robots.core.geometry import Pose2D, yaw_to_quaternion

LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN,
          "ERROR": DiagnosticStatus.ERROR, "STALE": DiagnosticStatus.STALE}


def covariance6(diagonal: Sequence[float]) -> list[float]:
    """A 6x6 row-major covariance with the given diagonal."""
    cov = [0.0] * 36
    for i, value in enumerate(diagonal):
        cov[i * 7] = float(value)
    return cov


def odometry(stamp: Time, frame: str, child: str, pose: Pose2D, linear: float,
             angular: float, pose_cov: Sequence[float], twist_cov: Sequence[float]) -> Odometry:
    """nav_msgs/Odometry of a planar pose and body twist."""
    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    msg.child_frame_id = child
    msg.pose.pose.position.x = pose.x
    msg.pose.pose.position.y = pose.y
    q = yaw_to_quaternion(pose.yaw)
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = q
    msg.pose.covariance = covariance6(pose_cov)
    msg.twist.twist.linear.x = linear
    msg.twist.twist.angular.z = angular
    msg.twist.covariance = covariance6(twist_cov)
    return msg


def planar_transform(stamp: Time, frame: str, child: str, pose: Pose2D) -> TransformStamped:
    """TransformStamped of a planar pose."""
    t = TransformStamped()
    t.header.stamp = stamp
    t.header.frame_id = frame
    t.child_frame_id = child
    t.transform.translation.x = pose.x
    t.transform.translation.y = pose.y
    q = yaw_to_quaternion(pose.yaw)
    r = t.transform.rotation
    r.x, r.y, r.z, r.w = q
    return t


def joint_state(stamp: Time, names: Sequence[str], positions: Sequence[float],
                velocities: Sequence[float]) -> JointState:
    """sensor_msgs/JointState."""
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = list(names)
    msg.position = [float(p) for p in positions]
    msg.velocity = [float(v) for v in velocities]
    return msg


def diagnostic(name: str, hardware_id: str, level: str, message: str,
               values: Iterable[tuple[str, object]]) -> DiagnosticStatus:
    """diagnostic_msgs/DiagnosticStatus; level is OK, WARN, ERROR or STALE."""
    return DiagnosticStatus(level=LEVELS[level], name=name, hardware_id=hardware_id,
                            message=message,
                            values=[KeyValue(key=k, value=str(v)) for k, v in values])


def image(stamp: Time, frame: str, pixels: np.ndarray, encoding: str) -> Image:
    """sensor_msgs/Image of an HxW (mono8) or HxWx3 (rgb8, bgr8) uint8 array; one copy."""
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.step = msg.width * (pixels.shape[2] if pixels.ndim == 3 else 1) * pixels.itemsize
    msg.data = pixels.tobytes()  # the one copy: C order, also from a view (stereo halves)
    return msg


def compressed_image(stamp: Time, frame: str, jpeg: bytes) -> CompressedImage:
    """sensor_msgs/CompressedImage holding a JPEG."""
    msg = CompressedImage(format="jpeg")
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    msg.data = jpeg
    return msg


def calibration_info(stamp: Time, frame: str, cal: CameraCalibration) -> CameraInfo:
    """sensor_msgs/CameraInfo of a calibration."""
    msg = CameraInfo(width=cal.width, height=cal.height,
                     distortion_model=cal.distortion_model, d=list(cal.d), k=list(cal.k),
                     r=list(cal.r), p=list(cal.p))
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    return msg


def stamp_of(seconds: float) -> Time:
    """builtin_interfaces/Time of seconds since the epoch (or of sim time)."""
    sec = int(seconds // 1)
    return Time(sec=sec, nanosec=min(int((seconds - sec) * 1e9), 999_999_999))


def transform(stamp: Time, frame: str, child: str, xyz: Sequence[float],
              quat_xyzw: Sequence[float]) -> TransformStamped:
    """TransformStamped from a translation and a quaternion in ROS order (x, y, z, w)."""
    t = TransformStamped()
    t.header.stamp = stamp
    t.header.frame_id = frame
    t.child_frame_id = child
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
        float(v) for v in xyz)
    r = t.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in quat_xyzw)
    return t


def velocity_command(linear: float, angular: float, stamp: Time | None = None,
                     frame: str = "base_link") -> Twist | TwistStamped:
    """A planar cmd_vel: a Twist, or with ``stamp`` a TwistStamped in ``frame`` (Nav2's
    ``enable_stamped_cmd_vel``)."""
    twist = Twist()
    twist.linear.x, twist.angular.z = float(linear), float(angular)
    if stamp is None:
        return twist
    msg = TwistStamped(twist=twist)
    msg.header.stamp, msg.header.frame_id = stamp, frame
    return msg


def occupancy_grid(stamp: Time, frame: str, data: np.ndarray, origin: tuple[float, float],
                   resolution: float) -> OccupancyGrid:
    """nav_msgs/OccupancyGrid of int8 cells (row 0 at the origin's y)."""
    msg = OccupancyGrid()
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    msg.info = map_info(stamp, data.shape, origin, resolution)
    msg.data = array.array("b", np.ascontiguousarray(data, dtype=np.int8).tobytes())
    return msg


def map_info(stamp: Time, shape: tuple[int, int], origin: tuple[float, float],
             resolution: float) -> MapMetaData:
    """nav_msgs/MapMetaData of a grid of ``shape`` (rows, cols)."""
    info = MapMetaData(resolution=float(resolution), width=int(shape[1]),
                       height=int(shape[0]))
    info.map_load_time = stamp
    info.origin = Pose()
    info.origin.position.x, info.origin.position.y = float(origin[0]), float(origin[1])
    info.origin.orientation.w = 1.0
    return info


def point_cloud(stamp: Time, frame: str, points: np.ndarray,
                fields: Sequence[str] = ("x", "y", "z")) -> PointCloud2:
    """sensor_msgs/PointCloud2 of N points of float32 ``fields`` (N x len(fields) values)."""
    n = len(fields)
    pts = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, n)
    msg = PointCloud2(height=1, width=len(pts), is_bigendian=False, point_step=4 * n,
                      row_step=4 * n * len(pts), is_dense=True)
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    msg.fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, name in enumerate(fields)]
    msg.data = pts.tobytes()
    return msg
