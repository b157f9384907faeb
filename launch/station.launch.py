"""The station: `ros2 launch ilrs_robots station.launch.py` (config/stacks/station.yaml).

Two rovers (rover1, rover2) and the construction robot (builder1), each a group under its own
namespace with its own devices and TF frame prefix (`rover2/base_link`, ...), so no topic and
no frame is shared. Arguments as rover.launch.py, without namespace and frame_prefix (the
station file gives each robot's).
"""

from ilrs_robots.runner.launch_support import stack_launch_description


def generate_launch_description():
    """Launch the `station` stack."""
    return stack_launch_description("station", default_mode="emulated", launch_file=__file__)
