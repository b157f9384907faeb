"""nodes/service_call.call over real DDS: a reply that does not come is asked for again."""

from __future__ import annotations

import time

from std_srvs.srv import Trigger

from ilrs_robots.nodes.service_call import call


def test_an_unanswered_request_is_sent_again_and_the_reply_returned(ros) -> None:
    seen: list[float] = []

    def answer(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            time.sleep(1.5)  # the first reply comes after the caller gave up on it
        response.success, response.message = True, f"request {len(seen)}"
        return response

    ros.node.create_service(Trigger, "service_call_test", answer)
    client = ros.node.create_client(Trigger, "service_call_test")
    try:
        response = call(client, Trigger.Request(), timeout=20.0, retry=0.5)
        assert response is not None and response.success
        assert len(seen) >= 2  # asked again
        assert response.message != "request 1"  # the reply given up on is not taken
    finally:
        ros.node.destroy_client(client)


def test_no_service_gives_none_after_the_timeout(ros) -> None:
    client = ros.node.create_client(Trigger, "service_call_nobody")
    try:
        started = time.monotonic()
        assert call(client, Trigger.Request(), timeout=1.0) is None
        assert time.monotonic() - started < 10.0
    finally:
        ros.node.destroy_client(client)
