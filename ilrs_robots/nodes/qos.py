"""The QoS profiles our topics share, defined once so that publishers and subscribers match.

``LATCHED`` is what ROS calls a latched topic (reliable, transient local, the last message
kept for late joiners): estop, maps, the robot description, states. ``MOTION_STATUSES`` keeps
the last 50 motion-command statuses for a console that (re)connects. ``TF_STATIC`` is a
/tf_static subscription as tf2's listener makes it (many static broadcasters, one each).
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy


def latched(depth: int = 1) -> QoSProfile:
    """Reliable, transient local, keeping the last ``depth`` messages."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


LATCHED = latched(1)
MOTION_STATUSES = latched(50)
TF_STATIC = latched(100)
