"""Session benchmarks: emergency-stop latency through the engine, and the wall time of a
30-minute protocol on the accelerated simulator.

Run ``python -m benchmarks session_bench`` (or ``make bench``).

* **ESTOP latency.** The simulator serves a pty in this process (``Simulator(endpoint="pty")``,
  the same endpoint ``epm sim`` serves, its runner on its own thread) with its device→host
  bytes paced to 115200 baud, and streams telemetry at the highest rate that link carries
  (``rate × 34 × 10 ≤ baud / 2``: 169 Hz). A session runs a 20-minute zone at real speed; each
  trial calls ``SessionEngine.emergency_stop()`` while the output is on and measures (a) to
  the moment the link finished writing the ESTOP frame (the port's ``write`` returning, timed by
  wrapping it) and (b) to the simulator's output-off transition (its ``perf_counter`` record).
  Between trials the engine is driven back to delivery through its own API (acknowledge,
  clear faults, continue). Targets: p99 ≤ 5 ms to bytes written, ≤ 10 ms to output off. A pty
  has no baud timing of its own for the host's bytes, so (b) leaves out the ESTOP frame's
  0.5 ms of wire time at 115200 baud.
* **Supervision without false watchdogs.** A zone delivers at real speed for
  :data:`SUPERVISION_SECONDS` with telemetry at 169 Hz while another thread keeps the record
  store busy (reading every session back and verifying the hash chain, over and over). The
  engine checks in with the link on every pass; the link feeds the device's watchdog only
  while those check-ins are recent (300 ms). Figures: the longest gap between check-ins while
  the device was active (limit 300 ms), and WATCHDOG faults that no injection caused (target 0).
* **30-minute protocol.** A protocol of 5 min manual work and 25 min of delivery over five
  zones, run end to end through the engine (preflight, records, supervision) on the in-process
  simulator at 1000× (manual timers too). Target: ≤ 10 s wall time.
"""

from __future__ import annotations

import functools
import itertools
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller.device import DeviceClient, pick_telemetry_rate
from controller.link.health import percentile
from controller.records import RecordStore
from controller.session.engine import SessionEngine
from controller.session.headless import checklist_answers
from controller.session.model import Action, Outcome, Phase, SessionPlan, SessionSnapshot
from controller.wire import FrameDecoder, decode_message
from protocols import load_protocol
from simulator import Simulator, register_url_handler

BAUD = 115200
TRIALS = 200
SUPERVISION_SECONDS = 20.0

_ZONE = """\
  - kind: delivery
    zone: {zone}
    duration_s: {duration_s}
    waveform: biphasic_square
    amplitude_v: 40
    amplitude_max_v: 60
    pulse_width_us: 100
    frequency_hz: 5
    burst: {{on_ms: 500, off_ms: 500}}
    ramp_up_s: {ramp_up_s}
    ramp_down_s: 2
    current_limit_ma: 6.0
"""
_PROTOCOL = """\
format: epm-protocol/1
id: {id}
version: 1
title: Session benchmark
indication: early_androgenetic_alopecia
status: draft
handpiece: scalp_roller
serum:
  name: Benchmark serum
course:
  sessions: 6
  interval_days: 14
steps:
{manual}{zones}aftercare:
  - Do not wash the hair for 48 hours.
"""


def _write_protocol(
    folder: Path, name: str, zones: list[str], *, duration_s: int, manual_s: int, ramp_up_s: float
) -> Path:
    manual = (
        f"  - kind: manual\n    title: Cleanse and apply the serum\n    duration_s: {manual_s}\n"
        if manual_s
        else ""
    )
    text = _PROTOCOL.format(
        id=name,
        manual=manual,
        zones="".join(
            _ZONE.format(zone=z, duration_s=duration_s, ramp_up_s=ramp_up_s) for z in zones
        ),
    )
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _plan(path: Path) -> SessionPlan:
    result = load_protocol(path)
    assert result.protocol is not None, [p.format() for p in result.errors]
    return SessionPlan(
        load_result=result,
        client_code="BENCH-1",
        practitioner="benchmark",
        serum_lot="LOT-BENCH",
        checklist_answers=checklist_answers(result.protocol),
    )


def _wait(engine: SessionEngine, predicate: Any, timeout: float = 10.0) -> SessionSnapshot:
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while True:
        snap = engine.snapshot()
        if predicate(snap):
            return snap
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"benchmark stuck in {snap.phase}: {snap.message} (notices: {list(snap.notices)})"
            )
        tick.wait(0.001)


def _off_after(sim: Simulator, t0: float) -> bool:
    return any(not t.on and t.perf_s >= t0 for t in sim.output_transitions()[-3:])


def _output_on_seen(snap: SessionSnapshot) -> bool:
    live = snap.live
    return (
        snap.phase is Phase.DELIVERING
        and live is not None
        and live.device_state == "RUNNING"
        and live.amplitude_dv > 0
    )


class WriteClock:
    """Wraps the open port's ``write``: when each frame finished going to the OS."""

    def __init__(self, port: Any) -> None:
        self.writes: list[tuple[float, bytes]] = []
        self._write = port.write
        port.write = self._timed

    def _timed(self, data: bytes) -> int:
        n = int(self._write(data))
        self.writes.append((time.perf_counter(), bytes(data)))
        return n

    def estop_written_after(self, t0: float) -> float | None:
        for at, data in list(self.writes):
            if at < t0:
                continue
            for frame in FrameDecoder().feed(data):
                try:
                    msg = decode_message(frame)
                except Exception:
                    continue
                if type(msg).__name__ == "Estop":
                    return at
        return None


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


@contextmanager
def _one_zone_rig(
    name: str, seed: int
) -> Iterator[tuple[Simulator, RecordStore, DeviceClient, Path]]:
    """A 20-minute zone's protocol, the simulator on a paced pty at :data:`BAUD` in this
    process, a record store and a connected device client streaming telemetry at the link's
    maximum rate; all closed afterwards."""
    register_url_handler()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = _write_protocol(folder, name, ["frontal"], duration_s=1200, manual_s=0, ramp_up_s=0)
        sim = Simulator(endpoint="pty", baud=BAUD, pace=True, seed=seed, speed=1.0)
        store = RecordStore.open(folder / "data")
        device = DeviceClient(sim.url(), BAUD)
        try:
            info = device.connect()
            device.set_telemetry(pick_telemetry_rate(BAUD, info.capabilities.max_telemetry_hz))
            yield sim, store, device, path
        finally:
            device.close()
            sim.close()
            store.close()


def estop_latency(trials: int = TRIALS) -> dict[str, Any]:
    """ESTOP latency through the engine while telemetry streams at the link's maximum."""
    with _one_zone_rig("bench-estop", seed=3) as (sim, store, device, path):
        clock = WriteClock(device.link._port)  # the benchmark times the link's own writes
        engine = SessionEngine(device, store, _plan(path), auto_confirm=True)
        engine.start()
        try:
            to_bytes: list[float] = []
            to_off: list[float] = []
            for _ in range(trials):
                # Delivering, and the controller has seen the output on in telemetry.
                _wait(engine, _output_on_seen)
                assert sim.wait_until(lambda x: x.snapshot()["output_dv"] > 0, 5)
                t0 = time.perf_counter()
                engine.emergency_stop("benchmark")
                assert sim.wait_until(functools.partial(_off_after, t0=t0), 5)
                off = next(t for t in sim.output_transitions() if not t.on and t.perf_s >= t0)
                written = clock.estop_written_after(t0)
                assert written is not None, "no ESTOP frame was written"
                to_bytes.append(written - t0)
                to_off.append(off.perf_s - t0)
                clock.writes.clear()
                _wait(engine, lambda s: s.phase is Phase.FAULT)
                engine.request(Action.ACKNOWLEDGE)
                _wait(engine, lambda s: Action.CLEAR_FAULTS in s.allowed)
                engine.request(Action.CLEAR_FAULTS)
                _wait(engine, lambda s: Action.CONTINUE in s.allowed)
                engine.request(Action.CONTINUE)
            health = device.health()
        finally:
            engine.shutdown("benchmark done", timeout=5)
    return {
        "transport": "pty (simulator endpoint in this process), device writes paced",
        "baud": BAUD,
        "telemetry_hz": pick_telemetry_rate(BAUD, 1000),
        "telemetry_received": health.telemetry_received,
        "telemetry_lost": health.telemetry_lost,
        "trials": trials,
        "to_bytes_written": _stats(to_bytes),
        "to_output_off": _stats(to_off),
    }


def supervision(seconds: float = SUPERVISION_SECONDS) -> dict[str, Any]:
    """Check-in gaps and uncaused WATCHDOG faults while delivering with a busy record store."""
    with _one_zone_rig("bench-supervision", seed=5) as (sim, store, device, path):
        checkins: list[float] = []
        real_checkin = device.checkin

        def checkin() -> None:
            checkins.append(time.perf_counter())
            real_checkin()

        device.checkin = checkin  # type: ignore[method-assign]
        busy = threading.Event()

        def keep_the_store_busy() -> None:
            while not busy.is_set():
                for record in store.list_sessions():
                    store.session_detail(record.id)
                store.verify_chain()

        reader = threading.Thread(target=keep_the_store_busy, name="bench-store", daemon=True)
        engine = SessionEngine(device, store, _plan(path), auto_confirm=True)
        engine.start()
        try:
            _wait(engine, _output_on_seen)
            reader.start()
            t0 = time.perf_counter()
            time.sleep(seconds)
            t1 = time.perf_counter()
            busy.set()
            window = [t for t in checkins if t0 <= t <= t1]
            gaps = [b - a for a, b in itertools.pairwise(window)]
            watchdogs = [t for t in sim.output_transitions() if t.cause == "watchdog"]
            phase = engine.snapshot().phase.value
            stalls = device.health().supervision_stalls
        finally:
            busy.set()
            engine.shutdown("benchmark done", timeout=5)
            if reader.is_alive():
                reader.join(5)
    return {
        "seconds": seconds,
        "checkins": len(window),
        "checkin_gap_ms": _stats(gaps),
        "watchdog_faults_uncaused": len(watchdogs),
        "phase_at_end": phase,
        "supervision_stalls": stalls,
    }


def thirty_minute_protocol(speed: float = 1000.0) -> dict[str, Any]:
    """Wall time of a 30-minute protocol end to end through the engine on the simulator."""
    register_url_handler()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        zones = ["frontal", "midscalp", "crown", "temporal_left", "temporal_right"]
        path = _write_protocol(
            folder, "bench-thirty", zones, duration_s=300, manual_s=300, ramp_up_s=2
        )
        store = RecordStore.open(folder / "data")
        sim = Simulator(speed=speed, seed=4)
        device = DeviceClient(sim.url())
        engine = SessionEngine(device, store, _plan(path), auto_confirm=True, manual_speed=speed)
        try:
            t0 = time.perf_counter()
            engine.start()
            if not engine.wait(120):
                raise TimeoutError("the 30-minute protocol did not finish within 120 s")
            wall = time.perf_counter() - t0
            snap = engine.snapshot()
            assert snap.outcome is Outcome.COMPLETED, snap.outcome_reason
            events = len(store.events(engine.session_id or 0))
            return {
                "protocol_minutes": 30,
                "speed": speed,
                "wall_s": wall,
                "delivered_ms": snap.session_delivered_ms,
                "planned_ms": snap.session_planned_ms,
                "events_recorded": events,
            }
        finally:
            engine.shutdown("benchmark done", timeout=5)
            device.close()
            sim.close()
            store.close()


def run() -> dict[str, Any]:
    estop = estop_latency()
    b, o = estop["to_bytes_written"], estop["to_output_off"]
    print(
        f"ESTOP via SessionEngine.emergency_stop, {estop['trials']} trials, {estop['baud']} "
        f"baud pty, telemetry {estop['telemetry_hz']} Hz ({estop['telemetry_lost']} lost):"
    )
    print(
        f"  to bytes written: p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms, max "
        f"{b['max_ms']:.2f} ms (target p99 <= 5 ms)"
    )
    print(
        f"  to output off:    p50 {o['p50_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms, max "
        f"{o['max_ms']:.2f} ms (target p99 <= 10 ms)"
    )
    sup = supervision()
    gap = sup["checkin_gap_ms"]
    print(
        f"Supervision while delivering {sup['seconds']:g} s with the record store kept busy: "
        f"{sup['checkins']} check-ins, gap p50 {gap['p50_ms']:.1f} ms, p99 {gap['p99_ms']:.1f} ms, "
        f"max {gap['max_ms']:.1f} ms (limit 300 ms); WATCHDOG faults without a cause: "
        f"{sup['watchdog_faults_uncaused']} (target 0)"
    )
    thirty = thirty_minute_protocol()
    print(
        f"30-minute protocol at {thirty['speed']:g}x through the engine: "
        f"{thirty['wall_s']:.2f} s wall (target <= 10 s), {thirty['events_recorded']} events"
    )
    return {"estop": estop, "supervision": sup, "thirty_minute_protocol": thirty}


if __name__ == "__main__":
    run()
