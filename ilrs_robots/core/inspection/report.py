"""Inspection reports and resumable round progress.

A :class:`Report` holds the findings (kind, point, text, severity), each point's results
(photos, gauge values, dose readings, failed checks with their reasons) and the dose map. It
is written (:func:`write_report`) as JSON and as one self-contained HTML page (photos and the
dose map embedded as base64 PNG data URIs, inline CSS, no external asset), each atomically: a
temporary file in the same folder, fsync, then ``os.replace``, so a reader sees the old report
or the new one, never half of one.

:class:`RoundProgress` is what an interrupted round needs to go on: the points visited with
their results, findings and dose so far, saved atomically as JSON in a state directory after
every point; a restart loads it and resumes at the next unvisited point (a changed round file
starts over).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ilrs_robots.core.inspection.rounds import GaugeCheck, PhotoCheck, RadiationCheck, Round
from ilrs_robots.files import write_atomically

SEVERITIES = ("info", "warning", "critical")
FINDING_KINDS = ("photo", "gauge", "radiation", "navigation", "sensor", "dose_budget")


@dataclass(frozen=True)
class Finding:
    """Something a person must know: ``kind`` (photo, gauge, radiation, navigation, sensor,
    dose_budget), the point's name ('' for the round), the text, and ``severity`` (info,
    warning, critical)."""

    kind: str
    point: str
    text: str
    severity: str = "warning"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def summary(self) -> str:
        """One line, as the InspectSite result's ``findings`` carries it."""
        where = f" at {self.point}" if self.point else ""
        return f"[{self.severity}] {self.kind}{where}: {self.text}"


@dataclass
class PhotoResult:
    """A photo taken of ``target`` (file ``path``), and its comparison with the baseline:
    changed share and changed regions (x, y, w, h in the baseline's pixels); ``annotated``
    is a copy with the regions drawn, when one was written."""

    target: str
    path: str
    changed_fraction: float | None = None
    regions: list[list[int]] = field(default_factory=list)
    annotated: str | None = None


@dataclass
class GaugeResult:
    """A gauge's reading: value and needle angle (deg clockwise from 12 o'clock), the
    expected range, and whether it lies in that range."""

    gauge: str
    value: float
    angle_deg: float
    units: str
    range: list[float]
    in_range: bool


@dataclass
class DoseResult:
    """A radiation dwell: mean dose rate and its stddev (uSv/h) over ``dwell_s`` seconds at
    map position (x, y)."""

    dose_rate: float
    stddev: float
    dwell_s: float
    x: float = math.nan
    y: float = math.nan


@dataclass
class FailedCheck:
    """A check that could not be performed (sensor silent, alignment refused, ...)."""

    check: str
    reason: str


@dataclass
class PointResult:
    """Everything done at one inspection point."""

    index: int
    name: str
    reached: bool = True
    photos: list[PhotoResult] = field(default_factory=list)
    gauges: list[GaugeResult] = field(default_factory=list)
    doses: list[DoseResult] = field(default_factory=list)
    failed: list[FailedCheck] = field(default_factory=list)
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PointResult:
        """The inverse of :meth:`to_dict`."""
        return cls(int(d["index"]), str(d["name"]), bool(d.get("reached", True)),
                   [PhotoResult(**p) for p in d.get("photos", [])],
                   [GaugeResult(**g) for g in d.get("gauges", [])],
                   [DoseResult(**{k: (math.nan if v is None else v) for k, v in x.items()})
                    for x in d.get("doses", [])],
                   [FailedCheck(**f) for f in d.get("failed", [])],
                   float(d.get("duration_s", 0.0)))


@dataclass
class DoseMapPicture:
    """A dose-rate grid (uSv/h, rows along y from ``extent``'s ymin) over
    ``extent`` = (xmin, xmax, ymin, ymax) in the map frame, to be drawn in the report."""

    grid: np.ndarray
    extent: tuple[float, float, float, float]
    points: list[tuple[float, float, str]] = field(default_factory=list)
    log_scale: bool = True


@dataclass
class Report:
    """An inspection round's report."""

    round: str
    site: str
    status: str                      # completed | failed | canceled | in_progress
    started: float                   # unix time, s
    finished: float
    points: list[PointResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    accumulated_dose_usv: float = 0.0
    dose_budget_usv: float = 0.0
    points_total: int = 0
    dose_map: DoseMapPicture | None = None
    error: str = ""

    def to_dict(self, dose_map_file: str | None = None) -> dict[str, Any]:
        """A JSON-ready mapping (the dose map as its extent, peak and file name)."""
        d: dict[str, Any] = {
            "round": self.round, "site": self.site, "status": self.status,
            "started": _iso(self.started), "finished": _iso(self.finished),
            "duration_s": self.finished - self.started,
            "points_total": self.points_total or len(self.points),
            "points_done": len(self.points),
            "accumulated_dose_usv": self.accumulated_dose_usv,
            "dose_budget_usv": self.dose_budget_usv, "error": self.error,
            "findings": [dataclasses.asdict(f) for f in self.findings],
            "points": [p.to_dict() for p in self.points],
        }
        if self.dose_map is not None:
            g = np.asarray(self.dose_map.grid, dtype=float)
            d["dose_map"] = {"extent": list(self.dose_map.extent), "shape": list(g.shape),
                             "max_usv_h": float(np.nanmax(g)) if g.size else None,
                             "file": dose_map_file}
        return _jsonable(d)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _jsonable(x: Any) -> Any:
    """Tuples to lists, numpy scalars to Python, NaN and inf to None (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ---------------------------------------------------------------------------------------
# Dose map picture
# ---------------------------------------------------------------------------------------
def render_dose_map(grid: np.ndarray, extent: Sequence[float],
                    points: Sequence[tuple[float, float, str]] = (), log_scale: bool = True,
                    width: int = 480) -> np.ndarray:
    """A BGR picture of a dose-rate grid (rows along +y from ymin; drawn north up) in
    OpenCV's inferno colormap, with a colour bar in uSv/h and the given map points marked
    and labelled. NaN cells are grey."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"the dose map must be a non-empty 2-D array, got shape {g.shape}")
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"the extent must be (xmin, xmax, ymin, ymax) with max > min, "
                         f"got {tuple(extent)}")
    finite = np.isfinite(g)
    vals = g[finite]
    lo = float(vals.min()) if vals.size else 0.0
    hi = float(vals.max()) if vals.size else 1.0
    if log_scale:
        floor = max(lo, hi * 1e-4, 1e-6)
        lo, hi = math.log10(floor), math.log10(max(hi, floor * 10))
        t = (np.log10(np.clip(np.where(finite, g, floor), floor, None)) - lo) / (hi - lo)
    else:
        hi = hi if hi > lo else lo + 1.0
        t = (np.where(finite, g, lo) - lo) / (hi - lo)
    u8 = np.clip(t * 255.0, 0, 255).astype(np.uint8)
    img = cv2.applyColorMap(u8[::-1], cv2.COLORMAP_INFERNO)
    img[~finite[::-1]] = (128, 128, 128)
    height = max(1, int(round(width * (ymax - ymin) / (xmax - xmin))))
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)
    for x, y, label in points:
        px = int(round((x - xmin) / (xmax - xmin) * width))
        py = int(round((ymax - y) / (ymax - ymin) * height))
        cv2.drawMarker(img, (px, py), (255, 255, 255), cv2.MARKER_TILTED_CROSS, 10, 2)
        cv2.putText(img, label, (px + 6, py - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
    bar_w, pad = 18, 70
    canvas = np.full((height + 30, width + bar_w + pad, 3), 255, np.uint8)
    canvas[:height, :width] = img
    ramp = np.linspace(255, 0, height).astype(np.uint8)[:, None].repeat(bar_w, 1)
    canvas[:height, width + 6:width + 6 + bar_w] = cv2.applyColorMap(ramp, cv2.COLORMAP_INFERNO)
    for frac in (0.0, 0.5, 1.0):
        v = lo + frac * (hi - lo)
        text = f"{10 ** v:.3g}" if log_scale else f"{v:.3g}"
        y = int(round((1.0 - frac) * (height - 1)))
        cv2.putText(canvas, text, (width + bar_w + 10, min(height - 2, max(10, y + 4))),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"uSv/h  x {xmin:g}..{xmax:g} m, y {ymin:g}..{ymax:g} m",
                (4, height + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` encoded as PNG."""
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("cannot encode the image as PNG")
    return buf.tobytes()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """A base64 data URI of ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _mime(path: str) -> str:
    ext = Path(path).suffix.lower()
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}.get(ext,
                                                                               "image/png")


# ---------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------
_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222;max-width:70em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.25em .6em;
text-align:left}th{background:#eee}.critical{background:#f6c6c6}.warning{background:#fbe7b5}
.info{background:#dde8f6}.ok{color:#176b1d}.bad{color:#a31515;font-weight:bold}
img{max-width:100%;border:1px solid #999}figure{display:inline-block;margin:.5em;
max-width:30em;vertical-align:top}section{border-top:1px solid #ccc;margin-top:1em}"""


def report_html(report: Report, images: Mapping[str, bytes] | None = None,
                dose_map_png: bytes | None = None) -> str:
    """The report as one self-contained HTML page. ``images`` maps a photo's path to its
    bytes (embedded as data URIs; a photo missing from it is named, not linked)."""
    images = images or {}
    e = html.escape
    d = report.to_dict()
    over = report.dose_budget_usv and report.accumulated_dose_usv > report.dose_budget_usv
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           f"<title>Inspection {e(report.round)} - {e(report.status)}</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>Inspection round {e(report.round)} at {e(report.site)}</h1>",
           "<table>",
           f"<tr><th>status</th><td>{e(report.status)}</td></tr>",
           f"<tr><th>started</th><td>{e(d['started'])}</td></tr>",
           f"<tr><th>finished</th><td>{e(d['finished'])} ({d['duration_s']:.0f} s)</td></tr>",
           f"<tr><th>points</th><td>{d['points_done']} of {d['points_total']}</td></tr>",
           f"<tr><th>dose to the rover</th><td class='{'bad' if over else 'ok'}'>"
           f"{report.accumulated_dose_usv:.2f} uSv of a {report.dose_budget_usv:g} uSv budget"
           "</td></tr>"]
    if report.error:
        out.append(f"<tr><th>error</th><td class='bad'>{e(report.error)}</td></tr>")
    out.append("</table>")
    out.append(f"<h2>Findings ({len(report.findings)})</h2>")
    if report.findings:
        out.append("<table><tr><th>severity</th><th>kind</th><th>point</th><th>finding</th></tr>")
        for f in report.findings:
            out.append(f"<tr class='{e(f.severity)}'><td>{e(f.severity)}</td><td>{e(f.kind)}"
                       f"</td><td>{e(f.point)}</td><td>{e(f.text)}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p class='ok'>No findings.</p>")
    if dose_map_png is not None:
        out.append("<h2>Dose-rate map</h2>")
        out.append(f"<img alt='dose-rate map' src='{data_uri(dose_map_png)}'>")
    out.append("<h2>Points</h2>")
    for p in report.points:
        out.append(f"<section><h3>{p.index + 1}. {e(p.name)}"
                   f"{'' if p.reached else ' (not reached)'}</h3>")
        if p.gauges:
            out.append("<table><tr><th>gauge</th><th>value</th><th>expected</th>"
                       "<th>needle</th></tr>")
            for g in p.gauges:
                cls = "ok" if g.in_range else "bad"
                out.append(f"<tr><td>{e(g.gauge)}</td><td class='{cls}'>{g.value:.3g} "
                           f"{e(g.units)}</td><td>{g.range[0]:g} .. {g.range[1]:g} "
                           f"{e(g.units)}</td><td>{g.angle_deg:.1f} deg</td></tr>")
            out.append("</table>")
        if p.doses:
            out.append("<table><tr><th>dose rate (uSv/h)</th><th>dwell</th></tr>")
            for x in p.doses:
                out.append(f"<tr><td>{x.dose_rate:.3g} &plusmn; {x.stddev:.2g}</td>"
                           f"<td>{x.dwell_s:g} s</td></tr>")
            out.append("</table>")
        if p.failed:
            out.append("<ul>" + "".join(f"<li class='bad'>{e(f.check)} failed: {e(f.reason)}"
                                        "</li>" for f in p.failed) + "</ul>")
        for ph in p.photos:
            shown = ph.annotated if ph.annotated in images else ph.path
            caption = e(ph.target)
            if ph.changed_fraction is not None:
                caption += f": {ph.changed_fraction:.1%} changed, {len(ph.regions)} region(s)"
            if shown in images:
                out.append(f"<figure><img alt='{e(ph.target)}' "
                           f"src='{data_uri(images[shown], _mime(shown))}'>"
                           f"<figcaption>{caption}</figcaption></figure>")
            else:
                out.append(f"<p>{caption} (photo {e(Path(ph.path).name)} not available)</p>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------
def write_report(report: Report, directory: str | os.PathLike[str],
                 stem: str = "report") -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` (and ``<stem>_dose_map.png``) into
    ``directory``, each atomically; the HTML embeds the photos it can read. Returns the JSON
    and HTML paths."""
    out = Path(directory)
    dose_png, dose_file = None, None
    if report.dose_map is not None:
        m = report.dose_map
        dose_png = png_bytes(render_dose_map(m.grid, m.extent, m.points, m.log_scale))
        dose_file = f"{stem}_dose_map.png"
        write_atomically(out / dose_file, dose_png)
    images: dict[str, bytes] = {}
    for p in report.points:
        for ph in p.photos:
            for f in (ph.path, ph.annotated):
                if f and f not in images:
                    try:
                        images[f] = Path(f).read_bytes()
                    except OSError:
                        pass
    js = write_atomically(out / f"{stem}.json",
                          json.dumps(report.to_dict(dose_file), indent=2, allow_nan=False))
    page = write_atomically(out / f"{stem}.html", report_html(report, images, dose_png))
    return js, page


# ---------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------
def round_digest(rnd: Round) -> str:
    """A fingerprint of a round's content (its name, site, points and checks): progress
    saved for one round is not resumed by a different one."""
    text = repr((rnd.name, rnd.site, rnd.keep_out_radius, rnd.dose_budget_usv, rnd.points))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class RoundProgress:
    """Where a round stands: the points done (with results), findings, dose so far."""

    round: str
    digest: str
    points_total: int
    started: float = field(default_factory=time.time)
    results: list[PointResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    accumulated_dose_usv: float = 0.0

    VERSION = 1

    @classmethod
    def start(cls, rnd: Round, now: float | None = None) -> RoundProgress:
        """Fresh progress of ``rnd``."""
        return cls(rnd.name, round_digest(rnd), len(rnd.points),
                   time.time() if now is None else now)

    @property
    def visited(self) -> set[int]:
        """Indices of the points done (reached or given up)."""
        return {r.index for r in self.results}

    def next_point(self) -> int | None:
        """The first point not yet visited, None when the round is done."""
        done = self.visited
        return next((i for i in range(self.points_total) if i not in done), None)

    @property
    def complete(self) -> bool:
        """Whether every point was visited."""
        return self.next_point() is None

    def record(self, result: PointResult, findings: Sequence[Finding] = (),
               dose_usv: float = 0.0) -> None:
        """Add a point's result (replacing an earlier one of the same point), its findings
        and the dose taken since the last record."""
        self.results = [r for r in self.results if r.index != result.index] + [result]
        self.results.sort(key=lambda r: r.index)
        self.findings.extend(findings)
        self.accumulated_dose_usv += dose_usv

    @staticmethod
    def path(state_dir: str | os.PathLike[str], round_name: str) -> Path:
        """The progress file of a round in ``state_dir``."""
        return Path(state_dir) / f"{round_name}.progress.json"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return _jsonable({"version": self.VERSION, "round": self.round, "digest": self.digest,
                          "points_total": self.points_total, "started": self.started,
                          "accumulated_dose_usv": self.accumulated_dose_usv,
                          "results": [r.to_dict() for r in self.results],
                          "findings": [dataclasses.asdict(f) for f in self.findings]})

    def save(self, state_dir: str | os.PathLike[str]) -> Path:
        """Write the progress atomically into ``state_dir``."""
        return write_atomically(self.path(state_dir, self.round),
                                json.dumps(self.to_dict(), indent=1, allow_nan=False))

    @classmethod
    def load(cls, state_dir: str | os.PathLike[str], rnd: Round) -> RoundProgress | None:
        """The saved progress of ``rnd``, or None when there is none, it is unreadable, it
        is complete, or it belongs to a different version of the round."""
        try:
            d = json.loads(cls.path(state_dir, rnd.name).read_text())
            if d.get("version") != cls.VERSION or d.get("digest") != round_digest(rnd):
                return None
            p = cls(str(d["round"]), str(d["digest"]), int(d["points_total"]),
                    float(d["started"]), [PointResult.from_dict(r) for r in d["results"]],
                    [Finding(**f) for f in d["findings"]], float(d["accumulated_dose_usv"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return None if p.complete else p

    @classmethod
    def clear(cls, state_dir: str | os.PathLike[str], round_name: str) -> None:
        """Forget a round's progress (when it is complete)."""
        cls.path(state_dir, round_name).unlink(missing_ok=True)

    def report(self, rnd: Round, status: str, finished: float | None = None,
               dose_map: DoseMapPicture | None = None, error: str = "") -> Report:
        """The report of the round so far."""
        return Report(rnd.name, rnd.site, status, self.started,
                      time.time() if finished is None else finished, list(self.results),
                      list(self.findings), self.accumulated_dose_usv, rnd.dose_budget_usv,
                      len(rnd.points), dose_map, error)


# ---------------------------------------------------------------------------------------
# Check outcomes as findings
# ---------------------------------------------------------------------------------------
def photo_finding(point: str, check: PhotoCheck, changed_fraction: float,
                  regions: int) -> Finding | None:
    """A warning when the photo changed more than the check allows."""
    if changed_fraction <= check.max_changed_fraction:
        return None
    return Finding("photo", point, f"{check.target} changed: {changed_fraction:.1%} of the "
                   f"view in {regions} region(s) differs from the baseline (allowed "
                   f"{check.max_changed_fraction:.1%})", "warning")


def gauge_finding(point: str, check: GaugeCheck, value: float,
                  off_scale: bool = False) -> Finding | None:
    """A critical finding when the gauge reads outside its expected range."""
    if not off_scale and check.in_range(value):
        return None
    lo, hi = check.range
    units = f" {check.units}" if check.units else ""
    where = "off the scale, " if off_scale else ""
    return Finding("gauge", point, f"{check.gauge} reads {where}{value:.3g}{units}, outside "
                   f"{lo:g}..{hi:g}{units}", "critical")


def radiation_finding(point: str, check: RadiationCheck, dose_rate: float,
                      stddev: float) -> Finding | None:
    """A finding when the dwell's mean dose rate exceeds the check's limit: critical when
    it does by more than three standard deviations, a warning within the counting noise."""
    if check.max_usv_h is None or dose_rate <= check.max_usv_h:
        return None
    sure = dose_rate - 3.0 * stddev > check.max_usv_h
    return Finding("radiation", point, f"dose rate {dose_rate:.3g} +- {stddev:.2g} uSv/h "
                   f"exceeds the limit of {check.max_usv_h:g} uSv/h",
                   "critical" if sure else "warning")
