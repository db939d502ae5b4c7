"""The soak's short variant (``make soak`` is the full one), and its checker fed broken runs.

The short variant runs a session or so per catalogue fault and per combination on two station
processes (each with its own ``epm sim`` on a pty) and must pass every check. The checker tests
below feed it results with one thing broken each (an outcome, a device left delivering, a record
that does not verify, a zone started again without a request, a thread, a descriptor, memory or
a queue that grows) and check that each one fails the run: a soak that cannot fail proves
nothing.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from benchmarks.soak.checks import (
    Limits,
    check_run,
    check_session,
    check_station,
    end_evidence,
    resumed_without_request,
)
from benchmarks.soak.plan import (
    COMBINATIONS,
    EXPECTED,
    FAULT_CLASSES,
    VARIANTS,
    make_plan,
)
from benchmarks.soak.runner import SHORT, report, run_soak


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_short_soak_passes_every_check() -> None:
    run = run_soak(SHORT)
    text = report(run)
    assert run.ok, text
    sessions = run.sessions
    assert len(sessions) == len(run.stories)
    injected = {f for s in sessions for f in s["injected"]}
    assert injected == set(FAULT_CLASSES), text
    assert {s["station"] for s in sessions} == {1, 2}
    assert "| fault (story) |" in text and "PASS" in text


# --- the expectation table and the plan --------------------------------------------------


def test_every_story_the_plan_can_draw_has_an_expected_outcome() -> None:
    keys = {f"{f}:{v}" if v else f for f in FAULT_CLASSES for v in VARIANTS[f]}
    keys |= set(COMBINATIONS) | {"none", "stopping+reset:missed", "stopping+reset:late"}
    assert keys <= set(EXPECTED), keys - set(EXPECTED)
    assert set(EXPECTED) <= keys, set(EXPECTED) - keys


def test_the_full_plan_has_300_sessions_and_every_fault_20_times() -> None:
    stories = make_plan(1, per_class=20, min_sessions=300, combos_each=3)
    assert len(stories) >= 300
    counts = {f: sum(f in s.faults for s in stories) for f in FAULT_CLASSES}
    assert min(counts.values()) >= 20, counts
    assert stories == make_plan(1, per_class=20, min_sessions=300, combos_each=3)  # seeded


# --- the checker, fed broken results -------------------------------------------------------


def _event(seq: int, kind: str, **data: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "data": data}


def _good_session(index: int = 1, key: str = "reset:continue") -> dict[str, Any]:
    return {
        "index": index,
        "station": 1,
        "key": key,
        "outcome": EXPECTED[key].outcome,
        "row_outcome": EXPECTED[key].outcome,
        "reason": "",
        "error": None,
        "injected": [key.partition(":")[0]] if key != "none" else [],
        "device_state_end": "IDLE",
        "end_evidence": "end_check:inactive",
        "verify_ok": True,
        "resume_violations": [],
        "reasked": "",
    }


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"outcome": "completed", "row_outcome": "completed", "key": "reset:end"}, "expected"),
        ({"row_outcome": "stopped"}, "the record says"),
        ({"device_state_end": "RUNNING"}, "still RUNNING"),
        ({"end_evidence": ""}, "no end check"),
        ({"verify_ok": False, "verify_reason": "event 12 changed"}, "does not verify"),
        ({"resume_violations": ["START (event 9) after link_lost"]}, "resumed without"),
        ({"error": "SessionHung: still recovery after 120 s"}, "did not run to its end"),
        ({"reasked": "recovery: waiting"}, "did not end the session"),
    ],
)
def test_a_broken_session_is_a_breach(change: dict[str, Any], words: str) -> None:
    assert check_session(_good_session()) == []
    broken = {**_good_session(), **change}
    breaches = check_session(broken)
    assert breaches and any(words in b.what for b in breaches), breaches


def test_a_start_after_a_restart_needs_the_practitioners_request_in_between() -> None:
    events = [
        _event(1, "command_sent", command="START"),
        _event(2, "device_restarted"),
        _event(3, "alarm_acknowledged", by="Dana"),
        _event(4, "command_sent", command="CONFIGURE_STEP"),
        _event(5, "command_sent", command="START"),
    ]
    (found,) = resumed_without_request(events)
    assert "START (event 5) after device_restarted (event 2)" in found
    asked = [*events[:3], _event(9, "request", action="continue"), *events[3:]]
    assert resumed_without_request(asked) == []
    ended = [*events[:3], _event(9, "request", action="end"), *events[3:]]
    assert resumed_without_request(ended)  # an END is no request to start again
    lost = [_event(1, "link_lost"), _event(2, "command_sent", command="RESUME")]
    assert resumed_without_request(lost)


def test_the_end_evidence_is_what_the_record_says_before_the_session_ended() -> None:
    inactive = [_event(1, "end_check", result="inactive"), _event(2, "session_end")]
    assert end_evidence(inactive) == "end_check:inactive"
    estop = [_event(1, "estop", source="end"), _event(2, "session_end")]
    assert end_evidence(estop) == "estop:end"
    operator = [_event(1, "estop", source="operator"), _event(2, "session_end")]
    assert end_evidence(operator) == ""
    late = [_event(1, "session_end"), _event(2, "end_check", result="inactive")]
    assert end_evidence(late) == ""


def _station(n: int = 30, **grow: float) -> dict[str, Any]:
    """A station's samples: flat (with a little noise) except the metrics in ``grow``
    (added per session)."""
    samples = []
    noise = itertools.cycle([0, 1, -1, 2, 0])
    for i in range(n):
        wobble = next(noise)
        samples.append(
            {
                "rss_kib": 50_000 + 100 * wobble + grow.get("rss_kib", 0) * i,
                "threads": 4 + grow.get("threads", 0) * i,
                "tasks": 4 + grow.get("threads", 0) * i,
                "fds": 25 + grow.get("fds", 0) * i,
                "objects": 40_000 + 20 * wobble + grow.get("objects", 0) * i,
                "queues": {
                    "dispatch_backlog": max(0, wobble),
                    "link_estop_marks": int(grow.get("queue", 0) * i),
                },
            }
        )
    return {"station": 1, "sessions": [], "samples": samples}


@pytest.mark.parametrize(
    ("grow", "words"),
    [
        ({"threads": 1}, "threads grew"),
        ({"fds": 1}, "fds grew"),
        ({"rss_kib": 400}, "rss_kib grew"),
        ({"objects": 600}, "objects grew"),
        ({"queue": 1}, "queue link_estop_marks grew"),
    ],
)
def test_a_leak_is_a_breach(grow: dict[str, float], words: str) -> None:
    limits = Limits()
    assert check_station(_station(), limits) == []
    breaches = check_station(_station(**grow), limits)
    assert any(words in b.what for b in breaches), breaches


def test_one_busy_sample_is_not_a_trend() -> None:
    station = _station()
    spike = copy.deepcopy(station)
    spike["samples"][-3]["threads"] = 9  # a short-lived thread caught once
    spike["samples"][-3]["rss_kib"] = 90_000
    assert check_station(spike, Limits()) == []


def test_a_fault_injected_too_rarely_fails_the_run() -> None:
    sessions = [_good_session(i, key) for i, key in enumerate(["reset:continue", "none"])]
    station = {**_station(), "sessions": sessions}
    breaches = check_run([station], Limits(per_class=1), combos_required=False)
    missing = {b.what.split()[0] for b in breaches}
    assert missing == set(FAULT_CLASSES) - {"reset"}
    combos = check_run([station], Limits(per_class=0), combos_required=True)
    assert {b.what for b in combos} == {
        "no session had the combination reconnect+contact_lost",
        "no session had the combination paused",
        "no session had the combination stopping+reset",
    }
