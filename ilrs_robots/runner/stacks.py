"""Stacks: which nodes run, with which parameter files, remaps and namespaces.

A stack is declared once in `config/stacks/<name>.yaml` and read both by the launch files
(`launch/*.launch.py`) and by the `ilrs` runner, which starts the same nodes as processes
where `ros2 launch` is not installed. Values may use `${run_dir}` (where emulated devices
publish their ports), `${share}` (the package's share directory) and `${namespace}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ilrs_robots.resources import config_path, share_dir

MODES = ("real", "sim", "emulated", "gazebo")
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


def load_stack(name: str, mode: str = "sim", run_dir: str = "/tmp/ilrs") -> Stack:
    """Read and validate a stack, keeping the nodes of `mode`."""
    path = stack_file(name)
    if mode not in MODES:
        raise StackError(f"mode must be one of {MODES}, got {mode!r}")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise StackError(f"no stack {name!r} ({path} does not exist)") from None
    except yaml.YAMLError as exc:
        raise StackError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise StackError(f"{path}: needs a 'nodes' list")
    default_ns = str(data.get("namespace", ""))
    nodes = []
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
        namespace = str(raw.get("namespace", default_ns))
        variables = {"run_dir": run_dir, "share": str(share_dir()), "namespace": namespace}
        raw = _substitute(raw, variables, where)
        params = {**(raw.get("parameters") or {}), **(raw.get(f"{mode}_parameters") or {})}
        files = [config_path(p) if not Path(p).is_absolute() else Path(p)
                 for p in raw.get("params", [])]
        for f in files:
            if not f.exists():
                raise StackError(f"{where}: parameter file {f} does not exist")
        nodes.append(NodeSpec(
            executable=str(raw["executable"]), name=str(raw.get("name", raw["executable"])),
            namespace=namespace, params_files=files, parameters=params,
            remaps=dict(raw.get("remaps") or {}), args=[str(a) for a in raw.get("args", [])],
            ros=bool(raw.get("ros", True)), respawn=bool(raw.get("respawn", False)),
            required=bool(raw.get("required", False))))
    return Stack(name=path.stem, mode=mode, description=str(data.get("description", "")),
                 nodes=nodes)
