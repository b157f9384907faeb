"""Designs and printer configurations: the shipped examples build; bad ones are refused by
field, with the reason."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from ilrs_robots.core.construction.designs import (
    DesignError,
    check_design,
    parse_design,
    parse_design_yaml,
    parse_printer,
    parse_printer_yaml,
)

ROOT = Path(__file__).resolve().parents[2]
DESIGNS = sorted((ROOT / "config" / "designs").glob("*.yaml"))
PRINTERS = {p.stem: parse_printer_yaml(p.read_text())
            for p in sorted((ROOT / "config" / "printers").glob("*.yaml"))}
PASTE = PRINTERS["regolith_paste_gantry"]


def test_every_kind_of_structure_ships_as_an_example() -> None:
    kinds = {parse_design_yaml(p.read_text()).type for p in DESIGNS}
    assert kinds == {"landing_pad", "blast_berm", "straight_wall", "curved_wall",
                     "corbelled_dome", "shield_ring"}


@pytest.mark.parametrize("path", DESIGNS, ids=lambda p: p.stem)
def test_shipped_designs_build_on_their_printer(path: Path) -> None:
    design = parse_design_yaml(path.read_text())
    printer = PRINTERS[design.printer]
    assert check_design(design, printer) == printer.bead_height
    assert design.height > 0


def test_printers_read_both_modes() -> None:
    laser = PRINTERS["regolith_laser_sinter"]
    assert PASTE.mode == "paste" and laser.mode == "laser"
    assert laser.laser_dynamic and laser.laser_s == 800 and laser.laser_s_max == 1000
    assert PASTE.envelope_mm[1][0] == 8000.0


def test_shield_ring_is_the_reactor_berm_of_the_south_pole_world() -> None:
    world = yaml.safe_load((ROOT / "config" / "worlds" / "south_pole.yaml").read_text())
    objects = world["sites"]["reactor_site"]["objects"]
    berm = next(o for o in objects if o["name"] == "shield_berm")
    ring = parse_design_yaml((ROOT / "config" / "designs" / "shield_ring.yaml").read_text())
    thickness, height = berm["size"]
    assert ring.params["radius"] == berm["radius"]
    assert (ring.params["thickness"], ring.params["height"]) == (thickness, height)
    assert ring.params["gap_deg"] == berm["gap_deg"]
    assert ring.params["gap_azimuth_deg"] == berm["gap_azimuth_deg"]
    (region,) = ring.section(1.0)
    r = berm["radius"]
    for azimuth, inside in ((180.0, False), (180.0 + 19.0, False), (180.0 + 21.0, True),
                            (0.0, True), (90.0, True)):
        a = math.radians(azimuth)
        assert bool(region.contains(np.array(r * math.cos(a)), np.array(r * math.sin(a)))) \
            is inside, azimuth


def pad(**changes) -> dict:
    data = {"name": "p", "type": "landing_pad", "diameter": 3.0, "thickness": 0.04,
            "rim_width": 0.2, "rim_height": 0.04}
    data.update(changes)
    return data


@pytest.mark.parametrize(("data", "field", "reason"), [
    (pad(diameter=-1), "diameter", "must be > 0"),
    (pad(diameter="big"), "diameter", "must be a number"),
    (pad(thickness=None), "thickness", "is required"),
    (pad(rim_width=2.0), "rim_width", "wider than the pad's radius"),
    (pad(colour="grey"), "colour", "unknown field"),
    (pad(type="pyramid"), "type", "must be one of"),
    (pad(origin=[1, 2, 3]), "origin", "two numbers"),
    ({"name": "b", "type": "blast_berm", "radius": 5, "arc_deg": 90, "base_width": 1.0,
      "height": 1.0, "batter_deg": 45}, "batter_deg", "too shallow"),
    ({"name": "b", "type": "blast_berm", "radius": 5, "arc_deg": 400, "base_width": 1.0,
      "height": 0.2}, "arc_deg", "<= 360"),
    ({"name": "d", "type": "corbelled_dome", "diameter": 4, "height": 3, "wall_thickness": 0.3,
      "oculus_diameter": 4}, "oculus_diameter", "leaves no dome"),
])
def test_bad_designs_are_refused_naming_the_field(data: dict, field: str, reason: str) -> None:
    with pytest.raises(DesignError) as info:
        parse_design(data)
    assert info.value.field == field
    assert f"field '{field}'" in str(info.value) and reason in str(info.value)


def test_design_outside_the_envelope_is_refused() -> None:
    big = parse_design(pad(diameter=20.0))
    with pytest.raises(DesignError) as info:
        check_design(big, PASTE)
    assert info.value.field == "diameter" and "outside the envelope" in str(info.value)
    moved = parse_design(pad(origin=[7.5, 0.0]))
    with pytest.raises(DesignError) as info:
        check_design(moved, PASTE)
    assert info.value.field == "origin"
    tall = parse_design({"name": "w", "type": "straight_wall", "length": 2, "thickness": 0.3,
                         "height": 12.0})
    with pytest.raises(DesignError) as info:
        check_design(tall, PASTE)
    assert info.value.field == "height" and "taller than the envelope" in str(info.value)


def test_impossible_overhang_is_refused_with_the_angle() -> None:
    dome = {"name": "d", "type": "corbelled_dome", "diameter": 10.0, "height": 5.0,
            "wall_thickness": 0.3, "oculus_diameter": 1.0, "profile": "hemisphere"}
    with pytest.raises(DesignError) as info:
        check_design(parse_design(dome), PASTE)
    assert info.value.field == "profile"
    assert "impossible overhang" in str(info.value) and "deg from vertical" in str(info.value)
    # a 45 deg cone holds; a steeper one only with thinner layers (each steps in less)
    cone = dict(dome, profile="cone", height=5.0)  # 45 deg: 20 mm per 20 mm layer < 25 mm
    check_design(parse_design(cone), PASTE)
    steep = dict(cone, height=3.0)  # 59 deg: 33 mm per layer
    with pytest.raises(DesignError, match="impossible overhang"):
        check_design(parse_design(steep), PASTE)
    check_design(parse_design(steep), PASTE, layer_height=0.01)  # 17 mm per 10 mm layer


def test_walls_narrower_than_a_bead_and_thick_layers_are_refused() -> None:
    thin = parse_design({"name": "w", "type": "straight_wall", "length": 2, "thickness": 0.03,
                         "height": 0.5})
    with pytest.raises(DesignError) as info:
        check_design(thin, PASTE)
    assert info.value.field == "thickness" and "bead width" in str(info.value)
    with pytest.raises(DesignError) as info:
        check_design(parse_design(pad(layer_height=0.03)), PASTE)
    assert info.value.field == "layer_height"


def test_bad_printer_configs_are_refused_naming_the_field() -> None:
    data = yaml.safe_load((ROOT / "config/printers/regolith_paste_gantry.yaml").read_text())
    parse_printer(data)
    for path, value, field in ((("bead", "width"), 0, "bead.width"),
                               (("envelope", "x"), [5, -5], "envelope.x"),
                               (("mode",), "glue", "mode"),
                               (("feed", "print_mm_min"), -1, "feed.print_mm_min")):
        bad = yaml.safe_load(yaml.safe_dump(data))
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        with pytest.raises(DesignError) as info:
            parse_printer(bad)
        assert info.value.field == field, str(info.value)
    laser = dict(data, mode="laser")
    with pytest.raises(DesignError, match="laser"):
        parse_printer(laser)
