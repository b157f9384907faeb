"""A ROS service call that survives a lost reply.

Under load a request can reach a server that has not yet matched the caller's reply reader
(DDS discovery still under way): the server answers into the void and the caller waits
forever. ``call`` sends the request again every ``retry`` s until a reply or the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rclpy.client import Client
from rclpy.task import Future


def poll(future: Future, seconds: float) -> None:
    """Wait for ``future`` while another thread spins its node."""
    deadline = time.monotonic() + seconds
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.02)


def call(client: Client, request: Any, timeout: float, retry: float = 10.0,
         wait: Callable[[Future, float], None] = poll) -> Any | None:
    """The response to ``request``, or None when the service does not appear or answer
    within ``timeout`` s. ``wait(future, seconds)`` waits for one attempt: :func:`poll`
    where the node spins elsewhere, ``rclpy.spin_until_future_complete`` (bound to the
    node) before it spins."""
    deadline = time.monotonic() + timeout
    if not client.wait_for_service(timeout_sec=timeout):
        return None
    while (left := deadline - time.monotonic()) > 0:
        future = client.call_async(request)
        wait(future, min(retry, left))
        if future.done():
            return future.result()
        client.remove_pending_request(future)
    return None
