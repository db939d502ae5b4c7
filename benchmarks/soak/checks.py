"""The soak's verdicts: pure functions over what the stations report (no I/O, no clock).

Per session: the outcome the expectation table asks for, the device seen inactive at the end
(by the engine's end check or an ESTOP in the record, and by the unit itself), the record
verified (hash chain and the session's seal), and nothing resumed after a lost link, a restart
or another unit unless the practitioner asked (a ``request`` event) after it.

Across the run, per station, after a warm-up: resident memory, threads, open descriptors and
Python objects within :attr:`Limits.tolerance` of their baseline (medians of a window, so one
busy moment is not a trend), and no queue or buffer of the long-lived objects growing.

``tests/soak/test_soak_short.py`` feeds broken results to these functions and checks that each
one breaks the run.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.soak.plan import EXPECTED, FAULT_CLASSES

#: Events after which delivery must not start again unless the practitioner asks.
TROUBLE_KINDS = frozenset({"link_lost", "device_restarted", "unit_changed"})
#: Commands that put output on again.
RESUMING = frozenset({"START", "RESUME"})
#: The practitioner's requests that may lead to output again (``request`` events).
RESUME_REQUESTS = frozenset({"continue", "resume", "confirm"})
OUTCOMES = ("completed", "stopped", "aborted", "faulted", "interrupted", "refused")
#: Resources that must stay flat (within the tolerance of their baseline).
FLAT = ("rss_kib", "threads", "tasks", "fds", "objects")
ACTIVE_STATES = frozenset({"RUNNING", "PAUSED", "HOLD", "STOPPING"})
#: What the record may say about the device at the end (see :func:`end_evidence`).
END_EVIDENCE = frozenset({"end_check:inactive", "end_check:other_unit", "estop:end"})


@dataclass(frozen=True)
class Limits:
    warmup: int = 10
    """Sessions per station before the baseline is taken."""
    window: int = 10
    """Samples in the baseline window and in the last window (medians)."""
    tolerance: float = 0.10
    """Growth allowed for the flat resources (last median over baseline median)."""
    queue_slack: int = 8
    """Items a queue may hold at the end beyond its largest size in the baseline window."""
    per_class: int = 20
    """Injections each catalogue fault must have had across the run."""


@dataclass(frozen=True)
class Breach:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _kind(event: Any) -> str:
    return str(event["kind"] if isinstance(event, Mapping) else event.kind)


def _data(event: Any) -> Mapping[str, Any]:
    data = event["data"] if isinstance(event, Mapping) else event.data
    return data if isinstance(data, Mapping) else {}


def _seq(event: Any) -> int:
    return int(event["seq"] if isinstance(event, Mapping) else event.seq)


def resumed_without_request(events: Iterable[Any]) -> list[str]:
    """START/RESUME ``command_sent`` after a ``link_lost``, ``device_restarted`` or
    ``unit_changed`` with no practitioner ``request`` (continue, resume, confirm) in between,
    in the order the record holds them."""
    found: list[str] = []
    trouble: Any = None
    for event in events:
        kind = _kind(event)
        if kind in TROUBLE_KINDS:
            trouble = event
        elif kind == "request" and _data(event).get("action") in RESUME_REQUESTS:
            trouble = None
        elif (
            kind == "command_sent"
            and _data(event).get("command") in RESUMING
            and trouble is not None
        ):
            found.append(
                f"{_data(event)['command']} (event {_seq(event)}) after "
                f"{_kind(trouble)} (event {_seq(trouble)}) with no practitioner request"
            )
    return found


def end_evidence(events: Sequence[Any]) -> str:
    """What the record says about the device when the session ended: the engine's end check
    (``end_check:inactive``, ``end_check:other_unit``), or ``estop:end`` when it sent ESTOP
    because it could not see the device inactive; empty when the record says neither."""
    ended = [i for i, e in enumerate(events) if _kind(e) == "session_end"]
    upto = ended[0] if ended else len(events)
    for event in reversed(events[:upto]):
        kind, data = _kind(event), _data(event)
        if kind == "end_check":
            return f"end_check:{data.get('result')}"
        if kind == "estop" and data.get("source") == "end":
            return "estop:end"
    return ""


def check_session(result: Mapping[str, Any]) -> list[Breach]:
    """Everything one session must satisfy (see the module docstring)."""
    where = f"session {result['index']} ({result['key']}, station {result['station']})"
    out: list[Breach] = []

    def breach(what: str) -> None:
        out.append(Breach(where, what))

    if result.get("error"):
        breach(f"did not run to its end: {result['error']}")
        return out
    expect = EXPECTED.get(result["key"])
    if expect is None:
        breach(f"no expectation for {result['key']!r} in plan.EXPECTED")
    elif not expect.accepts(result["outcome"]):
        breach(
            f"ended {result['outcome']} ({result.get('reason', '')}), expected "
            f"{expect.outcome}: {expect.why}"
        )
    if result.get("row_outcome") != result["outcome"]:
        breach(f"the record says {result.get('row_outcome')}, the engine {result['outcome']}")
    if result.get("device_state_end") in ACTIVE_STATES:
        breach(f"the unit was still {result['device_state_end']} after the session ended")
    if result.get("end_evidence", "") not in END_EVIDENCE:
        breach(
            "the record shows no end check (device seen inactive) and no ESTOP at the end "
            f"({result.get('end_evidence') or 'nothing'})"
        )
    if not result.get("verify_ok"):
        breach(f"the record does not verify: {result.get('verify_reason')}")
    if result.get("reasked"):
        breach(
            "the practitioner's STOP, asked before the trouble, did not end the session: it "
            f"waited ({result['reasked']}) and had to be ended again"
        )
    for violation in result.get("resume_violations", ()):
        breach(f"resumed without a request: {violation}")
    return out


@dataclass(frozen=True)
class Trend:
    """A resource over one station's sessions after the warm-up."""

    metric: str
    baseline: float
    last: float
    peak: float
    samples: int

    @property
    def growth(self) -> float:
        return self.last / self.baseline - 1 if self.baseline else float(self.last > 0)


def trend(metric: str, values: Sequence[float], limits: Limits) -> Trend | None:
    """Baseline and last value of ``values`` (one per session, oldest first): medians of the
    first and last windows after the warm-up (shorter windows when there are few samples)."""
    rest = list(values[limits.warmup :])
    if len(rest) < 2:
        return None
    window = max(1, min(limits.window, len(rest) // 3))
    return Trend(
        metric,
        statistics.median(rest[:window]),
        statistics.median(rest[-window:]),
        max(rest),
        len(rest),
    )


def queue_growth(
    name: str, values: Sequence[int], limits: Limits
) -> tuple[int, int, Breach | None]:
    """The largest size in the baseline window and in the last window; a breach when the
    last is more than ``queue_slack`` above the baseline."""
    rest = list(values[limits.warmup :]) or list(values)
    window = max(1, min(limits.window, len(rest) // 3))
    base, last = max(rest[:window]), max(rest[-window:])
    if last > base + limits.queue_slack:
        return base, last, Breach("", f"queue {name} grew from {base} to {last} items")
    return base, last, None


def check_station(station: Mapping[str, Any], limits: Limits) -> list[Breach]:
    """Flat resources and no growing queue over one station's samples."""
    where = f"station {station['station']}"
    out: list[Breach] = []
    if station.get("error"):
        out.append(Breach(where, f"the station failed: {station['error']}"))
    samples: list[Mapping[str, Any]] = station.get("samples", [])
    for metric in FLAT:
        values = [s[metric] for s in samples if s.get(metric) is not None]
        t = trend(metric, values, limits)
        if t is not None and t.growth > limits.tolerance:
            out.append(
                Breach(
                    where,
                    f"{metric} grew from {t.baseline:g} to {t.last:g} "
                    f"({t.growth:+.1%}, limit {limits.tolerance:+.0%})",
                )
            )
    names = sorted({n for s in samples for n in s.get("queues", {})})
    for name in names:
        values = [int(s.get("queues", {}).get(name, 0)) for s in samples]
        _, _, grown = queue_growth(name, values, limits)
        if grown is not None:
            out.append(Breach(where, grown.what))
    return out


def injected_counts(sessions: Iterable[Mapping[str, Any]]) -> Counter[str]:
    return Counter(f for s in sessions for f in s.get("injected", ()))


def check_run(
    stations: Sequence[Mapping[str, Any]], limits: Limits, *, combos_required: bool = True
) -> list[Breach]:
    """Every breach of the run: sessions, stations, and the coverage of the catalogue."""
    sessions = [s for st in stations for s in st.get("sessions", [])]
    out = [b for s in sessions for b in check_session(s)]
    for station in stations:
        out += check_station(station, limits)
    counts = injected_counts(sessions)
    for fault in FAULT_CLASSES:
        if counts[fault] < limits.per_class:
            out.append(
                Breach(
                    "run",
                    f"{fault} was injected {counts[fault]} times, fewer than {limits.per_class}",
                )
            )
    if combos_required:
        keys = {s["key"] for s in sessions if not s["key"].endswith(":missed")}
        for combo in ("reconnect+contact_lost", "paused+", "stopping+reset"):
            if not any(k.startswith(combo) for k in keys):
                out.append(Breach("run", f"no session had the combination {combo.rstrip('+')}"))
    return out


# --- what the run prints -------------------------------------------------------------------


def matrix(sessions: Iterable[Mapping[str, Any]]) -> dict[str, Counter[str]]:
    rows: dict[str, Counter[str]] = {}
    for s in sessions:
        rows.setdefault(s["key"], Counter())[s.get("outcome") or "error"] += 1
    return rows


def render_matrix(sessions: Sequence[Mapping[str, Any]]) -> str:
    """The fault × outcome matrix as a Markdown table; ``*`` marks the expected column."""
    rows = matrix(sessions)
    columns = [*OUTCOMES, "error"]
    used = [c for c in columns if any(r[c] for r in rows.values())]
    lines = [
        "| fault (story) | sessions | " + " | ".join(used) + " |",
        "|---|--:|" + "--:|" * len(used),
    ]
    order = list(EXPECTED)
    for key in sorted(rows, key=lambda k: order.index(k) if k in order else len(order)):
        counts = rows[key]
        expect = EXPECTED.get(key)
        cells = []
        for column in used:
            mark = "*" if expect is not None and expect.outcome == column else ""
            cells.append(f"{counts[column]}{mark}" if counts[column] or mark else "")
        lines.append(f"| {key} | {sum(counts.values())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_counts(sessions: Sequence[Mapping[str, Any]]) -> str:
    counts = injected_counts(sessions)
    return ", ".join(f"{f} {counts[f]}" for f in FAULT_CLASSES)


def _fmt(metric: str, value: float) -> str:
    if metric == "rss_kib":
        return f"{value / 1024:.1f} MiB"
    return f"{value:g}"


def render_resources(stations: Sequence[Mapping[str, Any]], limits: Limits) -> str:
    """Per station: each flat resource's baseline -> last (growth), and the queues' sizes."""
    lines = [
        f"(baseline: median of the {limits.window} sessions after {limits.warmup} of warm-up; "
        f"last: median of the last {limits.window}; limit {limits.tolerance:+.0%})",
        "",
        "| station | sessions | "
        + " | ".join(FLAT)
        + " | containers of the long-lived objects that held anything (largest: baseline"
        " -> last; all others stayed empty) |",
        "|---|--:|" + "---|" * (len(FLAT) + 1),
    ]
    for station in stations:
        samples = station.get("samples", [])
        cells = []
        for metric in FLAT:
            values = [s[metric] for s in samples if s.get(metric) is not None]
            t = trend(metric, values, limits)
            cells.append(
                "-"
                if t is None
                else f"{_fmt(metric, t.baseline)} -> {_fmt(metric, t.last)} ({t.growth:+.1%})"
            )
        names = sorted({n for s in samples for n in s.get("queues", {})})
        queues = []
        for name in names:
            values = [int(s.get("queues", {}).get(name, 0)) for s in samples]
            base, last, _ = queue_growth(name, values, limits)
            if max(values, default=0):  # the ones that held anything at all
                queues.append(f"{name} {base}->{last}")
        lines.append(
            f"| {station['station']} | {len(station.get('sessions', []))} | "
            + " | ".join(cells)
            + f" | {', '.join(queues)} |"
        )
    return "\n".join(lines)
