"""The `ilrs inspect` command: run an inspection round against a running stack.

    ilrs inspect ROUND [--namespace rover1] [--wait S] [--timeout S]

ROUND is a round file (a path; made absolute when it exists here, for the node on this
machine) or the name of one in the package's config/inspection (`reactor_round`). The goal
goes to `/<namespace>/inspect_site`; each feedback (point i of n, status) is printed as it
changes, then the report's path and the findings. Exit 0 when the round completed (with or
without findings: they are printed), 1 when the node refused or failed the round (the code
and reason are printed), 2 for bad input, 3 when no inspection node answers, 130 after
Ctrl-C (the round is cancelled first: the rover stops; the same command resumes it).

Registered on `ilrs` by runner/cli.py (``python -m ilrs_robots.runner.cli inspect ROUND ...``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ilrs_robots.runner.environment import ros_environment

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NO_NODE = 3
EXIT_INTERRUPTED = 130
ERROR_NAMES = {0: "NONE", 9000: "UNKNOWN", 9300: "INVALID_ROUND", 9301: "NAVIGATION_FAILED",
               9302: "DOSE_BUDGET", 9303: "CANCELED"}


def say(text: str) -> None:
    """Progress output."""
    print(f"[ilrs] {text}", flush=True)


def goal_round(name: str) -> str:
    """The goal's `round`: an existing local file as an absolute path, else as given."""
    p = Path(name)
    return str(p.resolve()) if p.is_file() else name


def describe_feedback(feedback: Any) -> str:
    """One progress line of InspectSite feedback."""
    return f"point {feedback.point}/{feedback.points_total}: {feedback.status}"


def print_result(result: Any, out: Callable[[str], None] = say) -> int:
    """Print an InspectSite result; the exit code."""
    code = int(result.error_code)
    if result.report_path:
        out(f"report: {result.report_path}")
    findings = list(result.findings)
    out(f"{len(findings)} finding(s)" + (":" if findings else ""))
    for f in findings:
        out(f"  {f}")
    if code == 0:
        out("round completed")
        return 0
    out(f"failed: {ERROR_NAMES.get(code, 'code')} ({code}): {result.error_msg}")
    return EXIT_FAILED


def mission_round(name: str, world: Any, end: tuple[float, float] | None = None,
                  reach: float = 50.0) -> tuple[Any | None, str]:
    """The round `ilrs sim` ends with in ``world`` (a loaded World), its traverse ending at
    ``end``: (the Round, "") when ``name`` names one for this world whose site lies within
    ``reach`` m of ``end``, else (None, why there is none). A round file that cannot be read
    or is malformed raises RoundError."""
    from ilrs_robots.core.inspection.rounds import load_round

    if not name.strip():
        return None, "no inspection round asked for"
    rnd = load_round(name)
    if rnd.world is not None and rnd.world != world.name:
        return None, f"round {rnd.name} is for world {rnd.world!r}, not {world.name!r}"
    site = world.sites.get(rnd.site)
    if site is None:
        return None, f"world {world.name!r} has no site {rnd.site!r} for round {rnd.name}"
    if end is not None:
        far = math.dist(end, site.position)
        if far > reach:
            return None, (f"the traverse ends {far:.0f} m from {rnd.site} (more than "
                          f"{reach:g} m), too far for round {rnd.name}")
    return rnd, ""


def run_round(ros: Any, namespace: str, round_name: str, wait: float = 30.0,
              timeout: float = 0.0, out: Callable[[str], None] = say
              ) -> tuple[int, Any | None]:
    """Run a round through ``ros`` (a RosClient) on ``<namespace>/inspect_site``, printing
    each change of its feedback, then the report's path and the findings. (exit code as
    `ilrs inspect` gives it, the InspectSite result or None). ``timeout`` > 0 cancels the
    round after that many seconds; Ctrl-C cancels it (the rover stops) and gives 130."""
    from rclpy.action import ActionClient

    from ilrs_interfaces.action import InspectSite
    from ilrs_robots.nodes.goal_requests import send_goal
    from ilrs_robots.runner.ros_client import wait_until

    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    client = ActionClient(ros.node, InspectSite, f"{ns}/inspect_site")
    if not client.wait_for_server(timeout_sec=wait):
        out(f"no inspection node answers on {ns}/inspect_site within {wait:g} s: is the "
            f"stack running (ilrs run rover)?")
        return EXIT_NO_NODE, None
    latest: list[Any] = []
    handle = send_goal(client, InspectSite.Goal(round=goal_round(round_name)),
                       feedback_callback=lambda m: latest.append(m.feedback))
    if handle is None:
        out("the inspection node did not answer the goal")
        return EXIT_FAILED, None
    if not handle.accepted:
        out("the inspection node rejected the goal")
        return EXIT_FAILED, None
    out(f"round {round_name} started")
    done = handle.get_result_async()
    deadline = time.monotonic() + timeout if timeout > 0 else None
    shown = ""
    try:
        while not done.done():
            if latest:
                line = describe_feedback(latest[-1])
                if line != shown:
                    out(line)
                    shown = line
            if deadline is not None and time.monotonic() > deadline:
                out(f"no result within {timeout:g} s: cancelling the round")
                cancel = handle.cancel_goal_async()
                wait_until(cancel.done, 10.0)
                wait_until(done.done, 30.0)
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        out("interrupted: cancelling the round (the rover stops)")
        cancel = handle.cancel_goal_async()
        wait_until(cancel.done, 10.0)
        wait_until(done.done, 30.0)
        if done.done():
            print_result(done.result().result, out)
            return EXIT_INTERRUPTED, done.result().result
        return EXIT_INTERRUPTED, None
    if not done.done():
        return EXIT_FAILED, None
    result = done.result().result
    return print_result(result, out), result


def cmd_inspect(args: argparse.Namespace) -> int:
    """Run an inspection round and print its progress, report path and findings."""
    if not args.round.strip():
        say("ROUND must name a round file")
        return EXIT_BAD_INPUT
    os.environ.update(ros_environment(getattr(args, "domain_id", None)))
    from ilrs_robots.runner.ros_client import RosClient  # after the environment is set

    ros = RosClient("ilrs_inspect_cli")
    try:
        return run_round(ros, args.namespace, args.round, args.wait, args.timeout)[0]
    finally:
        ros.close()


def register(subparsers: Any) -> None:
    """Add `inspect` to an argparse subparsers object."""
    p = subparsers.add_parser("inspect", help="run an inspection round on a running rover, "
                              "print progress, report and findings",
                              description=cmd_inspect.__doc__)
    p.add_argument("round", help="round file, or a name in config/inspection (reactor_round)")
    p.add_argument("--namespace", default="rover1", help="the robot's namespace (rover1)")
    p.add_argument("--wait", type=float, default=30.0,
                   help="s to wait for the inspection node to answer (default 30)")
    p.add_argument("--timeout", type=float, default=0.0,
                   help="s after which the round is cancelled (default 0: none)")
    p.set_defaults(func=cmd_inspect)
