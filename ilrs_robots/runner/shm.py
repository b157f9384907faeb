"""Fast DDS shared-memory segments of our node processes, and cleaning those of dead ones.

What Fast DDS (the Kilted wheels) creates in /dev/shm per participant, as listed while a node
runs: two data segments `fastdds_<16 hex>` and one listening port `fastdds_port<N>` per
transport, each beside a zero-length `<name>_el` file that the owner holds an exclusive
`flock` on for its whole life, and a named semaphore `sem.fastdds_port<N>_mutex` per port.
A clean exit removes them; SIGKILL leaves them behind. Older Fast DDS spells them
`fastrtps_...`.

The owner cannot be told from a name, so the runner notes, while a child runs, which lock
files it holds open; after the child died from a signal it removes those segments, each only
if nobody holds its lock any more (a live process never loses one).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path

SHM_DIR = Path("/dev/shm")
PREFIXES = ("fastdds_", "fastrtps_")
LOCK_SUFFIX = "_el"


def held_segments(pid: int, shm_dir: Path = SHM_DIR) -> set[str]:
    """Names of the Fast DDS segments whose lock file process `pid` has open (empty if gone)."""
    found: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return found
    for fd in fds:
        try:
            target = Path(os.readlink(fd))
        except OSError:
            continue
        name = target.name
        if (target.parent == shm_dir and name.startswith(PREFIXES)
                and name.endswith(LOCK_SUFFIX)):
            found.add(name.removesuffix(LOCK_SUFFIX))
    return found


def _files_of(segment: str) -> list[str]:
    files = [segment, segment + LOCK_SUFFIX]
    if "_port" in segment:
        files.append(f"sem.{segment}_mutex")
    return files


def held(segment: str, shm_dir: Path = SHM_DIR) -> bool:
    """True while some process holds the segment's lock (its owner, or a successor that took
    the same port number); False once nobody does or it is gone."""
    try:
        fd = os.open(shm_dir / (segment + LOCK_SUFFIX), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also lets our probe's lock go
    return False


def remove_orphaned(segments: Iterable[str], shm_dir: Path = SHM_DIR) -> list[str]:
    """Remove each segment (data, lock file, port semaphore) whose lock nobody holds.

    A segment whose lock is held (its owner lives, or a new participant took the port) is
    left alone. Returns the names of the segments removed.
    """
    removed = []
    for segment in sorted(set(segments)):
        if not segment.startswith(PREFIXES) or "/" in segment:
            continue
        lock = shm_dir / (segment + LOCK_SUFFIX)
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue  # already gone
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: its owner (or a successor) lives
            for name in _files_of(segment):
                try:
                    (shm_dir / name).unlink()
                except FileNotFoundError:
                    pass
            removed.append(segment)
        finally:
            os.close(fd)
    return removed
