"""Which controller channel turns which wheel: shared by the base driver and the simulator."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WHEELS = ["front_left_wheel_joint", "front_right_wheel_joint",
                  "middle_left_wheel_joint", "middle_right_wheel_joint",
                  "rear_left_wheel_joint", "rear_right_wheel_joint"]
DEFAULT_CHANNELS = ["128:1", "128:2", "129:1", "129:2", "130:1", "130:2"]


class WheelConfigError(ValueError):
    """A wheel list that cannot drive a base; `field` is "names", "channels" or "directions"."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Wheel:
    """One driven wheel: the controller channel that turns it and its side."""

    name: str
    address: int
    channel: int  # 1 (M1) or 2 (M2)
    left: bool
    direction: int = 1  # -1 where the motor is mounted mirrored


def parse_wheels(names: list[str], channels: list[str], directions: list[int],
                 addresses: list[int]) -> list[Wheel]:
    """Wheels from parallel lists; WheelConfigError names the list at fault."""
    if len(names) not in (4, 6):
        raise WheelConfigError("names", f"must name 4 or 6 wheels (got {len(names)})")
    if len(channels) != len(names):
        raise WheelConfigError("channels", f"must give one 'address:channel' per wheel "
                             f"({len(names)}), got {len(channels)}")
    if len(directions) != len(names) or any(d not in (1, -1) for d in directions):
        raise WheelConfigError("directions", f"must give 1 or -1 per wheel (got "
                             f"{directions!r})")
    wheels, used = [], set()
    for name, channel, direction in zip(names, channels, directions, strict=True):
        sides = [s for s in ("left", "right") if s in name]
        if len(sides) != 1:
            raise WheelConfigError("names", f"entry {name!r} must contain 'left' or 'right'")
        try:
            address_text, motor_text = channel.split(":")
            address, motor = int(address_text), int(motor_text)
        except ValueError:
            raise WheelConfigError("channels", f"entry {channel!r} is not "
                                 "'address:channel'") from None
        if address not in addresses or motor not in (1, 2) or (address, motor) in used:
            raise WheelConfigError("channels", f"entry {channel!r} must use a listed "
                                 f"address {addresses} and an unused channel 1 or 2")
        used.add((address, motor))
        wheels.append(Wheel(name, address, motor, sides[0] == "left", direction))
    if all(w.left for w in wheels) or not any(w.left for w in wheels):
        raise WheelConfigError("names", "must have wheels on both sides")
    return wheels
