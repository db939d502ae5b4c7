"""The ``epm`` command.

Each sub-command lives in its own module ``cmd_<name>.py`` exposing ``add_parser(subparsers)``
and ``run(args) -> int``. Heavy imports stay inside ``run`` so ``epm --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
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
    "run",
)
# Helpers add their command names above as their modules land:
# sim, monitor, run, approve, records.

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors, which is what we want; keep its message plain."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="epm",
        description=(
            "EPM-1 session controller. With no command, starts the practitioner's terminal UI "
            "(on the built-in simulator when no device port is configured)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"epm {__version__}")
    ui = parser.add_argument_group("terminal UI (when no command is given)")
    ui.add_argument(
        "--port",
        metavar="URL",
        help="device port or pyserial URL (default: $EPM_PORT, else the built-in simulator)",
    )
    ui.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
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
        return int(module.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
