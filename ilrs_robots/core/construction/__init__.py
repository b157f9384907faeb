"""Regolith construction: parametric designs, slicing, G-code (pure; no I/O, no ROS)."""

from ilrs_robots.core.construction.designs import (
    Design,
    DesignError,
    PrinterConfig,
    check_design,
    parse_design,
    parse_design_yaml,
    parse_printer,
    parse_printer_yaml,
)
from ilrs_robots.core.construction.gcode import (
    Command,
    GcodeError,
    Program,
    check_bounds,
    estimate,
    job_tables,
    parse_command,
    parse_program,
)
from ilrs_robots.core.construction.slicer import (
    Estimates,
    HeightGrid,
    SliceResult,
    compare_height_fields,
    expected_height_field,
    slice_design,
    write_gcode,
)

__all__ = [
    "Command", "Design", "DesignError", "Estimates", "GcodeError", "HeightGrid",
    "PrinterConfig", "Program", "SliceResult", "check_bounds", "check_design",
    "compare_height_fields", "estimate", "expected_height_field", "job_tables", "parse_command",
    "parse_design", "parse_design_yaml", "parse_printer", "parse_printer_yaml",
    "parse_program", "slice_design", "write_gcode",
]
