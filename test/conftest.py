"""Test-wide set-up: every test run gets its own ROS domain, loopback-only discovery and the
project's Fast DDS profile, before anything imports rclpy.

Under pytest-xdist (scripts/test runs the suite on one worker per core) each worker is a
process of its own, with a domain of its own: worker N (up to 8) of a run takes the run's base
+ 12 N, so neither its domain nor the offsets tests add for their private stacks (+100, +101,
+110) meet another worker's.
"""

from __future__ import annotations

import os

from hypothesis import settings

from ilrs_robots.runner.environment import ros_environment

# property tests assert behaviour, never timings: hypothesis's default 200 ms deadline per
# example failed a G-code test on a loaded machine (252 ms for one example)
settings.register_profile("ilrs", deadline=None)
settings.load_profile("ilrs")


def _domain_id() -> int:
    """This test process's ROS_DOMAIN_ID (ILRS_TEST_DOMAIN_ID wins)."""
    if "ILRS_TEST_DOMAIN_ID" in os.environ:
        return int(os.environ["ILRS_TEST_DOMAIN_ID"])
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    if not worker.startswith("gw"):
        return 1 + os.getpid() % 100
    # the workers' parent is the pytest run: one base per run, one lane per worker
    return 1 + os.getppid() % 12 + 12 * (int(worker[2:]) % 8)


DOMAIN_ID = _domain_id()
os.environ.update(ros_environment(domain_id=DOMAIN_ID))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
