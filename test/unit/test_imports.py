"""Every module of the package imports: a name one module removes and another still imports
is invisible to ruff and showed up only when a node failed to start (terrain_mapper, twice)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import ilrs_robots

# needs the ROS launch libraries (the vendored sources or a ROS installation): tested by the
# launch tests
NEEDS_LAUNCH = {"ilrs_robots.runner.launch_support"}
MODULES = sorted(m.name for m in pkgutil.walk_packages(ilrs_robots.__path__, "ilrs_robots.")
                 if m.name not in NEEDS_LAUNCH)


def test_the_package_has_its_layers() -> None:
    for layer in ("core", "drivers", "protocols", "nodes", "runner", "sim", "console"):
        assert any(m.startswith(f"ilrs_robots.{layer}.") for m in MODULES), layer


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)
