"""The `ilrs console` command: the ground console, and its users.

    ilrs console [--host 127.0.0.1] [--port 8080] [--users FILE] [--robots rover1 ...]
                 [--link lunar|none] [--audit FILE]
    ilrs console add-user NAME --role viewer|operator [--users FILE]   (password on stdin)

The first runs the `ground_console` node in this process's place (Ctrl-C stops it) with the
project's ROS environment; open http://HOST:PORT/ in a browser. `--link lunar` (the default,
for simulation) puts the emulated Earth-Moon link between the console and the robots: 1.3 s
each way with jitter; `--link none` for a real link, which brings its own delay.

Registered on `ilrs` by runner/cli.py.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from ilrs_robots.console.link import LUNAR_ONE_WAY
from ilrs_robots.console.users import ROLES, UsersFileError, add_user
from ilrs_robots.runner.environment import ros_environment

DEFAULT_USERS = "~/.ilrs/console/users.yaml"
LINKS = {"lunar": {"link_delay": LUNAR_ONE_WAY, "link_jitter": 0.1},
         "none": {"link_delay": 0.0, "link_jitter": 0.0}}


def say(text: str) -> None:
    """Progress output."""
    print(f"[ilrs] {text}", flush=True)


def read_password(stream=None) -> str:
    """The new password: asked twice on a terminal, else the first line of stdin."""
    stream = stream or sys.stdin
    if stream.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsersFileError("the two passwords differ")
        return first
    return stream.readline().rstrip("\r\n")


def node_arguments(args: argparse.Namespace) -> list[str]:
    """The ROS arguments of ground_console for these options."""
    params = {"host": args.host, "port": args.port, "users_file": args.users,
              "robots": "[" + ",".join(args.robots) + "]", **LINKS[args.link]}
    if args.audit is not None:
        params["audit_log"] = args.audit
    out = ["--ros-args"]
    for name, value in params.items():
        out += ["-p", f"{name}:={value}"]
    return out


def cmd_console(args: argparse.Namespace) -> int:
    """`ilrs console`, or `ilrs console add-user`."""
    if getattr(args, "console_command", None) == "add-user":
        try:
            add_user(args.users, args.name, args.role, read_password())
        except UsersFileError as exc:
            say(f"add-user: {exc}")
            return 2
        say(f"user {args.name!r} ({args.role}) written to {os.path.expanduser(args.users)}")
        return 0
    env = ros_environment(args.domain_id)
    argv = [sys.executable, "-m", "ilrs_robots.nodes.console", *node_arguments(args)]
    say(f"ground console on http://{args.host}:{args.port}/ ({args.link} link) for "
        f"{', '.join(args.robots)}")
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)
    return 1  # not reached


def register(sub: argparse._SubParsersAction) -> None:
    """Add `console` to the `ilrs` command line."""
    p = sub.add_parser("console", help="the ground console (web page, API) and its users")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default loopback: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--users", default=DEFAULT_USERS, help=f"users file (default {DEFAULT_USERS})")
    p.add_argument("--robots", nargs="+", default=["rover1"],
                   help="robots as NAME or NAME:KIND, KIND rover (default) or builder")
    p.add_argument("--link", choices=sorted(LINKS), default="lunar",
                   help="lunar (default): the emulated Earth-Moon link; none: direct")
    p.add_argument("--audit", default=None, help="audit log (default ~/.ilrs/console/audit.jsonl)")
    p.set_defaults(func=cmd_console)
    users = p.add_subparsers(dest="console_command")
    add = users.add_parser("add-user", help="add or replace a user (password on stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--users", default=DEFAULT_USERS, help=f"default {DEFAULT_USERS}")
    add.set_defaults(func=cmd_console)
