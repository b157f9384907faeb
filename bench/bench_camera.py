"""Camera driver figures: sustained frame rate and one-way latency (capture stamp to a
subscriber in another process) of bgr8 images, and the driver's CPU use, at 640x480 and
1280x720, from a video file played at 30 fps.

Target (issue: cameras): 640x480 at 30 fps with p99 latency under 15 ms.

    .venv/bin/python bench/bench_camera.py [seconds]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ilrs_robots.runner.environment import ros_environment

os.environ.update(ros_environment(domain_id=70 + os.getpid() % 10))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ilrs_robots.runner.processes import NodeProcess, ros_arguments  # noqa: E402
from ilrs_robots.runner.ros_client import RosClient  # noqa: E402

FPS = 30.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(width: int, height: int, seconds: float, tmp: Path) -> str:
    """One resolution: returns the printed line."""
    video = tmp / f"clip_{width}.avi"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
    for i in range(60):
        img = np.random.default_rng(i).integers(0, 255, (height, width, 3), np.uint8)
        out.write(img)
    out.release()
    node = NodeProcess("camera_driver", dict(os.environ), tmp / f"cam_{width}.log",
                       ros_arguments(namespace="bench", parameters={
                           "source": str(video), "fps": FPS})).start()
    try:
        with RosClient("bench_camera") as ros:
            inbox = ros.subscribe(Image, "/bench/image_raw", 10)
            if inbox.wait_for(timeout=20) is None:
                sys.exit("camera_driver did not start:\n" + node.output())
            time.sleep(1.0)
            inbox.clear()
            cpu0, t0 = cpu_seconds(node.proc.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = cpu_seconds(node.proc.pid), time.monotonic()
            got = inbox.timed()
    finally:
        node.stop()
    # arrival: monotonic in this process; convert to wall time for the capture stamp
    offset = time.time() - time.monotonic()
    lat = [(t + offset - (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)) * 1000
           for t, m in got]
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(0.99 * (len(lat) - 1)))]
    return (f"  {width}x{height} bgr8: {len(got) / seconds:.1f} fps received (of {FPS:.0f}), "
            f"latency p50 {statistics.median(lat):.1f} ms p99 {p99:.1f} ms, driver CPU "
            f"{100 * (cpu1 - cpu0) / (t1 - t0):.0f} % of one core")


def main() -> None:
    """Print the figures."""
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    with tempfile.TemporaryDirectory() as tmp:
        lines = [run(640, 480, seconds, Path(tmp)), run(1280, 720, seconds, Path(tmp))]
    print("camera_driver benchmark (video file source decoded by OpenCV, subscriber in "
          "another process; target 640x480: 30 fps, p99 < 15 ms)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
