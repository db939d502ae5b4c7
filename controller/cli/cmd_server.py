"""``epm server init [URL]``: set up the clinic server (PostgreSQL) for epm.

The URL comes from the argument, else the configuration key ``server.url``. It never carries a
password (use ``PGPASSWORD`` or a libpq password file) and must use ``sslmode=verify-full``
unless it reaches the server over a Unix socket or the loopback. ``init`` applies the missing
schema migrations (each in one transaction) and creates the ``epm_station`` and
``epm_technician`` roles if they do not exist; running it again changes nothing. Exit codes:
0 done, 1 refused or failed (one message, never a traceback), 2 usage.
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


def run(args: argparse.Namespace) -> int:
    from controller.config import ConfigError
    from controller.server import ServerError

    try:
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
