"""G-code for a Marlin controller: parsing and checking files, formatting commands.

A program is read whole and checked before anything is sent: a malformed line is refused with
its line number and the reason (:class:`GcodeError`). Comments (``;`` to the end of the line,
``(...)`` in parentheses) are dropped; ``;LAYER:<n>`` comments (as slicers write them) set the
layer of the commands that follow. Line numbers and checksums belong to the host
(``protocols/marlin.py``): a file that carries its own ``N`` words or ``*`` checksums, or
``M110``, is refused.

Units: whatever the program says (the slicer writes ``G21``, millimetres); the estimator
(:func:`estimate`) assumes millimetres and mm/min feed rates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ilrs_robots.core.construction.designs import PrinterConfig

MAX_LINE_LENGTH = 90  # leaves room for "N<n> " and "*<cs>" within Marlin's 96-byte buffer
TEXT_COMMANDS = frozenset({"M117", "M118", "M23", "M28", "M30", "M32", "M928"})
HOST_COMMANDS = frozenset({"M110"})  # line numbering belongs to the host
MOTION = frozenset({"G0", "G1", "G2", "G3"})
SUPPORTED = frozenset({
    "G0", "G1", "G2", "G3", "G4", "G20", "G21", "G28", "G90", "G91", "G92",
    "M3", "M4", "M5", "M17", "M18", "M82", "M83", "M84", "M104", "M105", "M106", "M107",
    "M109", "M114", "M117", "M118", "M140", "M155", "M190", "M220", "M221", "M400",
})
_WORD = re.compile(r"([A-Za-z])\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)?")
_LAYER = re.compile(r";\s*LAYER\s*:\s*(-?\d+)", re.IGNORECASE)


class GcodeError(ValueError):
    """A malformed G-code line: ``line`` is its 1-based number in the file."""

    def __init__(self, line: int, reason: str, text: str = "") -> None:
        shown = f": {text.strip()[:60]!r}" if text.strip() else ""
        super().__init__(f"line {line}: {reason}{shown}")
        self.line = line
        self.reason = reason
        self.text = text


@dataclass(frozen=True)
class Command:
    """One G-code command: ``code`` such as ``G1``, its parameters in order, free text."""

    code: str
    params: tuple[tuple[str, float | None], ...] = ()
    text: str | None = None

    def get(self, letter: str, default: float | None = None) -> float | None:
        """The value of parameter ``letter`` (None for a bare flag such as ``G28 X``)."""
        for name, value in self.params:
            if name == letter:
                return value
        return default

    def has(self, letter: str) -> bool:
        """True if parameter ``letter`` is present."""
        return any(name == letter for name, _ in self.params)

    def format(self) -> str:
        """The canonical text of the command (no comment, no line number)."""
        if self.text is not None:
            return f"{self.code} {self.text}" if self.text else self.code
        words = [self.code]
        for name, value in self.params:
            words.append(name if value is None else f"{name}{_num(value)}")
        return " ".join(words)


def _num(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.5f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


@dataclass(frozen=True)
class Line:
    """A command of a program, with its 1-based line number in the file and its layer."""

    number: int
    command: Command
    layer: int


@dataclass
class Program:
    """The commands of a G-code file, in order."""

    lines: list[Line] = field(default_factory=list)

    @property
    def commands(self) -> list[str]:
        """The text of each command, as the host sends it."""
        return [ln.command.format() for ln in self.lines]

    @property
    def layers_total(self) -> int:
        """Number of layers (highest ``;LAYER:`` index + 1; 1 without layer comments)."""
        return max((ln.layer for ln in self.lines), default=0) + 1

    def __len__(self) -> int:
        return len(self.lines)


def parse_command(text: str, line: int = 1, firmware: bool = False) -> Command | None:
    """Parse one line of G-code; None for a blank or comment-only line.

    Raises GcodeError (naming ``line``) for anything Marlin would not take as one command.
    ``firmware`` parses as the controller does: it takes ``M110`` (the host's numbering).
    """
    raw = text
    if len(raw.rstrip("\r\n")) > 4 * MAX_LINE_LENGTH:
        raise GcodeError(line, f"line longer than {4 * MAX_LINE_LENGTH} characters")
    if not raw.isascii():
        raise GcodeError(line, "non-ASCII character", raw)
    if any(ord(c) < 32 and c not in "\t\r\n" for c in raw):
        raise GcodeError(line, "control character", raw)
    body = raw.split(";", 1)[0]
    body = _strip_paren_comments(body, line, raw).strip()
    if not body:
        return None
    if "*" in body:
        raise GcodeError(line, "checksum '*' in the file (the host adds line numbers and "
                               "checksums)", raw)
    if len(body) > MAX_LINE_LENGTH:
        raise GcodeError(line, f"command longer than {MAX_LINE_LENGTH} characters", raw)
    head = re.match(r"([A-Za-z])\s*(\d+)(?:\.(\d+))?", body)
    if head is None:
        raise GcodeError(line, "does not start with a command word (G, M or T and a number)",
                         raw)
    letter = head.group(1).upper()
    if letter == "N":
        raise GcodeError(line, "line number 'N' in the file (the host adds line numbers)", raw)
    if letter not in "GMT":
        raise GcodeError(line, f"does not start with a command word (G, M or T), but with "
                               f"{letter!r}", raw)
    code = f"{letter}{int(head.group(2))}"
    if head.group(3) is not None:
        code += f".{int(head.group(3))}"
    rest = body[head.end():]
    if code in HOST_COMMANDS and not firmware:
        raise GcodeError(line, f"{code} in the file (line numbering belongs to the host)", raw)
    if code in TEXT_COMMANDS:
        return Command(code, (), rest.strip())
    if letter != "T" and code not in SUPPORTED and not (firmware and code in HOST_COMMANDS):
        raise GcodeError(line, f"unsupported command {code}", raw)
    params: list[tuple[str, float | None]] = []
    pos = 0
    rest_stripped = rest
    while pos < len(rest_stripped):
        if rest_stripped[pos].isspace():
            pos += 1
            continue
        match = _WORD.match(rest_stripped, pos)
        if match is None:
            bad = rest_stripped[pos]
            raise GcodeError(line, f"unexpected character {bad!r} in parameters", raw)
        name = match.group(1).upper()
        if name in "GMTN" and not (firmware and code == "M110" and name == "N"):
            raise GcodeError(line, f"a second command word {name!r} on one line", raw)
        if match.group(2) is None and pos + 1 < len(rest_stripped) and \
                not rest_stripped[pos + 1].isspace():
            raise GcodeError(line, f"parameter {name} has a malformed value", raw)
        value = None if match.group(2) is None else float(match.group(2))
        if value is not None and not math.isfinite(value):
            raise GcodeError(line, f"parameter {name} is not finite", raw)
        if any(p == name for p, _ in params):
            raise GcodeError(line, f"parameter {name} given twice", raw)
        params.append((name, value))
        pos = match.end()
    command = Command(code, tuple(params))
    _check_semantics(command, line, raw)
    return command


def _strip_paren_comments(body: str, line: int, raw: str) -> str:
    out, depth = [], 0
    for c in body:
        if c == "(":
            if depth:
                raise GcodeError(line, "nested '(' comment", raw)
            depth = 1
        elif c == ")":
            if not depth:
                raise GcodeError(line, "')' without '('", raw)
            depth = 0
        elif not depth:
            out.append(c)
    if depth:
        raise GcodeError(line, "unclosed '(' comment", raw)
    return "".join(out)


def _check_semantics(command: Command, line: int, raw: str) -> None:
    code = command.code
    if code in MOTION:
        for name, value in command.params:
            if name not in "XYZEFSIJR":
                raise GcodeError(line, f"{code} does not take parameter {name}", raw)
            if value is None:
                raise GcodeError(line, f"{code} parameter {name} has no value", raw)
        feed = command.get("F")
        if feed is not None and feed <= 0:
            raise GcodeError(line, f"feed rate F must be positive, got {_num(feed)}", raw)
        if code in ("G2", "G3") and not (command.has("I") or command.has("J")
                                         or command.has("R")):
            raise GcodeError(line, f"{code} needs I/J or R", raw)
    elif code in ("M3", "M4"):
        power = command.get("S")
        if power is not None and power < 0:
            raise GcodeError(line, f"laser power S must be >= 0, got {_num(power)}", raw)
    elif code == "G4":
        for name in ("P", "S"):
            value = command.get(name)
            if value is not None and value < 0:
                raise GcodeError(line, f"dwell {name} must be >= 0", raw)
    elif code in ("M104", "M109", "M140", "M190"):
        value = command.get("S")
        if value is not None and not 0 <= value <= 500:
            raise GcodeError(line, f"temperature S must be in 0..500, got {_num(value)}", raw)


def parse_program(text: str, max_errors: int = 20) -> Program:
    """Parse a whole file; raises GcodeError for the first malformed line.

    The exception's ``errors`` attribute lists up to ``max_errors`` of them.
    """
    program = Program()
    errors: list[GcodeError] = []
    layer = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        mark = _LAYER.search(raw)
        if mark is not None:
            layer = max(0, int(mark.group(1)))
        try:
            command = parse_command(raw, number)
        except GcodeError as exc:
            errors.append(exc)
            if len(errors) >= max_errors:
                break
            continue
        if command is not None:
            program.lines.append(Line(number, command, layer))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more malformed lines)" if len(errors) > 1 else ""
        exc = GcodeError(first.line, first.reason + more, first.text)
        exc.errors = errors  # type: ignore[attr-defined]
        raise exc
    return program


def check_bounds(program: Program, low: Iterable[float], high: Iterable[float]) -> None:
    """Refuse a program whose absolute moves leave the box ``low``..``high`` (mm, X Y Z).

    Relative moves (``G91``) are integrated; ``G92`` shifts the origin as the firmware does.
    Raises GcodeError naming the first move outside.
    """
    lo, hi = np.asarray(list(low), float), np.asarray(list(high), float)
    pos = np.zeros(3)
    offset = np.zeros(3)
    relative = False
    for ln in program.lines:
        c = ln.command
        if c.code == "G90":
            relative = False
        elif c.code == "G91":
            relative = True
        elif c.code == "G92":
            for i, axis in enumerate("XYZ"):
                value = c.get(axis)
                if value is not None:
                    offset[i] = pos[i] - value
        elif c.code == "G28":
            pos[:] = 0.0
            offset[:] = 0.0
        elif c.code in MOTION:
            for i, axis in enumerate("XYZ"):
                value = c.get(axis)
                if value is None:
                    continue
                pos[i] = pos[i] + value if relative else value + offset[i]
            if np.any(pos < lo - 1e-6) or np.any(pos > hi + 1e-6):
                where = " ".join(f"{a}{p:.1f}" for a, p in zip("XYZ", pos, strict=True))
                raise GcodeError(ln.number, f"move to {where} leaves the printer's envelope",
                                 c.format())


@dataclass(frozen=True)
class Estimate:
    """Per-command cumulative estimates of a program (arrays of ``len(program)``)."""

    time_s: np.ndarray
    extruded_mm: np.ndarray  # path length deposited (E > 0, or laser on), cumulative
    e_total: np.ndarray  # extruder axis advance, cumulative

    @property
    def total_time_s(self) -> float:
        """Estimated duration of the whole program."""
        return float(self.time_s[-1]) if len(self.time_s) else 0.0


def estimate(program: Program, default_feed_mm_min: float = 3000.0) -> Estimate:
    """Time (constant-speed moves at the commanded feed rate, dwells) and deposition.

    A G1 deposits when it advances E, or when a laser (``M3``/``M4`` with S > 0) is on.
    """
    n = len(program.lines)
    dt = np.zeros(n)
    dep = np.zeros(n)
    de = np.zeros(n)
    pos = np.zeros(4)
    relative = False
    relative_e = False
    feed = default_feed_mm_min
    laser = False
    for i, ln in enumerate(program.lines):
        c = ln.command
        code = c.code
        if code in ("G0", "G1", "G2", "G3"):
            target = pos.copy()
            for k, axis in enumerate("XYZ"):
                v = c.get(axis)
                if v is not None:
                    target[k] = pos[k] + v if relative else v
            e = c.get("E")
            if e is not None:
                target[3] = pos[3] + e if (relative or relative_e) else e
            f = c.get("F")
            if f is not None:
                feed = f
            dist = float(np.linalg.norm(target[:3] - pos[:3]))
            if dist == 0.0:
                dist = abs(target[3] - pos[3])
            dt[i] = dist / (feed / 60.0) if feed > 0 else 0.0
            advance = target[3] - pos[3]
            de[i] = advance
            if code != "G0" and (advance > 0 or laser):
                dep[i] = float(np.linalg.norm(target[:3] - pos[:3]))
            pos = target
        elif code == "G90":
            relative = False
        elif code == "G91":
            relative = True
        elif code == "M82":
            relative_e = False
        elif code == "M83":
            relative_e = True
        elif code == "G92":
            for k, axis in enumerate("XYZE"):
                v = c.get(axis)
                if v is not None:
                    pos[k] = v
        elif code == "G28":
            pos[:3] = 0.0
        elif code == "G4":
            dt[i] = (c.get("P") or 0.0) / 1000.0 + (c.get("S") or 0.0)
        elif code in ("M3", "M4"):
            laser = (c.get("S") or 0.0) > 0
        elif code == "M5":
            laser = False
    return Estimate(np.cumsum(dt), np.cumsum(dep), np.cumsum(de))


def job_tables(program: Program, printer: PrinterConfig | None = None
               ) -> tuple[list[int], list[float], list[float]]:
    """Per command: layer index, cumulative estimated time (s), cumulative material (kg).

    Material needs the printer: paste from the E advance (ram stroke times ram area), laser
    from the length sintered (a bead's cross-section); without a printer it is empty.
    """
    est = estimate(program)
    mass: list[float] = []
    if printer is not None:
        if printer.mode == "paste":
            per_e = printer.ram_area_mm2 * 1e-9 * printer.density_kg_m3
            mass = (np.clip(est.e_total, 0.0, None) * per_e).tolist()
        else:
            per_mm = printer.bead_width * printer.bead_height * 1e-3 * printer.density_kg_m3
            mass = (est.extruded_mm * per_mm).tolist()
    return [ln.layer for ln in program.lines], est.time_s.tolist(), mass
