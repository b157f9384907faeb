"""Where the package's installed files (config/, launch/) are: one lookup for every layer."""

from __future__ import annotations

from pathlib import Path

PACKAGE = "ilrs_robots"


def share_dir() -> Path:
    """The package's share directory: installed (ament index) or this source checkout."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError, OSError):
        pass
    source = Path(__file__).resolve().parents[1]
    if (source / "config").is_dir():
        return source
    raise FileNotFoundError(f"cannot find the share directory of {PACKAGE}")


def config_path(*parts: str) -> Path:
    """A file under config/ of the package."""
    return share_dir().joinpath("config", *parts)
