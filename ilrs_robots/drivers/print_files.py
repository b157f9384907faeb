"""Print jobs from files: reads printer configs, designs and G-code files and hands the text to
``core/construction/jobs.py`` (which checks it whole before anything is sent).

Shared by the `ilrs slice` / `ilrs print` commands and the construction node.
"""

from __future__ import annotations

from pathlib import Path

from ilrs_robots.core.construction.designs import (
    DesignError,
    PrinterConfig,
    parse_printer_yaml,
)
from ilrs_robots.core.construction.gcode import Program
from ilrs_robots.core.construction.jobs import (
    InputError,
    JobPlan,
    plan_from_design,
    plan_from_gcode,
    slice_text,
)
from ilrs_robots.core.construction.slicer import SliceResult
from ilrs_robots.drivers.printer import PrintJob
from ilrs_robots.resources import config_path

DEFAULT_PRINTER = "regolith_paste_gantry"

__all__ = ["DEFAULT_PRINTER", "InputError", "find_input", "load_job", "load_plan",
           "load_printer", "print_job_of", "slice_file"]


def load_printer(name_or_path: str | None) -> PrinterConfig:
    """A printer config: a YAML path, or a name under config/printers."""
    name = name_or_path or DEFAULT_PRINTER
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = config_path("printers", f"{name}.yaml")
    try:
        return parse_printer_yaml(path.read_text())
    except OSError as exc:
        raise InputError(f"printer {name!r}: cannot read {path}: {exc.strerror}") from exc
    except DesignError as exc:
        raise InputError(f"printer {path}: {exc}") from exc


def _read_design(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read design {path}: {exc.strerror}") from exc


def slice_file(design_path: str | Path, printer: str | None = None,
               layer_height: float | None = None) -> SliceResult:
    """Read, check and slice a design file (its own printer unless ``printer`` is given)."""
    path = Path(design_path)
    return slice_text(_read_design(path), str(path),
                      lambda own: load_printer(printer or own), layer_height)


def find_input(name: str) -> Path:
    """A design or G-code path; a bare name (``landing_pad_small``) is looked up in
    config/designs."""
    path = Path(name)
    if path.is_file() or path.is_absolute() or path.suffix not in ("", ".yaml", ".yml"):
        return path
    for candidate in (config_path("designs", name), config_path("designs", f"{name}.yaml")):
        if candidate.is_file():
            return candidate
    return path


def load_plan(path: str | Path, printer: str | None = None,
              layer_height: float | None = None) -> JobPlan:
    """A checked job plan from a G-code file or a design YAML (sliced). Raises InputError
    with the reason, naming the line or the field."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        return plan_from_design(_read_design(path), path.stem,
                                lambda own: load_printer(printer or own), layer_height,
                                str(path))
    config = load_printer(printer)
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise InputError(f"{path}: line {line}: non-ASCII byte") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    return plan_from_gcode(text, config, path.stem, str(path))


def print_job_of(plan: JobPlan) -> PrintJob:
    """The driver's job for a plan."""
    return PrintJob(list(plan.commands), list(plan.layers), list(plan.time_s),
                    list(plan.mass_kg), plan.name)


def load_job(path: str | Path, printer: str | None = None, layer_height: float | None = None
             ) -> tuple[PrintJob, Program, PrinterConfig]:
    """A print job from a G-code file (checked whole, and against the printer's envelope) or
    from a design YAML (sliced). Raises InputError with the reason, naming the line."""
    plan = load_plan(path, printer, layer_height)
    return print_job_of(plan), plan.program, plan.printer
