"""Stereo hazard mapping at 640x480: rate of the whole pipeline (CLAHE, texture mask,
StereoSGBM, points to map, elevation fusion, hazards) and the mapped heights against the
simulator's true terrain within 5 m of the rover. Prints a table against the targets.

Images are rendered by the MuJoCo simulator (south_pole world, sun 3 deg up) beforehand;
rendering is not timed.
"""

from __future__ import annotations

import math
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402

from ilrs_robots.core.calibration import CameraCalibration  # noqa: E402
from ilrs_robots.core.elevation import ElevationMap  # noqa: E402
from ilrs_robots.core.stereo import (  # noqa: E402
    OPTICAL_FROM_MUJOCO,
    StereoMatcher,
    StereoRig,
    pose_matrix,
    range_variance,
    transform_points,
)
from ilrs_robots.sim.physics import RoverPhysics  # noqa: E402

W, H = 640, 480
PLACES = [(2.0, 0.0, 0.0), (30.0, -20.0, 2.4), (-40.0, 35.0, -0.8), (60.0, 60.0, 1.2),
          (-70.0, -50.0, 3.0), (45.0, -60.0, -2.0)]
TARGET_HZ = 5.0
TARGET_MEDIAN = 0.1


def main() -> int:
    p = RoverPhysics("south_pole")
    k = p.camera_intrinsics("nav_left", W, H)
    cal_l = CameraCalibration.pinhole(W, H, k.fx, k.fy, k.cx, k.cy)
    cal_r = CameraCalibration.pinhole(W, H, k.fx, k.fy, k.cx, k.cy)
    cal_r.p[3] = -k.fx * p.rover.stereo_baseline
    rig = StereoRig.from_calibrations(cal_l, cal_r)
    matcher = StereoMatcher(rig)
    frames = []
    for x, y, yaw in PLACES:
        p.reset_pose(x, y, yaw)
        for _ in range(3):  # a short drive at each place
            pos, rot = p.camera_pose("nav_left")
            frames.append((p.render("nav_left", W, H), p.render("nav_right", W, H),
                           pose_matrix(rot @ OPTICAL_FROM_MUJOCO, pos),
                           p.ground_truth()[0].copy()))
            p.set_wheel_speeds([2.0] * 6)
            p.advance(0.4)
        p.set_wheel_speeds([0.0] * 6)
    matcher.compute(frames[0][0], frames[0][1])  # warm up
    times, errors, known_fraction = [], [], []
    em = ElevationMap(size=20.0, resolution=0.1)
    for i, (left, right, cam, rover) in enumerate(frames):
        if i % 3 == 0:
            em.clear()
        t0 = time.perf_counter()
        em.recenter(float(rover[0]), float(rover[1]))
        res = matcher.compute(left, right)
        em.add_points(transform_points(res.points, cam), range_variance(res.points, rig))
        hz = em.hazards()
        times.append(time.perf_counter() - t0)
        X, Y = hz.cell_centres()
        near = np.hypot(X - rover[0], Y - rover[1]) < 5.0
        # cells within 5 m and inside the camera's view (ahead, within the horizontal fov)
        inv = np.linalg.inv(cam)
        Z = p.heightmap.height_at(X, Y)
        c = np.stack([X, Y, Z], -1) @ inv[:3, :3].T + inv[:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = rig.fx * c[..., 0] / c[..., 2] + rig.cx
            v = rig.fy * c[..., 1] / c[..., 2] + rig.cy
        in_view = near & (c[..., 2] > 0.5) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        known = in_view & ~hz.unknown
        known_fraction.append(known.sum() / max(in_view.sum(), 1))
        errors.append(hz.height[known] - Z[known])
    err = np.abs(np.concatenate(errors))
    rate = 1.0 / float(np.median(times))
    med = float(np.median(err))
    rows = [
        ("stereo mapping rate 640x480 (Hz, median)", f"{rate:.1f}", f">= {TARGET_HZ:.0f}",
         rate >= TARGET_HZ),
        ("  slowest frame (s)", f"{max(times):.3f}", "", None),
        ("height error within 5 m, median (m)", f"{med:.3f}", f"< {TARGET_MEDIAN}",
         med < TARGET_MEDIAN),
        ("height error within 5 m, 90th pct (m)", f"{np.percentile(err, 90):.3f}", "", None),
        ("height error within 5 m, 99th pct (m)", f"{np.percentile(err, 99):.3f}", "", None),
        ("cells in view within 5 m that are known", f"{np.mean(known_fraction):.0%}", "",
         None),
        ("frames / places", f"{len(frames)} / {len(PLACES)}", "", None),
        ("cores (os.cpu_count)", f"{os.cpu_count()}", "", None),
    ]
    print(f"{'figure':44} {'value':>10}  {'target':>8}")
    for name, value, target, ok in rows:
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        print(f"{name:44} {value:>10}  {target:>8}{mark}")
    p.close()
    return 0 if rate >= TARGET_HZ and med < TARGET_MEDIAN and math.isfinite(med) else 1


if __name__ == "__main__":
    sys.exit(main())
