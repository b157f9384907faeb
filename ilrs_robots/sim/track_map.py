"""Top-down picture of a world: hillshaded terrain, labelled sites, a rover track, its plans
and the hazards of its costmap."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ilrs_robots.core.terrain import Heightmap, hillshade
from ilrs_robots.sim.world import World

Points = Sequence[tuple[float, float]] | np.ndarray

#: BGR colours of the picture's layers (the legend uses them too)
COLOURS = {"track": (0, 0, 255), "plan": (255, 200, 0), "known hazard": (0, 110, 200),
           "found hazard": (255, 0, 255), "goal": (0, 255, 255)}


def render_track_map(world: World, heightmap: Heightmap,
                     track: Sequence[tuple[float, float]] = (), *, max_size: int = 1000,
                     min_size: int = 600, cell_size: float = 0.5,
                     shade_elevation_deg: float = 35.0,
                     plans: Sequence[Points] = (), known_hazards: Points = (),
                     found_hazards: Points = (),
                     goals: Sequence[tuple[str, float, float]] = ()) -> np.ndarray:
    """A BGR image (north up) of ``heightmap`` hillshaded from the sun's azimuth (at
    ``shade_elevation_deg`` so relief stays readable), sites circled and labelled, and
    ``track`` (world x, y points) drawn in red from a green start to a red end.

    Optional layers, under the track: ``plans`` (each a polyline of x, y: the navigator's
    planned paths, light blue), hazard cells (x, y centres): ``known_hazards`` (from the prior
    map, dark orange) and ``found_hazards`` (what the rover mapped on its way, magenta), and
    ``goals`` (name, x, y) as yellow crosses. Hazard cells are ``cell_size`` m squares.
    Maps larger than ``max_size`` pixels are shrunk, smaller than ``min_size`` blown up. A
    legend names the layers drawn."""
    shade = hillshade(heightmap, world.sun.azimuth_deg, shade_elevation_deg)
    img = (40 + 200 * shade).astype(np.uint8)
    img = np.flipud(img)  # row 0 of the image is north (+y)
    ny, nx = img.shape
    # shrink big maps to max_size; blow small ones up to min_size (a test world is 121 nodes)
    scale = min(max_size / max(nx, ny), max(1.0, min_size / max(nx, ny)))
    if scale != 1.0:
        img = cv2.resize(img, (int(nx * scale), int(ny * scale)), interpolation=cv2.INTER_AREA)
    px_per_m = scale / heightmap.resolution
    out = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    h = out.shape[0]
    x0, y0 = heightmap.origin

    def to_px(x: float, y: float) -> tuple[int, int]:
        return (int(round((x - x0) * px_per_m)), int(round(h - 1 - (y - y0) * px_per_m)))

    for site in world.sites.values():
        c = to_px(*site.position)
        cv2.circle(out, c, max(2, int(site.pad_radius * px_per_m)), (0, 200, 255), 1,
                   cv2.LINE_AA)
        cv2.putText(out, site.name, (c[0] + 5, c[1] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 220, 255), 1, cv2.LINE_AA)
    drawn = []
    for name, cells in (("known hazard", known_hazards), ("found hazard", found_hazards)):
        cells = np.asarray(cells, dtype=np.float64).reshape(-1, 2)
        if len(cells):
            drawn.append(name)
            px = np.column_stack((np.rint((cells[:, 0] - x0) * px_per_m),
                                  np.rint(h - 1 - (cells[:, 1] - y0) * px_per_m))).astype(int)
            inside = ((px[:, 0] >= 0) & (px[:, 0] < out.shape[1]) & (px[:, 1] >= 0)
                      & (px[:, 1] < h))
            r = int(0.5 * cell_size * px_per_m)
            for cx, cy in px[inside]:
                if r == 0:
                    out[cy, cx] = COLOURS[name]
                else:
                    cv2.rectangle(out, (cx - r, cy - r), (cx + r, cy + r), COLOURS[name], -1)
    for plan in plans:
        pts = np.array([to_px(x, y) for x, y in plan], dtype=np.int32)
        if len(pts) >= 2:
            cv2.polylines(out, [pts.reshape(-1, 1, 2)], False, COLOURS["plan"], 1, cv2.LINE_AA)
    if len(plans):
        drawn.append("plan")
    if len(track) >= 1:
        drawn.append("track")
        pts = np.array([to_px(x, y) for x, y in track], dtype=np.int32)
        if len(pts) >= 2:
            cv2.polylines(out, [pts.reshape(-1, 1, 2)], False, (0, 0, 255), 2, cv2.LINE_AA)
        cv2.circle(out, tuple(int(v) for v in pts[0]), 5, (0, 200, 0), -1, cv2.LINE_AA)
        cv2.circle(out, tuple(int(v) for v in pts[-1]), 5, (0, 0, 255), -1, cv2.LINE_AA)
    for name, x, y in goals:
        c = to_px(x, y)
        cv2.drawMarker(out, c, COLOURS["goal"], cv2.MARKER_TILTED_CROSS, 12, 2, cv2.LINE_AA)
        cv2.putText(out, name, (c[0] + 7, c[1] + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    COLOURS["goal"], 1, cv2.LINE_AA)
    if goals:
        drawn.append("goal")
    for i, name in enumerate(drawn):
        y = 16 + 16 * i
        cv2.rectangle(out, (8, y - 9), (20, y + 1), COLOURS[name], -1)
        cv2.putText(out, name, (26, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
    bar_m = 50.0 if heightmap.size[0] > 150 else 10.0
    bar = int(bar_m * px_per_m)
    cv2.line(out, (10, h - 12), (10 + bar, h - 12), (255, 255, 255), 2)
    cv2.putText(out, f"{bar_m:g} m", (12, h - 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_track_map(path: str | Path, world: World, heightmap: Heightmap,
                    track: Sequence[tuple[float, float]] = (), **kwargs: object) -> Path:
    """Write :func:`render_track_map` as a PNG to ``path``; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), render_track_map(world, heightmap, track, **kwargs)):
        raise OSError(f"cannot write {p}")
    return p
