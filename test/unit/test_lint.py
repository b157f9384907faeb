"""The code base is ruff clean (ruff.toml: line length 99)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_clean():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "--no-cache", str(ROOT)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_launch_files_compile():
    # `launch` is not installable from PyPI: the launch files are at least checked to compile
    for path in sorted((ROOT / "launch").glob("*.launch.py")):
        compile(path.read_text(), str(path), "exec")
