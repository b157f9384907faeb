"""gazebo_base: the drive base in Gazebo mode, standing where base_driver stands on the rover.

Gazebo's DiffDrive follows the last Twist it got, forever. This node takes base_driver's
interface (`cmd_vel` as Twist, or TwistStamped with `enable_stamped_cmd_vel`; the latched
`estop`; `cmd_timeout`; the speed and acceleration limits) and its rules
(core/command_gate.py), and publishes at `control_rate` what the wheels may do on
`gz/cmd_vel`, which the export's bridge.yaml hands to the DiffDrive: the command bounded and
ramped, zero when commands stop or the estop latches. /diagnostics says which.

Named for what it replaces (base_driver drives RoboClaws, this drives Gazebo's DiffDrive),
as gz_ros2_control stands in for a hardware interface. The watchdog runs on the node's clock:
sim time under Gazebo, so a simulation slower than real time does not stop the wheels between
a navigator's commands, and a navigator that dies is still caught (/clock goes on while
Gazebo runs). Live parameters: the limits, cmd_timeout, control_rate, diagnostics_period.
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from rclpy._rclpy_pybind11 import RCLError
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import Bool

from ilrs_robots.core.command_gate import CommandGate
from ilrs_robots.core.kinematics import CommandRejected, DriveLimits, SkidSteerGeometry
from ilrs_robots.nodes import messages
from ilrs_robots.nodes.cmd_vel_input import subscribe_cmd_vel
from ilrs_robots.nodes.drive_parameters import DRIVE_LIMITS, declare_drive, positive
from ilrs_robots.nodes.params import declare, run_node
from ilrs_robots.nodes.qos import LATCHED

GAZEBO_CMD_VEL = "gz/cmd_vel"  # = sim.gazebo_export.GAZEBO_CMD_VEL, which bridges it



class GazeboBase(Node):
    """cmd_vel and estop in, bounded commands to Gazebo's DiffDrive out."""

    def __init__(self) -> None:
        super().__init__("gazebo_base")
        p = self._declare_all()
        track = p["effective_track_width"] or p["track_width"]
        geometry = SkidSteerGeometry(p["wheel_radius"], track, 1.0)  # no encoders here
        limits = DriveLimits(**{k: p[k] for k in DRIVE_LIMITS})
        self.gate = CommandGate(geometry, limits, p["cmd_timeout"])
        self.out_pub = self.create_publisher(Twist, GAZEBO_CMD_VEL, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        cmd_type = subscribe_cmd_vel(self, p["enable_stamped_cmd_vel"], self._on_cmd_vel)
        self.create_subscription(Bool, "estop", self._on_estop, LATCHED)
        self.timer = self.create_timer(1.0 / p["control_rate"], self._cycle)
        # diagnostics on the steady clock: they go on when /clock does not
        self.diag_timer = self.create_timer(p["diagnostics_period"], self._diagnostics,
                                            clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.hardware_id = f"{self.get_namespace().strip('/') or 'robot'}/drive@gazebo"
        self.get_logger().info(
            f"cmd_vel ({cmd_type}) -> "
            f"{self.resolve_topic_name(GAZEBO_CMD_VEL)} at {p['control_rate']:g} Hz, "
            f"cmd_timeout {p['cmd_timeout']:g} s")

    def _declare_all(self) -> dict[str, Any]:
        d = self
        p = {
            "control_rate": declare(d, "control_rate", 50.0,
                                    "Rate of the commands sent to Gazebo (Hz)", positive,
                                    "> 0", range=(1.0, 200.0)),
            "diagnostics_period": declare(d, "diagnostics_period", 1.0,
                                          "Period of /diagnostics (s)", positive, "> 0",
                                          range=(0.05, 60.0)),
        }
        p.update(declare_drive(d))
        return p

    def on_parameters_set(self, changed: dict[str, Any]) -> None:
        """Apply accepted live parameter changes (called by nodes.params after a set)."""
        self.gate.reconfigure(cmd_timeout=changed.get("cmd_timeout"),
                              **{k: v for k, v in changed.items() if k in DRIVE_LIMITS})
        if "control_rate" in changed:
            self.timer.timer_period_ns = int(1e9 / changed["control_rate"])
        if "diagnostics_period" in changed:
            self.diag_timer.timer_period_ns = int(changed["diagnostics_period"] * 1e9)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _on_cmd_vel(self, msg: Twist, age: float | None = None) -> None:
        try:
            self.gate.command(msg.linear.x, msg.angular.z, self._now(),
                              (msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y), age)
        except CommandRejected as exc:
            self.get_logger().warning(f"cmd_vel refused: {exc}", throttle_duration_sec=1.0)

    def _on_estop(self, msg: Bool) -> None:
        if self.gate.set_estop(bool(msg.data)):
            self._cycle()  # start stopping now, not at the next cycle
            self.get_logger().warning("estop latched" if msg.data else "estop released")

    def _cycle(self) -> None:
        state = self.gate.output(self._now())
        out = Twist()
        out.linear.x, out.angular.z = state.linear, state.angular
        self.out_pub.publish(out)

    def _diagnostics(self) -> None:
        state = self.gate.state(self._now())
        level, message = state.describe()
        if self.out_pub.get_subscription_count() == 0:
            level, message = "ERROR", (f"nothing subscribes to {GAZEBO_CMD_VEL}: is "
                                       f"ros_gz_bridge running? ({message})")
        values = [("linear", f"{state.linear:.3f}"), ("angular", f"{state.angular:.3f}"),
                  ("estop", state.estop), ("command_timed_out", state.timed_out),
                  ("rejected_commands", state.rejected), ("stale_commands", state.stale),
                  ("cmd_timeout", self.gate.cmd_timeout)]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status.append(messages.diagnostic(f"{self.get_name()}: drive", self.hardware_id,
                                                level, message, values))
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Send Gazebo a last zero: the DiffDrive would keep the last command after us."""
        try:
            self.out_pub.publish(Twist())
        except RCLError:
            pass  # the context ended first (a Ctrl-C): nothing can be sent any more


def main(args: list[str] | None = None) -> None:
    """Console script `gazebo_base`."""
    raise SystemExit(run_node(GazeboBase, args))


if __name__ == "__main__":
    main()
