"""The rover's simulation stack cut down for a test: the nodes a test needs, on the
simulator's ground truth rather than the localization, with no cameras unless asked for.
Shared by the navigator, motion_commands and console tests."""

from __future__ import annotations

import os
from pathlib import Path

from ilrs_robots.runner.processes import Supervisor
from ilrs_robots.runner.stacks import NodeSpec, load_stack

ON_GROUND_TRUTH = ("navigator", "motion_commands")  # nodes whose pose topic is a parameter


def rover_nodes(run_dir: Path, keep: tuple[str, ...], world: str = "test_flat",
                **sim_parameters: object) -> list[NodeSpec]:
    """The rover sim stack's nodes whose executables are ``keep`` (in the stack's order,
    which ``keep`` must follow): the simulator on ``world`` at 2x real time without cameras
    (``sim_parameters`` override), the navigator and motion_commands on sim/ground_truth."""
    spec = load_stack("rover", "sim", str(run_dir))
    nodes = [n for n in spec.nodes if n.executable in keep]
    assert [n.executable for n in nodes] == list(keep)
    for n in nodes:
        if n.executable == "sim":
            n.parameters.update({"world": world, "rate": 2.0, "stereo_rate": 0.0,
                                 "mast_rate": 0.0, **sim_parameters})
        if n.executable in ON_GROUND_TRUTH:
            n.parameters["odom_topic"] = "sim/ground_truth"
    return nodes


def start(nodes: list[NodeSpec], run_dir: Path) -> Supervisor:
    """Start ``nodes`` under a supervisor logging to ``run_dir``/logs."""
    sup = Supervisor(nodes, dict(os.environ), run_dir / "logs", say=lambda _: None)
    sup.start()
    return sup
