"""The radiation_mapper node over real DDS: readings along a survey (from a known field:
one source, inverse square, 5 % noise) at the poses published beside them become a dose map
(PointCloud2), the source located within half a metre, and a cost layer that terrain_mapper
merges into its costmap; readings without a pose are counted, not mapped; bad parameters
stop the node with a reason."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseArray
from nav_msgs.msg import OccupancyGrid, Odometry
from sensor_msgs.msg import PointCloud2
from test_terrain_mapper_node import cell, grid_of

from ilrs_interfaces.msg import RadiationReading
from ilrs_robots.nodes.messages import stamp_of
from ilrs_robots.runner.ros_client import LATCHED, wait_until

SOURCE = (6.0, 0.0, 1.0)
STRENGTH = 400.0  # uSv/h at 1 m
NS = "/rover1"
PARAMS = {"period": 1.0, "resolution": 1.0, "margin": 4.0, "cost_dose_rate_low": 5.0,
          "cost_dose_rate_high": 500.0, "max_sources": 2}


def dose(x: float, y: float, z: float) -> float:
    r2 = max((x - SOURCE[0]) ** 2 + (y - SOURCE[1]) ** 2 + (z - SOURCE[2]) ** 2, 0.09)
    return 0.2 + STRENGTH / r2


def survey(ros) -> None:
    """Drive a lawnmower over the source's area: a pose and the reading taken there, stamped
    alike (a reading every 2 s of its clock), the pose first."""
    rng = np.random.default_rng(11)
    poses = ros.publisher(Odometry, f"{NS}/odometry/filtered", wait_for_subscribers=30)
    readings = ros.publisher(RadiationReading, f"{NS}/radiation/reading",
                             wait_for_subscribers=30)
    t = 1000.0
    for k, y in enumerate(np.arange(-8.0, 8.01, 2.0)):
        xs = np.arange(-4.0, 16.01, 0.6)
        for x in xs if k % 2 == 0 else xs[::-1]:
            pose = Odometry()
            pose.header.frame_id = "map"
            pose.header.stamp = stamp_of(t)
            pose.pose.pose.position.x, pose.pose.pose.position.y = float(x), float(y)
            pose.pose.pose.position.z = 0.8
            pose.pose.pose.orientation.w = 1.0
            poses.publish(pose)
            true = dose(x, y, 0.8)
            measured = max(0.0, true + rng.normal(0.0, 0.05 * true))
            reading = RadiationReading(dose_rate=float(measured),
                                       dose_rate_stddev=float(0.05 * true))
            reading.counts_per_minute = reading.dose_rate / 0.0065
            reading.header.stamp = stamp_of(t)
            t += 2.0
            time.sleep(0.01)  # the pose first
            readings.publish(reading)


def fields_of(cloud: PointCloud2) -> np.ndarray:
    """The cloud's float32 points as (n, fields)."""
    return np.frombuffer(bytes(cloud.data), dtype=np.float32).reshape(cloud.width, -1)


def test_a_survey_gives_the_map_the_source_and_a_costmap_that_avoids_it(launcher, ros):
    mapper = launcher.start("radiation_mapper", "rover1", PARAMS)
    terrain = launcher.start("terrain_mapper", "rover1", {
        "world": "test_flat", "dose_layer_topic": "radiation/dose_cost", "input": "depth",
        "costmap_period": 0.5})
    costmap = ros.subscribe(OccupancyGrid, f"{NS}/costmap", LATCHED)
    first = costmap.wait_for(timeout=120)
    assert first is not None, terrain.output()
    assert grid_of(first)[cell(first, *SOURCE[:2])] == 0  # flat ground: free before the survey
    layer = ros.subscribe(OccupancyGrid, f"{NS}/radiation/dose_cost", LATCHED)
    clouds = ros.subscribe(PointCloud2, f"{NS}/radiation/dose_map", LATCHED)
    sources = ros.subscribe(PoseArray, f"{NS}/radiation/sources", LATCHED)
    diags = ros.subscribe(DiagnosticArray, "/diagnostics", 100)
    survey(ros)

    def located():
        last = sources.last()
        return last if last is not None and last.poses and math.dist(
            (last.poses[0].position.x, last.poses[0].position.y), SOURCE[:2]) < 0.5 else None

    found = wait_until(located, 120)
    assert found is not None, (sources.last(), mapper.output())
    assert found.header.frame_id == "map"
    # the cost layer and the dose map published with these sources (one update, one stamp)
    grid = layer.wait_for(lambda m: m.header.stamp == found.header.stamp, timeout=30)
    assert grid is not None and grid.header.frame_id == "map"
    g = grid_of(grid)
    assert 60 < g[cell(grid, *SOURCE[:2])] <= 99
    assert g[cell(grid, -4.0, -8.0)] == 0
    # the dose map: every cell a point with its dose and stddev, peaking at the source
    cloud = clouds.wait_for(lambda m: m.header.stamp == found.header.stamp, timeout=30)
    assert cloud is not None
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "dose_rate", "dose_rate_stddev"]
    pts = fields_of(cloud)
    assert len(pts) == grid.info.width * grid.info.height
    peak = pts[np.argmax(pts[:, 3])]
    assert math.dist(peak[:2], SOURCE[:2]) < 1.5 and np.all(pts[:, 4] >= 0)
    # terrain_mapper raised its costmap where the layer is costly
    merged = costmap.wait_for(lambda m: grid_of(m)[cell(m, *SOURCE[:2])] > 50, timeout=60)
    assert merged is not None, terrain.output()
    assert grid_of(merged)[cell(merged, -4.0, -8.0)] == 0
    status = diags.wait_for(lambda m: any(s.name.endswith("radiation_mapper: dose map")
                                          and s.level == DiagnosticStatus.OK for s in m.status),
                          timeout=30)
    assert status is not None, mapper.output()


def test_readings_without_a_pose_are_counted_not_mapped(launcher, ros):
    mapper = launcher.start("radiation_mapper", "rover1", {**PARAMS, "min_samples": 2})
    readings = ros.publisher(RadiationReading, f"{NS}/radiation/reading",
                             wait_for_subscribers=30)
    diags = ros.subscribe(DiagnosticArray, "/diagnostics", 100)
    clouds = ros.subscribe(PointCloud2, f"{NS}/radiation/dose_map", LATCHED)
    for _ in range(5):
        readings.publish(RadiationReading(dose_rate=1.0, dose_rate_stddev=0.1))

    def unplaced(m):
        for s in m.status:
            if s.name.endswith("radiation_mapper: dose map"):
                v = {kv.key: kv.value for kv in s.values}
                return int(v["without_pose"]) == 5 and int(v["samples"]) == 0
        return False

    assert diags.wait_for(unplaced, timeout=60) is not None, mapper.output()
    assert clouds.wait_for(timeout=2.0) is None  # nothing to map


@pytest.mark.parametrize(("parameters", "words"), [
    ({"cost_dose_rate_low": 50.0, "cost_dose_rate_high": 5.0},
     "parameter 'cost_dose_rate_high' must be above cost_dose_rate_low"),
    ({"area": [10.0, 0.0, 5.0, 5.0]}, "parameter 'area' must be [0] or 4 numbers"),
    ({"resolution": 0.0}, "parameter 'resolution' must be in [0.1, 20]"),
])
def test_a_bad_parameter_stops_the_mapper_with_a_reason(launcher, parameters, words):
    proc = launcher.start("radiation_mapper", "rover1", parameters)
    assert wait_until(lambda: proc.returncode is not None, 120), proc.output()
    assert proc.returncode == 2 and words in proc.output(), proc.output()
