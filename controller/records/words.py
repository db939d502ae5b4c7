"""Durations in words, one formatter for every layer that writes them.

Why here: the screens, the session engine's messages and the printed documents all say
durations the same way (``16 min 0 s``, ``45 s``, ``1 h 2 min 5 s``); records sit below the
session and the UI, so the one implementation lives at the bottom and the others delegate.
"""

from __future__ import annotations


def duration_words(ms: int | None, *, round_up: bool = False, unknown: str = "not known") -> str:
    """A duration in words, rounded down to the second (never claims more than there was), or
    up with ``round_up`` (a time still to wait never says less than is left); ``unknown`` when
    ``ms`` is None."""
    if ms is None:
        return unknown
    ms = max(0, int(ms))
    seconds = (ms + 999) // 1000 if round_up else ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min {secs} s"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
