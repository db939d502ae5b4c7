"""The fuzzer of ``make fuzz`` in small: a few hundred cases of each target find nothing, the
same seed and case always give the same input, and a planted bug is caught (so these tests can
fail). The full runs (``python -m benchmarks.fuzz``) are not part of the suite."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import protocols
from benchmarks.fuzz import runner
from benchmarks.fuzz.library import LibraryFuzzer
from benchmarks.fuzz.records import RecordsFuzzer
from benchmarks.fuzz.runner import Case, Failure, Summary, replay, run_target
from benchmarks.fuzz.wire import WireFuzzer
from controller.records import RecordStore

SEED = 20261204
#: Past the library's fixed size extremes (the 1 MiB files take seconds each).
FIRST_RANDOM = 100
#: Generous: a loaded test machine must not turn a 50 ms input into a failure.
SLOW_S = 5.0


def explain(summary: Summary) -> str:
    lines = [f"{summary.escapes} escapes, {summary.slow} slow in {summary.cases} cases"]
    lines += [f"  {n} x {signature}" for signature, n in summary.signatures.most_common()]
    lines += [
        f"  case {r.case}: {r.description[:160]}\n    {r.detail[:300]}" for r in summary.first[:5]
    ]
    return "\n".join(lines)


def smoke(target: str, count: int, start: int = FIRST_RANDOM) -> Summary:
    summary = run_target(target, count, SEED, start=start, slow_s=SLOW_S)
    assert summary.cases == count
    return summary


def test_library_small_extremes_find_nothing() -> None:
    # empty, a BOM, NUL bytes, 1 MiB of newlines, just over 1 MiB
    summary = smoke("library", 5, start=0)
    assert summary.escapes == 0 and summary.slow == 0, explain(summary)


def test_library_mutants_find_nothing() -> None:
    summary = smoke("library", 300)
    assert summary.escapes == 0 and summary.slow == 0, explain(summary)
    assert summary.notes["batches"] >= 6  # load_library ran on folders of the same mutants
    assert summary.notes["loaded"] > 0 and summary.notes["refused"] > 0


def test_wire_streams_find_nothing() -> None:
    summary = smoke("wire", 600)
    assert summary.escapes == 0 and summary.slow == 0, explain(summary)
    assert summary.notes["counted: frames"] > 0 and summary.notes["counted: crc"] > 0


def test_records_damage_finds_nothing() -> None:
    summary = smoke("records", 250)
    assert summary.escapes == 0 and summary.slow == 0, explain(summary)
    assert summary.notes["verify: not ok"] > 0  # damage to the event log is seen


# --- the same case is always the same input ----------------------------------------------------


@pytest.mark.parametrize("make", [LibraryFuzzer, WireFuzzer, RecordsFuzzer])
def test_case_bytes_depend_only_on_seed_and_case(make: Any, tmp_path: Path) -> None:
    with make(tmp_path / "a") as first, make(tmp_path / "b") as second:
        indices = [FIRST_RANDOM + 7, FIRST_RANDOM + 8, FIRST_RANDOM + 123]
        one = [first.generate(SEED, i) for i in indices]
        # other cases in between must not change what a case is
        first.generate(SEED + 1, 5)
        again = [first.generate(SEED, i) for i in reversed(indices)][::-1]
        other = [second.generate(SEED, i) for i in indices]
    for a, b, c in zip(one, again, other, strict=True):
        assert a.data == b.data == c.data
        assert a.description == b.description == c.description
    assert len({case.data for case in one}) == len(one)
    assert first.generate(SEED, indices[0]).data != first.generate(SEED + 1, indices[0]).data


def test_library_extremes_are_the_first_cases(tmp_path: Path) -> None:
    with LibraryFuzzer(tmp_path) as fuzzer:
        sizes = [len(fuzzer.generate(s, 4).data) for s in (0, 1, 99)]
    assert sizes == [1024 * 1024 + 1] * 3  # "just over 1 MiB" whatever the seed


# --- planted bugs are caught --------------------------------------------------------------------


def test_a_planted_loader_exception_is_an_escape(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = protocols.load_protocol_text

    def planted(data: bytes | str, filename: str = "<editor>") -> protocols.LoadResult:
        if len(data) % 3 == 0:
            raise ZeroDivisionError("planted")
        return real(data, filename)

    monkeypatch.setattr(protocols, "load_protocol_text", planted)
    summary = run_target("library", 30, SEED, start=FIRST_RANDOM, save_dir=tmp_path)
    assert 0 < summary.escapes < 30
    assert any("ZeroDivisionError" in s for s in summary.signatures)
    saved = sorted(tmp_path.glob("escape-library-*.bin"))
    assert saved and all(p.with_suffix(".json").exists() for p in saved)
    target, failures = replay(saved[0])
    assert target == "library" and failures
    monkeypatch.setattr(protocols, "load_protocol_text", real)
    assert replay(saved[0])[1] == []


def test_a_planted_bad_problem_is_an_invariant_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    real = protocols.load_protocol_text

    def planted(data: bytes | str, filename: str = "<editor>") -> protocols.LoadResult:
        result = real(data, filename)
        problems = tuple(
            dataclasses.replace(p, line=0, message=f"while scanning {p.message}")
            for p in result.problems
        )
        return dataclasses.replace(result, problems=problems)

    monkeypatch.setattr(protocols, "load_protocol_text", planted)
    summary = run_target("library", 20, SEED, start=FIRST_RANDOM)
    kinds = " | ".join(summary.signatures)
    assert "problem line or column < 1" in kinds
    assert "parser text in a message" in kinds


def test_a_planted_decoder_exception_is_an_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.wire import decode_message as real

    def planted(frame: Any) -> Any:
        if frame.type == 0x03:
            raise KeyError("planted")
        return real(frame)

    monkeypatch.setattr("benchmarks.fuzz.wire.decode_message", planted)
    summary = run_target("wire", 300, SEED)
    assert summary.escapes > 0
    assert any("decode_message: KeyError" in s for s in summary.signatures)


def test_a_covered_change_verify_misses_is_an_invariant_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = RecordStore.verify_chain
    planting = False

    def planted(self: RecordStore) -> Any:
        report = real(self)
        return dataclasses.replace(report, ok=True) if planting else report

    monkeypatch.setattr(RecordStore, "verify_chain", planted)
    with RecordsFuzzer(tmp_path) as fuzzer:  # set up with the real check
        planting = True
        failures: list[Failure] = []
        notes: Counter[str] = Counter()
        for index in range(FIRST_RANDOM, FIRST_RANDOM + 60):
            case = fuzzer.generate(SEED, index)
            if case.meta.get("covered"):
                try:
                    failures += fuzzer.check(case, notes)
                except Exception:  # an escape of its own: not what this test is about
                    continue
    assert any(f.signature.startswith("a change to a covered row") for f in failures)


# --- the runner stops a case that hangs ----------------------------------------------------------


class _Hangs:
    name = "library"
    default_count = 2
    batch = 1

    def __enter__(self) -> _Hangs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def generate(self, seed: int, index: int) -> Case:
        return Case(self.name, seed, index, "hangs" if index else "quick", b"x")

    def check(self, case: Case, notes: Counter[str]) -> list[Failure]:
        while case.index:
            time.sleep(0.01)
        return []

    def check_batch(self, cases: Any, notes: Counter[str]) -> list[tuple[Case, Failure]]:
        return []


def test_a_hanging_case_is_stopped_and_reported_slow() -> None:
    began = time.monotonic()
    summary = runner.run_chunk(_Hangs(), 0, 0, 2, slow_s=0.1, timeout_s=0.3)
    assert time.monotonic() - began < 5
    assert summary.slow == 1 and summary.escapes == 0
    assert summary.first[0].case == 1 and "timed out" in summary.first[0].signature


FIXTURES = sorted((Path(__file__).resolve().parents[1] / "data" / "fuzz").glob("escape-*.bin"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_every_escape_found_so_far_stays_fixed(fixture: Path) -> None:
    """Each escape the fuzzer found is kept as a fixture and replayed here."""
    _target, failures = replay(fixture)
    assert failures == []
