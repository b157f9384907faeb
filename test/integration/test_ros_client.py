"""runner.ros_client.RosClient: the test and CLI client node spinning in a thread."""

from __future__ import annotations

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
