"""A berm printed by the simulator's gantry printer becomes terrain, and the rover's hazard
mapping (terrain_mapping on the nav camera's depth image) treats it as the obstacle it is,
though the prior map it plans on has never heard of it."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ilrs_robots.core.costmap import CostParams  # noqa: E402
from ilrs_robots.core.elevation import STEP  # noqa: E402
from ilrs_robots.core.stereo import OPTICAL_FROM_MUJOCO, pose_matrix  # noqa: E402
from ilrs_robots.core.terrain_mapping import TerrainMapper  # noqa: E402
from ilrs_robots.drivers.print_files import load_plan, load_printer, print_job_of  # noqa: E402
from ilrs_robots.drivers.printer import ErrorCode, PrinterHost  # noqa: E402
from ilrs_robots.sim.physics import RoverPhysics  # noqa: E402
from ilrs_robots.sim.site_printer import SitePrinter  # noqa: E402
from ilrs_robots.sim.world import load_world  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptys")

SITE = (10.0, 10.0)
WORLD = f"""name: berm_site
seed: 2
gravity: 1.62
terrain: {{type: flat, size: [40.0, 40.0], resolution: 0.25, base_height: 0.0}}
sun: {{elevation_deg: 30.0, azimuth_deg: 135.0}}
sites:
  construction_site: {{position: [{SITE[0]}, {SITE[1]}], pad_radius: 6.0}}
rover_start: {{position: [2.0, 2.0], yaw_deg: 0.0}}
"""
# a 90 degree arc 2 m from the printer's centre, towards +y: around (10, 12) in the world
BERM = """name: small_berm
type: blast_berm
radius: 2.0
arc_deg: 90.0
center_azimuth_deg: 90.0
base_width: 0.6
height: 0.4
batter_deg: 60.0
"""
W, H = 320, 240


def test_a_printed_berm_is_mapped_as_a_hazard_the_prior_does_not_know(tmp_path: Path):
    world_file = tmp_path / "berm_site.yaml"
    world_file.write_text(WORLD)
    design = tmp_path / "small_berm.yaml"
    design.write_text(BERM)
    plan = load_plan(design)
    physics = RoverPhysics(load_world(world_file))
    prior = physics.heightmap.resample(0.5)  # the map the rover knew before the print
    physics.reset_pose(SITE[0], SITE[1] - 2.0, np.pi / 2)  # 4 m from the berm, facing it
    printer = SitePrinter(physics, "construction_site", tmp_path / "printer",
                          load_printer("regolith_paste_gantry"), speedup=2000.0).start()
    try:
        out: list = []
        host = PrinterHost(str(printer.emulator.link))
        worker = threading.Thread(target=lambda: out.append(host.print_job(print_job_of(plan))),
                                  daemon=True)
        worker.start()
        while worker.is_alive():  # this thread steps the physics, as the sim node does
            physics.advance(0.05)
            printer.update_terrain()
            worker.join(0.02)
        host.close()
        assert out and out[0].error_code == ErrorCode.NONE, out
        printer.update_terrain(force=True)
        top = physics.terrain_height(SITE[0], SITE[1] + 2.0)
        assert top > 0.3, top  # the berm stands in the terrain

        rgb, depth = physics.render_rgbd("nav_left", W, H)
        k = physics.camera_intrinsics("nav_left", W, H)
        pos, rot = physics.camera_pose("nav_left")
        cam = pose_matrix(rot @ OPTICAL_FROM_MUJOCO, pos)
        mapper = TerrainMapper(prior, 0.01, CostParams())
        rover = physics.ground_truth()[0]
        res = mapper.process_depth(depth, (k.fx, k.fy, k.cx, k.cy), cam, (rover[0], rover[1]))
        hz = res.hazards
        X, Y = hz.cell_centres()
        known = ~hz.unknown
        on_berm = known & (np.hypot(X - SITE[0], Y - SITE[1]) < 2.3) \
            & (np.hypot(X - SITE[0], Y - SITE[1]) > 1.7) & (Y > SITE[1] + 1.4)
        before = known & (Y > rover[1] + 0.8) & (Y < SITE[1] + 0.8) \
            & (np.abs(X - SITE[0]) < 1.0)
        assert on_berm.sum() > 20 and before.sum() > 20, (on_berm.sum(), before.sum())
        lethal = hz.lethal
        assert lethal[on_berm].mean() > 0.3, lethal[on_berm].mean()  # the berm is a hazard
        assert (hz.flags[before] & STEP).mean() < 0.05  # the flat ground before it is not
        # the prior, printed over, still says flat there: only what the rover saw knows
        assert abs(float(prior.height_at(SITE[0], SITE[1] + 2.0))) < 0.05
    finally:
        printer.stop()
        physics.close()
