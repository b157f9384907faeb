"""runner.ros_client.RosClient: the test and CLI client node spinning in a thread."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from std_msgs.msg import String

from ilrs_robots.runner.ros_client import RosClient, wait_until


def test_a_callback_that_raises_does_not_end_the_spin() -> None:
    """rclpy's spin re-raises a callback's exception; the client reports it and goes on (a
    client whose spin thread ended on one heard nothing more, and an action's result never
    came)."""
    got: list[str] = []

    def on_message(msg: String) -> None:
        got.append(msg.data)
        if msg.data == "boom":
            raise RuntimeError("boom")

    with RosClient("spin_test") as client:
        client.node.create_subscription(String, "spin_test", on_message, 10)
        pub = client.node.create_publisher(String, "spin_test", 10)
        assert wait_until(lambda: pub.get_subscription_count() > 0, 10)
        pub.publish(String(data="boom"))
        assert wait_until(lambda: "boom" in got, 10)
        pub.publish(String(data="after"))
        assert wait_until(lambda: "after" in got, 10), got


HUNG_TEARDOWN = """
import ctypes
from ilrs_robots.runner.ros_client import RosClient
client = RosClient("hung_teardown")
# what Fast DDS's discovery deadlock does to destroy_node: a C call that blocks holding the GIL
# (a PyDLL call keeps the GIL; libc's sleep stands for the wait that never ends)
client.node.destroy_node = lambda: ctypes.PyDLL("libc.so.6").sleep(120)
client.close(timeout=1.0)
print("close returned", flush=True)
"""


def test_a_teardown_that_blocks_holding_the_gil_ends_the_process_with_its_stacks() -> None:
    """No Python timeout can run while a C call holds the GIL (the close's own abandon-after
    did not: a stress run's test worker hung for good in RosClient.close); faulthandler's
    watchdog thread does, printing every stack and exiting 1."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", HUNG_TEARDOWN], capture_output=True,
                          text=True, timeout=90, env=dict(os.environ))
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "close returned" not in proc.stdout
    assert "ros_client.py" in proc.stderr and "Thread" in proc.stderr, proc.stderr
    assert time.monotonic() - started < 80, "ended by the test's timeout, not the watchdog"
