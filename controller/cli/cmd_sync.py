"""``epm sync --once [URL]``: send this station's hash-chained events to the clinic server.

The URL comes from the argument, else the configuration key ``server.url`` (the same rules as
``epm server init``: no password in it, ``sslmode=verify-full`` unless over a Unix socket or the
loopback). The server checks the chain as it arrives (see :mod:`controller.server.sync`).
Only ``--once`` exists for now (continuous sync is to come). Exit codes: 0 done, 1 refused or
failed (one message, never a traceback), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controller.cli.options import add_data_dir

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="send this station's events to the clinic server",
        description=(
            "Send the station's hash-chained events the clinic server does not hold yet, in "
            "chain order; the server checks every link and hash and refuses a broken chain."
        ),
    )
    add_data_dir(parser)
    parser.add_argument(
        "--once",
        action="store_true",
        help="send what is there now, then exit (required for now)",
    )
    parser.add_argument(
        "url",
        metavar="URL",
        nargs="?",
        help="postgresql:// URL without a password (default: server.url in config.yaml)",
    )


def run(args: argparse.Namespace) -> int:
    from controller.config import ConfigError
    from controller.records.errors import RecordsError
    from controller.server import ServerError

    if not args.once:
        print(
            "epm sync: error: only `epm sync --once` exists for now (continuous sync is to come)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return _once(args)
    except (ConfigError, ServerError, RecordsError) as exc:
        print(f"epm sync: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _once(args: argparse.Namespace) -> int:
    from controller.config import load_config
    from controller.records import RecordStore
    from controller.server import ServerError
    from controller.server.sync import push
    from controller.server.url import connection_problem

    config = load_config(args.data_dir)
    url = (args.url or "").strip() or str(config.server_url)
    if not url:
        raise ServerError(
            "no clinic server: give its URL (epm sync --once postgresql://USER@HOST/DB"
            "?sslmode=verify-full) or set it with `epm config set server.url URL`"
        )
    problem = connection_problem(url)  # before the records are even opened
    if problem:
        raise ServerError(problem)
    with RecordStore.open(args.data_dir, exclusive=False, create=False) as store:
        result = push(store, url, name=config.station_name or None)
    print(
        f"sent {result.sent} event{'' if result.sent == 1 else 's'}; the server holds station "
        f"{result.station_id} up to position {result.server_position}"
    )
    return EXIT_OK
