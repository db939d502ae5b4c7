"""Headless runs: one session without a UI, reported as JSON lines (``epm run --headless``).

Why: CI, scripted acceptance tests and service engineers need to run a protocol end to end and
read what happened without a terminal UI. The run makes the same decisions a cautious operator
would and never more: it confirms placements and manual steps by itself (``auto_confirm``),
but it never clears a fault and never continues after a lost link, a device restart or another
unit answering after a reconnect — it ends the session instead.

Signals: SIGINT and SIGTERM are the operator's interrupt. The first stops with a ramp-down (the
session ends ``stopped``, exit 3); a second one, of either kind, sends ESTOP (the session ends
``aborted``, exit 3), and a ``notice`` line says whether ESTOP's bytes went out — if not, the
operator must lift the handpiece and switch the unit off. The signal handler only counts the
signal and sets an event: it runs on the main thread between two bytecodes, perhaps while that
thread holds a lock that anything more would need (a second interrupt inside the handler could
deadlock). The runner's ``epm-headless-signals`` thread, started for the run and stopped at its
end, waits for that event, sends the ESTOP and wakes the main loop, which asks for the ramped
stop. Both handlers are installed only on the main thread and restored afterwards.

With no port the run uses ``sim://?speed=N``, a fresh in-process simulator: the caller (the
CLI, which may import the simulator; this layer may not) registers the ``sim://`` handler.

Each line on ``out`` is one JSON object with an ``event`` key: ``start``, ``recovered``,
``state``, ``warning``, ``alarm``, ``notice``, ``progress`` (once a second) and, last,
``summary``. When another unit answered after a reconnect, the summary also has
``expected_serial`` and ``found_serial`` (the alarm line names both too). Exit status: 0
completed, 2 refused before start, 3 stopped or aborted by the operator, 4 ended by a device
fault, 5 link lost, device restarted or another unit answered.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from controller.device import DeviceClient
from controller.records import RecordsError, RecordStore
from controller.session.engine import SessionEngine
from controller.session.model import Action, Outcome, Phase, SessionNotice, SessionPlan

log = logging.getLogger(__name__)

EXIT_COMPLETED = 0
EXIT_REFUSED = 2
EXIT_STOPPED = 3
EXIT_FAULTED = 4
EXIT_LINK = 5

OUTCOME_EXIT: Mapping[Outcome, int] = {
    Outcome.COMPLETED: EXIT_COMPLETED,
    Outcome.REFUSED: EXIT_REFUSED,
    Outcome.STOPPED: EXIT_STOPPED,
    Outcome.ABORTED: EXIT_STOPPED,
    Outcome.FAULTED: EXIT_FAULTED,
    Outcome.INTERRUPTED: EXIT_LINK,
}

#: A headless run waits this long for a lost link to come back (then ends the session).
RECONNECT_LIMIT_S = 10.0
#: Progress lines are this far apart.
PROGRESS_S = 1.0
#: The signal thread also looks at the count this often (see ``_Runner.on_signal``).
SIGNAL_POLL_S = 0.2
#: Where a second interrupt's ESTOP comes from, in the record.
ESTOP_SOURCE = "operator (second interrupt)"
#: The operator's interrupts.
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_ACTIVE = (Phase.MANUAL, Phase.PLACE, Phase.DELIVERING, Phase.HOLD, Phase.PAUSED)


@dataclass(frozen=True)
class HeadlessOptions:
    """What ``epm run --headless`` was given."""

    protocol: str
    client: str
    port: str | None = None
    zones: tuple[str, ...] | None = None
    serum_lot: str = ""
    practitioner: str = "epm run --headless"
    data_dir: str | None = None
    baud: int = 115200
    checklist_confirmed: bool = False
    sim_speed: float = 1.0
    reconnect_limit_s: float = RECONNECT_LIMIT_S
    #: With a clinic server configured: its ``server.offline_days`` (see
    #: ``RecordStore.offline_days``); ``None``: no server.
    offline_days: int | None = None
    #: Called with the data folder once the records are open (not for a run refused before):
    #: the CLI installs the service log there (this layer may not import it).
    on_records: Callable[[Path], object] | None = None


class JsonLines:
    """Writes one JSON object per line and flushes it at once (readers follow live)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.t0 = time.monotonic()

    def __call__(self, event: str, **data: Any) -> None:
        record = {"event": event, "t": round(time.monotonic() - self.t0, 3), **data}
        line = json.dumps(record, default=str, ensure_ascii=False)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()


def _refused(emit: JsonLines, reason: str, **extra: Any) -> int:
    emit(
        "summary",
        outcome=Outcome.REFUSED.value,
        reason=reason,
        refusals=[reason],
        zones=[],
        exit_code=EXIT_REFUSED,
        **extra,
    )
    return EXIT_REFUSED


def checklist_answers(protocol: Any) -> dict[str, bool]:
    """``--checklist-confirmed``: every confirmation "yes", every contraindication "no"."""
    from protocols import ItemKind, build_checklist

    return {
        item.id: item.kind is ItemKind.CONFIRMATION
        for item in build_checklist(protocol)
        if item.kind is not ItemKind.NOTE
    }


def run_headless(options: HeadlessOptions, out: TextIO) -> int:
    """Run one session as ``options`` say, reporting on ``out``; returns the exit status."""
    from protocols import load_protocol

    emit = JsonLines(out)
    # What needs no records is checked first: a refused run creates no database.
    if not options.checklist_confirmed:
        return _refused(
            emit,
            "the pre-session checklist was not confirmed: go through it with the client, "
            "then pass --checklist-confirmed (every confirmation yes, every "
            "contraindication no)",
        )
    if options.sim_speed <= 0:
        return _refused(emit, f"--sim-speed {options.sim_speed:g} must be positive, e.g. 1 or 300")
    path = Path(options.protocol)
    if not os.path.lexists(path):  # a folder or a pipe: the loader says what it is
        return _refused(emit, f"protocol file {path} does not exist; check the path")
    load_result = load_protocol(path)
    if not load_result.ok or load_result.protocol is None:
        problems = [p.format() for p in load_result.errors]
        return _refused(
            emit,
            f"protocol file {path} is not valid ({len(problems)} error(s)); `epm validate "
            f"{path}` lists them",
            problems=problems,
        )
    try:
        store = RecordStore.open(options.data_dir, exclusive=True)
    except RecordsError as exc:
        return _refused(emit, f"records: {exc}")
    if options.on_records is not None:
        options.on_records(store.data_dir)
    store.offline_days = options.offline_days
    try:
        recovered = store.recover_interrupted()  # first thing once the records are open
        if recovered:
            emit(
                "recovered",
                sessions=recovered,
                message=f"{len(recovered)} session(s) left running by an earlier run were "
                "marked interrupted",
            )
        return _run_with_store(options, load_result, store, emit)
    finally:
        store.close()


def _run_with_store(
    options: HeadlessOptions, load_result: Any, store: RecordStore, emit: JsonLines
) -> int:
    try:
        store.get_or_create_client(options.client)
    except RecordsError as exc:
        return _refused(emit, f"client: {exc}")
    url = options.port or f"sim://?speed={options.sim_speed:g}"
    plan = SessionPlan(
        load_result=load_result,
        client_code=options.client,
        practitioner=options.practitioner,
        serum_lot=options.serum_lot,
        checklist_answers=checklist_answers(load_result.protocol),
        zones=options.zones,
    )
    device = DeviceClient(url, options.baud, reconnect_timeout=options.reconnect_limit_s)
    engine = SessionEngine(
        device,
        store,
        plan,
        auto_confirm=True,
        reconnect_limit_s=options.reconnect_limit_s,
        manual_speed=options.sim_speed,
    )
    runner = _Runner(engine, emit)
    reason = "the headless run ended"
    try:
        emit(
            "start",
            protocol=load_result.protocol.id,
            version=load_result.protocol.version,
            sha256=load_result.sha256,
            client=options.client,
            port=url,
            zones=list(options.zones) if options.zones else None,
        )
        with runner.signals():
            return runner.run()
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            reason = (
                "standard output was closed (broken pipe): the headless run could no longer "
                "report, so it stopped the session"
            )
        raise
    finally:
        engine.shutdown(reason, timeout=15.0)
        device.close()


class _Runner:
    """Follows the engine's notices, makes the operator's decisions, prints the lines."""

    def __init__(self, engine: SessionEngine, emit: JsonLines) -> None:
        self.engine = engine
        self.emit = emit
        #: The engine's notices, and None from the signal thread to wake the loop.
        self.notices: queue.Queue[SessionNotice | None] = queue.Queue()
        self._received: list[int] = []  # the operator's interrupts, in order (signal numbers)
        self._signalled = threading.Event()  # set by the handler; the signal thread waits
        self._setting = False  # the main thread is inside ``_signalled.set()``
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._handled_interrupts = 0
        self._ended_for: Phase | None = None
        self._last_phase: Phase | None = None
        engine.add_listener(self.notices.put)

    # --- signals -------------------------------------------------------------------------

    def signals(self) -> _Signals:
        return _Signals(self)

    @property
    def interrupts(self) -> int:
        """SIGINTs and SIGTERMs received so far."""
        return len(self._received)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT or SIGTERM: count it and set the event; nothing else (see the module
        docstring). The signal thread acts on it.

        ``list.append`` is one C call, so a signal that interrupts this handler is still
        counted. That nested handler must not call ``Event.set`` while this one is inside it
        (it would wait forever for the event's lock, held by the frame below on the same
        thread): ``_wake`` skips it, and the signal thread's poll picks up the count."""
        self._received.append(signum)
        self._wake()

    def _wake(self) -> None:
        """Set ``_signalled``, on the main thread only (the handler, or stopping the thread)."""
        if self._setting:
            return
        self._setting = True
        try:
            self._signalled.set()
        finally:
            self._setting = False

    def start_watcher(self) -> None:
        """Start the ``epm-headless-signals`` thread (for the run)."""
        self._watch_stop.clear()
        self._watcher = threading.Thread(
            target=self._watch, name="epm-headless-signals", daemon=True
        )
        self._watcher.start()

    def stop_watcher(self, timeout: float = 5.0) -> None:
        """Stop it: an interrupt counted before this is still acted on."""
        watcher, self._watcher = self._watcher, None
        if watcher is None:
            return
        self._watch_stop.set()
        self._wake()
        watcher.join(timeout)

    def _watch(self) -> None:
        """The signal thread: wakes the loop on each interrupt (the loop asks for the ramped
        stop) and sends ESTOP on the second."""
        seen = 0
        estop_sent = False
        while True:
            self._signalled.wait(SIGNAL_POLL_S)
            self._signalled.clear()  # before reading the count: a later signal sets it again
            stopping = self._watch_stop.is_set()
            count = self.interrupts
            if count > seen:
                seen = count
                if count >= 2 and not estop_sent:
                    estop_sent = True
                    self._emergency_stop()
                self.notices.put(None)  # the loop's _decide, now rather than at its timeout
            if stopping:
                return

    def _emergency_stop(self) -> None:
        try:
            sent = self.engine.emergency_stop(ESTOP_SOURCE)
        except Exception:  # emergency_stop never raises; if it did, say ESTOP was not sent
            log.exception("emergency stop on the second interrupt failed")
            sent = False
        if sent:
            self.emit(
                "notice",
                message="second interrupt: emergency stop (ESTOP) sent to the device",
                estop_sent=True,
            )
        else:
            self.emit(
                "notice",
                message="second interrupt: the emergency stop (ESTOP) could NOT be sent to the "
                "device; lift the handpiece from the skin and switch the unit off",
                estop_sent=False,
            )

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        self.start_watcher()
        try:
            self._loop()
        finally:
            self.stop_watcher()  # before the summary: it is the last line
        return self._summary()

    def _loop(self) -> None:
        engine = self.engine
        engine.start()
        next_progress = time.monotonic() + PROGRESS_S
        told_finished = False
        finished_at: float | None = None
        while True:
            try:
                notice = self.notices.get(timeout=0.1)
            except queue.Empty:
                notice = None
            if notice is not None:
                self._print(notice)
                told_finished = told_finished or notice.kind == "finished"
            if time.monotonic() >= next_progress:
                next_progress += PROGRESS_S
                self._progress()
            self._decide()
            if told_finished and self.notices.empty():
                break
            if engine.finished:  # the last notices are on their way (or were dropped)
                finished_at = finished_at or time.monotonic()
                if time.monotonic() - finished_at > 2.0:
                    break

    def _print(self, notice: SessionNotice) -> None:
        snap = notice.snapshot
        detail = dict(notice.detail)
        if notice.kind == "phase":
            new = Phase(detail.get("new", snap.phase.value))
            if new is self._last_phase and detail.get("old") == detail.get("new"):
                return
            self._last_phase = new
            index = detail.get("step")
            zone = next((s.zone for s in snap.steps if s.index == index), None)
            self.emit(
                "state",
                phase=new.value,
                previous=detail.get("old"),
                step=index,
                zone=zone,
                message=detail.get("message", snap.message),
            )
        elif notice.kind == "warning":
            self.emit("warning", message=detail.get("message", ""))
        elif notice.kind == "alarm":
            self.emit(
                "alarm",
                code=detail.get("code"),
                priority=detail.get("priority"),
                message=detail.get("message"),
                change=detail.get("change"),
            )
        elif notice.kind == "notice" and detail.get("message"):
            self.emit("notice", message=detail["message"])
        elif notice.kind == "notice" and "estop" in detail:
            estop = detail["estop"]
            if estop.get("bytes_written", True):
                message = f"emergency stop sent ({estop.get('source')})"
            else:
                message = (
                    f"emergency stop NOT sent ({estop.get('source')}): lift the handpiece "
                    "from the skin and switch the unit off"
                )
            self.emit("notice", message=message)

    def _progress(self) -> None:
        snap = self.engine.snapshot()
        if snap.finished:
            return
        step = snap.current_step
        live = snap.live
        self.emit(
            "progress",
            phase=snap.phase.value,
            step=step.index if step else None,
            zone=step.zone if step else None,
            zone_delivered_ms=snap.zone_delivered_ms,
            zone_planned_ms=snap.zone_planned_ms,
            session_delivered_ms=snap.session_delivered_ms,
            session_planned_ms=snap.session_planned_ms,
            manual_remaining_ms=snap.manual_remaining_ms,
            amplitude_dv=live.amplitude_dv if live else None,
            setpoint_dv=snap.setpoint_dv,
            contact=live.contact if live else None,
        )

    def _decide(self) -> None:
        """The operator's decisions a headless run may make (see the module docstring)."""
        engine = self.engine
        if engine.finished:
            return
        snap = engine.snapshot()
        phase = snap.phase
        interrupts = self.interrupts
        if interrupts > self._handled_interrupts:
            self._handled_interrupts = interrupts
            if interrupts == 1:  # more: the signal thread sent ESTOP
                reason = f"operator interrupt ({signal.Signals(self._received[0]).name})"
                engine.request(Action.STOP if phase in _ACTIVE else Action.END, reason)
                return
        if phase is self._ended_for:
            return
        if phase is Phase.FAULT and Action.END in snap.allowed:
            self._ended_for = phase
            faults = ", ".join(snap.live.faults) if snap.live and snap.live.faults else "a fault"
            engine.request(
                Action.END,
                f"device fault ({faults}); a headless run never clears faults",
            )
        elif phase is Phase.RECOVERY and Action.END in snap.allowed:
            self._ended_for = phase
            engine.request(
                Action.END,
                "the link was lost or the device restarted; a headless run never resumes",
            )
        elif phase is Phase.LINK_LOST and snap.reconnect_failed:
            self._ended_for = phase
            engine.request(Action.END, "the device could not be reached again")

    def _summary(self) -> int:
        snap = self.engine.snapshot()
        outcome = snap.outcome or Outcome.FAULTED
        code = OUTCOME_EXIT.get(outcome, EXIT_FAULTED)
        zones = [
            {
                "index": s.index,
                "zone": s.zone,
                "planned_ms": s.planned_ms,
                "delivered_ms": s.delivered_ms,
                "status": s.status.value,
            }
            for s in snap.steps
            if s.kind == "delivery"
        ]
        self.emit(
            "summary",
            outcome=outcome.value,
            reason=snap.outcome_reason,
            refusals=list(snap.refusals),
            session_id=snap.session_id,
            simulated=snap.simulated,
            device_serial=snap.device.serial if snap.device else None,
            protocol=snap.protocol_id,
            client=snap.client_code,
            zones=zones,
            planned_ms=sum(z["planned_ms"] for z in zones),
            delivered_ms=sum(z["delivered_ms"] for z in zones),
            aftercare=list(snap.aftercare),
            course=snap.course.summary if snap.course else None,
            exit_code=code,
            **self._unit_change(snap.unit_change),
        )
        return code

    @staticmethod
    def _unit_change(change: tuple[str, str] | None) -> dict[str, str]:
        """Both serials when another unit answered after a reconnect (the session ended
        ``interrupted``, exit 5); nothing otherwise."""
        if change is None:
            return {}
        expected, found = change
        return {"expected_serial": expected, "found_serial": found}


class _Signals:
    """Installs the SIGINT and SIGTERM handlers for the run (main thread only) and restores
    the old ones."""

    def __init__(self, runner: _Runner) -> None:
        self.runner = runner
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            try:
                for signum in INTERRUPT_SIGNALS:
                    self.previous[signum] = signal.signal(signum, self.runner.on_signal)
            except BaseException:
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        previous, self.previous = self.previous, {}
        for signum, handler in previous.items():  # None: not set from Python; the default
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
