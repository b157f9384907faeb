"""console.foxglove_live: the read-only Foxglove server on a free loopback port, seen by a
WebSocket client speaking the Foxglove protocol (subprotocol foxglove.sdk.v1): the channels it
advertises, and telemetry that reaches a subscriber."""

from __future__ import annotations

import asyncio
import json
import struct

import aiohttp
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from foxglove.messages import Pose, PoseInFrame, Quaternion, Timestamp, Vector3
from nav_msgs.msg import OccupancyGrid, Odometry

from ilrs_interfaces.msg import MotionCommandStatus
from ilrs_robots.console.foxglove_live import FoxgloveLive

SUBPROTOCOL = "foxglove.sdk.v1"
MESSAGE_DATA = 0x01  # binary opcode of the Foxglove WebSocket protocol


async def _next_json(ws: aiohttp.ClientWebSocketResponse, op: str, timeout: float = 10.0
                     ) -> dict:
    async def find() -> dict:
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                body = json.loads(msg.data)
                if body.get("op") == op:
                    return body
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                              aiohttp.WSMsgType.ERROR):
                raise AssertionError(f"socket closed waiting for {op!r}")
    return await asyncio.wait_for(find(), timeout)


async def _next_data(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0
                     ) -> tuple[int, int, bytes]:
    async def find() -> tuple[int, int, bytes]:
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data[0] == MESSAGE_DATA:
                sub, stamp = struct.unpack_from("<IQ", msg.data, 1)
                return sub, stamp, bytes(msg.data[13:])
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                raise AssertionError("socket closed waiting for data")
    return await asyncio.wait_for(find(), timeout)


async def _advertised(port: int) -> tuple[dict, dict[str, dict]]:
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(f"ws://127.0.0.1:{port}/", protocols=(SUBPROTOCOL,)) as ws:
        assert ws.protocol == SUBPROTOCOL
        info = await _next_json(ws, "serverInfo")
        channels: dict[str, dict] = {}
        while "/rover2/costmap" not in channels:
            for ch in (await _next_json(ws, "advertise"))["channels"]:
                channels[ch["topic"]] = ch
        return info, channels


def odometry() -> Odometry:
    msg = Odometry()
    msg.header.frame_id = "map"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000, 500
    msg.pose.pose.position.x, msg.pose.pose.position.y = 2.0, -1.0
    msg.pose.pose.orientation.w = 1.0
    return msg


@pytest.fixture
def live():
    server = FoxgloveLive(robots=["rover1", "rover2"])
    yield server
    server.stop()


def test_advertises_the_telemetry_channels_read_only(live: FoxgloveLive) -> None:
    port = live.start("127.0.0.1", 0)
    assert port > 0 and live.port == port
    live.log("/rover1/commands", {"id": "c1", "state": "done"})
    info, channels = asyncio.run(_advertised(port))
    assert info["name"] == "ilrs ground console"
    assert not set(info.get("capabilities", [])) & {"clientPublish", "services", "parameters"}
    expected = {"/rover1/pose": "foxglove.PoseInFrame", "/rover2/pose": "foxglove.PoseInFrame",
                "/rover1/camera/compressed": "foxglove.CompressedImage",
                "/rover1/costmap": "foxglove.Grid", "/rover2/costmap": "foxglove.Grid",
                "/tf": "foxglove.FrameTransform"}
    for topic, schema in expected.items():
        assert channels[topic]["schemaName"] == schema, channels[topic]
        assert channels[topic]["encoding"] == "protobuf"
    assert channels["/diagnostics"]["encoding"] == "json"
    assert json.loads(channels["/diagnostics"]["schema"])["title"] == "ilrs diagnostics"
    assert channels["/rover1/commands"]["encoding"] == "json"
    assert set(live.topics()) == set(channels)


def test_a_subscriber_receives_poses_diagnostics_and_ros_messages(live: FoxgloveLive) -> None:
    port = live.start("127.0.0.1", 0)
    array = DiagnosticArray()
    array.header.stamp.sec = 7
    array.status.append(DiagnosticStatus(level=DiagnosticStatus.WARN, name="base",
                                         message="slow", hardware_id="rover1/base"))
    status = MotionCommandStatus(id="c9", kind="turn", state="executing", progress=0.5)
    live.log_ros("/rover1/motion_commands/status", status)  # advertised before the client

    async def session() -> list[tuple[str, int, bytes]]:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"ws://127.0.0.1:{port}/", protocols=(SUBPROTOCOL,)) as ws:
            channels: dict[str, dict] = {}
            while "/rover1/motion_commands/status" not in channels:
                for ch in (await _next_json(ws, "advertise"))["channels"]:
                    channels[ch["topic"]] = ch
            ros = channels["/rover1/motion_commands/status"]
            assert (ros["encoding"], ros["schemaName"], ros["schemaEncoding"]) == \
                ("cdr", "ilrs_interfaces/msg/MotionCommandStatus", "ros2msg")
            assert "MSG: builtin_interfaces/Time" in ros["schema"]
            topics = ("/rover1/pose", "/diagnostics", "/rover1/motion_commands/status")
            await ws.send_json({"op": "subscribe", "subscriptions": [
                {"id": i, "channelId": channels[t]["id"]} for i, t in enumerate(topics)]})
            got = []
            for _ in range(50):  # until each subscription has delivered once
                await asyncio.sleep(0.1)
                live.publish_pose("rover1", odometry())
                live.publish_diagnostics(array)
                live.log_ros("/rover1/motion_commands/status", status)
                try:
                    while True:
                        sub, stamp, payload = await _next_data(ws, timeout=0.2)
                        got.append((topics[sub], stamp, payload))
                except asyncio.TimeoutError:
                    pass
                if {t for t, _, _ in got} == set(topics):
                    return got
            raise AssertionError(f"only {sorted({t for t, _, _ in got})} arrived")

    got = asyncio.run(session())
    first = {topic: (stamp, payload) for topic, stamp, payload in reversed(got)}
    stamp, payload = first["/rover1/pose"]
    assert stamp == 1000 * 1_000_000_000 + 500
    assert payload == PoseInFrame(
        timestamp=Timestamp(1000, 500), frame_id="map",
        pose=Pose(position=Vector3(x=2.0, y=-1.0, z=0.0),
                  orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))).encode()
    stamp, payload = first["/diagnostics"]
    assert stamp == 7 * 1_000_000_000
    assert json.loads(payload)["statuses"] == [{"name": "base", "level": 1, "message": "slow",
                                                "hardware_id": "rover1/base"}]
    from rclpy.serialization import deserialize_message
    _, payload = first["/rover1/motion_commands/status"]
    assert deserialize_message(payload, MotionCommandStatus) == status


def test_costmap_and_camera_are_accepted_and_checked(live: FoxgloveLive) -> None:
    grid = OccupancyGrid()
    grid.info.width, grid.info.height, grid.info.resolution = 3, 2, 0.5
    grid.data = [0, 50, 100, -1, 0, 0]
    live.publish_costmap("rover1", grid)  # before start: nothing, no error
    live.start("127.0.0.1", 0)
    live.publish_costmap("rover1", grid)
    live.publish_camera("rover1", b"\xff\xd8\xff\xd9", stamp_ns=123)
    grid.info.width = 4
    with pytest.raises(ValueError, match="4x2 cells with 6 values"):
        live.publish_costmap("rover1", grid)
    with pytest.raises(ValueError, match="taken"):
        live.log("/diagnostics", {})


def test_loopback_only_unless_allowed_and_one_start(live: FoxgloveLive) -> None:
    with pytest.raises(ValueError, match="no authentication"):
        live.start("0.0.0.0", 0)
    live.start("localhost", 0)
    with pytest.raises(RuntimeError, match="already"):
        live.start("127.0.0.1", 0)
    live.stop()
    assert live.port is None
    live.publish_pose("rover1", odometry())  # after stop: nothing, no error
