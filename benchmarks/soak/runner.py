"""The soak run: plan the sessions, start the stations, gather what they report, judge it."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import platform
import queue
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.soak.checks import (
    ACTIVE_STATES,
    END_EVIDENCE,
    Breach,
    Limits,
    check_run,
    render_counts,
    render_matrix,
    render_resources,
)
from benchmarks.soak.plan import (
    EXPECTED,
    FULL_TIMING,
    PROTOCOLS,
    SHORT_PROTOCOLS,
    SHORT_TIMING,
    ProtocolShape,
    Story,
    Timing,
    make_plan,
)
from benchmarks.soak.station import StationConfig, station_main


@dataclass(frozen=True)
class SoakOptions:
    stations: int = 3
    seed: int = 1
    per_class: int = 20
    min_sessions: int = 300
    combos_each: int = 3
    speed: float = 200.0
    timing: Timing = FULL_TIMING
    shapes: tuple[ProtocolShape, ...] = PROTOCOLS
    limits: Limits = field(default_factory=Limits)
    session_timeout_s: float = 120.0
    history_sessions: int = 4
    """30-minute sessions in each station's records before its day starts (history.py)."""
    run_timeout_s: float = 1800.0
    keep: bool = False
    combos_required: bool = True
    only: tuple[str, ...] = ()
    """Run only the stories whose row starts with one of these (for a closer look; the
    catalogue's coverage is then not judged)."""


#: ``make test``'s variant: a session or so per catalogue fault and per combination, two
#: stations, the shortest protocols; resources judged over the few sessions there are.
SHORT = SoakOptions(
    stations=2,
    seed=7,
    per_class=1,
    min_sessions=0,
    combos_each=1,
    speed=400.0,
    timing=SHORT_TIMING,
    shapes=SHORT_PROTOCOLS,
    limits=Limits(warmup=3, window=3, per_class=1, queue_slack=4, tolerance=0.25),
    session_timeout_s=60.0,
    history_sessions=1,
    run_timeout_s=240.0,
    combos_required=False,
)


@dataclass
class SoakRun:
    options: SoakOptions
    stories: list[Story]
    stations: list[dict[str, Any]]
    breaches: list[Breach]
    wall_s: float

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return [s for st in self.stations for s in st.get("sessions", [])]

    @property
    def ok(self) -> bool:
        return not self.breaches


def deal(stories: Sequence[Story], stations: int) -> list[list[Story]]:
    """Round robin: each station gets every n-th story, in plan order."""
    return [list(stories[i::stations]) for i in range(stations)]


def run_soak(options: SoakOptions) -> SoakRun:
    stories = make_plan(
        options.seed,
        per_class=options.per_class,
        min_sessions=options.min_sessions,
        combos_each=options.combos_each,
        shapes=options.shapes,
        timing=options.timing,
    )
    if options.only:
        stories = [s for s in stories if s.key.startswith(options.only)]
    ctx = multiprocessing.get_context("spawn")
    results: queue.Queue[dict[str, Any]] = ctx.Queue()  # type: ignore[assignment]
    procs = []
    started = time.monotonic()
    for n, share in enumerate(deal(stories, options.stations), 1):
        config = StationConfig(
            station=n,
            stories=share,
            seed=options.seed * 100 + n,
            speed=options.speed,
            timing=options.timing,
            shapes=options.shapes,
            session_timeout_s=options.session_timeout_s,
            history_sessions=options.history_sessions,
            keep=options.keep,
        )
        proc = ctx.Process(target=station_main, args=(config, results), name=f"soak-station-{n}")
        proc.start()
        procs.append(proc)
    gathered: dict[int, dict[str, Any]] = {}
    deadline = started + options.run_timeout_s
    while len(gathered) < len(procs) and time.monotonic() < deadline:
        try:
            result = results.get(timeout=1.0)
        except queue.Empty:
            if all(not p.is_alive() for p in procs) and results.empty():
                break
            continue
        gathered[int(result["station"])] = result
    for n, proc in enumerate(procs, 1):
        proc.join(10 if n in gathered else 0.1)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        if n not in gathered:
            gathered[n] = {
                "station": n,
                "error": f"no result within {options.run_timeout_s:g} s (exit {proc.exitcode})",
            }
    wall = time.monotonic() - started
    stations = [gathered[n] for n in sorted(gathered)]
    limits = options.limits
    if options.only:
        limits = dataclasses.replace(limits, per_class=0)
    breaches = check_run(
        stations, limits, combos_required=options.combos_required and not options.only
    )
    for station in stations:
        if station.get("sessions") is not None and not station.get("final_verify_ok"):
            breaches.append(
                Breach(
                    f"station {station['station']}",
                    f"the records do not verify: {station.get('final_verify_reason')}",
                )
            )
    return SoakRun(options, stories, stations, breaches, wall)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def report(run: SoakRun) -> str:
    """What ``make soak`` prints: the matrix, the figures and the verdict."""
    o = run.options
    sessions = run.sessions
    lines = [
        f"# epm soak, {time.strftime('%Y-%m-%d %H:%M')} on {platform.platform()}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}",
        f"# {len(sessions)} sessions (planned {len(run.stories)}) on {o.stations} stations, "
        f"seed {o.seed}, simulator at {o.speed:g}x (epm sim on a pty, one process per station)",
        "",
        "## fault x outcome (rows: the session's fault story; * the outcome expected)",
        "",
        render_matrix(sessions),
        "",
        f"Injections per catalogue fault: {render_counts(sessions)}",
        "",
        "## per-session checks",
        "",
    ]
    checks = {
        "outcome as expected": sum(1 for s in sessions if outcome_as_expected(s)),
        "device seen inactive at the end (record and unit)": sum(
            1 for s in sessions if device_seen_inactive(s)
        ),
        "record verified (chain, seal)": sum(1 for s in sessions if s.get("verify_ok")),
        "resumed without a request": sum(len(s.get("resume_violations", ())) for s in sessions),
        "sessions that did not end": sum(1 for s in sessions if s.get("error")),
    }
    lines += [f"- {name}: {value}" for name, value in checks.items()]
    unplanned = [u for s in sessions for u in s.get("unplanned", ())]
    missed = [s for s in sessions if s.get("missed")]
    in_flight = [s for s in sessions if s.get("engine_left")]
    walls = [s["wall_s"] for s in sessions if "wall_s" in s]
    lines += [
        f"- trouble before any injection (a busy host; answered with continue): {len(unplanned)}"
        + (f" ({', '.join(sorted(set(unplanned)))})" if unplanned else ""),
        f"- moves that never came due (the session ended first): {len(missed)}",
        "- sessions whose last device events arrived during the engine's final pass (not in "
        f"the record, see docs/benchmarks.md): {len(in_flight)}",
        f"- session wall time: median {_median(walls):.2f} s, max {max(walls, default=0):.2f} s",
        "",
        "## resources per station",
        "",
        render_resources(run.stations, o.limits),
        "",
    ]
    for st in run.stations:
        walls = [s["wall_s"] for s in st.get("sessions", []) if "wall_s" in s]
        k = max(1, min(o.limits.window, len(walls) // 3))
        lines.append(
            f"- station {st['station']}: {len(st.get('sessions', []))} sessions, "
            f"{st.get('chain_events', 0)} chained events, records "
            f"{st.get('db_bytes', 0) / 1e6:.1f} MB, "
            f"session wall median first {k} {_median(walls[:k]):.2f} s -> last {k} "
            f"{_median(walls[-k:]):.2f} s; other units adopted {st.get('adoptions', 0)}, "
            f"unit power-cycled for service {st.get('power_cycles', 0)}, simulator "
            f"{(st.get('sim_rss_kib') or 0) / 1024:.1f} MiB"
            + (f"; ERROR {st['error']}" if st.get("error") else "")
        )
    lines += ["", f"Wall time: {run.wall_s:.1f} s", ""]
    if run.breaches:
        lines.append(f"FAIL: {len(run.breaches)} breach(es)")
        lines += [f"  - {b}" for b in run.breaches[:200]]
        if len(run.breaches) > 200:
            lines.append(f"  ... and {len(run.breaches) - 200} more")
    else:
        lines.append("PASS: every check held")
    return "\n".join(lines)


def outcome_as_expected(session: Mapping[str, Any]) -> bool:
    expect = EXPECTED.get(session.get("key", ""))
    return expect is not None and not session.get("error") and expect.accepts(session["outcome"])


def device_seen_inactive(session: Mapping[str, Any]) -> bool:
    return (
        session.get("end_evidence") in END_EVIDENCE
        and session.get("device_state_end") is not None
        and session["device_state_end"] not in ACTIVE_STATES
    )
