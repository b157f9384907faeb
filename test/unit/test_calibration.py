"""Calibration YAML in camera_calibration's format."""

import pytest

from ilrs_robots.core.calibration import (
    CalibrationError,
    CameraCalibration,
    check_calibration,
    format_calibration,
    parse_calibration,
)

# as ROS's camera_calibration writes it (ost.yaml)
OST = """image_width: 640
image_height: 480
camera_name: narrow_stereo/left
camera_matrix:
  rows: 3
  cols: 3
  data: [430.2, 0, 311.7, 0, 429.8, 235.1, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.29, 0.07, 0.0004, -0.0002, 0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [0.9999, 0.0071, -0.0052, -0.0071, 0.9999, 0.0013, 0.0052, -0.0013, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [395.1, 0, 305.2, -31.6, 0, 395.1, 233.4, 0, 0, 0, 1, 0]
"""


def test_parses_camera_calibration_output():
    cal = parse_calibration(OST)
    assert (cal.width, cal.height, cal.camera_name) == (640, 480, "narrow_stereo/left")
    assert cal.k[0] == 430.2 and cal.k[5] == 235.1 and len(cal.d) == 5
    assert cal.p[3] == -31.6 and cal.distortion_model == "plumb_bob"


def test_round_trip():
    cal = parse_calibration(OST)
    again = parse_calibration(format_calibration(cal))
    assert again == cal


def test_pinhole_and_scaling():
    cal = CameraCalibration.pinhole(640, 480, 500.0)
    assert cal.k[2] == pytest.approx(319.5)
    half = cal.scaled(320, 240)
    assert half.k[0] == pytest.approx(250.0) and half.k[2] == pytest.approx(159.75)
    assert parse_calibration(format_calibration(half)) == half


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("image_width: 640", "image_width: -1"), "image_width"),
    (lambda t: t.replace("rows: 3\n  cols: 4", "rows: 3\n  cols: 3"), "projection_matrix"),
    (lambda t: t.replace("[430.2,", "[.nan,"), "non-finite"),
    (lambda t: t.replace("430.2", "0"), "focal"),
    (lambda t: "[1, 2", "not valid YAML"),
])
def test_bad_files_name_the_problem(edit, message):
    with pytest.raises(CalibrationError, match=message):
        parse_calibration(edit(OST))


@pytest.mark.parametrize("change,message", [
    (lambda c: setattr(c, "d", [0.0] * 4), "5 values"),
    (lambda c: setattr(c, "distortion_model", "fisheye42"), "distortion_model"),
    (lambda c: setattr(c, "p", [0.0] * 12), "projection_matrix"),
    (lambda c: setattr(c, "k", [1.0] * 8), "9 values"),
    (lambda c: setattr(c, "width", 0), "image_width"),
    (lambda c: setattr(c, "r", [float("inf")] + [0.0] * 8), "non-finite"),
])
def test_check_calibration_refuses_what_set_camera_info_must_not_store(change, message):
    cal = CameraCalibration.pinhole(640, 480, 500.0)
    assert check_calibration(cal) is cal
    change(cal)
    with pytest.raises(CalibrationError, match=message):
        check_calibration(cal)


def test_other_models_with_their_coefficients():
    cal = CameraCalibration.pinhole(640, 480, 500.0)
    cal.distortion_model, cal.d = "equidistant", [0.1, 0.0, 0.0, 0.0]
    assert parse_calibration(format_calibration(cal)) == cal
