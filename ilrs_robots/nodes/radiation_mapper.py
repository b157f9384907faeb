"""radiation_mapper: a dose-rate map, the sources and a navigation cost layer from the
Geiger counter's readings along the rover's path (core/dose_layer.py,
core/radiation_mapping.py).

Subscribes `radiation/reading` (ilrs_interfaces/RadiationReading) and the pose
(`pose_topic`, nav_msgs/Odometry in `map_frame`: `odometry/filtered`, or `sim/ground_truth`
in tests). A reading is placed at the pose of its stamp (interpolated between the poses
around it, or the nearest within `pose_timeout` s), whatever order the two topics arrive in;
readings with no pose that close are counted, not mapped. Every `period` s, once
`min_samples` readings are kept, it publishes (latched):

- `radiation/dose_map` (sensor_msgs/PointCloud2, fields x y z dose_rate dose_rate_stddev,
  uSv/h): one point per cell, for RViz and Foxglove (colour by dose_rate);
- `radiation/dose_cost` (nav_msgs/OccupancyGrid): the cost layer, 0 at or below
  `cost_dose_rate_low`, rising on a log scale to 99 at `cost_dose_rate_high`, 100 at or above
  `lethal_dose_rate` (0: never); cells the map is unsure of cost 0. terrain_mapper merges it
  into `costmap` (its `dose_layer_topic`), so routes avoid the high-dose ground;
- `radiation/sources` (geometry_msgs/PoseArray): the sources located (strongest first),
  their strengths and uncertainties on /diagnostics.

Live parameters: the cost scale, `period`, `diagnostics_period`.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Pose, PoseArray
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2

from ilrs_interfaces.msg import RadiationReading
from ilrs_robots.core.dose_layer import DoseSample, SampleLog, compute_layer
from ilrs_robots.core.radiation_mapping import SourceFit
from ilrs_robots.core.terrain_mapping import PoseHistory
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.params import ParameterError, declare, run_node
from ilrs_robots.nodes.qos import LATCHED

FIELDS = ("x", "y", "z", "dose_rate", "dose_rate_stddev")


class RadiationMapper(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("radiation_mapper")
        d = self
        self.map_frame = declare(d, "map_frame", "map", "Frame of the pose and the maps", bool,
                                 "non-empty", read_only=True)
        pose_topic = declare(d, "pose_topic", "odometry/filtered", "Pose of the rover "
                             "(nav_msgs/Odometry in map_frame)", bool, "non-empty",
                             read_only=True)
        self.pose_timeout = declare(d, "pose_timeout", 1.0, "A reading is placed only at a "
                                    "pose stamped this close to it (s)", range=(0.01, 60.0))
        self.resolution = declare(d, "resolution", 1.0, "Cell size of the maps (m)",
                                  range=(0.1, 20.0), read_only=True)
        area = declare(d, "area", [0.0], "[x_min, y_min, x_max, y_max] of the maps (m); [0]: "
                       "the samples' extent grown by `margin`",
                       lambda a: len(a) == 1 or (len(a) == 4 and a[2] > a[0] and a[3] > a[1]),
                       "[0] or 4 numbers with x_max > x_min and y_max > y_min", read_only=True)
        self.area = tuple(area) if len(area) == 4 else None
        self.margin = declare(d, "margin", 10.0, "Map beyond the samples by this much (m)",
                              range=(0.0, 500.0), read_only=True)
        spacing = declare(d, "min_spacing", 0.5, "Keep a reading per this much driven (m)",
                          range=(0.0, 100.0), read_only=True)
        dwell = declare(d, "dwell_interval", 10.0, "Standing still, keep a reading per this "
                        "long (s)", range=(0.1, 3600.0), read_only=True)
        kept = declare(d, "max_samples", 2000, "Readings kept (the oldest dropped)",
                       range=(10, 100000), read_only=True)
        self.min_samples = declare(d, "min_samples", 10, "Readings needed before a map",
                                   range=(2, 100000), read_only=True)
        self.map_samples = declare(d, "max_map_samples", 400, "Readings (evenly thinned) a "
                                   "map is made of at most: its cost grows as their cube",
                                   range=(10, 5000), read_only=True)
        self.max_sources = declare(d, "max_sources", 3, "Sources to locate at most",
                                   range=(0, 10), read_only=True)
        self.low = declare(d, "cost_dose_rate_low", 10.0, "Dose rate at and below which the "
                           "ground costs nothing (uSv/h)", range=(1e-6, 1e6))
        self.high = declare(d, "cost_dose_rate_high", 1000.0, "Dose rate at which the cost "
                            "reaches 99 (uSv/h)", range=(1e-6, 1e6))
        self.lethal = declare(d, "lethal_dose_rate", 0.0, "Dose rate at and above which a "
                              "cell is lethal (uSv/h); 0: never", range=(0.0, 1e9))
        if self.high <= self.low:
            raise ParameterError("cost_dose_rate_high", f"must be above cost_dose_rate_low "
                                 f"({self.low:g}) (got {self.high:g})")
        period = declare(d, "period", 5.0, "Seconds between map updates", range=(0.5, 3600.0))
        diag_period = declare(d, "diagnostics_period", 1.0, "Period of /diagnostics (s)",
                              range=(0.05, 60.0))
        self.log = SampleLog(spacing, dwell, kept)
        self.poses = PoseHistory(keep=2000)
        self._fit: SourceFit | None = None
        self._status = ("WARN", f"waiting for {self.min_samples} readings with a pose")
        self._new = 0
        self._unplaced = 0
        self._compute_s = math.nan
        self.cloud_pub = self.create_publisher(PointCloud2, "radiation/dose_map", LATCHED)
        self.cost_pub = self.create_publisher(OccupancyGrid, "radiation/dose_cost", LATCHED)
        self.sources_pub = self.create_publisher(PoseArray, "radiation/sources", LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Odometry, pose_topic, self._on_pose, 100)
        self.create_subscription(RadiationReading, "radiation/reading", self._on_reading, 50)
        self.map_timer = self.create_timer(period, self._update)
        self.diag_timer = self.create_timer(diag_period, self._diagnostics)
        self.hardware_id = self.get_namespace().strip("/") or "robot"
        self.get_logger().info(
            f"mapping 'radiation/reading' at '{pose_topic}' in '{self.map_frame}', "
            f"{self.resolution:g} m cells, cost from {self.low:g} to {self.high:g} uSv/h")

    def on_parameters_set(self, changed: dict[str, Any]) -> None:
        """Apply live changes: the cost scale and the periods."""
        low = float(changed.get("cost_dose_rate_low", self.low))
        high = float(changed.get("cost_dose_rate_high", self.high))
        if high > low:
            self.low, self.high = low, high
        else:
            self.get_logger().warning(f"cost scale kept at {self.low:g}..{self.high:g} uSv/h: "
                                      f"{low:g}..{high:g} does not rise")
        if "lethal_dose_rate" in changed:
            self.lethal = float(changed["lethal_dose_rate"])
        if "pose_timeout" in changed:
            self.pose_timeout = float(changed["pose_timeout"])
        if "period" in changed:
            self.map_timer.timer_period_ns = int(changed["period"] * 1e9)
        if "diagnostics_period" in changed:
            self.diag_timer.timer_period_ns = int(changed["diagnostics_period"] * 1e9)

    # -- inputs -----------------------------------------------------------------------------
    def _on_pose(self, msg: Odometry) -> None:
        p = msg.pose.pose.position
        T = np.eye(4)
        T[:3, 3] = (p.x, p.y, p.z)
        self.poses.add(_seconds(msg.header.stamp), T)

    def _on_reading(self, msg: RadiationReading) -> None:
        stamp = _seconds(msg.header.stamp)
        T = self.poses.at(stamp, self.pose_timeout)
        if T is None:
            self._unplaced += 1
            return
        x, y, z = (float(v) for v in T[:3, 3])
        sample = DoseSample(x, y, z, float(msg.dose_rate), float(msg.dose_rate_stddev), stamp)
        if self.log.add(sample):
            self._new += 1

    # -- outputs ----------------------------------------------------------------------------
    def _update(self) -> None:
        n = len(self.log.samples)
        if self._new == 0 or n < self.min_samples:
            return
        started = time.perf_counter()
        try:
            layer = compute_layer(self.log, self.resolution, self.area, self.margin,
                                  self.max_sources, self.min_samples, self.map_samples,
                                  self.low, self.high, self.lethal)
        except (ValueError, np.linalg.LinAlgError) as exc:
            self._status = ("ERROR", f"no map from {n} readings: {exc}")
            self.get_logger().error(self._status[1], throttle_duration_sec=30.0)
            return
        self._compute_s = time.perf_counter() - started
        self._new = 0
        self._fit = layer.fit
        stamp = self.get_clock().now().to_msg()
        grid = layer.grid
        self.cost_pub.publish(messages.occupancy_grid(stamp, self.map_frame,
                                                      grid.to_occupancy(), grid.origin,
                                                      grid.resolution))
        self.cloud_pub.publish(messages.point_cloud(stamp, self.map_frame, layer.points,
                                                    FIELDS))
        sources = PoseArray()
        sources.header.stamp, sources.header.frame_id = stamp, self.map_frame
        for s in layer.fit.sources if layer.fit is not None else []:
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = s.position
            pose.orientation.w = 1.0
            sources.poses.append(pose)
        self.sources_pub.publish(sources)
        self._status = ("OK", f"map of {n} readings, {len(sources.poses)} source(s) located, "
                              f"peak {layer.peak:.1f} uSv/h")

    def _diagnostics(self) -> None:
        level, message = self._status
        values: list[tuple[str, object]] = [
            ("samples", len(self.log.samples)), ("refused", self.log.refused),
            ("without_pose", self._unplaced),
            ("compute_s", f"{self._compute_s:.2f}")]
        fit = self._fit
        for i, s in enumerate(fit.sources if fit is not None else []):
            x, y, z = s.position
            values.append((f"source_{i}", f"({x:.2f}, {y:.2f}, {z:.2f}) +- "
                           f"{max(s.position_std[:2]):.2f} m, {s.strength:.1f} +- "
                           f"{s.strength_std:.1f} uSv/h at 1 m"))
        if fit is not None:
            values.append(("background", f"{fit.background:.3f}"))
        array = DiagnosticArray(status=[messages.diagnostic(
            f"{self.get_name()}: dose map", f"{self.hardware_id}/radiation_mapper", level,
            message, values)])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)


def _seconds(stamp: Any) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def main(args: list[str] | None = None) -> None:
    """Console script `radiation_mapper`."""
    raise SystemExit(run_node(RadiationMapper, args))


if __name__ == "__main__":
    sys.exit(main())
