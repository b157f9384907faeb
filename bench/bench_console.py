"""Ground console figures, over loopback with the emulated link off:

* camera-to-browser latency and frame rate: 640x480 JPEG frames published at 10 fps (stamped
  with the wall clock), received by the console's page socket in headless Chromium (Debian's,
  through Playwright); latency = arrival in the page (Date.now()) - the image's stamp.
  Target (issue 12): p50 under 150 ms at 10 fps.
* command round trip: POST a command -> it reaches /rover1/motion_commands/request -> the robot
  side (this script) answers `received` -> the console's API shows `received`.
* CPU of the console node with three viewers (aiohttp sockets) taking camera and pose.

    .venv/bin/python bench/bench_console.py [seconds]
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from ilrs_robots.runner.environment import ros_environment

os.environ.update(ros_environment(domain_id=80 + os.getpid() % 10))

import aiohttp  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from ilrs_interfaces.msg import MotionCommand, MotionCommandStatus  # noqa: E402
from ilrs_robots.console.users import add_user  # noqa: E402
from ilrs_robots.nodes.console import STATUSES  # noqa: E402
from ilrs_robots.nodes.messages import stamp_of  # noqa: E402
from ilrs_robots.runner.processes import NodeProcess, ros_arguments  # noqa: E402
from ilrs_robots.runner.ros_client import RosClient, wait_until  # noqa: E402

FPS = 10.0
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGE_PROBE = """([token, seconds]) => new Promise((resolve) => {
  const ws = new WebSocket(`ws://${location.host}/ws`);
  const got = [];
  ws.onopen = () => ws.send(JSON.stringify({type: 'auth', token}));
  ws.onmessage = (e) => {
    const now = Date.now() / 1000;
    const m = JSON.parse(e.data);
    if (m.type === 'camera') got.push([now, m.header_stamp, m.quality, m.image.length]);
  };
  setTimeout(() => { ws.close(); resolve(got); }, seconds * 1000);
})"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    """One API call with urllib."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method="POST" if body is not None else "GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Feeds:
    """Camera frames at FPS and poses at 20 Hz on rover1's topics, stamped with wall time."""

    def __init__(self, ros: RosClient) -> None:
        self.camera = ros.publisher(CompressedImage, "/rover1/camera/image_raw/compressed", 5)
        self.odom = ros.publisher(Odometry, "/rover1/odometry/filtered", 10)
        rng = np.random.default_rng(0)
        base = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), np.uint8), (9, 9), 0)
        self.jpegs = [cv2.imencode(".jpg", np.roll(base, 8 * i, axis=1),
                                   [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
                      for i in range(20)]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        i = 0
        next_frame = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_frame:
                msg = CompressedImage(format="jpeg", data=self.jpegs[i % len(self.jpegs)])
                msg.header.stamp = stamp_of(time.time())
                self.camera.publish(msg)
                next_frame += 1.0 / FPS
                i += 1
            odom = Odometry()
            odom.header.frame_id = "map"
            odom.pose.pose.position.x = 0.01 * i
            odom.pose.pose.orientation.w = 1.0
            self.odom.publish(odom)
            self.stop.wait(0.05)


def browser_latency(base: str, token: str, seconds: float) -> list:
    """Camera messages seen by a page of the console in headless Chromium."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        page = browser.new_page()
        page.goto(f"{base}/static/console.css")  # an origin of the console's, no page logic
        got = page.evaluate(PAGE_PROBE, [token, seconds])
        browser.close()
    return got


async def viewers(base: str, token: str, count: int, seconds: float) -> list[int]:
    """`count` sockets reading everything for `seconds`; messages each got."""
    async def one() -> int:
        n = 0
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(base.replace("http", "ws") + "/ws") as ws:
                await ws.send_json({"type": "auth", "token": token})
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    try:
                        await asyncio.wait_for(ws.receive(), 1.0)
                        n += 1
                    except asyncio.TimeoutError:
                        pass
        return n
    return list(await asyncio.gather(*(one() for _ in range(count))))


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    tmp = Path(tempfile.mkdtemp(prefix="bench_console_"))
    add_user(tmp / "users.yaml", "ops", "operator", "operator-pass")
    node = NodeProcess("ground_console", dict(os.environ), tmp / "console.log", ros_arguments(
        parameters={"port": 0, "users_file": str(tmp / "users.yaml"), "link_delay": 0.0,
                    "audit_log": str(tmp / "audit.jsonl"), "camera_rate": FPS})).start()
    try:
        found = wait_until(lambda: re.search(r"on (http://[\d.]+:\d+)/", node.output()), 60)
        if not found:
            sys.exit("the console did not start:\n" + node.output())
        base = found.group(1)
        token = http(f"{base}/api/login", {"user": "ops", "password": "operator-pass"})[1]["token"]
        with RosClient("bench_console") as ros:
            feeds = Feeds(ros)
            time.sleep(2.0)
            got = browser_latency(base, token, seconds)
            lat = sorted((now - stamp) * 1000 for now, stamp, _q, _n in got[5:])
            rate = (len(got) - 1) / (got[-1][0] - got[0][0]) if len(got) > 1 else 0.0
            if lat:
                p50, p95 = statistics.median(lat), lat[int(0.95 * (len(lat) - 1))]
                print(f"camera to browser (640x480 at {FPS:g} fps, headless Chromium): "
                      f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, {rate:.1f} fps received, "
                      f"quality {got[-1][2]}, {got[-1][3] / 1024:.0f} KiB a frame "
                      f"[target p50 < 150 ms at 10 fps: {'met' if p50 < 150 else 'MISSED'}]")
            else:
                print("camera to browser: no frame reached the page")
            # command round trip: the robot side answers `received` at once
            status_pub = ros.publisher(MotionCommandStatus, "/rover1/motion_commands/status",
                                       STATUSES)
            ros.node.create_subscription(
                MotionCommand, "/rover1/motion_commands/request",
                lambda m: status_pub.publish(MotionCommandStatus(id=m.id, kind=m.kind,
                                                                 state="received")), 10)
            time.sleep(1.0)
            trips = []
            for _ in range(20):
                t0 = time.monotonic()
                _, answer = http(f"{base}/api/robots/rover1/commands", {"kind": "stop"}, token)
                url = f"{base}/api/robots/rover1/commands/{answer['id']}"
                if wait_until(lambda u=url: http(u, token=token)[1]["state"] == "received", 10,
                              period=0.005):
                    trips.append((time.monotonic() - t0) * 1000)
            if trips:
                print(f"command round trip (POST -> robot topic -> status -> API, no delay): "
                      f"p50 {statistics.median(trips):.0f} ms, max {max(trips):.0f} ms over "
                      f"{len(trips)}")
            cpu0, t0 = cpu_seconds(node.proc.pid), time.monotonic()
            counts = asyncio.run(viewers(base, token, 3, seconds))
            cpu = (cpu_seconds(node.proc.pid) - cpu0) / (time.monotonic() - t0)
            print(f"console CPU with 3 viewers (camera {FPS:g} fps 640x480 + pose 20 Hz): "
                  f"{100 * cpu:.0f} % of a core; messages per viewer {counts}")
            feeds.stop.set()
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
