"""Opening a serial device the way every driver here does: exclusively, with the reason.

A port is opened with pyserial's ``exclusive=True`` (an flock): a second driver on a port in use
fails with :class:`PortBusy`, which names the processes that hold it (from ``/proc/locks``, or
the processes with the device open), instead of interleaving its bytes with the first one's.
Anything else that keeps the port from opening is :class:`LinkLost` with the reason.
"""

from __future__ import annotations

import errno
import os
import termios
from typing import Any

import serial


class LinkLost(ConnectionError):
    """The serial port is gone (unplugged, closed by the device, or not there)."""


class PortBusy(LinkLost):
    """Another process holds the serial port (an exclusive lock on it)."""

    def __init__(self, port: str, holders: list[tuple[int, str]]) -> None:
        who = ", ".join(f"pid {pid} ({cmd})" for pid, cmd in holders) or "another process"
        super().__init__(f"serial port {port} is in use by {who}")
        self.port = port
        self.holders = holders


def open_exclusive(port: str, baud: int, **options: Any) -> serial.Serial:
    """``serial.Serial(port, baud, exclusive=True, **options)``; raises PortBusy when another
    process holds the port, LinkLost when it cannot be opened (missing, permissions, ...)."""
    try:
        return serial.Serial(port, baud, exclusive=True, **options)
    except serial.SerialException as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise PortBusy(port, port_holders(port)) from exc
        raise LinkLost(f"cannot open serial port {port}: {exc}") from exc
    except (OSError, ValueError, termios.error) as exc:
        raise LinkLost(f"cannot open serial port {port}: {exc}") from exc


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            text = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
    return text[:120] or "?"


def port_holders(port: str) -> list[tuple[int, str]]:
    """Processes (pid, command line) holding a lock on `port`, else those with it open (Linux).

    The lock holders come from /proc/locks; when none is found, every process with a file
    descriptor on the device is listed (those of other users are invisible).
    """
    try:
        st = os.stat(port)
    except OSError:
        return []
    me = os.getpid()
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids: list[int] = []
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == key:
                    pid = int(fields[4]) if fields[4].lstrip("-").isdigit() else -1
                    if pid > 0 and pid != me and pid not in pids:
                        pids.append(pid)
    except OSError:
        pass
    if not pids:
        target = os.path.realpath(port)
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                fds = os.listdir(f"/proc/{entry}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{entry}/fd/{fd}") == target:
                        pids.append(int(entry))
                        break
                except OSError:
                    continue
    return [(pid, _command_line(pid)) for pid in pids]
