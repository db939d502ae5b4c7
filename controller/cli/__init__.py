"""The ``epm`` command.

Each sub-command lives in its own module ``cmd_<name>.py`` exposing ``add_parser(subparsers)``
and ``run(args) -> int``. Heavy imports stay inside ``run`` so ``epm --help`` is fast.

A closed standard output (``epm records list | head -2``) is never reported as success: any
command whose output cannot be written exits :data:`EXIT_BROKEN_PIPE` (141, what a shell shows
for a process ended by SIGPIPE), without a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

from controller import __version__

#: Sub-commands in the order ``epm --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "validate",
    "schema",
    "approve",
    "records",
    "sim",
    "monitor",
    "log",
    "run",
    "config",
    "server",
    "sync",
)
# Helpers add their command names above as their modules land:
# sim, monitor, run, approve, records.

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
#: Standard output was closed before everything was written (128 + SIGPIPE, as a shell reports
#: a process killed by SIGPIPE).
EXIT_BROKEN_PIPE = 141


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors, which is what we want; keep its message plain."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="epm",
        description=(
            "EPM-1 session controller. With no command, starts the practitioner's terminal UI "
            "(on the built-in simulator when no device port is configured)."
        ),
        epilog=(
            "Every command exits 141 (128 + SIGPIPE) when its standard output is closed before "
            "everything was written, e.g. piped into `head`; `epm run --headless` first stops "
            "a running session with a ramp-down."
        ),
    )
    parser.add_argument("--version", action="version", version=f"epm {__version__}")
    ui = parser.add_argument_group("terminal UI (when no command is given)")
    ui.add_argument(
        "--port",
        metavar="URL",
        help="device port or pyserial URL (default: $EPM_PORT, else device.port in the data "
        "folder's config.yaml, else the built-in simulator)",
    )
    ui.add_argument(
        "--baud",
        type=int,
        default=None,
        help="baud rate (default: $EPM_BAUD, else device.baud in config.yaml, else 115200)",
    )
    ui.add_argument(
        "--data-dir", metavar="DIR", help="records folder (default: $EPM_HOME or the user data dir)"
    )
    ui.add_argument(
        "--library", metavar="DIR", help="protocol library folder (default: the bundled library)"
    )
    ui.add_argument(
        "--sim-speed",
        type=float,
        default=1.0,
        metavar="N",
        help="built-in simulator only: run step time N times faster (default 1)",
    )
    ui.add_argument("--practitioner", metavar="NAME", help="name recorded with each session")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"controller.cli.cmd_{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from controller.cli.default import run_default

        return run_default(args)
    module = importlib.import_module(f"controller.cli.cmd_{args.command}")
    try:
        code = int(module.run(args))
        sys.stdout.flush()  # here, not at exit: a closed pipe must change the exit status
        return code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _discard_stdout() -> None:
    """Point standard output at the null device, so the interpreter's final flush of what is
    still buffered does not fail again (the recipe in the ``signal`` module's documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
