"""Robots that share the embedded simulator: one `sim` process, parameters merged."""

from __future__ import annotations

import pytest

from ilrs_robots.runner.stacks import NodeSpec, StackError, load_stack, merge_shared


def test_the_site_runs_one_simulator_for_the_rover_and_the_printer():
    site = load_stack("site", "sim", "/run/x")
    sims = [n for n in site.nodes if n.executable == "sim"]
    assert len(sims) == 1
    assert sims[0].parameters["robot"] == "rover1"
    assert sims[0].parameters["printer"] is True
    assert sims[0].parameters["printer_robot"] == "builder1"
    assert sims[0].required
    keys = [f"{n.namespace}/{n.name}" for n in site.nodes]
    assert len(keys) == len(set(keys))
    assert "builder1/construction" in keys and "rover1/base_driver" in keys
    base = next(n for n in site.nodes if n.name == "base_driver")
    assert base.parameters["odom_frame"] == "odom"  # rover1 keeps the single-rover frames


def test_emulated_site_keeps_each_robots_own_emulators():
    site = load_stack("site", "emulated", "/run/x")
    assert {n.executable for n in site.nodes} >= {"roboclaw_emulator", "printer_emulator"}
    assert not [n for n in site.nodes if n.executable == "sim"]


def test_two_rovers_cannot_share_one_simulator():
    nodes = [NodeSpec("sim", "sim", "", parameters={"robot": "rover1"}, robot="rover1"),
             NodeSpec("sim", "sim", "", parameters={"robot": "rover2"}, robot="rover2")]
    with pytest.raises(StackError, match="'robot' to 'rover1' and 'rover2'"):
        merge_shared(nodes, "x.yaml")


def test_different_programs_under_one_name_are_refused():
    nodes = [NodeSpec("sim", "sim", ""), NodeSpec("other", "sim", "")]
    with pytest.raises(StackError, match="different programs"):
        merge_shared(nodes, "x.yaml")


def test_the_station_still_refuses_the_embedded_simulator():
    with pytest.raises(StackError, match="emulated"):
        load_stack("station", "sim", "/run/x")
