"""One treatment room for a day: a process that runs its sessions back to back.

Each station owns a data folder, one :class:`~controller.records.RecordStore`, one long-lived
:class:`~controller.device.DeviceClient` and its EPM-1 (``epm sim`` on a pty in a process of its
own, see :mod:`benchmarks.soak.simproc`). For every session it builds a
:class:`~controller.session.engine.SessionEngine` on that same client and store, plays the
session's story (:class:`~benchmarks.soak.plan.Story`) as the trainer (faults, injected through
the simulator's control socket and recorded in the session as training faults first) and as the
practitioner (:class:`Practitioner`: every decision an explicit ``SessionEngine.request``), then
reads the record back and checks it, puts the unit back as a technician would, and samples the
process's resources.

Between sessions, as in a clinic: the trainer's conditions are removed, a unit left with a fault
a session start never clears (SELFTEST, OUTPUT_FAULT) is switched off and on, a hot handpiece is
left to cool, the link is given time to come back, and another unit that answered is confirmed
(``adopt_other_unit``, what the device screen does when the operator confirms it).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import tempfile
import threading
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.soak.checks import end_evidence, resumed_without_request
from benchmarks.soak.history import write_history
from benchmarks.soak.plan import (
    FIXABLE,
    Move,
    ProtocolShape,
    Story,
    Timing,
    write_protocols,
)
from benchmarks.soak.simproc import ACTIVE_STATES, SimProcess
from controller.device import DeviceClient
from controller.link import LinkState
from controller.records import RecordStore, chain, coverage
from controller.session.engine import SessionEngine
from controller.session.headless import checklist_answers
from controller.session.model import Action, Phase, SessionPlan, SessionSnapshot
from protocols import load_protocol

PRACTITIONER = "Soak Practitioner"
TRAINER = "soak"
#: The practitioner looks at the screen at least this often (and whenever the engine says
#: something changed).
LOOK_S = 0.01
#: Phases in which something went wrong and the practitioner has to decide.
TROUBLE = frozenset({Phase.FAULT, Phase.RECOVERY, Phase.LINK_LOST})
#: Contacts the engine starts a zone on.
GOOD_CONTACT = frozenset({"ok", "marginal"})


class SessionHungError(RuntimeError):
    """A session did not end within its time (a breach: the session was left running)."""


@dataclass
class StationConfig:
    station: int
    stories: list[Story]
    seed: int
    speed: float
    timing: Timing
    shapes: tuple[ProtocolShape, ...]
    session_timeout_s: float = 120.0
    history_sessions: int = 4
    """Real-sized sessions already in the records when the day starts (see history.py)."""
    keep: bool = False
    """Keep the station's folder (records, simulator log) for a look afterwards."""
    folder: str | None = None
    """Where the station's folder goes (a temporary folder by default)."""


@dataclass
class Practitioner:
    """Plays one session's story on a running engine (see the module docstring).

    The practitioner never acts on the device: it looks at the engine's snapshot, injects the
    trainer's faults when the story says, and answers trouble with explicit requests:
    acknowledge, remove the cause, clear faults, then continue or end as the story decides.
    Trouble before any fault was injected (a busy host, say) is answered with continue and
    noted as unplanned."""

    engine: SessionEngine
    sim: SimProcess
    story: Story
    timing: Timing
    pending: list[Move] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    """Injected device conditions still in place."""
    unplanned: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    key: str = ""
    """The matrix row, as it turned out (``stopping+reset`` may become ``:missed``/``:late``)."""
    requests: int = 0
    _changed: threading.Event = field(default_factory=threading.Event)
    _asked: dict[Action, float] = field(default_factory=dict)
    reasked: str = ""
    """Set when a session the practitioner had stopped did not end by itself after trouble
    (``stopped`` stories): the practitioner had to end it again."""
    _hold_since: float | None = None
    _trouble_seen: bool = False
    _trouble_since: float | None = None

    def __post_init__(self) -> None:
        self.pending = list(self.story.moves)
        self.key = self.story.key
        self.engine.add_listener(lambda _notice: self._changed.set())

    # --- the session -----------------------------------------------------------------------

    def run(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.engine.finished:
            if time.monotonic() > deadline:
                snap = self.engine.snapshot()
                raise SessionHungError(
                    f"still {snap.phase.value} after {timeout:g} s ({snap.message}); moves "
                    f"left: {[m.do for m in self.pending]}"
                )
            self._changed.wait(LOOK_S)
            self._changed.clear()
            self.engine.drain_telemetry()  # as the run screen does on its timer
            snap = self.engine.snapshot()
            if snap.phase in (Phase.FINISHED, Phase.REFUSED, Phase.PREFLIGHT):
                continue
            if self._move(snap):
                continue
            self._react(snap)
        self.missed += [f"{m.when}:{m.do}" for m in self.pending]
        if self.key == "stopping+reset" and self.missed:
            self.key = "stopping+reset:missed"

    # --- the trainer's moves ----------------------------------------------------------------

    def _move(self, snap: SessionSnapshot) -> bool:
        if not self.pending:
            return False
        move = self.pending[0]
        if move.when == "stopping":
            return self._restart_while_stopping(snap)
        if not self._due(move, snap):
            return False
        self.pending.pop(0)
        if move.do == "pause":
            self._ask(Action.PAUSE, snap, every=0.0)
        elif move.do == "stop":
            self._ask(Action.STOP, snap, "soak: the practitioner stops the session", every=0.0)
        else:
            self._inject(move.do, move.params)
        return True

    def _due(self, move: Move, snap: SessionSnapshot) -> bool:
        phase = snap.phase
        if move.when == "zone":
            return (
                phase is Phase.DELIVERING
                and _delivery_ordinal(snap) == self.story.zone
                and snap.zone_delivered_ms >= self.story.fraction * snap.zone_planned_ms
            )
        if move.when == "manual":
            planned = _current_planned_ms(snap)
            left = snap.manual_remaining_ms
            return (
                phase is Phase.MANUAL
                and left is not None
                and planned > 0
                and planned - left >= self.story.fraction * planned
            )
        if move.when == "paused":
            return phase is Phase.PAUSED
        if move.when == "link_lost":
            return phase is Phase.LINK_LOST
        if move.when == "hold":
            if phase is not Phase.HOLD:
                return False
            since = self._hold_since or time.monotonic()
            self._hold_since = since
            return time.monotonic() - since >= self.timing.hold_patience_s
        raise ValueError(f"unknown move condition {move.when!r}")

    def _restart_while_stopping(self, snap: SessionSnapshot) -> bool:
        """``stopping+reset``: once the practitioner's STOP was taken, watch the unit itself
        and restart it while it ramps down. The status read and the restart are sent together
        (two lines, one write), so little can happen between them; the unit's own record of
        the output switching off ("power cycle") says whether the restart hit the ramp-down."""
        if snap.phase is not Phase.STOPPING:
            return False
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            state = self.sim.status()["state"]
            if state != "STOPPING":
                if state in ACTIVE_STATES:
                    time.sleep(0.001)
                    continue
                self.pending.pop(0)
                self.missed.append("stopping:reset")
                self.key = "stopping+reset:missed"
                return True
            before, _ = self.sim.status_then_inject("reset", {})
            # Recorded right after it took effect, this once: the ramp-down lasts ~50 ms at
            # this speed, and a record written first could outlast it.
            self.engine.record_training_fault(
                "reset", {}, title="restart while the unit ramps down (recorded after)", by=TRAINER
            )
            self.pending.pop(0)
            self.injected.append("reset")
            hit = before == "STOPPING" and any(
                t["cause"] == "power cycle" and not t["on"] for t in self.sim.last_transitions(2)
            )
            if not hit:
                self.key = "stopping+reset:late"
            return True
        return False

    def _inject(self, fault: str, params: dict[str, Any]) -> None:
        # Recorded in the session before it takes effect, as the training panel does.
        self.engine.record_training_fault(fault, params, title=f"soak: {fault}", by=TRAINER)
        self.sim.inject(fault, params)
        self.injected.append(fault)
        self.active.add(fault)

    # --- the practitioner -------------------------------------------------------------------

    def _ask(
        self, action: Action, snap: SessionSnapshot, reason: str | None = None, every: float = 0.1
    ) -> None:
        """One explicit request, decided on what ``snap`` shows; not repeated within
        ``every`` s (the engine takes it within a pass)."""
        now = time.monotonic()
        if now - self._asked.get(action, -1e9) < every:
            return
        self._asked[action] = now
        self.requests += 1
        self.engine.request(action, reason, seen=snap.seen)

    def _react(self, snap: SessionSnapshot) -> None:
        phase = snap.phase
        if phase is not Phase.HOLD:
            self._hold_since = None
        if phase in TROUBLE:
            self._trouble(snap)
            return
        self._trouble_seen = False
        self._trouble_since = None
        no_contact = snap.live is not None and snap.live.contact not in GOOD_CONTACT
        held = any(m.when == "hold" for m in self.pending)
        if no_contact and (phase is Phase.PLACE or (phase is Phase.HOLD and not held)):
            # Asked to place the handpiece, or told it lost contact: put it back on the skin
            # (and wipe a short).
            for fault in ("contact_lost", "short_circuit"):
                if fault in self.active:
                    self.sim.clear(fault)
                    self.active.discard(fault)
        elif (
            phase is Phase.PAUSED
            and not any(m.when == "paused" for m in self.pending)
            and Action.RESUME in snap.allowed
        ):
            self._ask(Action.RESUME, snap, every=0.2)  # the pause has done its part

    def _trouble(self, snap: SessionSnapshot) -> None:
        if not self.injected and not self._trouble_seen:
            faults = ",".join(snap.live.faults) if snap.live else ""
            self.unplanned.append(f"{snap.phase.value}[{faults}]")
        self._trouble_seen = True
        now = time.monotonic()
        self._trouble_since = self._trouble_since or now
        decision = self.story.decision if self.injected else "continue"
        allowed = snap.allowed
        if Action.ACKNOWLEDGE in allowed:  # and decide in the same look: nothing below
            self._ask(Action.ACKNOWLEDGE, snap)  # waits for every alarm to be silenced
        if decision == "stopped":
            # The STOP was asked before the trouble: the session should end by itself once
            # the unit is seen again. If it waits instead, end it again and say so.
            if snap.phase is Phase.LINK_LOST and not snap.reconnect_failed:
                return
            if now - self._trouble_since < self.timing.stopped_patience_s:
                return
            self.reasked = f"{snap.phase.value}: {snap.message}"
            decision = "end"
        if decision == "end":
            if snap.phase is Phase.LINK_LOST and not snap.reconnect_failed:
                return  # wait for the link (as a headless run does), then end
            if Action.END in allowed:
                self._ask(Action.END, snap, f"soak: the practitioner ends ({self.key})", 0.3)
            return
        if snap.phase is Phase.LINK_LOST:
            if snap.reconnect_failed and Action.RECONNECT in allowed:
                self._ask(Action.RECONNECT, snap, every=0.5)
            return
        for fault in sorted(self.active & FIXABLE - {"contact_lost"}):
            self.sim.clear(fault)  # serum wiped, handpiece plugged back, contact pressed
            self.active.discard(fault)
        if Action.CLEAR_FAULTS in allowed:
            self._ask(Action.CLEAR_FAULTS, snap, every=0.05)  # refused while still hot: again
        elif Action.CONTINUE in allowed:
            self._ask(Action.CONTINUE, snap, every=0.2)


def _delivery_ordinal(snap: SessionSnapshot) -> int | None:
    """0-based position of the current step among the delivery steps."""
    deliveries = [s.index for s in snap.steps if s.kind == "delivery"]
    index = snap.step_index
    if index is None:
        return None
    current = next((s for s in snap.steps if s.index == index), None)
    if current is None or current.kind != "delivery":
        return None
    return deliveries.index(current.index)


def _current_planned_ms(snap: SessionSnapshot) -> int:
    current = next((s for s in snap.steps if s.index == snap.step_index), None)
    return current.planned_ms if current is not None else 0


# --- resources ---------------------------------------------------------------------------


def _proc_status(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


#: Containers of any kind: a long-lived object that keeps one of these growing leaks.
CONTAINERS = (list, dict, set, frozenset, tuple, deque)


def _sizes(name: str, obj: object) -> dict[str, int]:
    """``name.attr`` -> size for each container attribute of ``obj``, but records
    (NamedTuples) and deques with a ``maxlen`` (they cannot grow past it)."""
    return {
        f"{name}.{attr}": len(value)
        for attr, value in vars(obj).items()
        if isinstance(value, CONTAINERS)
        and not hasattr(value, "_fields")
        and not (isinstance(value, deque) and value.maxlen is not None)
    }


def queues(device: DeviceClient, store: RecordStore) -> dict[str, int]:
    """The size of every container held by the station's long-lived objects (the device
    client, its telemetry buffer, the link and its dispatcher, core, outbox, recent replies,
    health recorder and stream tracker, the record store): queues, buffers, listener lists,
    bookkeeping maps. Read from their internals: the soak is a white-box test, and looking at
    every container rather than a chosen few is what found the outbox's ESTOP marks."""
    link = device.link
    core = link._core
    outbox = core._out
    out: dict[str, int] = {}
    for name, obj in (
        ("device", device),
        ("telemetry_buffer", device._buffer),
        ("link", link),
        ("dispatcher", link._dispatcher),
        ("core", core),
        ("outbox", outbox),
        ("recent_replies", outbox._recent),
        ("health", core.health),
        ("tracker", core._tracker),
        ("store", store),
    ):
        out.update(_sizes(name, obj))
    return out


def sample(device: DeviceClient, store: RecordStore, after: int) -> dict[str, Any]:
    gc.collect()
    return {
        "after": after,
        "rss_kib": _proc_status("VmRSS"),
        "threads": threading.active_count(),
        "tasks": len(os.listdir("/proc/self/task")),
        "fds": len(os.listdir("/proc/self/fd")),
        "objects": len(gc.get_objects()),
        "thread_names": sorted(t.name for t in threading.enumerate()),
        "queues": queues(device, store),
    }


# --- the station -------------------------------------------------------------------------


class Station:
    def __init__(self, config: StationConfig, folder: Path) -> None:
        self.config = config
        self.folder = folder
        self.protocols = {
            name: load_protocol(path)
            for name, path in write_protocols(folder / "protocols", config.shapes).items()
        }
        self.sim = SimProcess(folder, speed=config.speed, seed=config.seed)
        self.store = RecordStore.open(folder / "data", exclusive=True)
        self.device = DeviceClient(self.sim.url, backoff=(0.05, 0.5))
        self.device.connect()
        self.adoptions = 0
        self.power_cycles = 0
        self.manual_reconnects = 0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.device.close()
        with contextlib.suppress(Exception):
            self.store.close()
        self.sim.close()

    def run_session(self, story: Story) -> dict[str, Any]:
        load_result = self.protocols[story.protocol]
        assert load_result.protocol is not None
        plan = SessionPlan(
            load_result=load_result,
            client_code=story.client,
            practitioner=PRACTITIONER,
            serum_lot="LOT-SOAK",
            checklist_answers=checklist_answers(load_result.protocol),
        )
        engine = SessionEngine(
            self.device,
            self.store,
            plan,
            auto_confirm=True,  # placements and timed manual steps confirm themselves
            reconnect_limit_s=self.config.timing.reconnect_limit_s,
            manual_speed=self.config.speed,
        )
        who = Practitioner(engine, self.sim, story, self.config.timing)
        result: dict[str, Any] = {
            "index": story.index,
            "station": self.config.station,
            "planned_key": story.key,
            "protocol": story.protocol,
            "error": None,
        }
        started = time.monotonic()
        engine.start()
        try:
            who.run(self.config.session_timeout_s)
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, SessionHungError):
                result["traceback"] = traceback.format_exc()
            engine.abandon(f"soak: {exc}", timeout=10)
        snap = engine.snapshot()
        engine.shutdown("soak: session over", timeout=10)
        result["wall_s"] = round(time.monotonic() - started, 3)
        # What the unit itself says (a unit the host could not reach stops by its watchdog).
        status, waited = self.sim.wait_inactive(2.0)
        result.update(
            key=who.key,
            outcome=snap.outcome.value if snap.outcome else None,
            reason=snap.outcome_reason,
            injected=who.injected,
            missed=who.missed,
            reasked=who.reasked,
            unplanned=who.unplanned,
            requests=who.requests,
            device_state_end=status["state"],
            device_faults_end=status["faults"],
            inactive_wait_s=round(waited, 3),
            engine_left=[f"{ev.kind.value}: {ev.message}" for ev in list(engine._in.device_events)],
            engine_backlog={
                "device_events": len(engine._in.device_events),
                "supervisor_out": len(engine._in.supervisor_out),
                "notifier": len(engine._notifier._queue),
            },
        )
        result.update(self._check_record(engine.session_id, result["outcome"]))
        self._service(status)
        return result

    def _check_record(self, sid: int | None, outcome: str | None) -> dict[str, Any]:
        """The session's record, read back: the whole hash chain walked, and the session's
        rows, steps and telemetry against the seal of its closing event (what
        ``verify_chain`` does for this session; the whole of it runs once the station's day
        is over, see :meth:`run`)."""
        if sid is None:
            return {"verify_ok": False, "verify_reason": "no session row was written"}
        events = self.store.events(sid)
        self.store.session_detail(sid)  # every shown row can be read back
        row = self.store.get_session(sid)
        ends = [e for e in events if e.kind == "session_end"]
        with self.store.read_connection() as conn:
            conn.execute("BEGIN")  # one snapshot for the walk and the seal
            try:
                walked = chain.verify(conn)
                findings = (
                    coverage.check_seal(conn, sid, ends[0].data["seal"], ends[0].id) if ends else []
                )
            finally:
                conn.execute("COMMIT")
        problems = [walked.reason or "the hash chain is broken"] if not walked.ok else []
        problems += [f.describe() for f in findings]
        if not ends:
            problems.append(f"session {sid} has no session_end event")
        ok = not problems
        return {
            "session_id": sid,
            "row_outcome": row.outcome,
            "events": len(events),
            "chain_events": walked.events,
            "verify_ok": ok,
            "verify_reason": "; ".join(problems),
            "end_evidence": end_evidence(events),
            "resume_violations": resumed_without_request(events),
            "training_faults": sum(e.kind == "training_fault" for e in events),
            "holds": sum(e.kind == "hold_end" for e in events),
        }

    def _service(self, status: dict[str, Any]) -> None:
        """Put the unit back for the next client (see the module docstring)."""
        self.sim.clear()
        faults = set(status["faults"])
        if faults & {"SELFTEST", "OUTPUT_FAULT"}:
            boot_id = self.sim.power_cycle()
            self.power_cycles += 1
            # The link learns of the restart from the unit's next frames; wait for them, so
            # the next session does not start on a restart nobody has seen yet.
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                latest = self.device.latest_telemetry
                if latest is not None and latest.boot_id == boot_id:
                    break
                time.sleep(0.01)
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            st = self.sim.status()
            if "OVERTEMP" not in st["faults"] or st["temperature_c"] < 39.5:
                break
            time.sleep(0.02)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            state = self.device.link_state
            if state is LinkState.OTHER_UNIT:
                self.device.adopt_other_unit()  # the operator confirms it on the device screen
                self.adoptions += 1
            elif state is LinkState.UP:
                break
            elif state is LinkState.CLOSED:
                with contextlib.suppress(Exception):
                    self.device.connect()
                    self.manual_reconnects += 1
            time.sleep(0.02)
        self.device.drain_telemetry()

    def run(self) -> dict[str, Any]:
        sessions: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        write_history(
            self.store,
            sessions=self.config.history_sessions,
            minutes=30,
            seed=self.config.seed,
        )
        history = self.store.verify_chain()  # and the reading connection's cache is warm
        if not history.ok:
            raise RuntimeError(f"the earlier days' records do not verify: {history.reason}")
        history_s = time.monotonic() - started
        for n, story in enumerate(self.config.stories, 1):
            sessions.append(self.run_session(story))
            samples.append(sample(self.device, self.store, n))
        report = self.store.verify_chain()
        named = {f.session_id for f in report.findings}
        for result in sessions:  # every session again, in the full verify of the day
            sid = result.get("session_id")
            if sid is not None and (sid in named or sid not in report.sealed):
                result["verify_ok"] = False
                result["verify_reason"] = (
                    f"{result.get('verify_reason') or ''} the full verify names it: {report.reason}"
                ).strip()
        return {
            "history_sessions": self.config.history_sessions,
            "history_s": round(history_s, 2),
            "station": self.config.station,
            "sessions": sessions,
            "samples": samples,
            "final_verify_ok": report.ok,
            "final_verify_reason": report.reason,
            "chain_events": report.events,
            "db_bytes": sum(
                p.stat().st_size for p in (self.folder / "data").glob("*") if p.is_file()
            ),
            "sim_rss_kib": self.sim.rss_kib(),
            "adoptions": self.adoptions,
            "power_cycles": self.power_cycles,
            "manual_reconnects": self.manual_reconnects,
            "health": asdict(self.device.health()),
            "error": None,
        }


def station_main(config: StationConfig, out: Any) -> None:
    """The station process's entry point: run, then put the result on ``out`` (a queue)."""
    folder = Path(tempfile.mkdtemp(prefix=f"epm-soak-{config.station}-", dir=config.folder))
    # epm's own log lines go to the station's folder, not between the run's figures.
    logging.basicConfig(
        filename=folder / "station.log",
        level=logging.WARNING,
        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s",
    )
    result: dict[str, Any] = {"station": config.station, "folder": str(folder)}
    station: Station | None = None
    try:
        station = Station(config, folder)
        result.update(station.run())
    except BaseException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    finally:
        if station is not None:
            station.close()
        failed = result.get("error") or any(s.get("error") for s in result.get("sessions", []))
        if not config.keep and not failed:
            shutil.rmtree(folder, ignore_errors=True)
        result["folder"] = str(folder)
        out.put(result)
