"""The environment every ROS process of ours gets."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from ilrs_robots.resources import config_path


def ros_environment(domain_id: int | None = None,
                    base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for one of our ROS processes.

    Fast DDS with the project's profile (large shared-memory segment, loopback UDP, quick
    discovery), discovery kept on this machine unless the caller's environment already says
    otherwise, and `domain_id` when given (tests give each run its own).
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(config_path("fastdds.xml")))
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix not in prefixes:
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *prefixes])
    env.setdefault("MUJOCO_GL", "osmesa")
    env.setdefault("PYOPENGL_PLATFORM", "osmesa")
    env["PYTHONUNBUFFERED"] = "1"
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env
