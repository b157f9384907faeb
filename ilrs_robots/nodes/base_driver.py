"""base_driver: cmd_vel to RoboClaw motor controllers; odometry, joint states, TF, diagnostics.

Parameters, topics and the safety rules are described in README.md ("Base driver"); the
control loop itself is `drivers.skid_steer_base.SkidSteerBase`.
"""

from __future__ import annotations

import sys
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from tf2_msgs.msg import TFMessage

from ilrs_interfaces.msg import BaseStatus, MotorControllerStatus
from ilrs_robots.core.kinematics import CommandRejected, DriveLimits, SkidSteerGeometry
from ilrs_robots.drivers.roboclaw import FaultLog, RoboClawBus
from ilrs_robots.drivers.serial_port import PortBusy
from ilrs_robots.drivers.skid_steer_base import BaseState, SkidSteerBase, assess
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.cmd_vel_input import subscribe_cmd_vel
from ilrs_robots.nodes.drive_parameters import declare_drive, positive
from ilrs_robots.nodes.params import declare, run_node
from ilrs_robots.nodes.qos import LATCHED
from ilrs_robots.nodes.wheels import wheels_from_parameters

BAUDS = (2400, 9600, 19200, 38400, 57600, 115200, 230400, 460800)
# Parameters applied while running, and the SkidSteerBase.reconfigure() argument they set.
LIVE_BASE = {"max_linear": "max_linear", "max_angular": "max_angular",
             "max_wheel_speed": "max_wheel_speed", "max_accel": "max_accel",
             "stop_accel": "stop_accel", "cmd_timeout": "cmd_timeout",
             "control_rate": "rate", "health_period": "health_period"}



def _covariance(c: list[float]) -> bool:
    return len(c) == 6


class BaseDriver(Node):
    """Skid-steer base on a bus of RoboClaw controllers."""

    def __init__(self) -> None:
        super().__init__("base_driver")
        p = self._declare_all()
        track = p["effective_track_width"] or p["track_width"]
        geometry = SkidSteerGeometry(p["wheel_radius"], track, p["counts_per_rev"])
        limits = DriveLimits(p["max_linear"], p["max_angular"], p["max_wheel_speed"],
                             p["max_accel"], p["stop_accel"])
        self.frames = (p["odom_frame"], p["base_frame"])
        self.cov = (p["pose_covariance"], p["twist_covariance"])
        self.publish_tf = p["publish_tf"]
        self.faults = FaultLog(self._log_fault)
        self.bus = RoboClawBus(p["port"], p["baud"], p["request_timeout"], p["retries"],
                               addresses=p["addresses"], serial_timeout=p["serial_timeout"],
                               faults=self.faults)
        self.odom_pub = self.create_publisher(Odometry, "odom", 10)
        self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
        self.tf_pub = self.create_publisher(TFMessage, "/tf", 100)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.status_pub = self.create_publisher(BaseStatus, "base_status", 10)
        self.base = SkidSteerBase(self.bus, p["wheels"], geometry, limits, p["cmd_timeout"],
                                  p["control_rate"], p["health_period"], p["lost_after"],
                                  on_cycle=self._on_cycle, faults=self.faults,
                                  stamp_clock=lambda: self.get_clock().now().nanoseconds)
        cmd_type = subscribe_cmd_vel(self, p["enable_stamped_cmd_vel"], self._on_cmd_vel)
        self.create_subscription(Bool, "estop", self._on_estop, LATCHED)
        self.diag_timer = self.create_timer(p["diagnostics_period"], self._publish_diagnostics)
        self.hardware_prefix = self.get_namespace().strip("/") or "robot"
        self.base.start()
        self.get_logger().info(f"driving {len(p['wheels'])} wheels through RoboClaws "
                               f"{self.base.addresses} on {p['port']} at {p['baud']} baud "
                               f"(replies within {p['request_timeout']:g} s x "
                               f"{p['retries']}, controllers' serial timeout "
                               f"{p['serial_timeout']:g} s, cmd_vel as {cmd_type})")

    def _declare_all(self) -> dict:
        d = self
        p = {
            "port": declare(d, "port", "/dev/ttyACM0", "Serial port of the RoboClaw bus",
                            bool, "a device path", read_only=True),
            "baud": declare(d, "baud", 115200, "Baud rate of the bus", lambda b: b in BAUDS,
                            f"one of {BAUDS}", read_only=True),
            "addresses": declare(d, "addresses", [128, 129, 130],
                                 "Packet-serial addresses of the controllers",
                                 lambda a: bool(a) and len(set(a)) == len(a),
                                 "distinct", range=(128, 135), read_only=True),
            "serial_timeout": declare(
                d, "serial_timeout", 0.3,
                "The controllers' own serial timeout (command 14), set on every connect: "
                "with no packet for this long they stop the motors by themselves (s, 0.1 steps)",
                range=(0.1, 25.5), read_only=True),
            "counts_per_rev": declare(d, "counts_per_rev", 8192.0,
                                      "Encoder counts per wheel revolution, gearbox included",
                                      positive, "> 0", range=(0.0, 1e9), read_only=True),
        }
        p.update(declare_drive(d))
        for name, default, text, bounds in (
                ("control_rate", 50.0, "Control loop rate (Hz)", (1.0, 200.0)),
                ("health_period", 0.5, "Period of the battery/current/temperature poll (s)",
                 (0.01, 60.0)),
                ("diagnostics_period", 1.0, "Period of /diagnostics and base_status (s)",
                 (0.05, 60.0))):
            p[name] = declare(d, name, default, text, positive, "> 0", range=bounds)
        p["request_timeout"] = declare(d, "request_timeout", 0.02, "Per-request serial timeout "
                                       "(s)", positive, "> 0", range=(0.0, 1.0), read_only=True)
        p["retries"] = declare(d, "retries", 2, "Attempts per serial request", range=(1, 10),
                               read_only=True)
        p["lost_after"] = declare(d, "lost_after", 3,
                                  "Failed transactions in a row before a controller is lost",
                                  range=(1, 100), read_only=True)
        p["odom_frame"] = declare(d, "odom_frame", "odom", "Odometry frame", bool, "non-empty",
                                  read_only=True)
        p["base_frame"] = declare(d, "base_frame", "base_link", "Base frame", bool, "non-empty",
                                  read_only=True)
        p["publish_tf"] = declare(d, "publish_tf", True, "Publish odom -> base_link on /tf")
        p["pose_covariance"] = declare(
            d, "pose_covariance", [0.01, 0.01, 1e6, 1e6, 1e6, 0.03],
            "Diagonal of the odometry pose covariance (x y z roll pitch yaw)",
            _covariance, "6 values", range=(0.0, 1e12))
        p["twist_covariance"] = declare(
            d, "twist_covariance", [0.005, 1e6, 1e6, 1e6, 1e6, 0.02],
            "Diagonal of the odometry twist covariance", _covariance, "6 values",
            range=(0.0, 1e12))
        p["wheels"] = wheels_from_parameters(d, p["addresses"])
        return p

    def on_parameters_set(self, changed: dict[str, Any]) -> None:
        """Apply accepted live parameter changes (called by nodes.params after a set)."""
        base = {LIVE_BASE[k]: v for k, v in changed.items() if k in LIVE_BASE}
        if base:
            self.base.reconfigure(**base)
        if "publish_tf" in changed:
            self.publish_tf = changed["publish_tf"]
        if "pose_covariance" in changed or "twist_covariance" in changed:
            self.cov = (changed.get("pose_covariance", self.cov[0]),
                        changed.get("twist_covariance", self.cov[1]))
        if "diagnostics_period" in changed:
            self.diag_timer.timer_period_ns = int(changed["diagnostics_period"] * 1e9)
        self.get_logger().info("parameters applied: " + ", ".join(
            f"{k}={v!r}" for k, v in sorted(changed.items())))

    def _log_fault(self, level: str, message: str) -> None:
        # rclpy ties a severity to its call site: one call per level.
        logger = self.get_logger()
        if level == "info":
            logger.info(message)
        elif level == "warning":
            logger.warning(message)
        else:
            logger.error(message)

    def _on_cmd_vel(self, msg: Twist, age: float | None = None) -> None:
        if age is not None and age > self.base.cmd_timeout:
            self.get_logger().warning(
                f"stale cmd_vel dropped: stamped {age:.3f} s ago, more than cmd_timeout "
                f"({self.base.cmd_timeout:g} s)", throttle_duration_sec=1.0)
            return
        try:
            self.base.command(msg.linear.x, msg.angular.z,
                              (msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y))
        except CommandRejected as exc:
            self.get_logger().warning(f"cmd_vel rejected: {exc}", throttle_duration_sec=1.0)

    def _on_estop(self, msg: Bool) -> None:
        self.base.set_estop(bool(msg.data))
        self.get_logger().warning("estop latched" if msg.data else "estop released")

    def _on_cycle(self, state: BaseState) -> None:
        # Runs in the control thread: the context may end under it at shutdown.
        try:
            self._publish_cycle(state)
        except RCLError:
            if self.context.ok():
                raise

    def _publish_cycle(self, state: BaseState) -> None:
        clock = self.get_clock()
        # odometry is stamped when its encoders were read, not when it is published: a fusing
        # filter weighs it against the IMU at the right instant
        when = clock.now() if state.read_stamp is None else \
            Time(nanoseconds=state.read_stamp, clock_type=clock.clock_type)
        stamp = when.to_msg()
        odom, base = self.frames
        self.odom_pub.publish(messages.odometry(stamp, odom, base, state.pose, state.linear,
                                                state.angular, *self.cov))
        self.joint_pub.publish(messages.joint_state(stamp, state.wheel_names,
                                                    state.wheel_positions,
                                                    state.wheel_velocities))
        if self.publish_tf:
            tf = messages.planar_transform(stamp, odom, base, state.pose)
            self.tf_pub.publish(TFMessage(transforms=[tf]))
        for note in state.notes:
            self.get_logger().warning(note)

    def _publish_diagnostics(self) -> None:
        state = self.base.state()
        if state is None:
            return
        stamp = self.get_clock().now().to_msg()
        array = DiagnosticArray()
        array.header.stamp = stamp
        for r in assess(state, self.bus, self.base.last_exception):
            hw = f"{self.hardware_prefix}/{r.what.lower().replace(' ', '_')}@{self.bus.port}"
            array.status.append(messages.diagnostic(f"{self.get_name()}: {r.what}", hw,
                                                    r.level, r.message, r.values))
        self.diag_pub.publish(array)
        self.status_pub.publish(self._status(state, stamp))

    def _status(self, state: BaseState, stamp) -> BaseStatus:
        msg = BaseStatus(estop=state.estop, command_timed_out=state.command_timed_out,
                         link_ok=state.link_ok, wheel_names=state.wheel_names,
                         wheel_velocity=state.wheel_velocities)
        msg.header.stamp = stamp
        msg.header.frame_id = self.frames[1]
        for c in state.controllers:
            n = self.bus.counters.get(c.address)
            s = MotorControllerStatus(address=c.address, connected=c.answering,
                                      firmware=c.firmware, encoder_counts=list(c.encoders),
                                      speed=list(c.speeds), reconnects=self.bus.reconnects)
            if c.health is not None:
                s.main_battery_voltage = c.health.battery_v
                s.temperature = c.health.temperature_c
                s.motor_current = list(c.health.currents_a)
                s.status_bits = c.health.status_bits
            if n is not None:
                s.crc_errors, s.timeouts = n.crc_errors, n.timeouts
            msg.controllers.append(s)
        return msg

    def close(self) -> None:
        """Stop the wheels and the control loop."""
        self.base.stop()


def main(args: list[str] | None = None) -> None:
    """Console script `base_driver`."""
    # The control thread and the executor share the GIL; the default 5 ms switch interval
    # would let a busy control cycle delay a cmd_vel callback by that much.
    sys.setswitchinterval(0.0005)
    try:
        code = run_node(BaseDriver, args)
    except PortBusy as exc:
        print(f"[base_driver] {exc}: refusing to share it (two drivers would interleave "
              f"commands)", file=sys.stderr, flush=True)
        code = 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
