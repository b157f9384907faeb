"""The wheel parameters of a base driver: names, controller channels, directions."""

from __future__ import annotations

from rclpy.node import Node

from ilrs_robots.core.drive_config import (
    DEFAULT_CHANNELS,
    DEFAULT_WHEELS,
    Wheel,
    WheelConfigError,
    parse_wheels,
)
from ilrs_robots.nodes.params import ParameterError, declare

# The ROS parameter that holds each list parse_wheels() checks.
PARAMETER_OF = {"names": "wheels", "channels": "wheel_channels",
                "directions": "wheel_directions"}


def wheels_from_parameters(node: Node, addresses: list[int]) -> list[Wheel]:
    """Declare `wheels`, `wheel_channels` and `wheel_directions` (read-only), and parse them."""
    names = declare(node, "wheels", DEFAULT_WHEELS,
                    "Wheel joint names, each containing 'left' or 'right'", read_only=True)
    channels = declare(node, "wheel_channels", DEFAULT_CHANNELS,
                       "Per wheel, the controller address and motor channel ('128:1')",
                       read_only=True)
    directions = declare(node, "wheel_directions", [1] * len(names),
                         "Per wheel, 1 or -1 where the motor is mounted mirrored",
                         read_only=True)
    try:
        return parse_wheels(names, channels, directions, addresses)
    except WheelConfigError as exc:
        raise ParameterError(PARAMETER_OF[exc.field], exc.problem) from exc
