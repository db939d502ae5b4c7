"""``epm config show|set|unset``: the clinic's settings in ``config.yaml`` in the data folder.

``show`` lists every key with its value and where it comes from (the file or the default), and
says which environment variables override a key for ``epm`` started from this shell. ``set``
checks the value and writes it, keeping the file's comments and other keys; ``unset`` removes
a key (back to its default). See docs/configuration.md. Exit codes: 0 done, 1 an unknown key, a
value the key does not take or a file that cannot be read or written (one message, never a
traceback), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from controller.cli.options import data_dir_parent

if TYPE_CHECKING:
    from controller.config import Config, Key

EXIT_OK = 0
EXIT_FAILED = 1

_KEYS_HINT = (
    "KEY is dotted, e.g. clinic.name, device.port, device.baud, report.paper: `epm config show` "
    "lists them all and docs/configuration.md describes each."
)


def add_parser(subparsers: Any) -> None:
    common = data_dir_parent(
        "data folder holding config.yaml (default: $EPM_HOME, else the per-user data folder)"
    )
    parser = subparsers.add_parser(
        "config",
        help="show or change this data folder's settings (clinic name, device port...)",
        description=(
            "The settings in config.yaml in the data folder: the clinic's name and contact "
            "line, the room's label, the device port and baud rate, the default practitioner, "
            "the report paper size. A flag (--port, --baud, --practitioner) or an environment "
            "variable (EPM_PORT, EPM_BAUD, EPM_PRACTITIONER) overrides the file."
        ),
        epilog=_KEYS_HINT,
    )
    sub = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    p_show = sub.add_parser(
        "show", parents=[common], help="every key, its value and where it comes from"
    )
    p_show.add_argument("--format", choices=("text", "json"), default="text")
    p_set = sub.add_parser(
        "set",
        parents=[common],
        help="set a key (checked, then written; comments and other keys are kept)",
        epilog=_KEYS_HINT,
    )
    p_set.add_argument("key", metavar="KEY", help="the dotted key, e.g. clinic.name")
    p_set.add_argument("value", metavar="VALUE", help='its value (quote it: "Clínica Norte")')
    p_unset = sub.add_parser(
        "unset", parents=[common], help="remove a key from the file (back to its default)"
    )
    p_unset.add_argument("key", metavar="KEY", help="the dotted key, e.g. clinic.name")


def run(args: argparse.Namespace) -> int:
    from controller.config import ConfigError
    from controller.records import RecordsError

    action = args.config_action
    try:
        if action == "show":
            return _show(args)
        if action == "set":
            return _set(args)
        return _unset(args)
    except (ConfigError, RecordsError) as exc:
        print(f"epm config {action}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _show(args: argparse.Namespace) -> int:
    from controller.config import KEYS, OVERRIDES, load_config

    config = load_config(args.data_dir)
    exists = config.path is not None and config.path.is_file()
    overrides = {
        key: variable
        for key, (_flag, variable) in OVERRIDES.items()
        if os.environ.get(variable, "").strip()
    }
    if args.format == "json":
        document = {
            "file": str(config.path),
            "exists": exists,
            "station_id": _station_id(args.data_dir),
            "keys": {
                key.name: {
                    "value": config.get(key.name),
                    "source": config.source(key.name),
                    "default": key.default,
                    "overridden_by": overrides.get(key.name),
                }
                for key in KEYS
            },
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return EXIT_OK
    note = "" if exists else " (not written yet: every key has its default)"
    print(f"configuration file: {config.path}{note}")
    width = max(len(key.name) for key in KEYS)
    print(f"{'KEY':<{width}}  {'FROM':<7}  VALUE")
    for key in KEYS:
        print(f"{key.name:<{width}}  {config.source(key.name):<7}  {_shown(key, config)}")
    station = _station_id(args.data_dir) or "none yet (made with the records database)"
    print(f"{'station.id':<{width}}  {'records':<7}  {station} (read-only)")
    for key_name, variable in overrides.items():
        print(
            f"{variable} is set ({os.environ[variable].strip()!r}): it overrides {key_name} for "
            "epm started from this shell"
        )
    return EXIT_OK


def _station_id(data_dir: str | None) -> str | None:
    """The station id of the data folder's records; None when there are no records yet (this
    never creates them)."""
    from controller.config import config_path
    from controller.records import RecordStore
    from controller.records.paths import database_path

    folder = config_path(data_dir).parent
    if database_path(folder).is_file():
        with RecordStore.open(folder, exclusive=False) as store:
            return store.station_id
    return None


def _shown(key: Key, config: Config) -> str:
    value = config.get(key.name)
    if value != "":
        return str(value)
    meaning = {
        "device.port": " (the built-in simulator)",
        "practitioner.default": " (the login name)",
    }
    return '""' + meaning.get(key.name, "")


def _set(args: argparse.Namespace) -> int:
    from controller.config import key_spec, set_value

    config = set_value(args.data_dir, args.key, args.value)
    key = key_spec(args.key)
    print(f"{key.name} = {_shown(key, config)} (saved in {config.path})")
    _warn_override(key.name)
    return EXIT_OK


def _unset(args: argparse.Namespace) -> int:
    from controller.config import key_spec, unset_value

    config = unset_value(args.data_dir, args.key)
    key = key_spec(args.key)
    print(f"{key.name} is not set in {config.path}: it has its default, {_shown(key, config)}")
    _warn_override(key.name)
    return EXIT_OK


def _warn_override(key: str) -> None:
    from controller.config import OVERRIDES

    variable = OVERRIDES.get(key, ("", ""))[1]
    if variable and os.environ.get(variable, "").strip():
        print(
            f"note: {variable} is set in this shell and overrides {key} for epm started from it",
            file=sys.stderr,
        )
