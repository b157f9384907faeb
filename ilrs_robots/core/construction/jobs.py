"""Print jobs from text: a G-code file or a design YAML becomes the commands to stream, with
the tables progress reports need; and the per-layer check of a printed site (pure, no I/O).

* :func:`plan_from_gcode` / :func:`plan_from_design` read and check the whole input before
  anything is sent: a malformed line, a move outside the envelope or a design the printer
  cannot build raises :class:`InputError` whose ``kind`` tells which (``"invalid"`` or
  ``"envelope"``) and whose message names the line or the field.
* :func:`with_layer_waits` puts an ``M400`` before each layer change: Marlin acknowledges
  ``M400`` only once every earlier move has finished, so its ``ok`` tells the host that a layer
  is complete (when to look at it), as timelapse and layer-photo hooks do on Earth.
* :func:`expected_layers` yields the design's height field after each printed layer, and
  :func:`layer_deviation` judges an observed height field (a site camera's) against it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ilrs_robots.core.construction.designs import (
    Design,
    DesignError,
    PrinterConfig,
    parse_design_yaml,
)
from ilrs_robots.core.construction.gcode import (
    GcodeError,
    Program,
    check_bounds,
    job_tables,
    parse_program,
)
from ilrs_robots.core.construction.slicer import (
    HeightGrid,
    SliceResult,
    expected_height_field,
    height_excess,
    slice_design,
    write_gcode,
)

LAYER_WAIT = "M400"


class InputError(ValueError):
    """A design, printer or G-code input that cannot be used (the message says why).

    ``kind`` is ``"envelope"`` when the structure does not fit the printer, else
    ``"invalid"``."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class JobPlan:
    """What to stream, per command: its layer, cumulative time (s) and material (kg)."""

    commands: list[str]
    layers: list[int]
    time_s: list[float]
    mass_kg: list[float]
    name: str
    program: Program
    printer: PrinterConfig
    design: Design | None = None
    layer_height: float = 0.0  # of the design (0 for a G-code file)


def _envelope_kind(exc: DesignError) -> str:
    return "envelope" if "envelope" in str(exc) else "invalid"


def slice_text(design_text: str, source: str,
               printer_for: Callable[[str | None], PrinterConfig],
               layer_height: float | None = None) -> SliceResult:
    """Parse, check and slice a design YAML; ``printer_for(design.printer)`` gives the
    printer. ``source`` names the input in messages."""
    try:
        design = parse_design_yaml(design_text)
    except DesignError as exc:
        raise InputError(f"{source}: {exc}") from exc
    config = printer_for(design.printer)
    try:
        return slice_design(design, config, layer_height or None)
    except DesignError as exc:
        raise InputError(f"{source}: {exc}", _envelope_kind(exc)) from exc


def plan_from_gcode(text: str, printer: PrinterConfig, name: str, source: str = ""
                    ) -> JobPlan:
    """A job from G-code text, checked whole and against the printer's envelope."""
    where = source or name
    try:
        program = parse_program(text)
    except GcodeError as exc:
        raise InputError(f"{where}: {exc}") from exc
    low, high = printer.envelope_mm
    try:
        check_bounds(program, low, high)
    except GcodeError as exc:
        raise InputError(f"{where}: {exc}", "envelope") from exc
    if not len(program):
        raise InputError(f"{where}: no commands")
    layers, times, mass = job_tables(program, printer)
    return JobPlan(program.commands, layers, times, mass, name, program, printer)


def plan_from_design(design_text: str, name: str,
                     printer_for: Callable[[str | None], PrinterConfig],
                     layer_height: float | None = None, source: str = "") -> JobPlan:
    """A job from a design YAML: sliced, written as G-code, parsed back (as a file would)."""
    result = slice_text(design_text, source or name, printer_for, layer_height)
    plan = plan_from_gcode(write_gcode(result), result.printer, name, source)
    plan.design, plan.layer_height = result.design, result.layer_height
    return plan


def with_layer_waits(plan: JobPlan) -> tuple[JobPlan, list[int]]:
    """The plan with an ``M400`` before each layer change, and per layer the 1-based line
    number whose acknowledgement says the layer is finished (the last layer's is the job's
    last line: a sliced job ends with ``M400``)."""
    commands: list[str] = []
    layers: list[int] = []
    times: list[float] = []
    mass: list[float] = []
    done_at: list[int] = []
    previous = None
    for i, command in enumerate(plan.commands):
        layer = plan.layers[i] if i < len(plan.layers) else 0
        if previous is not None and layer != previous and commands:
            commands.append(LAYER_WAIT)
            layers.append(previous)
            if times:
                times.append(times[-1])
            if mass:
                mass.append(mass[-1])
            done_at.append(len(commands))
        commands.append(command)
        layers.append(layer)
        if i < len(plan.time_s):
            times.append(plan.time_s[i])
        if i < len(plan.mass_kg):
            mass.append(plan.mass_kg[i])
        previous = layer
    done_at.append(len(commands))
    out = JobPlan(commands, layers, times, mass, plan.name, plan.program, plan.printer,
                  plan.design, plan.layer_height)
    return out, done_at


def expected_layers(design: Design, layer_height: float, grid: HeightGrid
                    ) -> Iterator[np.ndarray]:
    """The design's height field on ``grid`` after each printed layer (layers with nothing
    to print are skipped, as the slicer skips them), cumulative."""
    heights = grid.zeros()
    x, y = grid.centres()
    lx, ly = design.to_local(x, y)
    for k, z_mid in enumerate(design.layers(layer_height)):
        regions = design.section(float(z_mid))
        if not regions:
            continue
        mask = np.zeros(heights.shape, bool)
        for region in regions:
            mask |= region.contains(lx, ly)
        heights[mask] = (k + 1) * layer_height
        yield heights.copy()


@dataclass(frozen=True)
class LayerDeviation:
    """How an observed height field departs from the layers printed."""

    cells_out: int  # cells outside the tolerance band
    footprint: int  # cells of the structure (grown by a bead)
    worst_m: float  # largest departure beyond the band, m

    @property
    def fraction(self) -> float:
        """Share of the structure's cells outside the band."""
        return self.cells_out / max(1, self.footprint)


def layer_deviation(observed: np.ndarray, done: np.ndarray, upto: np.ndarray | None,
                    cell: float, bead_width: float, bead_height: float) -> LayerDeviation:
    """Observed heights against the layers known finished (``done``) and those possibly
    begun since the picture (``upto``, default ``done``).

    A cell may lie between the lowest ``done`` height and the highest ``upto`` height within
    one bead width around it, give or take one bead height (beads land up to a bead off
    their centre line; the next layer may be under way when the image is taken)."""
    upto = done if upto is None else upto
    excess, grown = height_excess(observed, done, upto, cell, bead_width, bead_height)
    out = excess > 1e-6
    footprint = int(np.count_nonzero(grown > 0) or out.size)
    return LayerDeviation(int(out.sum()), footprint, float(excess.max(initial=0.0)))


def height_image_to_grid(image: np.ndarray, grid_shape: Sequence[int]) -> np.ndarray:
    """A top-down height image (row 0 at the envelope's +y edge, column 0 at -x, metres)
    resampled onto a grid whose row 0 is the -y edge."""
    flipped = np.ascontiguousarray(np.flipud(image.astype(np.float32)))
    ny, nx = int(grid_shape[0]), int(grid_shape[1])
    if flipped.shape == (ny, nx):
        return flipped
    return cv2.resize(flipped, (nx, ny), interpolation=cv2.INTER_AREA)


def grid_to_height_image(heights: np.ndarray) -> np.ndarray:
    """The inverse of :func:`height_image_to_grid` at the grid's own size (float32)."""
    return np.ascontiguousarray(np.flipud(heights).astype(np.float32))


@dataclass(frozen=True)
class PrintedComparison:
    """A finished structure's height field, seen from above, against its design."""

    design_top_m: float  # highest point of the design
    printed_top_m: float  # highest point seen over the design's footprint
    mean_abs_error_m: float  # over the design's footprint (grown by a bead)
    deviation: LayerDeviation  # cells beyond a bead's tolerance

    def describe(self) -> str:
        """One line for a person."""
        d = self.deviation
        return (f"printed {self.printed_top_m * 1000:.0f} mm high (design "
                f"{self.design_top_m * 1000:.0f} mm), mean error "
                f"{self.mean_abs_error_m * 1000:.1f} mm, {d.cells_out} of {d.footprint} cells "
                f"({100 * d.fraction:.1f} %) off by more"
                f" than a bead, worst {d.worst_m * 1000:.0f} mm beyond")


def compare_printed(image: np.ndarray, plan: JobPlan, cell: float | None = None
                    ) -> PrintedComparison:
    """A top-down height image of the site (as :func:`height_image_to_grid` takes it) against
    the whole design of ``plan``. Raises ValueError for a plan without a design (G-code)."""
    if plan.design is None:
        raise ValueError(f"{plan.name}: a G-code job has no design to compare with")
    grid = HeightGrid.for_printer(plan.printer, cell)
    expected = expected_height_field(plan.design, plan.layer_height, grid)
    observed = height_image_to_grid(image, expected.shape)
    p = plan.printer
    dev = layer_deviation(observed, expected, None, grid.cell, p.bead_width, p.bead_height)
    radius = max(1, int(math.ceil(p.bead_width / grid.cell)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    footprint = cv2.dilate((expected > 0).astype(np.uint8), kernel) > 0
    if not footprint.any():
        footprint = np.ones(expected.shape, bool)
    return PrintedComparison(
        design_top_m=float(expected.max(initial=0.0)),
        printed_top_m=float(observed[footprint].max(initial=0.0)),
        mean_abs_error_m=float(np.abs(observed - expected)[footprint].mean()),
        deviation=dev)
