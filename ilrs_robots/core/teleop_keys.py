"""Keys of the terminal teleop (`ilrs teleop`) turned into bounded motion commands, behind a
deadman. Pure: the caller passes the time and sends what comes out.

A terminal reports key presses but never key releases, so a deadman cannot be "held" as on a
joystick (and a held key's auto-repeat stops as soon as another key is pressed). The deadman
here is a key that ARMS motion for `arm_time` seconds after its LAST press:

- motion keys (drive i/k, turn j/l) send a command only while armed; disarmed, they are
  refused with a hint and nothing is sent;
- each press of the deadman key re-arms for `arm_time` s from that press; motion keys do not
  extend it, so an operator who stops pressing the deadman (walks away, drops the laptop)
  loses motion within `arm_time` s;
- when the window runs out and a motion command was sent during it, a `stop` is sent
  (the rover may still be driving a step); quitting always sends a `stop`;
- stop keys (space, s) send a `stop` at any time, armed or not: stopping is never gated.

Every motion is bounded by itself (a distance or an angle), and the rover's
`motion_commands` node still checks each against its hazard maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ilrs_robots.core.motion_commands import DRIVE, STOP, TURN, Motion

QUIT_KEYS = ("q", "\x03", "\x04")  # q, Ctrl-C, Ctrl-D
STOP_KEYS = (" ", "s")
HELP_KEYS = ("h", "?")
DRIVE_KEYS = {"i": 1.0, "k": -1.0}  # forwards, backwards
TURN_KEYS = {"j": 1.0, "l": -1.0}   # counter-clockwise (left), clockwise (right)
MAX_STEP = 10.0        # m: motion_commands' default max_distance
MAX_ANGLE_DEG = 360.0  # motion_commands' default max_angle


@dataclass(frozen=True)
class TeleopConfig:
    """Step sizes and the deadman of the terminal teleop."""

    step: float = 0.5          # m per drive key press
    angle_deg: float = 15.0    # degrees per turn key press
    speed: float = 0.0         # cap on |speed| of each command (m/s, rad/s); 0: the rover's
    arm_time: float = 2.0      # s that one press of the deadman key arms motion
    deadman: str = "d"

    def check(self) -> None:
        """ValueError naming the first setting out of range."""
        if not (math.isfinite(self.step) and 0.01 <= self.step <= MAX_STEP):
            raise ValueError(f"step {self.step:g} m: must be in [0.01, {MAX_STEP:g}]")
        if not (math.isfinite(self.angle_deg) and 0.1 <= self.angle_deg <= MAX_ANGLE_DEG):
            raise ValueError(f"angle {self.angle_deg:g} deg: must be in [0.1, "
                             f"{MAX_ANGLE_DEG:g}]")
        if not (math.isfinite(self.speed) and 0.0 <= self.speed <= 5.0):
            raise ValueError(f"speed {self.speed:g}: must be in [0, 5] (0: the rover's default)")
        if not (math.isfinite(self.arm_time) and 0.2 <= self.arm_time <= 30.0):
            raise ValueError(f"arm time {self.arm_time:g} s: must be in [0.2, 30]")
        taken = set(QUIT_KEYS + STOP_KEYS + HELP_KEYS) | set(DRIVE_KEYS) | set(TURN_KEYS)
        if len(self.deadman) != 1 or self.deadman in taken or not self.deadman.isprintable():
            raise ValueError(f"deadman key {self.deadman!r}: must be one printable key not "
                             f"used by another function")


@dataclass(frozen=True)
class Outcome:
    """What one key press or clock tick asks of the caller."""

    send: Motion | None = None  # a command to publish
    say: str = ""               # a line for the operator
    quit: bool = False


@dataclass
class TeleopKeys:
    """The key and deadman state machine. Call `key` for each key and `tick` periodically."""

    config: TeleopConfig = field(default_factory=TeleopConfig)
    armed_until: float = -math.inf
    moved: bool = False  # a motion was sent in the current armed window

    def __post_init__(self) -> None:
        self.config.check()

    def armed(self, now: float) -> bool:
        """Whether motion keys send commands at `now` (monotonic seconds)."""
        return now < self.armed_until

    def remaining(self, now: float) -> float:
        """Seconds of the armed window left (0 when disarmed)."""
        return max(0.0, self.armed_until - now)

    def _motion(self, kind: str, **values: float) -> Motion:
        return Motion(kind, speed=self.config.speed, **values)

    def key(self, key: str, now: float) -> list[Outcome]:
        """The outcomes of pressing `key` at `now`: an expired window first, then the key's."""
        out = self.tick(now)
        c = self.config
        if key in QUIT_KEYS:
            self.armed_until, self.moved = -math.inf, False
            out.append(Outcome(self._motion(STOP), "quit: stop", quit=True))
        elif key in STOP_KEYS:
            out.append(Outcome(self._motion(STOP), "stop"))
        elif key == c.deadman:
            was = self.armed(now)
            self.armed_until = now + c.arm_time
            if not was:
                out.append(Outcome(say=f"armed for {c.arm_time:g} s (press "
                                       f"'{c.deadman}' again to stay armed)"))
        elif key in DRIVE_KEYS or key in TURN_KEYS:
            if not self.armed(now):
                out.append(Outcome(say=f"disarmed: press '{c.deadman}' (deadman) first; "
                                       f"nothing sent"))
            else:
                self.moved = True
                if key in DRIVE_KEYS:
                    motion = self._motion(DRIVE, distance=DRIVE_KEYS[key] * c.step)
                    text = f"drive {motion.distance:+.2f} m"
                else:
                    motion = self._motion(TURN, angle=math.radians(TURN_KEYS[key] * c.angle_deg))
                    text = f"turn {TURN_KEYS[key] * c.angle_deg:+.1f} deg"
                out.append(Outcome(motion, text))
        elif key in HELP_KEYS:
            out.append(Outcome(say=help_text(c)))
        return out

    def tick(self, now: float) -> list[Outcome]:
        """The outcome of the clock alone: when the armed window has run out after a motion
        was sent in it, a `stop` (once)."""
        if self.moved and not self.armed(now):
            self.moved = False
            return [Outcome(self._motion(STOP), "disarmed (deadman released): stop")]
        return []


def help_text(config: TeleopConfig) -> str:
    """The key map, for the operator."""
    return (f"keys: '{config.deadman}' deadman (arms motion for {config.arm_time:g} s after its "
            f"last press) | i/k drive +/-{config.step:g} m | j/l turn left/right "
            f"{config.angle_deg:g} deg | space or s stop (always) | h help | q quit (sends stop)")
