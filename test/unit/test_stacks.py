"""Stack files: modes, substitutions, validation with clear errors."""

import pytest

from ilrs_robots.runner.processes import ros_arguments
from ilrs_robots.runner.stacks import StackError, load_stack


def test_rover_stack_modes():
    real = load_stack("rover", "real", "/run/x")
    assert [n.name for n in real.nodes] == ["base_driver", "vc0706_camera", "mast_camera",
                                            "nav_stereo"]
    assert real.nodes[0].parameters["port"] == "/dev/ttyACM0"
    emulated = load_stack("rover", "emulated", "/run/x")
    assert [n.executable for n in emulated.nodes] == ["roboclaw_emulator", "base_driver",
                                                      "vc0706_emulator", "vc0706_camera"]
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
