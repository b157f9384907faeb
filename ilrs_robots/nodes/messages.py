"""Builders of standard ROS messages from the project's plain data (shared by nodes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import JointState

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
