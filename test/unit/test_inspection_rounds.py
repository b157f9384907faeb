"""Inspection round files: the shipped round fits the south_pole reactor site; malformed
rounds are refused naming the file, the point and the field; points inside the keep-out
radius and unknown targets are refused."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from ilrs_robots.core.inspection.rounds import (
    GaugeCheck,
    GaugeScale,
    PhotoCheck,
    RadiationCheck,
    RoundError,
    check_round_site,
    forecast_dose,
    keep_out_center,
    load_round,
    parse_round,
    parse_round_yaml,
)
from ilrs_robots.sim.radiation import RadiationField
from ilrs_robots.sim.world import load_world

ROOT = Path(__file__).resolve().parents[2]
ROUND_FILE = ROOT / "config" / "inspection" / "reactor_round.yaml"
SITE = load_world("south_pole").site("reactor_site")


def _raw() -> dict:
    return yaml.safe_load(ROUND_FILE.read_text())


def test_shipped_round_loads_and_fits_the_site() -> None:
    rnd = load_round("reactor_round")
    assert rnd.site == "reactor_site" and rnd.world == "south_pole"
    assert len(rnd.points) == 6
    kinds = {c.kind for p in rnd.points for c in p.checks}
    assert kinds == {"photo", "gauge", "radiation"}
    check_round_site(rnd, SITE)
    cx, cy = keep_out_center(SITE)
    assert (cx, cy) == (130.0, 100.0)
    for p in rnd.points:
        assert math.hypot(p.pose.x - cx, p.pose.y - cy) >= rnd.keep_out_radius
    gauges = [c for p in rnd.points for c in p.checks if isinstance(c, GaugeCheck)]
    assert {g.gauge for g in gauges} == {"gauge_coolant_pressure", "gauge_coolant_temp"}
    photos = [c for p in rnd.points for c in p.checks if isinstance(c, PhotoCheck)]
    assert {c.target for c in photos} == {"target_cable_tray", "target_radiator_east"}
    assert rnd.total_dwell_s == 160.0
    assert rnd.points[4].pose.yaw == pytest.approx(0.0)
    assert rnd.points[0].pose.yaw == pytest.approx(math.pi / 2)


def test_gauge_scale_maps_angles_and_values_both_ways() -> None:
    s = GaugeScale(-135.0, 135.0, 0.0, 10.0)
    assert s.value(-135.0) == 0.0 and s.value(135.0) == 10.0 and s.value(0.0) == 5.0
    assert s.angle(2.5) == pytest.approx(-67.5)
    assert s.degrees_per_unit == pytest.approx(27.0)
    reverse = GaugeScale(120.0, -120.0, 0.0, 100.0)  # a counter-clockwise dial
    assert reverse.value(0.0) == pytest.approx(50.0)
    assert reverse.angle(25.0) == pytest.approx(60.0)


def _refused(data: object) -> RoundError:
    with pytest.raises(RoundError) as info:
        parse_round(data, "rounds/bad.yaml")
    assert "rounds/bad.yaml" in str(info.value)
    return info.value


@pytest.mark.parametrize("path, value, point, field", [
    (("keep_out_radius",), -1.0, None, "keep_out_radius"),
    (("dose_budget_usv",), 0.0, None, "dose_budget_usv"),
    (("points",), [], None, "points"),
    (("site",), None, None, "site"),
    (("speed",), 1.0, None, "speed"),
    (("points", 1, "pose", "x"), "east", 1, "pose.x"),
    (("points", 2, "pose"), [149.0, 100.0], 2, "pose"),
    (("points", 3, "pose", "yaw_deg"), None, 3, "pose.yaw_deg"),
    (("points", 0, "checks"), [], 0, "checks"),
    (("points", 0, "checks", 0), {"thermal": {"target": "x"}}, 0, "checks[0].thermal"),
    (("points", 0, "checks", 1, "radiation", "dwell_s"), 0, 0, "checks[1].radiation.dwell_s"),
    (("points", 0, "checks", 0, "photo", "target"), "", 0, "checks[0].photo.target"),
    (("points", 4, "checks", 0, "gauge", "range"), [700.0, 500.0], 4,
     "checks[0].gauge.range"),
    (("points", 4, "checks", 0, "gauge", "range"), [900.0, 1000.0], 4,
     "checks[0].gauge.range"),
    (("points", 5, "checks", 0, "gauge", "scale", "max_value"), 0.0, 5,
     "checks[0].gauge.scale.max_value"),
    (("points", 5, "checks", 0, "gauge", "scale", "max_angle_deg"), -135.0, 5,
     "checks[0].gauge.scale.max_angle_deg"),
    (("points", 5, "checks", 0, "gauge", "scale", "min_angle_deg"), None, 5,
     "checks[0].gauge.scale.min_angle_deg"),
    (("points", 5, "checks", 0, "gauge", "colour"), "red", 5, "checks[0].gauge.colour"),
    (("points", 5, "name"), "gauge_coolant_temp_west", 5, "name"),
])
def test_malformed_round_is_refused_naming_file_point_and_field(
        path: tuple, value: object, point: int | None, field: str) -> None:
    data = _raw()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    err = _refused(data)
    assert err.field == field, str(err)
    assert err.point == point, str(err)
    if point is not None:
        assert f"point {point} ({data['points'][point]['name']})" in str(err)
    assert f"'{field}'" in str(err)


def test_not_a_mapping_and_bad_yaml_are_refused() -> None:
    assert _refused([1, 2]).field == "(top)"
    data = _raw()
    data["points"][2] = "east_survey"
    err = _refused(data)
    assert err.point == 2 and err.field == "(top)"
    with pytest.raises(RoundError, match="not valid YAML"):
        parse_round_yaml("points: [", "x.yaml")
    with pytest.raises(RoundError, match="cannot be read"):
        load_round(ROOT / "config" / "inspection" / "no_such_round.yaml")


def test_a_point_inside_the_keep_out_radius_is_refused() -> None:
    data = _raw()
    data["points"][3]["pose"] = {"x": 130.0, "y": 109.0, "yaw_deg": 0.0}  # 9 m north
    rnd = parse_round(data, "bad.yaml")
    with pytest.raises(RoundError) as info:
        check_round_site(rnd, SITE)
    assert info.value.point == 3 and info.value.field == "pose"
    assert "keep-out" in str(info.value) and "9.00 m" in str(info.value)
    data["keep_out_radius"] = 8.0  # the same point is fine with a smaller keep-out
    check_round_site(parse_round(data, "ok.yaml"), SITE)


def test_unknown_targets_and_non_gauges_are_refused_against_the_site() -> None:
    data = _raw()
    data["points"][0]["checks"][0]["photo"]["target"] = "target_pump"
    rnd = parse_round(data, "bad.yaml")
    with pytest.raises(RoundError, match="target_pump") as info:
        check_round_site(rnd, SITE)
    assert info.value.point == 0 and info.value.field == "checks[0].photo.target"
    check_round_site(rnd, SITE, require_objects=False)
    data = _raw()
    data["points"][4]["checks"][0]["gauge"]["name"] = "radiator_west"
    with pytest.raises(RoundError, match="not a gauge"):
        check_round_site(parse_round(data, "bad.yaml"), SITE)
    data = _raw()
    data["site"] = "construction_site"
    with pytest.raises(RoundError, match="site"):
        check_round_site(parse_round(data, "bad.yaml"), SITE)


def test_optional_fields_default_and_baselines_resolve_next_to_the_file() -> None:
    data = copy.deepcopy(_raw())
    data["points"][0]["checks"][0]["photo"]["baseline"] = "baselines/tray.png"
    data["points"][2]["checks"][0]["radiation"].pop("max_usv_h")
    rnd = parse_round(data, "/srv/rounds/r.yaml")
    photo = rnd.points[0].checks[0]
    assert isinstance(photo, PhotoCheck)
    assert rnd.baseline_path(photo) == Path("/srv/rounds/baselines/tray.png")
    rad = rnd.points[2].checks[0]
    assert isinstance(rad, RadiationCheck) and rad.max_usv_h is None
    assert rnd.baseline_path(rnd.points[1].checks[0]) is None  # type: ignore[arg-type]


def test_dose_forecast_in_a_uniform_field_is_rate_times_time() -> None:
    rnd = load_round("reactor_round")
    start = (116.0, 81.0)
    fc = forecast_dose(rnd, lambda xy: np.full(len(xy), 3.6), start, speed=0.5,
                       seconds_per_check=10.0)
    here, seconds = np.array(start), 0.0
    for p in rnd.points:
        there = np.array([p.pose.x, p.pose.y])
        seconds += float(np.linalg.norm(there - here)) / 0.5
        seconds += sum(c.dwell_s if isinstance(c, RadiationCheck) else 10.0 for c in p.checks)
        here = there
    assert fc.total == pytest.approx(3.6 * seconds / 3600.0, rel=1e-9)
    assert len(fc.legs) == len(fc.stops) == 6
    rest = forecast_dose(rnd, lambda xy: np.full(len(xy), 3.6), start, from_point=4)
    assert len(rest.legs) == 2


def test_dose_forecast_of_the_shipped_round_in_the_world_field_is_within_budget() -> None:
    field = RadiationField.from_world(load_world("south_pole"))
    rnd = load_round("reactor_round")

    def rate(xy: np.ndarray) -> np.ndarray:
        return field.dose_rates(np.column_stack([xy, np.full(len(xy), 0.5)]))

    fc = forecast_dose(rnd, rate, (116.0, 81.0))
    assert fc.total < rnd.dose_budget_usv / 5  # room for detours and a stronger source
    # the two gauge stops, in the beam of the berm's opening, take most of it
    assert fc.stops[4] + fc.stops[5] > 0.5 * sum(fc.stops)
    stronger = RadiationField.from_world(load_world("south_pole"))
    stronger.sources[0] = dataclasses.replace(stronger.sources[0],
                                              dose_rate_at_1m=100 * field.sources[0]
                                              .dose_rate_at_1m)
    hot = forecast_dose(rnd, lambda xy: stronger.dose_rates(
        np.column_stack([xy, np.full(len(xy), 0.5)])), (116.0, 81.0))
    assert hot.total > rnd.dose_budget_usv
    with pytest.raises(ValueError, match="speed"):
        forecast_dose(rnd, rate, (0.0, 0.0), speed=0.0)


def test_every_point_of_the_shipped_round_is_a_goal_the_shipped_navigator_accepts():
    """The round and the navigation settings ship together: no point may lie inside the
    navigator's keep-outs grown by its footprint (it would refuse it as IN_KEEP_OUT), nor the
    terrain mapper's reactor exclusion zone."""
    from ilrs_robots.core.navigation_support import parse_keep_outs

    def params(name: str) -> dict:
        data = yaml.safe_load((ROOT / "config" / "params" / f"{name}.yaml").read_text())
        return next(iter(data.values()))["ros__parameters"]

    nav, mapper = params("navigator"), params("terrain_mapper")
    zones = parse_keep_outs(nav["keep_outs"])
    reactor_x, reactor_y = keep_out_center(SITE)
    for point in load_round(ROUND_FILE).points:
        for zone in zones:
            distance = math.hypot(point.pose.x - zone.x, point.pose.y - zone.y)
            assert distance > zone.radius + nav["footprint_radius"], (point.name, zone.name)
        distance = math.hypot(point.pose.x - reactor_x, point.pose.y - reactor_y)
        assert distance > mapper["keep_out_radius_reactor"] + nav["footprint_radius"], point.name
