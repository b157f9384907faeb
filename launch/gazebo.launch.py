"""Gazebo Harmonic: `ros2 launch ilrs_robots gazebo.launch.py [world:=NAME] [headless:=true]`.

Starts `gz sim` with the world's SDF export (the package ships `config/gazebo/`, the export
of the default world; any other world or robot list is exported on the fly into
`<run_dir>/gazebo/<world>`), spawns each robot (`ros_gz_sim create`), runs
`ros_gz_bridge parameter_bridge` with the export's `bridge.yaml` in place of the drivers,
publishes the sensors' static frames (`tf2_ros static_transform_publisher`), and starts the
autonomy nodes of the rover stack's `gazebo` mode (config/stacks/rover.yaml) under each
robot's namespace with `use_sim_time`, the `world` they load set to `world:=`, and
`${robot}` in the stack being each robot. The project's DDS profile is a default that a
user's FASTDDS_DEFAULT_PROFILES_FILE overrides. Gazebo exiting ends the launch.

Needs Gazebo (`gz sim`), `ros_gz_sim`, `ros_gz_bridge` and `tf2_ros`: without them the launch
fails at once with the install command (`apt install ros-$ROS_DISTRO-ros-gz`), before
anything is started.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ilrs_robots.resources import config_path
from ilrs_robots.runner.environment import dds_defaults
from ilrs_robots.runner.gazebo_check import gazebo_error
from ilrs_robots.runner.stacks import NodeSpec, StackError, load_stack
from ilrs_robots.sim import gazebo_export as gx

SHIPPED_DIR = config_path("gazebo")


def _export_dir(world: str, robots: list[str], run_dir: str) -> Path:
    """The shipped export when it matches the request, else a fresh export in run_dir."""
    shipped = SHIPPED_DIR / gx.ROBOTS_FILE
    if shipped.exists():
        meta = yaml.safe_load(shipped.read_text())
        if meta.get("world") == world and list(meta.get("robots", {})) == robots:
            return SHIPPED_DIR
    out = Path(run_dir) / "gazebo" / Path(world).stem
    gx.write_export(world, out, robots)
    return out


def _flag(context: LaunchContext, name: str) -> bool:
    return LaunchConfiguration(name).perform(context).lower() in ("1", "true", "yes", "on")


def _params_files(spec: NodeSpec, out: Path) -> list[str]:
    """The node's parameter files; one of the shipped export is taken from the export used."""
    files = []
    for path in spec.params_files:
        if path.parent == SHIPPED_DIR and (out / path.name).is_file():
            path = out / path.name
        files.append(str(path))
    return files


def _robot_actions(robot: str, spec: dict, out: Path, gz_world: str, world: str,
                   stack: str, run_dir: str) -> list:
    """Spawn one robot, publish its sensors' frames, start its autonomy nodes."""
    x, y, z, roll, pitch, yaw = (str(v) for v in spec["pose"])
    actions: list = [Node(
        package="ros_gz_sim", executable="create", name=f"spawn_{robot}", output="screen",
        arguments=["-world", gz_world, "-name", robot,
                   "-file", str(out / spec["model"]), "-x", x, "-y", y, "-z", z,
                   "-R", roll, "-P", pitch, "-Y", yaw])]
    for frame, tf in spec["static_frames"].items():
        xyz = [str(v) for v in tf["xyz"]]
        q = [str(v) for v in tf["quaternion_xyzw"]]
        actions.append(Node(
            package="tf2_ros", executable="static_transform_publisher",
            name=f"{robot}_{frame}_tf", namespace=robot, parameters=[{"use_sim_time": True}],
            arguments=["--x", xyz[0], "--y", xyz[1], "--z", xyz[2], "--qx", q[0],
                       "--qy", q[1], "--qz", q[2], "--qw", q[3],
                       "--frame-id", tf["parent"], "--child-frame-id", frame]))
    try:  # the stack's gazebo-mode nodes, its ${robot} being this robot
        nodes = load_stack(stack, "gazebo", run_dir, namespace=robot, frame_prefix="").nodes
    except StackError as exc:
        raise RuntimeError(f"stack {stack!r}, gazebo mode: {exc}") from None
    for node in nodes:
        params = {**node.parameters, "use_sim_time": True}
        if "world" in params:
            params["world"] = world
        actions.append(Node(
            package="ilrs_robots", executable=node.executable, name=node.name,
            namespace=node.namespace or robot, parameters=[*_params_files(node, out), params],
            remappings=list(node.remaps.items()), respawn=node.respawn,
            respawn_delay=1.0, output="screen"))
    return actions


def _actions(context: LaunchContext) -> list:
    error = gazebo_error(context.environment)
    if error:
        raise RuntimeError(error)
    world = LaunchConfiguration("world").perform(context)
    robots = [r.strip() for r in LaunchConfiguration("robots").perform(context).split(",")
              if r.strip()]
    if not robots:
        raise RuntimeError("robots:= names no robot (a comma-separated list, e.g. rover1)")
    run_dir = LaunchConfiguration("run_dir").perform(context)
    stack = LaunchConfiguration("stack").perform(context)
    out = _export_dir(world, robots, run_dir)
    meta = yaml.safe_load((out / gx.ROBOTS_FILE).read_text())
    resource_path = os.pathsep.join(p for p in (str(out), context.environment.get(
        "GZ_SIM_RESOURCE_PATH", "")) if p)
    gz_cmd = ["gz", "sim", "-r", "-v", LaunchConfiguration("gz_verbosity").perform(context)]
    if _flag(context, "headless"):
        gz_cmd.append("-s")
    gz = ExecuteProcess(cmd=[*gz_cmd, str(out / gx.WORLD_FILE)], name="gz_sim", output="screen",
                        additional_env={"GZ_SIM_RESOURCE_PATH": resource_path})
    # the project's Fast DDS profile and discovery range are defaults: a user's settings win
    actions: list = [SetEnvironmentVariable(k, v)
                     for k, v in dds_defaults(context.environment).items()]
    actions += [
        gz,
        RegisterEventHandler(OnProcessExit(target_action=gz, on_exit=[
            EmitEvent(event=Shutdown(reason="gz sim exited"))])),
        Node(package="ros_gz_bridge", executable="parameter_bridge", name="gz_bridge",
             parameters=[{"config_file": str(out / gx.BRIDGE_FILE), "use_sim_time": True}],
             output="screen"),
    ]
    for robot, spec in meta["robots"].items():
        actions += _robot_actions(robot, spec, out, meta["world"], world, stack, run_dir)
    return actions


def generate_launch_description() -> LaunchDescription:
    """Gazebo, the robots, the bridge and the autonomy nodes (see the module docstring)."""
    return LaunchDescription([
        DeclareLaunchArgument("world", default_value="south_pole",
                              description="World name (config/worlds) or path to a world "
                                          "YAML; exported to SDF unless it is the shipped one"),
        DeclareLaunchArgument("robots", default_value="rover1",
                              description="Comma-separated robot namespaces to spawn, each "
                                          "running the stack's gazebo-mode nodes"),
        DeclareLaunchArgument("stack", default_value="rover",
                              description="Stack (config/stacks) whose gazebo-mode nodes run "
                                          "per robot"),
        DeclareLaunchArgument("headless", default_value="false", choices=["true", "false"],
                              description="true: Gazebo server only (gz sim -s), no GUI"),
        DeclareLaunchArgument("gz_verbosity", default_value="2",
                              choices=["0", "1", "2", "3", "4"],
                              description="gz sim console verbosity (-v)"),
        DeclareLaunchArgument("run_dir", default_value="/tmp/ilrs",
                              description="Where a world other than the shipped export is "
                                          "exported (<run_dir>/gazebo/<world>)"),
        OpaqueFunction(function=_actions),
    ])
