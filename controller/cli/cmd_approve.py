"""``epm approve FILE --by NAME``: record that NAME approved this exact protocol file.

The approval is bound to the SHA-256 of the file's bytes: after any edit the file needs a new
approval before it runs on a real device. Invalid, retired and draft files are refused (exit 1)
with the reason and the fix; warnings are shown and do not block. Exit 0 when approved (or
already approved), 1 when refused, 2 on a usage error (an empty ``--by`` among them, refused
before any database is opened). A ``--by`` that is not the file's ``approved_by`` (compared
ignoring case and spacing) is a warning: the approval goes ahead and records ``--by``.
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
        "--by",
        required=True,
        type=_approver,
        metavar="NAME",
        help="who approves it (recorded; a warning if it is not the file's approved_by)",
    )
    add_data_dir(parser)


def run(args: argparse.Namespace) -> int:
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
    for warning in result.warnings:
        print(f"warning: {warning.format()}", file=sys.stderr)
    try:
        # Refused before any database is opened: one is created only to record an approval.
        refusals = approval_refusals(result)
        if refusals:
            raise ApprovalRefusedError(refusals)
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
