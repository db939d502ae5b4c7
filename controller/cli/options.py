"""Options several ``epm`` commands share, defined once."""

from __future__ import annotations

import argparse

DATA_DIR_HELP = "records folder (default: $EPM_HOME, else the per-user data folder)"


def add_data_dir(parser: argparse.ArgumentParser, help: str = DATA_DIR_HELP) -> None:
    """``--data-dir DIR`` on a command. Not given there, the value given before the command
    (``epm --data-dir X records list``) is kept: the command's own default would overwrite it."""
    parser.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS, help=help)


def data_dir_parent(help: str = DATA_DIR_HELP) -> argparse.ArgumentParser:
    """A parent parser holding only ``--data-dir`` (for commands with several actions)."""
    common = argparse.ArgumentParser(add_help=False)
    add_data_dir(common, help)
    return common
