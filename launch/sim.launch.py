"""One rover in the embedded simulator: `ros2 launch ilrs_robots sim.launch.py`.

The rover stack (config/stacks/rover.yaml) with `hardware:=sim` by default: MuJoCo physics,
the firmware emulators on ptys under `run_dir`, the unchanged driver nodes, `/clock` and
`use_sim_time` for every node. Same arguments as rover.launch.py.
"""

from ilrs_robots.runner.launch_support import stack_launch_description


def generate_launch_description():
    """Launch the `rover` stack in simulation."""
    return stack_launch_description("rover", default_mode="sim", launch_file=__file__)
