"""The drive parameters base_driver and gazebo_base share: one declaration, one meaning.

`cmd_timeout`, `enable_stamped_cmd_vel`, the wheel geometry and the speed and acceleration
limits (`DRIVE_LIMITS`, live), declared with the ranges and descriptions ROS users see in
`ros2 param describe`.
"""

from __future__ import annotations

import math
from typing import Any

from rclpy.node import Node

from ilrs_robots.nodes.params import declare

DRIVE_LIMITS = {  # name: (default, description, range); live, applied by the nodes
    "max_linear": (0.5, "Largest forward/backward speed (m/s)", (0.0, 20.0)),
    "max_angular": (0.8, "Largest turn rate (rad/s)", (0.0, 20.0)),
    "max_wheel_speed": (0.6, "Largest wheel rim speed (m/s)", (0.0, 20.0)),
    "max_accel": (0.5, "Wheel acceleration of moves (m/s^2)", (0.0, 50.0)),
    "stop_accel": (1.5, "Deceleration of stops: timeout, estop, lost link (m/s^2)",
                   (0.0, 100.0)),
}


def positive(x: float) -> bool:
    """True for a finite number over zero (a parameter check)."""
    return math.isfinite(x) and x > 0.0


def declare_drive(node: Node) -> dict[str, Any]:
    """Declare the shared drive parameters on `node`; their values by name."""
    p = {
        "cmd_timeout": declare(node, "cmd_timeout", 0.5,
                               "Stop the wheels when no cmd_vel came for this long (s)",
                               range=(0.05, 5.0)),
        "enable_stamped_cmd_vel": declare(
            node, "enable_stamped_cmd_vel", False,
            "cmd_vel is geometry_msgs/TwistStamped (as Nav2 publishes it), not Twist",
            read_only=True),
        "wheel_radius": declare(node, "wheel_radius", 0.25, "Wheel radius (m)", positive,
                                "> 0", range=(0.0, 10.0), read_only=True),
        "track_width": declare(node, "track_width", 1.2,
                               "Distance between left and right wheel centres (m)",
                               positive, "> 0", range=(0.0, 50.0), read_only=True),
        "effective_track_width": declare(
            node, "effective_track_width", 0.0,
            "Track width seen by turns of a skid steer, wider than the wheels' because they "
            "scrub (m); used for commands and odometry; 0: track_width",
            range=(0.0, 100.0), read_only=True),
    }
    for name, (default, text, bounds) in DRIVE_LIMITS.items():
        p[name] = declare(node, name, default, text, positive, "> 0", range=bounds)
    return p
