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
import os
import time
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


def print_result(result: Any) -> int:
    """Print an InspectSite result; the exit code."""
    code = int(result.error_code)
    if result.report_path:
        say(f"report: {result.report_path}")
    findings = list(result.findings)
    say(f"{len(findings)} finding(s)" + (":" if findings else ""))
    for f in findings:
        print(f"  {f}", flush=True)
    if code == 0:
        say("round completed")
        return 0
    say(f"failed: {ERROR_NAMES.get(code, 'code')} ({code}): {result.error_msg}")
    return EXIT_FAILED


def cmd_inspect(args: argparse.Namespace) -> int:
    """Run an inspection round and print its progress, report path and findings."""
    if not args.round.strip():
        say("ROUND must name a round file")
        return EXIT_BAD_INPUT
    os.environ.update(ros_environment(getattr(args, "domain_id", None)))
    from rclpy.action import ActionClient  # after the environment is set

    from ilrs_interfaces.action import InspectSite
    from ilrs_robots.nodes.goal_requests import send_goal
    from ilrs_robots.runner.ros_client import RosClient, wait_until

    ns = "/" + args.namespace.strip("/") if args.namespace.strip("/") else ""
    ros = RosClient("ilrs_inspect_cli")
    try:
        client = ActionClient(ros.node, InspectSite, f"{ns}/inspect_site")
        if not client.wait_for_server(timeout_sec=args.wait):
            say(f"no inspection node answers on {ns}/inspect_site within {args.wait:g} s: is "
                f"the stack running (ilrs run rover)?")
            return EXIT_NO_NODE
        latest: list[Any] = []
        handle = send_goal(client, InspectSite.Goal(round=goal_round(args.round)),
                           feedback_callback=lambda m: latest.append(m.feedback))
        if handle is None:
            say("the inspection node did not answer the goal")
            return EXIT_FAILED
        if not handle.accepted:
            say("the inspection node rejected the goal")
            return EXIT_FAILED
        say(f"round {args.round} started")
        done = handle.get_result_async()
        deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
        shown = ""
        try:
            while not done.done():
                if latest:
                    line = describe_feedback(latest[-1])
                    if line != shown:
                        say(line)
                        shown = line
                if deadline is not None and time.monotonic() > deadline:
                    say(f"no result within {args.timeout:g} s: cancelling the round")
                    cancel = handle.cancel_goal_async()
                    wait_until(cancel.done, 10.0)
                    wait_until(done.done, 30.0)
                    break
                time.sleep(0.1)
        except KeyboardInterrupt:
            say("interrupted: cancelling the round (the rover stops)")
            cancel = handle.cancel_goal_async()
            wait_until(cancel.done, 10.0)
            wait_until(done.done, 30.0)
            if done.done():
                print_result(done.result().result)
            return EXIT_INTERRUPTED
        if not done.done():
            return EXIT_FAILED
        return print_result(done.result().result)
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
