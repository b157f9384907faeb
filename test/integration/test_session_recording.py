"""console.recording: real ROS messages recorded to MCAP and read back with mcap-ros2-support's
decoder (which parses the definitions written), as `ros2 bag` and Foxglove would read them."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from nav_msgs.msg import Odometry
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage

from ilrs_interfaces.msg import MotionCommand, MotionCommandStatus
from ilrs_robots.console.recording import (
    SEPARATOR,
    DefinitionError,
    SessionRecorder,
    message_definition,
    msg_dependencies,
    type_name_of,
)

T0 = 1_790_000_000_000_000_000  # ns since the epoch


def odometry(x: float, y: float, stamp_ns: int) -> Odometry:
    msg = Odometry()
    msg.header.frame_id, msg.child_frame_id = "map", "base_link"
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = 0.6, 0.8
    msg.pose.covariance[0] = 0.25
    msg.twist.twist.linear.x = 0.3
    return msg


def jpeg() -> bytes:
    image = np.zeros((48, 64, 3), np.uint8)
    image[10:30, 20:40] = (0, 200, 255)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def read(path: Path) -> list[tuple[str, str, int, int, object]]:
    """(topic, schema name, log time, sequence, decoded message) of every message."""
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [(channel.topic, schema.name, message.log_time, message.sequence, decoded)
                for schema, channel, message, decoded in reader.iter_decoded_messages()]


def test_real_messages_read_back_with_their_types_and_values(tmp_path: Path) -> None:
    path = tmp_path / "session" / "console.mcap"
    frame = jpeg()
    image = CompressedImage(format="jpeg", data=frame)
    image.header.frame_id = "camera_optical"
    command = MotionCommand(id="c1", kind="drive", distance=2.0, speed=0.25)
    command.stamp.sec = 42
    status = MotionCommandStatus(id="c1", kind="drive", state="refused",
                                 reason="lethal cell ahead", progress=0.0)
    with SessionRecorder(path) as rec:
        assert rec.record("/rover1/odom", odometry(1.5, -2.0, T0), T0)
        assert rec.record("/rover1/camera/image_raw/compressed", image, T0 + 1_000)
        assert rec.record("/rover1/motion_commands/request", command, T0 + 2_000)
        assert rec.record("/rover1/odom", odometry(1.6, -2.1, T0 + 3_000), T0 + 3_000)
        assert rec.record_serialized("/rover1/motion_commands/status",
                                     "ilrs_interfaces/msg/MotionCommandStatus",
                                     serialize_message(status), T0 + 4_000)
        assert rec.count == 5
    assert rec.closed and not rec.record("/rover1/odom", odometry(0, 0, T0), T0 + 5_000)

    got = read(path)
    assert [(t, s, lt) for t, s, lt, _, _ in got] == [
        ("/rover1/odom", "nav_msgs/msg/Odometry", T0),
        ("/rover1/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", T0 + 1_000),
        ("/rover1/motion_commands/request", "ilrs_interfaces/msg/MotionCommand", T0 + 2_000),
        ("/rover1/odom", "nav_msgs/msg/Odometry", T0 + 3_000),
        ("/rover1/motion_commands/status", "ilrs_interfaces/msg/MotionCommandStatus",
         T0 + 4_000)]
    assert [seq for t, _, _, seq, _ in got if t == "/rover1/odom"] == [0, 1]
    odom, img, cmd, odom2, stat = (m for *_, m in got)
    assert odom.header.frame_id == "map" and odom.child_frame_id == "base_link"
    assert (odom.header.stamp.sec, odom.header.stamp.nanosec) == divmod(T0, 1_000_000_000)
    assert (odom.pose.pose.position.x, odom.pose.pose.position.y) == (1.5, -2.0)
    assert (odom.pose.pose.orientation.z, odom.pose.pose.orientation.w) == (0.6, 0.8)
    assert odom.pose.covariance[0] == 0.25 and odom.twist.twist.linear.x == 0.3
    assert odom2.pose.pose.position.x == 1.6
    assert img.format == "jpeg" and img.header.frame_id == "camera_optical"
    assert bytes(img.data) == frame
    decoded = cv2.imdecode(np.frombuffer(bytes(img.data), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (48, 64, 3)
    assert (cmd.id, cmd.kind, cmd.distance, cmd.speed, cmd.stamp.sec) == \
        ("c1", "drive", 2.0, 0.25, 42)
    assert (stat.state, stat.reason) == ("refused", "lethal cell ahead")


def test_file_follows_the_ros2_profile_and_holds_rclpy_cdr(tmp_path: Path) -> None:
    path = tmp_path / "s.mcap"
    msg = odometry(3.0, 4.0, T0)
    with SessionRecorder(path) as rec:
        rec.record("/rover1/odometry/filtered", msg, T0)
    with open(path, "rb") as f:
        reader = make_reader(f)
        header = reader.get_header()
        summary = reader.get_summary()
        (schema,) = summary.schemas.values()
        (channel,) = summary.channels.values()
        ((_, _, raw),) = list(reader.iter_messages())
    assert header.profile == "ros2"
    assert (schema.name, schema.encoding) == ("nav_msgs/msg/Odometry", "ros2msg")
    assert schema.data.decode() == message_definition("nav_msgs/msg/Odometry")
    assert (channel.topic, channel.message_encoding) == ("/rover1/odometry/filtered", "cdr")
    assert summary.statistics.message_count == 1
    # rclpy's CDR (alignment padding is not zeroed, so compare what it decodes to)
    assert raw.data[:4] == b"\x00\x01\x00\x00" and len(raw.data) == len(serialize_message(msg))
    assert deserialize_message(raw.data, Odometry) == msg


def test_definitions_are_concatenated_as_rosbag2_does() -> None:
    text = message_definition("nav_msgs/msg/Odometry")
    lines = text.split("\n")
    # depth first, each dependency once, in sorted order under its parent
    assert [lines[i + 1] for i, line in enumerate(lines) if line == SEPARATOR] == [
        "MSG: geometry_msgs/PoseWithCovariance", "MSG: geometry_msgs/Pose",
        "MSG: geometry_msgs/Point", "MSG: geometry_msgs/Quaternion",
        "MSG: geometry_msgs/TwistWithCovariance", "MSG: geometry_msgs/Twist",
        "MSG: geometry_msgs/Vector3", "MSG: std_msgs/Header", "MSG: builtin_interfaces/Time"]
    first = text.split("\n" + SEPARATOR + "\n")[0]
    assert "std_msgs/Header header" in first and "MSG:" not in first
    # the package's own types without a package name are qualified with it
    assert msg_dependencies("Pose pose\nfloat64[36] covariance\n# Twist not a field\n",
                            "geometry_msgs") == ["geometry_msgs/Pose"]
    assert msg_dependencies("string A=\"x\"\nbuiltin_interfaces/Time[] stamps\n", "p") == \
        ["builtin_interfaces/Time"]


def test_errors_are_named(tmp_path: Path) -> None:
    with SessionRecorder(tmp_path / "e.mcap") as rec:
        with pytest.raises(ValueError, match="absolute"):
            rec.record("rover1/odom", Odometry(), T0)
        rec.record("/rover1/odom", Odometry(), T0)
        with pytest.raises(ValueError, match="carries nav_msgs/msg/Odometry"):
            rec.record("/rover1/odom", MotionCommand(), T0)
        with pytest.raises(DefinitionError, match="no_such_pkg"):
            rec.record_serialized("/x", "no_such_pkg/msg/Nothing", b"\x00\x01\x00\x00", T0)
        with pytest.raises(DefinitionError):
            type_name_of(object())
    assert [t for t, *_ in read(tmp_path / "e.mcap")] == ["/rover1/odom"]


def test_records_from_many_threads(tmp_path: Path) -> None:
    path = tmp_path / "threads.mcap"
    rec = SessionRecorder(path, chunk_size=4096)

    def writer(k: int) -> None:
        for i in range(100):
            rec.record(f"/rover{k}/odom", odometry(float(i), float(k), T0 + i), T0 + i)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    got = read(path)
    assert len(got) == 400
    for k in range(4):
        mine = [(seq, m.pose.pose.position.x) for t, _, _, seq, m in got
                if t == f"/rover{k}/odom"]
        assert sorted(mine) == [(i, float(i)) for i in range(100)]
