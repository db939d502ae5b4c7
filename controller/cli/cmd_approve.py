"""``epm approve FILE --by NAME``: record that NAME approved this exact protocol file.

The approval is bound to the SHA-256 of the file's bytes: after any edit the file needs a new
approval before it runs on a real device. Invalid, retired and draft files are refused (exit 1)
with the reason and the fix; warnings are shown and do not block. Exit 0 when approved (or
already approved), 1 when refused, 2 on a usage error (an empty ``--by`` among them, refused
before any database is opened). A ``--by`` that is not the file's ``approved_by`` (compared
ignoring case and spacing) is a warning: the approval goes ahead and records ``--by``.

With a clinic server configured (``server.url``), the approval is made on the server's ledger,
once for every station (which honour it after their next pull); this station takes it at once.
A server that cannot be reached records nothing (exit 1).

``epm approve --revoke FILE --by NAME --reason TEXT`` withdraws the approval of these bytes: on
the clinic server when one is configured (every station stops the file at its next pull), else
on this station. When the server cannot be reached the revocation is recorded on this station
at once and the command says so and exits 1: run it again to reach every station.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from controller.cli.options import add_data_dir

EXIT_OK = 0
EXIT_REFUSED = 1


def _approver(text: str) -> str:
    """``--by``: a name, not empty and not only spaces (a usage error, exit 2)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "--by needs the approver's name, e.g. --by 'Dana Example' (it is recorded with "
            "the approval)"
        )
    return text


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "approve",
        help="approve a protocol file (its exact bytes) for real devices",
        description=(
            "Record that NAME approved this exact protocol file. The file must be valid and say "
            "`status: approved`; an edited file needs approving again."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the protocol YAML file")
    parser.add_argument(
        "--revoke",
        action="store_true",
        help="withdraw the approval of this exact file (needs --reason)",
    )
    parser.add_argument(
        "--reason", metavar="TEXT", default="", help="with --revoke: why (recorded)"
    )
    parser.add_argument(
        "--by",
        required=True,
        type=_approver,
        metavar="NAME",
        help="who approves it (recorded; a warning if it is not the file's approved_by)",
    )
    add_data_dir(parser)


def _server(args: argparse.Namespace) -> str:
    """The configured clinic server's URL ("" when none)."""
    from controller.config import load_config

    return str(load_config(args.data_dir).server_url)


def _revoke(args: argparse.Namespace, path: Path, result: Any) -> int:
    from controller.records import RecordsError, RecordStore
    from controller.records.approvals import revoke
    from controller.server import ServerError

    if not args.reason.strip():
        print(
            "epm approve: error: --revoke needs --reason TEXT saying why (it is recorded and "
            "shown wherever the file is refused)",
            file=sys.stderr,
        )
        return 2
    sha = str(result.sha256 or "").lower()
    if len(sha) != 64:
        print(f"epm approve: error: {path} cannot be read, so nothing was revoked", file=sys.stderr)
        return EXIT_REFUSED
    protocol = result.protocol
    protocol_id = str(getattr(protocol, "id", "?"))
    version = int(getattr(protocol, "version", 0) or 0)
    url = _server(args)
    failure = ""
    with RecordStore.open(args.data_dir, exclusive=False) as store:
        if url:
            try:
                from controller.server.clinic import revoke_on_server
                from controller.server.schema import connect
                from controller.server.sync import sync_once

                conn = connect(url)
                try:
                    position, new = revoke_on_server(
                        conn,
                        sha,
                        protocol_id=protocol_id,
                        protocol_version=version,
                        by=args.by.strip(),
                        reason=args.reason.strip(),
                        station_id=store.station_id,
                    )
                    sync_once(store, conn)
                finally:
                    conn.close()
                state = "revoked" if new else "already revoked"
                print(
                    f"{state} on the clinic server: {protocol_id} version {version} ({path}), "
                    f"ledger position {position}; every station refuses it from its next pull"
                )
                print(f"  sha256  {sha}")
                return EXIT_OK
            except ServerError as exc:
                failure = str(exc)
        try:
            revocation, new = revoke(
                store,
                sha,
                protocol_id=protocol_id,
                protocol_version=version,
                by=args.by,
                reason=args.reason,
            )
        except RecordsError as exc:
            print(f"epm approve: error: {exc}", file=sys.stderr)
            return EXIT_REFUSED
    state = "revoked" if new else "already revoked"
    print(f"{state} on this station: {protocol_id} version {version} ({path})")
    print(f"  sha256  {sha}")
    print(f"  by      {revocation.revoked_by}: {revocation.reason}")
    if failure:
        print(
            f"epm approve: error: the clinic server was not reached ({failure}); the file is "
            "refused on this station only. Run the same command again to revoke it on every "
            "station",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    return EXIT_OK


def _approve_on_server(args: argparse.Namespace, path: Path, result: Any, url: str) -> int:
    from controller.records import RecordStore
    from controller.server.clinic import approve_on_server
    from controller.server.schema import connect
    from controller.server.sync import sync_once

    with RecordStore.open(args.data_dir, exclusive=False) as store:
        conn = connect(url)
        try:
            position, new = approve_on_server(
                conn,
                result.protocol,
                str(result.sha256).lower(),
                path,
                by=args.by.strip(),
                station_id=store.station_id,
            )
            sync_once(store, conn)
        finally:
            conn.close()
    protocol = result.protocol
    state = "approved" if new else "already approved"
    print(
        f"{state} on the clinic server: {protocol.id} version {protocol.version} ({path}), "
        f"ledger position {position}; every station honours it from its next pull"
    )
    print(f"  sha256  {str(result.sha256).lower()}")
    print(f"  by      {args.by.strip()}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    from controller.config import ConfigError
    from controller.server import ServerError

    try:
        return _run(args)
    except (ConfigError, ServerError) as exc:
        verb = "revoked" if args.revoke else "approved"
        print(f"epm approve: error: {exc}; nothing was {verb}", file=sys.stderr)
        return EXIT_REFUSED


def _run(args: argparse.Namespace) -> int:
    from controller.records import RecordsError, RecordStore
    from controller.records.approvals import ApprovalRefusedError, approval_refusals, approve
    from controller.records.models import local

    path = Path(args.file)
    if not os.path.lexists(path):  # anything else (a folder, a pipe) the loader names
        print(
            f"epm approve: error: {path}: no such file; give the path of a protocol YAML file",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    try:
        import protocols
    except ImportError as exc:  # pragma: no cover - the package ships with epm
        print(f"epm approve: error: the protocols package is missing ({exc})", file=sys.stderr)
        return EXIT_REFUSED
    result = protocols.load_protocol(path)
    if args.revoke:
        return _revoke(args, path, result)
    for warning in result.warnings:
        print(f"warning: {warning.format()}", file=sys.stderr)
    try:
        # Refused before any database is opened: one is created only to record an approval.
        refusals = approval_refusals(result)
        if refusals:
            raise ApprovalRefusedError(refusals)
        url = _server(args)
        if url:
            return _approve_on_server(args, path, result, url)
        with RecordStore.open(args.data_dir, exclusive=False) as store:
            approval, new = approve(store, result, path, args.by)
            where = store.path
    except ApprovalRefusedError as exc:
        print(f"epm approve: refused: {path} was not approved", file=sys.stderr)
        for reason in exc.reasons:
            print(reason, file=sys.stderr)
        return EXIT_REFUSED
    except RecordsError as exc:
        print(f"epm approve: error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    when = local(approval.approved_at)
    in_file = getattr(result.protocol, "approved_by", None)
    if new and isinstance(in_file, str) and not _same_name(approval.approved_by, in_file):
        print(
            f"warning: --by {approval.approved_by!r} differs from the file's approved_by "
            f"{in_file!r}; recorded approver is {approval.approved_by}",
            file=sys.stderr,
        )
    if new:
        print(f"approved: {approval.protocol_id} version {approval.protocol_version} ({path})")
    else:
        print(
            f"already approved: {approval.protocol_id} version {approval.protocol_version} "
            f"({path}); nothing changed"
        )
    print(f"  sha256  {approval.sha256}")
    print(f"  by      {approval.approved_by} at {when}")
    if result.warnings:
        print(f"  with {len(result.warnings)} warning(s), shown above")
    print(f"  recorded in {where}")
    return EXIT_OK
