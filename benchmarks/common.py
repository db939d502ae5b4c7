"""What several benchmarks share: an ``epm sim`` of its own, as a real unit is its own hardware."""

from __future__ import annotations

import json
import subprocess
import sys


def start_epm_sim(baud: int, seed: int) -> tuple[subprocess.Popen[str], str]:
    """``epm sim --baud B --pace`` in its own process; returns it and the pty path it serves.

    In-process, the simulator's runner thread would share the host's GIL and its timing would
    be charged to the link; in a process of its own it behaves like a separate unit.
    """
    args = ["--baud", str(baud), "--pace", "--seed", str(seed), "--control", "none"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "sim", *args, "--log-level", "warning"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("epm sim did not start")
    return proc, str(json.loads(line)["url"])
