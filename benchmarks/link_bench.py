"""Link benchmarks: request round trip, codec decode rate, sustainable telemetry rate.

Run ``python -m benchmarks.link_bench``. The device is ``epm sim`` in a process of its own on a
pty pair, its writes paced to the baud rate (``--fake``: the test suite's fake EPM-1, in this
process). A pty has no baud-rate timing of its own: the "wire" figures are the theoretical
``bytes × 10 / baud``; only the device's paced writes add real wire time, the host's writes
arrive at once. Treat the RTT ratios as an upper bound of what hardware gives.

Each round trip is also split where the host's own work begins and ends (timed by wrapping
the link core's ``written`` and ``take_completions``): *host before* (the request handed to the
link until its bytes are written), *device and wire* (until the reply is decoded: the
simulator's process, the paced bytes, the reader waking), *host after* (until the caller has
the reply). That tells the link's own share of the tail from the device's and the machine's.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.common import start_epm_sim
from controller.link import Link, frame_wire_bytes, max_telemetry_rate, wire_time
from controller.link.health import percentile
from controller.wire import FrameDecoder, decode_message, encode_frame
from controller.wire import messages as m
from controller.wire.constants import MsgType

BAUDS = (115200, 921600)
RTT_REQUESTS = 1000
TELEMETRY_SECONDS = 1.5
NOTE = (
    "pty pair: no baud timing of its own; wire times are theoretical (bytes x 10 / baud); "
    "the device's writes are paced to the baud rate when the simulator is used"
)


@contextmanager
def device_on_pty(baud: int, use_simulator: bool = True) -> Iterator[tuple[str, str]]:
    """(kind, port path) of a device on a pty: ``epm sim`` in its own process, or the fake."""
    if use_simulator:
        proc, url = start_epm_sim(baud, seed=1)
        try:
            yield "epm sim in its own process (paced)", url
        finally:
            proc.terminate()
            proc.wait(10)
        return
    from tests.wire_fakes.fake_device import FakeConfig, FakeOnPty

    with FakeOnPty(FakeConfig(telemetry_hz=0, pace_baud=baud)) as fake:
        yield "fake EPM-1 (paced)", fake.path


def _rtt(link: Link, make: Callable[[], m.Message], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        link.request(make())
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples


def _rtt_split(link: Link, n: int) -> dict[str, dict[str, float]]:
    """GET_STATUS round trips split into host before / device and wire / host after."""
    core = link._core
    marks: dict[str, float] = {}
    real_written, real_take = core.written, core.take_completions

    def written(write: Any, now: float) -> None:
        marks.setdefault("written", time.perf_counter())
        real_written(write, now)

    def take() -> Any:
        out = real_take()
        if out:
            marks.setdefault("decoded", time.perf_counter())
        return out

    core.written, core.take_completions = written, take  # type: ignore[method-assign]
    parts: dict[str, list[float]] = {"host_before": [], "device_and_wire": [], "host_after": []}
    try:
        for _ in range(n):
            marks.clear()
            t0 = time.perf_counter()
            link.request(m.GetStatus())
            t1 = time.perf_counter()
            parts["host_before"].append(marks["written"] - t0)
            parts["device_and_wire"].append(marks["decoded"] - marks["written"])
            parts["host_after"].append(t1 - marks["decoded"])
    finally:
        core.written, core.take_completions = real_written, real_take  # type: ignore[method-assign]
    out = {}
    for name, values in parts.items():
        values.sort()
        out[name] = {
            "p50": round(percentile(values, 0.5) * 1000, 3),
            "p99": round(percentile(values, 0.99) * 1000, 3),
        }
    return out


def _telemetry_sustained(link: Link, rate: int) -> tuple[bool, int, int]:
    """Run telemetry at ``rate``; (zero loss and ≥ 90 % delivered, received, lost)."""
    link.request(m.SetTelemetry(rate))
    time.sleep(0.2)  # let the rate change settle before counting
    before = link.health()
    time.sleep(TELEMETRY_SECONDS)
    after = link.health()
    received = after.telemetry_received - before.telemetry_received
    lost = after.telemetry_lost - before.telemetry_lost
    ok = lost == 0 and received >= 0.9 * rate * TELEMETRY_SECONDS
    return ok, received, lost


def bench_baud(baud: int, use_simulator: bool = True) -> dict[str, Any]:
    with device_on_pty(baud, use_simulator) as (kind, path):
        link = Link(path, baud, handshake_timeout=3.0)
        link.open()
        try:
            status_rtt = _rtt(link, m.GetStatus, RTT_REQUESTS)
            beat_rtt = _rtt(link, m.Heartbeat, RTT_REQUESTS)
            split = _rtt_split(link, RTT_REQUESTS)
            hello = link.hello_reply
            device_max = hello.max_telemetry_hz if hello else 1000
            allowed = max_telemetry_rate(baud, device_max)
            ladder = sorted({r for r in (50, 100, 200, 500, allowed) if r <= allowed})
            sustained = 0
            tele: list[dict[str, int | bool]] = []
            for rate in ladder:
                ok, received, lost = _telemetry_sustained(link, rate)
                tele.append({"rate_hz": rate, "ok": ok, "received": received, "lost": lost})
                if ok:
                    sustained = rate
            link.request(m.SetTelemetry(50))
            health = link.health()
        finally:
            link.close()
    status_wire = wire_time(frame_wire_bytes(0) + frame_wire_bytes(22), baud)
    beat_wire = wire_time(frame_wire_bytes(0) + frame_wire_bytes(1), baud)
    return {
        "device": kind,
        "get_status_rtt_ms": _summary(status_rtt, status_wire),
        "get_status_target_p99_ms": round((1.5 * status_wire + 0.001) * 1000, 3),
        "get_status_split_ms": split,
        "heartbeat_rtt_ms": _summary(beat_rtt, beat_wire),
        "t_reply_ms": {
            "GET_STATUS": round(link.t_reply(MsgType.GET_STATUS) * 1000, 2),
            "HELLO(16-byte host id)": round(link.t_reply(MsgType.HELLO, 17) * 1000, 2),
            "CONFIGURE_STEP": round(link.t_reply(MsgType.CONFIGURE_STEP, 27) * 1000, 2),
        },
        "telemetry_allowed_hz": allowed,
        "telemetry_sustained_hz": sustained,
        "telemetry_runs": tele,
        "retransmissions": health.retransmissions,
        "frames_dropped": health.frames_dropped,
    }


def _summary(samples: list[float], wire_s: float) -> dict[str, float]:
    p50 = percentile(samples, 0.50)
    p99 = percentile(samples, 0.99)
    return {
        "p50": round(p50 * 1000, 3),
        "p99": round(p99 * 1000, 3),
        "mean": round(statistics.fmean(samples) * 1000, 3),
        "wire_theoretical": round(wire_s * 1000, 3),
        "ratio_p50": round(p50 / wire_s, 2),
        "ratio_p99": round(p99 / wire_s, 2),
    }


def bench_codec(frames: int = 50_000) -> dict[str, float]:
    """Decode rate of the streaming decoder plus message decoding, frames per second."""
    stream = b"".join(
        encode_frame(0, m.Telemetry(i & 0xFFFF, 7, i, 3, 0, 1, i, 400, 2000, 1500, 330, 1))
        for i in range(frames)
    )
    decoder = FrameDecoder()
    t0 = time.perf_counter()
    decoded = 0
    for start in range(0, len(stream), 4096):
        for frame in decoder.feed(stream[start : start + 4096]):
            decode_message(frame)
            decoded += 1
    elapsed = time.perf_counter() - t0
    assert decoded == frames
    return {"frames": frames, "frames_per_s": round(frames / elapsed)}


def run(use_simulator: bool = True) -> dict[str, Any]:
    """Run every link benchmark, print a summary and return the figures.

    ``use_simulator=False`` (or ``--fake``) uses the test suite's fake EPM-1 instead.
    """
    results: dict[str, Any] = {"note": NOTE, "codec": bench_codec(), "bauds": {}}
    for baud in BAUDS:
        results["bauds"][baud] = bench_baud(baud, use_simulator)
    _print(results)
    return results


def _print(results: dict[str, Any]) -> None:
    print("Link benchmark -", results["note"])
    print(f"codec decode: {results['codec']['frames_per_s']:,} frames/s (TELEMETRY, 4 KiB reads)")
    for baud, r in results["bauds"].items():
        print(f"\n{baud} baud, device: {r['device']}")
        for name in ("get_status_rtt_ms", "heartbeat_rtt_ms"):
            s = r[name]
            print(
                f"  {name[:-7]:<10} RTT p50 {s['p50']:.3f} ms  p99 {s['p99']:.3f} ms  | "
                f"wire (theory) {s['wire_theoretical']:.3f} ms  | ratio p50 {s['ratio_p50']:.2f}"
                f"  p99 {s['ratio_p99']:.2f}"
            )
        split = r["get_status_split_ms"]
        print(
            f"  GET_STATUS target p99 <= {r['get_status_target_p99_ms']:.3f} ms; split p50/p99: "
            + ", ".join(f"{k} {v['p50']:.2f}/{v['p99']:.2f}" for k, v in split.items())
        )
        print(f"  T_reply: {r['t_reply_ms']}")
        runs = ", ".join(
            f"{t['rate_hz']} Hz: {t['received']} rx/{t['lost']} lost" for t in r["telemetry_runs"]
        )
        print(
            f"  telemetry: allowed max {r['telemetry_allowed_hz']} Hz, sustained with zero loss "
            f"{r['telemetry_sustained_hz']} Hz ({runs})"
        )
        print(f"  retransmissions {r['retransmissions']}, frames dropped {r['frames_dropped']}")


if __name__ == "__main__":
    run(use_simulator="--fake" not in sys.argv[1:])
