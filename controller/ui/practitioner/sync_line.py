"""The home screen's line about the clinic server, in plain words (a pure function).

"Clinic server: synced 2 min ago", "… 3 sessions waiting to be sent", "Clinic server
unreachable since 10:42 (…); this room keeps working and sends them when it is back", and,
past ``server.offline_days`` without a pull, that approved protocols are refused on a real
device until it syncs. Nothing at all without a clinic server (a single room)."""

from __future__ import annotations

import datetime as dt

from controller.records.models import parse_iso
from controller.records.sync_state import SyncState


def _ago(seconds: float) -> str:
    if seconds < 60:
        return "just now"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h ago"
    return f"{hours // 24} days ago"


def _when(stamp: str, now: dt.datetime) -> str:
    at = parse_iso(stamp).astimezone()
    if at.date() == now.astimezone().date():
        return at.strftime("%H:%M")
    return at.strftime("%Y-%m-%d %H:%M")


def _waiting(state: SyncState) -> str:
    if state.waiting_sessions:
        n = state.waiting_sessions
        return f"{n} session{'' if n == 1 else 's'} waiting to be sent"
    if state.waiting_events:
        return "a few records waiting to be sent"
    return ""


def sync_line(state: SyncState | None, now: dt.datetime, offline_days: int | None) -> str:
    """The line for ``state`` at ``now`` (aware); "" when there is no clinic server."""
    if offline_days is None:
        return ""
    if state is None:
        return "Clinic server: the sync state cannot be read."
    waiting = _waiting(state)
    if state.failing_since:
        reason = state.last_error.split(":")[0] if state.last_error else ""
        text = f"Clinic server unreachable since {_when(state.failing_since, now)}"
        if reason:
            text += f" ({reason})"
        text += "; this room keeps working"
        text += f" — {waiting}, sent when it is back." if waiting else "."
    elif state.last_pull_at is None:
        text = "Clinic server: not synced yet."
        if waiting:
            text += f" {waiting[0].upper()}{waiting[1:]}."
    else:
        age = (now - parse_iso(state.last_pull_at)).total_seconds()
        text = f"Clinic server: synced {_ago(max(0.0, age))}"
        text += f"; {waiting}." if waiting else "."
    if state.last_pull_at is None:
        text += " Approved protocols run on a real device once it has synced."
    else:
        days = (now - parse_iso(state.last_pull_at)).total_seconds() / 86400
        if days >= offline_days:
            text += (
                f" Not synced for {days:.0f} days: approved protocols are refused on a real "
                "device until it syncs."
            )
    return text
