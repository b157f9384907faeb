"""Turn a stack (config/stacks/*.yaml) into a ROS 2 launch description.

Used by launch/*.launch.py on machines with `ros2 launch`; the `ilrs` runner starts the very
same stack where it is not installed. Launch arguments: `hardware` (real, sim, emulated),
`run_dir` (where emulated devices publish their ports).
"""

from __future__ import annotations

import sys

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ilrs_robots.resources import config_path
from ilrs_robots.runner.processes import executable_module
from ilrs_robots.runner.stacks import MODES, load_stack


def _actions(context: LaunchContext, stack_name: str) -> list:
    mode = LaunchConfiguration("hardware").perform(context)
    run_dir = LaunchConfiguration("run_dir").perform(context)
    stack = load_stack(stack_name, mode, run_dir)
    env = {"FASTDDS_DEFAULT_PROFILES_FILE": str(config_path("fastdds.xml"))}
    actions = []
    for spec in stack.nodes:
        if spec.ros:
            actions.append(Node(
                package="ilrs_robots", executable=spec.executable, name=spec.name,
                namespace=spec.namespace or None,
                parameters=[*map(str, spec.params_files), spec.parameters],
                remappings=list(spec.remaps.items()), respawn=spec.respawn,
                respawn_delay=1.0, additional_env=env, output="screen"))
        else:
            actions.append(ExecuteProcess(
                cmd=[sys.executable, "-m", executable_module(spec.executable), *spec.args],
                name=spec.name, additional_env=env, output="screen"))
    return actions


def stack_launch_description(stack_name: str, default_mode: str = "real") -> LaunchDescription:
    """The launch description of one stack."""
    return LaunchDescription([
        DeclareLaunchArgument("hardware", default_value=default_mode, choices=list(MODES),
                              description="real: serial ports; sim: embedded simulator; "
                                          "emulated: firmware emulators only"),
        DeclareLaunchArgument("run_dir", default_value="/tmp/ilrs",
                              description="where emulated devices publish their ports"),
        OpaqueFunction(function=_actions, args=[stack_name]),
    ])
