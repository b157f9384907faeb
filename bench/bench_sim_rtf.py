"""Real-time factor of the embedded rover physics, with and without the stereo cameras.

Prints: model build time of the default world, RTF headless (target >= 20x) and RTF with the
stereo pair rendered at 640x480 every 0.1 s of simulated time (target >= 1x), and the time of
one mast camera frame at 1280x960.
Usage: python bench/bench_sim_rtf.py [world] [sim_seconds]
"""

import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

from ilrs_robots.sim.physics import RoverPhysics  # noqa: E402
from ilrs_robots.sim.world import build_heightmap, load_world, rocks  # noqa: E402


def main() -> None:
    """Run the benchmark and print the figures against their targets."""
    name = sys.argv[1] if len(sys.argv) > 1 else "south_pole"
    sim_s = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    t0 = time.perf_counter()
    world = load_world(name)
    hm = build_heightmap(world)
    rk = rocks(world, hm)
    t1 = time.perf_counter()
    p = RoverPhysics(world, heightmap=hm, rocks=rk, settle_time=0.0)
    t2 = time.perf_counter()
    print(f"world {name}: {hm.shape[1]}x{hm.shape[0]} nodes, {len(rk)} rocks")
    print(f"build: terrain {t1 - t0:.2f} s + model {t2 - t1:.2f} s = {t2 - t0:.2f} s")

    p.set_wheel_speeds([2.0, 2.2] * 3)  # a gentle left curve at ~0.5 m/s
    t = time.perf_counter()
    p.advance(sim_s)
    rtf = sim_s / (time.perf_counter() - t)
    print(f"RTF headless: {rtf:.1f}x (target >= 20x) {'OK' if rtf >= 20 else 'MISS'}")

    cam_s = min(sim_s, 5.0)
    p.render("nav_left", 640, 480)  # create the renderer outside the timing
    t = time.perf_counter()
    frames = 0
    for _ in range(int(round(cam_s / 0.1))):
        p.advance(0.1)
        p.render("nav_left", 640, 480)
        p.render("nav_right", 640, 480)
        frames += 2
    wall = time.perf_counter() - t
    rtf = cam_s / wall
    print(f"RTF with stereo 640x480 @ 10 Hz: {rtf:.2f}x (target >= 1x) "
          f"{'OK' if rtf >= 1 else 'MISS'}; {frames / wall:.1f} frames/s")
    p.render("mast", 1280, 960)
    t = time.perf_counter()
    for _ in range(5):
        p.render("mast", 1280, 960)
    print(f"mast frame 1280x960: {(time.perf_counter() - t) / 5 * 1000:.0f} ms")
    p.close()


if __name__ == "__main__":
    main()
