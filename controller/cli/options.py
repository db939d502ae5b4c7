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


def server_url(given: str | None, data_dir: str | None, command: str) -> str:
    """The clinic server's URL: ``given`` (a command's URL argument), else ``server.url`` in
    the data folder's config.yaml; checked by the URL rules before anything connects.
    :class:`~controller.server.ServerError` saying how to set one when there is none."""
    from controller.config import load_config
    from controller.server import ServerError
    from controller.server.url import connection_problem

    url = (given or "").strip() or str(load_config(data_dir).server_url)
    if not url:
        raise ServerError(
            f"no clinic server: give its URL ({command} postgresql://USER@HOST/DB"
            "?sslmode=verify-full) or set it with `epm config set server.url URL`"
        )
    problem = connection_problem(url)
    if problem:
        raise ServerError(problem)
    return url
