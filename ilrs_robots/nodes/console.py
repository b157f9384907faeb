"""ground_console: the ground console's node on Earth. Serves the web page, the HTTP API and
the telemetry socket (ilrs_robots/console/server.py), and bridges them to each robot's topics
through the emulated Earth–Moon link (ilrs_robots/console/link.py).

Per robot in `robots` ("name" or "name:kind", kind rover (default) or builder), under /<name>/:
  in:  `pose_topic` (nav_msgs/Odometry, default odometry/filtered), plan (nav_msgs/Path),
       costmap (nav_msgs/OccupancyGrid), `camera_topic` (sensor_msgs/CompressedImage),
       base_status (ilrs_interfaces/BaseStatus), radiation/reading (RadiationReading),
       radiation/dose_map (sensor_msgs/PointCloud2 of radiation_mapper, drawn as an overlay),
       motion_commands/status (MotionCommandStatus); and /diagnostics
  out: motion_commands/request (ilrs_interfaces/MotionCommand), estop (std_msgs/Bool, latched)
  missions (ilrs_robots/console/missions.py): follow_waypoints and inspect_site on rovers,
       print_structure and pause / resume on builders, each cancelled by a `cancel` command

Everything crosses the link: commands and estops arrive `link_delay` (+ jitter) later on the
robot's side, reliably (resent when lost, held during a blackout); telemetry arrives as late,
or is lost. An estop or release is `done` when the robot's base_status confirms it.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, PointCloud2
from std_msgs.msg import Bool

from ilrs_interfaces.msg import BaseStatus, MotionCommand, MotionCommandStatus, RadiationReading
from ilrs_robots.console import telemetry
from ilrs_robots.console.auth import TokenIssuer
from ilrs_robots.console.commands import MISSION_KINDS, Command, CommandBook, Limits
from ilrs_robots.console.foxglove_live import FoxgloveLive
from ilrs_robots.console.link import DelayLine, LinkModel, LinkProfile
from ilrs_robots.console.missions import MissionClients
from ilrs_robots.console.recording import SessionRecorder
from ilrs_robots.console.server import ConsoleServer
from ilrs_robots.console.users import UsersFileError, UserStore
from ilrs_robots.nodes.messages import stamp_of
from ilrs_robots.nodes.params import ParameterError, declare, run_node
from ilrs_robots.nodes.qos import LATCHED, MOTION_STATUSES

KINDS = ("rover", "builder")
LISTENER_POLL = 0.1  # s between looks for a motion command's subscriber


def parse_robots(entries: list[str]) -> list[dict]:
    """[{"name", "kind"}] from "name" / "name:kind" entries; ValueError naming a bad one."""
    robots = []
    for entry in entries:
        name, _, kind = entry.partition(":")
        kind = kind or "rover"
        if not name.replace("_", "").isalnum() or kind not in KINDS:
            raise ValueError(f"{entry!r}: expected NAME or NAME:KIND, KIND one of {list(KINDS)}")
        robots.append({"name": name, "kind": kind})
    if len({r["name"] for r in robots}) != len(robots):
        raise ValueError("a robot is named twice")
    return robots


class GroundConsole(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__("ground_console")
        d = self
        host = declare(d, "host", "127.0.0.1", "Address to listen on (loopback unless an "
                       "operator network is meant to reach it)", bool, "non-empty",
                       read_only=True)
        port = declare(d, "port", 8080, "TCP port of the page, the API and /ws (0: any free)",
                       range=(0, 65535), read_only=True)
        users_file = declare(d, "users_file", "~/.ilrs/console/users.yaml", "Users, roles and "
                             "password hashes (ilrs console add-user)", bool, "a path",
                             read_only=True)
        audit = declare(d, "audit_log", "~/.ilrs/console/audit.jsonl", "Every login and "
                        "command, as JSON lines; empty: none", read_only=True)
        entries = declare(d, "robots", ["rover1"], "Robots: NAME or NAME:KIND (rover, builder)",
                          bool, "at least one", read_only=True)
        ttl = declare(d, "token_ttl", 3600.0, "Seconds a login token lives",
                      range=(10.0, 86400.0), read_only=True)
        profile = dict(
            delay=declare(d, "link_delay", 0.0, "Emulated one-way delay to the robots (s); "
                          "0: none (a real link has its own)", range=(0.0, 30.0),
                          read_only=True),
            jitter=declare(d, "link_jitter", 0.0, "Emulated jitter, added uniformly (s)",
                           range=(0.0, 5.0), read_only=True),
            loss=declare(d, "link_loss", 0.0, "Emulated loss probability of a transmission",
                         range=(0.0, 0.9), read_only=True),
            blackout_period=declare(d, "blackout_period", 0.0, "Seconds between relay "
                                    "blackouts; 0: none", range=(0.0, 86400.0), read_only=True),
            blackout_duration=declare(d, "blackout_duration", 0.0, "Seconds each blackout "
                                      "lasts", range=(0.0, 86400.0), read_only=True))
        self.pose_topic = declare(d, "pose_topic", "odometry/filtered", "Each robot's pose",
                                  bool, "non-empty", read_only=True)
        camera_topic = declare(d, "camera_topic", "camera/image_raw/compressed", "Each robot's "
                               "camera (JPEG)", bool, "non-empty", read_only=True)
        camera_rate = declare(d, "camera_rate", 10.0, "Camera frames per second at most",
                              range=(0.2, 30.0), read_only=True)
        self.costmap_period = declare(d, "costmap_period", 2.0, "Seconds between costmap "
                                      "images at most", range=(0.1, 60.0), read_only=True)
        record = declare(d, "record_path", "", "Record the session (every message the console "
                         "takes or sends) to this MCAP file; {time}: the UTC start time; "
                         "empty: no recording", read_only=True)
        fox_host = declare(d, "foxglove_host", "127.0.0.1", "Address of the read-only Foxglove "
                           "server (it has no authentication: loopback only)", bool,
                           "non-empty", read_only=True)
        fox_port = declare(d, "foxglove_port", 0, "Port of the read-only Foxglove WebSocket "
                           "server; 0: none", range=(0, 65535), read_only=True)
        self.listener_wait = declare(d, "listener_wait", 20.0, "Seconds a motion command "
                                     "waits on the robot's side for a subscriber (it is "
                                     "published once) before it fails", range=(0.0, 600.0),
                                     read_only=True)
        try:
            self.robot_list = parse_robots(entries)
            users = UserStore.load(users_file)
            self.link = LinkModel(LinkProfile(**profile), time.time())
        except UsersFileError as exc:
            raise ParameterError("users_file", str(exc)) from exc
        except ValueError as exc:
            raise ParameterError("robots" if "robot" in str(exc) else "link_*", str(exc)) \
                from exc
        self.recorder = self._open_recording(record) if record else None
        self.foxglove = self._start_foxglove(fox_host, fox_port) if fox_port else None
        self.delays = DelayLine("console-link")
        self.frame_period = 1.0 / camera_rate
        self.book = CommandBook(audit or None, on_change=self._on_command_change)
        self.server = ConsoleServer(self, users, TokenIssuer(ttl), self.book, host=host,
                                    port=port, limits=Limits(), camera_rate=camera_rate,
                                    log=self.get_logger().warning)
        self.command_pubs: dict[str, Any] = {}
        self.estop_pubs: dict[str, Any] = {}
        for robot in self.robot_list:
            self._connect(robot["name"], robot["kind"], camera_topic)
        self.missions = MissionClients(self, self.robot_list, self.book, self._reliable_downlink)
        self._listen(DiagnosticArray, "/diagnostics", self._on_diagnostics, 20)
        self.create_timer(1.0, lambda: self.server.publish(self.link_state()))
        try:
            self.server.start()
        except OSError as exc:
            self.delays.stop()
            raise ParameterError("port", str(exc)) from exc
        self.get_logger().info(
            f"ground console on http://{host}:{self.server.port}/ for "
            f"{[r['name'] for r in self.robot_list]}; link {profile['delay']:g} s one way")

    # -- wiring --------------------------------------------------------------------------------
    def _open_recording(self, path: str) -> SessionRecorder:
        path = path.replace("{time}", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
        try:
            recorder = SessionRecorder(os.path.expanduser(path))
        except OSError as exc:
            raise ParameterError("record_path", f"cannot write {path}: {exc}") from exc
        self.get_logger().info(f"recording the session to {path}")
        return recorder

    def _start_foxglove(self, host: str, port: int) -> FoxgloveLive:
        live = FoxgloveLive([r["name"] for r in self.robot_list])
        try:
            port = live.start(host=host, port=port)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ParameterError("foxglove_port", f"cannot serve Foxglove on {host}:{port}: "
                                 f"{exc}") from exc
        self.get_logger().info(f"Foxglove (read-only) on ws://{host}:{port}")
        return live

    def _connect(self, name: str, kind: str, camera_topic: str) -> None:
        ns = f"/{name}"
        self.estop_pubs[name] = self.create_publisher(Bool, f"{ns}/estop", LATCHED)
        self._listen(BaseStatus, f"{ns}/base_status", lambda m: self._on_base(name, m), 5)
        if kind != "rover":
            return
        self.command_pubs[name] = self.create_publisher(
            MotionCommand, f"{ns}/motion_commands/request", 10)
        listen = self._listen
        listen(MotionCommandStatus, f"{ns}/motion_commands/status", self._on_status,
               MOTION_STATUSES, reliable=True)
        listen(Odometry, f"{ns}/{self.pose_topic}", lambda m: self._on_pose(name, m), 5)
        listen(Path, f"{ns}/plan", lambda m: self.server.publish(
            telemetry.plan_message(name, m, step=2)), LATCHED)
        listen(OccupancyGrid, f"{ns}/costmap", lambda m: self._on_costmap(name, m), LATCHED,
               throttle=self.costmap_period)
        listen(RadiationReading, f"{ns}/radiation/reading", lambda m: self.server.publish(
            telemetry.radiation_message(name, m)), 5)
        listen(PointCloud2, f"{ns}/radiation/dose_map", lambda m: self._on_dose_map(name, m),
               LATCHED, throttle=self.costmap_period)
        listen(CompressedImage, f"{ns}/{camera_topic}", lambda m: self._on_frame(name, m),
               qos_profile_sensor_data, throttle=self.frame_period)

    def _listen(self, msg_type: type, topic: str, deliver: Callable[[Any], None], qos: Any,
                reliable: bool = False, throttle: float = 0.0) -> None:
        """Subscribe: each message is recorded as it comes, then (at most one per `throttle`
        s) handed to `deliver` once it has crossed the link."""
        last = [-1e9]

        def callback(msg: Any) -> None:
            now = time.time()
            if self.recorder is not None:
                self.recorder.record(topic, msg, time.time_ns())
            if throttle and time.monotonic() - last[0] < throttle:
                return
            last[0] = time.monotonic()
            at = self.link.command_arrival(now) if reliable else self.link.telemetry_arrival(now)
            if at is not None:
                self.delays.at(at, lambda: deliver(msg))

        self.create_subscription(msg_type, topic, callback, qos)

    def _publish(self, publisher: Any, topic: str, msg: Any) -> None:
        """Publish on a robot's topic (its side of the link), recording it."""
        publisher.publish(msg)
        if self.recorder is not None:
            self.recorder.record(topic, msg, time.time_ns())

    def _reliable_downlink(self, deliver: Callable[[], None]) -> None:
        """Run `deliver` when an answer sent now from a robot reaches the ground."""
        self.delays.at(self.link.command_arrival(time.time()), deliver)

    # -- telemetry landed on the ground ----------------------------------------------------------
    def _on_pose(self, name: str, odom: Odometry) -> None:
        self.server.publish(telemetry.pose_message(name, odom, time.time()))
        if self.foxglove is not None:
            self.foxglove.publish_pose(name, odom)

    def _on_costmap(self, name: str, grid: OccupancyGrid) -> None:
        try:
            self.server.publish(telemetry.costmap_message(name, grid))
        except ValueError as exc:
            self.get_logger().warning(f"{name}: {exc}", throttle_duration_sec=60.0)
        if self.foxglove is not None:
            self.foxglove.publish_costmap(name, grid)

    def _on_dose_map(self, name: str, cloud: PointCloud2) -> None:
        try:
            self.server.publish(telemetry.dose_map_message(name, cloud))
        except ValueError as exc:
            self.get_logger().warning(f"{name}: {exc}", throttle_duration_sec=60.0)

    def _on_frame(self, name: str, msg: CompressedImage) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        jpeg = bytes(msg.data)
        self.server.publish_frame(telemetry.CameraFrame(name, jpeg, time.time(), stamp))
        if self.foxglove is not None:
            self.foxglove.publish_camera(name, jpeg, frame_id=msg.header.frame_id)

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        self.server.publish(telemetry.diagnostics_message(array), ("diagnostics",))
        if self.foxglove is not None:
            self.foxglove.publish_diagnostics(array)

    # -- commands ------------------------------------------------------------------------------
    def robots(self) -> list[dict]:
        """The robots this console serves (Bridge)."""
        return [dict(r) for r in self.robot_list]

    def link_state(self) -> dict:
        """The link as the page shows it (Bridge)."""
        return self.link.state(time.time())

    def submit(self, robot: str, kind: str, params: dict, user: str) -> Command:
        """Record a valid command and send it across the link (Bridge)."""
        now = time.time()
        held = self.link.blackout_ends(now) is not None
        command = self.book.create(robot, kind, params, user, "queued" if held else "sent")
        at = self.link.command_arrival(now)
        if held:
            self.delays.at(self.link.blackout_ends(now) or now,
                           lambda: self.book.update(command.id, "sent"))
        self.delays.at(at, lambda: self._arrive(command))
        return command

    def _arrive(self, command: Command, since: float | None = None) -> None:
        """On the robot's side of the link: the command is published there. A motion command
        is published once (volatile, as a stale one must not run on a restarted rover), so it
        waits up to `listener_wait` s for a matched subscriber, then fails naming the topic."""
        name, kind, p = command.robot, command.kind, command.params
        if kind in ("estop", "release"):
            self._publish(self.estop_pubs[name], f"/{name}/estop", Bool(data=kind == "estop"))
            # the robot's side took it; the ground hears so a downlink later
            self._reliable_downlink(lambda: self.book.update(command.id, "received"))
            return
        if kind in MISSION_KINDS:
            self.missions.start(command)
            return
        if kind == "cancel":
            self.missions.cancel(command)
            return
        if kind in ("pause", "resume"):
            self.missions.trigger(command)
            return
        msg = MotionCommand(stamp=stamp_of(command.history[0][1]), id=command.id, kind=kind,
                            distance=p.get("distance", 0.0),
                            angle=math.radians(p.get("angle_deg", 0.0)), x=p.get("x", 0.0),
                            y=p.get("y", 0.0), linear=p.get("linear", 0.0),
                            angular=p.get("angular", 0.0), duration=p.get("duration", 0.0),
                            speed=p.get("speed", 0.0))
        topic, publisher = f"/{name}/motion_commands/request", self.command_pubs[name]
        if publisher.get_subscription_count() == 0:
            now = time.time()
            since = now if since is None else since
            if now - since < self.listener_wait:
                self.delays.at(now + LISTENER_POLL, lambda: self._arrive(command, since))
            else:
                self._reliable_downlink(lambda: self.book.update(
                    command.id, "failed", f"nothing subscribes to {topic} on {name} "
                    f"(waited {self.listener_wait:g} s): is its motion_commands node running?"))
            return
        self._publish(publisher, topic, msg)

    def _on_status(self, status: MotionCommandStatus) -> None:
        self.book.update(status.id, status.state, status.reason)

    def _on_base(self, name: str, status: BaseStatus) -> None:
        self.server.publish(telemetry.base_message(name, status))
        confirmed = "estop" if status.estop else "release"
        for command in self.book.recent(name):
            if command.kind == confirmed and command.state in ("sent", "received"):
                self.book.update(command.id, "done")

    def _on_command_change(self, command: Command) -> None:
        self.server.publish(command.to_json())

    def close(self) -> None:
        """Stop serving and drop what is still crossing the link, before the executor and the
        node are torn down: no thread of ours may reach rclpy while it tears them down (a
        console died of SIGSEGV in the executor's shutdown, its link and server threads still
        running). Each stop is idempotent."""
        for part in ("server", "delays", "foxglove"):
            if getattr(self, part, None) is not None:
                getattr(self, part).stop()

    def destroy_node(self) -> None:
        """Stop what close() did not (a node whose construction failed), close the recording
        (no callback runs any more), then destroy."""
        self.close()
        if getattr(self, "recorder", None) is not None:
            self.recorder.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console script `ground_console`."""
    return run_node(GroundConsole, args, threads=2)


if __name__ == "__main__":
    sys.exit(main())
