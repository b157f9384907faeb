"""Stereo hazard mapping: the rig from calibrations, the elevation map and its hazards on
synthetic terrain, and the whole pipeline on a pair rendered by the MuJoCo simulator, whose
mapped heights must match the world's true terrain; untextured places stay unknown."""

from __future__ import annotations

import math
import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ilrs_robots.core.calibration import CameraCalibration  # noqa: E402
from ilrs_robots.core.elevation import (  # noqa: E402
    COST_LETHAL,
    COST_UNKNOWN,
    ROCK,
    SLOPE,
    STEP,
    UNKNOWN,
    ElevationMap,
    HazardLimits,
)
from ilrs_robots.core.stereo import (  # noqa: E402
    OPTICAL_FROM_MUJOCO,
    StereoMatcher,
    StereoRig,
    depth_points,
    pose_matrix,
    range_variance,
    transform_points,
)

W, H = 640, 480


def _surface(fn, x0=-4.0, x1=4.0, step=0.03) -> np.ndarray:
    xs = np.arange(x0, x1, step)
    X, Y = np.meshgrid(xs, xs)
    return np.column_stack([X.ravel(), Y.ravel(), fn(X, Y).ravel()])


def test_rig_from_calibrations_reads_baseline_from_right_projection():
    left = CameraCalibration.pinhole(640, 480, 400.0)
    right = CameraCalibration.pinhole(640, 480, 400.0)
    right.p[3] = -400.0 * 0.3
    rig = StereoRig.from_calibrations(left, right)
    assert rig.baseline == pytest.approx(0.3) and rig.fx == 400.0
    assert rig.depth(40.0) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="baseline"):
        StereoRig.from_calibrations(left, left)


def test_gentle_slope_is_free_and_steep_slope_is_lethal():
    for deg, lethal in ((10.0, False), (25.0, True)):
        em = ElevationMap(size=8.0, resolution=0.1)
        t = math.tan(math.radians(deg))
        em.add_points(_surface(lambda X, Y, t=t: t * X))
        hz = em.hazards(HazardLimits(max_slope_deg=20.0, max_step=0.3))
        inner = (slice(10, -10), slice(10, -10))
        assert np.nanmedian(hz.slope_deg[inner]) == pytest.approx(deg, abs=0.5)
        assert np.all(((hz.flags[inner] & SLOPE) != 0) == lethal)
        assert not np.any(hz.unknown[inner])


def test_rock_and_step_are_found_where_they_are():
    def terrain(X, Y):
        z = 0.02 * X
        z = z + np.where(np.hypot(X - 1.0, Y - 1.0) < 0.25, 0.35, 0.0)  # a rock
        return z + np.where(X < -2.0, -0.4, 0.0)  # a ledge

    em = ElevationMap(size=8.0, resolution=0.1)
    em.add_points(_surface(terrain))
    hz = em.hazards()
    X, Y = hz.cell_centres()
    rock = (hz.flags & ROCK) != 0
    assert rock[np.hypot(X - 1.0, Y - 1.0) < 0.1].all()
    assert not rock[np.hypot(X - 1.0, Y - 1.0) > 1.0].any()
    step = (hz.flags & STEP) != 0
    assert step[(np.abs(X + 2.0) < 0.1) & (np.abs(Y) < 3.0)].all()
    flat = (np.abs(X) < 0.5) & (np.abs(Y + 2.0) < 0.5)
    assert not hz.lethal[flat].any() and (hz.cost()[flat] < 50).all()
    assert (hz.cost()[rock] == COST_LETHAL).all()


def test_a_cell_of_scattered_points_is_not_a_step_but_a_consistent_one_is():
    """Stereo mismatches leave cells of a few scattered points whose mean sits 0.25 m off
    the ground around: within their spread, that is not a step over the 0.2 m limit. The
    same offset measured consistently is one."""
    ground = _surface(lambda X, Y: 0 * X, x0=-2.0, x1=2.0, step=0.025)
    in_cell = (ground[:, 0] >= 0.5) & (ground[:, 0] < 0.6) & (ground[:, 1] >= 0.5) \
        & (ground[:, 1] < 0.6)
    for heights, step in (([0.05, 0.25, 0.45], False), ([0.25, 0.25, 0.25], True)):
        em = ElevationMap(size=4.0, resolution=0.1)
        cell = np.array([[0.55, 0.55, z] for z in heights])
        pts = np.vstack([ground[~in_cell], cell])
        em.add_points(pts, np.full(len(pts), 0.01 ** 2))
        hz = em.hazards(HazardLimits(max_step=0.2))
        X, Y = hz.cell_centres()
        at = (np.abs(X - 0.55) < 0.01) & (np.abs(Y - 0.55) < 0.01)
        assert hz.height[at][0] == pytest.approx(0.25)
        assert bool((hz.flags[at] & STEP).any()) == step, (heights, hz.step[at])
        assert not ((hz.flags & STEP) != 0)[np.hypot(X - 0.55, Y - 0.55) > 0.5].any()


def test_cells_without_points_are_unknown_never_free():
    em = ElevationMap(size=8.0, resolution=0.1)
    em.add_points(_surface(lambda X, Y: 0 * X, x0=0.0, x1=3.0))
    hz = em.hazards()
    X, Y = hz.cell_centres()
    empty = (X < -0.5) | (Y < -0.5)
    assert hz.unknown[empty].all() and (hz.cost()[empty] == COST_UNKNOWN).all()
    assert ((hz.flags[empty] & UNKNOWN) != 0).all()
    seen = (X > 0.5) & (X < 2.5) & (Y > 0.5) & (Y < 2.5)
    assert not hz.unknown[seen].any() and (hz.cost()[seen] == 0).all()


def test_recenter_keeps_what_stays_in_the_window():
    em = ElevationMap(size=4.0, resolution=0.1)
    em.add_points(np.array([[0.55, 0.55, 1.0]] * 3 + [[-1.85, 0.05, 2.0]] * 3))
    em.recenter(1.0, 0.0)
    assert em.height_at(0.55, 0.55) == pytest.approx(1.0)
    assert np.isnan(em.height_at(-1.85, 0.05))  # left the window
    assert em.center[0] == pytest.approx(1.0, abs=0.1)
    em.recenter(50.0, 50.0)
    assert not em.known(1).any()


@pytest.fixture(scope="module")
def sim():
    from ilrs_robots.sim.physics import RoverPhysics

    p = RoverPhysics("south_pole")
    yield p
    p.close()


def _map_pair(p, left, right):
    k = p.camera_intrinsics("nav_left", W, H)
    cal_l = CameraCalibration.pinhole(W, H, k.fx, k.fy, k.cx, k.cy)
    cal_r = CameraCalibration.pinhole(W, H, k.fx, k.fy, k.cx, k.cy)
    cal_r.p[3] = -k.fx * p.rover.stereo_baseline
    rig = StereoRig.from_calibrations(cal_l, cal_r)
    res = StereoMatcher(rig).compute(left, right)
    pos, rot = p.camera_pose("nav_left")
    cam = pose_matrix(rot @ OPTICAL_FROM_MUJOCO, pos)
    em = ElevationMap(size=20.0, resolution=0.1, center=tuple(p.ground_truth()[0][:2]))
    em.add_points(transform_points(res.points, cam), range_variance(res.points, rig))
    return em.hazards(), cam, rig


@pytest.mark.parametrize("where", [(2.0, 0.0, 0.0), (30.0, -20.0, 2.4)])
def test_mapped_heights_match_the_true_terrain(sim, where):
    x, y, yaw = where
    sim.reset_pose(x, y, yaw)
    hz, _, _ = _map_pair(sim, sim.render("nav_left", W, H), sim.render("nav_right", W, H))
    X, Y = hz.cell_centres()
    rover = sim.ground_truth()[0]
    near = (np.hypot(X - rover[0], Y - rover[1]) < 5.0) & ~hz.unknown
    assert near.sum() > 500
    err = hz.height[near] - sim.heightmap.height_at(X[near], Y[near])
    assert np.median(np.abs(err)) < 0.05
    assert np.percentile(np.abs(err), 90) < 0.15


def test_untextured_part_of_the_image_gives_unknown_cells(sim):
    sim.reset_pose(2.0, 0.0, 0.0)
    left = sim.render("nav_left", W, H).copy()
    right = sim.render("nav_right", W, H).copy()
    left[:, :W // 2] = 0  # a black shadow over the left half of the view
    hz, cam, rig = _map_pair(sim, left, right)
    X, Y = hz.cell_centres()
    Z = sim.heightmap.height_at(X, Y)
    pts = np.column_stack([X.ravel(), Y.ravel(), Z.ravel()])
    inv = np.linalg.inv(cam)
    c = pts @ inv[:3, :3].T + inv[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (rig.fx * c[:, 0] / c[:, 2] + rig.cx).reshape(X.shape)
        v = (rig.fy * c[:, 1] / c[:, 2] + rig.cy).reshape(X.shape)
    ahead = c[:, 2].reshape(X.shape) > 1.0
    in_shadow = ahead & (u > 5) & (u < W // 2 - 20) & (v > 250) & (v < H - 5)
    lit = ahead & (u > W // 2 + 20) & (u < W - 5) & (v > 250) & (v < H - 5)
    assert in_shadow.sum() > 200 and lit.sum() > 200
    assert hz.unknown[in_shadow].all()
    assert (~hz.unknown[lit]).mean() > 0.8


@pytest.mark.parametrize("where", [(2.0, 0.0, 0.0), (30.0, -20.0, 2.4)])
def test_depth_image_heights_match_the_true_terrain(sim, where):
    """The simulator's depth image (REP 118 metres) through the mapper's depth path: heights
    within a few centimetres of the true terrain, the sky left out."""
    from ilrs_robots.core.costmap import CostParams
    from ilrs_robots.core.terrain_mapping import TerrainMapper

    x, y, yaw = where
    sim.reset_pose(x, y, yaw)
    rgb, depth = sim.render_rgbd("nav_left", W, H)
    assert rgb.shape == (H, W, 3) and depth.dtype == np.float32
    assert np.array_equal(rgb, sim.render("nav_left", W, H))  # one drawing gives both
    assert np.isinf(depth).any() and np.isfinite(depth).mean() > 0.5  # sky, ground
    k = sim.camera_intrinsics("nav_left", W, H)
    pos, rot = sim.camera_pose("nav_left")
    cam = pose_matrix(rot @ OPTICAL_FROM_MUJOCO, pos)
    pts, valid = depth_points(depth, k.fx, k.fy, k.cx, k.cy)
    assert 0.5 < valid < 1.0
    world = transform_points(pts, cam)
    err = world[:, 2] - sim.heightmap.height_at(world[:, 0], world[:, 1])
    assert np.median(np.abs(err)) < 0.02  # rocks stand above the heightmap
    mapper = TerrainMapper(sim.heightmap.resample(2.0), 0.01, CostParams())
    rover = sim.ground_truth()[0]
    res = mapper.process_depth(depth, (k.fx, k.fy, k.cx, k.cy), cam, (rover[0], rover[1]))
    X, Y = res.hazards.cell_centres()
    near = (np.hypot(X - rover[0], Y - rover[1]) < 5.0) & ~res.hazards.unknown
    assert near.sum() > 500 and res.points > 1000
    err = res.hazards.height[near] - sim.heightmap.height_at(X[near], Y[near])
    assert np.median(np.abs(err)) < 0.03
    assert np.percentile(np.abs(err), 90) < 0.1


def test_a_frame_placed_with_a_tilted_pose_is_levelled_to_the_map():
    """A second view placed by a pose 4 deg off in pitch and 15 cm off in height (an
    accelerometer bias under lunar gravity) overlaps half the first one: unlevelled, the
    seam between them reads as a step; levelled to the map, the ground stays free."""
    from ilrs_robots.core.terrain_mapping import level_to_map

    def ground(X, Y):
        return 0.1 * X + 0.05 * np.sin(Y)

    def views(level: bool) -> np.ndarray:
        em = ElevationMap(size=20.0, resolution=0.1)
        X, Y = np.meshgrid(np.arange(1.0, 9.0, 0.05), np.arange(-5.0, 5.0, 0.05))
        first = np.column_stack([X.ravel(), Y.ravel(), ground(X, Y).ravel()])
        em.add_points(first)
        second = first[first[:, 1] > 0.0].copy()
        second[:, 2] += 0.15 + math.tan(math.radians(4.0)) * second[:, 0]
        if level:
            second = level_to_map(em, second, (0.0, 0.0))
            np.testing.assert_allclose(second[:, 2], ground(second[:, 0], second[:, 1]),
                                       atol=0.01)
        em.add_points(second)
        hz = em.hazards()
        X, Y = hz.cell_centres()
        inner = (X > 2.0) & (X < 8.0) & (np.abs(Y) < 3.0)
        return hz.lethal[inner]

    assert views(level=False).sum() > 20  # a phantom step along the seam
    assert not views(level=True).any()
