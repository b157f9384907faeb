"""Which inspection round `ilrs sim` ends with, and where its node keeps its files (no ROS)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ilrs_robots.core.inspection.rounds import RoundError
from ilrs_robots.runner.cli import build_parser, with_round
from ilrs_robots.runner.inspect_cli import mission_round
from ilrs_robots.runner.traverse import mission_goals
from ilrs_robots.sim.world import load_world


def test_the_reactor_round_is_run_in_its_world_only() -> None:
    rnd, why = mission_round("reactor_round", load_world("south_pole"))
    assert rnd is not None and why == ""
    assert rnd.name == "reactor_round" and rnd.site in load_world("south_pole").sites
    rnd, why = mission_round("reactor_round", load_world("test_flat"))
    assert rnd is None and "is for world 'south_pole', not 'test_flat'" in why
    assert mission_round("", load_world("south_pole")) == (None, "no inspection round asked for")


def test_the_round_waits_for_a_traverse_that_ends_at_its_site() -> None:
    """A shortened traverse (``--scale``) ends far from the reactor: no round then."""
    world = load_world("south_pole")
    for scale, expected in ((1.0, True), (0.15, False)):
        end = mission_goals(world, scale)[-1]
        rnd, why = mission_round("reactor_round", world, (end.x, end.y))
        assert (rnd is not None) == expected, why
        if not expected:
            assert why.startswith("the traverse ends ") and "from reactor_site" in why


def test_a_round_at_a_site_the_world_lacks_is_skipped_and_a_bad_one_refused(
        tmp_path: Path) -> None:
    data = {"name": "elsewhere", "site": "no_such_site", "keep_out_radius": 1.0,
            "dose_budget_usv": 1.0,
            "points": [{"name": "p", "pose": {"x": 3.0, "y": 0.0, "yaw_deg": 0.0},
                        "checks": [{"radiation": {"dwell_s": 5.0}}]}]}
    path = tmp_path / "elsewhere.yaml"
    path.write_text(yaml.safe_dump(data))
    rnd, why = mission_round(str(path), load_world("test_flat"))
    assert rnd is None and "has no site 'no_such_site'" in why
    path.write_text(yaml.safe_dump(dict(data, keep_out_radius=-1.0)))
    with pytest.raises(RoundError, match="keep_out_radius"):
        mission_round(str(path), load_world("test_flat"))
    with pytest.raises(RoundError, match="cannot be read"):
        mission_round(str(tmp_path / "missing.yaml"), load_world("test_flat"))


def test_the_round_keeps_reports_with_the_outputs_and_progress_with_the_run(
        tmp_path: Path) -> None:
    base = {"sim": {"rate": 1.0}}
    assert with_round(base, None, tmp_path / "out", tmp_path / "run") is base
    rnd, _ = mission_round("reactor_round", load_world("south_pole"))
    got = with_round(base, rnd, tmp_path / "out", tmp_path / "run")
    assert got["sim"] == {"rate": 1.0} and "inspection" not in base
    folders = got["inspection"]
    assert folders["report_dir"] == str(tmp_path / "out" / "inspection" / "reports")
    assert folders["baseline_dir"] == str(tmp_path / "out" / "inspection" / "baselines")
    assert folders["state_dir"] == str(tmp_path / "run" / "inspection" / "state")


def test_ilrs_sim_runs_the_reactor_round_unless_told_otherwise() -> None:
    parser = build_parser()
    assert parser.parse_args(["sim"]).inspect == "reactor_round"
    assert parser.parse_args(["sim", "--inspect", ""]).inspect == ""
