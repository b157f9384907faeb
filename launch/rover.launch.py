"""One rover: `ros2 launch ilrs_robots rover.launch.py hardware:=real|sim|emulated`."""

from ilrs_robots.runner.launch_support import stack_launch_description


def generate_launch_description():
    """Launch the `rover` stack (config/stacks/rover.yaml)."""
    return stack_launch_description("rover", default_mode="real")
