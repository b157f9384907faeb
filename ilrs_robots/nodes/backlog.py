"""Taking what waits in a subscription's queue in one callback.

rclpy's executors take one message per ready subscription per wake-up. On a node that the
machine starves, a 100 Hz stream then falls behind a 20 Hz one by the difference of their
rates: the IMU, taken one sample per wake-up beside the wheels' odometry, was seen a second
behind it (the filter then integrates a turn at a stale rate, 2 deg off in 10 m). A callback
that takes the rest of its queue keeps its stream in time order with the others.
"""

from __future__ import annotations

from typing import Any

from rclpy.subscription import Subscription


def take_queued(subscription: Subscription, limit: int) -> list[Any]:
    """Up to ``limit`` messages waiting in ``subscription``'s queue, oldest first.

    Call it from the executor's thread (a callback of the node), as the executor itself
    takes messages."""
    taken: list[Any] = []
    while len(taken) < limit:
        with subscription.handle:
            msg_info = subscription.handle.take_message(subscription.msg_type,
                                                        subscription.raw)
        if msg_info is None:
            break
        taken.append(msg_info[0])
    return taken
