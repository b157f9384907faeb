"""The bump a rock dropped on the simulator's terrain makes, and the rocks refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ilrs_robots.core.terrain import Heightmap
from ilrs_robots.sim.rock_drop import RockDropError, rock_bump


def terrain(resolution: float = 0.25, slope: float = 0.0) -> Heightmap:
    """A 20 m x 20 m terrain from (-10, -10), rising `slope` m per m along x."""
    n = int(round(20.0 / resolution)) + 1
    xs = -10.0 + np.arange(n) * resolution
    return Heightmap(np.tile(slope * xs, (n, 1)), (-10.0, -10.0), resolution)


def test_a_rock_is_a_dome_of_its_radius_and_height_on_the_nodes_under_it():
    hm = terrain()
    bump = rock_bump(hm, 1.0, 2.0, 0.6, 0.4)
    new = hm.heights.copy()
    bump.window(new)[:] = bump.apply(hm.heights)
    X, Y = np.meshgrid(hm.xs(), hm.ys())
    d = np.hypot(X - 1.0, Y - 2.0)
    raised = new > 1e-12
    assert raised.any() and d[raised].max() < 0.6  # only under the rock
    assert new.max() == pytest.approx(0.4)  # its top: the height asked for
    assert new[np.unravel_index(np.argmin(d), d.shape)] == pytest.approx(0.4)  # at the centre
    # a dome: lower farther out, ellipse-shaped
    expected = 0.4 * np.sqrt(np.clip(1.0 - (d / 0.6) ** 2, 0.0, None))
    assert np.allclose(new, expected, atol=1e-9)
    assert bump.nodes == int(raised.sum()) and bump.peak == pytest.approx(0.4)
    assert np.all(hm.heights == 0.0)  # the heightmap is left to the caller


def test_the_dome_follows_a_slope_and_a_node_spaced_rock_keeps_its_height():
    hm = terrain(0.5, slope=0.1)
    # centred between four nodes, radius one node spacing: the four nearest nodes hold it
    bump = rock_bump(hm, 0.25, 0.25, 0.5, 0.35)
    assert bump.nodes == 4
    assert np.allclose(bump.added[bump.added > 0], 0.35)
    new = bump.apply(hm.heights)
    assert np.allclose(new - bump.window(hm.heights), bump.added)  # on top of the slope
    # on a node: that node alone
    assert rock_bump(hm, 1.0, 1.0, 0.5, 0.35).nodes == 1


@pytest.mark.parametrize(("args", "words"), [
    ((math.nan, 0.0, 0.5, 0.4), "x must be a finite number (got x=nan)"),
    ((0.0, math.inf, 0.5, 0.4), "y must be a finite number"),
    ((0.0, 0.0, math.nan, math.nan), "radius and height must be finite"),
    ((0.0, 0.0, 0.1, 0.4), "under the terrain's node spacing (0.25 m)"),
    ((0.0, 0.0, 50.0, 0.4), "radius 50 m is over"),
    ((0.0, 0.0, 0.5, 0.0), "height 0 m must be over 0"),
    ((0.0, 0.0, 0.5, -1.0), "height -1 m must be over 0"),
    ((9.8, 0.0, 0.5, 0.4), "off the terrain, which spans x -10..10, y -10..10 m"),
    ((30.0, -30.0, 0.5, 0.4), "off the terrain"),
    ((0.0, -9.7, 0.5, 0.4), "off the terrain"),
])
def test_a_rock_that_cannot_be_dropped_is_refused_with_the_reason(args, words):
    with pytest.raises(RockDropError) as err:
        rock_bump(terrain(), *args)
    assert words in str(err.value)


def test_a_rock_on_the_rover_is_refused():
    hm = terrain()
    rover = (2.0, 0.0, 1.1)
    with pytest.raises(RockDropError, match=r"would land on the rover \(at \(2.0, 0.0\)"):
        rock_bump(hm, 3.0, 0.5, 0.5, 0.4, keep_clear=rover)
    assert rock_bump(hm, 4.0, 0.0, 0.5, 0.4, keep_clear=rover).nodes > 0  # beside it
