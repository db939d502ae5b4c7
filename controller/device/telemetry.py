"""A bounded buffer of telemetry that the UI drains at its own pace.

The reader thread appends (up to 1000 frames/s); the UI drains on a timer. When the UI falls
behind, the oldest frames go and are counted - the newest data is what a display needs, and
memory stays bounded. One short lock; nothing blocks while holding it.
"""

from __future__ import annotations

import threading
from collections import deque

from controller.wire.messages import Telemetry

DEFAULT_CAPACITY = 4096


class TelemetryBuffer:
    """Thread-safe ring buffer of :class:`Telemetry` with a count of frames dropped."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("telemetry buffer capacity must be at least 1")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._items: deque[Telemetry] = deque()
        self._dropped = 0
        self._latest: Telemetry | None = None

    def append(self, item: Telemetry) -> None:
        with self._lock:
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self._dropped += 1
            self._items.append(item)
            self._latest = item

    def drain(self, max_items: int | None = None) -> list[Telemetry]:
        """Remove and return the oldest ``max_items`` frames (all when None), oldest first."""
        with self._lock:
            if max_items is None or max_items >= len(self._items):
                out = list(self._items)
                self._items.clear()
                return out
            return [self._items.popleft() for _ in range(max(0, max_items))]

    @property
    def latest(self) -> Telemetry | None:
        return self._latest

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
