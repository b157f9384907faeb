"""The environment every ROS process of ours gets: defaults the user's own settings win over."""

from __future__ import annotations

from ilrs_robots.runner.environment import dds_defaults, ros_environment


def test_defaults_fill_what_the_user_left_unset_and_never_override() -> None:
    mine = dds_defaults({})
    assert mine["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    assert mine["OPENBLAS_NUM_THREADS"] == "1"  # one BLAS thread per node process
    assert mine["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("fastdds.xml")
    users = {"OPENBLAS_NUM_THREADS": "4", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    left = dds_defaults(users)
    assert "OPENBLAS_NUM_THREADS" not in left and "ROS_AUTOMATIC_DISCOVERY_RANGE" not in left
    env = ros_environment(domain_id=42, base=users)
    assert env["OPENBLAS_NUM_THREADS"] == "4" and env["ROS_DOMAIN_ID"] == "42"
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET"
