"""The URDF generated from the rover's parameter file: its frames are the simulator's."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from transforms3d.quaternions import quat2mat

from ilrs_robots.resources import config_path
from ilrs_robots.sim.model import RoverSpec
from ilrs_robots.sim.robot_model import joints_of, prefixed, rover_urdf

PARAMS = yaml.safe_load(config_path("params/rover_base.yaml").read_text())
WHEELS = next(iter(PARAMS.values()))["ros__parameters"]["wheels"]


def _xyzw_to_mat(q: tuple[float, float, float, float]) -> np.ndarray:
    x, y, z, w = q
    return quat2mat([w, x, y, z])


def test_urdf_has_the_wheels_the_driver_names_and_every_sensor_frame():
    joints = {j.name: j for j in joints_of(rover_urdf(RoverSpec.from_params(PARAMS), WHEELS))}
    wheels = [joints[w] for w in WHEELS]
    assert all(j.kind == "continuous" and j.axis == (0.0, 1.0, 0.0) for j in wheels)
    assert {j.child for j in wheels} == {w.removesuffix("_joint") for w in WHEELS}
    children = {j.child for j in joints.values() if j.kind == "fixed"}
    assert {"imu_link", "nav_left_optical_frame", "nav_right_optical_frame",
            "mast_optical_frame", "hazcam_optical_frame"} <= children
    assert all(j.parent == "base_link" for j in joints.values())


def test_wheel_joint_turns_about_its_axle():
    joint = next(j for j in joints_of(rover_urdf(RoverSpec())) if j.kind == "continuous")
    rot = _xyzw_to_mat(joint.quaternion(np.pi / 2))
    assert np.allclose(rot @ [1, 0, 0], [0, 0, -1], atol=1e-9)  # +y rotation: x goes down


def test_frames_are_where_the_simulator_puts_them():
    from ilrs_robots.sim.physics import RoverPhysics
    from ilrs_robots.sim.simulator import optical_offsets

    spec = RoverSpec.from_params(PARAMS)
    joints = {j.child: j for j in joints_of(rover_urdf(spec, WHEELS))}
    physics = RoverPhysics("test_flat", spec, settle_time=0.2)
    try:
        sim = optical_offsets(physics)
    finally:
        physics.close()
    for cam in ("nav_left", "nav_right", "mast"):
        xyz, q = sim[cam]
        joint = joints[f"{cam}_optical_frame"]
        assert np.allclose(joint.xyz, xyz, atol=2e-3), (cam, joint.xyz, xyz)
        assert np.allclose(_xyzw_to_mat(joint.quaternion()), _xyzw_to_mat(tuple(q)),
                           atol=2e-3), cam
        # an optical frame looks along its +z: forward and down, never backwards
        forward = _xyzw_to_mat(joint.quaternion()) @ [0, 0, 1]
        assert forward[0] > 0.9 and forward[2] < 0
    assert np.allclose(joints["imu_link"].xyz, spec.imu_position)


def test_geometry_follows_the_parameter_file():
    wide = RoverSpec.from_params({**next(iter(PARAMS.values()))["ros__parameters"],
                                  "track_width": 2.0})
    joints = {j.name: j for j in joints_of(rover_urdf(wide, WHEELS))}
    assert joints[WHEELS[0]].xyz[1] == pytest.approx(1.0)
    assert joints[WHEELS[1]].xyz[1] == pytest.approx(-1.0)


@pytest.mark.parametrize("text,message", [
    ("<robot", "not valid XML"),
    ("<model/>", "not <robot>"),
    ('<robot><link name="a"/><joint name="j" type="fixed"><parent link="a"/>'
     '<child link="b"/></joint></robot>', "unknown link 'b'"),
])
def test_a_broken_urdf_is_refused_with_the_reason(text, message):
    with pytest.raises(ValueError, match=message):
        joints_of(text)


def test_wrong_number_of_wheel_joints_is_refused():
    with pytest.raises(ValueError, match="6 wheels"):
        rover_urdf(RoverSpec(), ["a_joint", "b_joint"])


def test_frame_prefix():
    assert prefixed("base_link", "rover2/") == "rover2/base_link"
    assert prefixed("base_link", "") == "base_link"
