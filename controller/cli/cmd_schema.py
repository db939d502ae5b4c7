"""``epm schema``: print the JSON Schema of treatment protocol files (epm-protocol/1)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    subparsers.add_parser(
        "schema",
        help="print the JSON Schema of protocol files",
        description=(
            "Print the JSON Schema (draft-07) of treatment protocol files, for editors and "
            "other validators. The derived rules (duty cycle, current density, totals) are "
            "checked only by `epm validate`."
        ),
    )


def run(args: argparse.Namespace) -> int:
    from protocols.schema import render_schema

    print(render_schema(), end="")
    return 0
