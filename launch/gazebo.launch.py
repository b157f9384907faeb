"""Gazebo Harmonic: `ros2 launch ilrs_robots gazebo.launch.py [world:=NAME] [headless:=true]`.

Starts `gz sim` with the world's SDF export (the package ships `config/gazebo/`, the export
of the default world; any other world or robot list is exported on the fly into
`<run_dir>/gazebo/<world>`), spawns each robot (`ros_gz_sim create`), runs
`ros_gz_bridge parameter_bridge` with the export's `bridge.yaml` in place of the drivers,
publishes the sensors' static frames (`tf2_ros static_transform_publisher`), and starts the
autonomy nodes of the rover stack's `gazebo` mode (config/stacks/rover.yaml) under each
robot's namespace with `use_sim_time`. Gazebo exiting ends the launch.

Needs Gazebo Harmonic (`gz sim`), `ros_gz_sim`, `ros_gz_bridge` and `tf2_ros`
(`apt install ros-$ROS_DISTRO-ros-gz`).
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
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ilrs_robots.resources import config_path
from ilrs_robots.runner.stacks import load_stack
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


def _actions(context: LaunchContext) -> list:
    world = LaunchConfiguration("world").perform(context)
    robots = [r.strip() for r in LaunchConfiguration("robots").perform(context).split(",")
              if r.strip()]
    run_dir = LaunchConfiguration("run_dir").perform(context)
    out = _export_dir(world, robots, run_dir)
    meta = yaml.safe_load((out / gx.ROBOTS_FILE).read_text())
    # the shipped Fast DDS profile is a default: a profile the user set wins
    dds = {"FASTDDS_DEFAULT_PROFILES_FILE": os.environ.get(
        "FASTDDS_DEFAULT_PROFILES_FILE", str(config_path("fastdds.xml")))}
    resource_path = os.pathsep.join(p for p in (str(out), os.environ.get(
        "GZ_SIM_RESOURCE_PATH", "")) if p)
    gz_cmd = ["gz", "sim", "-r", "-v", LaunchConfiguration("gz_verbosity").perform(context)]
    if _flag(context, "headless"):
        gz_cmd.append("-s")
    gz = ExecuteProcess(cmd=[*gz_cmd, str(out / gx.WORLD_FILE)], name="gz_sim", output="screen",
                        additional_env={"GZ_SIM_RESOURCE_PATH": resource_path})
    actions: list = [
        gz,
        RegisterEventHandler(OnProcessExit(target_action=gz, on_exit=[
            EmitEvent(event=Shutdown(reason="gz sim exited"))])),
        Node(package="ros_gz_bridge", executable="parameter_bridge", name="gz_bridge",
             parameters=[{"config_file": str(out / gx.BRIDGE_FILE), "use_sim_time": True}],
             additional_env=dds, output="screen"),
    ]
    for robot, spec in meta["robots"].items():
        x, y, z, roll, pitch, yaw = (str(v) for v in spec["pose"])
        actions.append(Node(
            package="ros_gz_sim", executable="create", name=f"spawn_{robot}", output="screen",
            arguments=["-world", meta["world"], "-name", robot,
                       "-file", str(out / spec["model"]), "-x", x, "-y", y, "-z", z,
                       "-R", roll, "-P", pitch, "-Y", yaw]))
        for frame, tf in spec["static_frames"].items():
            xyz = [str(v) for v in tf["xyz"]]
            q = [str(v) for v in tf["quaternion_xyzw"]]
            actions.append(Node(
                package="tf2_ros", executable="static_transform_publisher",
                name=f"{robot}_{frame}_tf", namespace=robot, additional_env=dds,
                parameters=[{"use_sim_time": True}],
                arguments=["--x", xyz[0], "--y", xyz[1], "--z", xyz[2], "--qx", q[0],
                           "--qy", q[1], "--qz", q[2], "--qw", q[3],
                           "--frame-id", tf["parent"], "--child-frame-id", frame]))
        stack = load_stack(LaunchConfiguration("stack").perform(context), "gazebo", run_dir)
        for node in stack.nodes:
            params = dict(node.parameters)
            params["use_sim_time"] = True
            if "world" in params:
                params["world"] = world
            ns = node.namespace
            if ns and ns.split("/")[0] != robot:  # the stack's robot -> this robot
                ns = "/".join([robot, *ns.split("/")[1:]])
            actions.append(Node(
                package="ilrs_robots", executable=node.executable, name=node.name,
                namespace=ns or robot, parameters=[*map(str, node.params_files), params],
                remappings=list(node.remaps.items()), respawn=node.respawn,
                respawn_delay=1.0, additional_env=dds, output="screen"))
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
