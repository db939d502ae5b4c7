"""What ``epm`` does with no command: start the terminal UI.

The device is ``--port URL``, else ``$EPM_PORT``, else ``device.port`` in the data folder's
``config.yaml``, else the built-in simulator (``sim://``, accelerated by ``--sim-speed``), which
the UI marks with a permanent SIMULATOR banner; the baud rate and the practitioner's name are
chosen the same way (flag, environment, file, default; see docs/configuration.md). The record
store is opened exclusively (one controller per data folder) and sessions left open by an
earlier run are marked interrupted before the UI starts. Problems that stop the UI from
starting (an invalid ``config.yaml``, records folder locked or unusable, library missing) are
printed as plain sentences with what to do, and ``epm`` exits 1.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK = 0
EXIT_FAILED = 1


def run_default(args: argparse.Namespace) -> int:
    from controller.config import ConfigError
    from controller.records import RecordsError
    from controller.ui import create_app

    if args.sim_speed <= 0 or args.sim_speed > 1000:
        print(
            f"epm: --sim-speed {args.sim_speed:g} is outside 0 < N <= 1000; "
            "use e.g. --sim-speed 10",
            file=sys.stderr,
        )
        return 2
    try:
        app = create_app(
            port=args.port,
            baud=args.baud,
            data_dir=args.data_dir,
            library=args.library,
            sim_speed=args.sim_speed,
            practitioner=args.practitioner,
        )
    except (ConfigError, RecordsError, FileNotFoundError) as exc:
        print(f"epm: cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        result = app.run()
    finally:
        app.close_resources()
    return int(result or EXIT_OK)
