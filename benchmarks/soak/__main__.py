"""``make soak``: ``python -m benchmarks.soak [--stations N] [--seed S] ...`` (see __init__)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from benchmarks.soak.checks import Limits
from benchmarks.soak.runner import SHORT, SoakOptions, report, run_soak


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    p.add_argument("--short", action="store_true", help="the short variant of make test")
    p.add_argument("--stations", type=int, help="station processes (default 3)")
    p.add_argument("--seed", type=int, help="the plan's seed (default 1)")
    p.add_argument("--per-class", type=int, help="injections of each catalogue fault (20)")
    p.add_argument("--sessions", type=int, help="at least this many sessions (300)")
    p.add_argument("--speed", type=float, help="simulator speed (200)")
    p.add_argument("--keep", action="store_true", help="keep the stations' folders")
    p.add_argument("--only", action="append", metavar="ROW", help="only stories of this row")
    p.add_argument("--json", metavar="PATH", help="write every session and sample as JSON")
    args = p.parse_args(argv)
    options = SHORT if args.short else SoakOptions()
    changes: dict[str, object] = {}
    if args.stations is not None:
        changes["stations"] = args.stations
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.per_class is not None:
        changes["per_class"] = args.per_class
        changes["limits"] = dataclasses.replace(options.limits, per_class=args.per_class)
    if args.sessions is not None:
        changes["min_sessions"] = args.sessions
    if args.speed is not None:
        changes["speed"] = args.speed
    if args.keep:
        changes["keep"] = True
    if args.only:
        changes["only"] = tuple(args.only)
    options = dataclasses.replace(options, **changes)  # type: ignore[arg-type]
    assert isinstance(options.limits, Limits)
    run = run_soak(options)
    print(report(run), flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"stations": run.stations, "breaches": [str(b) for b in run.breaches]},
                indent=1,
                default=str,
            ),
            encoding="utf-8",
        )
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
