"""Telemetry for the console's page: ROS messages turned into the JSON the WebSocket sends.

Pure functions of message fields (duck-typed: any object with the ROS message's attributes),
so they are tested without ROS. Images travel as data URLs: the costmap as an RGBA PNG
(row 0 at the top, the highest y), camera frames as JPEG at a quality chosen per viewer.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import cv2
import numpy as np

from ilrs_robots.core.geometry import quaternion_to_yaw

QUALITIES = (25, 40, 55, 70, 85)  # the JPEG qualities a viewer's stream moves between


def _data_url(kind: str, data: bytes) -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def pose_message(robot: str, odom: Any, now: float) -> dict:
    """A robot's pose from a nav_msgs/Odometry."""
    p, q = odom.pose.pose.position, odom.pose.pose.orientation
    return {"type": "pose", "robot": robot, "x": round(p.x, 3), "y": round(p.y, 3),
            "yaw": round(quaternion_to_yaw(q.x, q.y, q.z, q.w), 4),
            "frame": odom.header.frame_id, "stamp": round(now, 3)}


def plan_message(robot: str, path: Any, step: int = 1) -> dict:
    """A planned path (nav_msgs/Path) as [[x, y], ...], every `step`-th pose and the last."""
    poses = list(path.poses)
    keep = poses[::max(1, step)] + (poses[-1:] if poses and (len(poses) - 1) % step else [])
    return {"type": "plan", "robot": robot,
            "points": [[round(p.pose.position.x, 2), round(p.pose.position.y, 2)]
                       for p in keep]}


def costmap_rgba(data: np.ndarray) -> np.ndarray:
    """RGBA (OpenCV's BGRA order) of occupancy values: -1 unknown, 0..99 cost, 100 lethal."""
    rgba = np.zeros((*data.shape, 4), np.uint8)
    cost = np.clip(data, 0, 100).astype(np.float32) / 100.0
    free = data == 0
    graded = (data > 0) & (data < 100)
    rgba[graded] = np.stack([np.zeros_like(cost), 200 * (1 - cost), 255 * np.ones_like(cost),
                             60 + 120 * cost], axis=-1)[graded].astype(np.uint8)  # yellow->red
    rgba[data >= 100] = (40, 40, 230, 200)   # lethal: red
    rgba[data < 0] = (90, 90, 90, 110)       # unknown: grey
    rgba[free] = (0, 0, 0, 0)
    return rgba


def costmap_message(robot: str, grid: Any, max_cells: int = 1_000_000) -> dict:
    """A nav_msgs/OccupancyGrid as a PNG over its world rectangle."""
    info = grid.info
    w, h = int(info.width), int(info.height)
    if w * h == 0 or w * h > max_cells:
        raise ValueError(f"costmap of {w}x{h} cells: not drawn")
    data = np.asarray(grid.data, np.int16).reshape(h, w)
    ok, png = cv2.imencode(".png", costmap_rgba(data)[::-1])  # row 0 = highest y
    if not ok:
        raise ValueError("costmap: PNG encoding failed")
    o = info.origin.position
    return {"type": "costmap", "robot": robot, "width": w, "height": h,
            "resolution": float(info.resolution), "origin": [float(o.x), float(o.y)],
            "image": _data_url("png", png.tobytes())}


def dose_rgba(dose: np.ndarray) -> np.ndarray:
    """RGBA (OpenCV's BGRA order) of dose rates (uSv/h) on the page's log scale: 0.1 green
    .. 1000 red; NaN transparent."""
    f = np.clip((np.log10(np.maximum(np.nan_to_num(dose, nan=1e-3), 1e-3)) + 1.0) / 4.0, 0, 1)
    hsv = np.stack([60.0 * (1.0 - f), np.full_like(f, 220.0), np.full_like(f, 235.0)],
                   axis=-1).astype(np.uint8)
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    alpha = np.where(np.isnan(dose), 0, 110).astype(np.uint8)
    return np.dstack([bgr, alpha])


def dose_map_message(robot: str, cloud: Any, max_cells: int = 1_000_000) -> dict:
    """radiation_mapper's dose map (sensor_msgs/PointCloud2 with float32 x, y and
    dose_rate, one point per cell of a regular grid, row by row) as a PNG over its world
    rectangle; ValueError for a cloud that is not such a grid."""
    offsets = {f.name: int(f.offset) for f in cloud.fields}
    if not {"x", "y", "dose_rate"} <= offsets.keys() or cloud.point_step % 4:
        raise ValueError("dose map: needs float32 fields x, y and dose_rate")
    n = int(cloud.width) * int(cloud.height)
    if n == 0 or n > max_cells:
        raise ValueError(f"dose map of {n} points: not drawn")
    values = np.frombuffer(bytes(cloud.data), np.float32).reshape(n, cloud.point_step // 4)
    x, y, dose = (values[:, offsets[k] // 4] for k in ("x", "y", "dose_rate"))
    xs, ys = np.unique(x), np.unique(y)
    if len(xs) * len(ys) != n or len(xs) < 2 or len(ys) < 2:
        raise ValueError("dose map: the points are not a full grid")
    res = float(xs[1] - xs[0])
    order = np.lexsort((x, y))  # row by row from the lowest y
    grid = dose[order].reshape(len(ys), len(xs))
    ok, png = cv2.imencode(".png", dose_rgba(grid)[::-1])  # row 0 = highest y
    if not ok:
        raise ValueError("dose map: PNG encoding failed")
    return {"type": "dose_map", "robot": robot, "width": len(xs), "height": len(ys),
            "resolution": res, "origin": [float(xs[0]) - res / 2, float(ys[0]) - res / 2],
            "max": float(np.nanmax(grid)), "image": _data_url("png", png.tobytes())}


def diagnostics_message(array: Any) -> dict:
    """A diagnostic_msgs/DiagnosticArray."""
    return {"type": "diagnostics", "statuses": [
        {"name": s.name, "level": int.from_bytes(s.level, "little")
         if isinstance(s.level, bytes) else int(s.level),
         "message": s.message, "hardware_id": s.hardware_id} for s in array.status]}


def base_message(robot: str, status: Any) -> dict:
    """An ilrs_interfaces/BaseStatus: estop, command timeout, link, and the battery (the
    lowest main-battery voltage its motor controllers read; None if none answers)."""
    volts = [c.main_battery_voltage for c in status.controllers if c.connected]
    return {"type": "base", "robot": robot, "estop": bool(status.estop),
            "link_ok": bool(status.link_ok), "command_timed_out": bool(status.command_timed_out),
            "battery_voltage": round(float(min(volts)), 2) if volts else None}


def radiation_message(robot: str, reading: Any) -> dict:
    """An ilrs_interfaces/RadiationReading."""
    return {"type": "radiation", "robot": robot, "dose_rate": round(reading.dose_rate, 4),
            "dose_rate_stddev": round(reading.dose_rate_stddev, 4),
            "cpm": round(reading.counts_per_minute, 1)}


class CameraFrame:
    """One camera frame, re-encoded lazily at the qualities viewers ask for (each once)."""

    def __init__(self, robot: str, jpeg: bytes, stamp: float, header_stamp: float = 0.0
                 ) -> None:
        self.robot = robot
        self.jpeg = jpeg
        self.stamp = stamp  # arrival on the ground (epoch s)
        self.header_stamp = header_stamp  # the image's own stamp (its clock: sim time in sim)
        self._lock = threading.Lock()
        self._pixels: np.ndarray | None = None
        self._encoded: dict[int, dict] = {}

    def message(self, quality: int) -> dict:
        """The frame as a `camera` message at `quality` (JPEG 1..100)."""
        with self._lock:
            cached = self._encoded.get(quality)
            if cached is not None:
                return cached
            if self._pixels is None:
                self._pixels = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
                if self._pixels is None:
                    raise ValueError("camera frame: not a JPEG image")
            ok, data = cv2.imencode(".jpg", self._pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise ValueError("camera frame: JPEG encoding failed")
            h, w = self._pixels.shape[:2]
            cached = {"type": "camera", "robot": self.robot, "width": w, "height": h,
                      "quality": quality, "stamp": round(self.stamp, 3),
                      "header_stamp": round(self.header_stamp, 4),
                      "image": _data_url("jpeg", data.tobytes())}
            self._encoded[quality] = cached
            return cached


class QualityControl:
    """A viewer's JPEG quality and frame pacing, from how long its sends take.

    A frame whose send took over half the frame budget lowers the quality a step; sends
    well under a tenth of it raise it a step. Frames arriving while one is being sent are
    skipped (the viewer gets the newest), so the rate falls to what the viewer can take.
    """

    def __init__(self, max_rate: float, start: int = 2) -> None:
        self.budget = 1.0 / max_rate
        self.level = start

    @property
    def quality(self) -> int:
        """The JPEG quality to send next."""
        return QUALITIES[self.level]

    def sent(self, seconds: float) -> None:
        """Record how long the last frame took to send."""
        if seconds > 0.5 * self.budget and self.level > 0:
            self.level -= 1
        elif seconds < 0.1 * self.budget and self.level < len(QUALITIES) - 1:
            self.level += 1
