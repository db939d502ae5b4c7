"""Events a station received from the clinic server's ledger (see
:mod:`controller.server.pull`), as the station's own chain proves them: approvals and
revocations made for the whole clinic, client codes, flagged conflicts and their resolutions.
Read here, in the records, so the approval check and the course view need no server code."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Clinic ledger kinds and the kind of the received event a station appends for each.
LEDGER_KINDS = ("approval", "revocation", "client", "client_conflict", "client_resolved")
RECEIVED_KINDS = tuple(f"received_{kind}" for kind in LEDGER_KINDS)


@dataclass(frozen=True)
class Received:
    """One received ledger event, proven by the station's chain."""

    event_id: int
    kind: str
    server_position: int
    station_id: str | None
    made_by: str
    created_at: str
    data: dict[str, Any]


def received(store: Any, kinds: Sequence[str] = LEDGER_KINDS) -> list[Received]:
    """The received ledger events of these (ledger) kinds whose chain link and hash hold,
    oldest first."""
    from controller.records import chain

    wanted = tuple(f"received_{k}" for k in kinds)
    found: list[Received] = []
    with store.read_connection() as conn:
        rows = conn.execute(
            f"SELECT id, kind, data FROM events WHERE session_id IS NULL AND kind IN "
            f"({', '.join('?' * len(wanted))}) ORDER BY id",
            wanted,
        ).fetchall()
        for event_id, kind, data_json in rows:
            if not chain.event_proven(conn, int(event_id)):
                continue
            try:
                outer = json.loads(data_json)
                inner = outer["data"]
                item = Received(
                    int(event_id),
                    str(kind).removeprefix("received_"),
                    int(outer["server_position"]),
                    outer.get("station_id"),
                    str(outer.get("made_by", "")),
                    str(outer.get("created_at", "")),
                    inner if isinstance(inner, dict) else {},
                )
            except (ValueError, KeyError, TypeError):
                continue
            found.append(item)
    return found


def norm_name(name: object) -> str:
    """A name compared the server's way: spaces folded, case ignored ("" for none)."""
    return " ".join(str(name or "").split()).casefold()


def conflicted_codes(store: Any) -> dict[str, dict[str, Any]]:
    """Client codes the clinic flagged (two names under one code) and not resolved since:
    code -> the conflict's data (names, stations)."""
    flagged: dict[str, dict[str, Any]] = {}
    for item in received(store, ("client_conflict", "client_resolved")):
        code = str(item.data.get("code", ""))
        if item.kind == "client_conflict":
            flagged[code] = item.data
        else:
            flagged.pop(code, None)
    return flagged
