"""Line protocol of a Marlin firmware's serial port (standard library only).

Host side (what a host such as Printrun or OctoPrint sends and reads):

* every job line is framed ``N<n> <command>*<checksum>\\n``; the checksum is the XOR of every
  byte before ``*`` (line number and space included), written in decimal;
* ``M110 N<n>`` sets the firmware's last line number to ``n`` (the next line is ``n + 1``);
* replies are text lines: ``ok`` (with ``ADVANCED_OK``: ``ok N<n> P<planner free> B<buffer
  free>``; after ``M105`` it carries temperatures), ``Resend: <n>`` (older firmwares: ``rs
  <n>``), ``echo:busy: processing`` keep-alives, other ``echo:`` text, ``Error:`` lines,
  temperature reports ``T:<cur> /<target> B:<cur> /<target> @:<pwm>`` (``M105`` and the
  ``M155 S<s>`` auto-report) and position reports ``X:<x> Y:<y> Z:<z> E:<e> Count ...``
  (``M114``).

Firmware side (what the emulator needs): :func:`parse_framed` splits a received line into its
line number, command and checksum, and :func:`check_line` applies Marlin's rules for the line
number (``last + 1`` unless the line is ``M110``) and checksum, giving the error text the
firmware prints (``Error:<reason>, Last Line: <n>`` then ``Resend: <n + 1>`` and ``ok``).
:func:`format_ok`, :func:`format_temperatures`, :func:`format_position` build replies.

Decoders raise :class:`MarlinProtocolError` (a ValueError) and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

MAX_LINE_NUMBER = 2**31 - 1
MAX_COMMAND_LENGTH = 96  # Marlin's MAX_CMD_SIZE, terminator included

ERR_LINE_NUMBER = "Line Number is not Last Line Number+1, Last Line: "
ERR_CHECKSUM = "checksum mismatch, Last Line: "
ERR_NO_CHECKSUM = "No Checksum with line number, Last Line: "
ERR_NO_LINE_NUMBER = "No Line Number with checksum, Last Line: "
MSG_BUSY_PROCESSING = "busy: processing"
MSG_HALTED = "Printer halted. kill() called!"
EMERGENCY_COMMANDS = ("M112", "M108", "M410")  # handled by the firmware on arrival


class MarlinProtocolError(ValueError):
    """A command that cannot be framed, or a reply that cannot be decoded."""


def checksum(data: bytes | str) -> int:
    """Marlin's line checksum: XOR of every byte."""
    raw = data.encode("ascii") if isinstance(data, str) else data
    value = 0
    for byte in raw:
        value ^= byte
    return value


def frame(number: int, command: str) -> bytes:
    """The bytes of ``N<number> <command>*<checksum>\\n``.

    Raises MarlinProtocolError for a command with a newline, ``*``, ``;`` or non-ASCII text,
    an empty one, or a line number out of range.
    """
    if not 0 <= number <= MAX_LINE_NUMBER:
        raise MarlinProtocolError(f"line number {number} out of range 0..{MAX_LINE_NUMBER}")
    command = command.strip()
    if not command:
        raise MarlinProtocolError("empty command")
    if any(c in command for c in "\r\n*;") or not command.isascii():
        raise MarlinProtocolError(f"command {command!r} has a newline, '*', ';' or non-ASCII")
    body = f"N{number} {command}"
    line = f"{body}*{checksum(body)}\n".encode("ascii")
    if len(line) > MAX_COMMAND_LENGTH:
        raise MarlinProtocolError(f"framed line is {len(line)} bytes, more than "
                                  f"{MAX_COMMAND_LENGTH}: {command[:40]!r}...")
    return line


def reset_numbering(number: int = 0) -> bytes:
    """``M110`` framed so that the next line number is ``number + 1``."""
    return frame(number, f"M110 N{number}")


# -- replies (host side) -----------------------------------------------------------------------

class ReplyKind(Enum):
    """What a line from the firmware says."""

    OK = "ok"
    RESEND = "resend"
    BUSY = "busy"
    ECHO = "echo"
    ERROR = "error"
    TEMPERATURE = "temperature"
    POSITION = "position"
    START = "start"
    OTHER = "other"


@dataclass(frozen=True)
class Temperature:
    """One heater's reading: current and target temperature, degC."""

    current: float
    target: float | None = None


@dataclass(frozen=True)
class Reply:
    """One decoded line from the firmware.

    ``number`` is the line number of an ``ok N<n>`` (ADVANCED_OK) or of a ``Resend: <n>``;
    ``last_line`` the firmware's last line number quoted in a line error; ``planner_free`` and
    ``buffer_free`` come from an ADVANCED_OK; ``temperatures`` (``T``, ``T0``, ``B``, ``C``,
    ...) may come with an ``ok`` too; ``position`` holds axis values of an ``M114`` report.
    """

    kind: ReplyKind
    text: str
    number: int | None = None
    last_line: int | None = None
    planner_free: int | None = None
    buffer_free: int | None = None
    temperatures: dict[str, Temperature] = field(default_factory=dict)
    position: dict[str, float] = field(default_factory=dict)

    @property
    def fatal(self) -> bool:
        """True for an error that stops the firmware (it halts or kills itself)."""
        if self.kind is not ReplyKind.ERROR:
            return False
        lowered = self.text.lower()
        return any(w in lowered for w in ("halted", "kill", "stopped", "maxtemp", "mintemp",
                                          "thermal runaway", "heating failed"))

    @property
    def line_error(self) -> bool:
        """True for a framing error (line number, checksum) that a Resend follows."""
        return self.kind is ReplyKind.ERROR and self.last_line is not None


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"
_TEMP = re.compile(rf"\b([TBCPLR]\d?):\s*({_NUMBER})(?:\s*/\s*({_NUMBER}))?")
_AXIS = re.compile(rf"\b([XYZEABC]):\s*({_NUMBER})")
_RESEND = re.compile(r"^(?:resend|rs)[:\s]\s*N?:?\s*(\d+)", re.IGNORECASE)
_LAST_LINE = re.compile(r"Last Line:\s*(-?\d+)", re.IGNORECASE)
_OK_N = re.compile(r"\bN(\d+)")
_OK_P = re.compile(r"\bP(\d+)")
_OK_B = re.compile(r"\bB(\d+)(?!\s*:)")


def _temperatures(text: str) -> dict[str, Temperature]:
    out: dict[str, Temperature] = {}
    for name, current, target in _TEMP.findall(text):
        out[name] = Temperature(float(current), float(target) if target else None)
    return out


def parse_reply(line: str | bytes) -> Reply:
    """Decode one line from the firmware (without or with its line ending).

    Unknown text is an OTHER reply, never an exception: firmwares print free text.
    """
    if isinstance(line, bytes):
        line = line.decode("ascii", errors="replace")
    text = line.strip().replace("\x00", "")
    lowered = text.lower()
    if lowered == "ok" or lowered.startswith("ok "):
        rest = text[2:]
        number = _int_or_none(_OK_N.search(rest))
        temps = _temperatures(rest) if ":" in rest else {}
        planner = _int_or_none(_OK_P.search(rest)) if not temps else None
        buffer = _int_or_none(_OK_B.search(rest)) if not temps else None
        return Reply(ReplyKind.OK, text, number=number, planner_free=planner,
                     buffer_free=buffer, temperatures=temps)
    match = _RESEND.match(text)
    if match:
        return Reply(ReplyKind.RESEND, text, number=int(match.group(1)))
    if lowered.startswith(("error:", "!!")):
        body = text.split(":", 1)[1].strip() if ":" in text else text[2:].strip()
        last = _int_or_none(_LAST_LINE.search(body))
        return Reply(ReplyKind.ERROR, body, last_line=last)
    if lowered.startswith("echo:") or lowered.startswith("busy:"):
        body = text.split(":", 1)[1].strip() if lowered.startswith("echo:") else text
        if body.lower().startswith("busy:"):
            return Reply(ReplyKind.BUSY, body[5:].strip())
        return Reply(ReplyKind.ECHO, body)
    if lowered == "start":
        return Reply(ReplyKind.START, text)
    if "count" in lowered and _AXIS.search(text):
        head = re.split(r"\bcount\b", text, flags=re.IGNORECASE)[0]
        return Reply(ReplyKind.POSITION, text,
                     position={a: float(v) for a, v in _AXIS.findall(head)})
    temps = _temperatures(text)
    if "T" in temps or any(k.startswith("T") for k in temps):
        return Reply(ReplyKind.TEMPERATURE, text, temperatures=temps)
    if _AXIS.search(text) and text.startswith("X:"):
        return Reply(ReplyKind.POSITION, text,
                     position={a: float(v) for a, v in _AXIS.findall(text)})
    return Reply(ReplyKind.OTHER, text)


def _int_or_none(match: re.Match[str] | None) -> int | None:
    return int(match.group(1)) if match else None


# -- firmware side -----------------------------------------------------------------------------

@dataclass(frozen=True)
class FramedLine:
    """A line as the firmware received it: number and checksum are None when absent."""

    number: int | None
    command: str
    checksum: int | None
    checksum_ok: bool


_FRAMED = re.compile(r"^\s*N(-?\d+)\s*(.*?)$")


def parse_framed(raw: bytes | str) -> FramedLine:
    """Split a received line into line number, command and checksum (Marlin's reading).

    The checksum covers everything before the last ``*``. A ``;`` comment is dropped. Raises
    MarlinProtocolError for a line that is not ASCII or whose line number or checksum is
    not a number.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise MarlinProtocolError(f"non-ASCII byte in line: {exc}") from exc
    line = raw.rstrip("\r\n")
    star = line.rfind("*")
    cs: int | None = None
    cs_ok = True
    if star >= 0:
        digits = line[star + 1:].strip()
        if not digits.isdigit():
            raise MarlinProtocolError(f"checksum {digits!r} is not a number")
        cs = int(digits)
        cs_ok = checksum(line[:star]) == cs
        line = line[:star]
    if ";" in line:
        line = line[:line.index(";")]
    match = _FRAMED.match(line)
    if match is None:
        if line.lstrip().startswith("N"):
            raise MarlinProtocolError(f"line number in {line!r} is not a number")
        return FramedLine(None, line.strip(), cs, cs_ok)
    return FramedLine(int(match.group(1)), match.group(2).strip(), cs, cs_ok)


def check_line(line: FramedLine, last_number: int) -> tuple[int | None, str | None]:
    """Marlin's acceptance rules for a received line, given its last accepted line number.

    Returns ``(new_last_number, None)`` when the line is accepted (the number is unchanged
    for an unnumbered line; ``M110`` sets it to its own ``N``), or ``(None, error)`` with the
    error text the firmware prints after ``Error:`` (a resend of ``last_number + 1`` follows).
    """
    if line.number is None:
        if line.checksum is not None:  # a '*' without an 'N': a line number was garbled
            return None, f"{ERR_NO_LINE_NUMBER}{last_number}"
        if line.command.upper().startswith("M110"):
            n = _m110_number(line.command)
            return (n if n is not None else last_number), None
        return last_number, None
    is_m110 = line.command.upper().startswith("M110")
    if line.number != last_number + 1 and not is_m110:
        return None, f"{ERR_LINE_NUMBER}{last_number}"
    if line.checksum is None:
        return None, f"{ERR_NO_CHECKSUM}{last_number}"
    if not line.checksum_ok:
        return None, f"{ERR_CHECKSUM}{last_number}"
    if is_m110:
        n = _m110_number(line.command)
        return (n if n is not None else line.number), None
    return line.number, None


def _m110_number(command: str) -> int | None:
    match = re.search(r"N\s*(-?\d+)", command[4:])
    return int(match.group(1)) if match else None


def emergency_command(raw: bytes | str) -> str | None:
    """The emergency command (``M112``, ``M108``, ``M410``) a raw line carries, else None.

    Marlin's emergency parser acts on these as the bytes arrive, ahead of queued commands,
    whatever the line number and checksum.
    """
    try:
        framed = parse_framed(raw)
    except MarlinProtocolError:
        return None
    word = framed.command.split(" ", 1)[0].upper() if framed.command else ""
    return word if word in EMERGENCY_COMMANDS else None


def format_ok(number: int | None = None, planner_free: int | None = None,
              buffer_free: int | None = None, extra: str = "") -> str:
    """An ``ok`` line; with the ADVANCED_OK fields when ``planner_free`` is given."""
    parts = ["ok"]
    if planner_free is not None:
        if number is not None:
            parts.append(f"N{number}")
        parts.append(f"P{planner_free}")
        parts.append(f"B{buffer_free if buffer_free is not None else 0}")
    if extra:
        parts.append(extra)
    return " ".join(parts) + "\n"


def format_temperatures(readings: dict[str, Temperature], powers: dict[str, int] | None = None
                        ) -> str:
    """``T:25.00 /0.00 B:25.00 /0.00 @:0 B@:0`` (no line ending)."""
    parts = [f"{name}:{t.current:.2f} /{(t.target or 0.0):.2f}" for name, t in readings.items()]
    for name, power in (powers or {}).items():
        parts.append(f"{name}@:{power}" if name != "T" else f"@:{power}")
    return " ".join(parts)


def format_position(x: float, y: float, z: float, e: float,
                    steps_per_mm: tuple[float, float, float] = (80.0, 80.0, 400.0)) -> str:
    """An ``M114`` report: ``X:1.00 Y:2.00 Z:3.00 E:0.00 Count X:80 Y:160 Z:1200``."""
    counts = [round(v * s) for v, s in zip((x, y, z), steps_per_mm, strict=True)]
    return (f"X:{x:.2f} Y:{y:.2f} Z:{z:.2f} E:{e:.2f} "
            f"Count X:{counts[0]} Y:{counts[1]} Z:{counts[2]}\n")
