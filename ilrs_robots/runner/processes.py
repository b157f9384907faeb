"""Start our nodes as separate processes, as `ros2 launch` would, and stop them cleanly.

Every child dies with the process that started it (PR_SET_PDEATHSIG), even when that one is
killed with SIGKILL, and runs in its own process group, so a terminal's Ctrl-C reaches the
runner first and the runner stops the children in order. Children killed by a signal leave
Fast DDS shared memory behind; the Supervisor removes it (see `runner/shm.py`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO

import yaml

from ilrs_robots.runner import shm

_PR_SET_PDEATHSIG = 1
try:  # resolved here, in the parent: a forked child must not load libraries or take locks
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


class StartError(RuntimeError):
    """A process of a stack cannot be started (unknown executable, run directory in use)."""


def executable_module(executable: str) -> str:
    """The module behind one of our console scripts (the one setup.py registers)."""
    for ep in entry_points(group="console_scripts"):
        if ep.name == executable and ep.value.startswith("ilrs_robots."):
            return ep.value.split(":")[0]
    raise LookupError(f"no console script named {executable!r} in ilrs_robots")


def known_executables() -> list[str]:
    """Names of every console script of ilrs_robots."""
    return sorted({ep.name for ep in entry_points(group="console_scripts")
                   if ep.value.startswith("ilrs_robots.")})


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


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A Popen `preexec_fn`: the child gets `sig` when the thread that started it exits.

    The kernel sends PR_SET_PDEATHSIG when the parent *thread* ends, so start children from
    a thread that lives as long as they should (the main thread). If the parent already died
    between fork and prctl, the child signals itself.
    """
    parent = os.getpid()

    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


class NodeProcess:
    """One node in its own process, its output in a log file; it dies with its parent."""

    def __init__(self, executable: str, env: Mapping[str, str], log_path: Path,
                 ros_args: Sequence[str] = (), extra_args: Sequence[str] = (),
                 death_signal: int = signal.SIGTERM) -> None:
        self.executable = executable
        self.command = [sys.executable, "-m", executable_module(executable), *extra_args,
                        *ros_args]
        self.env = dict(env)
        self.log_path = log_path
        self.death_signal = death_signal
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self.started_at = 0.0
        self.segments: set[str] = set()  # Fast DDS shared memory it was seen holding

    def start(self) -> NodeProcess:
        """Start the process in its own session (a terminal's Ctrl-C reaches us first).

        It gets `death_signal` when the calling thread exits: call from the main thread.
        """
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("start node processes from the main thread (PR_SET_PDEATHSIG "
                               "fires when the starting thread exits)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open while it runs
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True,
                                     preexec_fn=die_with_parent(self.death_signal))
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int | None:
        """Process id, once started."""
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code once it ended (negative: the signal that killed it)."""
        return None if self.proc is None else self.proc.poll()

    def note_segments(self) -> set[str]:
        """Record the Fast DDS shared-memory segments the process holds now; all seen so far."""
        if self.alive:
            self.segments |= shm.held_segments(self.proc.pid)
        return self.segments

    def clean_segments(self) -> list[str]:
        """After a death by signal, remove the segments it held that nobody holds now."""
        code = self.returncode
        if code is None or code >= 0 or not self.segments:
            return []
        removed = shm.remove_orphaned(self.segments)
        self.segments.clear()
        return removed

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL, each after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        self.note_segments()
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
        self.clean_segments()
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


def describe_exit(code: int | None) -> str:
    """'exit code 2' or 'killed by SIGKILL'."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class RunLock:
    """One runner per run directory: an exclusive flock held for the runner's life.

    The file holds the pid of the runner; the lock goes with the process, even on SIGKILL.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "ilrs.lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise StartError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            try:
                holder = self.path.read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise StartError(f"run directory {self.path.parent} is in use by another ilrs "
                             f"run (pid {holder}, lock {self.path}); stop it or pass another "
                             f"--run-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lock go (the file stays: removing it would race with a new runner)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Supervisor:
    """Runs the processes of a stack: reports a death, respawns where the stack says so.

    A respawning node gets `max_respawns` respawns; one that ran `stable_after` seconds before
    dying counts from zero again. Fast DDS shared memory of a child killed by a signal is
    removed. Processes are keyed by namespace and name (`rover2/base_driver`), so the same
    stack under two namespaces (config/stacks/station.yaml) runs twice. Call `start` and
    `check` from the main thread.
    """

    def __init__(self, specs: Sequence, env: Mapping[str, str], log_dir: Path,
                 say: Callable[[str], None] = print, respawn_delay: float = 1.0,
                 max_respawns: int = 5, stable_after: float = 30.0) -> None:
        self.specs = list(specs)
        self.env = dict(env)
        self.log_dir = log_dir
        self.say = say
        self.respawn_delay = respawn_delay
        self.max_respawns = max_respawns
        self.stable_after = stable_after
        self.procs: dict[str, NodeProcess] = {}
        self.respawns: dict[str, int] = {}
        self.failed: str | None = None
        self.ended: set[str] = set()  # died, not respawned, already reported
        self.gave_up: set[str] = set()  # ran out of respawns
        self._respawn_at: dict[str, float] = {}

    @staticmethod
    def _key(spec) -> str:
        return f"{spec.namespace}/{spec.name}".strip("/")

    def _make(self, spec) -> NodeProcess:
        log = self.log_dir / f"{self._key(spec).replace('/', '.')}.log"
        if spec.ros:
            ros_args = ros_arguments(spec.name, spec.namespace, spec.parameters,
                                     spec.params_files, spec.remaps)
        else:
            ros_args = []
        return NodeProcess(spec.executable, self.env, log, ros_args, spec.args)

    def validate(self) -> None:
        """Raise StartError naming every executable of the stack that does not exist."""
        known = known_executables()
        missing = sorted({s.executable for s in self.specs if s.executable not in known})
        if missing:
            raise StartError(f"unknown executable(s) {', '.join(map(repr, missing))}; "
                             f"ilrs_robots has: {', '.join(known)}")

    def start(self) -> None:
        """Check every executable, then start every process in the stack's order.

        If one fails to start, the ones already started are stopped before the error goes on.
        """
        self.validate()
        try:
            keys = [self._key(s) for s in self.specs]
            twice = sorted({k for k in keys if keys.count(k) > 1})
            if twice:
                raise StartError(f"two processes named {', '.join(twice)}: give each its own "
                                 f"name or namespace")
            for spec in self.specs:
                proc = self._make(spec).start()
                self.procs[self._key(spec)] = proc
                self.say(f"started {spec.namespace}/{spec.name} (pid {proc.pid}, "
                         f"log {proc.log_path})")
        except BaseException:
            self.stop()
            raise

    def check(self) -> bool:
        """Look after the processes once; False when a required one died."""
        now = time.monotonic()
        for spec in self.specs:
            name = self._key(spec)
            if name in self.ended:
                continue
            if name in self._respawn_at:
                if now >= self._respawn_at[name]:
                    del self._respawn_at[name]
                    self.procs[name] = self._make(spec).start()
                    self.say(f"respawned {self._key(spec)} (pid {self.procs[name].pid}, "
                             f"{self.respawns[name]}/{self.max_respawns})")
                continue
            proc = self.procs[name]
            if proc.alive:
                proc.note_segments()
                continue
            code = proc.returncode
            ran = now - proc.started_at
            tail = "\n    ".join(proc.output().strip().splitlines()[-5:])
            self.say(f"{self._key(spec)} ended ({describe_exit(code)}) after {ran:.1f} s:"
                     f"\n    {tail}")
            removed = proc.clean_segments()
            if removed:
                self.say(f"removed {len(removed)} Fast DDS shared-memory segment(s) left by "
                         f"{self._key(spec)}: {', '.join(removed)}")
            if spec.required:
                self.failed = name
                self.ended.add(name)
                return False
            if not spec.respawn:
                self.ended.add(name)
                continue
            if ran >= self.stable_after:
                self.respawns[name] = 0  # it had been stable: a new run of failures
            count = self.respawns.get(name, 0)
            if count >= self.max_respawns:
                self.say(f"giving up on {self._key(spec)} after {count} respawns "
                         f"(the stack goes on without it)")
                self.ended.add(name)
                self.gave_up.add(name)
                continue
            self.respawns[name] = count + 1
            self._respawn_at[name] = now + self.respawn_delay
        return True

    def stop(self) -> None:
        """Stop every process, the last started first."""
        self._respawn_at.clear()
        for spec in reversed(self.specs):
            proc = self.procs.get(self._key(spec))
            if proc is not None and proc.alive:
                # 10 s per signal: on a loaded computer the simulator's close (loop thread,
                # renderers) has once taken longer than 5 s and was killed
                code = proc.stop(timeout=10.0)
                self.say(f"stopped {self._key(spec)} (exit {code})")
            elif proc is not None:
                proc.stop()  # closes its log, cleans shared memory of a killed one
