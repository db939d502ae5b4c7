"""Run every benchmark and print its figures: ``python -m benchmarks [NAME ...]``.

Benchmarks measure the timing goals of the issues (round-trip, decode rate, telemetry without
loss, emergency-stop latency, accelerated session wall time, UI lag, clinic-server sync under
load, our link beside Modbus RTU). They are never part of the test suite, whose timing is on the
simulator's virtual clock.

A benchmark whose result has a non-empty ``failures`` list broke one of its checks (not a
timing target: a correctness check, such as an event lost on the way to the server); the run
then ends with exit status 1 after printing every figure.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time

MODULES = (
    "codec_bench",
    "link_bench",
    "session_bench",
    "ui_bench",
    "report_bench",
    "sync_bench",
    "peer_bench",
)


def main(argv: list[str]) -> int:
    wanted = argv or list(MODULES)
    print(f"# epm benchmarks, {time.strftime('%Y-%m-%d %H:%M')} on {platform.platform()}")
    print(f"# python {platform.python_version()}, {platform.processor() or platform.machine()}")
    results: dict[str, object] = {}
    for name in wanted:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"benchmarks.{name}":
                print(f"\n## {name}: not present")
                continue
            raise
        print(f"\n## {name}")
        results[name] = module.run()
    print("\n# all figures as JSON")
    print(json.dumps(results, indent=1, default=str))
    failed = [
        name
        for name, result in results.items()
        if isinstance(result, dict) and result.get("failures")
    ]
    if failed:
        print(f"\n# FAILED: {', '.join(failed)} (see the FAIL lines above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
