"""``epm log [--follow] [--since TIME] [--level LEVEL] [--format text|json] [-n N]``: read the
service log of the data folder (``<data folder>/logs/service.jsonl`` and its rotated files,
oldest first), as a service technician needs it: local time, level, area, message and the
entry's key fields, a traceback indented under its entry. ``--format json`` prints the lines
as written (for ``jq``). ``--follow`` goes on printing new entries as they are written, across
rotations, until Ctrl+C.

A line that is not an entry (cut short by a crash or a full disk, edited by hand) is skipped
and counted; the count is said on standard error at the end. Exit codes: 0 done (also when no
entry matches: standard error says so), 1 no service log in the folder, 2 usage (a ``--since``
or ``--level`` that is not one). See docs/service-log.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from controller.cli.options import add_data_dir

if TYPE_CHECKING:
    from controller.servicelog import Entry

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: How often ``--follow`` looks at the file.
POLL_S = 0.25


def _since(text: str) -> dt.datetime:
    from controller.servicelog import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _level(text: str) -> int:
    from controller.servicelog import parse_level

    try:
        return parse_level(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of entries (1 or more)")
    return value


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "log",
        help="read the service log (connects, link trouble, faults, alarms, ESTOPs, errors)",
        description=(
            "Read the service log of the data folder: connects and handshakes, losses and "
            "reconnects, retransmission bursts, frame errors, device faults, alarms, emergency "
            "stops, session starts and ends, and every error with its traceback; never a "
            "client's code or name. Oldest first, in local time."
        ),
    )
    add_data_dir(parser)
    parser.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="go on printing new entries as they are written (Ctrl+C stops)",
    )
    parser.add_argument(
        "--since",
        type=_since,
        metavar="TIME",
        help="only entries from TIME on: an ISO date or time (2026-03-02, 2026-03-02T13:05, "
        "13:05), a span back from now (90s, 10m, 2h, 3d, 1w), today or yesterday",
    )
    parser.add_argument(
        "--level",
        type=_level,
        default=0,
        metavar="LEVEL",
        help="only entries at LEVEL or above: debug, info, warning, error, critical",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (readable, the default) or json (the lines as written, one per line)",
    )
    parser.add_argument(
        "-n",
        "--lines",
        type=_count,
        metavar="N",
        help="only the last N entries (of those selected)",
    )


def render(entry: Entry, fmt: str) -> str:
    """One entry as ``epm log`` prints it (``text`` or ``json``)."""
    from controller.servicelog import format_entry

    return entry.line if fmt == "json" else format_entry(entry)


def run(args: argparse.Namespace) -> int:
    from controller import servicelog

    folder = servicelog.data_dir_for(args.data_dir)
    path = servicelog.log_path(folder)
    if not args.follow and not servicelog.log_files(path):
        print(
            f"epm log: no service log in {folder} (looked for {path}). epm writes it while the "
            "app, `epm run --headless` or `epm sync` runs with this data folder; check "
            "--data-dir or EPM_HOME.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if args.follow:
        if not path.exists():
            print(f"epm log: waiting for {path} to be written (Ctrl+C stops)", file=sys.stderr)
        stop = threading.Event()
        skipped = 0
        try:
            skipped = follow(
                path,
                sys.stdout,
                since=args.since,
                level=args.level,
                fmt=args.format,
                count=args.lines,
                stop=stop,
            )
        except KeyboardInterrupt:
            stop.set()
        _say_skipped(skipped)
        return EXIT_OK
    reading = servicelog.read_log(path, since=args.since, level=args.level)
    entries = reading.entries[-args.lines :] if args.lines else reading.entries
    for entry in entries:
        sys.stdout.write(render(entry, args.format) + "\n")
    if not entries:
        print(f"epm log: no entries in {path} {_selection(args)}", file=sys.stderr)
    _say_skipped(reading.skipped)
    return EXIT_OK


def _selection(args: argparse.Namespace) -> str:
    import logging

    parts = []
    if args.level:
        parts.append(f"at {logging.getLevelName(args.level).lower()} or above")
    if args.since is not None:
        parts.append(f"since {args.since.astimezone():%Y-%m-%d %H:%M:%S}")
    return "match (" + ", ".join(parts) + ")" if parts else "yet"


def _say_skipped(skipped: int) -> None:
    if skipped:
        print(
            f"epm log: {skipped} line(s) were not log entries (cut short or damaged) and "
            "were skipped",
            file=sys.stderr,
        )


def follow(
    path: Path,
    out: TextIO,
    *,
    since: dt.datetime | None,
    level: int,
    fmt: str,
    count: int | None,
    stop: threading.Event,
    poll_s: float = POLL_S,
) -> int:
    """Print the log's entries (the last ``count`` if given), then new ones as they are
    written, across rotations, until ``stop`` is set; returns how many lines were skipped."""
    from controller import servicelog

    follower = servicelog.Follower(path)
    skipped = 0

    def selected(lines: list[str]) -> list[Entry]:
        nonlocal skipped
        kept = []
        for line in lines:
            entry = servicelog.parse_entry(line)
            if entry is None:
                skipped += 1
            elif entry.levelno >= level and (since is None or entry.when >= since):
                kept.append(entry)
        return kept

    try:
        current = follower.poll()  # the file now, read to its end (new lines come from here)
        older: list[str] = []
        for file in servicelog.log_files(path):
            if file.name != path.name:
                try:
                    older += file.read_text(encoding="utf-8", errors="replace").splitlines()
                except OSError:
                    continue
        first = sorted(selected(older + current), key=lambda e: e.when)  # see read_log
        for entry in first[-count:] if count else first:
            out.write(render(entry, fmt) + "\n")
        out.flush()
        while not stop.wait(poll_s):
            new = selected(follower.poll())
            for entry in new:
                out.write(render(entry, fmt) + "\n")
            if new:
                out.flush()
    finally:
        follower.close()
    return skipped
