"""gazebo.launch.py under the real launch libraries (Humble and Jazzy branches), performed.

Gazebo cannot run here, so the launch is not started: a subprocess with one distro's
`launch` / `launch_ros` on its path (launch_harness.launch_env, the package installed as
colcon lays it out) loads the launch file as `ros2 launch` does, applies the launch
arguments (DeclareLaunchArgument defaults and choices), performs the OpaqueFunction with a
LaunchContext and describes the actions it returns: processes with their command lines,
nodes with their parameters as rcl would merge them, environment settings. A fake prefix
provides what the launch checks for up front (`gz` on the PATH, ros_gz_sim, ros_gz_bridge and
tf2_ros in the ament index). Checked as a ROS user would: the `gz sim` command line and its
world, the bridge's configuration, one spawn per robot with its pose and model, the sensors'
static frames, the stack's gazebo-mode nodes per robot (use_sim_time, world, the robot's own
${robot} values, registered executables, only parameters the stack sets, which
test_launch_static checks each node declares), the DDS profile as a default. And `ros2
launch` where Gazebo is not installed fails at once, naming the package to install, with
nothing started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from launch_harness import Launch, distros, launch_env
from test_launch_static import GENERIC, _set_parameters

from ilrs_robots.runner.ament_tree import console_scripts, install_ament_tree
from ilrs_robots.runner.gazebo_check import ROS_PACKAGES
from ilrs_robots.runner.stacks import load_stack
from ilrs_robots.sim import gazebo_export as gx

ROOT = Path(__file__).resolve().parents[2]
DISTROS = [pytest.param(d, marks=pytest.mark.skip(reason=why) if why else ())
           for d, why in distros()]
DOMAIN = int(os.environ["ROS_DOMAIN_ID"])

# Load the launch file, apply the arguments, perform the OpaqueFunction, describe its actions.
PERFORM = r"""
import fnmatch, json, sys, traceback
import yaml
from launch import LaunchContext
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, OpaqueFunction,
                            RegisterEventHandler, SetEnvironmentVariable)
from launch.launch_description_sources import get_launch_description_from_python_launch_file
from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions
from launch_ros.actions import Node

def text(context, value):
    return perform_substitutions(context, normalize_to_list_of_substitutions(value))

def matches(key, fqn):  # rcl: '/**' any namespace, '*' one token
    pattern = key.replace("/**", "\0").replace("*", "[!/]*").replace("\0", "*")
    return fnmatch.fnmatchcase(fqn, pattern if pattern.startswith("/") else "/" + pattern)

def node(context, action):
    action._perform_substitutions(context)
    unspecified = Node.UNSPECIFIED_NODE_NAMESPACE  # no namespace: the root one
    fqn = "/" + action.node_name.replace(unspecified, "").lstrip("/")
    namespace = action.expanded_node_namespace.replace(unspecified, "") or "/"
    params, files = {}, []
    for arg, is_file in action._Node__expanded_parameter_arguments or []:
        if not is_file:
            name, _, value = arg.partition(":=")
            params[name] = yaml.safe_load(value)
            continue
        files.append(arg)
        with open(arg) as f:
            for key, value in (yaml.safe_load(f) or {}).items():
                if matches(key, fqn):
                    params.update(value["ros__parameters"])
    return {"kind": "node", "package": action.node_package,
            "executable": action.node_executable, "fqn": fqn,
            "namespace": namespace, "params": params, "files": files,
            "arguments": [text(context, a) for a in action._Node__arguments or []],
            "remaps": [list(r) for r in action.expanded_remapping_rules or []]}

def describe(context, action):
    if isinstance(action, Node):
        return node(context, action)
    if isinstance(action, SetEnvironmentVariable):
        return {"kind": "setenv", "name": text(context, action.name),
                "value": text(context, action.value)}
    if isinstance(action, ExecuteProcess):
        return {"kind": "process", "name": text(context, action.name),
                "cmd": [text(context, c) for c in action.cmd],
                "env": {text(context, k): text(context, v)
                        for k, v in action.additional_env or []}}
    if isinstance(action, RegisterEventHandler):
        return {"kind": "handler", "type": type(action.event_handler).__name__,
                "matcher": action.event_handler.matcher_description}
    return {"kind": type(action).__name__}

context = LaunchContext()
context.launch_configurations.update(a.split(":=", 1) for a in sys.argv[2:])
try:
    for entity in get_launch_description_from_python_launch_file(sys.argv[1]).entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)  # its default, and its choices checked
        elif isinstance(entity, OpaqueFunction):
            out = [describe(context, a) for a in entity.visit(context) or []]
    print(json.dumps({"actions": out}))
except Exception as exc:
    traceback.print_exc()
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
"""


def _fake_gazebo(tmp: Path) -> Path:
    """A prefix with a `gz` command and the ROS packages gazebo.launch.py checks for."""
    prefix = tmp / "fake_gz"
    (prefix / "bin").mkdir(parents=True)
    gz = prefix / "bin" / "gz"
    gz.write_text("#!/bin/sh\nexit 0\n")
    gz.chmod(0o755)
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    for package in ROS_PACKAGES:
        (index / package).write_text("")
    return prefix


def _perform(distro: str, tmp: Path, args: list[str], gazebo: bool = True,
             user_env: dict[str, str] | None = None) -> dict:
    """gazebo.launch.py's actions for `args` under `distro`'s launch, as dicts."""
    prefix = install_ament_tree(tmp / "install", sys.executable)
    env = launch_env(distro, prefix, DOMAIN, {"TMPDIR": str(tmp)})
    for k in ("FASTDDS_DEFAULT_PROFILES_FILE", "ROS_DISTRO", "GZ_SIM_RESOURCE_PATH"):
        env.pop(k, None)  # as on a machine where the user set none of them
    if gazebo:
        fake = _fake_gazebo(tmp)
        env["PATH"] = os.pathsep.join([str(fake / "bin"), env.get("PATH", "")])
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([env["AMENT_PREFIX_PATH"], str(fake)])
    env.update(user_env or {})
    launch_file = prefix / "share" / "ilrs_robots" / "launch" / "gazebo.launch.py"
    r = subprocess.run([sys.executable, "-c", PERFORM, str(launch_file), *args], env=env,
                       capture_output=True, text=True, timeout=240)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and lines, r.stdout + r.stderr
    result = json.loads(lines[-1])
    result["stderr"] = r.stderr
    result["share"] = prefix / "share" / "ilrs_robots"
    return result


def _nodes(actions: list[dict], package: str, executable: str) -> list[dict]:
    return [a for a in actions
            if a["kind"] == "node" and (a["package"], a["executable"]) == (package, executable)]


def _check(result: dict, world: str, robots: list[str], export: Path, run_dir: str,
           headless: bool) -> None:
    """What a ROS user checks of a performed gazebo.launch.py."""
    assert "actions" in result, result.get("error", "") + result["stderr"]
    actions = result["actions"]
    meta = yaml.safe_load((export / gx.ROBOTS_FILE).read_text())
    assert list(meta["robots"]) == robots
    # Gazebo: the world's SDF, run at once, server only when headless; its exit ends it all
    (gz,) = [a for a in actions if a["kind"] == "process"]
    assert gz["cmd"][:3] == ["gz", "sim", "-r"] and ("-s" in gz["cmd"]) == headless, gz
    assert gz["cmd"][-1] == str(export / gx.WORLD_FILE) and Path(gz["cmd"][-1]).is_file()
    assert gz["env"]["GZ_SIM_RESOURCE_PATH"].split(os.pathsep)[0] == str(export)
    assert any(h["type"] == "OnProcessExit" for h in actions if h["kind"] == "handler")
    # the bridge in place of the drivers, with the export's configuration
    (bridge,) = _nodes(actions, "ros_gz_bridge", "parameter_bridge")
    config = Path(bridge["params"]["config_file"])
    assert config == export / gx.BRIDGE_FILE and config.is_file(), bridge
    assert bridge["params"]["use_sim_time"] is True
    # one spawn per robot, its model and its pose
    spawns = _nodes(actions, "ros_gz_sim", "create")
    assert len(spawns) == len(robots)
    for robot, spawn in zip(robots, spawns, strict=True):
        args = spawn["arguments"]
        opt = dict(zip(args[::2], args[1::2], strict=True))
        assert opt["-world"] == meta["world"] and opt["-name"] == robot, args
        assert opt["-file"] == str(export / f"{robot}.sdf") and Path(opt["-file"]).is_file()
        pose = [float(opt[k]) for k in ("-x", "-y", "-z", "-R", "-P", "-Y")]
        assert pose == pytest.approx(meta["robots"][robot]["pose"])
    # the sensors' static frames, per robot
    tfs = _nodes(actions, "tf2_ros", "static_transform_publisher")
    for robot in robots:
        frames = meta["robots"][robot]["static_frames"]
        mine = [t for t in tfs if t["namespace"] == f"/{robot}"]
        got = {}
        for t in mine:
            opt = dict(zip(t["arguments"][::2], t["arguments"][1::2], strict=True))
            got[opt["--child-frame-id"]] = (opt["--frame-id"], [float(opt[k]) for k in (
                "--x", "--y", "--z", "--qx", "--qy", "--qz", "--qw")])
        assert set(got) == set(frames), (robot, sorted(got))
        for frame, tf in frames.items():
            assert got[frame][0] == tf["parent"]
            assert got[frame][1] == pytest.approx([*tf["xyz"], *tf["quaternion_xyzw"]])
    # the stack's gazebo-mode nodes under each robot's namespace
    registered = console_scripts(ROOT / "setup.py")
    ours = [a for a in actions if a["kind"] == "node" and a["package"] == "ilrs_robots"]
    for robot in robots:
        stack = load_stack("rover", "gazebo", run_dir, namespace=robot, frame_prefix="")
        assert stack.nodes
        expected = {f"/{s.namespace}/{s.name}": s for s in stack.nodes}
        got = {a["fqn"]: a for a in ours if a["fqn"].startswith(f"/{robot}/")}
        assert set(got) == set(expected), (robot, sorted(got), sorted(expected))
        for fqn, spec in expected.items():
            node = got[fqn]
            assert node["executable"] == spec.executable in registered, fqn
            assert all(Path(f).is_file() for f in node["files"]), node["files"]
            params = node["params"]
            assert params["use_sim_time"] is True, fqn
            if spec.executable == "gazebo_base":  # the limits of the export in use
                assert str(export / gx.BASE_PARAMS_FILE) in node["files"], node["files"]
            # nothing the stack does not set (test_launch_static: the node declares those)
            assert set(params) - GENERIC <= _set_parameters(spec), (
                fqn, sorted(set(params) - GENERIC - _set_parameters(spec)))
            if "world" in spec.parameters:
                assert params["world"] == world, fqn
            for name, value in spec.parameters.items():  # this robot's ${robot} values
                if name not in ("world", "use_sim_time"):
                    assert params[name] == value, (fqn, name, params[name], value)
    assert len(ours) == len(robots) * len(load_stack("rover", "gazebo", run_dir).nodes)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("distro", DISTROS)
def test_default_arguments_use_the_shipped_export(distro, tmp_path: Path):
    result = _perform(distro, tmp_path, [])
    export = result["share"] / "config" / "gazebo"
    _check(result, "south_pole", ["rover1"], export, "/tmp/ilrs", headless=False)
    # the project's DDS profile is set, as a default (nobody set one here)
    env = {a["name"]: a["value"] for a in result["actions"] if a["kind"] == "setenv"}
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(
        result["share"] / "config" / "fastdds.xml")
    assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]).is_file()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("distro", DISTROS)
def test_another_world_and_two_robots_are_exported_into_run_dir(distro, tmp_path: Path):
    run_dir = tmp_path / "run"
    profile = tmp_path / "ground_station.xml"
    profile.write_text("<profiles/>\n")
    result = _perform(distro, tmp_path, ["world:=test_flat", "robots:=rover1,rover2",
                                         f"run_dir:={run_dir}", "headless:=true"],
                      user_env={"FASTDDS_DEFAULT_PROFILES_FILE": str(profile)})
    export = run_dir / "gazebo" / "test_flat"
    _check(result, "test_flat", ["rover1", "rover2"], export, str(run_dir), headless=True)
    # the user's DDS profile is left alone
    names = {a["name"] for a in result["actions"] if a["kind"] == "setenv"}
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in names


@pytest.mark.timeout(120)
@pytest.mark.parametrize("distro", DISTROS)
def test_without_gazebo_ros2_launch_names_the_package_to_install(distro, tmp_path: Path):
    """`ros2 launch ilrs_robots gazebo.launch.py` where Gazebo is not installed (here)."""
    if shutil.which("gz"):
        pytest.skip("Gazebo is installed on this machine")
    launch = Launch(distro, tmp_path, "gazebo.launch.py", [f"run_dir:={tmp_path / 'run'}"],
                    DOMAIN, {"ROS_DISTRO": "jazzy", "ROS_LOG_DIR": str(tmp_path / "log")})
    try:
        code = launch.wait(60)
        output = launch.output()
        assert code not in (None, 0), output
        assert "gazebo.launch.py needs `gz` (Gazebo), ros_gz_sim, ros_gz_bridge" in output, output
        assert "`sudo apt install ros-jazzy-ros-gz`" in output, output
        assert "process started" not in output, output
    finally:
        launch.stop()
