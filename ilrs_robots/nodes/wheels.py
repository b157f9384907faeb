"""The wheel parameters of a base driver: names, controller channels, directions."""

from __future__ import annotations

from rclpy.node import Node

from ilrs_robots.core.drive_config import DEFAULT_CHANNELS, DEFAULT_WHEELS, Wheel, parse_wheels
from ilrs_robots.nodes.params import declare


def wheels_from_parameters(node: Node, addresses: list[int]) -> list[Wheel]:
    """Declare `wheels`, `wheel_channels` and `wheel_directions`, and parse them."""
    names = declare(node, "wheels", DEFAULT_WHEELS,
                    "Wheel joint names, each containing 'left' or 'right'")
    channels = declare(node, "wheel_channels", DEFAULT_CHANNELS,
                       "Per wheel, the controller address and motor channel ('128:1')")
    directions = declare(node, "wheel_directions", [1] * len(names),
                         "Per wheel, 1 or -1 where the motor is mounted mirrored")
    return parse_wheels(names, channels, directions, addresses)
