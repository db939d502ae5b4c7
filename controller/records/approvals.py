"""Protocol approval: which exact protocol files a clinic has approved to run on real devices.

A protocol file is identified by the SHA-256 of its bytes. ``status: approved`` in the file is
the technician's claim; the approval record (who, when, which bytes) is the clinic's. On a real
device both are required, so a file edited after approval (even one character) no longer runs
until someone approves it again. The rules, each refusal saying which rule and how to fix it:

- an invalid file never runs and is never approved;
- ``retired`` never runs and is never approved;
- ``draft`` runs only on the simulator, and is not approved (approve the file once it says
  ``status: approved``: approving a draft would approve bytes that can never run);
- ``approved`` runs on the simulator as is, and on a real device only with an approval record
  for its exact SHA-256 — made here (``approval``) or received from the clinic server
  (``received_approval``) — and no revocation of it (``revocation`` here, or
  ``received_revocation``). A revoked file is never approved again: approve a new version;
- with a clinic server configured, a station that has not pulled from it for
  ``server.offline_days`` days refuses approved protocols on a real device (a revocation it has
  not received could be waiting) until it pulls again.

The ``protocols`` package is imported lazily, so this module imports without it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from controller.records import coverage
from controller.records.errors import InvalidRecordError, RecordsError
from controller.records.received import received
from controller.records.store import RecordStore
from controller.records.validation import SHA256_HEX

#: The kind of a revocation made on this station (one made on the clinic server arrives as
#: ``received_revocation``).
REVOCATION = "revocation"

_APPROVAL_SELECT = (
    "SELECT id, sha256, protocol_id, protocol_version, approved_by, approved_at, file_path "
    "FROM approvals"
)


@dataclass(frozen=True)
class Approval:
    id: int
    sha256: str
    protocol_id: str
    protocol_version: int
    approved_by: str
    approved_at: str
    file_path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ApprovalRefusedError(RecordsError):
    """The file cannot be approved; ``reasons`` say why and how to fix each."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def _status(protocol: Any) -> str:
    status = getattr(protocol, "status", "")
    return str(getattr(status, "value", status))


def _file_label(load_result: Any, fallback: str = "FILE") -> str:
    path = getattr(load_result, "path", None)
    return str(path) if path else fallback


def _row(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[Approval]:
    return [Approval(*r) for r in conn.execute(f"{_APPROVAL_SELECT} {where}", params)]


@dataclass(frozen=True)
class Revocation:
    """An approval withdrawn: here (``where`` "this station") or on the clinic server."""

    sha256: str
    protocol_id: str
    protocol_version: int
    revoked_by: str
    revoked_at: str
    reason: str
    where: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _chained(store: RecordStore) -> list[Approval]:
    """Every approval the hash chain proves, oldest first: made here, or received from the
    clinic server. The ``approvals`` table is only an index of the ones made here: a row the
    chain does not hold (one INSERT behind epm's back) is never honoured."""
    with store.read_connection() as conn:
        items = coverage.chained_approvals(conn)
    found: dict[str, Approval] = {}
    for item, _event_id in items:
        try:
            approval = Approval(**{k: item[k] for k in coverage.APPROVAL_FIELDS})
        except (KeyError, TypeError):
            continue
        found.setdefault(str(approval.sha256).lower(), approval)
    local = sorted(found.values(), key=lambda a: a.id)
    clinic: list[Approval] = []
    for got in received(store, ("approval",)):
        try:
            approval = Approval(
                got.event_id,
                str(got.data["sha256"]).lower(),
                str(got.data["protocol_id"]),
                int(got.data["protocol_version"]),
                str(got.data.get("approved_by", got.made_by)),
                got.created_at,
                f"the clinic server (ledger position {got.server_position}, file "
                f"{got.data.get('file_name', '?')})",
            )
        except (KeyError, TypeError, ValueError):
            continue
        if approval.sha256 not in found:
            found[approval.sha256] = approval
            clinic.append(approval)
    return local + clinic


def revocations(store: RecordStore) -> dict[str, Revocation]:
    """Every revocation the chain proves (made here or received), by SHA-256; the first."""
    found: dict[str, Revocation] = {}
    for event in store.events_outside_sessions():
        if event.kind != REVOCATION:
            continue
        data = event.data
        try:
            found.setdefault(
                str(data["sha256"]).lower(),
                Revocation(
                    str(data["sha256"]).lower(),
                    str(data["protocol_id"]),
                    int(data["protocol_version"]),
                    str(data["revoked_by"]),
                    str(data["revoked_at"]),
                    str(data["reason"]),
                    "this station",
                ),
            )
        except (KeyError, TypeError, ValueError):
            continue
    for got in received(store, ("revocation",)):
        data = got.data
        try:
            found.setdefault(
                str(data["sha256"]).lower(),
                Revocation(
                    str(data["sha256"]).lower(),
                    str(data.get("protocol_id", "?")),
                    int(data.get("protocol_version", 0)),
                    str(data.get("revoked_by", got.made_by)),
                    got.created_at,
                    str(data.get("reason", "")),
                    f"the clinic server (ledger position {got.server_position})",
                ),
            )
        except (KeyError, TypeError, ValueError):
            continue
    return found


def revocation_of(store: RecordStore, sha256: str) -> Revocation | None:
    """The revocation of exactly these file bytes, or ``None``."""
    return revocations(store).get(sha256.lower())


def is_approved(
    store: RecordStore, sha256: str, *, include_revoked: bool = False
) -> Approval | None:
    """The approval of exactly these file bytes that the chain proves, or ``None`` — also when
    it was revoked since, unless ``include_revoked`` (a report of a session run before the
    revocation shows the approval it ran under)."""
    wanted = sha256.lower()
    found = next((a for a in _chained(store) if a.sha256 == wanted), None)
    if found is None or include_revoked:
        return found
    return None if revocation_of(store, wanted) is not None else found


def approvals_for(
    store: RecordStore, protocol_id: str, version: int | None = None
) -> list[Approval]:
    """Every chained approval of a protocol id (optionally one version), oldest first."""
    return [
        a
        for a in _chained(store)
        if a.protocol_id == protocol_id and (version is None or a.protocol_version == version)
    ]


def approval_refusals(load_result: Any) -> list[str]:
    """Why this loaded file cannot be approved (empty: it can)."""
    label = _file_label(load_result)
    if not load_result.ok or load_result.protocol is None:
        errors = list(getattr(load_result, "errors", []) or [])
        return [
            f"rule: only a valid protocol file can be approved — {label} has {len(errors)} "
            f"error(s); fix them (`epm validate {label}` lists them) and approve it again"
        ] + [f"  {e.format()}" for e in errors]
    protocol = load_result.protocol
    status = _status(protocol)
    if status == "retired":
        return [
            f"rule: a retired protocol is never approved — {protocol.id} version "
            f"{protocol.version} says `status: retired`; approve its current version instead"
        ]
    if status != "approved":
        return [
            f"rule: only a file that says `status: approved` can be approved — {protocol.id} "
            f"version {protocol.version} says `status: {status}`; once it has been reviewed, set "
            "`status: approved`, `approved_by` and `approved_on` in the file and approve it again"
        ]
    return []


def approve(
    store: RecordStore, load_result: Any, path: str | Path, by: str
) -> tuple[Approval, bool]:
    """Record that ``by`` approved this exact file now. Returns the approval and whether it is
    new (approving the same bytes again returns the first approval unchanged).

    Raises :class:`ApprovalRefusedError` when a rule forbids it.
    """
    name = by.strip() if isinstance(by, str) else ""
    if not name:
        raise InvalidRecordError("the approver's name is empty: give it with --by NAME")
    if len(name) > 120:
        raise InvalidRecordError("the approver's name is longer than 120 characters")
    refusals = approval_refusals(load_result)
    if refusals:
        raise ApprovalRefusedError(refusals)
    sha = str(load_result.sha256).lower()
    if not SHA256_HEX.match(sha):
        raise InvalidRecordError(f"the loader gave no valid SHA-256 for {path} ({sha!r})")
    protocol = load_result.protocol
    revoked = revocation_of(store, sha)
    if revoked is not None:
        raise ApprovalRefusedError(
            [_revoked_rule(revoked, f"{protocol.id} version {protocol.version}")]
        )
    existing = is_approved(store, sha)
    if existing is not None:
        return existing, False
    with store.write_transaction() as conn:
        if _row(conn, "WHERE sha256 = ?", (sha,)):
            raise InvalidRecordError(
                f"the approvals table holds a row for {sha[:12]}… that the hash chain does not: "
                "it was added behind epm's back. Run `epm records verify`, keep the data folder "
                "as evidence, and ask your records administrator"
            )
        cur = conn.execute(
            "INSERT INTO approvals (sha256, protocol_id, protocol_version, approved_by, "
            "approved_at, file_path) VALUES (?, ?, ?, ?, ?, ?)",
            (sha, protocol.id, int(protocol.version), name, store.now(), str(Path(path).resolve())),
        )
        approval = _row(conn, "WHERE id = ?", (cur.lastrowid,))[0]
        store.append_ledger_event(conn, "approval", approval.to_dict())
        return approval, True


def _revoked_rule(revoked: Revocation, name: str) -> str:
    return (
        f"rule: a revoked approval is never honoured and never made again — {name} "
        f"(sha256 {revoked.sha256[:12]}…) was revoked by {revoked.revoked_by} on "
        f"{revoked.revoked_at[:10]} ({revoked.where}): {revoked.reason}. Use the protocol's "
        "current version, or have a corrected version approved"
    )


def revoke(
    store: RecordStore,
    sha256: str,
    *,
    protocol_id: str,
    protocol_version: int,
    by: str,
    reason: str,
) -> tuple[Revocation, bool]:
    """Record on this station that ``by`` withdrew the approval of these file bytes (a
    chained ``revocation`` event); (the revocation, whether it is new)."""
    name = by.strip() if isinstance(by, str) else ""
    why = reason.strip() if isinstance(reason, str) else ""
    if not name:
        raise InvalidRecordError("the revoker's name is empty: give it with --by NAME")
    if not why:
        raise InvalidRecordError("a revocation needs its reason: give it with --reason TEXT")
    if len(name) > 120 or len(why) > 2000:
        raise InvalidRecordError("the name (120) or the reason (2000 characters) is too long")
    sha = sha256.lower()
    existing = revocation_of(store, sha)
    if existing is not None:
        return existing, False
    with store.write_transaction() as conn:
        data: dict[str, Any] = {
            "sha256": sha,
            "protocol_id": protocol_id,
            "protocol_version": int(protocol_version),
            "revoked_by": name,
            "revoked_at": store.now(),
            "reason": why,
        }
        store.append_ledger_event(conn, REVOCATION, data)
    return Revocation(**data, where="this station"), True


def offline_refusal(store: RecordStore, max_days: int, now: Any = None) -> str | None:
    """With a clinic server configured: why approved protocols may not run on a real device
    because this station has not pulled for ``max_days`` days (``None``: it has)."""
    from controller.records.sync_state import pulled_days_ago, read_state

    state = read_state(store)
    from controller.records.models import parse_iso

    now = now or parse_iso(store.now())  # the store's clock, as every record's time
    days = pulled_days_ago(state, now)
    if days is None:
        return (
            "rule: with a clinic server configured, approved protocols run on a real device "
            "only once the station has pulled the clinic's approvals and revocations — it "
            "never has: run `epm sync --once` (or check the server connection on the home "
            "screen)"
        )
    if days >= max_days:
        return (
            f"rule: a station that has not pulled from the clinic server for {max_days} days "
            "runs no approved protocol on a real device (a revocation could be waiting) — "
            f"last pulled {(state.last_pull_at or '')[:16].replace('T', ' ')} UTC, {days:.0f} days "
            "ago: connect it and run `epm sync --once` (server.offline_days sets the limit)"
        )
    return None


def check_runnable(
    load_result: Any,
    device_is_simulator: bool,
    store: RecordStore,
    *,
    offline_days: int | Literal["store"] | None = "store",
) -> list[str]:
    """Reasons this loaded protocol may not run on this device (empty: it may).

    Each reason names the rule and how to fix it. ``offline_days`` applies the rule on
    stations that stopped pulling from a clinic server: by default (``"store"``) the store's
    own ``offline_days`` (set from ``server.offline_days`` when ``server.url`` is configured),
    else none (``None``).
    """
    label = _file_label(load_result)
    if not load_result.ok or load_result.protocol is None:
        errors = list(getattr(load_result, "errors", []) or [])
        return [
            f"rule: only a valid protocol file runs — {label} has {len(errors)} error(s); fix "
            f"them (`epm validate {label}` lists them)"
        ]
    protocol = load_result.protocol
    status = _status(protocol)
    name = f"{protocol.id} version {protocol.version}"
    if status == "retired":
        return [
            f"rule: a retired protocol never runs — {name} is retired; choose its current "
            "version from the library"
        ]
    if device_is_simulator:
        return []
    if status != "approved":
        return [
            f"rule: a {status} protocol runs only on the simulator — {name} says "
            f"`status: {status}`; have it reviewed, set `status: approved` (with approved_by and "
            f"approved_on), then run `epm approve {label} --by NAME`"
        ]
    revoked = revocation_of(store, str(load_result.sha256))
    if revoked is not None:
        return [_revoked_rule(revoked, name)]
    if offline_days == "store":
        offline_days = store.offline_days
    if offline_days is not None:
        stale = offline_refusal(store, offline_days)
        if stale:
            return [stale]
    if is_approved(store, str(load_result.sha256)) is None:
        reason = (
            "rule: on a real device a protocol runs only as approved — this file changed since "
            f"it was approved (or was never approved): run `epm approve {label} --by NAME`"
        )
        earlier = approvals_for(store, protocol.id, int(protocol.version))
        if earlier:
            last = earlier[-1]
            reason += (
                f" (other content of {name} was approved by {last.approved_by} on "
                f"{last.approved_at[:10]}, from {last.file_path})"
            )
        return [reason]
    return []
