"""Inspection reports: JSON and one self-contained HTML page written atomically, the dose map
drawn, check outcomes turned into findings, and round progress that survives a restart."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ilrs_robots.core.inspection.report import (
    DoseMapPicture,
    DoseResult,
    FailedCheck,
    Finding,
    GaugeResult,
    PhotoResult,
    PointResult,
    RoundProgress,
    gauge_finding,
    photo_finding,
    radiation_finding,
    render_dose_map,
    write_report,
)
from ilrs_robots.core.inspection.rounds import load_round, parse_round
from ilrs_robots.core.inspection.synthetic import draw_gauge
from ilrs_robots.files import write_atomically

ROUND = load_round("reactor_round")


def _result(i: int, photo: str = "") -> PointResult:
    p = PointResult(i, ROUND.points[i].name, duration_s=12.5)
    if photo:
        p.photos.append(PhotoResult("target_cable_tray", photo, 0.031, [[10, 20, 30, 40]]))
    p.gauges.append(GaugeResult("gauge_coolant_pressure", 9.1, 110.7, "bar", [4.0, 8.0], False))
    p.doses.append(DoseResult(0.45, 0.08, 30.0, 134.0, 85.0))
    p.failed.append(FailedCheck("radiation", "radiation/reading silent for 10 s <&>"))
    return p


def test_dose_map_is_drawn_north_up_with_the_hot_spot_bright() -> None:
    grid = np.full((40, 60), 0.2)
    grid[30, 50] = 40.0      # row 30 of 40 (north), column 50 of 60 (east)
    grid[0, 0] = np.nan
    img = render_dose_map(grid, (100.0, 160.0, 80.0, 120.0), width=300)
    assert img.dtype == np.uint8 and img.ndim == 3
    h = int(round(300 * 40 / 60))
    hot = img[:h, :300].astype(int).sum(axis=2)
    y, x = np.unravel_index(np.argmax(hot), hot.shape)
    assert x > 240 and y < h / 2   # east and north
    assert tuple(img[h - 2, 1]) == (128, 128, 128)  # the NaN cell, south-west corner
    marked = render_dose_map(grid, (100.0, 160.0, 80.0, 120.0), [(130.0, 100.0, "reactor")],
                             width=300)
    assert tuple(marked[h // 2, 150]) == (255, 255, 255)  # the marker at the centre
    with pytest.raises(ValueError, match="extent"):
        render_dose_map(grid, (1.0, 0.0, 0.0, 1.0))


def test_report_is_written_as_json_and_self_contained_html(tmp_path: Path) -> None:
    photo = tmp_path / "tray.png"
    cv2.imwrite(str(photo), draw_gauge(30.0))
    progress = RoundProgress.start(ROUND, now=1_800_000_000.0)
    progress.record(_result(0, str(photo)), [Finding("gauge", "cable_tray_south",
                                                     "reads 9.1 <bar>", "critical")], 1.25)
    dose = DoseMapPicture(np.random.default_rng(0).uniform(0.1, 5.0, (20, 30)),
                          (110.0, 150.0, 80.0, 120.0), [(134.0, 85.0, "p1")])
    report = progress.report(ROUND, "completed", finished=1_800_000_300.0, dose_map=dose)
    js, page = write_report(report, tmp_path / "out")
    d = json.loads(js.read_text())
    assert d["round"] == "reactor_round" and d["points_done"] == 1 and d["points_total"] == 6
    assert d["duration_s"] == 300.0 and d["accumulated_dose_usv"] == 1.25
    assert d["findings"][0]["severity"] == "critical"
    assert d["points"][0]["gauges"][0]["value"] == 9.1
    assert d["points"][0]["failed"][0]["reason"].startswith("radiation/reading silent")
    assert d["dose_map"]["file"] == "report_dose_map.png"
    text = page.read_text()
    assert "src='http" not in text and "href=" not in text and "<script" not in text
    uris = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(uris) == 2  # the dose map and the photo
    for u in uris:
        img = cv2.imdecode(np.frombuffer(base64.b64decode(u), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.size > 0
    assert "reads 9.1 &lt;bar&gt;" in text and "&lt;&amp;&gt;" in text
    assert "1.25 uSv of a 20 uSv budget" in text
    leftovers = [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_missing_photo_is_named_not_linked(tmp_path: Path) -> None:
    progress = RoundProgress.start(ROUND)
    progress.record(_result(1, str(tmp_path / "gone.png")))
    _, page = write_report(progress.report(ROUND, "failed", error="navigation failed"), tmp_path)
    text = page.read_text()
    assert "gone.png not available" in text and "navigation failed" in text
    assert "data:image" not in text


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.json"
    write_atomically(target, "old")
    inode = os.stat(target).st_ino
    write_atomically(target, b"new")
    assert target.read_text() == "new" and os.stat(target).st_ino != inode
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.json"]


def test_progress_survives_a_restart_and_resumes_at_the_next_unvisited_point(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert RoundProgress.load(state, ROUND) is None
    progress = RoundProgress.start(ROUND)
    assert progress.next_point() == 0
    progress.record(_result(0), [Finding("photo", "cable_tray_south", "moved")], 0.5)
    progress.save(state)
    progress.record(_result(1), dose_usv=0.25)
    progress.save(state)
    # a new process: only the file is left
    again = RoundProgress.load(state, ROUND)
    assert again is not None
    assert again.next_point() == 2 and again.visited == {0, 1}
    assert again.accumulated_dose_usv == pytest.approx(0.75)
    assert again.findings == [Finding("photo", "cable_tray_south", "moved")]
    assert again.results[0].doses[0].x == 134.0
    assert again.results[1].gauges[0].in_range is False
    # a point recorded twice (the node died after saving) counts once
    again.record(_result(1))
    assert again.next_point() == 2 and len(again.results) == 2


def test_progress_of_another_round_version_or_a_finished_round_is_not_resumed(
        tmp_path: Path) -> None:
    progress = RoundProgress.start(ROUND)
    progress.record(_result(0))
    progress.save(tmp_path)
    data = yaml.safe_load(Path(ROUND.source).read_text())
    data["points"][1]["pose"]["x"] += 1.0
    edited = parse_round(data, ROUND.source)
    assert RoundProgress.load(tmp_path, edited) is None
    assert RoundProgress.load(tmp_path, ROUND) is not None
    for i in range(1, len(ROUND.points)):
        progress.record(_result(i))
    progress.save(tmp_path)
    assert progress.complete and RoundProgress.load(tmp_path, ROUND) is None
    RoundProgress.path(tmp_path, ROUND.name).write_text("{not json")
    assert RoundProgress.load(tmp_path, ROUND) is None
    RoundProgress.clear(tmp_path, ROUND.name)
    assert not RoundProgress.path(tmp_path, ROUND.name).exists()


def test_check_outcomes_become_findings() -> None:
    photo = ROUND.points[0].checks[0]
    rad = ROUND.points[0].checks[1]
    gauge = ROUND.points[5].checks[0]
    assert photo_finding("p", photo, 0.01, 1) is None  # type: ignore[arg-type]
    f = photo_finding("p", photo, 0.05, 2)  # type: ignore[arg-type]
    assert f is not None and f.severity == "warning" and "target_cable_tray" in f.text
    assert gauge_finding("p", gauge, 6.0) is None  # type: ignore[arg-type]
    g = gauge_finding("p", gauge, 9.1)  # type: ignore[arg-type]
    assert g is not None and g.severity == "critical" and "9.1 bar" in g.text
    assert gauge_finding("p", gauge, 6.0, off_scale=True) is not None  # type: ignore[arg-type]
    assert radiation_finding("p", rad, 0.9, 0.1) is None  # type: ignore[arg-type]
    weak = radiation_finding("p", rad, 1.1, 0.2)  # type: ignore[arg-type]
    assert weak is not None and weak.severity == "warning"
    strong = radiation_finding("p", rad, 3.0, 0.3)  # type: ignore[arg-type]
    assert strong is not None and strong.severity == "critical"
    assert strong.summary().startswith("[critical] radiation at p:")
    with pytest.raises(ValueError, match="severity"):
        Finding("photo", "p", "x", "bad")
