"""The simulator's Geiger counter: the radiation_sensor node reads the world's field where
the rover stands (sim node + node over DDS, the counter on the sim's pty)."""

from __future__ import annotations

import sys

import pytest

from ilrs_interfaces.msg import RadiationReading
from ilrs_robots.runner.ros_client import wait_until
from ilrs_robots.sim.radiation import RadiationField
from ilrs_robots.sim.world import build_heightmap, load_world

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

WORLD = """name: test_hot
seed: 3
gravity: 1.62
terrain: {type: flat, size: [40.0, 40.0], resolution: 0.5, base_height: 0.0}
sun: {elevation_deg: 30.0, azimuth_deg: 135.0}
sites:
  hot_site:
    position: [6.0, 0.0]
    pad_radius: 4.0
    radiation_sources:
      - {name: source, position: [0.0, 0.0, 1.0], dose_rate_at_1m: 400.0}
rover_start: {position: [0.0, 0.0], yaw_deg: 0.0}
"""


def test_the_counter_reads_the_worlds_dose_at_the_rover(ros, launcher, tmp_path):
    world_file = tmp_path / "test_hot.yaml"
    world_file.write_text(WORLD)
    run_dir = tmp_path / "run"
    readings = ros.subscribe(RadiationReading, "/rover1/radiation/reading")
    sim = launcher.start("sim", parameters={
        "world": str(world_file), "run_dir": str(run_dir), "stereo_rate": 0.0,
        "mast_rate": 0.0, "imu_rate": 10.0, "use_sim_time": False})
    assert wait_until(lambda: (run_dir / "rover1" / "gmc").exists(), 60), sim.output()
    node = launcher.start("radiation_sensor", namespace="rover1", parameters={
        "port": str(run_dir / "rover1" / "gmc"), "window": 10.0, "period": 1.0})
    assert wait_until(lambda: len(readings.messages) >= 12, 90), node.output() + sim.output()
    # the rover rests at its start, ~6 m from the source: the field there, within statistics
    world = load_world(world_file)
    field = RadiationField.from_world(world, build_heightmap(world))
    expected = field.dose_rate((0.0, 0.0, 0.5 + 0.3))  # base link height is about 0.3 m
    last = readings.messages[-1]
    assert last.dose_rate_stddev > 0
    assert abs(last.dose_rate - expected) < max(5 * last.dose_rate_stddev, 0.25 * expected), (
        last, expected)
    assert expected > 5 * field.background  # the source, not the background, was counted
