"""``epm server init [URL]``: set up the clinic server (PostgreSQL) for epm.

The URL comes from the argument, else the configuration key ``server.url``. It never carries a
password (use ``PGPASSWORD`` or a libpq password file) and must use ``sslmode=verify-full``
unless it reaches the server over a Unix socket or the loopback. ``init`` applies the missing
schema migrations (each in one transaction) and creates the ``epm_station`` and
``epm_technician`` roles if they do not exist; running it again changes nothing. Exit codes:
0 done, 1 refused or failed (one message, never a traceback), 2 usage.

``epm server resolve-client CODE --name NAME --by NAME --reason TEXT`` (a technician) says
which name a client code flagged on the server (claimed by two rooms under different names)
belongs to; from their next pull every station counts that code's sessions in one course again.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controller.cli.options import data_dir_parent

EXIT_OK = 0
EXIT_FAILED = 1


def add_parser(subparsers: Any) -> None:
    common = data_dir_parent(
        "data folder holding config.yaml (default: $EPM_HOME, else the per-user data folder)"
    )
    parser = subparsers.add_parser(
        "server",
        help="the clinic server (PostgreSQL): set up its schema and roles",
        description=(
            "The clinic server that will receive every station's records. `init` creates or "
            "upgrades its schema and the epm_station and epm_technician roles."
        ),
    )
    sub = parser.add_subparsers(dest="server_action", metavar="ACTION", required=True)
    p_init = sub.add_parser(
        "init",
        parents=[common],
        help="create or upgrade the server's schema and roles (again: no change)",
    )
    p_init.add_argument(
        "url",
        metavar="URL",
        nargs="?",
        help="postgresql:// URL without a password (default: server.url in config.yaml)",
    )
    p_resolve = sub.add_parser(
        "resolve-client",
        parents=[common],
        help="say which name a client code flagged on the server belongs to",
    )
    p_resolve.add_argument("code", metavar="CODE", help="the flagged client code")
    p_resolve.add_argument("--name", required=True, help="the client's name under this code")
    p_resolve.add_argument("--by", required=True, metavar="NAME", help="who resolves it")
    p_resolve.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded)")
    p_resolve.add_argument("--url", metavar="URL", help="default: server.url in config.yaml")


def run(args: argparse.Namespace) -> int:
    from controller.config import ConfigError
    from controller.server import ServerError

    try:
        if args.server_action == "resolve-client":
            return _resolve(args)
        return _init(args)
    except (ConfigError, ServerError) as exc:
        print(f"epm server {args.server_action}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _init(args: argparse.Namespace) -> int:
    from controller.config import load_config
    from controller.server import ServerError
    from controller.server.schema import init_server

    url = (args.url or "").strip() or str(load_config(args.data_dir).server_url)
    if not url:
        raise ServerError(
            "no clinic server: give its URL (epm server init postgresql://USER@HOST/DB"
            "?sslmode=verify-full) or set it with `epm config set server.url URL`"
        )
    report = init_server(url)
    if report.applied:
        applied = ", ".join(map(str, report.applied))
        print(f"schema at version {report.version} (applied: {applied})")
    else:
        print(f"schema already at version {report.version}: nothing to apply")
    for role in ("epm_station", "epm_technician"):
        state = "created" if role in report.roles_created else "already there"
        print(f"role {role}: {state}, rights granted")
    return EXIT_OK


def _resolve(args: argparse.Namespace) -> int:
    from controller.cli.options import server_url
    from controller.server import ServerError
    from controller.server.clinic import resolve_client_on_server
    from controller.server.schema import connect

    fields = {"--name": args.name, "--by": args.by, "--reason": args.reason}
    empty = [flag for flag, value in fields.items() if not value.strip()]
    if empty:
        raise ServerError(f"{', '.join(empty)} must not be empty")
    url = server_url(args.url, args.data_dir, "epm server resolve-client CODE --url")
    conn = connect(url)
    try:
        flagged = conn.execute(
            "SELECT 1 FROM clinic_events WHERE kind = 'client_conflict' "
            "AND data::jsonb->>'code' = %s",
            (args.code.strip(),),
        ).fetchone()
        if flagged is None:
            raise ServerError(
                f"client code {args.code.strip()} is not flagged on the clinic server: there is "
                "nothing to resolve"
            )
        position = resolve_client_on_server(
            conn,
            args.code.strip(),
            name=args.name.strip(),
            by=args.by.strip(),
            reason=args.reason.strip(),
            station_id=None,
        )
    finally:
        conn.close()
    print(
        f"client code {args.code.strip()} resolved as {args.name.strip()!r} (ledger position "
        f"{position}); every station counts its sessions in one course from its next pull"
    )
    return EXIT_OK
