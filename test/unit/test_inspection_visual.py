"""Visual checks on images drawn with OpenCV: gauge needle angles read within a degree
through noise, blur and light changes; planted objects found (and nothing else) after a
small change of viewpoint and brightness; alignment refused with a reason when the photo
shows something else."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ilrs_robots.core.inspection.rounds import GaugeCheck, GaugeScale
from ilrs_robots.core.inspection.synthetic import (
    Viewpoint,
    degrade,
    draw_gauge,
    foreshorten,
    plant_object,
    textured_scene,
)
from ilrs_robots.core.inspection.visual import (
    AlignmentError,
    GaugeError,
    align,
    check_gauge,
    detect_changes,
    draw_regions,
    iou,
    read_gauge,
)

SCALE = GaugeScale(-135.0, 135.0, 0.0, 10.0)


def _gauge(seed: int, angle: float, scale: GaugeScale = SCALE, size: int = 240) -> np.ndarray:
    rng = np.random.default_rng(seed)
    off = tuple(int(v) for v in rng.integers(-12, 13, 2))
    return degrade(draw_gauge(angle, scale, size=size, offset=off), seed, noise=8.0,
                   blur=1.5, gain=float(rng.uniform(0.7, 1.2)), bias=float(rng.uniform(-20, 20)))


def test_gauge_angles_are_read_within_a_degree() -> None:
    errors = []
    for seed in range(24):
        angle = float(np.random.default_rng(1000 + seed).uniform(-135.0, 135.0))
        reading = read_gauge(_gauge(seed, angle), SCALE)
        errors.append(abs(reading.angle_deg - angle))
        assert reading.value == pytest.approx(SCALE.value(angle), abs=1.0 / 27.0 * 1.5)
        assert not reading.off_scale
    assert max(errors) < 1.5, errors
    assert float(np.mean(errors)) < 0.6, errors


def test_small_noisy_blurred_gauges_are_read_within_two_degrees() -> None:
    for seed in range(12):
        rng = np.random.default_rng(2000 + seed)
        angle = float(rng.uniform(-135.0, 135.0))
        img = degrade(draw_gauge(angle, SCALE, size=120), seed, noise=15.0, blur=2.5,
                      gain=float(rng.uniform(0.7, 1.2)))
        assert read_gauge(img, SCALE).angle_deg == pytest.approx(angle, abs=2.0)


@pytest.mark.parametrize("squash, axis", [(0.9, 0.0), (0.8, 30.0), (0.75, 100.0)])
def test_a_dial_seen_obliquely_is_read_as_seen_face_on(squash: float, axis: float) -> None:
    for seed in range(6):
        angle = float(np.random.default_rng(3000 + seed).uniform(-135.0, 135.0))
        img = degrade(foreshorten(draw_gauge(angle, SCALE), squash, axis), seed, 6.0, 1.2)
        assert read_gauge(img, SCALE).angle_deg == pytest.approx(angle, abs=1.5)


def test_a_dial_seen_45_degrees_off_axis_is_read_or_refused_never_misread() -> None:
    refused = 0
    for seed in range(8):
        angle = float(np.random.default_rng(4000 + seed).uniform(-135.0, 135.0))
        img = degrade(foreshorten(draw_gauge(angle, SCALE), 0.7, 60.0), seed, 6.0, 1.2)
        try:
            reading = read_gauge(img, SCALE)
        except GaugeError:
            refused += 1
            continue
        assert reading.angle_deg == pytest.approx(angle, abs=2.0)
    assert refused <= 2  # most are read


@pytest.mark.parametrize("angle", [-135.0, -90.0, 0.0, 45.0, 90.0, 135.0])
def test_needle_at_the_scale_ends_and_cardinal_directions(angle: float) -> None:
    reading = read_gauge(_gauge(7, angle), SCALE)
    assert reading.angle_deg == pytest.approx(angle, abs=1.5)


def test_scale_spanning_12_oclock_the_other_way_and_off_scale_flag() -> None:
    scale = GaugeScale(200.0, 340.0, 0.0, 100.0)  # the upper-left quarter, clockwise
    reading = read_gauge(_gauge(3, 300.0, scale), scale)
    assert reading.value == pytest.approx(scale.value(300.0), abs=1.5)
    pinned = read_gauge(_gauge(4, 90.0), GaugeScale(-100.0, 60.0, 0.0, 10.0))
    assert pinned.off_scale


def test_out_of_range_gauge_is_flagged() -> None:
    check = GaugeCheck("gauge_coolant_pressure", (4.0, 8.0), SCALE, "bar")
    normal, ok = check_gauge(_gauge(11, SCALE.angle(6.0)), check)
    assert ok and normal.value == pytest.approx(6.0, abs=0.06)
    high, ok = check_gauge(_gauge(12, SCALE.angle(9.1)), check)
    assert not ok and high.value == pytest.approx(9.1, abs=0.06)
    low, ok = check_gauge(_gauge(13, SCALE.angle(3.7)), check)
    assert not ok


def test_gauge_in_a_region_of_interest_of_a_cluttered_picture() -> None:
    scene = textured_scene(5, (360, 480))
    scene[100:260, 250:410] = draw_gauge(-40.0, SCALE, size=160)
    reading = read_gauge(degrade(scene, 1, noise=5.0, blur=1.0), SCALE, roi=(230, 80, 200, 200))
    assert reading.angle_deg == pytest.approx(-40.0, abs=1.5)
    assert reading.center[0] == pytest.approx(330.0, abs=4.0)


def test_gauge_found_in_a_whole_cluttered_frame_without_a_region_of_interest() -> None:
    for seed in range(6):
        rng = np.random.default_rng(seed)
        angle = float(rng.uniform(-135.0, 135.0))
        scene = textured_scene(seed)  # has discs of its own, some crossed by lines
        size = int(rng.integers(110, 200))
        x, y = int(rng.integers(0, 640 - size)), int(rng.integers(0, 480 - size))
        scene[y:y + size, x:x + size] = draw_gauge(angle, SCALE, size=size)
        reading = read_gauge(degrade(scene, seed, 5.0, 1.0), SCALE)
        assert reading.angle_deg == pytest.approx(angle, abs=1.5)
        assert reading.center == pytest.approx((x + size / 2, y + size / 2), abs=3.0)


def test_a_line_across_a_disc_is_no_needle() -> None:
    img = np.full((240, 240, 3), 90, np.uint8)
    cv2.circle(img, (120, 120), 100, (235, 235, 230), -1, cv2.LINE_AA)
    cv2.line(img, (50, 50), (190, 190), (20, 20, 20), 3, cv2.LINE_AA)
    with pytest.raises(GaugeError, match="whole dial"):
        read_gauge(degrade(img, 0), SCALE)


def test_no_dial_or_no_needle_is_refused() -> None:
    flat = np.full((240, 240, 3), 120, np.uint8)
    with pytest.raises(GaugeError, match="no dial"):
        read_gauge(degrade(flat, 0), SCALE)
    blank = draw_gauge(0.0, SCALE)
    face = draw_gauge(0.0, SCALE, tail=False)
    # erase the needle: paint the face colour over it (hub left)
    face[30:105, 110:131] = blank[60, 60]
    with pytest.raises(GaugeError, match="needle"):
        read_gauge(face, SCALE)


def _pair(seed: int, planted: bool, strength: float = 1.0):
    scene = textured_scene(seed)
    changed, box = plant_object(scene, seed + 100) if planted else (scene, None)
    view, _ = Viewpoint.random(seed + 200, strength).apply(changed, seed)
    return scene, view, box


def test_planted_objects_are_found_and_nothing_else() -> None:
    tp = fp = fn = 0
    for seed in range(4):
        base, view, box = _pair(seed, planted=True)
        result = detect_changes(base, view)
        hits = [r for r in result.regions if iou(r.bbox, box) > 0.5]
        tp, fn = tp + bool(hits), fn + (not hits)
        fp += len(result.regions) - len(hits)
        assert result.changed_fraction > 0.005
    assert tp == 4 and fn == 0
    assert fp == 0


def test_unchanged_scene_under_new_viewpoint_and_light_shows_no_change() -> None:
    for seed in (20, 21):
        base, view, _ = _pair(seed, planted=False)
        result = detect_changes(base, view)
        assert result.regions == [], result.regions
        assert result.alignment.inliers >= 100


def test_over_exposure_is_no_change_but_an_object_in_it_is() -> None:
    scene = textured_scene(40)
    glare = Viewpoint(rotation_deg=1.5, shift=(6.0, -4.0), gain=1.45, bias=30.0)
    view, _ = glare.apply(scene, 1)
    assert (view.max(axis=2) >= 250).mean() > 0.05  # a good part is saturated
    assert detect_changes(scene, view).regions == []
    planted, box = plant_object(scene, 141)
    view, _ = glare.apply(planted, 1)
    assert any(iou(r.bbox, box) > 0.5 for r in detect_changes(scene, view).regions)


def test_a_moved_object_shows_where_it_left_and_where_it_went() -> None:
    scene = textured_scene(30)
    base, (x, y, w, h) = plant_object(scene, 131)
    nx, ny = (x + 200) % (640 - w - 40) + 20, (y + 150) % (480 - h - 40) + 20
    moved = scene.copy()
    moved[ny:ny + h, nx:nx + w] = base[y:y + h, x:x + w]  # the object, picked up and set down
    view, _ = Viewpoint.random(33).apply(moved, 3)
    result = detect_changes(base, view)
    assert any(iou(r.bbox, (x, y, w, h)) > 0.5 for r in result.regions), result.regions
    assert any(iou(r.bbox, (nx, ny, w, h)) > 0.5 for r in result.regions), result.regions
    assert len(result.regions) == 2
    assert draw_regions(view, result.regions).shape == view.shape


def test_alignment_with_another_scene_is_refused_with_a_reason() -> None:
    with pytest.raises(AlignmentError) as info:
        detect_changes(textured_scene(1), textured_scene(2))
    assert "agree on one view" in info.value.reason or "matches" in info.value.reason
    with pytest.raises(AlignmentError, match="too few features"):
        align(np.full((240, 320), 90, np.uint8), textured_scene(3)[:240, :320])
