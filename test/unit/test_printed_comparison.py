"""compare_printed: a site height image against the whole design."""

from __future__ import annotations

import numpy as np
import pytest

from ilrs_robots.core.construction.jobs import compare_printed, grid_to_height_image
from ilrs_robots.core.construction.slicer import HeightGrid, expected_height_field
from ilrs_robots.drivers.print_files import load_plan
from ilrs_robots.resources import config_path


@pytest.fixture(scope="module")
def plan():
    return load_plan(config_path("designs", "landing_pad_small.yaml"))


def design_image(plan) -> np.ndarray:
    grid = HeightGrid.for_printer(plan.printer)
    return grid_to_height_image(expected_height_field(plan.design, plan.layer_height, grid))


def test_the_design_itself_matches_exactly(plan):
    c = compare_printed(design_image(plan), plan)
    assert c.design_top_m == pytest.approx(0.08, abs=1e-6)
    assert c.printed_top_m == pytest.approx(c.design_top_m)
    assert c.mean_abs_error_m < 1e-6 and c.deviation.cells_out == 0
    assert "printed 80 mm high (design 80 mm)" in c.describe()


def test_a_missing_half_and_a_blob_are_found(plan):
    image = design_image(plan)
    h, w = image.shape
    image[:, : w // 2] = 0.0  # half the pad never printed
    image[h // 2, w // 2 + 2] = 0.5  # a 0.5 m blob on the pad
    c = compare_printed(image, plan)
    assert c.deviation.fraction > 0.3
    assert c.printed_top_m == pytest.approx(0.5)
    assert c.deviation.worst_m > 0.3
    assert c.mean_abs_error_m > 0.01


def test_a_gcode_job_has_no_design_to_compare(plan, tmp_path):
    gcode = tmp_path / "a.gcode"
    gcode.write_text("G28\nG1 X10 Y10 F600\n")
    with pytest.raises(ValueError, match="no design"):
        compare_printed(design_image(plan), load_plan(gcode))
