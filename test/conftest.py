"""Test-wide set-up: every test run gets its own ROS domain, loopback-only discovery and the
project's Fast DDS profile, before anything imports rclpy."""

from __future__ import annotations

import os

from ilrs_robots.runner.environment import ros_environment

DOMAIN_ID = int(os.environ.get("ILRS_TEST_DOMAIN_ID", 1 + os.getpid() % 100))
os.environ.update(ros_environment(domain_id=DOMAIN_ID))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
