"""`epm log` tells the story of a faulted session as a service technician needs it, and the
link's trouble (a pulled cable, bit errors, lost frames, a restart) is in it without one entry
per frame; an emergency stop is logged after its bytes, off the caller's thread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller import servicelog
from controller.cli import main
from controller.device import DeviceClient
from controller.link import health as link_health
from controller.servicelog import ServiceLog
from controller.session.model import Phase
from simulator import Simulator, register_url_handler
from tests.integration.helpers import EngineEnv, engine_env, protocol_path
from tests.servicelog.conftest import json_lines, wait_until

__all__ = ["engine_env"]


def _in_order(text: str, *parts: str) -> None:
    at = 0
    for part in parts:
        found = text.find(part, at)
        assert found >= 0, f"{part!r} not found after position {at} in:\n{text}"
        at = found + len(part)


def test_a_faulted_session_tells_its_story_in_epm_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    port = f"sim://?speed=200&scenario={protocol_path('overcurrent-scenario.yaml')}"
    code = main(
        [
            "run",
            "--headless",
            "--protocol",
            str(protocol_path("one-zone.yaml")),
            "--client",
            "STORY-0001",
            "--checklist-confirmed",
            "--port",
            port,
            "--data-dir",
            str(data),
        ]
    )
    assert code == 4  # ended by a device fault
    capsys.readouterr()
    assert main(["log", "--data-dir", str(data)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    _in_order(
        out,
        "INFO     epm      epm run started",
        "INFO     link     connecting to sim://",
        "INFO     link     connected on sim://",
        "EPM-1 SIM-",
        "firmware 1.0.0, boot_id ",
        "INFO     session  session 1 started: protocol test-one-zone v1 on SIM-",
        "device state READY → RUNNING",
        "ERROR    device   device fault: OVERCURRENT",
        "ERROR    session  alarm raised: device_fault (high)",
        "ERROR    session  session 1 ended: faulted",
        "INFO     link     link to sim://",
        "INFO     epm      epm run stopped",
    )
    assert "STORY-0001" not in out
    # The same entries as JSON lines, for jq.
    assert main(["log", "--data-dir", str(data), "--format", "json", "--level", "error"]) == 0
    out, _ = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["event"] for line in lines] == ["device_fault", "alarm", "session_end"]
    assert lines[0]["faults"] == ["OVERCURRENT"]
    assert lines[1]["code"] == "device_fault" and lines[1]["priority"] == "high"
    assert lines[2]["outcome"] == "faulted" and lines[2]["session"] == 1


def test_an_estop_is_logged_after_its_bytes_by_the_engine_thread(engine_env: EngineEnv) -> None:
    log = servicelog.install(engine_env.store.data_dir, process="test")
    try:
        s = engine_env.session("one-zone.yaml", speed=20)
        s.watch.delivering()
        assert s.engine.emergency_stop("operator")  # from this (the test's) thread
        s.watch.phase(Phase.FAULT)
        assert wait_until(
            lambda: log.flush() and any(e.get("event") == "estop" for e in json_lines(log.path))
        )
    finally:
        log.close()
    entries = json_lines(log.path)
    (estop,) = [e for e in entries if e.get("event") == "estop"]
    assert estop["source"] == "operator" and estop["bytes_written"] is True
    assert estop["phase"] == "delivering" and estop["session"] == s.engine.session_id
    assert estop["thread"] == "epm-session"  # not the caller's: it only wrote the bytes
    # The link's own entry for the frame is made off the link's threads, 20 ms later, with the
    # time the frame was written.
    written = [e for e in entries if e.get("event") == "estop_sent"]
    assert written and written[0]["thread"] == "epm-device-log"
    assert written[0]["ts"] <= estop["ts"]


def _device(sim: Simulator) -> DeviceClient:
    device = DeviceClient(sim.url(), backoff=(0.05, 0.2))
    device.connect()
    return device


def _events(log: ServiceLog, event: str) -> list[dict[str, object]]:
    log.flush()
    return [e for e in json_lines(log.path) if e.get("event") == event]


def test_a_pulled_cable_is_a_link_down_then_reopen_and_a_reconnect_handshake(
    service_log: ServiceLog,
) -> None:
    register_url_handler()
    with Simulator(speed=50, seed=3) as sim:
        device = _device(sim)
        try:
            (handshake,) = _events(service_log, "handshake")
            assert handshake["serial"] == sim.serial_number
            assert handshake["firmware"] == "1.0.0" and isinstance(handshake["boot_id"], int)
            assert handshake["port"] == sim.url() and handshake["handshake"] == "connected"
            sim.inject("disconnect", duration_s=0.3)
            assert wait_until(lambda: len(_events(service_log, "handshake")) == 2)
        finally:
            device.close()
    assert _events(service_log, "link_down")[0]["level"] == "WARNING"
    assert _events(service_log, "port_reopened")
    again = _events(service_log, "handshake")[1]
    assert again["handshake"] == "reconnected" and again["serial"] == sim.serial_number


def test_a_restart_names_both_boot_ids(service_log: ServiceLog) -> None:
    register_url_handler()
    with Simulator(speed=50, seed=4) as sim:
        device = _device(sim)
        try:
            boot = device.info.boot_id if device.info else None
            sim.inject("reset")
            assert wait_until(lambda: bool(_events(service_log, "device_restarted")))
        finally:
            device.close()
    (restart,) = _events(service_log, "device_restarted")[:1]
    assert restart["old_boot_id"] == boot and restart["new_boot_id"] != boot


def test_retransmissions_are_one_entry_per_burst_and_frame_errors_are_counted(
    service_log: ServiceLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(link_health, "BURST_QUIET_S", 0.3)
    monkeypatch.setattr(link_health, "ERRORS_EVERY_S", 0.2)
    register_url_handler()
    with Simulator(speed=50, seed=5) as sim:
        device = _device(sim)
        try:
            sim.inject("drop", direction="rx", count=2)  # the next two host frames vanish
            device.status()  # answered after two resends
            assert wait_until(lambda: bool(_events(service_log, "retransmit_burst")))
            sim.inject("bit_errors", ber=0.002, direction="tx", duration_s=0.5)
            assert wait_until(lambda: bool(_events(service_log, "frame_errors")))
        finally:
            device.close()
    bursts = _events(service_log, "retransmit_burst")
    assert len(bursts) == 1 and bursts[0]["count"] >= 2 and bursts[0]["total"] >= 2
    assert isinstance(bursts[0]["span_s"], float)
    errors = _events(service_log, "frame_errors")
    assert all(e["totals"] and e["new"] for e in errors)
    dropped = sum(v for k, v in errors[-1]["totals"].items() if not k.startswith("device_"))
    assert dropped >= 1
    # Each entry says what is new since the one before; together they add up to the totals.
    for key, total in errors[-1]["totals"].items():
        assert sum(e["new"].get(key, 0) for e in errors) == total, key


def test_a_fault_in_the_health_watch_never_fails_the_link(
    service_log: ServiceLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, now: float) -> None:
        raise RuntimeError("a bug in the watch")

    monkeypatch.setattr(link_health.HealthWatch, "_poll", broken)
    register_url_handler()
    with Simulator(speed=50, seed=6) as sim:
        device = _device(sim)
        try:
            assert wait_until(
                lambda: (
                    any("health watch failed" in e["msg"] for e in json_lines(service_log.path))
                    if service_log.flush()
                    else False
                )
            )
            device.status()  # the link is fine
            assert device.health().port_failures == 0
        finally:
            device.close()
    failures = [e for e in json_lines(service_log.path) if "health watch" in e["msg"]]
    assert len(failures) == 1  # once, not on every pass of the ticker
    assert "RuntimeError: a bug in the watch" in failures[0]["exc"]
