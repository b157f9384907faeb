"""The `ilrs teleop` command: terminal teleop for bench work on a rover, by bounded commands.

    ilrs teleop [--namespace rover1] [--step 0.5] [--angle 15] [--speed 0]
                [--arm-time 2] [--deadman d]

Like teleop_twist_keyboard, but every key press sends one bounded
`ilrs_interfaces/MotionCommand` (drive `--step` m, turn `--angle` degrees) on
`/<namespace>/motion_commands/request`, for the rover's `motion_commands` node to check
against its hazard maps and execute; there is no velocity stream to time out. Each command's
life (received, executing with its progress, done, refused or failed with the reason) is
printed from `/<namespace>/motion_commands/status`.

The deadman (a terminal has no key-up events, see `core.teleop_keys`): the deadman key (`d`)
arms motion for `--arm-time` s after its last press; motion keys send nothing while
disarmed; when the window runs out after a motion, a `stop` is sent. Space or `s` stop at
any time; `q` (or Ctrl-C, Ctrl-D) sends a `stop` and quits.

Needs a terminal (stdin a tty). Registered on `ilrs` by runner/cli.py.
"""

from __future__ import annotations

import argparse
import math
import os
import select
import sys
import termios
import threading
import time
import tty
from typing import TextIO

from ilrs_robots.core.teleop_keys import Outcome, TeleopConfig, TeleopKeys, help_text
from ilrs_robots.nodes.qos import MOTION_STATUSES
from ilrs_robots.runner.environment import ros_environment

TICK = 0.05  # s between reads of the keyboard and checks of the deadman window


class Teleop:
    """The ROS side: publishes commands, prints their statuses. Use as a context manager."""

    def __init__(self, namespace: str, out: TextIO) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from ilrs_interfaces.msg import MotionCommand, MotionCommandStatus
        from ilrs_robots.runner.ros_client import RosClient

        self.namespace = namespace.strip("/")
        self.out = out
        self._lock = threading.Lock()
        self._prefix = f"teleop-{os.getpid()}-{int(time.time()) % 100000}-"
        self._count = 0
        self._kinds: dict[str, str] = {}
        self._msg = MotionCommand
        self.ros = RosClient("ilrs_teleop")
        self.request_topic = f"/{self.namespace}/motion_commands/request"
        self.status_topic = f"/{self.namespace}/motion_commands/status"
        # as motion_commands subscribes (reliable, depth 10) and publishes statuses (reliable,
        # transient local, depth 50)
        self.pub = self.ros.publisher(MotionCommand, self.request_topic,
                                      QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.ros.node.create_subscription(
            MotionCommandStatus, self.status_topic, self._on_status,
            MOTION_STATUSES)

    def say(self, text: str) -> None:
        """One line for the operator (the terminal is in cbreak mode: lines end in CR LF)."""
        with self._lock:
            self.out.write(f"[teleop] {text}\r\n")
            self.out.flush()

    def listening(self) -> bool:
        """Whether a motion_commands node (or anything) subscribes to the requests."""
        return self.pub.get_subscription_count() > 0

    def send(self, outcome: Outcome) -> None:
        """Publish the outcome's command, if any, and say what was sent."""
        m = outcome.send
        if m is None:
            if outcome.say:
                self.say(outcome.say)
            return
        self._count += 1
        cid = f"{self._prefix}{self._count}"
        msg = self._msg(id=cid, kind=m.kind, distance=float(m.distance), angle=float(m.angle),
                        speed=float(m.speed))
        msg.stamp = self.ros.node.get_clock().now().to_msg()
        with self._lock:
            self._kinds[cid] = m.kind
        self.pub.publish(msg)
        note = "" if self.listening() else f" (no motion_commands on {self.request_topic}!)"
        self.say(f"{outcome.say or m.kind} -> sent [{cid}]{note}")

    def _on_status(self, status) -> None:
        with self._lock:
            ours = status.id in self._kinds
        if not ours:  # another operator's command, or one of an earlier session
            return
        text = f"{status.id} {status.kind}: {status.state}"
        if status.state == "executing" and status.progress > 0.0:
            text += f" {100.0 * status.progress:.0f}%"
        if status.reason:
            text += f": {status.reason}"
        self.say(text)

    def close(self) -> None:
        """Stop the ROS client."""
        self.ros.close()

    def __enter__(self) -> Teleop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_keys(teleop: Teleop, keys: TeleopKeys, fd: int) -> int:
    """Read keys from `fd` (a terminal in cbreak mode) until quit; 0, or 130 on Ctrl-C."""
    connected = False
    started = time.monotonic()
    warned = False
    try:
        while True:
            now = time.monotonic()
            for outcome in keys.tick(now):
                teleop.send(outcome)
            if not connected and teleop.listening():
                connected = True
                teleop.say(f"motion_commands listening on {teleop.request_topic}")
            elif not connected and not warned and now - started > 5.0:
                warned = True
                teleop.say(f"nothing subscribes to {teleop.request_topic} yet: is "
                           f"motion_commands running in namespace '{teleop.namespace}'?")
            ready, _, _ = select.select([fd], [], [], TICK)
            if not ready:
                continue
            data = os.read(fd, 64)
            if not data:  # the terminal is gone: stop, as on quit
                teleop.send(keys.key("q", time.monotonic())[-1])
                return 0
            for key in data.decode("utf-8", "replace"):
                for outcome in keys.key(key, time.monotonic()):
                    teleop.send(outcome)
                    if outcome.quit:
                        return 0
    except KeyboardInterrupt:  # a SIGINT from elsewhere (kill -INT)
        try:
            teleop.send(keys.key("\x03", time.monotonic())[-1])
        except Exception as exc:  # noqa: BLE001 - rclpy's handler may have shut ROS down
            teleop.say(f"interrupted: the stop could not be sent ({exc!r})")
        return 130


def cbreak_keys(fd: int) -> None:
    """The terminal `fd` in cbreak mode (keys one by one, no echo) without signal keys:
    Ctrl-C and Ctrl-D arrive as keys (quit, with a stop), not as a SIGINT, whose rclpy handler
    would shut the ROS context down before the stop could be sent."""
    tty.setcbreak(fd)
    attrs = termios.tcgetattr(fd)
    attrs[3] &= ~termios.ISIG
    termios.tcsetattr(fd, termios.TCSADRAIN, attrs)


def cmd_teleop(args: argparse.Namespace) -> int:
    """`ilrs teleop`."""
    config = TeleopConfig(step=args.step, angle_deg=args.angle, speed=args.speed,
                          arm_time=args.arm_time, deadman=args.deadman)
    try:
        keys = TeleopKeys(config)
    except ValueError as exc:
        print(f"[ilrs] teleop: {exc}", flush=True)
        return 2
    if not sys.stdin.isatty():
        print("[ilrs] teleop needs a terminal (stdin is not a tty)", flush=True)
        return 2
    os.environ.update(ros_environment(args.domain_id))
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    with Teleop(args.namespace, sys.stdout) as teleop:
        cbreak_keys(fd)
        try:
            teleop.say(f"{teleop.namespace}: {help_text(config)}")
            return run_keys(teleop, keys, fd)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            time.sleep(0.3)  # let the last stop leave before the client closes


def _positive(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0.0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add `teleop` to the `ilrs` command line."""
    p = sub.add_parser("teleop", help="terminal teleop of a rover by bounded commands, with a "
                                      "deadman key")
    p.add_argument("--namespace", default="rover1", help="the rover's namespace (default rover1)")
    p.add_argument("--step", type=_positive, default=0.5, help="m per drive key (default 0.5)")
    p.add_argument("--angle", type=_positive, default=15.0,
                   help="degrees per turn key (default 15)")
    p.add_argument("--speed", type=float, default=0.0,
                   help="cap on each command's speed (m/s or rad/s; default 0: the rover's)")
    p.add_argument("--arm-time", type=_positive, default=2.0,
                   help="s one press of the deadman key arms motion (default 2)")
    p.add_argument("--deadman", default="d", help="the deadman key (default d)")
    p.set_defaults(func=cmd_teleop)
