"""Stack files: modes, substitutions, validation with clear errors."""

import pytest

from ilrs_robots.runner.processes import ros_arguments
from ilrs_robots.runner.stacks import StackError, load_stack


def test_rover_stack_modes():
    real = load_stack("rover", "real", "/run/x")
    assert [n.name for n in real.nodes][:5] == ["base_driver", "robot_description_publisher",
                                                "vc0706_camera", "mast_camera", "nav_stereo"]
    assert real.nodes[0].parameters["port"] == "/dev/ttyACM0"
    emulated = load_stack("rover", "emulated", "/run/x")
    assert [n.executable for n in emulated.nodes] == [
        "roboclaw_emulator", "base_driver", "robot_description_publisher", "vc0706_emulator",
        "vc0706_camera", "gmc_emulator", "radiation_sensor"]
    gmc = emulated.nodes[-2]
    assert gmc.args[:2] == ["--link", "/run/x/rover1/gmc"] and not gmc.ros
    assert emulated.nodes[-1].parameters["port"] == "/run/x/rover1/gmc"
    assert emulated.nodes[0].args == ["--link", "/run/x/rover1/roboclaw", "--baud", "115200"]
    assert emulated.nodes[1].parameters["port"] == "/run/x/rover1/roboclaw"
    assert all(f.exists() for n in emulated.nodes for f in n.params_files)


@pytest.mark.parametrize("text,message", [
    ("nodes: 3", "needs a 'nodes' list"),
    ("nodes: [{name: x}]", "needs an 'executable'"),
    ("nodes: [{executable: a, colour: red}]", "unknown field(s) ['colour']"),
    ("nodes: [{executable: a, args: ['${nowhere}']}]", "unknown variable ${nowhere}"),
    ("nodes: [{executable: a, params: [params/missing.yaml]}]", "does not exist"),
    ("nodes: [: :", "not valid YAML"),
])
def test_bad_stack_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(StackError) as err:
        load_stack(str(path), "sim")
    assert message in str(err.value) and str(path) in str(err.value)


def test_ros_arguments():
    args = ros_arguments("drv", "rover1", {"port": "/dev/x", "addresses": [128, 129],
                                           "rate": 2.5, "on": True}, remaps={"a": "b"})
    assert args == ["--ros-args", "-r", "__node:=drv", "-r", "__ns:=/rover1",
                    "-p", "port:=/dev/x", "-p", "addresses:=[128, 129]", "-p", "rate:=2.5",
                    "-p", "on:=true", "-r", "a:=b"]


def test_a_stack_moves_to_another_namespace_with_its_ports_and_frames():
    rover2 = load_stack("rover", "emulated", "/run/x", namespace="rover2", frame_prefix="rover2/")
    by_name = {n.name: n for n in rover2.nodes}
    assert {n.robot for n in rover2.nodes} == {"rover2"}
    assert by_name["roboclaw_emulator"].args[:2] == ["--link", "/run/x/rover2/roboclaw"]
    assert by_name["base_driver"].parameters["port"] == "/run/x/rover2/roboclaw"
    assert by_name["base_driver"].parameters["odom_frame"] == "rover2/odom"
    assert by_name["vc0706_camera"].namespace == "rover2/hazcam"
    assert by_name["vc0706_camera"].parameters["frame_id"] == "rover2/hazcam_optical_frame"
    assert not any("rover1" in str(v) for n in rover2.nodes
                   for v in (n.namespace, n.args, n.parameters))


def test_every_ros_node_gets_sim_time_in_simulation():
    sim = load_stack("rover", "sim", "/run/x")
    assert all(n.parameters.get("use_sim_time") is True for n in sim.nodes if n.ros)
    real = load_stack("rover", "real", "/run/x")
    assert not any(n.parameters.get("use_sim_time") for n in real.nodes)


def test_station_robots_share_nothing():
    station = load_stack("station", "emulated", "/run/x")
    keys = [f"{n.namespace}/{n.name}" for n in station.nodes]
    assert len(keys) == len(set(keys))
    assert {n.robot for n in station.nodes} == {"rover1", "rover2", "builder1"}
    links = [a for n in station.nodes for a in n.args if a.startswith("/run/x/")]
    assert len(links) == len(set(links)) >= 5
    with pytest.raises(StackError, match="emulated"):
        load_stack("station", "sim", "/run/x")
