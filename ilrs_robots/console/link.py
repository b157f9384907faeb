"""The emulated Earth–Moon link between the ground console and the robots.

One-way delay (1.3 s at lunar distance) with jitter, random loss, and blackout windows when
the orbital relay is out of view (every `blackout_period` s, for `blackout_duration` s,
counted from the link's start). Telemetry is datagram-like: a lost or blacked-out message is
gone. Commands are delivered reliably, as a link layer with acknowledgements would: a lost
transmission is resent after a round trip, and a command sent during a blackout waits on the
ground until the relay is back.

`LinkModel` is the pure timing; `DelayLine` a thread that runs callbacks at their time.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

LUNAR_ONE_WAY = 1.3  # s


@dataclass(frozen=True)
class LinkProfile:
    """How the link behaves; all zero: a direct link."""

    delay: float = 0.0              # s, one way
    jitter: float = 0.0             # s, uniform 0..jitter added to the delay
    loss: float = 0.0               # probability that one transmission is lost
    blackout_period: float = 0.0    # s between the starts of blackouts; 0: none
    blackout_duration: float = 0.0  # s

    def __post_init__(self) -> None:
        for name in ("delay", "jitter", "blackout_period", "blackout_duration"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"link {name} must be >= 0")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("link loss must be in [0, 1)")
        if self.blackout_period and self.blackout_duration >= self.blackout_period:
            raise ValueError("link blackout_duration must be shorter than blackout_period")


class LinkModel:
    """When a message sent at `now` arrives, if it does (times relative to `start`)."""

    def __init__(self, profile: LinkProfile, start: float, rng: random.Random | None = None
                 ) -> None:
        self.profile = profile
        self.start = start
        self.rng = rng or random.Random()
        self._last_reliable = 0.0
        self._lock = threading.Lock()

    def blackout_ends(self, now: float) -> float | None:
        """End of the blackout `now` falls in, or None when the relay is in view."""
        p = self.profile
        if not p.blackout_period or not p.blackout_duration:
            return None
        since = (now - self.start) % p.blackout_period
        window_start = p.blackout_period - p.blackout_duration
        if since < window_start:
            return None
        return now + (p.blackout_period - since)

    def _one_way(self) -> float:
        p = self.profile
        return p.delay + (self.rng.uniform(0.0, p.jitter) if p.jitter else 0.0)

    def telemetry_arrival(self, now: float) -> float | None:
        """Arrival time of a datagram sent at `now`; None when lost or blacked out."""
        if self.blackout_ends(now) is not None:
            return None
        if self.profile.loss and self.rng.random() < self.profile.loss:
            return None
        return now + self._one_way()

    def command_arrival(self, now: float) -> float:
        """Arrival time of a reliably delivered message sent at `now`: in order, as a reliable
        channel delivers (a later message never overtakes an earlier one through jitter)."""
        t = now
        for _ in range(1000):
            ends = self.blackout_ends(t)
            if ends is not None:
                t = ends
            if not (self.profile.loss and self.rng.random() < self.profile.loss):
                break
            t += 2.0 * self._one_way()  # no acknowledgement within a round trip: resend
        with self._lock:
            self._last_reliable = max(t + self._one_way(), self._last_reliable)
            return self._last_reliable

    def state(self, now: float) -> dict:
        """The link as the console shows it."""
        p = self.profile
        return {"type": "link", "up": self.blackout_ends(now) is None, "delay": p.delay,
                "jitter": p.jitter, "loss": p.loss,
                "blackout": self.blackout_ends(now) is not None,
                "blackout_period": p.blackout_period,
                "blackout_duration": p.blackout_duration}


class DelayLine:
    """Runs callbacks at given times (time.time()), in order, on one thread."""

    def __init__(self, name: str = "link", clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def at(self, when: float, callback: Callable[[], None]) -> None:
        """Run `callback` at `when` (at once if that is past)."""
        with self._cv:
            heapq.heappush(self._heap, (when, next(self._order), callback))
            self._cv.notify()

    def pending(self) -> int:
        """Callbacks not yet run."""
        with self._cv:
            return len(self._heap)

    def stop(self) -> None:
        """Drop what is pending and end the thread."""
        with self._cv:
            self._stopped = True
            self._heap.clear()
            self._cv.notify()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped:
                    now = self._clock()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cv.wait(None if not self._heap else self._heap[0][0] - now)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - one bad delivery must not end the link
                print(f"link: a delivery failed: {exc!r}", flush=True)
