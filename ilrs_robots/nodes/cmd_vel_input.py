"""The `cmd_vel` subscription base_driver and gazebo_base share: Twist, or TwistStamped.

With `enable_stamped_cmd_vel` (as Nav2 on Jazzy and later, and diff_drive_controller, publish
it) each command comes with its stamp's age on the node's clock; a zero stamp (a publisher
that does not stamp) is taken as "now" and said once. The node decides what is stale.
"""

from __future__ import annotations

from collections.abc import Callable

from geometry_msgs.msg import Twist, TwistStamped
from rclpy.node import Node
from rclpy.time import Time

TwistHandler = Callable[[Twist, "float | None"], None]


def subscribe_cmd_vel(node: Node, stamped: bool, on_twist: TwistHandler) -> str:
    """Subscribe `node` to `cmd_vel` as TwistStamped (`stamped`) or Twist; `on_twist(twist,
    age)` gets the age of the stamp in seconds, or None (unstamped, or a zero stamp).
    Returns the message type's name for the node's start-up line."""
    if not stamped:
        node.create_subscription(Twist, "cmd_vel", lambda msg: on_twist(msg, None), 10)
        return "Twist"
    warned = [False]

    def on_stamped(msg: TwistStamped) -> None:
        clock = node.get_clock()
        stamp = Time.from_msg(msg.header.stamp, clock_type=clock.clock_type)
        if stamp.nanoseconds == 0:
            if not warned[0]:
                warned[0] = True
                node.get_logger().warning("cmd_vel (TwistStamped) with a zero stamp: taken as "
                                          "received now (this is logged once)")
            on_twist(msg.twist, None)
            return
        on_twist(msg.twist, (clock.now() - stamp).nanoseconds / 1e9)

    node.create_subscription(TwistStamped, "cmd_vel", on_stamped, 10)
    return "TwistStamped"
