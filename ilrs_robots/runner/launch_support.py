"""Turn a stack (config/stacks/*.yaml) into a ROS 2 launch description.

Used by launch/*.launch.py on machines with `ros2 launch`; the `ilrs` runner starts the very
same stack where it is not installed, so the two cannot drift. Written against the launch API
that Humble, Jazzy and Kilted share, following nav2_bringup's idioms:

- every launch argument is a `DeclareLaunchArgument` with a default and a description
  (`hardware`, `namespace`, `params_file`, `use_sim_time`, `use_respawn`, `log_level`,
  `frame_prefix`, `run_dir`);
- each robot of the stack is a `GroupAction` that starts with `PushRosNamespace(<robot>)` and
  `SetParameter(use_sim_time)` (true by default in the simulated modes, for every node);
- nodes get `respawn=use_respawn` (where the stack marks them `respawn: true`) and
  `respawn_delay`; a `required: true` process's exit shuts the launch down (`OnProcessExit`
  -> `Shutdown`), as the runner stops the stack;
- the Fast DDS profile and the discovery range are defaults: a user's
  `FASTDDS_DEFAULT_PROFILES_FILE` or `ROS_AUTOMATIC_DISCOVERY_RANGE` is left alone;
- `hardware:=gazebo` includes `gazebo.launch.py` from the same folder, and fails with a clear
  error where that file is missing rather than starting nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import yaml
from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    GroupAction,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
    Shutdown,
)
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace, SetParameter
from launch_ros.descriptions import ParameterFile

from ilrs_robots.runner.environment import dds_defaults
from ilrs_robots.runner.processes import executable_module
from ilrs_robots.runner.stacks import (
    MODES,
    SIM_TIME_MODES,
    NodeSpec,
    StackError,
    load_stack,
    stack_file,
)

RESPAWN_DELAY = 2.0  # s, as nav2_bringup
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
GAZEBO_LAUNCH = "gazebo.launch.py"


def _flag(context: LaunchContext, name: str) -> str:
    return LaunchConfiguration(name).perform(context).strip().lower()


def _node_action(spec: NodeSpec, relative_ns: str | None, params_file: str,
                 use_respawn: bool, log_level: str, use_sim_time: bool | None) -> object:
    """The launch action of one process of the stack."""
    if not spec.ros:
        return ExecuteProcess(
            cmd=[sys.executable, "-m", executable_module(spec.executable), *spec.args],
            name=f"{spec.robot}.{spec.name}" if spec.robot else spec.name, output="screen",
            respawn=spec.respawn and use_respawn, respawn_delay=RESPAWN_DELAY)
    values = dict(spec.parameters)
    if use_sim_time is not None:  # said on the command line: wins over the stack
        values["use_sim_time"] = use_sim_time
    parameters: list = [*map(str, spec.params_files), _parameter_file(spec.name, values)]
    if params_file:
        parameters.append(ParameterFile(params_file, allow_substs=True))
    return Node(
        package="ilrs_robots", executable=spec.executable, name=spec.name,
        namespace=relative_ns, parameters=parameters, remappings=list(spec.remaps.items()),
        respawn=spec.respawn and use_respawn, respawn_delay=RESPAWN_DELAY,
        arguments=["--ros-args", "--log-level", log_level], output="screen")


def _parameter_file(name: str, values: dict) -> str:
    """The stack's parameters of a node as a parameter file keyed `/**/<name>`.

    launch_ros would write a dict under the node's full name, and rclpy lets full-name keys
    win over wildcard ones whatever their order: the user's `params_file` (keyed `/**/<name>`
    like our parameter files) could then not override what the stack sets. As a file of the
    same form, the later file wins, as the launch argument promises.
    """
    with tempfile.NamedTemporaryFile("w", prefix=f"ilrs_{name}_", suffix=".yaml",
                                     delete=False) as f:
        yaml.safe_dump({f"/**/{name}": {"ros__parameters": values}}, f)
    return f.name


def _required(action: object, spec: NodeSpec) -> RegisterEventHandler:
    """Shut the whole launch down when a required process exits (OnProcessExit -> Shutdown).

    Not said again while the launch is already shutting down (Ctrl-C ends everything).
    """
    who = f"{spec.robot}/{spec.name}".strip("/")

    def on_exit(event: object, context: LaunchContext) -> list | None:
        if context.is_shutdown:
            return None
        code = getattr(event, "returncode", None)
        return [LogInfo(msg=f"{who} is required by the stack and exited (code {code}): "
                            f"shutting the launch down"),
                Shutdown(reason=f"required process {who} exited")]

    return RegisterEventHandler(OnProcessExit(target_action=action, on_exit=on_exit))


def stack_actions(context: LaunchContext, stack_name: str, mode: str | None = None,
                  launch_dir: str = "") -> list:
    """The actions of one stack for the launch arguments in `context` (an OpaqueFunction).

    Without `mode`, the `hardware` argument decides, and gazebo includes gazebo.launch.py
    from `launch_dir`; gazebo.launch.py itself may call this with `mode="gazebo"` for the
    stack's nodes that run beside Gazebo.
    """
    if mode is None:
        mode = _flag(context, "hardware")
        if mode == "gazebo":
            return _gazebo(context, launch_dir)
    run_dir = LaunchConfiguration("run_dir").perform(context)
    configs = context.launch_configurations
    namespace = configs.get("namespace", "").strip("/") or None
    frame_prefix = configs.get("frame_prefix") if "frame_prefix" in configs else None
    try:
        stack = load_stack(stack_name, mode, run_dir, namespace=namespace,
                           frame_prefix=frame_prefix)
    except StackError as exc:
        raise RuntimeError(f"stack {stack_name!r}, hardware:={mode}: {exc}") from None
    sim_time_arg = _flag(context, "use_sim_time")
    if sim_time_arg not in ("auto", "true", "false"):
        raise RuntimeError(f"use_sim_time must be auto, true or false, got {sim_time_arg!r}")
    explicit = None if sim_time_arg == "auto" else sim_time_arg == "true"
    use_sim_time = (mode in SIM_TIME_MODES) if explicit is None else explicit
    use_respawn = _flag(context, "use_respawn") in ("true", "1", "yes")
    log_level = _flag(context, "log_level")
    if log_level not in LOG_LEVELS:
        raise RuntimeError(f"log_level must be one of {LOG_LEVELS}, got {log_level!r}")
    params_file = LaunchConfiguration("params_file").perform(context)
    if params_file and not Path(params_file).is_file():
        raise RuntimeError(f"params_file {params_file!r} does not exist")
    actions: list = [SetEnvironmentVariable(k, v)
                     for k, v in dds_defaults(context.environment).items()]
    robots: dict[str, list[NodeSpec]] = {}
    for spec in stack.nodes:
        robots.setdefault(spec.robot if spec.namespace else "", []).append(spec)
    for robot, specs in robots.items():
        group: list = [PushRosNamespace(robot)] if robot else []
        group.append(SetParameter(name="use_sim_time", value=use_sim_time))
        for spec in specs:
            relative = spec.namespace[len(robot):].strip("/") if robot else spec.namespace
            action = _node_action(spec, relative or None, params_file, use_respawn,
                                  log_level, explicit)
            group.append(action)
            if spec.required:
                group.append(_required(action, spec))
        actions.append(GroupAction(group, scoped=True))
    return actions


def _gazebo(context: LaunchContext, launch_dir: str) -> list:
    """hardware:=gazebo: include gazebo.launch.py (beside this launch file), or fail clearly."""
    path = Path(launch_dir) / GAZEBO_LAUNCH
    if not path.is_file():
        raise RuntimeError(f"hardware:=gazebo needs {GAZEBO_LAUNCH} beside this launch file "
                           f"({path} does not exist): nothing was started")
    configs = context.launch_configurations
    forwarded = {"run_dir": configs.get("run_dir", "/tmp/ilrs")}
    if configs.get("namespace"):  # gazebo.launch.py spawns the robots it is given
        forwarded["robots"] = configs["namespace"].strip("/")
    return [IncludeLaunchDescription(PythonLaunchDescriptionSource(str(path)),
                                     launch_arguments=list(forwarded.items()))]


def launch_arguments(default_mode: str, default_namespace: str | None) -> list:
    """The DeclareLaunchArgument actions of a stack's launch file."""
    args = [
        DeclareLaunchArgument(
            "hardware", default_value=default_mode, choices=list(MODES),
            description="real: the robot's serial ports and cameras; sim: the embedded "
                        "simulator (firmware emulators on ptys, MuJoCo physics); emulated: "
                        "the firmware emulators alone; gazebo: Gazebo Harmonic and "
                        "ros_gz_bridge (gazebo.launch.py)"),
        DeclareLaunchArgument(
            "params_file", default_value="",
            description="A ROS parameter file applied to every node after the stack's own "
                        "(keys '/**' or a node name; substitutions allowed); empty: none"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="auto", choices=["auto", "true", "false"],
            description="Use /clock for every node; auto: true in sim and gazebo"),
        DeclareLaunchArgument(
            "use_respawn", default_value="true", choices=["true", "false"],
            description="Respawn the nodes the stack marks 'respawn: true' when they die"),
        DeclareLaunchArgument(
            "log_level", default_value="info", choices=list(LOG_LEVELS),
            description="Log level of every node"),
        DeclareLaunchArgument(
            "run_dir", default_value="/tmp/ilrs",
            description="Where simulated and emulated devices publish their ports"),
    ]
    if default_namespace is not None:
        args[1:1] = [
            DeclareLaunchArgument(
                "namespace", default_value=default_namespace,
                description="Top-level namespace of the robot: every node, topic, port"),
            DeclareLaunchArgument(
                "frame_prefix", default_value="",
                description="Put before the robot's TF frames, e.g. 'rover2/' when two "
                            "robots share /tf; empty for one robot"),
        ]
    return args


def stack_launch_description(stack_name: str, default_mode: str = "real",
                             launch_file: str | None = None) -> LaunchDescription:
    """The launch description of one stack (`launch_file`: the calling launch file)."""
    data = yaml.safe_load(stack_file(stack_name).read_text()) or {}
    single = "robots" not in data
    default_ns = str(data.get("namespace", "")) if single else None
    # the folder the launch file was found in (an install's share/, not where a link points)
    launch_dir = str(Path(launch_file).absolute().parent) if launch_file else os.getcwd()
    return LaunchDescription([
        *launch_arguments(default_mode, default_ns),
        OpaqueFunction(function=stack_actions, args=[stack_name],
                       kwargs={"launch_dir": launch_dir}),
    ])
