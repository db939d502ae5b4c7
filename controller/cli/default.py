"""What ``epm`` does with no command (placeholder until the UI lands)."""

from __future__ import annotations

import argparse


def run_default(args: argparse.Namespace) -> int:
    from controller.cli import cmd_validate

    return cmd_validate.summarise_bundled_library()
