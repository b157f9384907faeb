"""Exponential backoff between attempts to reopen a device that went away."""

from __future__ import annotations

import time
from collections.abc import Callable


class Backoff:
    """Says when the next attempt may run: the delay doubles after each failure."""

    def __init__(self, minimum: float = 0.2, maximum: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.minimum, self.maximum = minimum, maximum
        self.delay = minimum
        self._clock = clock
        self._next = 0.0

    def ready(self) -> bool:
        """True when an attempt may be made now."""
        return self._clock() >= self._next

    def failed(self) -> None:
        """An attempt failed: wait the current delay, and double it for next time."""
        self._next = self._clock() + self.delay
        self.delay = min(self.delay * 2.0, self.maximum)

    def succeeded(self) -> None:
        """An attempt succeeded: start again from the shortest delay."""
        self.delay = self.minimum
        self._next = 0.0
