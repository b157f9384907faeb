"""Start-up time of the whole simulated rover stack: from `ilrs` starting the processes to
the first wheel odometry and the first stereo image on the topics.

    .venv/bin/python bench/bench_stack_startup.py [runs]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ilrs_robots.runner.environment import ros_environment

os.environ.update(ros_environment(domain_id=80 + os.getpid() % 10))

from nav_msgs.msg import Odometry  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ilrs_robots.runner.processes import Supervisor  # noqa: E402
from ilrs_robots.runner.ros_client import RosClient  # noqa: E402
from ilrs_robots.runner.stacks import load_stack  # noqa: E402


def once(ros: RosClient, run_dir: Path) -> tuple[float, float]:
    """Seconds to the first odometry and to the first stereo image."""
    odom = ros.subscribe(Odometry, "/rover1/odom")
    left = ros.subscribe(Image, "/rover1/stereo/left/image_raw", 2)
    stack = load_stack("rover", "sim", str(run_dir))
    sup = Supervisor(stack.nodes, dict(os.environ), run_dir / "logs", say=lambda _: None)
    t0 = time.monotonic()
    sup.start()
    try:
        if odom.wait_for(timeout=60) is None or left.wait_for(timeout=60) is None:
            sys.exit("the stack did not come up; logs in " + str(run_dir / "logs"))
        t_odom = odom.timed()[0][0] - t0
        t_image = left.timed()[0][0] - t0
    finally:
        sup.stop()
    return t_odom, t_image


def main() -> None:
    """Print the figures."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    odoms, images = [], []
    with RosClient("bench_startup") as ros:
        for i in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                t_odom, t_image = once(ros, Path(tmp))
            odoms.append(t_odom)
            images.append(t_image)
            print(f"  run {i + 1}: first odometry {t_odom:.2f} s, first stereo image "
                  f"{t_image:.2f} s")
    print(f"simulated stack start-up (sim south_pole + base_driver), median of {runs}: "
          f"first odometry {statistics.median(odoms):.2f} s, first stereo image "
          f"{statistics.median(images):.2f} s")


if __name__ == "__main__":
    main()
