"""The gantry printer at a world site: the Marlin emulator on a pty whose deposited material
joins the terrain of the embedded simulator.

The printer's frame (G-code origin) is the site's centre on the pad surface. What the
emulator deposits (a height field at half a bead, ``PrinterEmulator.height_field``) is
averaged over each terrain node's cell (the terrain is coarser than a bead: a node takes the
mean height of the material around it) and added to the site's original heights in the
MuJoCo height field, in place (``RoverPhysics.set_terrain_heights``): the rover's wheels
touch it and the cameras draw it from the next step on.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np

from ilrs_robots.core.construction.designs import PrinterConfig
from ilrs_robots.core.construction.jobs import grid_to_height_image
from ilrs_robots.core.construction.slicer import HeightGrid
from ilrs_robots.sim.devices.printer_emulator import PrinterEmulator
from ilrs_robots.sim.physics import RoverPhysics


class SitePrinter:
    """A printer emulator at ``site`` of the physics' world, feeding the terrain."""

    def __init__(self, physics: RoverPhysics, site: str, link: str | os.PathLike[str],
                 printer: PrinterConfig, speedup: float = 1.0, baud: int | None = 115200
                 ) -> None:
        self.physics = physics
        place = physics.world.site(site)
        self.site = site
        self.origin = (float(place.position[0]), float(place.position[1]))
        self.printer = printer
        self.grid = HeightGrid.for_printer(printer)
        self.emulator = PrinterEmulator(link, baud, grid=self.grid,
                                        bead_width=printer.bead_width, speedup=speedup)
        self._dirty = threading.Event()
        self.emulator.on_executed = lambda _n, _t: self._dirty.set()
        hm = physics.heightmap
        r = hm.resolution
        g = self.grid
        # terrain nodes whose cell lies within the printer's grid
        wx0, wy0 = self.origin[0] + g.x0, self.origin[1] + g.y0
        wx1, wy1 = wx0 + g.nx * g.cell, wy0 + g.ny * g.cell
        ny, nx = hm.shape
        self.j0 = max(0, math.ceil((wx0 - hm.origin[0]) / r))
        self.i0 = max(0, math.ceil((wy0 - hm.origin[1]) / r))
        j1 = min(nx, math.floor((wx1 - hm.origin[0]) / r) + 1)
        i1 = min(ny, math.floor((wy1 - hm.origin[1]) / r) + 1)
        if j1 <= self.j0 or i1 <= self.i0:
            raise ValueError(f"the printer at {site} lies outside the terrain")
        self.base = hm.heights[self.i0:i1, self.j0:j1].copy()
        xs = hm.origin[0] + np.arange(self.j0, j1) * r - wx0  # node x in grid metres
        ys = hm.origin[1] + np.arange(self.i0, i1) * r - wy0
        self._cols = (np.clip(np.round((xs - r / 2) / g.cell), 0, g.nx).astype(int),
                      np.clip(np.round((xs + r / 2) / g.cell), 0, g.nx).astype(int))
        self._rows = (np.clip(np.round((ys - r / 2) / g.cell), 0, g.ny).astype(int),
                      np.clip(np.round((ys + r / 2) / g.cell), 0, g.ny).astype(int))
        self.added = np.zeros_like(self.base)
        self.updates = 0

    def start(self) -> SitePrinter:
        """Serve the printer's pty."""
        self.emulator.start()
        return self

    def stop(self) -> None:
        """Stop the emulator."""
        self.emulator.stop()

    def node_heights(self, deposit: np.ndarray) -> np.ndarray:
        """The deposit (printer grid) as the mean over each terrain node's cell."""
        integral = np.zeros((deposit.shape[0] + 1, deposit.shape[1] + 1))
        integral[1:, 1:] = deposit.cumsum(0).cumsum(1)
        (r0, r1), (c0, c1) = self._rows, self._cols
        total = (integral[np.ix_(r1, c1)] - integral[np.ix_(r0, c1)]
                 - integral[np.ix_(r1, c0)] + integral[np.ix_(r0, c0)])
        count = np.outer(r1 - r0, c1 - c0)
        return np.where(count > 0, total / np.maximum(count, 1), 0.0)

    def update_terrain(self, force: bool = False) -> bool:
        """Merge what was deposited since the last call into the terrain (call from the
        thread that steps and renders the physics); True when the terrain changed."""
        if not (force or self._dirty.is_set()):
            return False
        self._dirty.clear()
        added = self.node_heights(self.emulator.height_field)
        if np.array_equal(added, self.added):
            return False
        self.added = added
        self.physics.set_terrain_heights(self.i0, self.j0, self.base + added)
        self.updates += 1
        return True

    def height_image(self, cell: float | None = None) -> np.ndarray:
        """The site as a top-down height image over the printer's envelope (32FC1, m above
        the pad, row 0 at +y): what the site camera's depth reprojection gives, here exact.
        ``cell`` (m) coarsens it (default: the emulator's grid)."""
        heights = self.emulator.height_field
        k = max(1, int(round((cell or self.grid.cell) / self.grid.cell)))
        if k > 1:
            ny, nx = (heights.shape[0] // k) * k, (heights.shape[1] // k) * k
            heights = heights[:ny, :nx].reshape(ny // k, k, nx // k, k).mean(axis=(1, 3))
        return grid_to_height_image(heights)

    def world_xy(self, x: float, y: float) -> tuple[float, float]:
        """World coordinates of a point of the printer's frame (m)."""
        return self.origin[0] + x, self.origin[1] + y
