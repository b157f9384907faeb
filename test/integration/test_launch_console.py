"""console.launch.py under the real launch libraries (Humble and Jazzy branches), as
`ros2 launch ilrs_robots console.launch.py params_file:=...` runs it (see launch_harness.py):
the ground console comes up with the stack's parameters (the lunar link in sim), serves its
API, and a terminal's Ctrl-C ends it cleanly."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from console_support import USERS, request, write_users
from launch_harness import Launch, distros, parameter_values

from ilrs_robots.runner.ros_client import wait_until

DISTROS = [pytest.param(d, marks=pytest.mark.skip(reason=why) if why else ())
           for d, why in distros()]
DOMAIN = int(os.environ["ROS_DOMAIN_ID"])


@pytest.mark.timeout(180)
@pytest.mark.parametrize("distro", DISTROS)
def test_console_launch_serves_with_the_stacks_link_and_stops_cleanly(distro, ros,
                                                                      tmp_path: Path):
    users = write_users(tmp_path)
    override = tmp_path / "console.yaml"
    override.write_text("ground_console:\n  ros__parameters:\n"
                        f"    users_file: {users}\n    port: 0\n"
                        f"    audit_log: {tmp_path / 'audit.jsonl'}\n")
    launch = Launch(distro, tmp_path, "console.launch.py", [f"params_file:={override}"],
                    DOMAIN, {"ROS_LOG_DIR": str(tmp_path / "ros_log")})
    try:
        found = wait_until(lambda: re.search(r"ground console on (http://[\d.]+:\d+)/",
                                             launch.output()), 60)
        assert found, launch.output()[-4000:]
        base = found.group(1)
        got = parameter_values(ros, "/ground_console", ["link_delay", "robots", "host"])
        assert got == {"link_delay": 1.3, "robots": ["rover1", "builder1:builder"],
                       "host": "127.0.0.1"}, got
        status, body = request(f"{base}/api/login", "POST",
                               {"user": "ops", "password": USERS["ops"][1]})
        assert status == 200 and body["role"] == "operator", body
        launch.ctrl_c()
        code = launch.wait(60)
        output = launch.output()
        assert code == 0, output[-6000:]
        assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-6000:]
        assert re.search(r"\[ground_console-\d+\]: process has finished cleanly", output), \
            output[-6000:]
    finally:
        launch.stop()
