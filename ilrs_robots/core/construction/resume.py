"""Resuming a job on a controller that restarted: the settings to replay first.

A Marlin controller that resets (power loss, watchdog, over-current) forgets everything the
job set up before the line it stopped at: relative extrusion (``M83``), the positioning mode,
units, temperatures, fan, feed and flow overrides, the laser's power, the extruder's position
and where the nozzle is. Sending the next job line to it as is would, at best, extrude the
wrong amount; at worst drag a bead from the home corner across the structure. This module
reads the job up to the resume point and writes the preamble a host sends before it, as
"resume from line" tools on Earth do:

1. lift the nozzle clear of the structure (relative, before homing: the position is unknown);
2. home X and Y, then Z (a gantry over a structure homes Z upward, to its top endstop; one
   that homes downward needs Marlin's Z_SAFE_HOMING point outside the print area);
3. units, heaters (waiting for them), fan, overrides;
4. travel above the resume point, lower onto it, set the extruder's position (``G92 E``);
5. the job's positioning and extrusion modes, its feed rate, the laser's power last: the
   laser must not fire during the travel.

A job that shifts its X, Y or Z coordinates with ``G92`` cannot be resumed this way; it is
refused (ValueError) rather than resumed in the wrong place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ilrs_robots.core.construction.gcode import MOTION, _num, parse_command


@dataclass
class MachineState:
    """What the firmware had been told by a prefix of a job (logical coordinates, mm)."""

    position: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    e: float = 0.0
    relative: bool = False  # G91
    relative_e: bool = False  # M83
    inches: bool = False  # G20
    feed: float | None = None  # mm/min (or in/min under G20)
    heaters: dict[str, str] = field(default_factory=dict)  # "M104"/"M140" -> S value text
    fan: str | None = None  # the last M106/M107
    feed_override: str | None = None  # M220
    flow_override: str | None = None  # M221
    laser: str | None = None  # the last M3/M4 with its power, None once M5
    moved: bool = False  # any motion so far
    shifted: str | None = None  # the first G92 on X, Y or Z, if any


def machine_state(commands: Sequence[str], upto: int) -> MachineState:
    """The state after the first ``upto`` commands of a job (each a checked G-code line)."""
    s = MachineState()
    for text in commands[:upto]:
        c = parse_command(text)
        if c is None:
            continue
        code = c.code
        if code in MOTION:
            for k, axis in enumerate("XYZ"):
                value = c.get(axis)
                if value is not None:
                    s.position[k] = s.position[k] + value if s.relative else value
                    s.moved = True
            e = c.get("E")
            if e is not None:
                s.e = s.e + e if (s.relative or s.relative_e) else e
            if c.get("F") is not None:
                s.feed = c.get("F")
        elif code == "G28":
            homed = [a for a in "XYZ" if c.has(a)] or list("XYZ")
            for k, axis in enumerate("XYZ"):
                if axis in homed:
                    s.position[k] = 0.0
        elif code == "G92":
            if any(c.has(a) for a in "XYZ") and s.shifted is None:
                s.shifted = text
            if c.get("E") is not None:
                s.e = float(c.get("E") or 0.0)
            elif not c.params:
                s.e = 0.0
        elif code in ("G90", "G91"):
            s.relative = code == "G91"
        elif code in ("M82", "M83"):
            s.relative_e = code == "M83"
        elif code in ("G20", "G21"):
            s.inches = code == "G20"
        elif code in ("M104", "M109", "M140", "M190") and c.get("S") is not None:
            s.heaters["M104" if code in ("M104", "M109") else "M140"] = _num(c.get("S") or 0.0)
        elif code in ("M106", "M107"):
            s.fan = c.format()
        elif code == "M220" and c.has("S"):
            s.feed_override = c.format()
        elif code == "M221" and c.has("S"):
            s.flow_override = c.format()
        elif code in ("M3", "M4"):
            s.laser = c.format()
        elif code == "M5":
            s.laser = None
    return s


def resume_preamble(commands: Sequence[str], upto: int, clearance_mm: float = 20.0,
                    travel_feed: float = 6000.0) -> list[str]:
    """The commands that bring a restarted controller to where the job's line ``upto`` (the
    last one executed, 1-based; 0 = none) left it. Empty when nothing needs restoring."""
    if upto <= 0:
        return []
    s = machine_state(commands, upto)
    if s.shifted is not None:
        raise ValueError(f"the job shifts its coordinates ({s.shifted!r}) before line "
                         f"{upto}: it cannot be resumed on a controller that restarted")
    x, y, z = s.position
    lift = _num(clearance_mm / 25.4 if s.inches else clearance_mm)
    out = ["M5"] if any(c.split()[0] in ("M3", "M4") for c in commands[:upto]) else []
    out += ["G20" if s.inches else "G21", "G91", f"G0 Z{lift}", "G90", "G28 X Y", "G28 Z"]
    for code, value in sorted(s.heaters.items()):
        out.append(f"{'M109' if code == 'M104' else 'M190'} S{value}")
    out += [line for line in (s.fan, s.feed_override, s.flow_override) if line]
    if s.moved:
        z_clear = z + (clearance_mm / 25.4 if s.inches else clearance_mm)
        out += [f"G0 Z{_num(round(z_clear, 4))} F{_num(travel_feed)}",
                f"G0 X{_num(round(x, 4))} Y{_num(round(y, 4))}",
                f"G0 Z{_num(round(z, 4))}"]
    out.append(f"G92 E{_num(round(s.e, 5))}")
    out.append("G91" if s.relative else "G90")
    out.append("M83" if s.relative_e else "M82")
    if s.feed is not None:
        out.append(f"G1 F{_num(s.feed)}")
    if s.laser is not None:
        out.append(s.laser)
    return out
