"""The gantry printer of the embedded simulator: what it prints joins the MuJoCo terrain."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.action import ActionClient
from sensor_msgs.msg import Image

from ilrs_interfaces.action import PrintStructure
from ilrs_robots.core.construction.slicer import expected_height_field
from ilrs_robots.drivers.print_files import load_plan, load_printer, print_job_of
from ilrs_robots.drivers.printer import ErrorCode, PrinterHost
from ilrs_robots.nodes.goal_requests import send_goal
from ilrs_robots.resources import config_path
from ilrs_robots.runner.ros_client import wait_until
from ilrs_robots.sim.physics import RoverPhysics
from ilrs_robots.sim.site_printer import SitePrinter
from ilrs_robots.sim.world import load_world

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

PRINTER = load_printer("regolith_paste_gantry")
SITE = (10.0, 10.0)
WORLD = f"""name: test_site
seed: 1
gravity: 1.62
terrain: {{type: flat, size: [40.0, 40.0], resolution: 0.5, base_height: 0.0}}
sun: {{elevation_deg: 30.0, azimuth_deg: 135.0}}
sites:
  construction_site: {{position: [{SITE[0]}, {SITE[1]}], pad_radius: 6.0}}
rover_start: {{position: [2.0, 10.0], yaw_deg: 0.0}}
"""


def world_file(tmp_path: Path) -> Path:
    path = tmp_path / "test_site.yaml"
    path.write_text(WORLD)
    return path


def test_printed_pad_raises_the_terrain_as_designed_and_the_cameras_see_it(tmp_path):
    plan = load_plan(config_path("designs", "landing_pad_small.yaml"))
    physics = RoverPhysics(load_world(world_file(tmp_path)))
    physics.reset_pose(SITE[0] - 3.5, SITE[1], 0.0)  # 2 m short of the pad, facing it
    before = physics.render("nav_left", 320, 240).astype(int)
    ground = physics.terrain_height(*SITE)
    assert ground == pytest.approx(0.0, abs=0.01)
    printer = SitePrinter(physics, "construction_site", tmp_path / "printer", PRINTER,
                          speedup=1000.0).start()
    try:
        out: list = []
        host = PrinterHost(str(printer.emulator.link))
        worker = threading.Thread(target=lambda: out.append(host.print_job(print_job_of(plan))),
                                  daemon=True)
        worker.start()
        while worker.is_alive():  # this thread steps and renders the physics, as the sim does
            physics.advance(0.05)
            printer.update_terrain()
            worker.join(0.02)
        host.close()
        assert out and out[0].error_code == ErrorCode.NONE, out
        assert wait_until(lambda: len(printer.emulator.executed_numbers())
                          == len(plan.commands), 30)
        printer.update_terrain(force=True)
        assert printer.updates >= 2  # it grew while printing, not only at the end
        # the slab (40 mm) at the centre, nothing beyond the pad (3 m across)
        assert physics.terrain_height(*SITE) == pytest.approx(ground + 0.04, abs=0.004)
        x, y = printer.world_xy(2.5, 0.0)
        assert physics.terrain_height(x, y) == pytest.approx(ground, abs=0.002)
        # every terrain node under the printer holds the design's mean height over its cell
        # (the terrain's 0.5 m nodes average the 0.2 m rim with the slab around it)
        design = expected_height_field(plan.design, plan.layer_height, printer.grid)
        assert np.abs(printer.added - printer.node_heights(design)).max() < 0.01
        i, j = np.unravel_index(np.argmax(printer.added), printer.added.shape)
        hm = physics.heightmap
        x = hm.origin[0] + (printer.j0 + j) * hm.resolution
        y = hm.origin[1] + (printer.i0 + i) * hm.resolution
        assert printer.added[i, j] > 0.045  # the rim raises its nodes above the slab
        assert physics.terrain_height(x, y) == pytest.approx(ground + printer.added[i, j],
                                                             abs=0.002)
        after = physics.render("nav_left", 320, 240).astype(int)
        changed = np.abs(after - before).sum(axis=2) > 30
        assert changed.mean() > 0.02, changed.mean()  # the rover's camera sees the pad
    finally:
        printer.stop()
        physics.close()


def test_sim_node_serves_the_printer_and_its_site_camera(ros, launcher, tmp_path):
    """The sim node's printer on its pty, printed to by the construction node (sim stack
    wiring): the job completes with the layer check on the sim's site heights."""
    run_dir = tmp_path / "run"
    design = tmp_path / "pad.yaml"
    design.write_text("name: pad\ntype: landing_pad\ndiameter: 1.0\nthickness: 0.04\n"
                      "rim_width: 0.1\nrim_height: 0.02\n")
    heights = ros.subscribe(Image, "/builder1/site_camera/height", 5)
    diag = ros.subscribe(DiagnosticArray, "/diagnostics")
    sim = launcher.start("sim", parameters={
        "world": str(world_file(tmp_path)), "run_dir": str(run_dir), "printer": True,
        "printer_speedup": 100.0, "site_camera_rate": 4.0, "stereo_rate": 0.0,
        "mast_rate": 0.0, "imu_rate": 0.0})
    assert wait_until(lambda: (run_dir / "builder1" / "printer").exists(), 60), sim.output()
    node = launcher.start("construction", namespace="builder1", parameters={
        "port": str(run_dir / "builder1" / "printer"), "journal_dir": str(tmp_path / "j"),
        "site_camera_topic": "site_camera/height"})
    client = ActionClient(ros.node, PrintStructure, "/builder1/print_structure")
    assert client.wait_for_server(timeout_sec=60), node.output()
    # the node spins and has found this process (its diagnostics reach us) before the goal:
    # a goal's response was once lost on a loaded machine, sent before the node had matched
    # the client's response reader (config/fastdds.xml now lets a response wait for that)
    assert diag.wait_for(lambda a: any(s.name.endswith(": printer") for s in a.status), 60), \
        node.output()
    handle = send_goal(client, PrintStructure.Goal(design=str(design)), timeout=60.0)
    assert handle is not None, "no goal response\n" + node.output()
    assert handle.accepted, node.output()
    result_future = handle.get_result_async()
    assert wait_until(result_future.done, 180), node.output() + sim.output()
    result = result_future.result().result
    assert result.error_code == PrintStructure.Result.NONE, result.error_msg
    image = wait_until(lambda: (m := heights.last()) is not None and m.encoding == "32FC1"
                       and float(np.frombuffer(bytes(m.data), np.float32).max()) > 0.05
                       and m, 30)
    assert image, "no site image showing the pad"
    assert (image.width, image.height) == (320, 320)  # the envelope at a bead's cell

    def checked():
        for array in reversed(diag.messages):
            for s in array.status:
                if s.name.endswith(": printer"):
                    values = {kv.key: kv.value for kv in s.values}
                    return values if values["state"] == "idle" else None
        return None
    values = wait_until(checked, 10)
    assert values, [a.status for a in diag.messages[-3:]]
    assert values["layer_check"].startswith("layer") and not values["deviation"]
