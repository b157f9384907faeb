"""The `ilrs` command: run stacks as processes, and run simulated missions.

    ilrs run [STACK] [--hardware real|sim|emulated]   nodes of a stack until Ctrl-C
    ilrs square [--side M]                            base driver + emulated RoboClaws:
                                                      drive a square, print odometry
    ilrs sim [--world NAME] [--scale F]               the simulated mission in world NAME:
                                                      the traverse by NavigateToPose
                                                      (--scripted: the old cmd_vel route)
    ilrs goto X Y [--yaw DEG]                         navigate a running rover to a point
    ilrs waypoints FILE                               follow waypoints (YAML list of x, y, yaw_deg)
    ilrs inspect ROUND                                run an inspection round on a running rover
    ilrs export-gazebo WORLD --out DIR                the world's SDF, robot models, bridge.yaml
    ilrs doctor                                       check ports, ROS, DDS, clock, cameras
    ilrs slice DESIGN.yaml [-o OUT.gcode]             slice a structure, print estimates
    ilrs print FILE.gcode --port PORT [--baud B]      stream G-code to a Marlin printer
    ilrs console [--host H] [--port P] [--users FILE] the ground console (browser, API)
    ilrs console add-user NAME --role ROLE            add a console user (password on stdin)
    ilrs teleop [--namespace NS] [--step M] [--angle DEG]  terminal teleop by bounded commands
                                                      (deadman key)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ilrs_robots.resources import config_path
from ilrs_robots.runner import (
    console_cli,
    construction_cli,
    deploy_cli,
    inspect_cli,
    nav_cli,
    teleop_cli,
)
from ilrs_robots.runner.environment import ros_environment
from ilrs_robots.runner.processes import RunLock, StartError, Supervisor
from ilrs_robots.runner.stacks import MODES, StackError, load_stack

GAZEBO_MESSAGE = ("--hardware gazebo: Gazebo runs under ROS 2's launch: `ros2 launch "
                  "ilrs_robots gazebo.launch.py` (needs Gazebo Harmonic and ros_gz); the ilrs "
                  "runner starts no Gazebo")


def say(text: str) -> None:
    """Progress output of the runner."""
    print(f"[ilrs] {text}", flush=True)


@contextmanager
def running_stack(stack_name: str, mode: str, run_dir: Path, domain_id: int | None,
                  overrides: dict[str, dict] | None = None) -> Iterator[Supervisor]:
    """Start a stack's processes; stop them all on the way out.

    `overrides` maps a node's name to parameters that replace the stack's for this run.
    Holds the run directory's lock while the stack runs: a second runner there is refused.
    """
    stack = load_stack(stack_name, mode, str(run_dir))
    for name, params in (overrides or {}).items():
        spec = next((n for n in stack.nodes if n.name == name), None)
        if spec is None:
            raise StackError(f"stack {stack.name!r} ({mode}) has no node {name!r} to override")
        spec.parameters.update(params)
    env = ros_environment(domain_id)
    with RunLock(run_dir):
        os.environ.update(env)  # our own ROS client, if any, joins the same domain
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        say(f"stack '{stack.name}' ({mode}): {len(stack.nodes)} processes, ROS_DOMAIN_ID="
            f"{env.get('ROS_DOMAIN_ID', '0')}, logs in {run_dir / 'logs'}")
        sup = Supervisor(stack.nodes, env, run_dir / "logs", say=say)
        sup.start()
        try:
            yield sup
        finally:
            sup.stop()


def available_worlds() -> list[str]:
    """Names of the worlds shipped in config/worlds."""
    from ilrs_robots.sim.world import WORLDS_DIR

    return sorted(p.stem for p in Path(WORLDS_DIR).glob("*.yaml"))


def resolve_world(world: str) -> str:
    """The world to hand to the simulator (a shipped name or an absolute YAML path).

    Raises StackError, listing the available worlds, for one that does not exist or does not
    load.
    """
    from ilrs_robots.sim.world import WorldError, load_world

    path = Path(world)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        world = str(path.resolve())
    elif world not in available_worlds():
        raise StackError(f"no world {world!r}; available worlds: "
                         f"{', '.join(available_worlds())} (or a path to a world .yaml)")
    try:
        load_world(world)
    except WorldError as exc:
        raise StackError(f"world {world!r} cannot be used: {exc}") from None
    return world


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_run(args: argparse.Namespace) -> int:
    """`ilrs run`: a stack until Ctrl-C."""
    if args.hardware == "gazebo":
        say(GAZEBO_MESSAGE)
        return 2
    stop = _stop_event()
    with running_stack(args.stack, args.hardware, Path(args.run_dir), args.domain_id) as sup:
        while not stop.wait(0.5):
            if not sup.check():
                say(f"required process {sup.failed} died: stopping the stack")
                return 1
    return 0


def cmd_square(args: argparse.Namespace) -> int:
    """`ilrs square`: the base driver drives a square on emulated controllers."""
    from ilrs_robots.runner.missions import LegDriver, MissionError, square
    from ilrs_robots.runner.ros_client import RosClient

    with tempfile.TemporaryDirectory(prefix="ilrs-") as tmp, \
            running_stack("rover", "emulated", Path(tmp), args.domain_id) as sup, \
            RosClient("ilrs_mission") as ros:
        try:
            driver = LegDriver(ros, "rover1", speed=args.speed)
        except MissionError as exc:
            sup.check()
            say(f"mission failed: {exc}")
            return 1
        say(f"driving a {args.side:.1f} m square on odometry")

        def report(i: int, leg, pose) -> None:
            say(f"leg {i + 1}/8 {leg.describe():>16}: odom x={pose.x:+.3f} m "
                f"y={pose.y:+.3f} m yaw={pose.yaw * 57.29578:+7.2f} deg")
            if not sup.check():
                raise MissionError(f"{sup.failed} died")

        t0 = time.monotonic()
        try:
            end = driver.run(square(args.side), report)
        except MissionError as exc:
            say(f"mission failed: {exc}")
            return 1
        say(f"square done in {time.monotonic() - t0:.1f} s: closing error "
            f"{(end.x ** 2 + end.y ** 2) ** 0.5:.3f} m (odometry)")
    return 0


#: the fast default of `ilrs sim`: the sim runs `rate` times faster than real time with a
#: smaller stereo pair (every node, the navigator and localization included, runs on sim time)
# The mission's sim settings: real time with 320x240 stereo at 5 Hz keeps visual odometry fed
# on 2 cores (faster sim rates starve it and the localization drifts).
MISSION_SIM = {"rate": 1.0, "mast_rate": 0.1}


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' as (width, height) in pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise argparse.ArgumentTypeError(f"{text!r}: each side must be 16..4096 pixels")
    return w, h


def sim_overrides(args: argparse.Namespace, world: str) -> dict[str, dict]:
    """Parameter overrides of the rover stack for an `ilrs sim` run: with `--mapping depth`
    (the default) the simulator draws a depth image with each left nav image and the
    terrain_mapper maps it instead of matching the stereo pair (which visual odometry still
    uses)."""
    width, height = args.camera
    depth = getattr(args, "mapping", "stereo") == "depth"
    sim = dict(MISSION_SIM, world=world, rate=float(args.rate), camera_width=width,
               camera_height=height, stereo_rate=float(args.stereo_rate),
               depth_rate=float(args.stereo_rate) if depth else 0.0)
    if not depth:
        return {"sim": sim}
    return {"sim": sim, "terrain_mapper": {"input": "depth"}}


def with_round(overrides: dict[str, dict], rnd: object | None, out: Path,
               run_dir: Path) -> dict[str, dict]:
    """The stack's overrides, with the inspection node's folders for the mission's round:
    reports and baselines under ``out``/inspection (a later mission compares its photos with
    the first's), progress in the run directory (a new mission starts its round afresh)."""
    if rnd is None:
        return overrides
    folder = out.resolve() / "inspection"
    return dict(overrides, inspection={
        "report_dir": str(folder / "reports"), "baseline_dir": str(folder / "baselines"),
        "state_dir": str(run_dir.resolve() / "inspection" / "state")})


def cmd_sim(args: argparse.Namespace) -> int:
    """`ilrs sim`: the traverse by NavigateToPose, or (--scripted) the cmd_vel route."""
    if args.scripted:
        return cmd_sim_scripted(args)
    from ilrs_robots.runner.traverse import (
        Traverse,
        describe_leg,
        found_hazards,
        mission_goals,
        summarize,
    )
    from ilrs_robots.sim.track_map import write_track_map
    from ilrs_robots.sim.world import build_heightmap, load_world

    try:
        world = resolve_world(args.world)
        world_data = load_world(world)
        goals = mission_goals(world_data, args.scale)
        rnd, no_round = inspect_cli.mission_round(args.inspect, world_data,
                                                  (goals[-1].x, goals[-1].y))
    except (StackError, ValueError) as exc:  # a malformed round is a ValueError (RoundError)
        say(str(exc))
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    reports = []
    width, height = args.camera
    printing = bool(args.print_design) and "construction_site" in world_data.sites
    overrides = sim_overrides(args, world)
    if printing:
        overrides["sim"].update(printer_speedup=float(args.print_speedup))
    elif args.print_design:
        say(f"world {world_data.name!r} has no construction_site: no construction leg")
    if rnd is not None:
        overrides["sim"]["mast_rate"] = 1.0  # photos and gauges want fresh mast images
    else:
        say(f"no inspection round: {no_round}")
    watch = None
    round_code, round_result = None, None
    with tempfile.TemporaryDirectory(prefix="ilrs-") as tmp, \
            running_stack("site" if printing else "rover", "sim",
                          (run_dir := Path(args.run_dir or tmp)), args.domain_id,
                          with_round(overrides, rnd, out, run_dir)) as sup, \
            Traverse("rover1", say=say) as trav:
        missing = trav.wait_until_ready(timeout=args.wait)
        if missing is not None:
            sup.check()
            say(f"mission failed: no {missing} within {args.wait:g} s")
            return 1
        if printing:
            from ilrs_robots.runner.print_leg import PrintWatch
            watch = PrintWatch(trav.ros, args.print_design)
            refused = watch.start(timeout=args.wait)
            say(f"construction leg: {refused}" if refused else
                f"construction leg: builder1 prints {Path(args.print_design).name} "
                f"({watch.report.lines_total} lines, {watch.report.layers_total} layers, "
                f"{watch.report.material_planned_kg:.0f} kg) at {args.print_speedup:g}x while "
                f"the rover drives")
        say(f"stack up in {time.monotonic() - t_start:.1f} s (sim at {args.rate:g}x real time, "
            f"stereo {width}x{height} at {args.stereo_rate:g} Hz, hazards mapped from "
            f"{'the depth image' if args.mapping == 'depth' else 'stereo'}); traverse of "
            f"{len(goals)} goals by NavigateToPose: "
            + ", then ".join(f"{g.name} ({g.x:+.1f}, {g.y:+.1f})" for g in goals))
        try:
            for i, goal in enumerate(goals, start=1):
                say(f"leg {i}/{len(goals)}: to {goal.name} ({goal.x:+.1f}, {goal.y:+.1f})")
                report = trav.run_leg(goal, label=f"leg {i}/{len(goals)}", every=args.every,
                                      check=sup.check)
                reports.append(report)
                for line in describe_leg(report, i, len(goals)):
                    say(line)
                if not report.succeeded:
                    break
            if rnd is not None and len(reports) == len(goals) and reports[-1].succeeded:
                say(f"inspection: round {rnd.name} at {rnd.site}, {len(rnd.points)} points")
                round_code, round_result = inspect_cli.run_round(
                    trav.ros, "rover1", inspect_cli.goal_round(rnd.source), wait=args.wait,
                    out=say)
                if round_code == inspect_cli.EXIT_INTERRUPTED:
                    if watch is not None:
                        watch.cancel()
                    return 130
            if watch is not None and watch.report.accepted:
                if not watch.finished():
                    say(f"waiting up to {args.print_wait:g} s for the print to finish")
                watch.finish(timeout=args.print_wait)
                if not watch.report.done:
                    watch.cancel()
        except KeyboardInterrupt:
            say("interrupted: cancelling the goal and stopping the stack")
            trav.nav.cancelTask(timeout=5.0)
            if watch is not None:
                watch.cancel()
            return 130
        costmap = trav.latest_costmap()
        known, found = ((), ()) if costmap is None or trav.first_costmap is None else \
            found_hazards(trav.first_costmap, costmap)
        picture = write_track_map(
            out / "mission_track.png", world_data, build_heightmap(world_data), trav.track,
            plans=trav.plans, known_hazards=known, found_hazards=found,
            goals=[(g.name, g.x, g.y) for g in goals],
            cell_size=costmap.info.resolution if costmap is not None else 0.5)
    total = summarize(reports)
    say("summary:")
    for i, r in enumerate(reports, start=1):
        pos, head = r.localization_error
        say(f"  {i}. {r.goal.name}: {'reached' if r.succeeded else 'FAILED'}, "
            f"{r.goal_error:.2f} m from the goal (ground truth), localization off by "
            f"{pos:.2f} m / {head * 57.29578:.1f} deg")
    say(f"  driven {total['driven']:.1f} m in {total['sim_time']:.0f} s sim time, "
        f"{total['recoveries']:.0f} recoveries, max tilt {total['max_tilt'] * 57.29578:.1f} deg;"
        f" mission {time.monotonic() - t_start:.0f} s wall in all")
    say(f"  hazards on the final costmap: {len(known)} lethal cells known from the prior map, "
        f"{len(found)} found on the way")
    say(f"  track picture: {picture}")
    if round_result is not None:
        say(f"  inspection round {rnd.name}: "
            f"{'completed' if round_code == 0 else 'FAILED'}, {len(round_result.findings)} "
            f"finding(s), report {round_result.report_path or '(none)'}")
    if watch is not None:
        for line in watch.report.describe():
            say(f"  {line}")
    failed = next((r for r in reports if not r.succeeded), None)
    if failed is not None:
        say(f"mission failed at {failed.goal.name}: {failed.error_name} ({failed.error_code}):"
            f" {failed.error_msg}")
        return 1
    if watch is not None and not watch.report.succeeded:
        say("mission failed: the construction leg did not complete its print")
        return 1
    if rnd is not None and round_code != 0:
        say(f"mission failed: the inspection round {rnd.name} did not complete")
        return 1
    say("mission complete")
    return 0


def cmd_sim_scripted(args: argparse.Namespace) -> int:
    """`ilrs sim`: the scripted cmd_vel route, wheel odometry against ground
    truth."""
    from nav_msgs.msg import Odometry

    from ilrs_robots.runner.missions import (
        LegDriver,
        MissionError,
        compare,
        odom_pose,
        route,
    )
    from ilrs_robots.runner.ros_client import RosClient
    from ilrs_robots.sim.track_map import write_track_map
    from ilrs_robots.sim.world import build_heightmap, load_world

    try:
        world = resolve_world(args.world)
    except StackError as exc:
        say(str(exc))
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ilrs-") as tmp, \
            running_stack("rover", "sim", Path(args.run_dir or tmp), args.domain_id,
                          {"sim": {"world": world}}) as sup, \
            RosClient("ilrs_mission") as ros:
        truth = ros.subscribe(Odometry, "/rover1/sim/ground_truth")
        try:
            driver = LegDriver(ros, "rover1", speed=args.speed)
            if truth.wait_for(timeout=20) is None:
                raise MissionError("no ground truth from the simulator")
        except MissionError as exc:
            sup.check()
            say(f"mission failed: {exc}")
            return 1
        say(f"stack up in {time.monotonic() - t_start:.1f} s; driving the route by cmd_vel")
        origin = odom_pose(truth.last())
        legs = route(args.scale)

        def travelled() -> float:
            poses = [odom_pose(m) for m in truth.messages]
            return sum(((b.x - a.x) ** 2 + (b.y - a.y) ** 2) ** 0.5
                       for a, b in zip(poses, poses[1:], strict=False))

        def report(i: int, leg, pose) -> None:
            now = odom_pose(truth.last())
            c = compare(origin, pose, now, travelled())
            say(f"leg {i + 1}/{len(legs)} {leg.describe():>16}: truth x={now.x:+8.2f} "
                f"y={now.y:+8.2f} yaw={now.yaw * 57.29578:+7.1f} deg | odometry off by "
                f"{c.position_error:.2f} m, {c.heading_error * 57.29578:.1f} deg")
            if not sup.check():
                raise MissionError(f"{sup.failed} died")

        try:
            end = driver.run(legs, report)
        except MissionError as exc:
            say(f"mission failed: {exc}")
            return 1
        final = compare(origin, end, odom_pose(truth.last()), travelled())
        track = [(p.pose.pose.position.x, p.pose.pose.position.y) for p in truth.messages]
        world_data = load_world(world)
        picture = out / "mission_track.png"
        write_track_map(picture, world_data, build_heightmap(world_data), track)
    say("summary:")
    say(f"  driven {final.distance:.1f} m (ground truth) in {time.monotonic() - t_start:.0f} s")
    say(f"  wheel odometry vs ground truth: {final.position_error:.2f} m "
        f"({final.drift_percent:.1f} % of distance), heading {final.heading_error * 57.29578:.1f}"
        f" deg")
    say(f"  track picture: {picture}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="ilrs", description=__doc__.splitlines()[0])
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID for every process (default: the environment's)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a stack's nodes as processes until Ctrl-C")
    run.add_argument("stack", nargs="?", default="rover", help="config/stacks/<stack>.yaml")
    run.add_argument("--hardware", choices=MODES, default="sim")
    run.add_argument("--run-dir", default="/tmp/ilrs",
                     help="where emulated devices publish their ports, and logs")
    run.set_defaults(func=cmd_run)
    sq = sub.add_parser("square", help="drive a square on emulated RoboClaws")
    sq.add_argument("--side", type=float, default=2.0)
    sq.add_argument("--speed", type=float, default=0.3)
    sq.set_defaults(func=cmd_square)
    sim = sub.add_parser("sim", help="the simulated mission (embedded MuJoCo simulator)")
    sim.add_argument("--world", default="south_pole",
                     help="a world of config/worlds (e.g. south_pole, test_flat) or a .yaml")
    sim.add_argument("--scale", type=float, default=1.0,
                     help="route length factor (e.g. 0.1 for a short traverse)")
    sim.add_argument("--rate", type=float, default=MISSION_SIM["rate"],
                     help="sim speed: 1 real time (default), 2 twice as fast, 0 flat out")
    sim.add_argument("--camera", type=parse_size, default=(320, 240), metavar="WxH",
                     help="stereo camera size (default 320x240; 640x480 for the full stereo)")
    sim.add_argument("--stereo-rate", type=float, default=5.0,
                     help="stereo pairs per s of sim time (default 5)")
    sim.add_argument("--every", type=float, default=10.0,
                     help="s (wall) between progress lines (default 10)")
    sim.add_argument("--wait", type=float, default=180.0,
                     help="s to wait for the stack to come up (default 180)")
    sim.add_argument("--scripted", action="store_true",
                     help="drive the old scripted route by cmd_vel legs on wheel odometry "
                          "instead of the traverse by NavigateToPose")
    sim.add_argument("--autonomous", action="store_true",
                     help="the traverse by NavigateToPose (the default; kept for scripts)")
    sim.add_argument("--mapping", choices=("depth", "stereo"), default="depth",
                     help="what the terrain_mapper maps hazards from: the simulator's depth "
                          "image (default, fits 2 cores in real time) or the stereo pair "
                          "(SGBM, the real rover's pipeline)")
    sim.add_argument("--print", dest="print_design",
                     default=str(config_path("designs", "landing_pad_small.yaml")),
                     help="the construction leg: the design builder1 prints at the world's "
                          "construction_site while the rover drives (default: the small "
                          "landing pad; '' for none)")
    sim.add_argument("--inspect", default="reactor_round", metavar="ROUND",
                     help="the inspection round the traverse ends with (a file, or a name in "
                          "config/inspection; default reactor_round, run where the world has "
                          "its site; '' for none): progress, findings and the report's path "
                          "are printed")
    sim.add_argument("--print-speedup", type=float, default=20.0,
                     help="the printer's moves run this many times faster than their feed "
                          "rates (default 20)")
    sim.add_argument("--print-wait", type=float, default=600.0,
                     help="s to wait for the print after the traverse (default 600)")
    sim.add_argument("--speed", type=float, default=0.4, help="scripted route: drive speed (m/s)")
    sim.add_argument("--out", default="out", help="folder for the track picture")
    sim.add_argument("--run-dir", default=None,
                     help="where devices publish their ports, and logs (default: a temporary "
                          "folder, removed at the end)")
    sim.set_defaults(func=cmd_sim)
    construction_cli.register(sub)
    nav_cli.register(sub)
    inspect_cli.register(sub)
    deploy_cli.register(sub)
    console_cli.register(sub)
    teleop_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console script `ilrs`."""
    args = build_parser().parse_args(argv)
    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        say("--domain-id must be in 0..232")
        return 2
    try:
        return args.func(args)
    except StackError as exc:
        say(f"stack error: {exc}")
        return 2
    except StartError as exc:
        say(f"cannot start: {exc}")
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while a command cleans up after the first
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
