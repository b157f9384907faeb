"""An optional, read-only Foxglove WebSocket server (PyPI `foxglove-sdk`) with the console's
live telemetry, for operators who open Foxglove (app or desktop: "Open connection",
ws://HOST:PORT).

The server has no authentication of its own: it listens on loopback unless `start` is told
`allow_remote=True` (then put it behind an authenticating proxy or a VPN). It is read-only:
no client publishing, services or parameters are advertised.

Channels (each robot's are advertised as soon as the robot is known, so they show up in the
topic list before any data):
  /<robot>/pose                   foxglove.PoseInFrame     (from nav_msgs/Odometry)
  /tf                             foxglove.FrameTransform  (the pose's frame -> its child frame)
  /<robot>/camera/compressed      foxglove.CompressedImage (JPEG bytes as the camera sends)
  /<robot>/costmap                foxglove.Grid            (int8 `cost` of nav_msgs/OccupancyGrid:
                                                            -1 unknown, 0..100)
  /diagnostics                    JSON (telemetry.diagnostics_message)
and any topic through `log` (JSON) or `log_ros` (a ROS message as CDR, with its ros2msg
definition: Foxglove decodes it as a ROS 2 source would).

    live = FoxgloveLive(robots=["rover1"])
    port = live.start("127.0.0.1", 8765)
    live.publish_pose("rover1", odometry_msg)
    live.publish_camera("rover1", jpeg_bytes, stamp_ns)
    live.publish_costmap("rover1", occupancy_grid_msg)
    live.publish_diagnostics(diagnostic_array_msg)
    live.log("/rover1/command", {"id": "...", "state": "done"})
    live.stop()

Every method may be called from any thread; publishing before `start` or after `stop` does
nothing.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterable
from typing import Any

import foxglove
import numpy as np
from foxglove.channels import (
    CompressedImageChannel,
    FrameTransformChannel,
    GridChannel,
    PoseInFrameChannel,
)
from foxglove.messages import (
    CompressedImage,
    FrameTransform,
    Grid,
    PackedElementField,
    PackedElementFieldNumericType,
    Pose,
    PoseInFrame,
    Quaternion,
    Timestamp,
    Vector2,
    Vector3,
)

from ilrs_robots.console.telemetry import diagnostics_message

DEFAULT_PORT = 8765
DIAGNOSTICS_SCHEMA = {
    "type": "object",
    "title": "ilrs diagnostics",
    "properties": {"type": {"type": "string"}, "statuses": {"type": "array", "items": {
        "type": "object", "properties": {
            "name": {"type": "string"}, "level": {"type": "integer"},
            "message": {"type": "string"}, "hardware_id": {"type": "string"}}}}},
}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _timestamp(stamp: Any) -> Timestamp:
    """A Foxglove timestamp of a builtin_interfaces/Time."""
    return Timestamp(int(stamp.sec), int(stamp.nanosec))


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class FoxgloveLive:
    """The console's telemetry on a Foxglove WebSocket server. See the module docstring."""

    def __init__(self, robots: Iterable[str] = (), name: str = "ilrs ground console") -> None:
        self.name = name
        self.context = foxglove.Context()
        self._lock = threading.Lock()
        self._server: Any = None
        self._robots: dict[str, dict[str, Any]] = {}
        self._json: dict[str, foxglove.Channel] = {}
        self._ros: dict[str, tuple[foxglove.Channel, str]] = {}
        self._tf = FrameTransformChannel("/tf", context=self.context)
        self._diagnostics = foxglove.Channel("/diagnostics", schema=DIAGNOSTICS_SCHEMA,
                                             context=self.context)
        for robot in robots:
            self._channels(robot)

    # -- server -----------------------------------------------------------------------------

    @property
    def port(self) -> int | None:
        """The port listened on, or None when not started."""
        with self._lock:
            return self._server.port if self._server is not None else None

    def start(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
              allow_remote: bool = False) -> int:
        """Listen on `host`:`port` (0: any free port); the port listened on.

        ValueError for an address that is not loopback unless `allow_remote` (the server has
        no authentication); RuntimeError when already started; the SDK's error when the port
        is taken.
        """
        if not allow_remote and not _is_loopback(host):
            raise ValueError(f"Foxglove server on {host!r}: it has no authentication, so it "
                             f"listens on loopback only unless allow_remote is set")
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port {port}: must be in 0..65535")
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the Foxglove server is already started")
            self._server = foxglove.start_server(name=self.name, host=host, port=int(port),
                                                 capabilities=[], context=self.context)
            return self._server.port

    def stop(self) -> None:
        """Stop the server (clients are disconnected); channels stay for a later start."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()

    def _live(self) -> bool:
        return self._server is not None

    # -- channels ---------------------------------------------------------------------------

    def _channels(self, robot: str) -> dict[str, Any]:
        with self._lock:
            channels = self._robots.get(robot)
            if channels is None:
                if not robot.replace("_", "").isalnum():
                    raise ValueError(f"robot name {robot!r}: letters, digits and _ only")
                channels = {
                    "pose": PoseInFrameChannel(f"/{robot}/pose", context=self.context),
                    "camera": CompressedImageChannel(f"/{robot}/camera/compressed",
                                                     context=self.context),
                    "costmap": GridChannel(f"/{robot}/costmap", context=self.context),
                }
                self._robots[robot] = channels
            return channels

    def topics(self) -> list[str]:
        """Every topic advertised so far."""
        with self._lock:
            names = ["/tf", "/diagnostics", *self._json, *self._ros]
            for channels in self._robots.values():
                names += [c.topic() for c in channels.values()]
        return sorted(names)

    # -- telemetry --------------------------------------------------------------------------

    def publish_pose(self, robot: str, odom: Any) -> None:
        """A robot's pose from a nav_msgs/Odometry (any object with its fields): its
        PoseInFrame, and the transform header.frame_id -> child_frame_id (empty:
        `<robot>/base_link`)."""
        channels = self._channels(robot)
        if not self._live():
            return
        p, q = odom.pose.pose.position, odom.pose.pose.orientation
        stamp = _timestamp(odom.header.stamp)
        frame = odom.header.frame_id or "map"
        position = Vector3(x=float(p.x), y=float(p.y), z=float(p.z))
        orientation = Quaternion(x=float(q.x), y=float(q.y), z=float(q.z), w=float(q.w))
        log_time = _stamp_ns(odom.header.stamp) or None
        channels["pose"].log(PoseInFrame(timestamp=stamp, frame_id=frame,
                                         pose=Pose(position=position, orientation=orientation)),
                             log_time=log_time)
        self._tf.log(FrameTransform(timestamp=stamp, parent_frame_id=frame,
                                    child_frame_id=odom.child_frame_id or f"{robot}/base_link",
                                    translation=position,
                                    rotation=orientation), log_time=log_time)

    def publish_camera(self, robot: str, jpeg: bytes, stamp_ns: int | None = None,
                       frame_id: str = "", image_format: str = "jpeg") -> None:
        """A camera frame as the camera sent it (sensor_msgs/CompressedImage's data, its
        header's frame_id; empty: `<robot>/camera`), stamped `stamp_ns` (default now)."""
        channels = self._channels(robot)
        if not self._live():
            return
        stamp_ns = time.time_ns() if stamp_ns is None else int(stamp_ns)
        sec, nsec = divmod(stamp_ns, 1_000_000_000)
        channels["camera"].log(CompressedImage(timestamp=Timestamp(sec, nsec),
                                               frame_id=frame_id or f"{robot}/camera",
                                               data=bytes(jpeg), format=image_format),
                               log_time=stamp_ns)

    def publish_costmap(self, robot: str, grid: Any) -> None:
        """A nav_msgs/OccupancyGrid (any object with its fields) as a Grid of int8 costs."""
        channels = self._channels(robot)
        if not self._live():
            return
        info = grid.info
        width, height = int(info.width), int(info.height)
        data = np.asarray(grid.data, dtype=np.int8)
        if width * height == 0 or data.size != width * height:
            raise ValueError(f"costmap of {width}x{height} cells with {data.size} values")
        o, q = info.origin.position, info.origin.orientation
        pose = Pose(position=Vector3(x=float(o.x), y=float(o.y), z=float(o.z)),
                    orientation=Quaternion(x=float(q.x), y=float(q.y), z=float(q.z),
                                           w=float(q.w)))
        res = float(info.resolution)
        cost = PackedElementField(name="cost", offset=0,
                                  type=PackedElementFieldNumericType.Int8)
        channels["costmap"].log(Grid(timestamp=_timestamp(grid.header.stamp),
                                     frame_id=grid.header.frame_id or "map", pose=pose,
                                     column_count=width, cell_size=Vector2(x=res, y=res),
                                     row_stride=width, cell_stride=1, fields=[cost],
                                     data=data.tobytes()),
                                log_time=_stamp_ns(grid.header.stamp) or None)

    def publish_diagnostics(self, array: Any) -> None:
        """A diagnostic_msgs/DiagnosticArray, as the console's page shows it (JSON)."""
        if self._live():
            self._diagnostics.log(diagnostics_message(array),
                                  log_time=_stamp_ns(array.header.stamp) or None)

    def log(self, topic: str, message: dict, log_time_ns: int | None = None) -> None:
        """Any JSON object on `topic` (a schemaless JSON channel, made on first use)."""
        if not topic.startswith("/"):
            raise ValueError(f"topic {topic!r}: use absolute names (/robot/topic)")
        with self._lock:
            channel = self._json.get(topic)
            if channel is None:
                if topic in self._ros or topic in ("/tf", "/diagnostics"):
                    raise ValueError(f"topic {topic!r} is taken by another channel")
                channel = foxglove.Channel(topic, context=self.context)
                self._json[topic] = channel
        if self._live():
            channel.log(message, log_time=log_time_ns)

    def log_ros(self, topic: str, msg: Any, log_time_ns: int | None = None) -> None:
        """A ROS message on `topic`, as CDR with its complete ros2msg definition (made on
        first use, as console.recording writes it)."""
        from rclpy.serialization import serialize_message

        from ilrs_robots.console.recording import message_definition, type_name_of

        type_name = type_name_of(msg)
        with self._lock:
            entry = self._ros.get(topic)
            if entry is None:
                if topic in self._json or topic in ("/tf", "/diagnostics"):
                    raise ValueError(f"topic {topic!r} is taken by another channel")
                schema = foxglove.Schema(name=type_name, encoding="ros2msg",
                                         data=message_definition(type_name).encode("utf-8"))
                entry = (foxglove.Channel(topic, schema=schema, message_encoding="cdr",
                                          context=self.context), type_name)
                self._ros[topic] = entry
            elif entry[1] != type_name:
                raise ValueError(f"topic {topic!r} carries {entry[1]}, not {type_name}")
        if self._live():
            entry[0].log(serialize_message(msg), log_time=log_time_ns)
