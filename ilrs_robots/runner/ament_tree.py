"""An ament index install of this package, as colcon lays it out, for `ros2 launch`.

`ros2launch` finds a package's launch files and launch_ros finds its executables through the
ament index of the prefixes in `AMENT_PREFIX_PATH`:
`share/ament_index/resource_index/packages/ilrs_robots`, `share/ilrs_robots/{launch,config,
package.xml}` and `lib/ilrs_robots/<executable>`. A pip-only machine has none of that (the
package is installed editable into a venv); :func:`install_ament_tree` writes it into a
prefix, with the files of `launch/` and `config/` linked to this checkout (one link per file, as
`colcon build --symlink-install`) and one small script per console script of setup.py that runs
it with a given interpreter. The launch tests use it.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from ilrs_robots.resources import PACKAGE

SOURCE = Path(__file__).resolve().parents[2]


def console_scripts(setup_py: Path = SOURCE / "setup.py") -> dict[str, str]:
    """The console scripts setup.py registers (its NODES and TOOLS), name -> 'module:function'.

    Read from setup.py's text, not from the installed metadata, which lags behind an edit.
    """
    tree = ast.parse(setup_py.read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in ("NODES", "TOOLS")):
            found.update(ast.literal_eval(node.value))
    return found


def install_ament_tree(prefix: Path, python: str, source: Path = SOURCE) -> Path:
    """Write the colcon-like install of ilrs_robots into `prefix`; returns `prefix`.

    Executables run `python` (an interpreter that imports ilrs_robots and rclpy).
    """
    prefix = Path(prefix)
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True, exist_ok=True)
    (index / PACKAGE).write_text("")
    share = prefix / "share" / PACKAGE
    share.mkdir(parents=True, exist_ok=True)
    for name in ("launch", "config", "package.xml"):
        files = [source / name] if (source / name).is_file() else sorted(
            f for f in (source / name).rglob("*") if f.is_file() and "__pycache__" not in f.parts)
        for f in files:  # one link per file, as colcon --symlink-install (os.walk skips
            link = share / f.relative_to(source)  # linked folders: ros2launch uses it)
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(f)
    lib = prefix / "lib" / PACKAGE
    lib.mkdir(parents=True, exist_ok=True)
    for name, target in console_scripts(source / "setup.py").items():
        module, func = target.split(":")
        script = lib / name
        script.write_text(f"#!{python}\n"
                          f"# {name}: console script of {PACKAGE} (written by ament_tree.py)\n"
                          f"import sys\nfrom {module} import {func}\n"
                          f"sys.exit({func}())\n")
        script.chmod(0o755)
    return prefix


def with_prefix(env: dict[str, str], prefix: Path) -> dict[str, str]:
    """`env` with `prefix` first on AMENT_PREFIX_PATH."""
    rest = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return {**env, "AMENT_PREFIX_PATH": os.pathsep.join([str(prefix), *rest])}
