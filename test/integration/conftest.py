"""Fixtures for tests over real DDS: a ROS client in the test process, node processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ilrs_robots.runner.processes import NodeProcess, ros_arguments
from ilrs_robots.runner.ros_client import RosClient


@pytest.fixture
def ros() -> Iterator[RosClient]:
    """A ROS client node spinning in a thread of the test process."""
    client = RosClient("test_client")
    yield client
    client.close()


class NodeLauncher:
    """Starts node processes for one test and stops them all at its end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[NodeProcess] = []

    def start(self, executable: str, namespace: str | None = None,
              parameters: dict | None = None, params_files: tuple = (),
              name: str | None = None) -> NodeProcess:
        """Start `executable` with ROS arguments; its log goes to the test's tmp dir."""
        log = self.log_dir / f"{name or executable}-{len(self.processes)}.log"
        proc = NodeProcess(executable, dict(os.environ), log,
                           ros_arguments(name, namespace, parameters, params_files))
        self.processes.append(proc.start())
        return proc

    def stop_all(self) -> None:
        """Stop every process, SIGINT first."""
        for proc in reversed(self.processes):
            proc.stop()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[NodeLauncher]:
    """Start node processes; each is stopped at the end of the test, output kept in tmp."""
    nodes = NodeLauncher(tmp_path)
    yield nodes
    nodes.stop_all()


@pytest.fixture(scope="module")
def module_ros() -> Iterator[RosClient]:
    """A ROS client shared by the tests of a module (for module-scoped stacks)."""
    client = RosClient("test_module_client")
    yield client
    client.close()


@pytest.fixture(scope="module")
def module_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeLauncher]:
    """Start node processes shared by the tests of a module; stopped at its end.

    For tests that only look (refused parameters, read-only values) or that each need their
    own process but can start them all at once (configuration errors)."""
    nodes = NodeLauncher(tmp_path_factory.mktemp("nodes"))
    yield nodes
    nodes.stop_all()
