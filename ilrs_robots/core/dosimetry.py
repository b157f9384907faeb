"""Dose rate from Geiger-Mueller counts: the estimate, its Poisson uncertainty, a sliding
window of one-second counts, and the optional dead-time correction.

A tube with calibration ``usv_per_cpm`` (uSv/h per count per minute; 0.0065 for the GMC-320's
M4011) that recorded N counts in T seconds reads m = N / T counts per second. With a
non-paralysable dead time tau the true rate is n = m / (1 - m tau) (tau = 0: no correction,
which is what the counter itself displays). Dose rate = 60 n usv_per_cpm. Its standard
deviation is Poisson's, sqrt(N) / T, carried through the correction (dn/dm = 1 / (1 - m tau)^2);
with no count at all sqrt(1) is used, so an empty window never claims certainty.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

MAX_CORRECTION = 10.0  # past this dead-time factor the tube is saturated: the estimate is capped


@dataclass(frozen=True)
class DoseEstimate:
    """What N counts in T seconds say."""

    counts: int
    seconds: float
    cpm: float  # counts per minute as recorded (no dead-time correction)
    dose_rate: float  # uSv/h, dead-time corrected
    dose_rate_stddev: float  # uSv/h
    saturated: bool = False  # the dead-time correction hit MAX_CORRECTION


def estimate(counts: int, seconds: float, usv_per_cpm: float, dead_time: float = 0.0
             ) -> DoseEstimate:
    """The dose-rate estimate of ``counts`` recorded in ``seconds``."""
    if seconds <= 0.0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if usv_per_cpm <= 0.0:
        raise ValueError(f"usv_per_cpm must be positive, got {usv_per_cpm}")
    m = counts / seconds
    sigma_m = math.sqrt(max(counts, 1)) / seconds
    denominator = 1.0 - m * max(0.0, dead_time)
    saturated = denominator < 1.0 / MAX_CORRECTION
    if saturated:
        denominator = 1.0 / MAX_CORRECTION
    n = m / denominator
    sigma_n = sigma_m / denominator ** 2
    scale = 60.0 * usv_per_cpm
    return DoseEstimate(counts, seconds, m * 60.0, n * scale, sigma_n * scale, saturated)


class CountWindow:
    """The last ``window`` one-second counts (by number: each heartbeat is one second of
    exposure, whenever it arrived), none older than ``window + slack`` seconds."""

    def __init__(self, window: float, slack: float = 1.5) -> None:
        if window <= 0.0:
            raise ValueError(f"window must be positive, got {window}")
        self.window = window
        self.slack = slack
        self._seconds: deque[tuple[float, int]] = deque()

    @property
    def size(self) -> int:
        """Seconds a full window holds."""
        return max(1, round(self.window))

    def add(self, received: float, counts: int) -> None:
        """One second of ``counts``, received at ``received`` (monotonic s)."""
        self._seconds.append((received, int(counts)))
        self._trim(received)

    def clear(self) -> None:
        """Forget every second."""
        self._seconds.clear()

    def _trim(self, now: float) -> None:
        while len(self._seconds) > self.size:
            self._seconds.popleft()
        while self._seconds and self._seconds[0][0] < now - self.window - self.slack:
            self._seconds.popleft()

    @property
    def newest(self) -> float | None:
        """Arrival time of the newest second, None when empty."""
        return self._seconds[-1][0] if self._seconds else None

    def totals(self, now: float) -> tuple[int, int]:
        """(counts, seconds) in the window at ``now``."""
        self._trim(now)
        return sum(c for _, c in self._seconds), len(self._seconds)

    def estimate(self, now: float, usv_per_cpm: float, dead_time: float = 0.0
                 ) -> DoseEstimate | None:
        """The estimate over the window at ``now``; None with no second in it."""
        counts, seconds = self.totals(now)
        if seconds == 0:
            return None
        return estimate(counts, float(seconds), usv_per_cpm, dead_time)
