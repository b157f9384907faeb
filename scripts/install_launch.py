"""Install the real ROS 2 launch libraries of Humble and Jazzy beside a venv, for the tests.

`launch`, `launch_ros`, `ros2launch`, `launch_testing`, `launch_testing_ros` and `launch_pytest`
are not on PyPI; their sources (one archive per package and distro) are vendored at
`../shared/vendor/ros2-launch/<distro>/` relative to the repository. The two branches cannot
share one site-packages, so each goes into its own target directory, `<venv>/launch-<distro>`,
with the pure-Python libraries they need beside them (osrf-pycommon, packaging; lark comes with
the ROS wheels). Tests run `ros2 launch`'s API in a subprocess with PYTHONPATH pointing at one
of them. `composition_interfaces` (three .srv files that `launch_ros.actions` imports) is an
interface package: scripts/build_interfaces.py builds it into the venv itself.

Run by scripts/setup with the venv's interpreter; skips a distro whose archives did not change.
Where the vendored sources are absent, says so and does nothing (the tests then use a ROS
installation's own launch, or skip with the reason).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT.parent / "shared" / "vendor" / "ros2-launch"
DISTROS = ("humble", "jazzy")
PACKAGES = ("launch", "launch_xml", "launch_yaml", "launch_ros", "ros2launch",
            "launch_testing", "launch_testing_ros", "launch_pytest")
EXTRAS = ("osrf-pycommon==2.0.2", "packaging>=23")


def archives_hash(folder: Path) -> str:
    """Hash of the archives of one distro, and of what this script installs beside them."""
    h = hashlib.sha256(" ".join((*PACKAGES, *EXTRAS)).encode())
    for name in PACKAGES:
        h.update((folder / f"{name}.tar.gz").read_bytes())
    return h.hexdigest()[:16]


def install(distro: str, venv: Path, stamps: Path) -> None:
    """Install one distro's launch libraries into `<venv>/launch-<distro>` (if changed)."""
    src = VENDOR / distro
    target = venv / f"launch-{distro}"
    stamp = stamps / f"launch-{distro}"
    digest = archives_hash(src)
    if stamp.exists() and stamp.read_text() == digest and target.is_dir():
        return
    print(f"[setup] installing the {distro} launch libraries into {target}", flush=True)
    if target.exists():
        shutil.rmtree(target)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
           "--no-warn-script-location", "--target", str(target)]
    for cmd in (pip + [str(src / f"{name}.tar.gz") for name in PACKAGES], pip + list(EXTRAS)):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            sys.stderr.write(res.stdout[-4000:] + res.stderr[-4000:])
            raise SystemExit(f"installing the {distro} launch libraries failed")
    stamp.write_text(digest)


def main() -> None:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--venv", type=Path, required=True)
    ap.add_argument("--stamps", type=Path, required=True)
    args = ap.parse_args()
    if not VENDOR.is_dir():
        print(f"[setup] no vendored launch sources at {VENDOR}: launch tests will use a ROS "
              f"installation's launch or skip", flush=True)
        return
    for distro in DISTROS:
        install(distro, args.venv, args.stamps)


if __name__ == "__main__":
    main()
