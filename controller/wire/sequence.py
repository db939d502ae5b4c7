"""Sequence arithmetic on the device's 16-bit ``dseq`` counter, wrap-aware, defined once.

``dseq`` counts every TELEMETRY and EVENT frame and wraps 65535 → 0 (interface §3). Frames can
arrive duplicated (a noisy line, a test fault) or, in principle, out of order; neither may be
read as "65,000 frames lost". A frame is *newer* than another when it is less than half the
counter's range ahead; a repeated or older one is not newer and loses nothing.
"""

from __future__ import annotations

DSEQ_MODULUS = 0x10000
_HALF = DSEQ_MODULUS // 2


def dseq_is_newer(new: int, last: int | None) -> bool:
    """Whether ``new`` follows ``last`` (None: nothing seen yet, so anything is newer)."""
    return last is None or 0 < (new - last) % DSEQ_MODULUS < _HALF


def dseq_lost(last: int | None, new: int) -> int:
    """Frames missing between ``last`` and ``new``: 0 when consecutive, repeated or older."""
    if not dseq_is_newer(new, last) or last is None:
        return 0
    return (new - last) % DSEQ_MODULUS - 1
