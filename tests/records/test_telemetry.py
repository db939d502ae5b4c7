"""Telemetry decimation keeps every extreme and contact change, stays small, and is written in
batches about once a second and completely at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from controller.records import RecordStore
from controller.records.telemetry import Decimator, parse_contact_changes
from controller.wire import Telemetry
from tests.records.conftest import FakeMonotonic, begin


def sample(t_ms: int, **fields: int) -> Telemetry:
    values = {
        "dseq": t_ms & 0xFFFF,
        "boot_id": 0x1111,
        "t_ms": t_ms,
        "state": 3,
        "faults": 0,
        "step_id": 2,
        "step_elapsed_ms": t_ms,
        "amplitude_dv": 400,
        "current_ua": 2000,
        "impedance_ohm": 1500,
        "temperature_dc": 330,
        "contact": 1,
    }
    values.update(fields)
    return Telemetry(**values)


def rows_as_dicts(rows: Sequence[tuple[object, ...]]) -> list[dict[str, object]]:
    from controller.records.telemetry import ROW_COLUMNS

    return [dict(zip(ROW_COLUMNS, r, strict=True)) for r in rows]


def test_one_row_per_100_ms_with_last_sample_and_extremes() -> None:
    d = Decimator()
    d.feed(sample(t, amplitude_dv=400 + t % 7) for t in range(0, 300))
    rows = rows_as_dicts(d.take(include_open=True))
    assert [(r["t_first_ms"], r["t_last_ms"], r["n"]) for r in rows] == [
        (0, 99, 100),
        (100, 199, 100),
        (200, 299, 100),
    ]
    assert rows[0]["amplitude_min_dv"] == 400 and rows[0]["amplitude_max_dv"] == 406
    assert rows[0]["amplitude_dv"] == 400 + 99 % 7  # the last sample's value


def test_a_single_sample_spike_survives() -> None:
    d = Decimator()
    spikes = {
        437: {"current_ua": 9_800},
        512: {"impedance_ohm": 30},
        640: {"temperature_dc": 412, "faults": 1 << 4, "state": 7},
        777: {"amplitude_dv": 0},
    }
    d.feed(sample(t, **spikes.get(t, {})) for t in range(1000))
    rows = rows_as_dicts(d.take(include_open=True))
    assert len(rows) == 10
    by_interval = {int(r["t_first_ms"]) // 100: r for r in rows}  # type: ignore[call-overload]
    assert by_interval[4]["current_max_ua"] == 9_800
    assert by_interval[4]["current_ua"] == 2000  # the last sample is back to normal
    assert by_interval[5]["impedance_min_ohm"] == 30
    assert by_interval[6]["temperature_max_dc"] == 412
    assert by_interval[6]["faults_seen"] == 1 << 4 and by_interval[6]["faults"] == 0
    assert by_interval[6]["states_seen"] == (1 << 3) | (1 << 7)
    assert by_interval[7]["amplitude_min_dv"] == 0
    assert all(r["current_max_ua"] == 2000 for k, r in by_interval.items() if k != 4)


def test_contact_changes_are_kept_with_their_time_even_inside_one_interval() -> None:
    d = Decimator()
    contact = {t: 1 for t in range(300)}
    contact.update({120: 0, 121: 0, 122: 2, 123: 1, 200: 0})
    for t in range(201, 300):
        contact[t] = 0
    d.feed(sample(t, contact=contact[t]) for t in range(300))
    rows = rows_as_dicts(d.take(include_open=True))
    assert rows[0]["contact_changes"] is None
    assert parse_contact_changes(rows[1]["contact_changes"]) == [  # type: ignore[arg-type]
        (120, 0),
        (122, 2),
        (123, 1),
    ]
    assert parse_contact_changes(rows[2]["contact_changes"]) == [(200, 0)]  # type: ignore[arg-type]
    assert rows[2]["contact"] == 0


def test_a_device_restart_starts_a_new_row() -> None:
    d = Decimator()
    d.feed([sample(50_010), sample(50_020), sample(5, boot_id=0x2222), sample(8, boot_id=0x2222)])
    rows = rows_as_dicts(d.take(include_open=True))
    assert [(r["boot_id"], r["n"]) for r in rows] == [(0x1111, 2), (0x2222, 2)]


def test_rows_are_written_about_once_a_second(store: RecordStore, mono: FakeMonotonic) -> None:
    sid = begin(store)
    store.add_telemetry(sid, (sample(t) for t in range(0, 500)))
    assert store.telemetry_rows(sid) == []  # buffered: less than a second went by
    mono.t += 1.0
    store.add_telemetry(sid, (sample(t) for t in range(500, 600)))
    assert len(store.telemetry_rows(sid)) == 5  # the finished intervals 0..499
    store.end_session(sid, "completed")
    rows = store.telemetry_rows(sid)
    assert len(rows) == 6 and rows[-1]["t_last_ms"] == 599  # the open interval too


def test_close_writes_the_buffered_rows(data_dir: Path) -> None:
    with RecordStore.open(data_dir) as store:
        sid = begin(store)
        store.add_telemetry(sid, [sample(t) for t in range(250)])
    with RecordStore.open(data_dir, exclusive=False) as again:
        assert sum(r["n"] for r in again.telemetry_rows(sid)) == 250


def test_telemetry_for_a_session_that_is_not_running_is_dropped(store: RecordStore) -> None:
    sid = begin(store)
    store.end_session(sid, "completed")
    store.add_telemetry(sid, [sample(t) for t in range(10)])
    store.add_telemetry(12345, [sample(t) for t in range(5)])
    store.flush_telemetry(final=True)
    assert store.telemetry_rows(sid) == []
    assert store.dropped_telemetry == 15


class _Sample:
    """A mutable telemetry sample (the fields of ``Telemetry``): building 1.8 million
    NamedTuples would dominate this test's time, and the decimator reads each sample once."""

    __slots__ = (
        "amplitude_dv", "boot_id", "contact", "current_ua", "dseq", "faults", "impedance_ohm",
        "state", "step_elapsed_ms", "step_id", "t_ms", "temperature_dc",
    )  # fmt: skip

    def __init__(self) -> None:
        self.boot_id, self.state, self.faults, self.step_id = 0x3344, 3, 0, 1
        self.dseq = self.t_ms = self.step_elapsed_ms = self.amplitude_dv = 0
        self.current_ua = self.impedance_ohm = self.temperature_dc = self.contact = 0


def _thirty_minutes_at_1000_hz(spike_at: int) -> Iterator[Iterator[_Sample]]:
    """1 800 000 samples in batches of 1000 (one second each): a varying signal, a marginal-
    contact blip every half second and one current spike at device time ``spike_at``."""
    t0 = 5_000_000
    amplitude = [400 + k % 30 for k in range(1000)]
    current = [2000 + (k * 7919) % 400 for k in range(1000)]
    impedance = [1000 + (k * 104729) % 9000 for k in range(1000)]
    contact = [2 if k % 500 == 250 else 1 for k in range(1000)]
    s = _Sample()

    def one_second(second: int) -> Iterator[_Sample]:
        base = t0 + second * 1000
        s.temperature_dc = 330 + second % 40
        for k in range(1000):
            t = base + k
            s.t_ms, s.dseq, s.step_elapsed_ms = t, t & 0xFFFF, t - t0
            s.amplitude_dv, s.impedance_ohm, s.contact = amplitude[k], impedance[k], contact[k]
            s.current_ua = 9_900 if t == spike_at else current[k]
            yield s

    for second in range(30 * 60):
        yield one_second(second)


def test_thirty_minutes_at_1000_hz_stay_under_5_mb(store: RecordStore, mono: FakeMonotonic) -> None:
    sid = begin(store)
    store.checkpoint()
    files = [store.path, Path(f"{store.path}-wal")]
    before = sum(os.path.getsize(f) for f in files if f.exists())
    spike_at = 5_000_000 + 1_234_567
    for batch in _thirty_minutes_at_1000_hz(spike_at):
        mono.t += 1.0  # one second of wall time per batch, as in a real session
        store.add_telemetry(sid, batch)
    store.end_session(sid, "completed")
    store.checkpoint()
    growth = sum(os.path.getsize(f) for f in files if f.exists()) - before

    summary = store.telemetry_summary(sid)
    assert summary.samples == 1_800_000
    assert summary.rows == 18_000
    assert growth < 5 * 1024 * 1024, f"{growth / 1e6:.2f} MB"
    assert summary.current_max_ua == 9_900  # the one-sample spike survived
    with store.read_connection() as rc:
        (row,) = rc.execute(
            "SELECT t_first_ms, current_max_ua, current_ua FROM telemetry "
            "WHERE session_id = ? AND current_max_ua = 9900",
            (sid,),
        ).fetchall()
    assert row[0] <= spike_at < row[0] + 100 and row[2] < 9_900
    assert summary.contact_changes == 2 * 2 * 30 * 60  # every marginal blip, in and out


@pytest.mark.parametrize("interval", [0, -5])
def test_the_interval_must_be_positive(interval: int) -> None:
    with pytest.raises(ValueError, match="at least 1 ms"):
        Decimator(interval)


def test_rows_that_could_not_be_written_are_kept_for_the_next_flush(
    store: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    sid = begin(store)
    store.add_telemetry(sid, [sample(t) for t in range(300)])
    real = store.write_transaction

    def disk_full() -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "write_transaction", disk_full)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        store.flush_telemetry(sid)
    monkeypatch.setattr(store, "write_transaction", real)
    assert store.flush_telemetry(sid, final=True) == 3
    assert sum(r["n"] for r in store.telemetry_rows(sid)) == 300
