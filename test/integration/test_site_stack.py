"""The `site` stack: rover1 and builder1 share one embedded simulator (their `sim` nodes merge),
and a print watched by runner/print_leg completes with the structure the design asks for."""

from __future__ import annotations

import os
import sys

import pytest
from nav_msgs.msg import Odometry

from ilrs_robots.resources import config_path
from ilrs_robots.runner.print_leg import PrintWatch
from ilrs_robots.runner.processes import Supervisor
from ilrs_robots.runner.ros_client import RosClient
from ilrs_robots.runner.stacks import load_stack

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

WORLD = """name: test_site
seed: 1
gravity: 1.62
terrain: {type: flat, size: [40.0, 40.0], resolution: 0.5, base_height: 0.0}
sun: {elevation_deg: 30.0, azimuth_deg: 135.0}
sites:
  construction_site: {position: [10.0, 10.0], pad_radius: 6.0}
rover_start: {position: [2.0, 10.0], yaw_deg: 0.0}
"""
KEEP = {"sim", "base_driver", "construction"}  # the merged simulator and one node per robot


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site stack in sim mode, trimmed to the simulator, the base driver and the printer's
    node (the autonomy nodes have their own tests), the printer at 200x."""
    tmp = tmp_path_factory.mktemp("site")
    world = tmp / "test_site.yaml"
    world.write_text(WORLD)
    spec = load_stack("site", "sim", str(tmp / "run"))
    sims = [n for n in spec.nodes if n.executable == "sim"]
    assert len(sims) == 1, "the two robots' simulators must merge into one"
    sims[0].parameters.update(world=str(world), printer_speedup=200.0, site_camera_rate=4.0,
                              stereo_rate=0.0, mast_rate=0.0, camera_width=160,
                              camera_height=120)
    nodes = [n for n in spec.nodes if n.name in KEEP]
    assert {n.name for n in nodes} == KEEP, [n.name for n in spec.nodes]
    sup = Supervisor(nodes, dict(os.environ), tmp / "run" / "logs", say=lambda _: None)
    sup.start()
    ros = RosClient("site_test")
    yield sup, ros
    ros.close()
    sup.stop()


def test_one_simulator_serves_the_rover_and_the_printer_which_prints_the_pad(site):
    sup, ros = site
    odom = ros.subscribe(Odometry, "/rover1/odom")
    assert odom.wait_for(timeout=60), sup.procs["sim"].output()  # the rover is served
    watch = PrintWatch(ros, config_path("designs", "landing_pad_small.yaml"))
    reason = watch.start(timeout=60)
    assert reason is None, reason + "\n" + sup.procs["builder1/construction"].output()
    report = watch.finish(timeout=300)
    text = "\n".join(report.describe())
    assert report.succeeded, text + "\n" + sup.procs["builder1/construction"].output()
    assert report.lines_sent >= report.lines_total > 100, text
    assert report.material_kg == pytest.approx(report.material_planned_kg, rel=0.05), text
    assert report.printed is not None, text
    assert report.printed.design_top_m == pytest.approx(0.08, abs=0.021), text
    assert abs(report.printed.printed_top_m - report.printed.design_top_m) < 0.02, text
    assert report.printed.deviation.fraction < 0.05, text
