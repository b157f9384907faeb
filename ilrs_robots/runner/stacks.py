"""Stacks: which nodes run, with which parameter files, remaps and namespaces.

A stack is declared once in `config/stacks/<name>.yaml` and read both by the launch files
(`launch/*.launch.py`) and by the `ilrs` runner, which starts the same nodes as processes
where `ros2 launch` is not installed. Values may use `${run_dir}` (where emulated devices
publish their ports), `${share}` (the package's share directory), `${namespace}` (the node's
own namespace), `${robot}` (the stack's namespace: `namespace:=rover2` moves every node that
says `${robot}`) and `${frame_prefix}` (put before the robot's TF frames, e.g. `rover2/`, so
that two robots' frames never collide on /tf).

A stack of several robots lists other stacks under `robots:`, each with its namespace and
frame prefix (config/stacks/station.yaml); its nodes are theirs, in that order. A node
that two robots declare at the same name and namespace runs once, with their parameters merged:
that is the embedded simulator, which serves a rover and the construction site's printer in one
process (config/stacks/site.yaml); two robots that need it with different values (two rovers in
one embedded simulator) are refused, naming the parameter. In the simulated modes (sim,
gazebo) every ROS node gets `use_sim_time: true` unless the stack says otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ilrs_robots.resources import config_path, share_dir

MODES = ("real", "sim", "emulated", "gazebo")
SIM_TIME_MODES = ("sim", "gazebo")
_VAR = re.compile(r"\$\{(\w+)\}")


class StackError(ValueError):
    """A stack file that cannot be used; the message names the file and the field."""


@dataclass
class NodeSpec:
    """One process of a stack."""

    executable: str
    name: str
    namespace: str
    params_files: list[Path] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    remaps: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    ros: bool = True  # False: a plain program (e.g. a firmware emulator), no --ros-args
    respawn: bool = False
    required: bool = False  # its death ends the whole stack
    robot: str = ""  # the namespace of the robot (stack) it belongs to


@dataclass
class Stack:
    """A resolved stack for one mode."""

    name: str
    mode: str
    description: str
    nodes: list[NodeSpec]


def _substitute(value: Any, variables: dict[str, str], where: str) -> Any:
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in variables:
                raise StackError(f"{where}: unknown variable ${{{m.group(1)}}}")
            return variables[m.group(1)]
        return _VAR.sub(repl, value)
    if isinstance(value, list):
        return [_substitute(v, variables, where) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables, where) for k, v in value.items()}
    return value


def stack_file(name: str) -> Path:
    """The file of a stack given by name or path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    return config_path("stacks", f"{name}.yaml")


def _robots(path: Path, data: dict, mode: str, run_dir: str, depth: int) -> list[NodeSpec]:
    """The nodes of a stack of stacks (`robots:`), each robot under its own namespace."""
    if not isinstance(data["robots"], list) or "nodes" in data:
        raise StackError(f"{path}: 'robots' must be a list (and a stack has either 'robots' "
                         f"or 'nodes')")
    allowed = data.get("modes", list(MODES))
    if mode not in allowed:
        raise StackError(f"{path}: runs in modes {allowed} only, not {mode!r}"
                         f"{': ' + data['modes_note'] if data.get('modes_note') else ''}")
    nodes: list[NodeSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["robots"]):
        where = f"{path}: robots[{i}]"
        if not isinstance(raw, dict) or not raw.get("stack") or not raw.get("namespace"):
            raise StackError(f"{where}: needs a 'stack' and a 'namespace'")
        unknown = set(raw) - {"stack", "namespace", "frame_prefix"}
        if unknown:
            raise StackError(f"{where}: unknown field(s) {sorted(unknown)}")
        ns = str(raw["namespace"]).strip("/")
        if ns in seen:
            raise StackError(f"{where}: namespace {ns!r} is used twice")
        seen.add(ns)
        try:
            sub = load_stack(str(raw["stack"]), mode, run_dir, namespace=ns,
                             frame_prefix=str(raw.get("frame_prefix", f"{ns}/")),
                             _depth=depth + 1)
        except StackError as exc:
            raise StackError(f"{where}: {exc}") from None
        nodes += sub.nodes
    return merge_shared(nodes, str(path))


def merge_shared(nodes: list[NodeSpec], where: str) -> list[NodeSpec]:
    """Run a node that several robots declare at one namespace/name once (the embedded
    simulator), its parameters and parameter files merged; refuse conflicting values."""
    first: dict[str, NodeSpec] = {}
    merged: list[NodeSpec] = []
    for spec in nodes:
        key = f"{spec.namespace}/{spec.name}"
        kept = first.get(key)
        if kept is None:
            first[key] = spec
            merged.append(spec)
            continue
        if (kept.executable, kept.args, kept.ros) != (spec.executable, spec.args, spec.ros):
            raise StackError(f"{where}: robots {kept.robot!r} and {spec.robot!r} both declare "
                             f"{key!r} but run different programs")
        for name, value in spec.parameters.items():
            if name in kept.parameters and kept.parameters[name] != value:
                raise StackError(
                    f"{where}: robots {kept.robot!r} and {spec.robot!r} share {key!r} but set "
                    f"its parameter {name!r} to {kept.parameters[name]!r} and {value!r} (one "
                    f"embedded simulator serves one rover; use emulated mode or one rover)")
            kept.parameters[name] = value
        kept.params_files += [f for f in spec.params_files if f not in kept.params_files]
        kept.remaps.update(spec.remaps)
        kept.required = kept.required or spec.required
    return merged


def load_stack(name: str, mode: str = "sim", run_dir: str = "/tmp/ilrs",
               namespace: str | None = None, frame_prefix: str | None = None,
               _depth: int = 0) -> Stack:
    """Read and validate a stack, keeping the nodes of `mode`.

    `namespace` replaces the stack's own (`${robot}`), `frame_prefix` its `${frame_prefix}`.
    """
    path = stack_file(name)
    if _depth > 3:
        raise StackError(f"{path}: stacks nested too deeply (a stack that includes itself?)")
    if mode not in MODES:
        raise StackError(f"mode must be one of {MODES}, got {mode!r}")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise StackError(f"no stack {name!r} ({path} does not exist)") from None
    except yaml.YAMLError as exc:
        raise StackError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and "robots" in data:
        return Stack(name=path.stem, mode=mode, description=str(data.get("description", "")),
                     nodes=_robots(path, data, mode, run_dir, _depth))
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise StackError(f"{path}: needs a 'nodes' list")
    robot = (str(data.get("namespace", "")) if namespace is None else namespace).strip("/")
    prefix = str(data.get("frame_prefix", "") if frame_prefix is None else frame_prefix)
    nodes: list[NodeSpec] = []
    for i, raw in enumerate(data["nodes"]):
        where = f"{path}: nodes[{i}]"
        if not isinstance(raw, dict) or not raw.get("executable"):
            raise StackError(f"{where}: needs an 'executable'")
        unknown = set(raw) - {"executable", "name", "namespace", "params", "parameters",
                              f"{mode}_parameters", "remaps", "args", "ros", "respawn",
                              "required", "modes"} - {f"{m}_parameters" for m in MODES}
        if unknown:
            raise StackError(f"{where}: unknown field(s) {sorted(unknown)}")
        modes = raw.get("modes", list(MODES))
        if not set(modes) <= set(MODES):
            raise StackError(f"{where}: modes must be among {MODES}")
        if mode not in modes:
            continue
        variables = {"run_dir": run_dir, "share": str(share_dir()), "robot": robot,
                     "frame_prefix": prefix}
        node_ns = str(_substitute(raw.get("namespace", robot), variables, where)).strip("/")
        variables["namespace"] = node_ns
        raw = _substitute(raw, variables, where)
        params = {**(raw.get("parameters") or {}), **(raw.get(f"{mode}_parameters") or {})}
        if mode in SIM_TIME_MODES and raw.get("ros", True):
            params.setdefault("use_sim_time", True)
        files = [config_path(p) if not Path(p).is_absolute() else Path(p)
                 for p in raw.get("params", [])]
        for f in files:
            if not f.exists():
                raise StackError(f"{where}: parameter file {f} does not exist")
        nodes.append(NodeSpec(
            executable=str(raw["executable"]), name=str(raw.get("name", raw["executable"])),
            namespace=node_ns, params_files=files, parameters=params,
            remaps=dict(raw.get("remaps") or {}), args=[str(a) for a in raw.get("args", [])],
            ros=bool(raw.get("ros", True)), respawn=bool(raw.get("respawn", False)),
            required=bool(raw.get("required", False)), robot=robot))
    return Stack(name=path.stem, mode=mode, description=str(data.get("description", "")),
                 nodes=nodes)
