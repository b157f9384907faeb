"""A longer goal across the south_pole world's crater field, on its orbital prior map.

The navigator plans on the costmap of the noisy 2 m prior (as the terrain_mapper's first
costmap) and drives on ground truth; the truth is watched for tilt all along.
"""

from __future__ import annotations

import math

from nav_msgs.msg import Odometry
from test_navigator import SUCCEEDED, TOLERANCE, navigation_stack, result_of, send

from ilrs_robots.core.navigation_support import tilt_of
from ilrs_robots.runner.ros_client import Inbox

GOAL = (30.0, -12.0, 0.0)  # 30 m from the depot's rover start (2, 0), across open terrain


def test_crosses_30_m_of_the_crater_field_within_tolerance_and_tilt(tmp_path):
    with navigation_stack(tmp_path, "south_pole") as stack:
        start = stack.settle(timeout=120)
        assert math.hypot(GOAL[0] - start.x, GOAL[1] - start.y) > 25.0
        tilts: Inbox = Inbox()
        stack.ros.node.create_subscription(
            Odometry, "/rover1/sim/ground_truth", lambda m: tilts.put(tilt_of(
                (m.pose.pose.orientation.x, m.pose.pose.orientation.y,
                 m.pose.pose.orientation.z, m.pose.pose.orientation.w))), 50)
        _, feedback, future = send(stack, *GOAL)
        response = result_of(future, 600)
        assert response.status == SUCCEEDED, (response.result, stack.logs())
        end = stack.settle()
        assert math.hypot(end.x - GOAL[0], end.y - GOAL[1]) <= TOLERANCE + 0.1
        assert tilts.received > 100
        assert max(tilts.messages) < math.radians(20.0)  # the tilt limit was never reached
        assert max(f.distance_remaining for f in feedback.messages) > 25.0
