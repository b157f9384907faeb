"""`ilrs export-gazebo` and `ilrs doctor`: deployment commands.

    ilrs export-gazebo WORLD --out DIR [--robots rover1,rover2]
        write WORLD's Gazebo (Harmonic) export into DIR: world.sdf, terrain.png, one model
        SDF per robot, bridge.yaml (ros_gz_bridge) and robots.yaml (spawn poses, frames)
    ilrs doctor [--stack rover] [--mode real] [--port P]... [--camera C]... [--user U]
        check the ports, permissions, ROS, RMW, clock, DDS settings and cameras; exit 1
        when something is wrong
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_USAGE = 2


def cmd_export_gazebo(args: argparse.Namespace) -> int:
    """Write the Gazebo export of a world (SDF 1.9, heightmap, bridge YAML, spawn poses)."""
    from ilrs_robots.sim import gazebo_export as gx
    from ilrs_robots.sim.world import WORLDS_DIR, WorldError, load_world

    robots = [r.strip() for r in args.robots.split(",") if r.strip()]
    try:
        world = load_world(args.world)
        paths = gx.write_export(world, args.out, robots, rover_params=args.rover_params)
    except WorldError as exc:
        known = ", ".join(sorted(p.stem for p in WORLDS_DIR.glob("*.yaml")))
        print(f"ilrs export-gazebo: {exc}\n  worlds: {known}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError) as exc:
        print(f"ilrs export-gazebo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for p in paths:
        print(p)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check this machine for running a stack on hardware; say what is wrong and the fix."""
    from ilrs_robots.runner import doctor
    from ilrs_robots.runner.stacks import StackError, load_stack

    ports: list[doctor.DeviceRef] = []
    cameras: list[doctor.DeviceRef] = []
    if args.stack:
        try:
            stack = load_stack(args.stack, args.mode)
        except StackError as exc:
            print(f"ilrs doctor: {exc}", file=sys.stderr)
            return EXIT_USAGE
        ports, cameras = doctor.devices_of_stack(stack)
    ports += [doctor.DeviceRef("--port", "port", p) for p in args.port]
    cameras += [doctor.DeviceRef("--camera", "source", c, "camera") for c in args.camera]
    identity = None
    if args.user:
        try:
            identity = doctor.Identity.of_user(args.user)
        except KeyError:
            print(f"ilrs doctor: no user {args.user!r}", file=sys.stderr)
            return EXIT_USAGE
    findings = doctor.run_checks(doctor.DoctorOptions(
        ports=ports, cameras=cameras, identity=identity, check_ros=not args.no_ros,
        check_clock=not args.no_clock))
    for f in findings:
        print(f.render())
    code = doctor.exit_code(findings, args.strict)
    failed = sum(f.status == doctor.FAIL for f in findings)
    warned = sum(f.status == doctor.WARN for f in findings)
    print(f"ilrs doctor: {failed} problem(s), {warned} warning(s)")
    return code


def register(subparsers: Any) -> None:
    """Add `export-gazebo` and `doctor` to an argparse subparsers object."""
    p = subparsers.add_parser("export-gazebo", help="write a world's Gazebo SDF export",
                              description=cmd_export_gazebo.__doc__)
    p.add_argument("world", help="world name (config/worlds) or path to a world YAML")
    p.add_argument("--out", required=True, help="directory to write the files into")
    p.add_argument("--robots", default="rover1",
                   help="comma-separated robot namespaces, one model each (default rover1)")
    p.add_argument("--rover-params", default=None,
                   help="base driver parameter file with the rover's geometry "
                        "(default config/params/rover_base.yaml)")
    p.set_defaults(func=cmd_export_gazebo)
    p = subparsers.add_parser("doctor", help="check ports, permissions, ROS, clock, DDS, "
                                             "cameras", description=cmd_doctor.__doc__)
    p.add_argument("--stack", default="rover",
                   help="stack whose ports and cameras to check ('' for none; default rover)")
    p.add_argument("--mode", default="real", help="the stack's mode (default real)")
    p.add_argument("--port", action="append", default=[], help="another serial port to check")
    p.add_argument("--camera", action="append", default=[], help="another camera device")
    p.add_argument("--user", default=None,
                   help="check permissions for this user (default: the current one)")
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    p.add_argument("--no-ros", action="store_true", help="skip the rclpy/RMW check")
    p.add_argument("--no-clock", action="store_true", help="skip the NTP check")
    p.set_defaults(func=cmd_doctor)
