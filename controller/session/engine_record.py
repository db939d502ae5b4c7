"""The session engine's writer to the record store: one place that turns what happened into
committed events, and that fails loudly.

Why: the record is written BEFORE the device acts. Every method here commits (the store's
``synchronous=FULL`` transaction) before it returns, and a write that fails raises
:class:`RecordWriteError` so the engine never acts without a record: it stops output instead.
Data is made JSON-safe here, so a value the store would refuse (an enum, a tuple) never turns a
safety event into an exception.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from controller.records import RecordsError, RecordStore
from controller.session.alarms import AlarmChange, ChangeKind

log = logging.getLogger(__name__)
#: The service log's entries (docs/service-log.md): session start and end, alarms. Never the
#: client, nor text a person typed: the fields are chosen one by one below, never passed
#: through from the record.
service = logging.getLogger("epm.session")
#: Level of a session's end entry by outcome (anything else: WARNING).
END_LEVELS = {"completed": logging.INFO, "faulted": logging.ERROR, "refused": logging.INFO}
#: Level of an alarm change: a raised alarm by its priority; the rest INFO (an update, which
#: may repeat while a measured value moves, DEBUG: not written).
ALARM_RAISED_LEVELS = {"high": logging.ERROR, "medium": logging.WARNING, "low": logging.INFO}

#: Event kind for each alarm change (``alarm_raised``/``_cleared``/``_acknowledged`` are the
#: kinds docs/records.md lists; ``_updated`` and ``_resolved`` keep every change in the log).
ALARM_EVENT_KIND: dict[ChangeKind, str] = {
    ChangeKind.RAISED: "alarm_raised",
    ChangeKind.UPDATED: "alarm_updated",
    ChangeKind.RESOLVED: "alarm_resolved",
    ChangeKind.ACKNOWLEDGED: "alarm_acknowledged",
    ChangeKind.CLEARED: "alarm_cleared",
}


def occurred_at(monotonic: float) -> str:
    """The wall-clock time (UTC, ISO 8601, ms) of a host-monotonic instant in the past."""
    wall = time.time() - (time.monotonic() - monotonic)
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds")


class RecordWriteError(RuntimeError):
    """The record could not be committed: the engine must not act on what it was recording."""


def json_safe(value: Any) -> Any:
    """``value`` with enums, tuples, sets and unknown objects turned into JSON types."""
    if isinstance(value, enum.Enum):
        return value.name if isinstance(value, enum.IntEnum | enum.IntFlag) else value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if hasattr(value, "_asdict"):
        return json_safe(value._asdict())
    return str(value)


class Recorder:
    """Writes one session's events; ``session_id`` is None until the session is begun."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store
        self.session_id: int | None = None
        self.ended = False

    def _guard(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except (RecordsError, sqlite3.Error, OSError, ValueError) as exc:
            log.exception("record write failed: %s", what)
            raise RecordWriteError(
                f"The session record could not be written ({what}: {exc}). Output was stopped "
                "because nothing may happen that the record does not hold; check the data "
                "folder (disk full? removed?) before treating again."
            ) from exc

    def event(self, kind: str, data: Mapping[str, Any] | None = None) -> None:
        """Commit one event (nothing before the session is begun)."""
        if self.session_id is None:
            return
        self._guard(kind, self.store.append_event, self.session_id, kind, json_safe(data or {}))

    def alarm(self, change: AlarmChange, by: str | None = None) -> None:
        alarm = change.alarm
        data: dict[str, Any] = {
            "alarm": alarm.code.value,
            "priority": alarm.priority.value,
            "message": alarm.message,
            "title": alarm.title,
            "occurrence": alarm.occurrence,
            "latching": alarm.latching,
            "condition_active": alarm.condition_active,
            "acknowledged": alarm.acknowledged,
            "reason": change.reason,
            "detail": json_safe(dict(alarm.detail)),
        }
        if by is not None:
            data["by"] = by
        self.event(ALARM_EVENT_KIND[change.kind], data)
        if change.kind is ChangeKind.RAISED:
            level = ALARM_RAISED_LEVELS.get(alarm.priority.value, logging.WARNING)
        else:
            level = logging.DEBUG if change.kind is ChangeKind.UPDATED else logging.INFO
        service.log(
            level,
            "alarm %s: %s (%s)",
            change.kind.value,
            alarm.code.value,
            alarm.priority.value,
            extra={
                "event": "alarm",
                "session": self.session_id,
                "change": change.kind.value,
                "code": alarm.code.value,
                "priority": alarm.priority.value,
                "occurrence": alarm.occurrence,
                "reason": change.reason,
            },
        )

    def begin(self, **values: Any) -> int:
        sid = int(self._guard("session start", self.store.begin_session, **values))
        self.session_id = sid
        serial = str(values.get("device_serial", ""))
        service.info(
            "session %d started: protocol %s v%s on %s",
            sid,
            values.get("protocol_id"),
            values.get("protocol_version"),
            serial,
            extra={
                "event": "session_start",
                "session": sid,
                "protocol": values.get("protocol_id"),
                "protocol_version": values.get("protocol_version"),
                "protocol_sha256": values.get("protocol_sha256"),
                "serial": serial,
                "firmware": values.get("device_firmware"),
                "boot_id": values.get("device_boot_id"),
                "port": values.get("device_port"),
                "zones": list(values.get("planned_zones") or ()),
            },
        )
        return sid

    def step_start(
        self, index: int, *, kind: str, zone: str | None, planned_ms: int, data: Mapping[str, Any]
    ) -> int:
        assert self.session_id is not None
        step = self._guard(
            "step start",
            self.store.record_step_start,
            self.session_id,
            index,
            kind=kind,
            zone=zone,
            planned_ms=planned_ms,
            data=json_safe(data),
        )
        return int(step.attempt)

    def step_end(
        self, index: int, *, outcome: str, delivered_ms: int | None, data: Mapping[str, Any]
    ) -> None:
        assert self.session_id is not None
        self._guard(
            "step end",
            self.store.record_step_end,
            self.session_id,
            index,
            outcome=outcome,
            delivered_ms=delivered_ms,
            data=json_safe(data),
        )

    def skip(self, index: int, reason: str, *, kind: str, zone: str | None) -> None:
        assert self.session_id is not None
        self._guard(
            "step skipped",
            self.store.record_skip,
            self.session_id,
            index,
            reason,
            kind=kind,
            zone=zone,
        )

    def amplitude_change(
        self, index: int, *, from_dv: int, to_dv: int, source: str, data: Mapping[str, Any]
    ) -> None:
        assert self.session_id is not None
        self._guard(
            "amplitude change",
            self.store.record_amplitude_change,
            self.session_id,
            index,
            from_dv=from_dv,
            to_dv=to_dv,
            source=source,
            data=json_safe(data),
        )

    def hold(self, index: int, held_ms: int, data: Mapping[str, Any]) -> None:
        assert self.session_id is not None
        self._guard(
            "hold end",
            self.store.record_hold,
            self.session_id,
            index,
            held_ms=max(0, int(held_ms)),
            data=json_safe(data),
        )

    def telemetry(self, samples: list[Any]) -> None:
        """Buffered by the store (written about once a second); never raises: telemetry is
        the one part of the record that may lose its last second."""
        if self.session_id is None or self.ended or not samples:
            return
        try:
            self.store.add_telemetry(self.session_id, samples)
        except (RecordsError, sqlite3.Error, OSError) as exc:
            log.warning("telemetry not recorded: %s", exc)

    def end(self, outcome: str, reason: str, summary: Mapping[str, Any]) -> None:
        if self.session_id is None or self.ended:
            return
        self._guard(
            "session end",
            self.store.end_session,
            self.session_id,
            outcome,
            reason[:2000],
            json_safe(summary),
        )
        self.ended = True
        # The reason is not written: it may be text a practitioner typed (END's reason).
        service.log(
            END_LEVELS.get(outcome, logging.WARNING),
            "session %d ended: %s",
            self.session_id,
            outcome,
            extra={
                "event": "session_end",
                "session": self.session_id,
                "outcome": outcome,
                "planned_ms": summary.get("planned_ms"),
                "delivered_ms": summary.get("delivered_ms"),
                "estops": json_safe(summary.get("estops")),
            },
        )

    def notes(self, notes: str) -> None:
        if self.session_id is None:
            return
        self._guard("notes", self.store.set_notes, self.session_id, notes)

    def training_fault(
        self, fault: str, params: Mapping[str, Any], *, title: str = "", by: str = "trainer"
    ) -> bool:
        """Commit a fault a trainer injected into the simulator (``training_fault``: fault,
        title, params, by) before it is injected; False, with nothing recorded, when no
        session is open (not begun, or ended). Raises :class:`RecordWriteError` like every
        write here: then the fault must not be injected. Called from the training panel's
        thread; the store serialises it with the engine's own writes into one chain."""
        if self.session_id is None or self.ended:
            return False
        self.event(
            "training_fault", {"fault": fault, "title": title, "params": dict(params), "by": by}
        )
        return True
