"""One rover: `ros2 launch ilrs_robots rover.launch.py hardware:=real|sim|emulated|gazebo`.

Arguments (`ros2 launch ilrs_robots rover.launch.py --show-args`): hardware, namespace,
frame_prefix, params_file, use_sim_time, use_respawn, log_level, run_dir. The nodes, their
parameter files and namespaces are those of config/stacks/rover.yaml, which the `ilrs` runner
reads too.
"""

from ilrs_robots.runner.launch_support import stack_launch_description


def generate_launch_description():
    """Launch the `rover` stack (config/stacks/rover.yaml)."""
    return stack_launch_description("rover", default_mode="real", launch_file=__file__)
