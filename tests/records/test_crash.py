"""Crash safety: a controller killed with SIGKILL mid-session loses no event, and the next start
marks the session interrupted with what was known."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from controller.records import RecordStore

CHILD = textwrap.dedent(
    """
    import sys
    from controller.records import RecordStore
    from controller.wire import Telemetry

    store = RecordStore.open(sys.argv[1], flush_interval_s=0.0)
    store.get_or_create_client("C-KILL")
    sid = store.begin_session(
        client_code="C-KILL", protocol_id="aga-test", protocol_version=1,
        protocol_sha256="cd" * 32, protocol_title="Test", serum_name="Serum",
        serum_lot="LOT-1", practitioner="Pat", device_model="EPM-1",
        device_serial="EPM1-000999", device_firmware="1.0.0", device_boot_id=77,
        device_port="/dev/ttyACM0", checklist={}, planned_zones=["crown"],
    )
    store.record_step_start(sid, 1, kind="delivery", zone="crown", planned_ms=600000)
    t = 0
    for i in range(1_000_000):
        samples = [Telemetry(t + k, 77, t + k, 3, 0, 1, t + k, 400, 2500, 1800, 330, 1)
                   for k in range(0, 200, 10)]
        t += 200
        store.add_telemetry(sid, samples)
        event = store.append_event(sid, "command_sent", {"command": "HEARTBEAT", "i": i})
        print(event.seq, flush=True)
    """
)


def test_sigkill_mid_session_loses_no_event_and_is_marked_interrupted(data_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    acknowledged: list[int] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged.append(int(line))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        stderr = proc.stderr.read() if proc.stderr else ""
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert len(acknowledged) == 40, stderr
    assert proc.returncode == -signal.SIGKILL

    with RecordStore.open(data_dir) as store:  # the killed process's lock is gone
        (session,) = store.list_sessions()
        assert session.outcome == "running"
        recovered = store.recover_interrupted()
        assert recovered == [session.id]
        assert store.recover_interrupted() == []

        events = store.events(session.id)
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(events) + 1))  # nothing missing
        # Every event whose append had returned before the kill is there.
        assert set(acknowledged) <= set(seqs)
        heartbeats = [e for e in events if e.kind == "command_sent"]
        assert [e.data["i"] for e in heartbeats] == list(range(len(heartbeats)))
        assert len(heartbeats) >= 40

        final = events[-1]
        assert final.kind == "session_end"
        assert final.data["outcome"] == "interrupted"
        assert final.data["last_event"]["seq"] == final.seq - 1
        assert final.data["last_event"]["kind"] == "command_sent"
        telemetry = final.data["last_telemetry"]
        assert telemetry is not None and telemetry["boot_id"] == 77
        assert telemetry["amplitude_dv"] == 400

        after = store.get_session(session.id)
        assert after.outcome == "interrupted"
        assert after.outcome_reason is not None and "crash, kill or power loss" in (
            after.outcome_reason
        )
        (step,) = store.steps(session.id)
        assert step.outcome == "interrupted"
        assert store.verify_chain().ok


def test_recover_leaves_this_process_s_own_running_sessions_alone(store: RecordStore) -> None:
    from tests.records.conftest import begin

    sid = begin(store)
    assert store.recover_interrupted() == []
    assert store.get_session(sid).outcome == "running"
