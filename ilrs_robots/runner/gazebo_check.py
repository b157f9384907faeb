"""What gazebo.launch.py needs beyond this package, checked before anything is started.

Without it, `ros2 launch` would start the autonomy nodes and then fail process by process
("executable 'gz' not found on the PATH", "package 'ros_gz_bridge' not found"). The check
looks where launch would: `gz` on the PATH, the ROS packages in the ament index of the
prefixes on AMENT_PREFIX_PATH.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

ROS_PACKAGES = ("ros_gz_sim", "ros_gz_bridge", "tf2_ros")
"""`ros_gz_sim create`, `ros_gz_bridge parameter_bridge`, `static_transform_publisher`."""


def has_ros_package(name: str, env: Mapping[str, str]) -> bool:
    """True if a prefix of AMENT_PREFIX_PATH in `env` registers package `name`."""
    return any((Path(p) / "share" / "ament_index" / "resource_index" / "packages" / name)
               .is_file() for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p)


def missing_gazebo_tools(env: Mapping[str, str]) -> list[str]:
    """What is missing of Gazebo (`gz`) and the ROS packages gazebo.launch.py runs."""
    missing = [] if shutil.which("gz", path=env.get("PATH", "")) else ["`gz` (Gazebo)"]
    return missing + [p for p in ROS_PACKAGES if not has_ros_package(p, env)]


def install_hint(env: Mapping[str, str]) -> str:
    """How to install them on this ROS distribution."""
    distro = env.get("ROS_DISTRO") or "$ROS_DISTRO"
    if distro == "humble":  # Humble's own ros-gz is Fortress; Harmonic comes from OSRF
        return ("`sudo apt install ros-humble-ros-gzharmonic` (Gazebo Harmonic for Humble, "
                "from packages.osrfoundation.org)")
    return f"`sudo apt install ros-{distro}-ros-gz` (Gazebo and ros_gz for ROS 2 {distro})"


def gazebo_error(env: Mapping[str, str]) -> str | None:
    """One line naming what is missing and the install command, or None if nothing is."""
    missing = missing_gazebo_tools(env)
    if not missing:
        return None
    return (f"gazebo.launch.py needs {', '.join(missing)}, not found (PATH, "
            f"AMENT_PREFIX_PATH): install with {install_hint(env)} and source "
            f"/opt/ros/<distro>/setup.bash; nothing was started")
