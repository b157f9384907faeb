"""Recording a console session to MCAP, as ROS 2 bags are: `ros2 bag info` / `ros2 bag play`
(with the mcap storage plugin) and Foxglove open the file.

The file follows the MCAP `ros2` profile as rosbag2's mcap storage writes it: one schema per
message type, named `pkg/msg/Type`, encoding `ros2msg`, whose data is the type's complete
message definition (the type's .msg text, then each type it uses, recursively, once, each
after a line of 80 `=` and a `MSG: pkg/Type` line, in rosbag2's order: see
`message_definition`); one channel per topic with message encoding `cdr`; each message the
CDR bytes of rclpy's serialization (the very bytes DDS carries and rosbag2 stores);
zstd-compressed chunks.

Messages are serialized by rclpy's type support rather than by mcap-ros2-support's Python
encoder: exact and much faster. mcap-ros2-support reads the files back (see the tests) and
its parser accepts the definitions written here.

    recorder = SessionRecorder("session.mcap")
    recorder.record("/rover1/odom", odom_msg, stamp_ns)        # from any thread
    recorder.record_serialized("/rover1/odom", "nav_msgs/msg/Odometry", raw_bytes, stamp_ns)
    recorder.close()
"""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import CompressionType, Writer

PRIMITIVES = frozenset(("bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16",
                        "uint16", "int32", "uint32", "int64", "uint64", "string", "wstring"))
# the field types of a .msg text, as rosbag2 finds them: a name at the start of a line,
# optionally followed by an array suffix, then white space
_FIELD_TYPE = re.compile(r"(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+")
_NAME = r"[a-zA-Z][a-zA-Z0-9_]*"
_TYPE_NAME = re.compile(rf"^({_NAME})/(?:({_NAME})/)?({_NAME})$")
SEPARATOR = "=" * 80
MAX_DEPTH = 50


class DefinitionError(LookupError):
    """A message type whose .msg definition cannot be found or understood."""


def type_name_of(msg: Any) -> str:
    """`pkg/msg/Type` of a ROS message object (rclpy generated class)."""
    cls = type(msg)
    parts = cls.__module__.split(".")
    if len(parts) < 3 or not hasattr(cls, "get_fields_and_field_types"):
        raise DefinitionError(f"{cls.__module__}.{cls.__name__} is not a ROS message class")
    return f"{parts[0]}/{parts[1]}/{cls.__name__}"


def _share_dirs(package: str) -> list[Path]:
    """Where `package`'s share folder may be: the ament index, then this interpreter's prefix
    (where the ROS wheels install it)."""
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(package)))
    except (LookupError, OSError, ValueError, ImportError):
        pass
    dirs.append(Path(sys.prefix) / "share" / package)
    return dirs


def _split(type_name: str) -> tuple[str, str, str]:
    match = _TYPE_NAME.match(type_name)
    if match is None:
        raise DefinitionError(f"message type name {type_name!r} not understood "
                              f"(expected pkg/msg/Type or pkg/Type)")
    package, namespace, name = match.groups()
    return package, namespace or "msg", name


def msg_text(type_name: str) -> str:
    """The .msg file of `type_name` (`pkg/msg/Type` or `pkg/Type`), verbatim."""
    package, namespace, name = _split(type_name)
    for share in _share_dirs(package):
        path = share / namespace / f"{name}.msg"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise DefinitionError(f"no {namespace}/{name}.msg of package {package!r} (looked in "
                          f"{', '.join(str(d) for d in _share_dirs(package))})")


def msg_dependencies(text: str, package: str) -> list[str]:
    """The non-primitive field types of a .msg text, as `pkg/Type`, sorted (rosbag2's set)."""
    found = set()
    for match in _FIELD_TYPE.finditer(text):
        name = match.group(1)
        if name in PRIMITIVES:
            continue
        found.add(name if "/" in name else f"{package}/{name}")
    return sorted(found)


def message_definition(type_name: str) -> str:
    """The complete `ros2msg` definition of `type_name`, concatenated as rosbag2 does.

    The type's own .msg text first; then, depth first, each dependency not seen before, in
    sorted order, each as a newline, a line of 80 `=`, `MSG: <pkg/Type as the field names
    it>` and its .msg text (with its own dependencies after it). Raises DefinitionError.
    """
    seen: set[tuple[str, str, str]] = set()

    def append(name: str, depth: int) -> str:
        if depth <= 0:
            raise DefinitionError(f"definition of {type_name} nests too deep")
        text = msg_text(name)
        for dep in msg_dependencies(text, _split(name)[0]):
            key = _split(dep)
            if key in seen:
                continue
            seen.add(key)
            text += f"\n{SEPARATOR}\nMSG: {dep}\n" + append(dep, depth - 1)
        return text

    return append(type_name, MAX_DEPTH)


class SessionRecorder:
    """An MCAP file of ROS messages, written from any thread. `close()` finishes it (the
    summary and index that readers use); use as a context manager."""

    def __init__(self, path: str | os.PathLike, chunk_size: int = 1024 * 1024,
                 compression: str = "zstd") -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(self.path, "wb")  # closed by close()
        self._writer = Writer(self._file, chunk_size=chunk_size,
                              compression=CompressionType[compression.upper()])
        from mcap_ros2 import __version__ as ros2_version

        self._writer.start(profile="ros2", library=f"ilrs_robots SessionRecorder, "
                           f"mcap-ros2-support {ros2_version}")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, str]] = {}  # topic -> (channel id, type name)
        self._sequence: dict[str, int] = {}
        self._closed = False
        self.count = 0  # messages written

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    def record(self, topic: str, msg: Any, stamp_ns: int) -> bool:
        """Write one ROS message received on `topic` (an absolute name) at `stamp_ns`
        (nanoseconds since the epoch: the log and publish time). False, and nothing written,
        once closed; ValueError for a topic that is not absolute or that earlier carried
        another type; DefinitionError for a type whose definition is not installed."""
        from rclpy.serialization import serialize_message

        return self.record_serialized(topic, type_name_of(msg), serialize_message(msg),
                                      stamp_ns)

    def record_serialized(self, topic: str, type_name: str, data: bytes, stamp_ns: int) -> bool:
        """Write one message already serialized as CDR (a raw subscription's bytes) of type
        `type_name` (`pkg/msg/Type`). As `record` otherwise."""
        if not topic.startswith("/"):
            raise ValueError(f"topic {topic!r}: record absolute names (/robot/topic)")
        stamp_ns = int(stamp_ns)
        if stamp_ns < 0:
            raise ValueError(f"stamp {stamp_ns} ns: must not be negative")
        with self._lock:
            if self._closed:
                return False
            channel = self._channels.get(topic)
            if channel is None:
                channel = (self._register(topic, type_name), type_name)
                self._channels[topic] = channel
            elif channel[1] != type_name:
                raise ValueError(f"topic {topic!r} carries {channel[1]}, not {type_name}")
            sequence = self._sequence.get(topic, 0)
            self._sequence[topic] = sequence + 1
            self._writer.add_message(channel_id=channel[0], log_time=stamp_ns,
                                     publish_time=stamp_ns, sequence=sequence, data=bytes(data))
            self.count += 1
            return True

    def _register(self, topic: str, type_name: str) -> int:
        """A channel for `topic` (under the lock), with the schema of its type."""
        package, namespace, name = _split(type_name)
        full_name = f"{package}/{namespace}/{name}"
        schema_id = self._schemas.get(full_name)
        if schema_id is None:
            definition = message_definition(full_name)
            schema_id = self._writer.register_schema(full_name, SchemaEncoding.ROS2,
                                                     definition.encode("utf-8"))
            self._schemas[full_name] = schema_id
        return self._writer.register_channel(topic, MessageEncoding.CDR, schema_id)

    def close(self) -> None:
        """Finish the file (summary, index) and close it; later records are ignored."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._writer.finish()
            finally:
                self._file.close()

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
