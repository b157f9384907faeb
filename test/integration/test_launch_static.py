"""What every launch file runs exists and is configured as its nodes expect.

The launch files (launch/*.launch.py) run the stacks of config/stacks/ (the `ilrs` runner
reads the same files). For every stack and every mode it allows: each executable is a console
script registered in setup.py, each parameter file is a ROS parameter file (rcl reads it when
the nodes start with it, below), and each parameter the stack sets (in its parameter files
and its `parameters`) is declared by the node that gets it: every ROS node is started once with
its stack arguments and asked for its parameter list over its parameter service.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from launch_harness import declared_parameters

from ilrs_robots.console.users import add_user
from ilrs_robots.runner.ament_tree import console_scripts
from ilrs_robots.runner.processes import NodeProcess, ros_arguments
from ilrs_robots.runner.stacks import MODES, StackError, load_stack

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted(p.stem for p in (ROOT / "config" / "stacks").glob("*.yaml"))
GENERIC = {"use_sim_time"}


def _stack_modes() -> list[tuple[str, str]]:
    out = []
    for stack in STACKS:
        for mode in MODES:
            try:
                load_stack(stack, mode, "/tmp/ilrs-static")
            except StackError as exc:
                if "runs in modes" in str(exc):
                    continue
                raise
            out.append((stack, mode))
    return out


STACK_MODES = _stack_modes()


def test_every_launch_file_runs_a_stack_that_exists():
    used = set()
    for path in sorted((ROOT / "launch").glob("*.launch.py")):
        names = re.findall(r'stack_launch_description\(\s*"(\w+)"', path.read_text())
        used |= set(names)
        assert names or path.name == "gazebo.launch.py", f"{path.name} runs no stack"
    assert used and used <= set(STACKS), (used, STACKS)


@pytest.mark.parametrize("stack,mode", STACK_MODES)
def test_executables_are_registered_in_setup_py(stack, mode):
    registered = console_scripts(ROOT / "setup.py")
    missing = {n.executable for n in load_stack(stack, mode, "/tmp/x").nodes} - set(registered)
    assert not missing, f"{stack} ({mode}) runs {missing}, which setup.py does not register"


@pytest.mark.parametrize("stack,mode", STACK_MODES)
def test_parameter_files_load(stack, mode):
    for node in load_stack(stack, mode, "/tmp/x").nodes:
        for path in node.params_files:
            data = yaml.safe_load(path.read_text())
            assert isinstance(data, dict) and all(
                "ros__parameters" in v for v in data.values()), path
            for key, value in data.items():  # what rcl accepts: scalars and flat lists
                for name, v in value["ros__parameters"].items():
                    ok = isinstance(v, bool | int | float | str) or (
                        isinstance(v, list) and all(isinstance(x, bool | int | float | str)
                                                    for x in v))
                    assert ok, f"{path}: {key}: {name} is {v!r}"
    # rcl itself reads every one of them in the test below (each node starts with its files)


def _set_parameters(spec) -> set[str]:
    """Names of every parameter a stack entry sets: its parameter files' and its own."""
    names = set(spec.parameters)
    for path in spec.params_files:
        for key, value in yaml.safe_load(path.read_text()).items():
            if key.split("/")[-1] in (spec.name, "**", "*"):
                names |= set(value["ros__parameters"])
    return names


# every node of every stack starts at once (17 processes importing numpy, OpenCV and rclpy): on
# two loaded cores (scripts/test --stress) motion_commands was still importing after 90 s
@pytest.mark.timeout(480)
def test_every_parameter_a_stack_sets_is_declared_by_its_node(ros, tmp_path: Path):
    # one start per (stack, executable, name): the union of what its modes set
    wanted: dict[tuple[str, str], tuple[object, set[str]]] = {}
    for stack, mode in STACK_MODES:
        for spec in load_stack(stack, mode, str(tmp_path / "run")).nodes:
            if not spec.ros:
                continue
            key = (spec.executable, f"/{spec.namespace}/{spec.name}".replace("//", "/"))
            first, names = wanted.get(key, (spec, set()))
            wanted[key] = (first if mode != "real" or first is spec else spec,
                           names | _set_parameters(spec))
    procs = {}
    try:
        for (executable, fqn), (spec, _names) in wanted.items():
            params = {**spec.parameters, "use_sim_time": False}
            if executable == "sim":  # start it quickly: no rendering, no real-time pacing
                params.update(stereo_rate=0.0, mast_rate=0.0, rate=0.0)
            if executable == "ground_console":  # it needs users, and a port of its own
                add_user(tmp_path / "users.yaml", "ops", "operator", "operator-pass")
                params.update(users_file=str(tmp_path / "users.yaml"), port=0,
                              audit_log=str(tmp_path / "audit.jsonl"))
            procs[fqn] = NodeProcess(executable, dict(os.environ),
                                     tmp_path / f"{fqn.strip('/').replace('/', '.')}.log",
                                     ros_arguments(spec.name, spec.namespace, params,
                                                   spec.params_files, spec.remaps)).start()
        for (_executable, fqn), (_spec, names) in wanted.items():
            declared = declared_parameters(ros, fqn, timeout=180)
            assert declared is not None, f"{fqn} never answered:\n{procs[fqn].output()[-3000:]}"
            assert names - GENERIC <= declared, (
                f"{fqn} does not declare {sorted(names - GENERIC - declared)}")
    finally:
        for proc in procs.values():
            proc.stop()
