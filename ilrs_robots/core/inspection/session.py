"""The logic of running an inspection round, without ROS: dose accounting, radiation dwells,
the dose-budget refusal, what a navigation failure means for the round, and finding texts.

The ``inspection`` node (``ilrs_robots/nodes/inspection.py``) feeds readings and outcomes in
and turns the results into the InspectSite action's messages; everything that decides
something lives here, so it is tested without a ROS graph.

Policy for points the navigator cannot reach: a refusal that concerns the point (off the
map, in a hazard or keep-out zone, unreachable, blocked, timed out) is a critical
``navigation`` finding, the point is marked not reached and the round goes on with the next
one; a failure that concerns the rover (estop latched, no localization, no navigator, an
unknown error) ends the round (NAVIGATION_FAILED) with its progress kept, so the same goal
resumes once the cause is cleared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ilrs_robots.core.inspection.report import DoseMapPicture, DoseResult, Finding
from ilrs_robots.core.inspection.rounds import DoseForecast, RadiationCheck, Round

#: NavigateToPose error codes that concern the point: skip it, go on with the round
SKIP_POINT_CODES = {9003: "TIMEOUT", 9100: "INVALID_GOAL", 9101: "OFF_MAP",
                    9102: "IN_HAZARD", 9103: "IN_KEEP_OUT", 9104: "UNREACHABLE",
                    9107: "BLOCKED"}
#: NavigateToPose error codes that concern the rover: end the round (resumable)
ABORT_ROUND_CODES = {9000: "UNKNOWN", 9105: "CANCELED", 9106: "PREEMPTED", 9108: "ESTOP",
                     9109: "NO_LOCALIZATION"}


def navigation_error_name(code: int) -> str:
    """The NavigateToPose name of an error code (``code <n>`` for one it does not know)."""
    return SKIP_POINT_CODES.get(code) or ABORT_ROUND_CODES.get(code) or f"code {code}"


def skips_point(code: int) -> bool:
    """Whether a navigation failure with ``code`` skips the point (True) or ends the round
    (False); see the module docstring."""
    return code in SKIP_POINT_CODES


def heading_error(yaw: float | None, wanted: float) -> float | None:
    """``wanted - yaw`` wrapped into [-pi, pi) (rad); None without a heading."""
    if yaw is None or not math.isfinite(yaw):
        return None
    return (wanted - yaw + math.pi) % (2.0 * math.pi) - math.pi


def navigation_finding(point: str, code: int, message: str) -> Finding:
    """The finding of a point that could not be reached."""
    text = f"not reached: {navigation_error_name(code)}"
    return Finding("navigation", point, f"{text}: {message}" if message else text, "critical")


def sensor_finding(point: str, check: str, reason: str) -> Finding:
    """The finding of a check that could not be performed (a silent sensor, a photo that
    could not be aligned, a gauge that could not be read)."""
    return Finding("sensor", point, f"{check} check failed: {reason}", "warning")


def budget_refusal(rnd: Round, forecast: DoseForecast, margin: float = 1.0,
                   already_usv: float = 0.0, from_point: int = 0) -> str | None:
    """The DOSE_BUDGET refusal text when ``margin`` x the forecast of the points from
    ``from_point`` on, plus the ``already_usv`` a resumed round took, exceeds the round's
    budget (None when the round fits)."""
    total = forecast.total * margin + already_usv
    if total <= rnd.dose_budget_usv or not forecast.stops:
        return None
    worst = max(range(len(forecast.stops)), key=lambda i: forecast.legs[i] + forecast.stops[i])
    index = from_point + worst
    name = rnd.points[index].name if index < len(rnd.points) else "?"
    m = f" x {margin:g} margin" if margin != 1.0 else ""
    before = f", {already_usv:.3g} uSv of it taken before the resume" if already_usv else ""
    return (f"the round would give the rover {total:.3g} uSv (forecast{m}{before}) of a "
            f"{rnd.dose_budget_usv:g} uSv budget; most on the way to and at point {name!r} "
            f"({forecast.legs[worst] + forecast.stops[worst]:.3g} uSv)")


def budget_finding(accumulated: float, budget: float) -> Finding:
    """The finding of a round stopped because the rover's dose reached the budget."""
    return Finding("dose_budget", "", f"accumulated dose {accumulated:.3g} uSv reached the "
                   f"budget of {budget:g} uSv: round stopped", "critical")


class DoseIntegrator:
    """The rover's accumulated dose (uSv) from dose-rate readings (uSv/h) at times (s): each
    reading's rate holds from its time to the next reading's, a gap counted at most
    ``max_gap`` s (a silent sensor is not extrapolated); readings out of order are ignored."""

    def __init__(self, max_gap: float = 30.0, start_usv: float = 0.0) -> None:
        self.max_gap = max_gap
        self.total_usv = start_usv
        self._taken = start_usv
        self._last: tuple[float, float] | None = None

    def add(self, t: float, rate_usv_h: float) -> float:
        """Count a reading; returns the total so far."""
        if not math.isfinite(rate_usv_h) or rate_usv_h < 0.0:
            return self.total_usv
        if self._last is not None:
            t0, r0 = self._last
            if t < t0:
                return self.total_usv
            self.total_usv += r0 * min(t - t0, self.max_gap) / 3600.0
        self._last = (t, rate_usv_h)
        return self.total_usv

    def take(self) -> float:
        """The dose counted since the last take (for per-point accounting)."""
        taken = self.total_usv - self._taken
        self._taken = self.total_usv
        return taken


@dataclass(frozen=True)
class Reading:
    """One dose-rate reading: time (s, the node's clock), rate and stddev (uSv/h)."""

    t: float
    dose_rate: float
    stddev: float


def dwell_average(readings: Sequence[Reading], dwell_s: float, window_s: float = 10.0,
                  x: float = math.nan, y: float = math.nan) -> DoseResult:
    """The mean dose rate of a dwell's readings and its stddev: each reading averages the
    sensor's last ``window_s`` s, so a dwell holds about ``dwell_s / window_s`` independent
    ones (at least one). ValueError without readings."""
    if not readings:
        raise ValueError("no reading in the dwell")
    rates = [r.dose_rate for r in readings]
    mean = sum(rates) / len(rates)
    rms = math.sqrt(sum(r.stddev ** 2 for r in readings) / len(readings))
    independent = max(1.0, min(len(readings), dwell_s / max(window_s, 1e-9)))
    return DoseResult(mean, rms / math.sqrt(independent), dwell_s, x, y)


def dwell_failure(check: RadiationCheck, readings: int, silent_s: float | None,
                  timeout_s: float) -> str | None:
    """Why a dwell failed, or None when it went fine: the sensor was silent for
    ``timeout_s`` (``silent_s``, the silence seen; None: never silent that long) or gave no
    reading at all (``readings`` received during the dwell)."""
    if silent_s is not None and silent_s >= timeout_s:
        return (f"the radiation sensor stopped answering ({silent_s:.0f} s without a reading; "
                f"{readings} reading(s) in the {check.dwell_s:g} s dwell)")
    if readings == 0:
        return f"no radiation reading during the {check.dwell_s:g} s dwell"
    return None


def findings_summary(findings: Sequence[Finding]) -> list[str]:
    """The InspectSite result's ``findings``: one line per finding, most severe first."""
    order = {"critical": 0, "warning": 1, "info": 2}
    return [f.summary() for f in sorted(findings, key=lambda f: order.get(f.severity, 3))]


def dose_map_picture(samples: Sequence[tuple[float, float, float, float]], rnd: Round,
                     margin: float = 5.0, cells: int = 48, height: float = 0.5
                     ) -> DoseMapPicture | None:
    """The report's dose-rate map from (x, y, dose rate, stddev) samples along the round
    (Gaussian-process regression, ``core.radiation_mapping.dose_map``) over the round's points
    and the samples plus ``margin`` m, the points marked; None with fewer than 3 samples."""
    from ilrs_robots.core.radiation_mapping import dose_map

    if len(samples) < 3:
        return None
    s = np.asarray(samples, dtype=float)
    px = [p.pose.x for p in rnd.points]
    py = [p.pose.y for p in rnd.points]
    xmin, xmax = min(px + [s[:, 0].min()]) - margin, max(px + [s[:, 0].max()]) + margin
    ymin, ymax = min(py + [s[:, 1].min()]) - margin, max(py + [s[:, 1].max()]) + margin
    xs = np.linspace(xmin, xmax, cells)
    ys = np.linspace(ymin, ymax, max(2, int(round(cells * (ymax - ymin) / (xmax - xmin)))))
    pts = np.column_stack([s[:, 0], s[:, 1], np.full(len(s), height)])
    m = dose_map(pts, s[:, 2], s[:, 3], xs, ys, height)
    labels = [(p.pose.x, p.pose.y, str(i + 1)) for i, p in enumerate(rnd.points)]
    return DoseMapPicture(m.dose, (xmin, xmax, ymin, ymax), labels)
