"""Build the project's ament_cmake interface packages into a venv, without colcon.

Run by scripts/setup with the venv's interpreter. Skips a package whose sources did not
change since its last build. tf2_msgs is built from compat/ only where no tf2_msgs is
importable (pip-only machines); a ROS installation's own tf2_msgs always wins. Likewise
composition_interfaces (which `launch_ros.actions` imports), from the vendored Jazzy archive
at ../shared/vendor/ros2-launch/jazzy/ where that exists, for the tests of the launch files.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    ("tf2_msgs", ROOT / "compat" / "tf2_msgs"),
    ("ilrs_interfaces", ROOT / "ilrs_interfaces"),
]
VENDOR = ROOT.parent / "shared" / "vendor" / "ros2-launch" / "jazzy"
VENDORED = {  # built where ROS does not provide them and the vendored archive exists
    "composition_interfaces": VENDOR / "composition_interfaces.tar.gz",
}
WHEEL_PY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
WHEEL_NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include"
)


def fix_wheel_cmake_paths(venv: Path) -> int:
    """Point the wheels' exported CMake files at this interpreter's include dirs."""
    import numpy

    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    changed = 0
    for f in (venv / "share").rglob("*.cmake"):
        text = f.read_text(errors="surrogateescape")
        new = WHEEL_NUMPY_INCLUDE.sub(np_inc, text)
        new = WHEEL_PY_INCLUDE.sub(py_inc, new)
        if new != text:
            f.write_text(new, errors="surrogateescape")
            changed += 1
    return changed


def sources_hash(pkg: Path) -> str:
    """Hash of every file of an interface package."""
    h = hashlib.sha256()
    for f in sorted(p for p in pkg.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(pkg)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def build(name: str, src: Path, venv: Path) -> None:
    """Configure, build and install one ament_cmake package into the venv."""
    # one build tree per venv: CMake caches the packages it found (a Jazzy build reusing the
    # Kilted tree links the Kilted Fast CDR and fails at run time with an undefined symbol)
    bld = ROOT / "build" / name if venv.name == ".venv" else ROOT / "build" / venv.name / name
    py = venv / "bin" / "python"
    run = [
        "cmake", "-S", str(src), "-B", str(bld), "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_INSTALL_PREFIX={venv}", f"-DCMAKE_PREFIX_PATH={venv}",
        f"-DPython3_EXECUTABLE={py}", "-DBUILD_TESTING=OFF",
    ]
    for cmd in (run, ["cmake", "--build", str(bld), "-j2"], ["cmake", "--install", str(bld)]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            sys.stderr.write(res.stdout[-4000:] + res.stderr[-4000:])
            raise SystemExit(f"building interface package {name} failed: {' '.join(cmd)}")


def unpack(name: str, archive: Path) -> Path:
    """Unpack a vendored package archive under build/src/ (the vendor folder is read-only)."""
    dest = ROOT / "build" / "src"
    if (dest / name).exists():
        shutil.rmtree(dest / name)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest / name


def main() -> None:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--venv", type=Path, required=True)
    ap.add_argument("--stamps", type=Path, required=True)
    args = ap.parse_args()
    fixed = False
    packages = list(PACKAGES)
    for name, archive in VENDORED.items():
        stamp = args.stamps / f"interfaces-{name}"
        if archive.exists() and (stamp.exists() or not importlib.util.find_spec(name)):
            packages.append((name, unpack(name, archive)))
    for name, src in packages:
        stamp = args.stamps / f"interfaces-{name}"
        digest = sources_hash(src)
        ours = stamp.exists()
        if name == "tf2_msgs" and not ours and importlib.util.find_spec("tf2_msgs"):
            continue  # provided by ROS itself
        built = (args.stamps / "interfaces").exists()
        if built and stamp.exists() and stamp.read_text() == digest:
            continue
        if not fixed:
            fix_wheel_cmake_paths(args.venv)
            fixed = True
        print(f"[setup] building interface package {name}", flush=True)
        build(name, src, args.venv)
        stamp.write_text(digest)
    (args.stamps / "interfaces").write_text("ok")


if __name__ == "__main__":
    main()
