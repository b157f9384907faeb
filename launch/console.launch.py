"""The ground console: `ros2 launch ilrs_robots console.launch.py` (config/stacks/console.yaml).

Serves the page, the API and /ws (http://127.0.0.1:8080/ by default; host, port, users and
robots through params_file:=FILE). hardware:=sim (the default) puts the emulated Earth-Moon
link (1.3 s each way) between the console and the robots; hardware:=real takes the link as it
is.
"""

from ilrs_robots.runner.launch_support import stack_launch_description


def generate_launch_description():
    """Launch the `console` stack."""
    return stack_launch_description("console", default_mode="sim", launch_file=__file__)
