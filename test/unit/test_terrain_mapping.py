"""core/terrain_mapping: a synthetic depth camera over flat ground and one small rock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilrs_robots.core.costmap import LETHAL, CostParams
from ilrs_robots.core.terrain import Heightmap
from ilrs_robots.core.terrain_mapping import MapperConfig, TerrainMapper

W, H, F = 320, 240, 200.0
ROCK = (4.1, 4.4, 0.1, 0.4, 0.3)  # x0, x1, y0, y1, top (m): between the 0.5 m nodes


def camera(height: float = 1.5, pitch_deg: float = 30.0) -> np.ndarray:
    """map_from_camera of an optical frame at (0, 0, height) looking along +x, pitched down."""
    s, c = math.sin(math.radians(pitch_deg)), math.cos(math.radians(pitch_deg))
    T = np.eye(4)
    T[:3, 0] = (0.0, -1.0, 0.0)  # image right
    T[:3, 1] = (-s, 0.0, -c)  # image down
    T[:3, 2] = (c, 0.0, -s)  # optical axis
    T[:3, 3] = (0.0, 0.0, height)
    return T


def depth_image(T: np.ndarray) -> np.ndarray:
    """Metres along the optical axis to the ground (z = 0) or the box ROCK, ray-cast."""
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    d_cam = np.stack([(u - W / 2) / F, (v - H / 2) / F, np.ones_like(u)], axis=-1)
    d = d_cam @ T[:3, :3].T
    o = T[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[..., 2] < 0, -o[2] / d[..., 2], np.inf)
        lo = np.array([ROCK[0], ROCK[2], 0.0])
        hi = np.array([ROCK[1], ROCK[3], ROCK[4]])
        t1, t2 = (lo - o) / d, (hi - o) / d
        near = np.nanmax(np.minimum(t1, t2), axis=-1)
        far = np.nanmin(np.maximum(t1, t2), axis=-1)
    hit = (near <= far) & (near > 0)
    return np.where(hit, np.minimum(near, t), t).astype(np.float32)


@pytest.mark.parametrize("mark", [True, False])
def test_a_rock_smaller_than_a_global_cell_stays_on_the_global_costmap(mark: bool) -> None:
    """The 0.3 m rock (0.3 m tall) is lethal on the 0.1 m local map; on the 0.5 m global map
    only the obstacle layer holds it (its heights, sampled at the nodes around it, miss it)."""
    prior = Heightmap(np.zeros((81, 81)), (-20.0, -20.0), 0.5)
    costs = CostParams(footprint_radius=0.6, inflation_radius=1.0)
    mapper = TerrainMapper(prior, 0.2 ** 2, costs, resolution=0.5,
                           config=MapperConfig(mark_local_hazards=mark))
    T = camera()
    result = mapper.process_depth(depth_image(T), (F, F, W / 2, H / 2), T, (0.0, 0.0))
    hz = result.hazards
    X, Y = hz.cell_centres()
    on_rock = (X > ROCK[0]) & (X < ROCK[1]) & (Y > ROCK[2]) & (Y < ROCK[3])
    assert hz.lethal[on_rock].any(), "the local map must see the rock"
    grid = mapper.global_map.grid
    rock_cost = grid.cost_at(4.25, 0.25)
    if mark:
        assert rock_cost >= LETHAL and result.changed is not None
        assert grid.cost_at(2.0, -2.0) < LETHAL  # open ground seen free stays free
    else:
        assert rock_cost < LETHAL  # what the planner saw before: a clear way through
