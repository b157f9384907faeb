"""SIGINT ignored for the rest of a process's life, without CPython's race report.

Under `ros2 launch` a Ctrl-C reaches a process twice (the terminal's group SIGINT, then
launch's own). After the first, a node or emulator ignores SIGINT so that the second cannot cut
its shutdown short. It must be SIG_IGN, not a Python handler that does nothing: at exit CPython
puts SIG_DFL back in place of Python handlers, and a late SIGINT then kills the process (exit
-2). But a SIGINT that the interpreter caught and has not handled yet when the handler becomes
SIG_IGN is reported as "OSError: Signal 2 ignored due to race condition", with a traceback, via
sys.unraisablehook (CPython bpo-43406). That report, and only it, is dropped here: ignoring that
signal is exactly what was asked.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

_RACE = "ignored due to race condition"
_installed = False


def ignore_sigint() -> None:
    """SIG_IGN for SIGINT from now on (main thread only; elsewhere Python cannot set it)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _drop_race_reports()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _drop_race_reports() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if isinstance(exc, OSError) and _RACE in str(exc):
            return
        previous(unraisable)

    sys.unraisablehook = hook
