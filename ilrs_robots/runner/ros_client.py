"""A small rclpy client for the runner's missions, benchmarks and tests.

It owns its rclpy context and spins in a background thread, so a script can publish, wait
for messages and call services while doing its own work.
"""

from __future__ import annotations

import faulthandler
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile

from ilrs_robots.nodes.qos import LATCHED  # noqa: F401 - re-exported for scripts and tests

M = TypeVar("M")


def wait_until(condition: Callable[[], Any], timeout: float, period: float = 0.02) -> Any:
    """Poll `condition` until it returns something truthy; that value, or None at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(period)


class Inbox(Generic[M]):
    """The messages one subscription received, with their arrival times."""

    def __init__(self, keep: int = 10000) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[float, M]] = []
        self._keep = keep
        self._received = 0

    def put(self, msg: M) -> None:
        """Store a message (called by the subscription)."""
        with self._lock:
            self._received += 1
            self._items.append((time.monotonic(), msg))
            if len(self._items) > self._keep:
                del self._items[: len(self._items) - self._keep]

    @property
    def messages(self) -> list[M]:
        """Every message kept, oldest first."""
        with self._lock:
            return [m for _, m in self._items]

    def timed(self) -> list[tuple[float, M]]:
        """(arrival monotonic time, message) pairs."""
        with self._lock:
            return list(self._items)

    def last(self) -> M | None:
        """The newest message, if any."""
        with self._lock:
            return self._items[-1][1] if self._items else None

    @property
    def received(self) -> int:
        """How many messages arrived in all (kept or not, cleared or not)."""
        with self._lock:
            return self._received

    def next_after(self, count: int, timeout: float = 10.0) -> tuple[M, int] | None:
        """The newest message once more than `count` arrived in all, with the new count;
        None at timeout. Pass the count back in to wait for the next fresh message."""
        def fresh() -> tuple[M, int] | None:
            with self._lock:
                if self._received > count and self._items:
                    return self._items[-1][1], self._received
            return None
        return wait_until(fresh, timeout, period=0.005)

    def clear(self) -> None:
        """Forget what arrived so far."""
        with self._lock:
            self._items.clear()

    def wait_for(self, predicate: Callable[[M], bool] = lambda m: True,
                 timeout: float = 10.0) -> M | None:
        """The first message (old or new) satisfying `predicate`, or None at timeout."""
        def find() -> M | None:
            with self._lock:
                for _, m in self._items:
                    if predicate(m):
                        return m
            return None
        return wait_until(find, timeout)


class RosClient:
    """A node of our own, spinning in a thread. Use as a context manager."""

    def __init__(self, name: str = "ilrs_client", namespace: str = "") -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        """Spin until closed. A callback's exception is printed and the spin goes on: rclpy's
        spin re-raises it, and a client whose thread had ended on one (an entity destroyed
        while its message was taken) silently heard nothing more."""
        while not self._closing.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except Exception as exc:  # noqa: BLE001 - see above; shutdown races end the spin
                if self._closing.is_set() or not self.context.ok():
                    return
                print(f"[{self.node.get_name()}] a callback failed: {exc!r}", file=sys.stderr,
                      flush=True)

    def subscribe(self, msg_type: type[M], topic: str,
                  qos: QoSProfile | int = 50) -> Inbox[M]:
        """Subscribe and return the inbox that fills up."""
        inbox: Inbox[M] = Inbox()
        self.node.create_subscription(msg_type, topic, inbox.put, qos)
        return inbox

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile | int = 10,
                  wait_for_subscribers: float = 0.0) -> Any:
        """Create a publisher; optionally wait until something subscribes."""
        pub = self.node.create_publisher(msg_type, topic, qos)
        if wait_for_subscribers > 0:
            wait_until(lambda: pub.get_subscription_count() > 0, wait_for_subscribers)
        return pub

    def graph_report(self, topic: str) -> str:
        """What this client sees of `topic` and of the graph, for an error message: whether
        it still spins, the publishers of `topic` by node, and the nodes it discovered."""
        try:
            pubs = [f"{i.node_namespace.rstrip('/')}/{i.node_name}"
                    for i in self.node.get_publishers_info_by_topic(topic)]
            nodes = sorted(f"{ns.rstrip('/')}/{n}"
                           for n, ns in self.node.get_node_names_and_namespaces())
        except Exception as exc:  # noqa: BLE001 - a report must not raise
            return f"no graph information: {exc!r}"
        return (f"client spinning: {self._thread.is_alive()}; publishers of {topic}: "
                f"{pubs or 'none'}; nodes discovered: {nodes or 'none'}")

    def close(self, timeout: float = 10.0) -> None:
        """Stop spinning and shut the context down (in the order rclpy needs).

        rclpy's destroy_node can wait forever for a handle it believes in use (seen once in
        a loaded test run); the teardown runs in a daemon thread and is abandoned, with a
        warning, after `timeout` s, so a caller never hangs on it. Fast DDS 3.2 can also
        deadlock its own discovery threads (eProsima/Fast-DDS#6502: the event thread waits
        for the PDP mutex that a receive thread holds while it waits for the event thread);
        the destroy then blocks in C++ holding the GIL, and no Python code runs again in this
        process. Only a watchdog outside the interpreter can end that: faulthandler's, which
        prints every thread's stack and exits with status 1 after `timeout` + 10 s.
        """
        self._closing.set()
        self.executor.shutdown(timeout_sec=timeout / 2)
        self._thread.join(timeout=timeout / 2)

        def teardown() -> None:
            self.node.destroy_node()
            rclpy.try_shutdown(context=self.context)

        faulthandler.dump_traceback_later(timeout + 10.0, exit=True)
        try:
            worker = threading.Thread(target=teardown, name="ros_client_close", daemon=True)
            worker.start()
            worker.join(timeout)
        finally:
            faulthandler.cancel_dump_traceback_later()
        if worker.is_alive():
            warnings.warn(f"ROS client {self.node.get_name()!r}: teardown did not finish "
                          f"within {timeout:g} s; abandoned", RuntimeWarning, stacklevel=2)

    def __enter__(self) -> RosClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
