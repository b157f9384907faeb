"""A rock dropped on the simulator's terrain at run time (RoverPhysics.drop_rock, no ROS):
the wheels touch it and the nav camera's depth image sees it, as printed material is."""

from __future__ import annotations

import math
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ilrs_robots.core.geometry import to_xyzw, wxyz_to_yaw  # noqa: E402
from ilrs_robots.core.navigation_support import tilt_of  # noqa: E402
from ilrs_robots.core.stereo import OPTICAL_FROM_MUJOCO, pose_matrix  # noqa: E402
from ilrs_robots.sim.physics import RoverPhysics  # noqa: E402
from ilrs_robots.sim.rock_drop import RockDropError  # noqa: E402
from ilrs_robots.sim.world import load_world  # noqa: E402

WORLD = """name: rock_drop
seed: 3
gravity: 1.62
terrain: {type: flat, size: [30.0, 30.0], resolution: 0.25, base_height: 0.0}
sun: {elevation_deg: 30.0, azimuth_deg: 135.0}
rover_start: {position: [0.0, 0.0], yaw_deg: 0.0}
"""
W, H = 320, 240


@pytest.fixture
def physics(tmp_path: Path):
    path = tmp_path / "rock_drop.yaml"
    path.write_text(WORLD)
    p = RoverPhysics(load_world(path))
    yield p
    p.close()


def depth_at(p: RoverPhysics, x: float, y: float, z: float) -> tuple[float, float]:
    """(depth the nav camera renders at the pixel of world point (x, y, z), that point's
    own depth along the optical axis)."""
    _, depth = p.render_rgbd("nav_left", W, H)
    k = p.camera_intrinsics("nav_left", W, H)
    pos, rot = p.camera_pose("nav_left")
    cam = pose_matrix(rot @ OPTICAL_FROM_MUJOCO, pos)
    point = np.linalg.inv(cam) @ np.array([x, y, z, 1.0])
    u = int(round(k.fx * point[0] / point[2] + k.cx))
    v = int(round(k.fy * point[1] / point[2] + k.cy))
    return float(depth[v, u]), float(point[2])


def test_a_dropped_rock_is_terrain_the_cameras_see_and_the_wheels_climb(physics):
    p = physics
    rock = (4.0, 0.6, 0.6, 0.4)  # x, y, radius, height: in the track of the left wheels
    seen_before, ground = depth_at(p, rock[0], rock[1], 0.0)
    assert seen_before == pytest.approx(ground, rel=0.02)  # flat ground there
    bump = p.drop_rock(*rock)
    assert bump.nodes > 10 and bump.peak == pytest.approx(0.4)
    p.advance(0.01)
    # the collision terrain holds it
    assert p.terrain_height(rock[0], rock[1]) == pytest.approx(0.4, abs=0.01)
    assert p.terrain_height(rock[0] + 1.0, rock[1]) == pytest.approx(0.0, abs=1e-6)
    # the camera draws it: the ray to the ground under the rock ends on the rock, nearer
    seen, _ = depth_at(p, rock[0], rock[1], 0.0)
    assert seen < ground - 0.3, (seen, ground)
    # the left wheels run into it: the rover tilts, as it never does on the flat ground
    tilts = []
    p.set_wheel_speeds([1.2] * 6)
    for _ in range(200):  # 10 s at 0.3 m/s
        p.advance(0.05)
        tilts.append(tilt_of(to_xyzw(p.ground_truth()[1])))
    p.set_wheel_speeds([0.0] * 6)
    pos = p.ground_truth()[0]
    assert pos[0] > 2.0  # it drove up to the rock (whose foot is 0.6 m ahead of the wheels)
    assert math.degrees(max(tilts)) > 5.0, math.degrees(max(tilts))
    assert abs(wxyz_to_yaw(p.ground_truth()[1])) < 1.0


def test_rocks_off_the_terrain_or_on_the_rover_are_refused(physics):
    before = physics.heightmap.heights.copy()
    for args, words in (((20.0, 0.0, 0.5, 0.4), "off the terrain"),
                        ((0.5, 0.0, 0.5, 0.4), "would land on the rover"),
                        ((5.0, math.nan, 0.5, 0.4), "y must be a finite number")):
        with pytest.raises(RockDropError, match=words):
            physics.drop_rock(*args)
    assert np.array_equal(physics.heightmap.heights, before)


def test_a_rock_shows_where_the_terrain_is_drawn_in_patches():
    """south_pole: the cameras draw render-only height fields (a fine patch that follows
    them, a coarse whole world); a dropped rock is refilled into them."""
    p = RoverPhysics("south_pole")
    try:
        assert p.render_terrain_centre() is not None  # the patched rendering is in use
        pos, yaw = p.ground_truth()[0], p.yaw()
        x, y = pos[0] + 5.0 * math.cos(yaw), pos[1] + 5.0 * math.sin(yaw)
        ground = p.terrain_height(x, y)
        seen_before, _ = depth_at(p, x, y, ground)
        p.drop_rock(x, y, 0.6, 0.45)
        assert p.terrain_height(x, y) == pytest.approx(ground + 0.45, abs=0.01)
        seen, _ = depth_at(p, x, y, ground)
        assert seen < seen_before - 0.3, (seen, seen_before)
    finally:
        p.close()
