"""``epm run --headless``: run one treatment session without the UI, reported as JSON lines.

The interactive way to run sessions is the terminal UI (``epm`` with no command); ``epm run``
exists for CI, scripted acceptance tests and service work, so it requires ``--headless``. See
:mod:`controller.session.headless` for the decisions a headless run makes and its output.
Exit status: 0 completed, 2 refused before start (or a usage error), 3 stopped or aborted by
the operator, 4 ended by a device fault, 5 link lost or device restarted, 141 standard output
was closed (``epm run --headless ... | head``).

A closed standard output ends the run: the write that fails raises ``BrokenPipeError`` out of
the runner, whose clean-up ends the session the way the engine always ends one on shutdown (a
zone still delivering is stopped with its ramp-down, ESTOP if that does not finish in time)
and closes the device and the records; then the run says so on standard error and ``epm``
exits 141, never 0.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys
from typing import Any

from controller.cli.options import add_data_dir

EXIT_USAGE = 2
#: The exit status when standard output was closed (:data:`controller.cli.EXIT_BROKEN_PIPE`).
EXIT_BROKEN_PIPE = 141


def _zones(text: str) -> tuple[str, ...]:
    zones = tuple(z.strip() for z in text.split(",") if z.strip())
    if not zones:
        raise argparse.ArgumentTypeError(
            f"{text!r} names no zone: give zone names separated by commas, e.g. frontal,crown"
        )
    return zones


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a simulator speed: give a number above 0 and at most 1000"
        )
    return value


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="run one session headless (JSON lines; for CI and scripts)",
        description=(
            "Run one treatment session without the UI and report it as JSON lines (one object "
            "per line with an 'event' key; the last is the summary). Placements and manual steps "
            "are confirmed automatically; faults are never cleared and a lost link is never "
            "resumed. Ctrl-C stops with a ramp-down; a second Ctrl-C sends an emergency stop. "
            "Without --port a fresh built-in simulator is used. Exit status: 0 completed, "
            "2 refused or a usage error, 3 stopped or aborted, 4 device fault, 5 link lost or "
            "another unit answered, 141 standard output was closed (e.g. piped into head): "
            "a running session is first stopped with a ramp-down."
        ),
    )
    p.add_argument("--headless", action="store_true", help="required: run without the UI")
    p.add_argument("--port", metavar="URL", help="device port or pyserial URL (default: simulator)")
    p.add_argument("--protocol", metavar="FILE", required=True, help="protocol file to run")
    p.add_argument("--client", metavar="CODE", required=True, help="client code (created if new)")
    p.add_argument("--zones", type=_zones, metavar="Z1,Z2", help="zones to treat (default: all)")
    p.add_argument("--serum-lot", metavar="LOT", default="", help="serum lot (real devices)")
    p.add_argument(
        "--practitioner",
        metavar="NAME",
        default="epm run --headless",
        help="practitioner recorded with the session",
    )
    add_data_dir(p)
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    p.add_argument(
        "--checklist-confirmed",
        action="store_true",
        help="the operator went through the checklist: every confirmation yes, every "
        "contraindication no (required)",
    )
    p.add_argument(
        "--sim-speed",
        type=_speed,
        default=1.0,
        metavar="N",
        help="simulator only: run step time and manual timers N times faster (default 1)",
    )


def run(args: argparse.Namespace) -> int:
    if not args.headless:
        print(
            "epm run: the interactive session UI is `epm` itself (no command); `epm run` runs "
            "a session without it and needs --headless.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.baud <= 0:
        print(
            f"epm run: --baud {args.baud} must be a positive rate such as 115200", file=sys.stderr
        )
        return EXIT_USAGE
    from controller.session.headless import HeadlessOptions, run_headless

    if args.port is None or args.port.startswith("sim://"):
        import simulator  # the built-in simulator (the CLI may reach it; the session may not)

        simulator.register_url_handler()

    from controller.config import ConfigError, load_config

    try:
        config = load_config(args.data_dir)
    except ConfigError as exc:
        print(f"epm run: error: {exc}", file=sys.stderr)
        return 1
    from controller import servicelog

    servicelog.protect(args.client)  # the client code never reaches the service log
    opened: list[servicelog.ServiceLog] = []

    def open_service_log(data_dir: Any) -> None:
        opened.append(servicelog.install(data_dir, process="run"))

    options = HeadlessOptions(
        on_records=open_service_log,
        offline_days=int(config.server_offline_days) if config.server_url else None,
        protocol=args.protocol,
        client=args.client,
        port=args.port,
        zones=args.zones,
        serum_lot=args.serum_lot,
        practitioner=args.practitioner,
        data_dir=args.data_dir,
        baud=args.baud,
        checklist_confirmed=args.checklist_confirmed,
        sim_speed=args.sim_speed,
    )
    try:
        return run_headless(options, sys.stdout)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # run_headless has ended the session and closed the device and the records by now.
        _say(
            "epm run: standard output was closed (broken pipe), so the run ended: a session "
            f"still delivering was stopped with a ramp-down; exit {EXIT_BROKEN_PIPE}. "
            "`epm records list` shows how it ended."
        )
        raise
    finally:
        for service_log in opened:
            service_log.close()


def _say(message: str) -> None:
    with contextlib.suppress(OSError):  # standard error is gone too: the exit status tells
        print(message, file=sys.stderr, flush=True)
