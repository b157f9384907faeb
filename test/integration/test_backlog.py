"""nodes/backlog.take_queued over real DDS: a callback takes the rest of its queue, so a fast
stream keeps pace with a slow one on a node that wakes up seldom."""

from __future__ import annotations

import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Int32

from ilrs_robots.nodes.backlog import take_queued
from ilrs_robots.runner.ros_client import wait_until

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def test_a_callback_takes_its_queue_oldest_first_up_to_its_limit(ros) -> None:
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("backlog_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    batches: list[list[int]] = []
    sub = None

    def on_message(msg: Int32) -> None:
        batches.append([msg.data, *(m.data for m in take_queued(sub, 5))])

    try:
        sub = node.create_subscription(Int32, "backlog_test", on_message, RELIABLE)
        pub = ros.node.create_publisher(Int32, "backlog_test", RELIABLE)
        assert wait_until(lambda: pub.get_subscription_count() > 0, 20.0)
        time.sleep(0.5)  # reliable delivery of what follows is matched both ways
        for i in range(30):
            pub.publish(Int32(data=i))
        time.sleep(1.0)  # delivered into the node's queue; nothing spun yet
        assert wait_until(lambda: executor.spin_once(timeout_sec=0.1) is None and batches,
                          20.0)
        assert batches[0][0] == 0
        assert batches[0] == list(range(len(batches[0])))  # in order, none lost
        deadline = time.monotonic() + 20.0
        while sum(map(len, batches)) < 30 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        taken = [i for batch in batches for i in batch]
        assert taken == list(range(30))
        assert max(map(len, batches)) == 6  # the limit holds: 1 + 5
        assert len(batches) < 15  # one message per callback would be 30 callbacks
        assert take_queued(sub, 5) == []  # an empty queue gives nothing
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
