"""What a technician records on the clinic server's ledger: approvals, revocations, and the
resolution of a client code claimed under two names. Each goes through the server's
``epm_clinic_append`` (only members of ``epm_technician`` may), which makes it idempotent:
approving the same file bytes again returns the position the approval has. A revoked file is
never approved again (approve a new version of it). Every station honours these after its next
pull (:mod:`controller.server.pull`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.server import ServerError
from controller.server.schema import _first_line


def _append(conn: Any, kind: str, data: dict[str, Any], station_id: str | None) -> int:
    import psycopg

    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    try:
        with conn.transaction():
            if station_id is not None:  # where it was made: registered like a sync does
                conn.execute(
                    "INSERT INTO stations (station_id) VALUES (%s) "
                    "ON CONFLICT (station_id) DO NOTHING",
                    (station_id,),
                )
            (position,) = conn.execute(
                "SELECT epm_clinic_append(%s, %s, %s)", (kind, text, station_id)
            ).fetchone()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerError(
            f"the clinic server refused: {_first_line(exc)}. Connect as a login role that is a "
            "member of epm_technician (GRANT epm_technician TO name)"
        ) from exc
    except psycopg.errors.RaiseException as exc:
        raise ServerError(f"the clinic server refused: {_first_line(exc)}") from exc
    except psycopg.Error as exc:
        raise ServerError(f"the clinic server failed: {_first_line(exc)}") from exc
    return int(position)


def ledger_has(conn: Any, kind: str, key: str, value: str) -> int | None:
    row = conn.execute(
        "SELECT position FROM clinic_events WHERE kind = %s AND data::jsonb->>%s = %s "
        "ORDER BY position LIMIT 1",
        (kind, key, value),
    ).fetchone()
    return None if row is None else int(row[0])


def approve_on_server(
    conn: Any, protocol: Any, sha256: str, path: str | Path, *, by: str, station_id: str | None
) -> tuple[int, bool]:
    """Approve these file bytes for the whole clinic; (ledger position, new)."""
    before = ledger_has(conn, "approval", "sha256", sha256)
    position = _append(
        conn,
        "approval",
        {
            "sha256": sha256,
            "protocol_id": str(protocol.id),
            "protocol_version": int(protocol.version),
            "approved_by": by,
            "file_name": Path(path).name,
        },
        station_id,
    )
    return position, before is None


def revoke_on_server(
    conn: Any,
    sha256: str,
    *,
    protocol_id: str,
    protocol_version: int,
    by: str,
    reason: str,
    station_id: str | None,
) -> tuple[int, bool]:
    """Withdraw the clinic's approval of these bytes on every station; (position, new)."""
    before = ledger_has(conn, "revocation", "sha256", sha256)
    position = _append(
        conn,
        "revocation",
        {
            "sha256": sha256,
            "protocol_id": protocol_id,
            "protocol_version": protocol_version,
            "revoked_by": by,
            "reason": reason,
        },
        station_id,
    )
    return position, before is None


def resolve_client_on_server(
    conn: Any, code: str, *, name: str, by: str, reason: str, station_id: str | None
) -> int:
    """Say which name a flagged client code belongs to: from the next pull, every station's
    sessions under that code join one course again."""
    return _append(
        conn,
        "client_resolved",
        {"code": code, "name": name, "by": by, "reason": reason},
        station_id,
    )


def approve_for_clinic(
    store: Any, load_result: Any, path: str | Path, *, by: str, url: str
) -> tuple[Any, bool]:
    """Approve the loaded file on the clinic server and take the approval into this station's
    chain at once (one sync round); (the station's :class:`Approval`, whether it is new).
    The file's rules (valid, ``status: approved``) are the caller's to check first."""
    from controller.records.approvals import is_approved
    from controller.server.schema import connect
    from controller.server.sync import sync_once

    sha = str(load_result.sha256).lower()
    conn = connect(url)
    try:
        _position, new = approve_on_server(
            conn, load_result.protocol, sha, path, by=by.strip(), station_id=store.station_id
        )
        sync_once(store, conn)
    finally:
        conn.close()
    approval = is_approved(store, sha)
    if approval is None:  # pragma: no cover - the round above takes it, or raises
        raise ServerError("the approval was recorded on the clinic server but not taken here yet")
    return approval, new
