"""Faults of the wire between host and unit: drop, duplicate, bit errors, delay, silence.

They act between the firmware and the endpoint, so the firmware behaves exactly as it would
behind a bad cable: its dseq keeps counting frames the host never sees, bit errors reach its
decoder and show in ``rx_crc_errors``. Randomness comes from the simulator's own seeded
generator for the link. Times are link (wall-clock) milliseconds.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from controller.wire import DecodedFrame
from simulator.catalogue import BitErrors, Delay, Drop, Duplicate, Silent


@dataclass
class _Hits:
    """Which frames a drop/duplicate fault hits: each with a probability, or the next N."""

    probability: float | None
    remaining: int | None
    until_ms: float

    def hit(self, rng: random.Random) -> bool:
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True
        return rng.random() < (self.probability or 0.0)

    def done(self, now_ms: float) -> bool:
        return now_ms >= self.until_ms or self.remaining == 0


def _until(now_ms: float, duration_s: float | None) -> float:
    return math.inf if duration_s is None else now_ms + duration_s * 1000.0


def flip_bits(data: bytes, ber: float, rng: random.Random) -> bytes:
    """Flip each bit with probability ``ber`` (gaps between flips are geometric)."""
    if ber <= 0.0 or not data:
        return data
    out = bytearray(data)
    nbits = len(out) * 8
    log_q = math.log1p(-ber)
    pos = -1
    while True:
        pos += 1 + int(math.log(1.0 - rng.random()) / log_q)
        if pos >= nbits:
            return bytes(out)
        out[pos >> 3] ^= 1 << (pos & 7)


class LinkFaults:
    """The link faults active now, and what they do to each frame or byte."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.drop: dict[str, _Hits] = {}
        self.duplicate: dict[str, _Hits] = {}
        self.ber: dict[str, tuple[float, float]] = {}
        self.delay: tuple[int, float] | None = None
        self.silent_until = -math.inf
        self.counters = {"tx_dropped": 0, "tx_duplicated": 0, "rx_dropped": 0, "rx_duplicated": 0}

    def apply(self, spec: Drop | Duplicate | BitErrors | Delay | Silent, now_ms: float) -> None:
        directions = getattr(spec, "direction", "tx")
        sides = ("tx", "rx") if directions == "both" else (directions,)
        if isinstance(spec, Drop | Duplicate):
            table = self.drop if isinstance(spec, Drop) else self.duplicate
            for side in sides:
                table[side] = _Hits(spec.probability, spec.count, _until(now_ms, spec.duration_s))
        elif isinstance(spec, BitErrors):
            for side in sides:
                self.ber[side] = (spec.ber, _until(now_ms, spec.duration_s))
        elif isinstance(spec, Delay):
            self.delay = (spec.ms, _until(now_ms, spec.duration_s))
        else:
            self.silent_until = now_ms + spec.duration_s * 1000.0

    def clear(self, name: str | None = None) -> None:
        if name in (None, "drop"):
            self.drop.clear()
        if name in (None, "duplicate"):
            self.duplicate.clear()
        if name in (None, "bit_errors"):
            self.ber.clear()
        if name in (None, "delay"):
            self.delay = None
        if name in (None, "silent"):
            self.silent_until = -math.inf

    def expire(self, now_ms: float) -> None:
        if not (self.drop or self.duplicate or self.ber or self.delay):
            return
        for table in (self.drop, self.duplicate):
            for side in [s for s, h in table.items() if h.done(now_ms)]:
                del table[side]
        for side in [s for s, (_, until) in self.ber.items() if now_ms >= until]:
            del self.ber[side]
        if self.delay is not None and now_ms >= self.delay[1]:
            self.delay = None

    def active(self, now_ms: float) -> list[str]:
        names = [f"drop/{s}" for s in self.drop] + [f"duplicate/{s}" for s in self.duplicate]
        names += [f"bit_errors/{s}" for s in self.ber]
        if self.delay is not None:
            names.append("delay")
        if self.silent(now_ms):
            names.append("silent")
        return names

    def silent(self, now_ms: float) -> bool:
        return now_ms < self.silent_until

    def next_change(self) -> float:
        """The next link time at which a timed link fault ends."""
        ends = [h.until_ms for h in (*self.drop.values(), *self.duplicate.values())]
        ends += [until for _, until in self.ber.values()]
        if self.delay is not None:
            ends.append(self.delay[1])
        if self.silent_until > -math.inf:
            ends.append(self.silent_until)
        return min(ends, default=math.inf)

    # --- host → device ---------------------------------------------------------------------

    def rx_bytes(self, data: bytes, now_ms: float) -> bytes:
        if self.silent(now_ms):
            return b""
        if "rx" in self.ber:
            return flip_bits(data, self.ber["rx"][0], self._rng)
        return data

    def rx_frames(self, frames: Sequence[DecodedFrame]) -> list[DecodedFrame]:
        drop, dup = self.drop.get("rx"), self.duplicate.get("rx")
        if drop is None and dup is None:
            return list(frames)
        out: list[DecodedFrame] = []
        for frame in frames:
            if drop is not None and drop.hit(self._rng):
                self.counters["rx_dropped"] += 1
                continue
            out.append(frame)
            if dup is not None and dup.hit(self._rng):
                self.counters["rx_duplicated"] += 1
                out.append(frame)
        return out

    # --- device → host ---------------------------------------------------------------------

    def tx_frames(self, frame: bytes, now_ms: float) -> list[bytes]:
        """What becomes of one device frame on the wire (nothing, itself, twice, corrupted)."""
        if self.silent(now_ms):
            self.counters["tx_dropped"] += 1
            return []
        drop = self.drop.get("tx")
        if drop is not None and drop.hit(self._rng):
            self.counters["tx_dropped"] += 1
            return []
        frames = [frame]
        dup = self.duplicate.get("tx")
        if dup is not None and dup.hit(self._rng):
            self.counters["tx_duplicated"] += 1
            frames.append(frame)
        if "tx" in self.ber:
            ber = self.ber["tx"][0]
            frames = [flip_bits(f, ber, self._rng) for f in frames]
        return frames

    def delay_ms(self) -> int:
        return self.delay[0] if self.delay is not None else 0


class TxQueue:
    """Device→host bytes with release times: delay and baud-rate pacing, order always kept."""

    def __init__(self, baud: int | None = None, pace: bool = False) -> None:
        self._queue: deque[tuple[float, bytes]] = deque()
        self._ms_per_byte = 10_000.0 / baud if (baud and pace) else 0.0
        self._wire_free_ms = -math.inf
        self._last_release = -math.inf

    def push(self, frame: bytes, now_ms: float, delay_ms: float) -> None:
        release = max(now_ms + delay_ms, self._last_release)
        if self._ms_per_byte:
            release = max(release, self._wire_free_ms)
            self._wire_free_ms = release + len(frame) * self._ms_per_byte
            release = self._wire_free_ms  # the last byte is on the wire then
        self._last_release = release
        self._queue.append((release, frame))

    def pop_due(self, now_ms: float) -> bytes:
        out = bytearray()
        q = self._queue
        while q and q[0][0] <= now_ms:
            out += q.popleft()[1]
        return bytes(out)

    def next_release(self) -> float:
        return self._queue[0][0] if self._queue else math.inf

    def clear(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)
