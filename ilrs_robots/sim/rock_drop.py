"""Rocks dropped on the simulator's terrain at run time (pure numpy, no MuJoCo).

A dropped rock is a dome of the terrain height field, not a separate body: it is added to
the heights of the nodes within its radius (on a slope it follows the slope), scaled so its
highest node stands exactly `height` above the ground it was added to. The physics applies
the bump with ``RoverPhysics.set_terrain_heights``, as it does printed material, so the
wheels touch it and the cameras draw it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ilrs_robots.core.terrain import Heightmap

MAX_ROCK_RADIUS = 10.0  # m
MAX_ROCK_HEIGHT = 10.0  # m


class RockDropError(ValueError):
    """A rock that cannot be dropped; the message says why, for a person to read."""


@dataclass(frozen=True)
class RockBump:
    """Heights `added` (m) to the nodes ``[i0:i0 + rows, j0:j0 + cols]`` of a heightmap."""

    i0: int
    j0: int
    added: np.ndarray

    @property
    def nodes(self) -> int:
        """How many terrain nodes the rock raises."""
        return int(np.count_nonzero(self.added))

    @property
    def peak(self) -> float:
        """The most any node is raised (m): the rock's height."""
        return float(self.added.max(initial=0.0))

    def window(self, heights: np.ndarray) -> np.ndarray:
        """The nodes of ``heights`` the bump covers (a view)."""
        rows, cols = self.added.shape
        return heights[self.i0:self.i0 + rows, self.j0:self.j0 + cols]

    def apply(self, heights: np.ndarray) -> np.ndarray:
        """The new heights of the bump's window of ``heights`` (a copy; ``heights`` is kept)."""
        return self.window(heights) + self.added


def rock_bump(heightmap: Heightmap, x: float, y: float, radius: float, height: float,
              keep_clear: tuple[float, float, float] | None = None) -> RockBump:
    """The bump a rock of `radius` and `height` (m) centred at world (x, y) makes.

    Refused (RockDropError) when a value is not finite, the radius is under the terrain's
    node spacing (the field could not hold its shape) or over MAX_ROCK_RADIUS, the height is
    not in (0, MAX_ROCK_HEIGHT], any part of the rock lies off the terrain, or it overlaps
    the disc `keep_clear` (x, y, radius: the rover, which it would land on).
    """
    values = {"x": x, "y": y, "radius": radius, "height": height}
    bad = [name for name, v in values.items() if not math.isfinite(v)]
    if bad:
        what = "a finite number" if len(bad) == 1 else "finite numbers"
        raise RockDropError(f"{' and '.join(bad)} must be {what} "
                            f"(got {', '.join(f'{n}={values[n]}' for n in bad)})")
    res = heightmap.resolution
    if radius < res - 1e-9:
        raise RockDropError(f"radius {radius:g} m is under the terrain's node spacing "
                            f"({res:g} m): the height field cannot hold such a rock")
    if radius > MAX_ROCK_RADIUS:
        raise RockDropError(f"radius {radius:g} m is over {MAX_ROCK_RADIUS:g} m")
    if not 0.0 < height <= MAX_ROCK_HEIGHT:
        raise RockDropError(f"height {height:g} m must be over 0 and at most "
                            f"{MAX_ROCK_HEIGHT:g} m")
    x0, y0, x1, y1 = heightmap.bounds
    if x - radius < x0 or x + radius > x1 or y - radius < y0 or y + radius > y1:
        raise RockDropError(f"a rock of radius {radius:g} m at ({x:.2f}, {y:.2f}) is off the "
                            f"terrain, which spans x {x0:g}..{x1:g}, y {y0:g}..{y1:g} m")
    if keep_clear is not None:
        cx, cy, cr = keep_clear
        gap = math.hypot(x - cx, y - cy) - cr - radius
        if gap < 0.0:
            raise RockDropError(f"a rock of radius {radius:g} m at ({x:.2f}, {y:.2f}) would land "
                                f"on the rover (at ({cx:.1f}, {cy:.1f}), {cr:.1f} m around)")
    ox, oy = heightmap.origin
    ny, nx = heightmap.shape
    j0 = max(0, math.ceil((x - radius - ox) / res - 1e-9))
    j1 = min(nx - 1, math.floor((x + radius - ox) / res + 1e-9))
    i0 = max(0, math.ceil((y - radius - oy) / res - 1e-9))
    i1 = min(ny - 1, math.floor((y + radius - oy) / res + 1e-9))
    xs = ox + np.arange(j0, j1 + 1) * res
    ys = oy + np.arange(i0, i1 + 1) * res
    X, Y = np.meshgrid(xs, ys)
    inside = 1.0 - ((X - x) ** 2 + (Y - y) ** 2) / radius ** 2
    dome = np.sqrt(np.clip(inside, 0.0, None))
    # a radius of one node spacing holds at least the nearest node, at >= 0.7 of the dome
    added = np.where(inside > 0.0, dome * (height / dome.max()), 0.0)
    return RockBump(i0, j0, added)
