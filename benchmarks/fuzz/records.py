"""Target ``records``: a damaged records database read through the public records API.

A small database is built once with :class:`RecordStore` (two clients, a completed session with
steps, an amplitude change, a hold, a skip, telemetry and a note; a simulated stopped session; a
session left running; a protocol approval). Each case copies it and damages the copy, as
someone with the file could:

- at SQL level (triggers dropped first): a cell of a random row of a random table set to a value
  of another type (or the same type, slightly changed), a row deleted, or a row duplicated;
- at byte level: bytes flipped or overwritten, the file truncated, a page zeroed, header
  fields changed.

Then the copy is opened for reading (``RecordStore.open(folder, exclusive=False)``) and
``verify_chain``, ``list_sessions``, ``session_detail`` of every session and the JSON and CSV
exporters are called. Invariants: nothing but :class:`RecordsError` (and subclasses) comes out,
and a change at SQL level to a covered row — an event, an approval, or a row of a closed
session (its sessions row, steps, telemetry, client), before or after the change — is reported
by ``verify_chain`` as not ok. Tables are found in the database, not listed here, so tables
added later are damaged too. Changes verify cannot see (the running session's rows, which are
sealed when it closes; ``chain_head``'s fixed column) are counted in the notes.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.fuzz.mutate import case_random
from benchmarks.fuzz.runner import Case, EscapeError, Failure

T = TypeVar("T")
DB_NAME = "records.sqlite3"
SIDE_FILES = ("-wal", "-shm", "-journal")
#: Sessions of the base database (ids), also asked for when the listing fails.
KNOWN_SESSIONS = (1, 2, 3)


class _Clock:
    """A clock that moves one second per reading: the base database is the same every time."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


class _Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 0.25
        return self.t


SESSION: dict[str, Any] = {
    "client_code": "C-0042",
    "protocol_id": "aga-early-scalp",
    "protocol_version": 3,
    "protocol_sha256": "ab" * 32,
    "protocol_title": "Early androgenetic alopecia, scalp",
    "serum_name": "Biotin and panthenol cocktail",
    "serum_lot": "LOT-2026-117",
    "practitioner": "Dana Practitioner",
    "device_model": "EPM-1",
    "device_serial": "EPM1-000123",
    "device_firmware": "1.4.2",
    "device_boot_id": 0x5A5A,
    "device_port": "/dev/serial/by-id/usb-EPM-1",
    "checklist": {"active_infection": False, "consultation_done": True},
    "planned_zones": ["frontal", "midscalp", "crown"],
}


def build_database(folder: Path) -> Path:
    """The base database in ``folder``, checkpointed into one file; returns its path."""
    from controller.records import RecordStore
    from controller.wire import Telemetry

    def sample(t: int, **fields: int) -> Telemetry:
        values = {
            "dseq": t & 0xFFFF,
            "boot_id": 0x5A5A,
            "t_ms": t,
            "state": 3,
            "faults": 0,
            "step_id": 2,
            "step_elapsed_ms": t,
            "amplitude_dv": 400 + t % 13,
            "current_ua": 2000 + t % 17,
            "impedance_ohm": 1500,
            "temperature_dc": 330,
            "contact": 1 if t % 700 else 2,
        }
        values.update(fields)
        return Telemetry(**values)

    from unittest import mock

    from controller.records import migrations

    station = ("5f0c8a52-2f7e-4c3b-9a1d-0e6b7c8d9e10", "2026-03-02T09:00:00.000000+00:00")
    with (
        mock.patch.object(migrations, "new_station", lambda: station),
        RecordStore.open(folder, clock=_Clock(), monotonic=_Monotonic()) as store,
    ):
        store.get_or_create_client("C-0042", "Ann Example")
        real = store.begin_session(**SESSION)
        store.record_step_start(real, 1, kind="manual", planned_ms=120_000)
        store.record_step_end(real, 1, outcome="completed", delivered_ms=None)
        store.record_step_start(real, 2, kind="delivery", zone="frontal", planned_ms=300_000)
        store.record_amplitude_change(real, 2, from_dv=400, to_dv=450, source="practitioner")
        store.record_hold(real, 2, held_ms=1200)
        store.add_telemetry(real, [sample(t) for t in range(0, 3000, 5)])
        store.record_step_end(real, 2, outcome="completed", delivered_ms=300_000)
        store.record_skip(real, 3, "the client asked to stop", kind="delivery", zone="crown")
        store.append_event(real, "warning", {"message": "impedance high", "ohm": 4100})
        store.set_notes(real, "Tolerated well.")
        store.end_session(real, "completed", "all steps delivered", {"delivered_s": 300})

        store.get_or_create_client("C-0077")
        sim = store.begin_session(
            **{**SESSION, "client_code": "C-0077", "device_serial": "SIM-0001", "serum_lot": ""}
        )
        store.record_step_start(sim, 1, kind="delivery", zone="crown", planned_ms=60_000)
        store.add_telemetry(sim, [sample(t, step_id=1) for t in range(0, 800, 5)])
        store.end_session(sim, "stopped", "demo")

        open_id = store.begin_session(**SESSION)
        store.record_step_start(open_id, 1, kind="manual")
        _approve(store)
    for suffix in SIDE_FILES:  # closing checkpointed the log into the database file
        Path(f"{folder / DB_NAME}{suffix}").unlink(missing_ok=True)
    return folder / DB_NAME


def _approve(store: Any) -> None:
    """Approve a bundled protocol, if the approvals API takes it (it is optional here)."""
    try:
        from controller.records.approvals import approve
        from protocols import bundled_library_path, load_protocol

        path = bundled_library_path() / "aga-early-scalp.yaml"
        approve(store, load_protocol(path), path, "Head Technician")
    except Exception as error:  # the base database is still useful without it
        print(f"# records fuzz: no approval in the base database ({error!r})")


# --- the schema, read from the database --------------------------------------------------------


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    #: Columns that alias the rowid (``INTEGER PRIMARY KEY``): left out of a duplicated row.
    rowid_columns: tuple[str, ...]
    rowids: tuple[int, ...]


def read_schema(path: Path) -> list[Table]:
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
        tables = []
        for name in names:
            info = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
            columns = tuple(str(r[1]) for r in info)
            rowid_columns = tuple(
                str(r[1]) for r in info if r[5] == 1 and str(r[2]).upper() == "INTEGER"
            )
            try:
                rowids = tuple(r[0] for r in conn.execute(f'SELECT rowid FROM "{name}"'))
            except sqlite3.Error:  # WITHOUT ROWID
                continue
            tables.append(Table(name, columns, rowid_columns, rowids))
        return tables
    finally:
        conn.close()


# --- damage ------------------------------------------------------------------------------------


def _other_value(rnd: random.Random, current: object) -> object:
    """A value of another type than ``current`` (or, sometimes, the same type changed)."""
    if rnd.random() < 0.3:
        if isinstance(current, bool | int):
            return int(current) + rnd.choice((1, -1, 1000, -(2**31)))
        if isinstance(current, float):
            return current * 2 + 1
        if isinstance(current, str) and current:
            at = rnd.randrange(len(current))
            return current[:at] + rnd.choice("x0{}[]\"',é ") + current[at + 1 :]
        if isinstance(current, bytes):
            return current + b"\0"
    pools: dict[str, tuple[object, ...]] = {
        "int": (0, 1, -1, 2**63 - 1, -(2**63), 3, 1_000_000),
        "float": (0.5, -1.0, 1e308, -1e308, 3.25, 1e-300),
        "text": (
            "",
            "x",
            "0",
            "1",
            "null",
            "true",
            "[]",
            "{}",
            '{"a":',
            "[1,2]",
            '"s"',
            "1e999",
            "NaN",
            '{"outcome": 5}',
            '{"data": {"x": [1, {"y": null}]}}',
            "2026-02-29T25:00:00+00:00",
            "not a date",
            "é" * 50,
            "\x00abc",
            "x" * 100_000,
            "'; DROP TABLE events; --",
        ),
        "blob": (b"", b"\x00", b"\xff\xfe\xfd", b'{"a": 1}', bytes(range(256))),
        "null": (None,),
    }
    kind = {bool: "int", int: "int", float: "float", str: "text", bytes: "blob"}.get(
        type(current), "null"
    )
    other = rnd.choice([k for k in pools if k != kind])
    return rnd.choice(pools[other])


def _cell(conn: sqlite3.Connection, table: str, column: str, rowid: int) -> tuple[Any, ...] | None:
    row = conn.execute(
        f'SELECT typeof("{column}"), "{column}" FROM "{table}" WHERE rowid = ?', (rowid,)
    ).fetchone()
    return tuple(row) if row is not None else None


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def sql_damage(rnd: random.Random, path: Path, tables: Sequence[Table]) -> tuple[str, list[str]]:
    """Change the database at ``path`` with SQL; returns what was done and the tables whose
    stored content really changed (an UPDATE to the same stored value changes nothing)."""
    conn = sqlite3.connect(path, isolation_level=None)
    done: list[str] = []
    changed: list[str] = []
    covered: list[str] = []
    refused = 0
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute("PRAGMA ignore_check_constraints = ON")
        usable = [t for t in tables if t.rowids]
        weights = [4 if t.name == "events" else 1 for t in usable]
        for _ in range(rnd.choice((1, 1, 1, 2, 3))):
            for _attempt in range(6):  # a refused change (NOT NULL, UNIQUE) is tried again
                table = rnd.choices(usable, weights)[0]
                rowid = rnd.choice(table.rowids)
                was_covered = is_covered(conn, table.name, rowid)
                try:
                    what, where = _one_change(rnd, conn, table, rowid)
                except sqlite3.Error:  # NOT NULL, UNIQUE, a rowid that must be an integer
                    refused += 1
                    continue
                if what is not None:
                    done.append(what)
                    changed.append(table.name)
                    if was_covered or (where is not None and is_covered(conn, table.name, where)):
                        covered.append(f"{table.name} rowid {rowid}")
                    break
    finally:
        conn.close()
    what = "; ".join(done) or "no change"
    return what + (f" ({refused} refused by SQLite)" if refused else ""), changed, covered


def is_covered(conn: sqlite3.Connection, table: str, rowid: int) -> bool:
    """Whether the row is one ``verify`` must vouch for: an event, an approval, or a row of a
    closed (sealed) session — its sessions row, steps, telemetry and client. A running
    session's rows are sealed only when it closes; ``chain_head`` holds no content."""

    def closed(session_id: object) -> bool:
        row = conn.execute("SELECT outcome FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None and row[0] != "running"

    try:
        if table in ("events", "approvals"):
            return True
        if table == "sessions":
            return closed(rowid)
        if table in ("steps", "telemetry"):
            row = conn.execute(f"SELECT session_id FROM {table} WHERE rowid = ?", (rowid,))
            found = row.fetchone()
            return found is not None and closed(found[0])
        if table == "clients":
            row = conn.execute(
                "SELECT 1 FROM sessions WHERE client_id = ? AND outcome <> 'running'", (rowid,)
            ).fetchone()
            return row is not None
    except sqlite3.Error:
        return False
    return False


def _one_change(
    rnd: random.Random, conn: sqlite3.Connection, table: Table, rowid: int
) -> tuple[str | None, int | None]:
    """One change; returns what was done (None: nothing changed) and the changed row's rowid
    afterwards (None when it is gone)."""
    operation = rnd.choices(("update", "delete", "duplicate"), weights=(70, 15, 15))[0]
    if operation == "delete":
        conn.execute(f'DELETE FROM "{table.name}" WHERE rowid = ?', (rowid,))
        return f"DELETE {table.name} rowid {rowid}", None
    if operation == "duplicate":
        columns = [c for c in table.columns if c not in table.rowid_columns]
        listed = ", ".join(f'"{c}"' for c in columns)
        verb = rnd.choice(("INSERT", "INSERT OR REPLACE"))
        conn.execute(
            f'{verb} INTO "{table.name}" ({listed}) '
            f'SELECT {listed} FROM "{table.name}" WHERE rowid = ?',
            (rowid,),
        )
        return f"{verb} copy of {table.name} rowid {rowid}", None
    column = rnd.choice(table.columns)
    before = _cell(conn, table.name, column, rowid)
    value = _other_value(rnd, before[1] if before else None)
    conn.execute(f'UPDATE "{table.name}" SET "{column}" = ? WHERE rowid = ?', (value, rowid))
    # A rowid column changes the row's rowid: look it up by the new value.
    where = value if column in table.rowid_columns and isinstance(value, int) else rowid
    after = _cell(conn, table.name, column, where)
    if after == before:
        return None, None
    what = f"UPDATE {table.name} rowid {rowid} SET {column} = {_describe(value)}"
    return what, where if isinstance(where, int) else None


def byte_damage(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    """Damage the file's bytes directly."""
    page = int.from_bytes(data[16:18], "big") or 4096
    page = 65536 if page == 1 else page
    pages = max(1, len(data) // page)
    what = rnd.choice(
        ("flip", "flip", "overwrite", "truncate", "zero page", "swap pages", "header")
    )
    out = bytearray(data)
    if what == "flip":
        n = rnd.choice((1, 1, 2, 4, 16))
        first = rnd.randrange(pages) * page
        spots = [
            rnd.randrange(len(out)) if rnd.random() < 0.5 else first + rnd.randrange(page)
            for _ in range(n)
        ]
        for at in spots:
            out[at % len(out)] ^= 1 << rnd.randrange(8)
        return f"flip {n} bits near {sorted(spots)[:4]}", bytes(out)
    if what == "overwrite":
        at = rnd.randrange(len(out))
        size = rnd.randint(1, 64)
        out[at : at + size] = rnd.randbytes(size)
        return f"overwrite {size} bytes at {at}", bytes(out[: len(data)])
    if what == "truncate":
        at = rnd.choice((0, 50, 100, page, page * rnd.randint(1, pages), rnd.randrange(len(data))))
        return f"truncate to {at} bytes", data[:at]
    if what == "zero page":
        n = rnd.randrange(pages)
        out[n * page : (n + 1) * page] = bytes(page)
        return f"zero page {n + 1}", bytes(out)
    if what == "swap pages":
        a, b = rnd.randrange(pages), rnd.randrange(pages)
        pa, pb = data[a * page : (a + 1) * page], data[b * page : (b + 1) * page]
        out[a * page : (a + 1) * page] = pb
        out[b * page : (b + 1) * page] = pa
        return f"swap pages {a + 1} and {b + 1}", bytes(out)
    fields = {
        "page size": (16, 2),
        "write version": (18, 1),
        "read version": (19, 1),
        "reserved space": (20, 1),
        "page count": (28, 4),
        "first freelist page": (32, 4),
        "schema cookie": (40, 4),
        "schema format": (44, 4),
        "text encoding": (56, 4),
        "user_version": (60, 4),
        "magic": (0, 16),
    }
    name = rnd.choice(sorted(fields))
    at, size = fields[name]
    value = rnd.choice((0, 1, 2, 3, 255, 2 ** (8 * size) - 1, rnd.randrange(2 ** (8 * size))))
    out[at : at + size] = value.to_bytes(size, "big")
    return f"header {name} := {value}", bytes(out)


# --- the target -------------------------------------------------------------------------------


def _call(
    where: str,
    allowed: type[BaseException] | tuple[type[BaseException], ...],
    fn: Callable[[], T],
) -> tuple[bool, T | None]:
    """``(True, result)``, or ``(False, None)`` after an allowed error; anything else escapes."""
    try:
        return True, fn()
    except allowed:
        return False, None
    except Exception as error:
        raise EscapeError(where, error) from error


class RecordsFuzzer:
    name = "records"
    default_count = 3000
    batch = 1

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def __enter__(self) -> RecordsFuzzer:
        base = self.workdir / "base"
        base.mkdir(parents=True, exist_ok=True)
        path = build_database(base)
        self.base = path.read_bytes()
        self.tables = read_schema(path)
        self.case_dir = self.workdir / "case"
        self.mutate_dir = self.workdir / "mutate"
        for folder in (self.case_dir, self.mutate_dir):
            folder.mkdir(parents=True, exist_ok=True)
        notes: Counter[str] = Counter()
        clean = Case(self.name, -1, -1, "the base database", self.base, {"changed": []})
        failures = self.check(clean, notes)
        if failures or notes["verify: not ok"] or notes["refused: open"]:
            raise RuntimeError(f"the base records database does not check clean: {failures}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self.workdir / "base", ignore_errors=True)

    @staticmethod
    def _clear(folder: Path) -> None:
        for child in folder.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def generate(self, seed: int, index: int) -> Case:
        rnd = case_random(self.name, seed, index)
        if rnd.random() < 0.65:
            self._clear(self.mutate_dir)
            path = self.mutate_dir / DB_NAME
            path.write_bytes(self.base)
            what, changed, covered = sql_damage(rnd, path, self.tables)
            for suffix in SIDE_FILES:
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            meta: dict[str, Any] = {"level": "sql", "changed": changed, "covered": covered}
            return Case(self.name, seed, index, f"sql: {what}", path.read_bytes(), meta)
        what, data = byte_damage(rnd, self.base)
        return Case(self.name, seed, index, f"bytes: {what}", data, {"level": "bytes"})

    def check_batch(self, cases: Sequence[Case], notes: Counter[str]) -> list[tuple[Case, Failure]]:
        return []  # every case is checked on its own

    def check(self, case: Case, notes: Counter[str]) -> list[Failure]:
        from controller.records import RecordsError, RecordStore
        from controller.records import export as exporting

        self._clear(self.case_dir)
        (self.case_dir / DB_NAME).write_bytes(case.data)
        notes[f"level: {case.meta.get('level', '?')}"] += 1
        opened, store = _call(
            "RecordStore.open",
            RecordsError,
            lambda: RecordStore.open(self.case_dir, exclusive=False),
        )
        if not opened or store is None:
            notes["refused: open"] += 1
            return []
        refused: list[str] = []
        try:
            ok, report = _call("verify_chain", RecordsError, store.verify_chain)
            if not ok:
                refused.append("verify_chain")
            ok, listed = _call("list_sessions", RecordsError, store.list_sessions)
            if not ok:
                refused.append("list_sessions")
            sessions = list(listed or [])
            ids = sorted({s.id for s in sessions} | set(KNOWN_SESSIONS))
            for session_id in ids:
                ok, _ = _call(
                    "session_detail", RecordsError, partial(store.session_detail, session_id)
                )
                if not ok:
                    refused.append("session_detail")
            ok, data = _call("export_json", RecordsError, lambda: exporting.export_json(store))
            if ok:
                # as `epm records export --format json` writes it
                _call(
                    "export_json then json.dumps", (), lambda: json.dumps(data, ensure_ascii=False)
                )
            else:
                refused.append("export_json")
            _call(
                "write_sessions_csv",
                RecordsError,
                lambda: exporting.write_sessions_csv(sessions, io.StringIO()),
            )
            for session_id in ids:
                ok, _ = _call(
                    "write_session_csv_stream",
                    RecordsError,
                    partial(exporting.write_session_csv_stream, store, session_id, io.StringIO()),
                )
                if not ok:
                    refused.append("write_session_csv_stream")
        finally:
            _call("close", RecordsError, store.close)
        for where in set(refused):
            notes[f"refused: {where}"] += 1
        return self._verdict(case, report, notes)

    @staticmethod
    def _verdict(case: Case, report: Any, notes: Counter[str]) -> list[Failure]:
        verified = report is not None
        if verified:
            notes["verify: ok" if report.ok else "verify: not ok"] += 1
        changed: list[str] = list(case.meta.get("changed") or [])
        if not changed or not verified or not report.ok:
            return []
        covered: list[str] = list(case.meta.get("covered") or [])
        if covered:
            return [
                Failure(
                    "invariant",
                    f"a change to a covered row ({', '.join(covered)}) is not found by "
                    "verify_chain",
                    case.description,
                )
            ]
        for table in sorted(set(changed)):
            notes[f"undetected change (not covered: running session or chain_head): {table}"] += 1
        return []
