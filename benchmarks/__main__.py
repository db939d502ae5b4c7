"""Run every benchmark and print its figures: ``python -m benchmarks [NAME ...]``.

Benchmarks measure the timing goals of the issues (round-trip, decode rate, telemetry without
loss, emergency-stop latency, accelerated session wall time, UI lag). They are never part of
the test suite, whose timing is on the simulator's virtual clock.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time

MODULES = ("codec_bench", "link_bench", "session_bench", "ui_bench", "report_bench")


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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
