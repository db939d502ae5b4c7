"""``python -m benchmarks.fuzz [--target T] [--count N] [--seed S] [--jobs J] [--json]``.

Prints, per target, the cases run, the escapes (with the first of each kind: seed, case,
mutation, what escaped, and the fixture it was saved to for replay), the slow inputs, the
slowest input and the total time. Exits 1 if anything escaped or was slow.

``--replay FILE`` checks one saved input again (``tests/data/fuzz/escape-<target>-<case>.bin``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks.fuzz.runner import FIXTURES, SLOW_S, TIMEOUT_S, Summary, replay, run_target

TARGETS = ("library", "wire", "records")
SHOWN_PER_TARGET = 8


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__)
    parser.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="cases per target (default: library 10000, wire 10000, records 3000)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="first case number (default 0)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: one per CPU); the figures do not depend on it",
    )
    parser.add_argument("--slow", type=float, default=SLOW_S, help="seconds; over it fails")
    parser.add_argument(
        "--timeout", type=float, default=TIMEOUT_S, help="seconds before a case is stopped"
    )
    parser.add_argument(
        "--fixtures",
        type=Path,
        default=FIXTURES,
        help="folder for escapes (default tests/data/fuzz)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not save escapes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument("--replay", type=Path, help="check one saved input again")
    return parser


def print_summary(summary: Summary) -> None:
    rate = summary.cases / summary.total_s if summary.total_s else 0.0
    last = summary.start + summary.cases - 1
    print(f"\n## {summary.target}: seed {summary.seed}, cases {summary.start}..{last}")
    print(f"cases      {summary.cases}")
    print(f"escapes    {summary.escapes}")
    print(f"slow       {summary.slow}")
    for signature, count in summary.signatures.most_common():
        print(f"  {count:6d}  {signature}")
    for record in summary.first[:SHOWN_PER_TARGET]:
        print(f"  - seed {record.seed} case {record.case} ({record.size:,} bytes): {record.kind}")
        print(f"      mutation: {record.description[:200]}")
        print(f"      {record.detail[:300]}")
        if record.fixture:
            print(f"      saved: {record.fixture}")
    if len(summary.first) > SHOWN_PER_TARGET:
        print(f"  ... and {len(summary.first) - SHOWN_PER_TARGET} more kinds (see --json)")
    print(
        f"slowest    {summary.slowest_s * 1000:.1f} ms, case {summary.slowest_case} "
        f"({summary.slowest_size:,} bytes): {summary.slowest_description[:120]}"
    )
    notes = ", ".join(f"{k} {v}" for k, v in sorted(summary.notes.items()))
    print(f"notes      {notes}")
    print(f"total      {summary.total_s:.1f} s ({rate:.0f} cases/s, {summary.jobs} jobs)")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.replay is not None:
        target, failures = replay(args.replay, None if args.target == "all" else args.target)
        print(f"{args.replay} ({target}): {'ok' if not failures else 'FAILS'}")
        for failure in failures:
            print(f"  {failure.kind}: {failure.detail}")
        return 1 if failures else 0
    targets = TARGETS if args.target == "all" else (args.target,)
    if not args.json:
        print(f"# epm fuzz, {time.strftime('%Y-%m-%d %H:%M')} on {platform.platform()}")
        print(f"# python {platform.python_version()}, seed {args.seed}, jobs {args.jobs}")
    summaries = []
    for target in targets:
        summary = run_target(
            target,
            args.count,
            args.seed,
            start=args.start,
            jobs=args.jobs,
            slow_s=args.slow,
            timeout_s=args.timeout,
            save_dir=None if args.no_save else args.fixtures,
        )
        summaries.append(summary)
        if not args.json:
            print_summary(summary)
            sys.stdout.flush()
    failed = any(s.failed for s in summaries)
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=1, ensure_ascii=False))
    else:
        verdict = "FAIL" if failed else "ok"
        totals = ", ".join(f"{s.target} {s.escapes}+{s.slow}" for s in summaries)
        print(f"\n# {verdict}: escapes+slow per target: {totals}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
