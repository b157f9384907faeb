"""Run our launch files under the real launch libraries, as `ros2 launch` does, in a subprocess.

The Humble and Jazzy branches of `launch`, `launch_ros` and `ros2launch` cannot share one
site-packages: scripts/setup installs each into `<venv>/launch-<distro>` (from the vendored
sources at ../shared/vendor/ros2-launch/), and a launch runs in a subprocess whose PYTHONPATH
points at one of them. A ROS installation's own launch (importable `ros2launch` in this
interpreter) is used too, as distro "system". `ros2launch` finds the package through the
ament index: the harness writes a colcon-like install of ilrs_robots into a prefix
(ilrs_robots/runner/ament_tree.py) and puts it first on AMENT_PREFIX_PATH.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ilrs_robots.runner.ament_tree import install_ament_tree, with_prefix
from ilrs_robots.runner.environment import ros_environment

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
VENDOR = ROOT.parent / "shared" / "vendor" / "ros2-launch"
VENDORED = ("humble", "jazzy")

# What `ros2 launch PACKAGE FILE ARGS...` does (ros2launch/command/launch.py), minus the CLI.
# Ctrl-C is restored first, as a terminal's foreground job has it: a process started in the
# background of a non-interactive shell inherits SIGINT ignored, and launch then never saw the
# test's Ctrl-C while its nodes ended on it and were respawned.
LAUNCHER = """
import signal
import sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from ros2launch.api import get_share_file_path_from_package, launch_a_launch_file
path = get_share_file_path_from_package(package_name="ilrs_robots", file_name=sys.argv[1])
print("[harness] launching", path, "with", sys.argv[2:], flush=True)
sys.exit(launch_a_launch_file(launch_file_path=path, launch_file_arguments=sys.argv[2:],
                              noninteractive=True))
"""


def distros() -> list[tuple[str, str | None]]:
    """(distro, reason to skip or None) for each launch library the tests can run under."""
    out: list[tuple[str, str | None]] = []
    for distro in VENDORED:
        target = VENV / f"launch-{distro}"
        if (target / "ros2launch").is_dir():
            out.append((distro, None))
        elif not (VENDOR / distro).is_dir():
            out.append((distro, f"neither the vendored {distro} launch sources ({VENDOR / distro})"
                                f" nor an installed copy ({target}) exist"))
        else:
            out.append((distro, f"{target} is missing: run ./scripts/setup"))
    if importlib.util.find_spec("ros2launch") is not None:
        out.append(("system", None))
    return out


def launch_env(distro: str, prefix: Path, domain_id: int,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a launch under `distro`'s libraries with our package in `prefix`."""
    env = with_prefix(ros_environment(domain_id), prefix)
    if distro != "system":
        target = VENV / f"launch-{distro}"
        paths = [str(target), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([env["AMENT_PREFIX_PATH"], str(target)])
    env.update(extra or {})
    return env


class Launch:
    """One `ros2 launch ilrs_robots FILE ARGS` in its own process group; output in a file."""

    def __init__(self, distro: str, tmp: Path, launch_file: str, args: list[str],
                 domain_id: int, extra_env: dict[str, str] | None = None,
                 prefix: Path | None = None) -> None:
        prefix = prefix or install_ament_tree(tmp / "install", sys.executable)
        self.log_path = tmp / f"launch-{distro}-{launch_file}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, launch_file, *args],
            env=launch_env(distro, prefix, domain_id, extra_env), stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        """Everything the launch and its nodes printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Poll `condition` until true, the launch ends, or `timeout` s pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            if self.proc.poll() is not None:
                return condition()
            time.sleep(0.1)
        return condition()

    def ctrl_c(self) -> None:
        """A terminal's Ctrl-C: SIGINT to the whole process group (launch then sends its own)."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float) -> int | None:
        """The launch's exit code, or None if it still runs after `timeout` s."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """End whatever is left of the launch's process group (after a failed test)."""
        for sig in (signal.SIGINT, signal.SIGKILL):
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                if self.wait(15.0) is not None:
                    break
        try:  # children that outlived the launch process in its group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()


def parameter_values(ros: object, node: str, names: list[str], timeout: float = 20.0
                     ) -> dict[str, object] | None:
    """The values of `names` on the running node `node` (its parameter service), or None."""
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    from ilrs_robots.nodes.service_call import call

    client = ros.node.create_client(GetParameters, f"{node}/get_parameters")
    try:
        response = call(client, GetParameters.Request(names=names), timeout)
        if response is None:
            return None
        values = [parameter_value_to_python(v) for v in response.values]
        return dict(zip(names, [list(v) if isinstance(v, tuple | list) else v
                                for v in values], strict=True))
    finally:
        ros.node.destroy_client(client)


def declared_parameters(ros: object, node: str, timeout: float = 20.0) -> set[str] | None:
    """Every parameter name `node` declares (its list_parameters service), or None."""
    from rcl_interfaces.srv import ListParameters

    from ilrs_robots.nodes.service_call import call

    client = ros.node.create_client(ListParameters, f"{node}/list_parameters")
    try:
        response = call(client, ListParameters.Request(), timeout)
        return None if response is None else set(response.result.names)
    finally:
        ros.node.destroy_client(client)
