"""Commands of the ground console: validation of what an operator posts, and each command's
life (sent, received, executing, done, refused, failed, cancelled) with its timestamps.

Only bounded commands exist: a distance, an angle, a point, or a velocity with an expiry. A
body that is not exactly one of them (unknown kind, a missing, non-finite or out-of-range
number, an unknown field, an unknown robot) is refused here with a reason and never reaches a
topic. Every command, accepted or refused, goes to the audit log (JSON lines) with its user.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROVER_KINDS = ("drive", "turn", "goto", "velocity", "stop", "estop", "release",
               "waypoints", "inspect", "cancel")
BUILDER_KINDS = ("estop", "release", "print", "pause", "resume", "cancel")
MISSION_KINDS = ("waypoints", "inspect", "print")  # actions on the robot; `cancel` ends them
MAX_WAYPOINTS = 50
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./")
TERMINAL = ("done", "refused", "failed", "cancelled")
ROBOT_STATES = ("received", "executing", *TERMINAL)
# a state of lower rank arriving after one of higher rank (the link reorders) is ignored
RANK = {"queued": 0, "sent": 1, "received": 2, "executing": 3,
        **{state: 4 for state in TERMINAL}}


class CommandError(ValueError):
    """A command body that is refused; the message says why (HTTP 400)."""


@dataclass(frozen=True)
class Limits:
    """Bounds of the console's commands (the robot checks its own too)."""

    max_distance: float = 10.0     # m, drive
    max_angle_deg: float = 360.0   # turn
    max_speed: float = 0.5         # m/s, drive and goto speed caps, velocity's linear
    max_angular: float = 1.0       # rad/s, velocity's angular
    max_duration: float = 10.0     # s, velocity's expiry
    max_coordinate: float = 5000.0  # m, goto


# kind -> (required numeric fields, optional numeric fields)
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "drive": (("distance",), ("speed",)),
    "turn": (("angle_deg",), ("speed",)),
    "goto": (("x", "y"), ("speed",)),
    "velocity": (("linear", "angular", "duration"), ()),
    "stop": ((), ()),
    "estop": ((), ()),
    "release": ((), ()),
    "print": ((), ("layer_height",)),
    "pause": ((), ()),
    "resume": ((), ()),
    "cancel": ((), ()),
    "waypoints": ((), ()),
    "inspect": ((), ()),
}
# kind -> its one non-numeric field (checked by _text or _points)
TEXT_FIELDS = {"inspect": "round", "print": "design"}


def _number(body: dict, name: str) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError(f"{name} must be a number, not {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise CommandError(f"{name} must be finite")
    return value


def _bounded(name: str, value: float, low: float, high: float, unit: str) -> float:
    if not low <= value <= high:
        raise CommandError(f"{name} {value:g} {unit} is out of range [{low:g}, {high:g}]")
    return value


def _text(body: dict, name: str) -> str:
    """A name or path on the robot (a round, a design): no spaces, no '..', 1..200 chars."""
    value = body.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise CommandError(f"{name} must be a non-empty string of at most 200 characters")
    if not set(value) <= NAME_CHARS or ".." in value:
        raise CommandError(f"{name} {value!r}: only letters, digits and _-./ (no '..')")
    return value


def _points(body: dict, limits: Limits) -> list[list[float]]:
    """Waypoints: 1..MAX_WAYPOINTS [x, y] pairs of finite, bounded numbers."""
    points = body.get("points")
    if not isinstance(points, list) or not 0 < len(points) <= MAX_WAYPOINTS:
        raise CommandError(f"points must be a list of 1 to {MAX_WAYPOINTS} [x, y] pairs")
    out = []
    for i, point in enumerate(points):
        if not isinstance(point, list) or len(point) != 2:
            raise CommandError(f"points[{i}] must be [x, y]")
        xy = [_number({"x": v}, "x") for v in point]
        for v in xy:
            _bounded(f"points[{i}]", v, -limits.max_coordinate, limits.max_coordinate, "m")
        out.append(xy)
    return out


def parse_command(body: Any, kinds: tuple[str, ...], limits: Limits) -> tuple[str, dict]:
    """(kind, parameters) of a valid command body; CommandError naming the fault otherwise."""
    if not isinstance(body, dict):
        raise CommandError("the body must be a JSON object")
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in FIELDS:
        raise CommandError(f"unknown kind {kind!r}: one of {list(kinds)}")
    if kind not in kinds:
        raise CommandError(f"this robot takes no {kind!r} command: one of {list(kinds)}")
    required, optional = FIELDS[kind]
    extra = {"points"} if kind == "waypoints" else {TEXT_FIELDS[kind]} if kind in TEXT_FIELDS \
        else set()
    unknown = sorted(set(body) - {"kind", *required, *optional, *extra})
    if unknown:
        raise CommandError(f"unknown field(s) for {kind!r}: {unknown}")
    missing = [name for name in required if name not in body]
    if missing:
        raise CommandError(f"{kind!r} needs {missing}")
    p = {name: _number(body, name) for name in (*required, *optional) if name in body}
    if kind == "drive":
        _bounded("distance", abs(p["distance"]), 0.01, limits.max_distance, "m")
    elif kind == "turn":
        _bounded("angle_deg", abs(p["angle_deg"]), 0.1, limits.max_angle_deg, "deg")
    elif kind == "goto":
        for name in ("x", "y"):
            _bounded(name, p[name], -limits.max_coordinate, limits.max_coordinate, "m")
    elif kind == "velocity":
        _bounded("linear", p["linear"], -limits.max_speed, limits.max_speed, "m/s")
        _bounded("angular", p["angular"], -limits.max_angular, limits.max_angular, "rad/s")
        _bounded("duration", p["duration"], 0.1, limits.max_duration, "s")
    elif kind == "waypoints":
        p["points"] = _points(body, limits)
    elif kind in TEXT_FIELDS:
        p[TEXT_FIELDS[kind]] = _text(body, TEXT_FIELDS[kind])
        if "layer_height" in p:
            _bounded("layer_height", p["layer_height"], 0.005, 0.5, "m")
    if "speed" in p:
        top = limits.max_angular if kind == "turn" else limits.max_speed
        _bounded("speed", p["speed"], 0.01, top, "rad/s" if kind == "turn" else "m/s")
    return kind, p


@dataclass
class Command:
    """One command and its life."""

    id: str
    robot: str
    kind: str
    params: dict
    user: str
    state: str = "sent"
    reason: str = ""
    detail: str = ""  # the latest progress of a running mission (feedback)
    history: list[tuple[str, float]] = field(default_factory=list)

    def to_json(self) -> dict:
        """The record as the API and the WebSocket show it."""
        return {"type": "command", "robot": self.robot, "id": self.id, "kind": self.kind,
                "params": self.params, "user": self.user, "state": self.state,
                "reason": self.reason, "detail": self.detail,
                "history": [{"state": s, "t": round(t, 3)} for s, t in self.history]}


class CommandBook:
    """The console's commands (the newest `keep`), their state changes, and the audit log.

    `on_change(command)` is called after each change, outside the lock.
    """

    def __init__(self, audit_path: str | Path | None, keep: int = 500,
                 on_change: Callable[[Command], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.audit_path = Path(audit_path).expanduser() if audit_path else None
        if self.audit_path:
            self.audit_path.parent.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self.on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._commands: OrderedDict[str, Command] = OrderedDict()

    def audit(self, event: str, **fields: Any) -> None:
        """Append one event to the audit log."""
        if not self.audit_path:
            return
        line = json.dumps({"t": round(self._clock(), 3), "event": event, **fields},
                          default=str, sort_keys=True)
        with self._lock, open(self.audit_path, "a") as out:
            out.write(line + "\n")

    def create(self, robot: str, kind: str, params: dict, user: str,
               state: str = "sent") -> Command:
        """A new command in its first state, audited."""
        command = Command(uuid.uuid4().hex[:12], robot, kind, params, user, state)
        command.history.append((state, self._clock()))
        with self._lock:
            self._commands[command.id] = command
            while len(self._commands) > self.keep:
                self._commands.popitem(last=False)
        self.audit("command", id=command.id, robot=robot, kind=kind, params=params, user=user,
                   state=state)
        self._changed(command)
        return command

    def get(self, command_id: str) -> Command | None:
        """A command by id, if still kept."""
        with self._lock:
            return self._commands.get(command_id)

    def recent(self, robot: str | None = None, count: int = 50) -> list[Command]:
        """The newest commands, newest last."""
        with self._lock:
            commands = [c for c in self._commands.values() if robot in (None, c.robot)]
        return commands[-count:]

    def update(self, command_id: str, state: str, reason: str = "",
               t: float | None = None) -> Command | None:
        """Move a command to `state`: only forwards (a terminal state is final)."""
        with self._lock:
            command = self._commands.get(command_id)
            if command is None or RANK[state] <= RANK[command.state]:
                return None
            command.state, command.reason = state, reason or command.reason
            command.history.append((state, self._clock() if t is None else t))
        self.audit("state", id=command_id, state=state, reason=reason)
        self._changed(command)
        return command

    def note(self, command_id: str, detail: str) -> None:
        """Record a running command's progress (not audited: feedback is frequent)."""
        with self._lock:
            command = self._commands.get(command_id)
            if command is None or command.state in TERMINAL or command.detail == detail:
                return
            command.detail = detail
        self._changed(command)

    def _changed(self, command: Command) -> None:
        if self.on_change:
            self.on_change(command)
