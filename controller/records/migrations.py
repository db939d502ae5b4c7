"""The records schema, as an ordered list of migrations.

``PRAGMA user_version`` holds the number of migrations applied. Opening a database applies the
missing ones in order, each in its own transaction together with the new ``user_version``, so
a crash mid-upgrade leaves the database at the previous version, never half-migrated. A
database whose version is higher than the last migration here was written by a newer epm and is
refused: this code cannot know what the newer columns mean.

Never edit a migration that has shipped; append a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import NamedTuple

from controller.records.db import transaction
from controller.records.errors import DatabaseError, SchemaTooNewError


class Migration(NamedTuple):
    version: int
    description: str
    script: str
    #: Run after ``script`` in the same transaction (a step SQL alone cannot do, such as
    #: appending a hash-chained event).
    step: Callable[[sqlite3.Connection], None] | None = None


OUTCOMES = ("running", "completed", "stopped", "aborted", "faulted", "interrupted", "refused")
_OUTCOME_LIST = ", ".join(f"'{o}'" for o in OUTCOMES)

GENESIS_HASH = "0" * 64

_V1 = f"""
CREATE TABLE clients (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE sessions (
    id                INTEGER PRIMARY KEY,
    client_id         INTEGER NOT NULL REFERENCES clients(id),
    protocol_id       TEXT NOT NULL,
    protocol_version  INTEGER NOT NULL,
    protocol_sha256   TEXT NOT NULL,
    protocol_title    TEXT NOT NULL,
    serum_name        TEXT NOT NULL,
    serum_lot         TEXT NOT NULL,
    practitioner      TEXT NOT NULL,
    device_model      TEXT NOT NULL,
    device_serial     TEXT NOT NULL,
    device_firmware   TEXT NOT NULL,
    device_boot_id    INTEGER,
    device_port       TEXT NOT NULL,
    simulated         INTEGER NOT NULL CHECK (simulated IN (0, 1)),
    checklist         TEXT NOT NULL,
    planned_zones     TEXT NOT NULL,
    started_at        TEXT NOT NULL,
    ended_at          TEXT,
    outcome           TEXT NOT NULL CHECK (outcome IN ({_OUTCOME_LIST})),
    outcome_reason    TEXT
);
CREATE INDEX sessions_by_client ON sessions(client_id, started_at);
CREATE INDEX sessions_by_start ON sessions(started_at);
CREATE INDEX sessions_by_outcome ON sessions(outcome);

CREATE TRIGGER sessions_no_delete BEFORE DELETE ON sessions
BEGIN
    SELECT RAISE(ABORT, 'session records are never deleted');
END;

CREATE TRIGGER sessions_identity_fixed
BEFORE UPDATE OF id, client_id, protocol_id, protocol_version, protocol_sha256, protocol_title,
    serum_name, serum_lot, practitioner, device_model, device_serial, device_firmware,
    device_boot_id, device_port, simulated, checklist, planned_zones, started_at ON sessions
BEGIN
    SELECT RAISE(ABORT, 'what a session was started with is never changed');
END;

CREATE TRIGGER sessions_outcome_final
BEFORE UPDATE OF outcome, ended_at ON sessions WHEN OLD.outcome <> 'running'
BEGIN
    SELECT RAISE(ABORT, 'an ended session keeps its outcome');
END;

CREATE TABLE steps (
    id                 INTEGER PRIMARY KEY,
    session_id         INTEGER NOT NULL REFERENCES sessions(id),
    idx                INTEGER NOT NULL CHECK (idx >= 1),
    attempt            INTEGER NOT NULL CHECK (attempt >= 1),
    kind               TEXT NOT NULL,
    zone               TEXT,
    planned_ms         INTEGER,
    delivered_ms       INTEGER,
    started_at         TEXT,
    ended_at           TEXT,
    amplitude_changes  TEXT NOT NULL DEFAULT '[]',
    holds              INTEGER NOT NULL DEFAULT 0,
    hold_ms            INTEGER NOT NULL DEFAULT 0,
    skipped            INTEGER NOT NULL DEFAULT 0 CHECK (skipped IN (0, 1)),
    skip_reason        TEXT,
    outcome            TEXT,
    UNIQUE (session_id, idx, attempt)
);

CREATE TRIGGER steps_no_delete BEFORE DELETE ON steps
BEGIN
    SELECT RAISE(ABORT, 'step records are never deleted');
END;

CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    seq        INTEGER NOT NULL CHECK (seq >= 1),
    wall_time  TEXT NOT NULL,
    mono_ms    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    UNIQUE (session_id, seq)
);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: events are never changed');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: events are never deleted');
END;

CREATE TABLE chain_head (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_id    INTEGER NOT NULL,
    last_hash  TEXT NOT NULL,
    count      INTEGER NOT NULL
);
INSERT INTO chain_head (singleton, last_id, last_hash, count) VALUES (1, 0, '{GENESIS_HASH}', 0);

CREATE TABLE telemetry (
    id                  INTEGER PRIMARY KEY,
    session_id          INTEGER NOT NULL REFERENCES sessions(id),
    boot_id             INTEGER NOT NULL,
    t_first_ms          INTEGER NOT NULL,
    t_last_ms           INTEGER NOT NULL,
    n                   INTEGER NOT NULL,
    state               INTEGER NOT NULL,
    states_seen         INTEGER NOT NULL,
    faults              INTEGER NOT NULL,
    faults_seen         INTEGER NOT NULL,
    step_id             INTEGER NOT NULL,
    step_elapsed_ms     INTEGER NOT NULL,
    amplitude_dv        INTEGER NOT NULL,
    amplitude_min_dv    INTEGER NOT NULL,
    amplitude_max_dv    INTEGER NOT NULL,
    current_ua          INTEGER NOT NULL,
    current_min_ua      INTEGER NOT NULL,
    current_max_ua      INTEGER NOT NULL,
    impedance_ohm       INTEGER NOT NULL,
    impedance_min_ohm   INTEGER NOT NULL,
    impedance_max_ohm   INTEGER NOT NULL,
    temperature_dc      INTEGER NOT NULL,
    temperature_min_dc  INTEGER NOT NULL,
    temperature_max_dc  INTEGER NOT NULL,
    contact             INTEGER NOT NULL,
    contact_changes     TEXT
);
CREATE INDEX telemetry_by_session ON telemetry(session_id, t_first_ms);
"""

_V2 = """
ALTER TABLE sessions ADD COLUMN notes TEXT NOT NULL DEFAULT '';

CREATE TABLE approvals (
    id                INTEGER PRIMARY KEY,
    sha256            TEXT NOT NULL UNIQUE,
    protocol_id       TEXT NOT NULL,
    protocol_version  INTEGER NOT NULL,
    approved_by       TEXT NOT NULL,
    approved_at       TEXT NOT NULL,
    file_path         TEXT NOT NULL
);
CREATE INDEX approvals_by_protocol ON approvals(protocol_id, protocol_version);

CREATE TRIGGER approvals_no_update BEFORE UPDATE ON approvals
BEGIN
    SELECT RAISE(ABORT, 'approval records are never changed');
END;

CREATE TRIGGER approvals_no_delete BEFORE DELETE ON approvals
BEGIN
    SELECT RAISE(ABORT, 'approval records are never deleted');
END;
"""

#: Full coverage. The event log gets room for events that belong to no session (approvals,
#: the migration itself, corrected client names); a closed session's rows, steps and telemetry
#: can no longer change (its closing event commits their digest); telemetry rows are never
#: changed or deleted; a client with a closed session keeps its row (corrections are chained
#: events). SQLite cannot relax a NOT NULL column in place, so ``events`` is rebuilt: its rows
#: are copied unchanged (every hash stays valid) and its triggers made again.
_V3 = """
DROP TRIGGER events_no_update;
DROP TRIGGER events_no_delete;
CREATE TABLE events_v3 (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER REFERENCES sessions(id),
    seq        INTEGER NOT NULL CHECK (seq >= 1),
    wall_time  TEXT NOT NULL,
    mono_ms    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    UNIQUE (session_id, seq)
);
INSERT INTO events_v3 (id, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash)
    SELECT id, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash FROM events;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE INDEX events_by_kind ON events(kind);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: events are never changed');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: events are never deleted');
END;

ALTER TABLE steps ADD COLUMN delivered_estimated INTEGER NOT NULL DEFAULT 0
    CHECK (delivered_estimated IN (0, 1));
ALTER TABLE sessions ADD COLUMN last_known_at TEXT;

CREATE TRIGGER sessions_closed BEFORE UPDATE ON sessions WHEN OLD.outcome <> 'running'
BEGIN
    SELECT RAISE(ABORT, 'a closed session is never changed: later facts are appended as events');
END;

CREATE TRIGGER steps_closed_update BEFORE UPDATE ON steps
WHEN (SELECT outcome FROM sessions WHERE id = OLD.session_id) IS NOT 'running'
BEGIN
    SELECT RAISE(ABORT, 'the steps of a closed session are never changed');
END;

CREATE TRIGGER steps_closed_insert BEFORE INSERT ON steps
WHEN (SELECT outcome FROM sessions WHERE id = NEW.session_id) IS NOT 'running'
BEGIN
    SELECT RAISE(ABORT, 'a closed session gets no new steps');
END;

CREATE TRIGGER telemetry_no_update BEFORE UPDATE ON telemetry
BEGIN
    SELECT RAISE(ABORT, 'telemetry rows are never changed');
END;

CREATE TRIGGER telemetry_no_delete BEFORE DELETE ON telemetry
BEGIN
    SELECT RAISE(ABORT, 'telemetry rows are never deleted');
END;

CREATE TRIGGER telemetry_closed_insert BEFORE INSERT ON telemetry
WHEN (SELECT outcome FROM sessions WHERE id = NEW.session_id) IS NOT 'running'
BEGIN
    SELECT RAISE(ABORT, 'a closed session gets no new telemetry');
END;

CREATE TRIGGER clients_no_delete BEFORE DELETE ON clients
BEGIN
    SELECT RAISE(ABORT, 'client records are never deleted');
END;

CREATE TRIGGER clients_closed BEFORE UPDATE ON clients
WHEN EXISTS (SELECT 1 FROM sessions WHERE client_id = OLD.id AND outcome <> 'running')
BEGIN
    SELECT RAISE(ABORT, 'a client with a closed session keeps its row: corrections are events');
END;
"""


def _chain_existing_approvals(conn: sqlite3.Connection) -> None:
    """Approvals recorded before full coverage enter the chain through one event that lists
    them: they are trusted as of the upgrade (see docs/records.md)."""
    from controller.records.coverage import record_migrated_approvals

    record_migrated_approvals(conn)


#: The station's identity: one row, created with the database (or by this upgrade) and never
#: changed, so a clinic server can tell the stations' chains apart.
_V4 = """
CREATE TABLE station (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    station_id  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TRIGGER station_no_update BEFORE UPDATE ON station
BEGIN
    SELECT RAISE(ABORT, 'the station id is never changed');
END;

CREATE TRIGGER station_no_delete BEFORE DELETE ON station
BEGIN
    SELECT RAISE(ABORT, 'the station id is never deleted');
END;
"""


def new_station() -> tuple[str, str]:
    """A new station's id (a random UUID4) and creation time. Looked up when the migration
    runs, so a tool that must build the same database every time (the fuzzer) can replace it."""
    import uuid

    from controller.records.models import iso, utc_now

    return str(uuid.uuid4()), iso(utc_now())


def _create_station_id(conn: sqlite3.Connection) -> None:
    """The station's id, made once."""
    conn.execute(
        "INSERT INTO station (singleton, station_id, created_at) VALUES (1, ?, ?)", new_station()
    )


#: Version 5: what the station knows of the clinic server. Neither table is a record: both are
#: the sync's working state, rebuilt from the server when lost, and never part of the chain.
#: ``sync_state`` (one row): the last position the server confirmed holding of this station's
#: chain and when, the last complete pull and the cursor of the sessions pulled, and since when
#: the server has been failing with what. ``remote_sessions``: the other stations' sessions as
#: last pulled (for course progress across rooms). What is pulled that must be proven
#: (approvals, revocations, clients) is appended to the chain as received events instead.
_V5 = """
CREATE TABLE sync_state (
    singleton        INTEGER PRIMARY KEY CHECK (singleton = 1),
    clinic_id        TEXT NOT NULL DEFAULT '',
    pushed_position  INTEGER NOT NULL DEFAULT 0,
    last_push_at     TEXT,
    last_pull_at     TEXT,
    sessions_txid    INTEGER NOT NULL DEFAULT 0,
    failing_since    TEXT,
    last_error       TEXT NOT NULL DEFAULT ''
);
INSERT INTO sync_state (singleton) VALUES (1);

CREATE TABLE remote_sessions (
    station_id        TEXT NOT NULL,
    session_id        INTEGER NOT NULL,
    station_name      TEXT NOT NULL DEFAULT '',
    client_code       TEXT NOT NULL,
    protocol_id       TEXT NOT NULL,
    protocol_version  INTEGER NOT NULL,
    started_at        TEXT NOT NULL,
    simulated         INTEGER NOT NULL,
    outcome           TEXT NOT NULL,
    ended_at          TEXT,
    PRIMARY KEY (station_id, session_id)
);
CREATE INDEX remote_sessions_by_client ON remote_sessions (client_code, protocol_id);
"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "clients, sessions, steps, hash-chained events, decimated telemetry", _V1),
    Migration(2, "protocol approvals; practitioner's notes on sessions", _V2),
    Migration(
        3,
        "full coverage: events outside sessions, closed sessions frozen and sealed, "
        "approvals chained, estimated times",
        _V3,
        _chain_existing_approvals,
    ),
    Migration(4, "the station's id (UUID4, never changed)", _V4, _create_station_id),
    Migration(5, "the clinic server's sync state; other stations' sessions as last pulled", _V5),
)

LATEST_VERSION = MIGRATIONS[-1].version


def split_statements(script: str) -> list[str]:
    """Split a script into complete SQL statements (trigger bodies keep their semicolons).

    ``executescript`` would commit any open transaction first, so migrations run statement by
    statement inside one explicit transaction instead.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending!r}")
    return statements


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(version: int, latest: int, where: str) -> None:
    if version > latest:
        raise SchemaTooNewError(
            f"the records database {where} has schema version {version}, but this epm knows "
            f"versions up to {latest}: it was written by a newer epm. Install that version "
            "(or newer) to use it; this epm will not touch it"
        )


def migrate(
    conn: sqlite3.Connection,
    where: str = "",
    migrations: Sequence[Migration] = MIGRATIONS,
) -> list[int]:
    """Apply the missing migrations in order; return the versions applied.

    Each migration runs in one ``BEGIN IMMEDIATE`` transaction that re-reads ``user_version``
    first, so two processes opening the same old database cannot both apply it.
    """
    latest = migrations[-1].version if migrations else 0
    check_not_newer(schema_version(conn), latest, where)
    applied: list[int] = []
    for migration in migrations:
        with transaction(conn):
            current = schema_version(conn)
            check_not_newer(current, latest, where)
            if current >= migration.version:
                continue
            if current != migration.version - 1:
                raise DatabaseError(
                    f"the records database {where} is at schema version {current} but the next "
                    f"migration is {migration.version}: the migration list has a gap"
                )
            for statement in split_statements(migration.script):
                conn.execute(statement)
            if migration.step is not None:
                migration.step(conn)
            conn.execute(f"PRAGMA user_version = {int(migration.version)}")
        applied.append(migration.version)
    return applied
