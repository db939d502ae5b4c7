"""No client code or name ever reaches the service log: known keys are redacted at any depth,
protected values are scrubbed from every text, and a real session on the simulator, with a
fault, an alarm and an emergency stop, writes its story without them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from controller import servicelog
from controller.cli import main
from controller.device import DeviceClient
from controller.servicelog import ServiceLog
from controller.session.engine import SessionEngine
from controller.session.headless import checklist_answers
from controller.session.model import Action, Phase, SessionPlan
from protocols import load_protocol
from tests.integration.helpers import EngineEnv, Watch, engine_env, protocol_path
from tests.servicelog.conftest import json_lines

__all__ = ["engine_env"]

CODE = "ZQ-4471"
NAME = "Marguerite Okonkwo-Lindqvist"


def test_client_keys_are_redacted_at_any_depth(service_log: ServiceLog) -> None:
    logging.getLogger("epm.session").info(
        "a careless entry",
        extra={
            "client_code": "C-0042",
            "fields": {"client": {"name": "Ana"}, "rows": [{"client_name": "Ana Lopez"}]},
            "notes": "client felt fine",
        },
    )
    assert service_log.flush()
    text = service_log.path.read_text()
    assert "C-0042" not in text and "Ana" not in text and "felt fine" not in text
    entry = json_lines(service_log.path)[-1]
    assert entry["client_code"] == servicelog.REDACTED
    assert entry["client"] == servicelog.REDACTED
    assert entry["rows"] == [{"client_name": servicelog.REDACTED}]


def test_protected_codes_and_names_are_scrubbed_from_messages_and_tracebacks(
    service_log: ServiceLog,
) -> None:
    servicelog.protect(CODE, NAME, "7")  # "7": too short to scrub, never a reason to fail
    try:
        raise LookupError(f"no client has the code {CODE!r} ({NAME.upper()})")
    except LookupError:
        logging.getLogger("controller.ui.app").exception("lookup for %s failed", CODE)
    logging.getLogger("epm.session").info("session 7 for %s", NAME, extra={"who": f"x {CODE}"})
    assert service_log.flush()
    text = service_log.path.read_text()
    assert CODE not in text and NAME.lower() not in text.lower()
    entries = json_lines(service_log.path)
    assert entries[-2]["msg"] == "lookup for [client] failed"
    assert "no client has the code '[client]' ([client])" in entries[-2]["exc"]
    assert entries[-1]["msg"] == "session 7 for [client]" and entries[-1]["who"] == "x [client]"


def test_a_database_error_quoting_a_row_loses_the_rows_values(service_log: ServiceLog) -> None:
    """PostgreSQL's DETAIL quotes the row it refused; the background sync logs the error."""
    try:
        raise RuntimeError(
            'duplicate key value violates unique constraint "clients_code_key"\n'
            "DETAIL:  Key (code)=(C-0042) already exists.\n"
            "DETAIL:  Failing row contains (7, C-0042, Ana Lopez, null)."
        )
    except RuntimeError:
        logging.getLogger("controller.server.worker").exception("the background sync failed")
    assert service_log.flush()
    entry = json_lines(service_log.path)[-1]
    assert "C-0042" not in entry["exc"] and "Ana" not in entry["exc"]
    assert "Key (code)=([redacted]) already exists." in entry["exc"]
    assert "Failing row contains ([redacted])." in entry["exc"]


def _session_with_a_name(env: EngineEnv) -> tuple[SessionEngine, Watch]:
    sim = env.sim(50)
    result = load_protocol(protocol_path("one-zone.yaml"))
    assert result.protocol is not None
    plan = SessionPlan(
        load_result=result,
        client_code=CODE,
        client_name=NAME,
        practitioner="Dana Practitioner",
        serum_lot="LOT-42",
        checklist_answers=checklist_answers(result.protocol),
    )
    device = DeviceClient(sim.url(), backoff=(0.05, 0.2))
    env._devices.append(device)
    engine = SessionEngine(device, env.store, plan, auto_confirm=True, manual_speed=50)
    env._engines.append(engine)
    watch = Watch(engine)
    engine.start()
    return engine, watch


def test_a_real_session_never_writes_the_client_code_or_name(
    engine_env: EngineEnv, tmp_path: Path
) -> None:
    """Nothing is protected here: the session's own entries must not carry the client."""
    log = servicelog.install(engine_env.store.data_dir, process="test")
    try:
        engine, watch = _session_with_a_name(engine_env)
        watch.until(lambda s: s.phase is Phase.DELIVERING and s.zone_delivered_ms >= 2_000)
        engine_env._sims[-1].inject("overcurrent", factor=2.0)
        watch.alarm("device_fault")
        assert engine.emergency_stop("operator")
        engine.request(Action.END, f"{NAME} asked to stop")  # typed text, with the name
        watch.finished()
        sid = engine.session_id
        assert sid is not None
        assert engine_env.store.get_session(sid).client_code == CODE  # it was that client
        assert log.flush()
    finally:
        log.close()
    text = servicelog.log_path(engine_env.store.data_dir).read_text()
    assert CODE not in text
    assert NAME not in text and "Okonkwo" not in text and "Marguerite" not in text
    events = [e.get("event") for e in json_lines(servicelog.log_path(engine_env.store.data_dir))]
    for wanted in ("handshake", "session_start", "device_fault", "alarm", "estop", "session_end"):
        assert wanted in events, (wanted, events)


def test_epm_run_headless_protects_its_client_code(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    code = main(
        [
            "run",
            "--headless",
            "--protocol",
            str(protocol_path("one-zone.yaml")),
            "--client",
            CODE,
            "--checklist-confirmed",
            "--sim-speed",
            "300",
            "--data-dir",
            str(data),
        ]
    )
    assert code == 0
    capsys.readouterr()
    # Anything that mentions the code in free text after the run is scrubbed, too.
    with servicelog.installed(data, process="test") as log:
        logging.getLogger("epm.session").warning("looking up %s", CODE)
        assert log.flush()
    text = servicelog.log_path(data).read_text()
    assert CODE not in text and "looking up [client]" in text
    assert '"event":"session_end"' in text
