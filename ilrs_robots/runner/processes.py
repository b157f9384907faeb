"""Start our nodes as separate processes, as `ros2 launch` would, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO

import yaml


def executable_module(executable: str) -> str:
    """The module behind one of our console scripts (the one setup.py registers)."""
    for ep in entry_points(group="console_scripts"):
        if ep.name == executable and ep.value.startswith("ilrs_robots."):
            return ep.value.split(":")[0]
    raise LookupError(f"no console script named {executable!r} in ilrs_robots")


def ros_arguments(name: str | None = None, namespace: str | None = None,
                  parameters: Mapping[str, object] | None = None,
                  params_files: Sequence[str | Path] = (),
                  remaps: Mapping[str, str] | None = None) -> list[str]:
    """The `--ros-args` part of a node's command line."""
    args = ["--ros-args"]
    if name:
        args += ["-r", f"__node:={name}"]
    if namespace:
        args += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    for f in params_files:
        args += ["--params-file", str(f)]
    for key, value in (parameters or {}).items():
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        text = text.removesuffix("\n...").removesuffix("...").strip()
        args += ["-p", f"{key}:={text}"]
    for src, dst in (remaps or {}).items():
        args += ["-r", f"{src}:={dst}"]
    return args


class NodeProcess:
    """One node in its own process, its output in a log file."""

    def __init__(self, executable: str, env: Mapping[str, str], log_path: Path,
                 ros_args: Sequence[str] = (), extra_args: Sequence[str] = ()) -> None:
        self.executable = executable
        self.command = [sys.executable, "-m", executable_module(executable), *extra_args,
                        *ros_args]
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> NodeProcess:
        """Start the process (in its own session, so a terminal's Ctrl-C reaches us first)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open while it runs
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.started_at = time.monotonic()
        return self

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code once it ended."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL, each after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.poll()

    def output(self) -> str:
        """What the process printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Supervisor:
    """Runs the processes of a stack: reports a death, respawns where the stack says so."""

    def __init__(self, specs: Sequence, env: Mapping[str, str], log_dir: Path,
                 say=print, respawn_delay: float = 1.0, max_respawns: int = 5) -> None:
        self.specs = list(specs)
        self.env = dict(env)
        self.log_dir = log_dir
        self.say = say
        self.respawn_delay = respawn_delay
        self.max_respawns = max_respawns
        self.procs: dict[str, NodeProcess] = {}
        self.respawns: dict[str, int] = {}
        self.failed: str | None = None
        self.ended: set[str] = set()  # died, not respawned, already reported

    def _make(self, spec) -> NodeProcess:
        key = f"{spec.namespace}/{spec.name}".strip("/")
        log = self.log_dir / f"{key.replace('/', '.')}.log"
        if spec.ros:
            ros_args = ros_arguments(spec.name, spec.namespace, spec.parameters,
                                     spec.params_files, spec.remaps)
        else:
            ros_args = []
        return NodeProcess(spec.executable, self.env, log, ros_args, spec.args)

    def start(self) -> None:
        """Start every process, in the stack's order."""
        for spec in self.specs:
            proc = self._make(spec).start()
            self.procs[spec.name] = proc
            self.say(f"started {spec.namespace}/{spec.name} (pid {proc.proc.pid}, "
                     f"log {proc.log_path})")

    def check(self) -> bool:
        """Look after the processes once; False when a required one died."""
        for spec in self.specs:
            proc = self.procs[spec.name]
            if proc.alive or spec.name in self.ended:
                continue
            code = proc.returncode
            tail = "\n    ".join(proc.output().strip().splitlines()[-5:])
            self.say(f"{spec.namespace}/{spec.name} exited with code {code}:\n    {tail}")
            if spec.required:
                self.failed = spec.name
                return False
            count = self.respawns.get(spec.name, 0)
            if spec.respawn and count < self.max_respawns:
                self.respawns[spec.name] = count + 1
                time.sleep(self.respawn_delay)
                self.procs[spec.name] = self._make(spec).start()
                self.say(f"respawned {spec.name} ({count + 1}/{self.max_respawns})")
            else:
                self.ended.add(spec.name)
        return True

    def stop(self) -> None:
        """Stop every process, the last started first."""
        for spec in reversed(self.specs):
            proc = self.procs.get(spec.name)
            if proc is not None and proc.alive:
                code = proc.stop()
                self.say(f"stopped {spec.name} (exit {code})")

