"""The environment every ROS process of ours gets."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from ilrs_robots.resources import config_path


def dds_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """The DDS and process settings of ours that `env` does not set already: defaults,
    never overrides.

    Fast DDS with the project's profile and discovery on this machine, unless the user chose
    a profile or a discovery range (a rover talking to a ground station does). OpenBLAS on
    one thread per process: every node is a process of its own, and on a busy 2-core
    computer OpenBLAS's spinning worker threads made a dose map 5 to 8 times slower while
    taking the cores from the control loops. Shared by the `ilrs` runner and the launch
    files.
    """
    defaults = {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
                "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                "FASTDDS_DEFAULT_PROFILES_FILE": str(config_path("fastdds.xml")),
                "OPENBLAS_NUM_THREADS": "1"}
    return {k: v for k, v in defaults.items() if not env.get(k)}


def ros_environment(domain_id: int | None = None,
                    base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for one of our ROS processes.

    Fast DDS with the project's profile (large shared-memory segment, loopback UDP, quick
    discovery), discovery kept on this machine unless the caller's environment already says
    otherwise, and `domain_id` when given (tests give each run its own).
    """
    env = dict(os.environ if base is None else base)
    env.update(dds_defaults(env))
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix not in prefixes:
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *prefixes])
    env.setdefault("MUJOCO_GL", "osmesa")
    env.setdefault("PYOPENGL_PLATFORM", "osmesa")
    env["PYTHONUNBUFFERED"] = "1"
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env
