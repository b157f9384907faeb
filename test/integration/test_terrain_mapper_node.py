"""The terrain_mapper node over real DDS: the global costmap of the south_pole world's prior
(reactor exclusion zone, site structures and steep crater walls lethal, the depot pad free),
and, in the embedded simulator with the real base driver and localization, a step the
rover drives towards appears in local_costmap (what stereo never saw stays unknown) and in
the global costmap, with the elevation map as a cloud and as a grid; the same with the
mapper on the simulator's depth image (`input: depth`) instead of stereo."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from nav_msgs.msg import MapMetaData, OccupancyGrid, Odometry
from sensor_msgs.msg import Image, PointCloud2

from ilrs_robots.core import costmap as cm
from ilrs_robots.runner.missions import odom_pose
from ilrs_robots.runner.processes import Supervisor
from ilrs_robots.runner.ros_client import LATCHED, RosClient, wait_until
from ilrs_robots.runner.stacks import load_stack
from ilrs_robots.sim.world import build_heightmap, load_world

W, H = 320, 240
STEP_WORLD = Path(__file__).parent / "worlds" / "mapper_step.yaml"


def grid_of(msg: OccupancyGrid) -> np.ndarray:
    """The cells of an OccupancyGrid, row 0 south."""
    return np.asarray(msg.data, dtype=np.int8).reshape(msg.info.height, msg.info.width)


def cell(msg: OccupancyGrid, x: float, y: float) -> tuple[int, int]:
    """(row, col) of a map point."""
    i = msg.info
    return (int(math.floor((y - i.origin.position.y) / i.resolution)),
            int(math.floor((x - i.origin.position.x) / i.resolution)))


def centres(msg: OccupancyGrid) -> tuple[np.ndarray, np.ndarray]:
    """Meshgrid (X, Y) of the cell centres."""
    i = msg.info
    xs = i.origin.position.x + (np.arange(i.width) + 0.5) * i.resolution
    ys = i.origin.position.y + (np.arange(i.height) + 0.5) * i.resolution
    return np.meshgrid(xs, ys)


def test_prior_costmap_of_the_south_pole(launcher, ros):
    proc = launcher.start("terrain_mapper", "rover1",
                          {"world": "south_pole", "keep_out_radius_reactor": 15.0})
    costmap = ros.subscribe(OccupancyGrid, "/rover1/costmap", LATCHED)
    msg = costmap.wait_for(timeout=120)
    assert msg is not None, proc.output()
    assert msg.header.frame_id == "map" and msg.info.resolution == pytest.approx(0.5)
    assert (msg.info.width, msg.info.height) == (801, 801)
    g = grid_of(msg)
    world = load_world("south_pole")
    # the reactor's exclusion zone, all of it
    rx, ry = world.site("reactor_site").position
    X, Y = centres(msg)
    zone = np.hypot(X - rx, Y - ry) <= 15.0 - 0.5
    assert zone.sum() > 2000 and np.all(g[zone] == 100)
    # site structures: the depot shelter and the lander
    for site, obj in (("rover_depot", "depot_shelter"), ("landing_zone", "lander")):
        s = world.site(site)
        o = next(o for o in s.objects if o.name == obj)
        assert g[cell(msg, s.position[0] + o.position[0], s.position[1] + o.position[1])] == 100
    # the depot pad where the rover starts is known and drivable
    sx, sy = world.rover_start.position
    start = g[cell(msg, sx + world.site("rover_depot").position[0],
                   sy + world.site("rover_depot").position[1])]
    assert 0 <= start < 100
    # crater walls the orbiter resolves (slope over 3 DEM cells) well over the 20 deg limit
    hm = build_heightmap(world)
    orbital = hm.resample(world.prior_map.resolution).resample(0.5)
    slope = cm.terrain_layers(orbital.heights, 0.5,
                              cm.CostParams(plane_window=3 * world.prior_map.resolution)
                              ).slope_deg
    steep = slope > 24.0
    assert steep.sum() > 1000
    # node (row, col) of `orbital` is centred on the costmap's cell (row, col)
    assert msg.info.origin.position.x == pytest.approx(orbital.origin[0] - 0.25)
    assert np.mean(g[steep] == 100) > 0.9
    assert np.mean(g == -1) == 0.0  # the prior covers the whole map
    assert 0.01 < np.mean(g == 100) < 0.5


@pytest.fixture(scope="module", params=["stereo", "depth"])
def step_stack(request, tmp_path_factory):
    """sim (step world, small images at 5 Hz), base_driver, localization, terrain_mapper;
    the mapper on the stereo pair, or on the simulator's depth image."""
    run_dir = tmp_path_factory.mktemp("run")
    spec = load_stack("rover", "sim", str(run_dir))
    keep = ("sim", "base_driver", "localization", "terrain_mapper")
    nodes = [n for n in spec.nodes if n.executable in keep]
    depth = request.param == "depth"
    for n in nodes:
        if n.executable == "sim":
            n.parameters.update(world=str(STEP_WORLD), rate=1.0, stereo_rate=5.0,
                                mast_rate=0.0, camera_width=W, camera_height=H,
                                depth_rate=5.0 if depth else 0.0)
        if n.executable == "terrain_mapper":
            n.parameters.update(input=request.param)
    sup = Supervisor(nodes, dict(os.environ), run_dir / "logs", say=lambda _: None)
    sup.start()
    ros = RosClient("mapper_test")
    yield sup, ros
    ros.close()
    sup.stop()


def logs(sup: Supervisor) -> str:
    """The output of every process (for assertion messages)."""
    return "\n".join(f"--- {k}\n{p.output()[-3000:]}" for k, p in sup.procs.items())


def test_a_step_ahead_appears_in_the_local_and_global_costmaps(step_stack):
    sup, ros = step_stack
    local = ros.subscribe(OccupancyGrid, "/rover1/local_costmap", 5)
    costmap = ros.subscribe(OccupancyGrid, "/rover1/costmap", LATCHED)
    cloud = ros.subscribe(PointCloud2, "/rover1/elevation_map", 5)
    heights = ros.subscribe(Image, "/rover1/elevation_grid", 5)
    info = ros.subscribe(MapMetaData, "/rover1/elevation_grid/info", 5)
    truth = ros.subscribe(Odometry, "/rover1/sim/ground_truth")
    prior = costmap.wait_for(timeout=120)
    assert prior is not None, logs(sup)
    assert local.wait_for(timeout=120) is not None, logs(sup)
    # the block: x in [-4.5, -3.5], |y| <= 1.5 (world file); the rover starts at x = -10
    bx0, bx1, by = -4.5, -3.5, 1.5
    r0, c0 = cell(prior, (bx0 + bx1) / 2, 0.0)
    near = (slice(r0 - 4, r0 + 5), slice(c0 - 4, c0 + 5))
    before = grid_of(prior)[near].astype(int)
    assert before.max() < 100  # a marker: not a keep-out, the prior knows nothing of it
    # drive 1.5 m towards it
    cmd = ros.publisher(Twist, "/rover1/cmd_vel", wait_for_subscribers=20)
    start = odom_pose(truth.wait_for(timeout=30))
    drive = Twist()
    drive.linear.x = 0.3
    seen = truth.received

    def far_enough():
        nonlocal seen
        cmd.publish(drive)
        got = truth.next_after(seen, timeout=5.0)
        assert got is not None, "no ground truth"
        seen = got[1]
        return odom_pose(got[0]).x - start.x > 1.5

    assert wait_until(far_enough, timeout=90, period=0.0), logs(sup)
    cmd.publish(Twist())
    rover = odom_pose(truth.last())

    def step_marked():
        msg = local.last()
        X, Y = centres(msg)
        g = grid_of(msg)
        block = (X > bx0) & (X < bx1) & (np.abs(Y) < by)
        return msg if np.mean(g[block] == 100) > 0.1 else None

    msg = wait_until(step_marked, timeout=60)
    assert msg is not None, logs(sup)
    assert msg.header.frame_id == "map"
    X, Y = centres(msg)
    g = grid_of(msg)
    # the flat ground between the rover and the block is seen and not a hazard
    ground = (X > rover.x + 2.5) & (X < bx0 - 0.5) & (np.abs(Y) < 1.0)
    assert np.mean(g[ground] >= 0) > 0.8 and np.mean(g[ground] == 100) < 0.05
    # behind the rover, where the cameras never looked, stays unknown
    behind = X < start.x - 1.5
    assert behind.any() and np.all(g[behind] == -1)
    # the global costmap learnt it too: costlier around the block than the prior said
    changed = costmap.wait_for(lambda m: grid_of(m)[near].astype(int).max()
                               > before.max() + 10, timeout=30)
    assert changed is not None, logs(sup)
    # the elevation map as a cloud and as a grid (32FC1 heights, NaN unknown, with its info)
    c = cloud.wait_for(lambda m: m.width > 100, timeout=10)
    assert c is not None and c.point_step == 12 and c.header.frame_id == "map"
    pts = np.frombuffer(c.data, np.float32).reshape(-1, 3)
    on_block = (pts[:, 0] > bx0) & (pts[:, 0] < bx1) & (np.abs(pts[:, 1]) < by)
    ground_z = np.median(pts[pts[:, 0] < bx0 - 0.5, 2])
    # cells at the block mix its (textureless) top with its face: well above the ground
    assert on_block.any() and np.nanmax(pts[on_block, 2]) - ground_z > 0.15
    # the newest grid whose info arrived too (the two topics' readers match at different
    # moments, so the first grid's info may have gone out before the info reader was there)
    def paired():
        metas = {(m.map_load_time.sec, m.map_load_time.nanosec): m for m in info.messages}
        return next(((i, metas[(i.header.stamp.sec, i.header.stamp.nanosec)])
                     for i in reversed(heights.messages)
                     if (i.header.stamp.sec, i.header.stamp.nanosec) in metas), None)
    pair = wait_until(paired, 10)
    assert pair is not None, (heights.received, info.received)
    img, meta = pair
    assert img.encoding == "32FC1"
    z = np.frombuffer(img.data, np.float32).reshape(img.height, img.width)
    assert (meta.width, meta.height) == (img.width, img.height)
    assert np.isnan(z).mean() > 0.3 and np.isfinite(z).sum() > 500
    flat = np.nanmedian(z)
    assert abs(flat) < 0.2  # the ground, on the prior's datum (z = 0)


def test_prior_from_a_dem_file(launcher, ros, tmp_path):
    """A real rover's prior: an .npz DEM with a 30 degree ramp on one side and a keep-out."""
    res = 1.0
    xs = np.arange(41) * res - 20.0
    X, _ = np.meshgrid(xs, xs)
    heights = np.where(X > 5.0, (X - 5.0) * math.tan(math.radians(30.0)), 0.0)
    dem = tmp_path / "site.npz"
    np.savez(dem, heights=heights, origin=np.array([-20.0, -20.0]), resolution=res,
             noise_sigma=0.02, keep_outs=np.array([[-10.0, -10.0, 3.0]]))
    proc = launcher.start("terrain_mapper", "dem_rover", {"dem_file": str(dem)})
    msg = ros.subscribe(OccupancyGrid, "/dem_rover/costmap", LATCHED).wait_for(timeout=60)
    assert msg is not None, proc.output()
    g = grid_of(msg)
    assert g[cell(msg, 12.0, 0.0)] == 100  # the ramp: 30 deg over the 20 deg limit
    assert g[cell(msg, -10.0, -10.0)] == 100  # the keep-out
    assert 0 <= g[cell(msg, -5.0, 5.0)] < 50  # level ground


@pytest.mark.parametrize(("parameters", "words"), [
    ({"world": "south_pole", "dem_file": "/tmp/x.npz"}, "parameter 'dem_file' must be empty"),
    ({"world": "no_such_world"}, "parameter 'world' is not usable"),
    ({"dem_file": "/nonexistent/dem.npz"}, "parameter 'dem_file' must be an .npz"),
    ({"keep_out_radius_reactor": -1.0}, "parameter 'keep_out_radius_reactor' must be in"),
    ({"costmap_perod": 1.0}, "did you mean 'costmap_period'?"),
])
def test_a_bad_parameter_stops_the_mapper_with_a_reason(launcher, parameters, words):
    proc = launcher.start("terrain_mapper", "rover1", parameters)
    assert wait_until(lambda: proc.returncode is not None, 60), proc.output()
    assert proc.returncode == 2, proc.output()
    assert "configuration error" in proc.output() and words in proc.output()
