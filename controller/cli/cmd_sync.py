"""``epm sync [--once] [URL]``: keep this station and the clinic server in step.

Each round sends the station's hash-chained events the server does not hold yet (in chain
order; the server checks every link and hash and refuses a broken chain), claims the client
codes the station treats, and takes the clinic ledger (approvals, revocations, clients,
flagged codes) and the other rooms' sessions (see :mod:`controller.server.sync`). ``--once``
does one round and exits; without it rounds repeat every ``--every`` seconds until Ctrl+C,
each failure printed once and retried (the epm app runs the same rounds in the background
when a server is configured). The URL comes from the argument, else ``server.url`` (no
password in it; ``sslmode=verify-full`` unless over a Unix socket or the loopback). Exit codes:
0 done (or stopped with Ctrl+C), 1 refused or failed (``--once``), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

from controller.cli.options import add_data_dir

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError("--every takes 1 to 3600 seconds")
    return value


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="keep this station and the clinic server in step (send events, take approvals)",
        description=(
            "Send the station's hash-chained events the clinic server does not hold yet, in "
            "chain order (the server checks every link and hash), and take the clinic's "
            "approvals, revocations, clients and the other rooms' sessions."
        ),
    )
    add_data_dir(parser)
    parser.add_argument("--once", action="store_true", help="one round, then exit")
    parser.add_argument(
        "--every",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="without --once: seconds between rounds (default 2, as the app)",
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

    try:
        with _service_log(args.data_dir):
            if args.once:
                return _once(args)
            return _loop(args)
    except (ConfigError, ServerError, RecordsError) as exc:
        print(f"epm sync: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


@contextlib.contextmanager
def _service_log(data_dir: str | None) -> Iterator[None]:
    """The service log of the records folder, for the length of the sync (only when the
    folder holds records: a sync without them fails, and must not create a folder)."""
    from controller import servicelog
    from controller.records.paths import database_path

    folder = servicelog.data_dir_for(data_dir)
    if not database_path(folder).is_file():
        yield
        return
    with servicelog.installed(folder, process="sync"):
        yield


def _describe(result: Any) -> str:
    push = result.push
    parts = [
        f"sent {push.sent} event{'' if push.sent == 1 else 's'} (the server holds station "
        f"{push.station_id} up to position {push.server_position})"
    ]
    if result.claimed:
        parts.append(f"claimed {result.claimed} client code(s)")
    parts.append(f"took {result.ledger_taken} clinic ledger event(s)")
    parts.append(f"{result.sessions_taken} session change(s) from other rooms")
    if result.documents_missing:
        parts.append(
            f"{len(result.documents_missing)} document(s) not sent (missing from reports/ or "
            f"changed since written: {', '.join(result.documents_missing[:3])})"
        )
    return "; ".join(parts)


def _once(args: argparse.Namespace) -> int:
    from controller.cli.options import server_url
    from controller.config import load_config
    from controller.records import RecordStore
    from controller.server.sync import sync_once

    url = server_url(args.url, args.data_dir, "epm sync --once")  # before opening the records
    name = load_config(args.data_dir).station_name or None
    with RecordStore.open(args.data_dir, exclusive=False, create=False) as store:
        result = sync_once(store, url, name=name)
    print(_describe(result))
    return EXIT_OK


def _loop(args: argparse.Namespace) -> int:
    from controller.cli.options import server_url
    from controller.config import load_config
    from controller.records import RecordStore
    from controller.server import ServerError
    from controller.server.sync import sync_once

    url = server_url(args.url, args.data_dir, "epm sync")
    name = load_config(args.data_dir).station_name or None
    last_error = ""
    print(f"syncing every {args.every:g} s; Ctrl+C stops", flush=True)
    with RecordStore.open(args.data_dir, exclusive=False, create=False) as store:
        try:
            while True:
                try:
                    result = sync_once(store, url, name=name)
                except ServerError as exc:
                    if str(exc) != last_error:
                        print(f"epm sync: {exc} (retrying every {args.every:g} s)", flush=True)
                        last_error = str(exc)
                else:
                    if last_error or result.push.sent or result.ledger_taken:
                        print(_describe(result), flush=True)
                    last_error = ""
                time.sleep(args.every)
        except KeyboardInterrupt:
            print("stopped", flush=True)
    return EXIT_OK
