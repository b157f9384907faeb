"""Top-down picture of a world: hillshaded terrain, labelled sites and a rover track."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ilrs_robots.core.terrain import Heightmap, hillshade
from ilrs_robots.sim.world import World


def render_track_map(world: World, heightmap: Heightmap,
                     track: Sequence[tuple[float, float]] = (), *, max_size: int = 1000,
                     shade_elevation_deg: float = 35.0) -> np.ndarray:
    """A BGR image (north up) of ``heightmap`` hillshaded from the sun's azimuth (at
    ``shade_elevation_deg`` so relief stays readable), sites circled and labelled, and
    ``track`` (world x, y points) drawn in red from a green start to a red end."""
    shade = hillshade(heightmap, world.sun.azimuth_deg, shade_elevation_deg)
    img = (40 + 200 * shade).astype(np.uint8)
    img = np.flipud(img)  # row 0 of the image is north (+y)
    ny, nx = img.shape
    scale = min(1.0, max_size / max(nx, ny))
    if scale < 1.0:
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
    if len(track) >= 1:
        pts = np.array([to_px(x, y) for x, y in track], dtype=np.int32)
        if len(pts) >= 2:
            cv2.polylines(out, [pts.reshape(-1, 1, 2)], False, (0, 0, 255), 2, cv2.LINE_AA)
        cv2.circle(out, tuple(int(v) for v in pts[0]), 5, (0, 200, 0), -1, cv2.LINE_AA)
        cv2.circle(out, tuple(int(v) for v in pts[-1]), 5, (0, 0, 255), -1, cv2.LINE_AA)
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
