"""Scenario files: validation with located messages, the bundled examples, timed faults."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from controller.wire import EventCode, Fault, Handpiece, Heartbeat, Start, State
from simulator import Scenario, ScenarioError, Simulator, load_scenario, parse_scenario
from simulator.scenario import bundled_scenarios
from tests.simulator.helpers import STEP, Host


def test_bundled_scenarios_are_valid() -> None:
    found = bundled_scenarios()
    assert {"clinic_session", "device_faults", "flaky_link", "selftest_failure"} <= set(found)
    for path in found.values():
        scenario = load_scenario(path)
        assert scenario.description


def test_an_empty_file_is_the_default_scenario() -> None:
    assert parse_scenario("") == Scenario()


def test_every_problem_is_reported_with_its_line_and_column() -> None:
    text = """seed: 3
handpiece: brush
skin:
  r_sc_ohm: 500
  colour: pink
events:
  - at_s: 1
    fault: overtemp
    target_c: 30
  - at_s: -2
    fault: nope
  - fault: drop
    direction: tx
"""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "s.yaml")
    lines = [str(p) for p in caught.value.problems]
    assert lines[0].startswith("s.yaml:2:1: handpiece: Input should be 'scalp_roller'")
    assert lines[1].startswith("s.yaml:4:3: skin.r_sc_ohm: Input should be greater than or equal")
    assert lines[2] == (
        "s.yaml:5:3: skin.colour: Extra inputs are not permitted — remove it or check its spelling"
    )
    assert lines[3].startswith("s.yaml:9:5: events[0].target_c: Input should be greater than 41")
    assert lines[4].startswith("s.yaml:11:5: events[1].fault: Input tag 'nope'")
    assert lines[5].startswith("s.yaml:12:5: events[2]: ") and "exactly one of" in lines[5]
    assert len(lines) == 6


def test_yaml_syntax_errors_are_located() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("events: [1,\n", "bad.yaml")
    problem = caught.value.problems[0]
    assert (problem.path, problem.where) == ("bad.yaml", "YAML")
    assert "fix the syntax" in problem.message


def test_a_scenario_must_be_a_mapping() -> None:
    with pytest.raises(ScenarioError, match="a scenario is a mapping"):
        parse_scenario("- 1\n- 2\n")


def test_a_missing_file_is_a_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read it"):
        load_scenario(tmp_path / "absent.yaml")


def test_scenario_faults_happen_at_their_time(make_sim: Callable[..., Simulator]) -> None:
    scenario = parse_scenario(
        "events:\n  - {at_s: 1.0, fault: contact_lost, duration_s: 0.5}\n"
        "  - {at_s: 3.0, fault: short_circuit}\n"
    )
    host = Host(make_sim(scenario=scenario))
    host.request(STEP)
    host.request(Start())
    for _ in range(9):
        host.advance(100)
        host.request(Heartbeat())
    assert host.sim.state == State.RUNNING
    host.advance(100)
    assert host.sim.state == State.RUNNING  # applied at 1000 ms, acts from the next tick
    host.advance(1)
    assert host.sim.state == State.HOLD
    hold = [e for e in host.events_of(EventCode.STATE_CHANGED) if e.arg & 0xFF == State.HOLD]
    assert hold[0].t_ms == 1001
    for _ in range(19):
        host.advance(100)
        host.request(Heartbeat())
    assert host.sim.state == State.RUNNING
    host.advance(98)
    assert host.sim.state == State.RUNNING
    host.advance(2)  # the short comes at 3000 ms and trips on the next tick
    assert host.sim.faults == Fault.SHORT_CIRCUIT


def test_scenario_seed_and_handpiece_apply_unless_overridden(
    make_sim: Callable[..., Simulator],
) -> None:
    scenario = parse_scenario("seed: 77\nhandpiece: comb\n")
    sim = make_sim(scenario=scenario, seed=None)
    assert sim.seed == 77
    assert sim.snapshot()["handpiece"] == Handpiece.COMB.name
    other = make_sim(scenario=scenario, seed=78, handpiece="flat_probe")
    assert other.seed == 78
    assert other.snapshot()["handpiece"] == Handpiece.FLAT_PROBE.name


def test_a_scenario_path_is_loaded(make_sim: Callable[..., Simulator]) -> None:
    path = bundled_scenarios()["selftest_failure"]
    sim = make_sim(scenario=str(path), seed=None)
    assert sim.state == State.FAULT and sim.faults == Fault.SELFTEST
