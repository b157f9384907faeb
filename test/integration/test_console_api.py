"""The ground console's API over real HTTP and WebSocket, against a real ground_console process
and real DDS. The test plays the robots' side: it reads what the console publishes on
/<robot>/motion_commands/request and /<robot>/estop, and publishes statuses and telemetry.

The emulated link is on (0.5 s one way): what the operator sends reaches the robot's topics
no earlier than that.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
import rclpy
from console_support import console_url, login, request, write_users
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from nav_msgs.msg import Odometry
from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from ilrs_interfaces.action import FollowWaypoints
from ilrs_interfaces.msg import BaseStatus, MotionCommand, MotionCommandStatus
from ilrs_robots.nodes.qos import MOTION_STATUSES
from ilrs_robots.runner.ros_client import LATCHED, Inbox, RosClient, wait_until

DELAY = 0.5
LISTENER_WAIT = 12.0  # s a motion command waits for its subscriber


@dataclass
class Console:
    base: str
    ros: RosClient
    requests: Inbox
    estops: dict[str, Inbox]
    audit: Path

    def post(self, robot: str, body: dict, user: str = "ops") -> tuple[int, dict]:
        return request(f"{self.base}/api/robots/{robot}/commands", "POST", body,
                       login(self.base, user))

    def command(self, robot: str, command_id: str) -> dict:
        status, body = request(f"{self.base}/api/robots/{robot}/commands/{command_id}",
                               token=login(self.base, "eve"))
        assert status == 200, body
        return body

    def states(self, robot: str, command_id: str) -> list[str]:
        return [h["state"] for h in self.command(robot, command_id)["history"]]


@pytest.fixture(scope="module")
def console(module_launcher, tmp_path_factory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    users = write_users(folder)
    proc = module_launcher.start("ground_console", parameters={
        "port": 0, "users_file": str(users), "audit_log": str(folder / "audit.jsonl"),
        "robots": ["rover1", "builder1:builder", "rover2"], "link_delay": DELAY,
        "listener_wait": LISTENER_WAIT})
    base = console_url(proc.log_path)
    with RosClient("console_test_robot") as ros:
        requests = ros.subscribe(MotionCommand, "/rover1/motion_commands/request")
        estops = {r: ros.subscribe(Bool, f"/{r}/estop", LATCHED) for r in ("rover1", "builder1")}
        yield Console(base, ros, requests, estops, folder / "audit.jsonl")


def test_login_gives_a_token_and_refuses_wrong_passwords_then_limits_them(console):
    status, body = request(f"{console.base}/api/login", "POST",
                           {"user": "ops", "password": "operator-pass"})
    assert status == 200 and body["role"] == "operator" and body["token"]
    assert request(f"{console.base}/api/login", "POST", raw=b"{not json")[0] == 400
    assert request(f"{console.base}/api/login", "POST", {"user": "ops"})[0] == 400
    codes = [request(f"{console.base}/api/login", "POST",
                     {"user": "mallory", "password": f"guess{i}"})[0] for i in range(6)]
    assert codes == [401] * 5 + [429], codes
    assert login(console.base, "ops"), "another user from the same address still logs in"


def test_an_operators_drive_reaches_the_robot_after_the_delay_and_its_life_is_kept(console):
    before = console.requests.received
    sent_at = time.monotonic()
    status, body = console.post("rover1", {"kind": "drive", "distance": 2.0, "speed": 0.3})
    assert status == 202, body
    msg = console.requests.wait_for(lambda m: m.id == body["id"], timeout=30)
    assert msg is not None, "the command never reached /rover1/motion_commands/request"
    arrived = next(t for t, m in console.requests.timed() if m.id == body["id"])
    assert arrived - sent_at >= DELAY * 0.9, "it crossed the link faster than its delay"
    assert (msg.kind, msg.distance, msg.speed) == ("drive", 2.0, 0.3)
    assert console.requests.received == before + 1
    # the robot's side answers; the console learns each state a link delay later
    status_pub = console.ros.publisher(MotionCommandStatus, "/rover1/motion_commands/status",
                                       MOTION_STATUSES)  # as motion_commands publishes them
    for state in ("received", "executing", "done"):
        status_pub.publish(MotionCommandStatus(id=body["id"], kind="drive", state=state,
                                               progress=1.0 if state == "done" else 0.0))
        time.sleep(0.05)
    assert wait_until(lambda: console.states("rover1", body["id"])[-1] == "done", 30), \
        console.command("rover1", body["id"])
    assert console.states("rover1", body["id"]) == ["sent", "received", "executing", "done"]


def test_a_command_for_a_rover_whose_motion_commands_is_down_fails_naming_the_topic(console):
    status, body = console.post("rover2", {"kind": "turn", "angle_deg": 45})
    assert status == 202, body
    assert wait_until(lambda: console.states("rover2", body["id"])[-1] == "failed",
                      LISTENER_WAIT + DELAY + 30), console.command("rover2", body["id"])
    reason = console.command("rover2", body["id"])["reason"]
    assert "/rover2/motion_commands/request" in reason and "running" in reason, reason


@pytest.mark.parametrize("body, fault", [
    ({"kind": "fly"}, "unknown kind"),
    ({"kind": "drive"}, "needs"),
    ({"kind": "drive", "distance": 1e400}, "finite"),
    ({"kind": "drive", "distance": 50}, "out of range"),
    ({"kind": "turn", "angle_deg": "ninety"}, "number"),
    ({"kind": "velocity", "linear": 0.2, "angular": 0, "duration": 600}, "duration"),
])
def test_malformed_commands_are_400_and_never_reach_a_topic(console, body, fault):
    before = console.requests.received
    status, answer = console.post("rover1", body)
    assert status == 400 and fault in answer["error"], answer
    status, answer = console.post("rover1", {"kind": "stop"})  # a sentinel behind it
    assert status == 202
    assert console.requests.wait_for(lambda m: m.id == answer["id"], timeout=30)
    assert console.requests.received == before + 1, "only the sentinel went out"


def test_who_may_do_what(console):
    base = console.base
    url = f"{base}/api/robots/rover1/commands"
    drive = {"kind": "drive", "distance": 1.0}
    assert request(url, "POST", drive)[0] == 401
    assert request(url, "POST", drive, token="abc.def")[0] == 401
    viewer = login(base, "eve")
    status, body = request(url, "POST", drive, token=viewer)
    assert status == 403 and "viewer" in body["error"]
    assert request(f"{base}/api/estop", "POST", {}, token=viewer)[0] == 403
    status, body = request(f"{base}/api/robots", token=viewer)
    names = [r["name"] for r in body["robots"]]
    assert status == 200 and names == ["rover1", "builder1", "rover2"]
    assert body["link"]["delay"] == DELAY
    status, body = request(f"{base}/api/robots/rover7/commands", "POST", drive,
                           token=login(base, "ops"))
    assert status == 400 and "unknown robot" in body["error"]
    status, body = request(f"{base}/api/robots/builder1/commands", "POST", drive,
                           token=login(base, "ops"))
    assert status == 400 and "takes no 'drive'" in body["error"]
    assert request(f"{base}/api/robots/rover1/commands/nope", token=viewer)[0] == 404


def test_the_audit_log_names_who_did_what(console):
    console.post("rover1", {"kind": "turn", "angle_deg": 45})
    console.post("rover1", {"kind": "drive", "distance": 99})
    request(f"{console.base}/api/robots/rover1/commands", "POST", {"kind": "stop"},
            login(console.base, "eve"))
    events = [json.loads(line) for line in console.audit.read_text().splitlines()]
    kinds = {(e["event"], e.get("user")) for e in events}
    assert ("command", "ops") in kinds and ("command_refused", "ops") in kinds
    assert ("command_forbidden", "eve") in kinds and ("login", "eve") in kinds


def test_estop_is_latched_on_every_robot_and_confirmed_by_the_base(console):
    status, body = request(f"{console.base}/api/estop", "POST", {},
                           login(console.base, "ops"))
    assert status == 202 and len(body["ids"]) == 3  # rover1, builder1, rover2
    for robot in ("rover1", "builder1"):
        assert console.estops[robot].wait_for(lambda m: m.data, timeout=30), robot
    rover_id, builder_id, _ = body["ids"]
    base_pub = console.ros.publisher(BaseStatus, "/rover1/base_status", 10)
    assert wait_until(lambda: console.states("builder1", builder_id)[-1] == "received", 30)
    assert console.states("rover1", rover_id)[-1] in ("sent", "received"), \
        "done only once the base says so"

    def confirmed() -> bool:
        base_pub.publish(BaseStatus(estop=True, link_ok=True))
        return console.states("rover1", rover_id)[-1] == "done"

    assert wait_until(confirmed, 30, period=0.3), console.command("rover1", rover_id)
    status, body = console.post("rover1", {"kind": "release"})
    assert status == 202
    assert console.estops["rover1"].wait_for(lambda m: not m.data, timeout=30)


async def _socket(base: str, first: object) -> list:
    """Messages of a socket whose first message is `first`, until closed or 3 s of them."""
    got: list = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(base.replace("http", "ws") + "/ws") as ws:
            await ws.send_str(first if isinstance(first, str) else json.dumps(first))
            end = time.monotonic() + 10
            while time.monotonic() < end:
                try:
                    msg = await asyncio.wait_for(ws.receive(), 3.0)
                except asyncio.TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.TEXT:
                    got.append(json.loads(msg.data))
                else:
                    got.append(("closed", ws.close_code))
                    break
    return got


@pytest.mark.parametrize("first", ["not json", {"type": "hello"}, {"type": "auth"},
                                   {"type": "auth", "token": "forged.token"}])
def test_a_socket_without_a_valid_token_is_closed(console, first):
    got = asyncio.run(_socket(console.base, first))
    assert got and got[-1] == ("closed", 4401), got
    assert not any(isinstance(m, dict) and m.get("type") in ("pose", "hello") for m in got)


def test_the_socket_streams_telemetry_across_the_link_and_refuses_client_messages(console):
    token = login(console.base, "eve")
    odom_pub = console.ros.publisher(Odometry, "/rover1/odometry/filtered", 10)
    camera_pub = console.ros.publisher(CompressedImage, "/rover1/camera/image_raw/compressed", 5)
    pixels = np.full((48, 64, 3), 80, np.uint8)
    jpeg = cv2.imencode(".jpg", pixels)[1].tobytes()

    async def session() -> list:
        got: list = []
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(console.base.replace("http", "ws") + "/ws") as ws:
                await ws.send_json({"type": "auth", "token": token})
                hello = await ws.receive_json(timeout=10)
                got.append(hello)
                await ws.send_str("{broken")
                await ws.send_json({"type": "command", "kind": "drive", "distance": 5})
                end = time.monotonic() + 30
                while time.monotonic() < end:
                    odom = Odometry()
                    odom.header.frame_id = "map"
                    odom.pose.pose.position.x = 4.5
                    odom.pose.pose.orientation.w = 1.0
                    odom_pub.publish(odom)
                    camera_pub.publish(CompressedImage(format="jpeg", data=jpeg))
                    try:
                        msg = await ws.receive_json(timeout=0.5)
                    except asyncio.TimeoutError:
                        continue
                    got.append(msg)
                    types = {m["type"] for m in got}
                    errors = [m for m in got if m["type"] == "error"]
                    if {"pose", "camera"} <= types and len(errors) >= 2:
                        break
        return got

    got = asyncio.run(session())
    assert got[0]["type"] == "hello" and got[0]["role"] == "viewer", got[0]
    pose = next(m for m in got if m["type"] == "pose")
    assert pose["robot"] == "rover1" and pose["x"] == 4.5
    camera = next(m for m in got if m["type"] == "camera")
    img = cv2.imdecode(np.frombuffer(base64.b64decode(camera["image"].split(",", 1)[1]),
                                     np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (48, 64, 3)
    errors = [m["error"] for m in got if m["type"] == "error"]
    assert any("not JSON" in e for e in errors) and any("read-only" in e for e in errors)


class FakeMissions:
    """The robots' side of mission control, played by the test: a follow_waypoints server on
    rover1 that runs until told to finish (or cancelled), and pause on builder1."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("fake_missions", context=self.context)
        self.finish = threading.Event()
        self.goals: list = []
        self.paused = 0
        group = ReentrantCallbackGroup()
        self.server = ActionServer(self.node, FollowWaypoints, "/rover1/follow_waypoints",
                                   self._execute, callback_group=group,
                                   cancel_callback=lambda _: CancelResponse.ACCEPT)
        self.node.create_service(Trigger, "/builder1/pause", self._pause, callback_group=group)
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _execute(self, goal_handle):
        self.goals.append(goal_handle.request)
        feedback = FollowWaypoints.Feedback(current_waypoint=1, distance_remaining=3.5)
        while not self.finish.wait(0.2):
            goal_handle.publish_feedback(feedback)
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                return FollowWaypoints.Result(error_code=1, error_msg="canceled")
        goal_handle.succeed()
        return FollowWaypoints.Result()

    def _pause(self, _req, res):
        self.paused += 1
        res.success, res.message = True, "paused at layer 3"
        return res

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def fake_missions() -> Iterator[FakeMissions]:
    robot = FakeMissions()
    yield robot
    robot.finish.set()
    robot.close()


def test_missions_run_on_the_robot_one_at_a_time_and_cancel(console, fake_missions):
    def wait_state(robot: str, command_id: str, state: str) -> dict:
        assert wait_until(lambda: console.command(robot, command_id)["state"] == state, 60), \
            json.dumps(console.command(robot, command_id))
        return console.command(robot, command_id)

    status, first = console.post("rover1", {"kind": "waypoints", "points": [[1, 2], [3, -4]]})
    assert status == 202, first
    running = wait_state("rover1", first["id"], "executing")
    assert wait_until(lambda: "waypoint 1" in console.command("rover1", first["id"])["detail"],
                      30), running
    goal = fake_missions.goals[0]
    assert [(p.pose.position.x, p.pose.position.y) for p in goal.poses] == [(1, 2), (3, -4)]
    status, second = console.post("rover1", {"kind": "waypoints", "points": [[0, 0]]})
    assert "running" in wait_state("rover1", second["id"], "refused")["reason"]
    status, cancel = console.post("rover1", {"kind": "cancel"})
    wait_state("rover1", cancel["id"], "done")
    wait_state("rover1", first["id"], "cancelled")
    # the next one runs to its end
    status, third = console.post("rover1", {"kind": "waypoints", "points": [[5, 5]]})
    wait_state("rover1", third["id"], "executing")
    fake_missions.finish.set()
    wait_state("rover1", third["id"], "done")
    # the builder: pause answered by its service; no print server: failed, naming it
    status, pause = console.post("builder1", {"kind": "pause"})
    assert "layer 3" in wait_state("builder1", pause["id"], "done")["reason"]
    assert fake_missions.paused == 1
    status, job = console.post("builder1", {"kind": "print", "design": "landing_pad_small"})
    assert "/builder1/print_structure" in wait_state("builder1", job["id"], "failed")["reason"]
    for bad in ({"kind": "waypoints", "points": []}, {"kind": "waypoints", "points": [[1]]},
                {"kind": "print", "design": "../../etc/passwd"}, {"kind": "inspect"}):
        robot = "builder1" if bad["kind"] == "print" else "rover1"
        assert console.post(robot, bad)[0] == 400, bad


def test_a_session_is_recorded_to_mcap_and_served_to_foxglove(launcher, ros, tmp_path):
    users = write_users(tmp_path)
    with socket.socket() as s:  # a free port for Foxglove
        s.bind(("127.0.0.1", 0))
        fox_port = s.getsockname()[1]
    topic = "/rover1/motion_commands/request"
    requests = ros.subscribe(MotionCommand, topic)
    before = ros.node.count_publishers(topic)  # the module's console may publish there too
    proc = launcher.start("ground_console", parameters={
        "port": 0, "users_file": str(users), "audit_log": "", "robots": ["rover1"],
        "record_path": str(tmp_path / "session_{time}.mcap"), "foxglove_port": fox_port})
    base = console_url(proc.log_path)
    assert f"Foxglove (read-only) on ws://127.0.0.1:{fox_port}" in proc.output()
    odom_pub = ros.publisher(Odometry, "/rover1/odometry/filtered", 10)
    # a command is published once (volatile): this console's publisher must be discovered
    # before the command crosses the link (under load, discovery outlasted the link's delay)
    assert wait_until(lambda: ros.node.count_publishers(topic) > before, 30), \
        ros.graph_report(topic)
    status, body = request(f"{base}/api/robots/rover1/commands", "POST",
                           {"kind": "turn", "angle_deg": 30}, login(base, "ops"))
    assert status == 202, body

    sent_after_match = [0]

    def published() -> bool:  # odometry the console has matched, and the command arrived
        if odom_pub.get_subscription_count() > 0:
            odom = Odometry()
            odom.pose.pose.position.y = 7.25
            odom_pub.publish(odom)
            sent_after_match[0] += 1
        return sent_after_match[0] >= 5 and bool(requests.received)

    assert wait_until(published, 60, period=0.2), (sent_after_match, requests.received)
    assert proc.stop() == 0, proc.output()
    files = list(tmp_path.glob("session_*.mcap"))
    assert len(files) == 1, files
    with open(files[0], "rb") as f:
        messages = [(ch.topic, msg) for _, ch, _, msg in
                    make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()]
    topics = {t for t, _ in messages}
    assert {"/rover1/odometry/filtered", "/rover1/motion_commands/request"} <= topics, topics
    assert any(t == "/rover1/odometry/filtered" and m.pose.pose.position.y == 7.25
               for t, m in messages)
    sent = [m for t, m in messages if t == "/rover1/motion_commands/request"]
    assert sent[0].id == body["id"] and sent[0].kind == "turn"
