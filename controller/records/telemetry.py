"""Telemetry decimation: one stored row per 100 ms of device time, without losing a spike.

The device streams up to 1000 samples/s. Storing each would make a 30-minute session about
100 MB; storing one sample in a hundred would drop a one-sample current spike. Each 100 ms
interval (by the device's ``t_ms``) therefore becomes one row that holds the interval's last
sample, the minimum and maximum of amplitude, current, impedance and temperature, every state
and fault bit seen (OR-ed), the number of samples, and every contact change with its device
time. At 1000 Hz that is 10 rows/s, about 2 MB per 30 minutes (measured by the tests).

Pure logic: the store feeds samples in and writes the finished rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

INTERVAL_MS = 100
#: How many telemetry rows may wait in memory before they are written regardless of time.
MAX_PENDING_ROWS = 600


class TelemetrySample(Protocol):
    """The fields of a device TELEMETRY message this module reads (``controller.wire.Telemetry``
    has them)."""

    @property
    def boot_id(self) -> int: ...
    @property
    def t_ms(self) -> int: ...
    @property
    def state(self) -> int: ...
    @property
    def faults(self) -> int: ...
    @property
    def step_id(self) -> int: ...
    @property
    def step_elapsed_ms(self) -> int: ...
    @property
    def amplitude_dv(self) -> int: ...
    @property
    def current_ua(self) -> int: ...
    @property
    def impedance_ohm(self) -> int: ...
    @property
    def temperature_dc(self) -> int: ...
    @property
    def contact(self) -> int: ...


#: Column order of a stored telemetry row (after ``id`` and ``session_id``).
ROW_COLUMNS: tuple[str, ...] = (
    "boot_id",
    "t_first_ms",
    "t_last_ms",
    "n",
    "state",
    "states_seen",
    "faults",
    "faults_seen",
    "step_id",
    "step_elapsed_ms",
    "amplitude_dv",
    "amplitude_min_dv",
    "amplitude_max_dv",
    "current_ua",
    "current_min_ua",
    "current_max_ua",
    "impedance_ohm",
    "impedance_min_ohm",
    "impedance_max_ohm",
    "temperature_dc",
    "temperature_min_dc",
    "temperature_max_dc",
    "contact",
    "contact_changes",
)


@dataclass
class _Bucket:
    boot_id: int
    key: int
    t_first_ms: int
    t_last_ms: int
    n: int
    state: int
    states_seen: int
    faults: int
    faults_seen: int
    step_id: int
    step_elapsed_ms: int
    amplitude_dv: int
    amplitude_min_dv: int
    amplitude_max_dv: int
    current_ua: int
    current_min_ua: int
    current_max_ua: int
    impedance_ohm: int
    impedance_min_ohm: int
    impedance_max_ohm: int
    temperature_dc: int
    temperature_min_dc: int
    temperature_max_dc: int
    contact: int
    contact_changes: list[tuple[int, int]] = field(default_factory=list)

    def row(self) -> tuple[int | str | None, ...]:
        changes = (
            ",".join(f"{t}:{c}" for t, c in self.contact_changes) if self.contact_changes else None
        )
        return (
            self.boot_id,
            self.t_first_ms,
            self.t_last_ms,
            self.n,
            self.state,
            self.states_seen,
            self.faults,
            self.faults_seen,
            self.step_id,
            self.step_elapsed_ms,
            self.amplitude_dv,
            self.amplitude_min_dv,
            self.amplitude_max_dv,
            self.current_ua,
            self.current_min_ua,
            self.current_max_ua,
            self.impedance_ohm,
            self.impedance_min_ohm,
            self.impedance_max_ohm,
            self.temperature_dc,
            self.temperature_min_dc,
            self.temperature_max_dc,
            self.contact,
            changes,
        )


def parse_contact_changes(text: str | None) -> list[tuple[int, int]]:
    """``"t_ms:code,t_ms:code"`` (as stored) to ``[(t_ms, code), ...]``."""
    if not text:
        return []
    pairs = []
    for item in text.split(","):
        t, _, c = item.partition(":")
        pairs.append((int(t), int(c)))
    return pairs


class Decimator:
    """Turns a stream of samples into one row per ``interval_ms`` of device time.

    A new row starts when the sample's interval differs from the current one, or when the
    device's ``boot_id`` changes (a restart: its clock starts again). Contact changes are
    tracked across rows, so the first sample of a row can itself be a change.
    """

    def __init__(self, interval_ms: int = INTERVAL_MS) -> None:
        if interval_ms < 1:
            raise ValueError("the telemetry interval must be at least 1 ms")
        self.interval_ms = interval_ms
        self._bucket: _Bucket | None = None
        self._last_contact: int | None = None
        self._done: list[tuple[int | str | None, ...]] = []
        self.samples_in = 0

    def feed(self, samples: Iterable[TelemetrySample]) -> None:
        interval = self.interval_ms
        done = self._done
        b = self._bucket
        last_contact = self._last_contact
        n_in = 0
        for s in samples:
            n_in += 1
            t = s.t_ms
            key = t // interval
            contact = s.contact
            amp = s.amplitude_dv
            cur = s.current_ua
            imp = s.impedance_ohm
            temp = s.temperature_dc
            if b is None or key != b.key or s.boot_id != b.boot_id:
                if b is not None:
                    done.append(b.row())
                b = _Bucket(
                    s.boot_id,
                    key,
                    t,
                    t,
                    0,
                    s.state,
                    0,
                    s.faults,
                    0,
                    s.step_id,
                    s.step_elapsed_ms,
                    amp,
                    amp,
                    amp,
                    cur,
                    cur,
                    cur,
                    imp,
                    imp,
                    imp,
                    temp,
                    temp,
                    temp,
                    contact,
                )
            b.n += 1
            b.t_last_ms = t
            b.state = s.state
            b.states_seen |= 1 << s.state
            b.faults = s.faults
            b.faults_seen |= s.faults
            b.step_id = s.step_id
            b.step_elapsed_ms = s.step_elapsed_ms
            b.amplitude_dv = amp
            if amp < b.amplitude_min_dv:
                b.amplitude_min_dv = amp
            elif amp > b.amplitude_max_dv:
                b.amplitude_max_dv = amp
            b.current_ua = cur
            if cur < b.current_min_ua:
                b.current_min_ua = cur
            elif cur > b.current_max_ua:
                b.current_max_ua = cur
            b.impedance_ohm = imp
            if imp < b.impedance_min_ohm:
                b.impedance_min_ohm = imp
            elif imp > b.impedance_max_ohm:
                b.impedance_max_ohm = imp
            b.temperature_dc = temp
            if temp < b.temperature_min_dc:
                b.temperature_min_dc = temp
            elif temp > b.temperature_max_dc:
                b.temperature_max_dc = temp
            if contact != last_contact:
                if last_contact is not None:
                    b.contact_changes.append((t, contact))
                last_contact = contact
            b.contact = contact
        self._bucket = b
        self._last_contact = last_contact
        self.samples_in += n_in

    @property
    def pending_rows(self) -> int:
        """Finished rows not yet taken."""
        return len(self._done)

    def put_back(self, rows: list[tuple[int | str | None, ...]]) -> None:
        """Return rows from :meth:`take` that could not be written; they go first again."""
        self._done[:0] = rows

    def take(self, include_open: bool = False) -> list[tuple[int | str | None, ...]]:
        """Return the finished rows (and the open one too when ``include_open``) and forget them.

        ``include_open`` is for the end of a session: the last interval is written even though
        it is incomplete. A later sample in the same interval would then start a new row.
        """
        rows = self._done
        self._done = []
        if include_open and self._bucket is not None:
            rows.append(self._bucket.row())
            self._bucket = None
        return rows
