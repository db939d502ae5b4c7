"""``epm records … --server``: every station's records as the clinic server holds them.

Pure functions over a psycopg connection (see :func:`controller.server.schema.connect`); the CLI
(:mod:`controller.cli.cmd_records`) only parses arguments and prints.

- :func:`list_sessions`: every station's sessions (server table ``sessions`` joined with
  ``stations``; practitioner and device from each session's chained ``session_started``
  event), newest first.
- A session is addressed as ``STATION:ID``: STATION is a station's name or at least 8 hex
  characters of its id (a prefix), and must name exactly one station
  (:func:`resolve_station`); ID is the station's own session number. :func:`station_labels`
  gives each station the shortest label that does.
- :func:`session_view` / :func:`session_document`: one session's events from the server, and
  the same as a JSON document another program can read again (``data`` parsed; each hash can be
  recomputed with :func:`controller.records.chain.row_hash`).
- :func:`verify_server`: every station's chain recomputed in pages with
  :func:`controller.server.sync.check_batch` (gaps, links, hashes), the derived ``sessions``
  table compared with the events it comes from, and the clinic ledger checked with
  :func:`controller.server.pull.check_ledger`; all in one read-only snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.records.migrations import GENESIS_HASH
from controller.server import ServerError
from controller.server.pull import LedgerRefused, LedgerRow, check_ledger
from controller.server.schema import LATEST_SERVER_VERSION, _check_not_newer, server_version
from controller.server.sync import ChainRefused, Event, check_batch, event_hash

#: The server schema version these views need (``sessions`` and ``clinic_events``).
NEEDED_VERSION = 3
#: Events (or ledger rows) read and checked per query by :func:`verify_server`.
PAGE = 1000
#: The fewest hex characters of a station id that address a station.
MIN_PREFIX = 8
#: The format name of :func:`session_document`.
DOCUMENT_FORMAT = "epm-server-session/1"

_HEXISH = re.compile(r"[0-9a-fA-F-]+")
_NUMBER = re.compile(r"[0-9]+")
_EVENT_COLUMNS = "position, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash"


class AddressError(ServerError):
    """A ``STATION:ID`` that names no station or session on the server, or more than one."""


def check_server(conn: Any) -> int:
    """The server's schema version, after checking it is one these views can read."""
    version = server_version(conn)
    if version == 0:
        raise ServerError("the clinic server has no epm schema yet: run `epm server init` first")
    _check_not_newer(version, LATEST_SERVER_VERSION)
    if version < NEEDED_VERSION:
        raise ServerError(
            f"the clinic server has schema version {version}; reading records across stations "
            f"needs version {NEEDED_VERSION}: run `epm server init` with this epm to upgrade it"
        )
    return version


# -- stations and addresses ------------------------------------------------------------------------


@dataclass(frozen=True)
class Station:
    station_id: str
    name: str

    def describe(self) -> str:
        """``Room A (uuid)``, or the id alone for a station without a name."""
        return f"{self.name} ({self.station_id})" if self.name else self.station_id


def stations(conn: Any) -> list[Station]:
    """Every station the server knows, by name then id."""
    rows = conn.execute(
        "SELECT station_id::text, name FROM stations ORDER BY name, station_id"
    ).fetchall()
    return [Station(str(r[0]), str(r[1] or "")) for r in rows]


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _matches(known: Sequence[Station], text: str) -> list[Station]:
    """The stations ``text`` may mean: by name (case and spacing aside), or by id prefix when
    it is at least :data:`MIN_PREFIX` hex characters."""
    wanted = _norm(text)
    found = [s for s in known if s.name and _norm(s.name) == wanted]
    prefix = text.strip().lower()
    if _HEXISH.fullmatch(prefix) and len(prefix.replace("-", "")) >= MIN_PREFIX:
        found += [s for s in known if s.station_id.startswith(prefix) and s not in found]
    return found


def resolve_station(known: Sequence[Station], text: str) -> Station:
    """The one station ``text`` names; :class:`AddressError` saying why not."""
    if not known:
        raise AddressError(
            "the clinic server holds no stations yet: nothing has been synced to it "
            "(`epm sync --once` on each station)"
        )
    found = _matches(known, text)
    if len(found) == 1:
        return found[0]
    if found:
        names = "; ".join(s.describe() for s in found)
        raise AddressError(
            f"station {text!r} is ambiguous: it may mean {names}. Use more characters of the "
            "station id (see `epm records list --server`)"
        )
    hint = ""
    cleaned = text.strip().replace("-", "")
    if _HEXISH.fullmatch(text.strip() or "x") and len(cleaned) < MIN_PREFIX:
        hint = f" (a station id is addressed by at least {MIN_PREFIX} of its hex characters)"
    labels = station_labels(known)
    listed = ", ".join(labels[s.station_id] for s in known)
    raise AddressError(
        f"no station {text!r} on the clinic server{hint}; its stations: {listed} "
        "(see `epm records list --server`)"
    )


def station_labels(known: Sequence[Station]) -> dict[str, str]:
    """Station id -> the shortest label that names it alone: its name, else the shortest id
    prefix (at least :data:`MIN_PREFIX` characters) no other station shares."""
    labels: dict[str, str] = {}
    for station in known:
        if station.name and _matches(known, station.name) == [station]:
            labels[station.station_id] = station.name
            continue
        size = MIN_PREFIX
        while size < len(station.station_id):
            prefix = station.station_id[:size].rstrip("-")
            if _matches(known, prefix) == [station]:
                break
            size += 1
        labels[station.station_id] = station.station_id[:size].rstrip("-")
    return labels


def parse_address(text: str) -> tuple[str, int]:
    """``STATION:ID`` -> (STATION, ID); ``ValueError`` saying how to write it. A station name
    may itself hold a colon: the session number is what follows the last one."""
    station, sep, number = text.rpartition(":")
    if sep and station.strip() and _NUMBER.fullmatch(number.strip()) and int(number) >= 1:
        return station.strip(), int(number)
    raise ValueError(
        f"{text!r} is not a session on the clinic server: write it as STATION:ID, the station's "
        "name (or at least 8 characters of its id) and the session's number, e.g. 'Room A:12', "
        "as `epm records list --server` shows it"
    )


# -- sessions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSession:
    """One station session as the server holds it."""

    station_id: str
    station_name: str
    #: The name (or id prefix) that addresses the station alone (``STATION`` of the address).
    station_label: str
    session_id: int
    client_code: str
    protocol_id: str
    protocol_version: int
    started_at: str
    simulated: bool
    outcome: str
    ended_at: str | None
    practitioner: str = ""
    device_serial: str = ""

    @property
    def address(self) -> str:
        return f"{self.station_label}:{self.session_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "station_id": self.station_id,
            "station_name": self.station_name,
            "session_id": self.session_id,
            "simulated": self.simulated,
            "client_code": self.client_code,
            "protocol_id": self.protocol_id,
            "protocol_version": self.protocol_version,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "practitioner": self.practitioner,
            "device_serial": self.device_serial,
        }


def _parse_object(text: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _local_start(day: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(day, dt.datetime):
        return day if day.tzinfo else day.astimezone()
    return dt.datetime.combine(day, dt.time.min).astimezone()


def _stored(moment: dt.datetime) -> str:
    """A moment in the stations' stored form (UTC, microseconds: text order is time order)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


_SESSION_SELECT = """
SELECT s.station_id::text, s.session_id, s.client_code, s.protocol_id, s.protocol_version,
       s.started_at, s.simulated, s.outcome, s.ended_at, st.data
FROM sessions s
LEFT JOIN (
    SELECT DISTINCT ON (station_id, session_id) station_id, session_id, data
    FROM events WHERE kind = 'session_started'
    ORDER BY station_id, session_id, position
) st ON st.station_id = s.station_id AND st.session_id = s.session_id
"""


def _sessions(conn: Any, where: str, params: Sequence[Any]) -> list[ServerSession]:
    known = stations(conn)
    names = {s.station_id: s.name for s in known}
    labels = station_labels(known)
    rows = conn.execute(
        _SESSION_SELECT
        + (f" WHERE {where}" if where else "")
        + " ORDER BY s.started_at DESC, s.station_id, s.session_id DESC",
        tuple(params),
    ).fetchall()
    found = []
    for r in rows:
        station_id = str(r[0])
        started = _parse_object(r[9]) or {}
        found.append(
            ServerSession(
                station_id=station_id,
                station_name=names.get(station_id, ""),
                station_label=labels.get(station_id, station_id),
                session_id=int(r[1]),
                client_code=str(r[2]),
                protocol_id=str(r[3]),
                protocol_version=int(r[4]),
                started_at=str(r[5]),
                simulated=bool(r[6]),
                outcome=str(r[7]),
                ended_at=None if r[8] is None else str(r[8]),
                practitioner=str(started.get("practitioner") or ""),
                device_serial=str(started.get("device_serial") or ""),
            )
        )
    return found


def list_sessions(
    conn: Any,
    *,
    client: str | None = None,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
) -> list[ServerSession]:
    """Every station's sessions, newest first. ``since``/``until`` are local dates (both days
    included) or aware datetimes, as for :meth:`RecordStore.list_sessions`; ``client`` a code."""
    where: list[str] = []
    params: list[Any] = []
    if client is not None:
        where.append("s.client_code = %s")
        params.append(client.strip())
    if since is not None:
        where.append("s.started_at >= %s")
        params.append(_stored(_local_start(since)))
    if until is not None:
        if isinstance(until, dt.datetime):
            where.append("s.started_at <= %s")
            params.append(_stored(_local_start(until)))
        else:
            where.append("s.started_at < %s")
            params.append(_stored(_local_start(until + dt.timedelta(days=1))))
    return _sessions(conn, " AND ".join(where), params)


def find_session(conn: Any, address: str) -> ServerSession:
    """The session ``STATION:ID`` names; :class:`AddressError` (or ``ValueError`` for an
    address written wrong) saying why not."""
    station_text, session_id = parse_address(address)
    station = resolve_station(stations(conn), station_text)
    found = _sessions(
        conn, "s.station_id = %s AND s.session_id = %s", (station.station_id, session_id)
    )
    if not found:
        raise AddressError(
            f"station {station.describe()} has no session {session_id} on the clinic server "
            "(not synced yet, or another number: see `epm records list --server`)"
        )
    return found[0]


# -- one session's events --------------------------------------------------------------------------


def _events(rows: Iterable[Sequence[Any]]) -> list[Event]:
    return [
        Event(
            int(r[0]),
            None if r[1] is None else int(r[1]),
            int(r[2]),
            str(r[3]),
            int(r[4]),
            str(r[5]),
            str(r[6]),
            str(r[7]),
            str(r[8]),
        )
        for r in rows
    ]


def session_events(conn: Any, station_id: str, session_id: int) -> list[Event]:
    """The session's events as the server holds them, in chain order."""
    return _events(
        conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE station_id = %s AND session_id = %s "
            "ORDER BY position",
            (station_id, session_id),
        ).fetchall()
    )


def content_matches(event: Event) -> bool:
    """Whether the event's hash is what its own columns give (its link is checked by
    :func:`verify_server`, which reads the whole chain)."""
    try:
        computed = event_hash(event)
    except (ValueError, TypeError):
        return False
    return computed == event.hash


@dataclass(frozen=True)
class SessionView:
    """One session from the server: its row, its events, and the events whose hash does not
    match their content (positions)."""

    session: ServerSession
    events: tuple[Event, ...]
    mismatched: tuple[int, ...]

    @property
    def started(self) -> dict[str, Any]:
        """The ``session_started`` event's data (empty if missing or unreadable)."""
        for event in self.events:
            if event.kind == "session_started":
                return _parse_object(event.data) or {}
        return {}

    @property
    def outcome_reason(self) -> str:
        for event in reversed(self.events):
            if event.kind == "session_end":
                return str((_parse_object(event.data) or {}).get("reason") or "")
        return ""


def session_view(conn: Any, address: str) -> SessionView:
    """The session ``STATION:ID`` names, with its events."""
    session = find_session(conn, address)
    events = session_events(conn, session.station_id, session.session_id)
    mismatched = tuple(e.position for e in events if not content_matches(e))
    return SessionView(session, tuple(events), mismatched)


def clinic_id(conn: Any) -> str:
    row = conn.execute("SELECT clinic_id::text FROM clinic WHERE singleton = 1").fetchone()
    return "" if row is None else str(row[0])


def session_document(conn: Any, address: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The session ``STATION:ID`` names as a JSON-ready document (format
    :data:`DOCUMENT_FORMAT`): station id and name, the session's row, and its events with
    ``position``, ``kind``, ``wall_time``, ``data`` (parsed), ``prev_hash`` and ``hash``
    (``row_hash(prev_hash, session_id, seq, wall_time, mono_ms, kind, canonical_json(data))``
    gives ``hash`` again). An event whose data is not JSON is :class:`ServerError`: the
    server's copy was changed."""
    view = session_view(conn, address)
    session = view.session
    events = []
    for event in view.events:
        try:
            data = json.loads(event.data)
        except ValueError as exc:
            raise ServerError(
                f"station {session.station_id}: the event at position {event.position} holds "
                f"data that is not JSON ({exc}): the server's copy was changed; run "
                "`epm records verify --server`"
            ) from exc
        events.append(
            {
                "position": event.position,
                "session_id": event.session_id,
                "seq": event.seq,
                "wall_time": event.wall_time,
                "mono_ms": event.mono_ms,
                "kind": event.kind,
                "data": data,
                "prev_hash": event.prev_hash,
                "hash": event.hash,
            }
        )
    moment = now or dt.datetime.now(dt.UTC)
    return {
        "format": DOCUMENT_FORMAT,
        "exported_at": _stored(moment),
        "clinic_id": clinic_id(conn),
        "station_id": session.station_id,
        "station_name": session.station_name,
        "session_id": session.session_id,
        "simulated": session.simulated,
        "session": session.to_dict(),
        "hashes_match_content": not view.mismatched,
        "events": events,
    }


# -- verify ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StationCheck:
    """One station's chain on the server: intact, or where it first breaks and why; and the
    ``sessions`` rows that do not say what the station's events say."""

    station_id: str
    name: str
    events: int
    head_hash: str | None
    broken_position: int | None = None
    reason: str = ""
    session_problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.broken_position is None and not self.session_problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "station_id": self.station_id,
            "name": self.name,
            "events": self.events,
            "head_hash": self.head_hash,
            "ok": self.ok,
            "broken_position": self.broken_position,
            "reason": self.reason,
            "session_problems": list(self.session_problems),
        }


@dataclass(frozen=True)
class LedgerCheck:
    """The clinic ledger (``clinic_events``): intact, or where it first breaks and why."""

    events: int
    head_hash: str | None
    broken_position: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_position is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "head_hash": self.head_hash,
            "ok": self.ok,
            "broken_position": self.broken_position,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ServerVerifyReport:
    stations: tuple[StationCheck, ...]
    ledger: LedgerCheck
    clinic_id: str = ""
    checked_at: str = ""

    @property
    def ok(self) -> bool:
        return self.ledger.ok and all(s.ok for s in self.stations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "clinic_id": self.clinic_id,
            "checked_at": self.checked_at,
            "stations": [s.to_dict() for s in self.stations],
            "clinic_ledger": self.ledger.to_dict(),
        }


def _pages(conn: Any, station_id: str) -> Iterator[list[Event]]:
    after = 0
    while True:
        page = _events(
            conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE station_id = %s AND position > %s "
                "ORDER BY position LIMIT %s",
                (station_id, after, PAGE),
            ).fetchall()
        )
        if not page:
            return
        yield page
        after = page[-1].position


def _expect_sessions(expected: dict[int, dict[str, Any]], events: Sequence[Event]) -> None:
    """What the server's ``sessions`` trigger makes of these events (see schema version 3)."""
    for event in events:
        if event.session_id is None or event.kind not in ("session_started", "session_end"):
            continue
        data = _parse_object(event.data) or {}
        if event.kind == "session_started":
            if event.session_id not in expected:  # the first one counts (ON CONFLICT DO NOTHING)
                version = data.get("protocol_version")
                expected[event.session_id] = {
                    "client_code": None
                    if data.get("client_code") is None
                    else str(data["client_code"]),
                    "protocol_id": None
                    if data.get("protocol_id") is None
                    else str(data["protocol_id"]),
                    "protocol_version": version,
                    "started_at": event.wall_time
                    if data.get("started_at") is None
                    else str(data["started_at"]),
                    "simulated": data.get("simulated") is True,
                    "outcome": "running",
                    "ended_at": None,
                }
        elif event.session_id in expected:  # session_end: the last one counts
            outcome = data.get("outcome")
            expected[event.session_id]["outcome"] = None if outcome is None else str(outcome)
            expected[event.session_id]["ended_at"] = event.wall_time


def _session_problems(
    conn: Any, station_id: str, expected: Mapping[int, Mapping[str, Any]]
) -> list[str]:
    rows = conn.execute(
        "SELECT session_id, client_code, protocol_id, protocol_version, started_at, simulated, "
        "outcome, ended_at FROM sessions WHERE station_id = %s ORDER BY session_id",
        (station_id,),
    ).fetchall()
    names = (
        "client_code",
        "protocol_id",
        "protocol_version",
        "started_at",
        "simulated",
        "outcome",
        "ended_at",
    )
    problems: list[str] = []
    held = set()
    for row in rows:
        session_id = int(row[0])
        held.add(session_id)
        want = expected.get(session_id)
        if want is None:
            problems.append(
                f"session {session_id}: the sessions table lists it, but the station's events "
                "hold no session_started for it"
            )
            continue
        for name, value in zip(names, row[1:], strict=True):
            if value != want[name]:
                problems.append(
                    f"session {session_id}: the sessions table says {name} {value!r}, the "
                    f"station's events say {want[name]!r}"
                )
    for session_id in sorted(set(expected) - held):
        problems.append(
            f"session {session_id}: the station's events start it, but the sessions table does "
            "not list it"
        )
    return problems


def _check_positions(station_id: str, page: Sequence[Event], last_position: int) -> None:
    """No position missing (said here: ``check_batch`` words a gap for a station pushing)."""
    expected = last_position + 1
    for event in page:
        if event.position != expected:
            raise ChainRefused(
                station_id,
                expected,
                f"missing event: the server holds no event at position {expected}, the next "
                f"one it holds is {event.position}",
            )
        expected += 1


def verify_station(conn: Any, station: Station) -> StationCheck:
    """Recompute one station's chain from position 1, a page at a time."""
    position, digest = 0, None
    expected: dict[int, dict[str, Any]] = {}
    for page in _pages(conn, station.station_id):
        try:
            _check_positions(station.station_id, page, position)
            check_batch(station.station_id, page, position, digest)
        except ChainRefused as exc:
            (count,) = conn.execute(
                "SELECT count(*) FROM events WHERE station_id = %s", (station.station_id,)
            ).fetchone()
            return StationCheck(
                station.station_id, station.name, int(count), None, exc.position, exc.reason
            )
        _expect_sessions(expected, page)
        position, digest = page[-1].position, page[-1].hash
    problems = _session_problems(conn, station.station_id, expected)
    return StationCheck(
        station.station_id, station.name, position, digest, session_problems=tuple(problems)
    )


_LEDGER_PREFIX = re.compile(r"^the clinic server's ledger is broken at position \d+: ")
_LEDGER_SUFFIX = ". Nothing was taken from it"


def _ledger_reason(exc: LedgerRefused) -> str:
    """The reason alone (``LedgerRefused`` words its message for a pull and keeps no
    ``reason`` of its own, so it is cut out of the message)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    text = _LEDGER_PREFIX.sub("", str(exc))
    return text.split(_LEDGER_SUFFIX, 1)[0]


def verify_ledger(conn: Any) -> LedgerCheck:
    """Recompute the clinic ledger from position 1, a page at a time."""
    position, digest = 0, GENESIS_HASH
    while True:
        rows = [
            LedgerRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7])
            for r in conn.execute(
                "SELECT position, kind, data, station_id::text, made_by, created_at, prev_hash, "
                "hash FROM clinic_events WHERE position > %s ORDER BY position LIMIT %s",
                (position, PAGE),
            ).fetchall()
        ]
        if not rows:
            return LedgerCheck(position, digest if position else None)
        try:
            check_ledger(rows, position, digest)
        except LedgerRefused as exc:
            (count,) = conn.execute("SELECT count(*) FROM clinic_events").fetchone()
            return LedgerCheck(int(count), None, exc.position, _ledger_reason(exc))
        position, digest = rows[-1].position, rows[-1].hash


def verify_server(conn: Any) -> ServerVerifyReport:
    """Every station's chain and the clinic ledger, checked in one read-only snapshot (events
    that arrive meanwhile are left for the next run)."""
    from psycopg.pq import TransactionStatus

    idle = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction():
        if idle:  # else the caller's transaction (this is a savepoint in it) decides
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        checked = tuple(verify_station(conn, s) for s in stations(conn))
        ledger = verify_ledger(conn)
        clinic = clinic_id(conn)
    return ServerVerifyReport(checked, ledger, clinic, _stored(dt.datetime.now(dt.UTC)))
