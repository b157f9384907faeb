"""Camera calibration in the YAML format ROS's camera_calibration writes (and
camera_info_manager reads): intrinsics K, distortion D, rectification R, projection P.

Pure: parses and formats text; the nodes read and write the files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

_MATRICES = {  # yaml key -> (attribute, rows, cols)
    "camera_matrix": ("k", 3, 3),
    "distortion_coefficients": ("d", 1, None),
    "rectification_matrix": ("r", 3, 3),
    "projection_matrix": ("p", 3, 4),
}


# distortion models image_geometry understands -> number of coefficients
DISTORTION_MODELS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}


class CalibrationError(ValueError):
    """A calibration that cannot be used; the message names the field."""


def _identity3() -> list[float]:
    return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]


@dataclass
class CameraCalibration:
    """One camera's calibration, row-major as in sensor_msgs/CameraInfo."""

    width: int
    height: int
    camera_name: str = "camera"
    distortion_model: str = "plumb_bob"
    k: list[float] = field(default_factory=_identity3)
    d: list[float] = field(default_factory=lambda: [0.0] * 5)
    r: list[float] = field(default_factory=_identity3)
    p: list[float] = field(default_factory=lambda: [1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0])

    @classmethod
    def pinhole(cls, width: int, height: int, fx: float, fy: float | None = None,
                cx: float | None = None, cy: float | None = None,
                name: str = "camera") -> CameraCalibration:
        """An undistorted pinhole camera (default principal point: the image centre)."""
        fy = fx if fy is None else fy
        cx = (width - 1) / 2.0 if cx is None else cx
        cy = (height - 1) / 2.0 if cy is None else cy
        return cls(width, height, name, "plumb_bob", [fx, 0, cx, 0, fy, cy, 0, 0, 1],
                   [0.0] * 5, _identity3(), [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0])

    def scaled(self, width: int, height: int) -> CameraCalibration:
        """The same camera at another resolution (intrinsics scaled, distortion kept)."""
        sx, sy = width / self.width, height / self.height
        k, p = list(self.k), list(self.p)
        for m, (fx_i, cx_i, fy_i, cy_i, tx_i) in ((k, (0, 2, 4, 5, None)),
                                                  (p, (0, 2, 5, 6, 3))):
            m[fx_i] *= sx
            m[cx_i] *= sx
            m[fy_i] *= sy
            m[cy_i] *= sy
            if tx_i is not None:
                m[tx_i] *= sx
        return CameraCalibration(width, height, self.camera_name, self.distortion_model, k,
                                 list(self.d), list(self.r), p)


def _matrix(data: dict[str, Any], key: str, rows: int, cols: int | None) -> list[float]:
    node = data.get(key)
    if not isinstance(node, dict) or "data" not in node:
        raise CalibrationError(f"'{key}' must be a mapping with rows, cols and data")
    values = node["data"]
    if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
        raise CalibrationError(f"'{key}.data' must be a list of numbers")
    if node.get("rows") != rows or (cols is not None and node.get("cols") != cols):
        raise CalibrationError(f"'{key}' must be {rows}x{cols or 'n'} "
                               f"(got {node.get('rows')}x{node.get('cols')})")
    if len(values) != rows * (cols if cols is not None else node.get("cols", 0)):
        raise CalibrationError(f"'{key}.data' has {len(values)} values, rows x cols differ")
    if not all(math.isfinite(v) for v in values):
        raise CalibrationError(f"'{key}.data' has a non-finite value")
    return [float(v) for v in values]


def parse_calibration(text: str) -> CameraCalibration:
    """Parse camera_calibration YAML; CalibrationError names what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CalibrationError(f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CalibrationError("a calibration is a YAML mapping")
    for key in ("image_width", "image_height"):
        if not isinstance(data.get(key), int) or data[key] <= 0:
            raise CalibrationError(f"'{key}' must be a positive integer")
    values = {attr: _matrix(data, key, rows, cols)
              for key, (attr, rows, cols) in _MATRICES.items()}
    cal = CameraCalibration(width=data["image_width"], height=data["image_height"],
                            camera_name=str(data.get("camera_name", "camera")),
                            distortion_model=str(data.get("distortion_model", "plumb_bob")),
                            **values)
    check_calibration(cal)
    return cal


def check_calibration(cal: CameraCalibration) -> CameraCalibration:
    """Return `cal` if a camera can use it, else raise CalibrationError naming the field.

    Checked: a positive size, K 3x3, R 3x3 and P 3x4 with finite values and positive focal
    lengths, and a distortion model image_geometry knows with its number of coefficients.
    """
    for name, value in (("image_width", cal.width), ("image_height", cal.height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CalibrationError(f"'{name}' must be a positive integer (got {value!r})")
    for key, (attr, rows, cols) in _MATRICES.items():
        values = getattr(cal, attr)
        if cols is not None and len(values) != rows * cols:
            raise CalibrationError(f"'{key}' must have {rows * cols} values "
                                   f"(got {len(values)})")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise CalibrationError(f"'{key}.data' has a non-finite value")
    if cal.k[0] <= 0 or cal.k[4] <= 0:
        raise CalibrationError("'camera_matrix' must have positive focal lengths")
    if cal.p[0] <= 0 or cal.p[5] <= 0:
        raise CalibrationError("'projection_matrix' must have positive focal lengths")
    wanted = DISTORTION_MODELS.get(cal.distortion_model)
    if wanted is None:
        raise CalibrationError(f"'distortion_model' must be one of "
                               f"{sorted(DISTORTION_MODELS)} (got {cal.distortion_model!r})")
    if len(cal.d) != wanted:
        raise CalibrationError(f"'distortion_coefficients' of {cal.distortion_model} must "
                               f"have {wanted} values (got {len(cal.d)})")
    return cal


def format_calibration(cal: CameraCalibration) -> str:
    """The camera_calibration YAML of a calibration."""
    data: dict[str, Any] = {"image_width": cal.width, "image_height": cal.height,
                            "camera_name": cal.camera_name}
    for key, (attr, rows, cols) in _MATRICES.items():
        values = getattr(cal, attr)
        if key == "distortion_coefficients":
            data["distortion_model"] = cal.distortion_model
        data[key] = {"rows": rows, "cols": cols if cols is not None else len(values),
                     "data": [float(v) for v in values]}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
