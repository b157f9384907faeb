"""The `ilrs goto` and `ilrs waypoints` commands, against a running stack's navigator.

    ilrs goto X Y [--yaw DEG] [--namespace rover1] [--max-speed M/S]
    ilrs waypoints FILE [--namespace rover1]      FILE: YAML list of {x, y, yaw_deg}

Coordinates are metres in the map frame (the world's frame in simulation). Progress is printed
every `--every` seconds (distance remaining, ETA, recoveries; the waypoint under way). Exit
0 when the goal is reached (every waypoint, or the sequence ended with some missed: they are
listed), 1 when the navigator refuses or fails the goal (the code and reason are printed),
2 for bad input, 3 when no navigator answers, 130 after Ctrl-C (the goal is cancelled first).

Registered on `ilrs` by runner/cli.py (``python -m ilrs_robots.runner.cli goto|waypoints ...``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import Any

import yaml

from ilrs_robots.runner.environment import ros_environment

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NO_NAVIGATOR = 3
EXIT_INTERRUPTED = 130
ERROR_NAMES = {0: "NONE", 9000: "UNKNOWN", 9003: "TIMEOUT", 9100: "INVALID_GOAL",
               9101: "OFF_MAP", 9102: "IN_HAZARD", 9103: "IN_KEEP_OUT", 9104: "UNREACHABLE",
               9105: "CANCELED", 9106: "PREEMPTED", 9107: "BLOCKED", 9108: "ESTOP",
               9109: "NO_LOCALIZATION"}


def say(text: str) -> None:
    """Progress output."""
    print(f"[ilrs] {text}", flush=True)


class InputError(ValueError):
    """A waypoint file that cannot be used (the message says why)."""


def read_waypoints(path: str | Path) -> list[tuple[float, float, float]]:
    """(x, y, yaw rad) of each entry of a YAML list of {x, y, yaw_deg}."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from exc
    if isinstance(data, dict) and "waypoints" in data:
        data = data["waypoints"]
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a non-empty list of {{x, y, yaw_deg}}")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not {"x", "y"} <= set(item):
            raise InputError(f"{path}: waypoint {i} needs x and y (and may have yaw_deg)")
        unknown = set(item) - {"x", "y", "yaw_deg"}
        if unknown:
            raise InputError(f"{path}: waypoint {i} has unknown key(s) {sorted(unknown)}")
        try:
            x, y, yaw = float(item["x"]), float(item["y"]), float(item.get("yaw_deg", 0.0))
        except (TypeError, ValueError):
            raise InputError(f"{path}: waypoint {i}: x, y and yaw_deg must be numbers") from None
        if not all(math.isfinite(v) for v in (x, y, yaw)):
            raise InputError(f"{path}: waypoint {i}: x, y and yaw_deg must be finite")
        out.append((x, y, math.radians(yaw)))
    return out


def _seconds(duration: Any) -> float:
    return duration.sec + duration.nanosec * 1e-9


def describe_feedback(feedback: Any) -> str:
    """One progress line of NavigateToPose or FollowWaypoints feedback."""
    if hasattr(feedback, "current_waypoint"):
        return (f"waypoint {feedback.current_waypoint}: {feedback.distance_remaining:.1f} m "
                f"to go")
    pose = feedback.current_pose.pose.position
    return (f"at ({pose.x:.1f}, {pose.y:.1f}): {feedback.distance_remaining:.1f} m to go, "
            f"ETA {_seconds(feedback.estimated_time_remaining):.0f} s, "
            f"{feedback.number_of_recoveries} recoveries, "
            f"{_seconds(feedback.navigation_time):.0f} s under way")


def _follow(nav: Any, every: float) -> int:
    """Print progress until the task ends; the exit code."""
    from ilrs_robots.runner.commander import TaskResult

    last_print = -math.inf
    try:
        while not nav.isTaskComplete(timeout=0.2):
            feedback = nav.getFeedback()
            if feedback is not None and time.monotonic() - last_print >= every:
                last_print = time.monotonic()
                say(describe_feedback(feedback))
    except KeyboardInterrupt:
        say("interrupted: cancelling the goal")
        nav.cancelTask(timeout=5.0)
        return EXIT_INTERRUPTED
    result = nav.getResult()
    code, message = nav.getTaskError()
    if result is TaskResult.SUCCEEDED:
        extra = getattr(nav.getTaskResultMessage(), "missed_waypoints", None)
        if extra:
            say(f"done, missed waypoints {list(extra)}: {message}")
        else:
            say("goal reached")
        return 0
    say(f"failed: {ERROR_NAMES.get(code, 'code')} ({code}): {message or result.name}")
    return EXIT_FAILED


def _commander(args: argparse.Namespace) -> Any:
    os.environ.update(ros_environment(getattr(args, "domain_id", None)))
    from ilrs_robots.runner.commander import Commander  # after the environment is set

    nav = Commander(namespace=args.namespace, node_name="ilrs_nav_cli")
    if not nav.wait_until_ready(timeout=args.wait):
        say(f"no navigator answers on /{args.namespace.strip('/')}/navigate_to_pose within "
            f"{args.wait:g} s: is the stack running (ilrs run rover)?")
        nav.close()
        return None
    return nav


def cmd_goto(args: argparse.Namespace) -> int:
    """Drive to (X, Y) [yaw] and print progress."""
    if not all(math.isfinite(v) for v in (args.x, args.y, args.yaw)) or args.max_speed < 0:
        say("X, Y and --yaw must be finite and --max-speed not negative")
        return EXIT_BAD_INPUT
    nav = _commander(args)
    if nav is None:
        return EXIT_NO_NAVIGATOR
    try:
        say(f"goto ({args.x:.1f}, {args.y:.1f}) yaw {args.yaw:.0f} deg"
            + (f" at most {args.max_speed:g} m/s" if args.max_speed else ""))
        if nav.goToPose((args.x, args.y, math.radians(args.yaw)), args.max_speed) is None:
            say(f"goal not sent: {nav.getTaskError()[1]}")
            return EXIT_FAILED
        return _follow(nav, args.every)
    finally:
        nav.close()


def cmd_waypoints(args: argparse.Namespace) -> int:
    """Drive through the waypoints of a YAML file and print progress."""
    try:
        waypoints = read_waypoints(args.file)
    except InputError as exc:
        say(str(exc))
        return EXIT_BAD_INPUT
    nav = _commander(args)
    if nav is None:
        return EXIT_NO_NAVIGATOR
    try:
        say(f"{len(waypoints)} waypoints from {args.file}")
        if nav.followWaypoints(waypoints) is None:
            say(f"waypoints not sent: {nav.getTaskError()[1]}")
            return EXIT_FAILED
        return _follow(nav, args.every)
    finally:
        nav.close()


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", default="rover1", help="the robot's namespace (rover1)")
    p.add_argument("--wait", type=float, default=30.0,
                   help="s to wait for the navigator to answer (default 30)")
    p.add_argument("--every", type=float, default=2.0,
                   help="s between progress lines (default 2)")


def register(subparsers: Any) -> None:
    """Add `goto` and `waypoints` to an argparse subparsers object."""
    p = subparsers.add_parser("goto", help="drive to a pose with the navigator, print progress",
                              description=cmd_goto.__doc__)
    p.add_argument("x", type=float, help="m, map frame")
    p.add_argument("y", type=float, help="m, map frame")
    p.add_argument("--yaw", type=float, default=0.0, help="final heading, degrees CCW from +x")
    p.add_argument("--max-speed", type=float, default=0.0,
                   help="m/s (default 0: the navigator's limit)")
    _common(p)
    p.set_defaults(func=cmd_goto)
    p = subparsers.add_parser("waypoints", help="drive through waypoints (YAML list of "
                              "{x, y, yaw_deg})", description=cmd_waypoints.__doc__)
    p.add_argument("file", help="YAML list of {x, y, yaw_deg}")
    _common(p)
    p.set_defaults(func=cmd_waypoints)
