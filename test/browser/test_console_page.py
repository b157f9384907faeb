"""The ground console's page in a real browser: Debian's chromium, headless, driven by
Playwright's sync API (never a downloaded browser), against a real ground_console process and
a real simulated rover over real DDS.

The rover: sim (flat test world at real time, mast camera at 2 Hz), base_driver and
motion_commands from the rover stack, on the simulator's ground truth; the global costmap is
published by the test: free, with a lethal wall across the rover's way at x = WALL_X (the
rover starts at (-20, 0) facing +x). The console comes from its own stack (config/stacks/
console.yaml: the emulated lunar link, 1.3 s each way with jitter), reads the same ground
truth as the rover's pose, and has one operator and one viewer
(test/integration/console_support.py).

One stack and one browser serve the module, and the tests run in order: each starts from
wherever the previous one left the rover. Every request any page makes is recorded; the
last test checks they all went to the console's own address. Screenshots go to the test's
tmp dir and to test-artifacts/ at the repository root (git-ignored); their paths are printed.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from console_support import USERS, console_url, login, request, write_users
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import OccupancyGrid, Odometry
from sensor_msgs.msg import PointCloud2
from sim_support import rover_nodes, start

from ilrs_robots.core.geometry import Pose2D
from ilrs_robots.nodes.messages import point_cloud
from ilrs_robots.runner.missions import at_rest, odom_pose
from ilrs_robots.runner.processes import Supervisor
from ilrs_robots.runner.ros_client import LATCHED, Inbox, RosClient, wait_until
from ilrs_robots.runner.stacks import load_stack

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NS = "/rover1"
DELAY = 1.3  # s one way: the lunar link
WALL_X = -13.0  # a column of lethal cells across the map, 7 m ahead of the start
RES, SIZE = 0.5, 60.0
DONE_TIMEOUT = 180.0  # s of wall time for a short command on a loaded machine
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
OPERATOR = "ops"
VIEWER = "eve"

pytestmark = [
    pytest.mark.timeout(1200),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM} (Debian's chromium)"),
]


def costmap_message() -> OccupancyGrid:
    """The flat world's costmap: free, with a lethal column at x = WALL_X."""
    n = int(SIZE / RES)
    occ = np.zeros((n, n), dtype=np.int8)
    occ[:, int((WALL_X + SIZE / 2) / RES)] = 100
    msg = OccupancyGrid()
    msg.header.frame_id = "map"
    msg.info.resolution = RES
    msg.info.height, msg.info.width = n, n
    msg.info.origin.position.x = msg.info.origin.position.y = -SIZE / 2
    msg.info.origin.orientation.w = 1.0
    msg.data = occ.ravel().tolist()
    return msg


def commands_ready(msg: DiagnosticArray) -> bool:
    """True for motion_commands' diagnostics once it has a costmap and a fresh pose."""
    return any(s.name.endswith("motion_commands: commands") and s.level == DiagnosticStatus.OK
               for s in msg.status)


@dataclass
class Site:
    """The running processes, the test's ROS view of the rover, and the browser."""

    sup: Supervisor
    ros: RosClient
    truth: Inbox
    base: str  # http://127.0.0.1:PORT
    browser: object
    requests: list[str] = field(default_factory=list)  # every URL any page asked for
    sockets: list[str] = field(default_factory=list)  # every WebSocket any page opened

    def pose(self) -> Pose2D:
        """The rover's true pose now."""
        return odom_pose(self.truth.last())

    def settle(self, timeout: float = 60.0) -> Pose2D:
        """The true pose once a fresh ground truth shows the rover at rest."""
        seen = self.truth.received

        def still():
            got = self.truth.next_after(seen, timeout=0)
            return got if got is not None and at_rest(got[0], 0.02, 0.02) else None

        got = wait_until(still, timeout)
        assert got is not None, f"the rover did not come to rest\n{self.logs()}"
        return odom_pose(got[0])

    def logs(self, tail: int = 2500) -> str:
        """The console's and motion_commands' output, for failure messages."""
        out = []
        for key, proc in self.sup.procs.items():
            if key.endswith(("ground_console", "motion_commands")):
                out.append(f"--- {key} (alive: {proc.alive})\n{proc.output()[-tail:]}")
        return "\n".join(out)

    def new_page(self):
        """A page in a fresh browser context (its own session storage), recording requests."""
        context = self.browser.new_context(viewport={"width": 1400, "height": 860})
        context.on("request", lambda r: self.requests.append(r.url))
        page = context.new_page()
        page.on("websocket", lambda ws: self.sockets.append(ws.url))
        page.set_default_timeout(30_000)
        return page


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    """sim, base_driver and motion_commands on ground truth; ground_console; chromium."""
    run_dir: Path = tmp_path_factory.mktemp("run")
    nodes = rover_nodes(run_dir, ("sim", "base_driver", "motion_commands"), rate=1.0,
                        mast_rate=2.0, camera_width=320, camera_height=240)
    # the console's own stack (its parameter file, the lunar link in sim), on the test's port,
    # users and robot; the rover's pose is the simulator's ground truth (no localization here)
    console = load_stack("console", "sim", str(run_dir)).nodes[0]
    assert console.executable == "ground_console"
    assert console.parameters["link_delay"] == DELAY
    console.parameters.update(port=0, users_file=str(write_users(run_dir)),
                              audit_log=str(run_dir / "audit.jsonl"), robots=["rover1"],
                              pose_topic="sim/ground_truth", camera_rate=5.0)
    sup = start([*nodes, console], run_dir)
    ros = RosClient("console_page_test")
    playwright = None
    try:
        ros.publisher(OccupancyGrid, f"{NS}/costmap", LATCHED).publish(costmap_message())
        truth = ros.subscribe(Odometry, f"{NS}/sim/ground_truth")
        base = console_url(sup.procs["ground_console"].log_path)
        assert truth.wait_for(timeout=90), "no ground truth from the simulator"
        diagnostics = ros.subscribe(DiagnosticArray, "/diagnostics")
        playwright = sync_api.sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        running = Site(sup, ros, truth, base, browser)
        assert diagnostics.wait_for(commands_ready, timeout=120), running.logs()
        yield running
        browser.close()
    finally:
        if playwright is not None:
            playwright.stop()
        ros.close()
        sup.stop()


def log_in(page, base: str, user: str) -> None:
    """Open the console and log in as one of console_support.USERS."""
    page.goto(base + "/")
    page.fill("#login-user", user)
    page.fill("#login-password", USERS[user][1])
    page.click("#login-submit")
    expect(page.locator("#role")).to_have_text(USERS[user][0])
    expect(page.locator("#ws-state")).to_have_attribute("data-state", "live")


def page_pose(page, robot: str = "rover1") -> Pose2D | None:
    """The robot's pose as the page shows it (its row in the robots table)."""
    row = page.locator(f'#robots tr[data-robot="{robot}"]')
    x, y, yaw = (row.get_attribute(f"data-{k}") for k in ("x", "y", "yaw"))
    return None if x is None else Pose2D(float(x), float(y), float(yaw))


def screenshot(page, tmp_path: Path, name: str) -> Path:
    """Save the page to the test's tmp dir and to test-artifacts/; print both paths."""
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    ARTIFACTS.mkdir(exist_ok=True)
    kept = ARTIFACTS / name
    shutil.copy(shot, kept)
    print(f"screenshot of the console: {kept} (and {shot})")
    return kept


def send_from_panel(page, site: Site) -> tuple[str, object]:
    """Press Send; (command id, its row) once the console accepted it (202)."""
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url.endswith("/api/robots/rover1/commands")) as answer:
        page.click("#cmd-send")
    assert answer.value.status == 202, (answer.value.text(), site.logs())
    cid = answer.value.json()["id"]
    row = page.locator(f'#commands [data-command-id="{cid}"]')
    expect(row).to_be_attached()
    return cid, row


def history(row) -> list[str]:
    """The states a command's row lists, oldest first."""
    return [s.get_attribute("data-state") for s in row.locator(".cmd-history .step").all()]


@pytest.fixture(scope="module")
def operator(site) -> Iterator[object]:
    """The operator's page, logged in, for the module."""
    page = site.new_page()
    yield page
    page.context.close()


def test_a_wrong_password_is_refused_then_the_operator_sees_camera_frames_arrive(site,
                                                                                 operator):
    page = operator
    page.goto(site.base + "/")
    page.fill("#login-user", OPERATOR)
    page.fill("#login-password", "not-the-password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("Wrong user or password")
    expect(page.locator("#app")).to_be_hidden()
    log_in(page, site.base, OPERATOR)
    expect(page.locator("#link-state")).to_contain_text(f"{DELAY:.2f} s each way")
    camera = page.locator("#camera")
    expect(camera).to_have_attribute("src", re.compile(r"^data:image/jpeg;base64,"),
                                     timeout=90_000)
    first = camera.get_attribute("data-stamp")
    expect(camera).not_to_have_attribute("data-stamp", first, timeout=30_000)
    assert page.evaluate("() => [document.getElementById('camera').naturalWidth, "
                         "document.getElementById('camera').naturalHeight]") == [320, 240]
    # the pose and the costmap reach the page too
    expect(page.locator('#robots tr[data-robot="rover1"]')).to_have_attribute(
        "data-x", re.compile(r"\d"), timeout=60_000)
    start = site.pose()
    shown = page_pose(page)
    assert math.hypot(shown.x - start.x, shown.y - start.y) < 0.5, (shown, start)


def test_a_2_m_drive_is_predicted_then_goes_to_done_after_the_delay_and_moves_the_rover(
        site, operator, tmp_path):
    page = operator
    start = site.settle()
    page.select_option("#cmd-kind", "drive")
    page.fill("#cmd-distance", "2")
    # the predicted end of the drive, before it is sent
    expect(page.locator("#cmd-preview")).to_contain_text("drive 2.00 m")
    ex, ey = start.x + 2 * math.cos(start.yaw), start.y + 2 * math.sin(start.yaw)
    predicted = re.search(r"ends at \((-?[\d.]+), (-?[\d.]+)\)",
                          page.text_content("#cmd-preview"))
    assert predicted, page.text_content("#cmd-preview")
    assert math.hypot(float(predicted[1]) - ex, float(predicted[2]) - ey) < 0.3

    cid, row = send_from_panel(page, site)
    # honest about the delay: the robot hears of it 1.3 s later, the ground 1.3 s after that
    first = page.evaluate("(id) => { const r = document.querySelector("
                          "`#commands [data-command-id=\"${id}\"]`); "
                          "return [r.dataset.state, r.textContent]; }", cid)
    assert first[0] == "sent" and "waiting for the robot" in first[1], first
    expect(row).to_have_attribute("data-state", "done", timeout=DONE_TIMEOUT * 1000)
    # the robot answers received and executing at once; the link's jitter may deliver the
    # second first, and the console keeps a command's states in order (it drops the late one)
    shown = history(row)
    assert shown in (["sent", "received", "executing", "done"], ["sent", "executing", "done"]), \
        shown
    status, record = request(f"{site.base}/api/robots/rover1/commands/{cid}",
                             token=login(site.base, VIEWER))
    assert status == 200 and record["state"] == "done", record
    assert [h["state"] for h in record["history"]] == shown
    sent, answer = record["history"][:2]
    assert answer["t"] - sent["t"] >= 2 * DELAY * 0.9, \
        "the ground heard from the robot sooner than a round trip"

    end = site.settle()
    assert math.hypot(end.x - start.x, end.y - start.y) == pytest.approx(2.0, abs=0.3)
    # the map follows, a link delay late
    assert wait_until(lambda: (p := page_pose(page)) is not None
                      and math.hypot(p.x - end.x, p.y - end.y) < 0.15, 30), \
        (page_pose(page), end)
    screenshot(page, tmp_path, "console-operator-drive.png")


def test_an_unsafe_drive_is_refused_by_the_rover_and_an_out_of_range_one_by_the_console(
        site, operator):
    page = operator
    start = site.settle()
    assert start.x < WALL_X - 2.0 and abs(start.yaw) < 0.3, start
    # through the wall: the rover refuses it with its reason, and does not move
    page.select_option("#cmd-kind", "drive")
    page.fill("#cmd-distance", f"{WALL_X - start.x + 1.5:.1f}")
    cid, row = send_from_panel(page, site)
    expect(row).to_have_attribute("data-state", "refused", timeout=DONE_TIMEOUT * 1000)
    assert row.locator(".cmd-reason").text_content().strip(), "a refusal gives its reason"
    end = site.settle()
    assert math.hypot(end.x - start.x, end.y - start.y) < 0.1
    # over the console's bounds: 400 with the reason, no command, nothing sent
    rows = page.locator("#commands [data-command-id]").count()
    page.fill("#cmd-distance", "50")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("#cmd-send")
    assert answer.value.status == 400
    expect(page.locator("#cmd-error")).to_contain_text("out of range")
    assert page.locator("#commands [data-command-id]").count() == rows


def test_emergency_stop_of_every_robot_stops_a_running_command_and_release_clears_it(
        site, operator):
    page = operator
    start = site.settle()
    page.select_option("#cmd-kind", "velocity")
    page.fill("#cmd-linear", "0.2")
    page.fill("#cmd-angular", "0")
    page.fill("#cmd-duration", "10")
    expect(page.locator("#cmd-preview")).to_contain_text("2.00 m")
    cid, row = send_from_panel(page, site)
    expect(row).to_have_attribute("data-state", "executing", timeout=DONE_TIMEOUT * 1000)
    with page.expect_response(lambda r: r.url.endswith("/api/estop")) as answer:
        page.click("#estop-all")
    assert answer.value.status == 202
    estop_ids = answer.value.json()["ids"]
    assert len(estop_ids) == 1  # one robot in this console
    estop_row = page.locator(f'#commands [data-command-id="{estop_ids[0]}"]')
    expect(estop_row).to_have_attribute("data-state", "done", timeout=60_000)
    expect(page.locator('#robots tr[data-robot="rover1"] td.estop')).to_have_attribute(
        "data-estop", "true", timeout=30_000)
    expect(row).to_have_attribute("data-state", re.compile("^(failed|cancelled)$"),
                                  timeout=60_000)
    end = site.settle()
    travelled = math.hypot(end.x - start.x, end.y - start.y)
    assert 0.05 < travelled < 1.8, f"{travelled:.2f} m: the estop did not cut the 2 m short"
    # released: the base confirms, the page shows it clear
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("#release")
    assert answer.value.status == 202
    release_row = page.locator(f'#commands [data-command-id="{answer.value.json()["id"]}"]')
    expect(release_row).to_have_attribute("data-state", "done", timeout=60_000)
    expect(page.locator('#robots tr[data-robot="rover1"] td.estop')).to_have_attribute(
        "data-estop", "false", timeout=30_000)


def test_a_viewer_watches_without_command_controls_and_its_post_is_refused(site, tmp_path):
    page = site.new_page()
    try:
        log_in(page, site.base, VIEWER)
        expect(page.locator("#camera")).to_have_attribute(
            "src", re.compile(r"^data:image/jpeg;base64,"), timeout=60_000)
        for control in ("#cmd-kind", "#cmd-distance", "#cmd-send", "#estop-all", "#release",
                        "#command-panel"):
            expect(page.locator(control)).to_be_hidden()
        # the operator's commands are listed for the viewer too
        expect(page.locator('#commands [data-state="done"]').first).to_be_attached()
        # the server refuses the viewer whatever the page shows
        status = page.evaluate("""async () => {
            const token = JSON.parse(sessionStorage.getItem('ilrs.console.session')).token;
            const post = (path, body) => fetch(path, {method: 'POST', body: JSON.stringify(body),
                headers: {'Authorization': `Bearer ${token}`,
                          'Content-Type': 'application/json'}}).then((r) => r.status);
            return [await post('/api/robots/rover1/commands', {kind: 'drive', distance: 1}),
                    await post('/api/estop', {})];
        }""")
        assert status == [403, 403]
        screenshot(page, tmp_path, "console-viewer.png")
    finally:
        page.context.close()


def test_the_rovers_dose_map_is_drawn_with_its_peak(site, operator, tmp_path):
    """radiation_mapper's dose map (a cloud, one point per cell) crosses the link and is
    drawn under the readings, its peak named beside the legend."""
    page = operator
    xs, ys = np.arange(-20.0, 0.0, 1.0) + 0.5, np.arange(-5.0, 5.0, 1.0) + 0.5
    gx, gy = np.meshgrid(xs, ys)
    dose = 0.2 + 740.0 / np.maximum((gx + 10.5) ** 2 + (gy - 0.5) ** 2, 1.0)
    cloud = point_cloud(site.ros.node.get_clock().now().to_msg(), "map", np.column_stack(
        [gx.ravel(), gy.ravel(), np.zeros(gx.size), dose.ravel(), 0.1 * dose.ravel()]),
        ("x", "y", "z", "dose_rate", "dose_rate_stddev"))
    site.ros.publisher(PointCloud2, f"{NS}/radiation/dose_map", LATCHED).publish(cloud)
    expect(page.locator("#dose-peak")).to_have_text("dose map peak 740 µSv/h",
                                                    timeout=60_000)
    screenshot(page, tmp_path, "console-dose-map.png")


def test_every_request_of_the_pages_went_to_the_consoles_own_address(site):
    origin = urlsplit(site.base)
    assert any(u.endswith("/static/console.js") for u in site.requests), site.requests
    outside = [u for u in site.requests
               if urlsplit(u)[:2] != origin[:2] and not u.startswith("data:")]
    assert not outside, outside
    assert site.sockets and all(u == f"ws://{origin.netloc}/ws" for u in site.sockets), \
        site.sockets
