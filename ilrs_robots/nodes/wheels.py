"""The wheel parameters of a base driver: names, controller channels, directions."""

from __future__ import annotations

from rclpy.node import Node

from ilrs_robots.drivers.skid_steer_base import Wheel
from ilrs_robots.nodes.params import ParameterError, declare

DEFAULT_WHEELS = ["front_left_wheel_joint", "front_right_wheel_joint",
                  "middle_left_wheel_joint", "middle_right_wheel_joint",
                  "rear_left_wheel_joint", "rear_right_wheel_joint"]
DEFAULT_CHANNELS = ["128:1", "128:2", "129:1", "129:2", "130:1", "130:2"]


def parse_wheels(names: list[str], channels: list[str], directions: list[int],
                 addresses: list[int]) -> list[Wheel]:
    """Wheels from parallel lists; ParameterError names the parameter at fault."""
    if len(names) not in (4, 6):
        raise ParameterError("wheels", f"must name 4 or 6 wheels (got {len(names)})")
    if len(channels) != len(names):
        raise ParameterError("wheel_channels", f"must give one 'address:channel' per wheel "
                             f"({len(names)}), got {len(channels)}")
    if len(directions) != len(names) or any(d not in (1, -1) for d in directions):
        raise ParameterError("wheel_directions", f"must give 1 or -1 per wheel (got "
                             f"{directions!r})")
    wheels, used = [], set()
    for name, channel, direction in zip(names, channels, directions, strict=True):
        sides = [s for s in ("left", "right") if s in name]
        if len(sides) != 1:
            raise ParameterError("wheels", f"entry {name!r} must contain 'left' or 'right'")
        try:
            address_text, motor_text = channel.split(":")
            address, motor = int(address_text), int(motor_text)
        except ValueError:
            raise ParameterError("wheel_channels", f"entry {channel!r} is not "
                                 "'address:channel'") from None
        if address not in addresses or motor not in (1, 2) or (address, motor) in used:
            raise ParameterError("wheel_channels", f"entry {channel!r} must use a listed "
                                 f"address {addresses} and an unused channel 1 or 2")
        used.add((address, motor))
        wheels.append(Wheel(name, address, motor, sides[0] == "left", direction))
    if all(w.left for w in wheels) or not any(w.left for w in wheels):
        raise ParameterError("wheels", "must have wheels on both sides")
    return wheels


def wheels_from_parameters(node: Node, addresses: list[int]) -> list[Wheel]:
    """Declare `wheels`, `wheel_channels` and `wheel_directions`, and parse them."""
    names = declare(node, "wheels", DEFAULT_WHEELS,
                    "Wheel joint names, each containing 'left' or 'right'")
    channels = declare(node, "wheel_channels", DEFAULT_CHANNELS,
                       "Per wheel, the controller address and motor channel ('128:1')")
    directions = declare(node, "wheel_directions", [1] * len(names),
                         "Per wheel, 1 or -1 where the motor is mounted mirrored")
    return parse_wheels(names, channels, directions, addresses)
