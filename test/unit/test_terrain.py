"""Terrain generation, world loading and the prior map."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from ilrs_robots.core import terrain as tr
from ilrs_robots.sim.world import (
    WORLDS_DIR,
    WorldError,
    build_heightmap,
    load_world,
    prior_map,
    rocks,
    world_from_dict,
)


def small_params(**kw) -> tr.CraterFieldParams:
    base = dict(size=(120.0, 120.0), resolution=0.5, crater_count=300, crater_max_diameter=30.0,
                pads=[tr.Pad(0.0, 0.0, 8.0, 6.0)])
    base.update(kw)
    return tr.CraterFieldParams(**base)


@pytest.fixture(scope="module")
def south_pole():
    w = load_world("south_pole")
    return w, build_heightmap(w)


def test_same_seed_same_terrain_other_seed_differs():
    a, _ = tr.crater_field(small_params(), seed=3)
    b, _ = tr.crater_field(small_params(), seed=3)
    c, _ = tr.crater_field(small_params(), seed=4)
    assert np.array_equal(a.heights, b.heights)
    assert np.abs(a.heights - c.heights).max() > 0.5


def test_crater_size_frequency_is_a_power_law():
    rng = np.random.default_rng(0)
    d = tr.power_law_sizes(rng, 20000, 2.0, 200.0, 2.0)
    assert d.min() >= 2.0 and d.max() <= 200.0
    sizes = np.array([2.0, 4.0, 8.0, 16.0])
    cum = np.array([(d > s).sum() for s in sizes])
    slope = np.polyfit(np.log(sizes), np.log(cum), 1)[0]
    assert slope == pytest.approx(-2.0, abs=0.15)
    craters = tr.generate_craters(rng, (0, 0, 400, 400), 2000, 2.0, 70.0, 2.0)
    cd = np.array([c.diameter for c in craters])
    slope = np.polyfit(np.log(sizes), np.log([(cd > s).sum() for s in sizes]), 1)[0]
    assert slope == pytest.approx(-2.0, abs=0.2)


def test_crater_profile_bowl_rim_and_ejecta():
    r = np.array([0.0, 0.5, 1.0, 1.5, 3.0, 4.0])
    z = tr.crater_profile(r, depth=2.0, rim_height=0.4)
    assert z[0] == pytest.approx(-2.0)
    assert z[2] == pytest.approx(0.4)
    assert z[0] < z[1] < z[2] and z[2] > z[3] > z[4]
    assert z[4] == pytest.approx(0.0) and z[5] == 0.0


def test_slopes_limited_and_pads_flat(south_pole):
    world, hm = south_pole
    slope = hm.slope_deg()
    assert slope.max() <= 31.0
    assert np.percentile(slope, 99) > 15.0  # crater walls are really there
    X, Y = hm.grid()
    for site in world.sites.values():
        inside = np.hypot(X - site.position[0], Y - site.position[1]) <= site.pad_radius - 1
        assert np.ptp(hm.heights[inside]) < 1e-9, site.name
        assert slope[inside].max() < 0.5, site.name


def test_slope_limit_on_a_steep_wall():
    hm = tr.empty_grid((40.0, 40.0), 0.5)
    hm.heights[:, hm.shape[1] // 2:] += 10.0  # a vertical cliff
    out = tr.limit_slope(hm, 30.0)
    assert out.slope_deg().max() <= 30.5
    assert abs(out.heights.mean() - hm.heights.mean()) < 0.05  # material is moved, not lost


def test_heightmap_sampling_and_resampling():
    hm = tr.sloped_plane((20.0, 10.0), 0.5, 20.0, uphill_azimuth_deg=90.0)
    assert hm.height_at(3.0, 2.0) == pytest.approx(np.tan(np.radians(20)) * 2.0)
    n = hm.normal_at(0.0, 0.0)
    assert n == pytest.approx([0.0, -np.sin(np.radians(20)), np.cos(np.radians(20))])
    assert np.allclose(hm.slope_deg(), 20.0)
    c = hm.crop(-5.0, -2.0, 5.0, 2.0)
    assert c.shape == (9, 21) and c.height_at(1.0, 1.0) == pytest.approx(hm.height_at(1.0, 1.0))
    d = hm.downsample(4)
    assert d.resolution == 2.0 and d.height_at(2.0, 2.0) == pytest.approx(hm.height_at(2, 2))


def test_prior_map_coarser_and_noisy(south_pole):
    world, hm = south_pole
    pm = prior_map(world, hm)
    assert pm.resolution == world.prior_map.resolution > hm.resolution
    assert pm.shape[0] < hm.shape[0]
    X, Y = pm.grid()
    err = pm.heights - hm.height_at(X, Y)
    assert 0.1 < np.std(err) < 1.0
    assert np.array_equal(pm.heights, prior_map(world, hm).heights)


def test_rocks_reproducible_and_off_the_pads(south_pole):
    world, hm = south_pole
    a = rocks(world, hm)
    assert a == rocks(world, hm) and len(a) == world.terrain.rocks.count
    assert all(0.1 <= r.diameter <= 1.0 for r in a)
    for site in world.sites.values():
        assert all(np.hypot(r.x - site.position[0], r.y - site.position[1]) > site.pad_radius
                   for r in a)


def test_dem_loading(tmp_path: Path):
    cv2 = pytest.importorskip("cv2")
    img = (np.arange(50)[None, :] * 100 + np.zeros((40, 1))).astype(np.uint16)
    img[0, 0] = 60000  # north-west corner
    cv2.imwrite(str(tmp_path / "dem.png"), img)
    doc = yaml.safe_load((WORLDS_DIR / "test_flat.yaml").read_text())
    doc["terrain"] = {"type": "dem", "size": [49.0, 39.0], "resolution": 1.0,
                      "dem": {"file": "dem.png", "metres_per_count": 0.001, "offset": -1.0}}
    del doc["sites"]
    doc["rover_start"] = {"position": [0.0, 0.0]}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(doc))
    hm = build_heightmap(load_world(tmp_path / "w.yaml"))
    assert hm.shape == (40, 50)
    assert hm.heights[-1, 0] == pytest.approx(59.0)  # image row 0 is +y
    assert hm.heights[0, 10] == pytest.approx(0.0)


def test_default_world_contents(south_pole):
    world, _ = south_pole
    assert world.gravity == pytest.approx(1.62)
    assert {"landing_zone", "rover_depot", "construction_site", "reactor_site"} <= set(
        world.sites)
    assert world.terrain.size[0] >= 400 and world.terrain.size[1] >= 400
    assert world.sun.elevation_deg < 10
    assert world.radiation_sources()
    assert world.rover_start.site == "rover_depot"


@pytest.mark.parametrize("path, value, field", [
    (("terrain", "resolution"), -1, "terrain.resolution"),
    (("terrain", "type"), "lava", "terrain.type"),
    (("terrain", "slope", "angle_deg"), "steep", "terrain.slope.angle_deg"),
    (("sun", "elevation_deg"), None, "sun.elevation_deg"),
    (("rover_start", "position"), [1.0], "rover_start.position"),
    (("rover_start", "position"), [500.0, 0.0], "rover_start.position"),
    (("gravity",), "moon", "gravity"),
    (("terrain", "colour"), 1, "terrain.colour"),
])
def test_world_errors_name_the_field(path, value, field):
    doc = yaml.safe_load((WORLDS_DIR / "test_slope.yaml").read_text())
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(WorldError, match=f"test_slope.yaml: field '{field}'"):
        world_from_dict(doc, "test_slope.yaml")


def test_world_error_names_site_object_field():
    doc = yaml.safe_load((WORLDS_DIR / "south_pole.yaml").read_text())
    doc["sites"]["reactor_site"]["radiation_sources"][0]["dose_rate_at_1m"] = -5
    with pytest.raises(WorldError, match=r"sites.reactor_site.radiation_sources\[0\]"
                                         r".dose_rate_at_1m"):
        world_from_dict(doc, "south_pole.yaml")
    with pytest.raises(WorldError, match="cannot read"):
        load_world("/nonexistent/world.yaml")
