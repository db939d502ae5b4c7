"""Training faults on the simulator: an injection takes effect on the unit and is recorded in
the running session as a chained ``training_fault`` event (before it takes effect); without a
session nothing is recorded; a real device (or a port that is no in-process simulator) is
refused and nothing is injected or recorded."""

from __future__ import annotations

from typing import Any

import pytest

from controller.device import DeviceClient
from controller.session.model import Action, Phase
from controller.session.training import (
    CLEAR,
    TRAINING_FAULTS,
    TrainingError,
    TrainingFaults,
    TrainingRefusedError,
)
from controller.wire import State
from simulator import FAULT_NAMES, parse_fault, simulator_for_url
from tests.integration.helpers import EngineEnv, RealLookingClient, engine_env

__all__ = ["engine_env"]


def service_for(device: DeviceClient, engine: Any = None) -> TrainingFaults:
    info = device.info
    return TrainingFaults(
        device.url,
        find_simulator=simulator_for_url,
        device_serial=info.serial if info is not None else None,
        session=lambda: engine,
    )


def test_the_catalogue_offers_the_simulators_faults_with_valid_parameters() -> None:
    names = [fault.name for fault in TRAINING_FAULTS]
    assert names[-1] == CLEAR and len(set(names)) == len(names)
    for fault in TRAINING_FAULTS[:-1]:
        assert fault.name in FAULT_NAMES
        parse_fault(fault.name, dict(fault.params))  # raises on a bad name or value
        assert fault.title and fault.effect and "_" not in fault.title  # plain words
    asked = [fault for fault in TRAINING_FAULTS if fault.ask is not None]
    assert [(f.name, f.ask, f.params["duration_s"]) for f in asked] == [
        ("disconnect", "duration_s", 5.0)
    ]


def test_contact_lost_holds_the_session_and_is_recorded_before_it_took_effect(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("one-zone.yaml", speed=20)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 500)
    training = service_for(s.device, s.engine)
    assert training.available() and training.session_id() == s.engine.session_id

    done = training.inject("contact_lost")
    assert done.recorded and done.session_id == s.engine.session_id
    assert "Recorded in session" in done.message
    s.watch.phase(Phase.HOLD)
    assert s.sim.wait_until(lambda sim: sim.state is State.HOLD, 5)

    (event,) = s.events("training_fault")
    assert event.data == {
        "fault": "contact_lost",
        "title": "Contact lost: the handpiece leaves the skin",
        "params": {},
        "by": "trainer",
    }
    kinds = s.kinds()
    assert kinds.index("training_fault") < kinds.index("hold_start")

    back = training.inject(CLEAR)
    assert back.recorded and back.message.startswith("Done: Put everything back")
    s.watch.phase(Phase.DELIVERING)
    assert [e.data["fault"] for e in s.events("training_fault")] == ["contact_lost", CLEAR]
    s.engine.request(Action.END, "training over")
    s.watch.finished()
    assert s.store.verify_chain().ok


def test_link_loss_for_the_seconds_asked_is_recorded_with_them(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=20)
    s.watch.phase(Phase.DELIVERING)
    training = service_for(s.device, s.engine)
    done = training.inject("disconnect", duration_s="0,5")  # typed with a decimal comma
    assert done.params == {"duration_s": 0.5}
    s.watch.phase(Phase.LINK_LOST)
    (event,) = s.events("training_fault")
    assert event.data["fault"] == "disconnect" and event.data["params"] == {"duration_s": 0.5}


def test_without_a_session_the_fault_takes_effect_and_nothing_is_recorded(
    engine_env: EngineEnv,
) -> None:
    sim = engine_env.sim(speed=20)
    device = DeviceClient(sim.url(), backoff=(0.05, 0.2))
    try:
        device.connect()
        training = service_for(device, engine=None)
        assert training.available() and training.session_id() is None
        boot = sim.boot_id
        done = training.inject("reset")
        assert not done.recorded and done.session_id is None
        assert done.message.endswith("No session is running: nothing was recorded.")
        assert sim.wait_until(lambda x: x.boot_id != boot, 5)
    finally:
        device.close()


def test_a_real_device_is_refused_and_nothing_is_injected_or_recorded(
    engine_env: EngineEnv,
) -> None:
    sim = engine_env.sim(speed=20)
    device = RealLookingClient(sim.url(), backoff=(0.05, 0.2))
    try:
        info = device.connect()
        assert info.serial == RealLookingClient.SERIAL
        training = service_for(device)
        refusal = training.refusal()
        assert not training.available()
        assert refusal is not None and "real EPM-1" in refusal and info.serial in refusal
        boot = sim.boot_id
        with pytest.raises(TrainingRefusedError, match="simulator only"):
            training.inject("reset")
        assert sim.boot_id == boot and sim.state is State.IDLE
    finally:
        device.close()


def test_a_port_that_is_no_simulator_in_this_process_is_refused() -> None:
    for url, words in (
        ("/dev/ttyUSB0", "built into epm"),
        ("socket://127.0.0.1:9", "built into epm"),
        ("sim://nobody-here", "not running in epm"),
        ("sim://", "not running in epm"),
    ):
        training = TrainingFaults(url, find_simulator=simulator_for_url)
        refusal = training.refusal()
        assert refusal is not None and words in refusal, url
        with pytest.raises(TrainingRefusedError):
            training.inject("contact_lost")


def test_bad_values_are_refused_in_plain_words(engine_env: EngineEnv) -> None:
    sim = engine_env.sim(speed=20)
    training = TrainingFaults(sim.url(), find_simulator=simulator_for_url)
    with pytest.raises(TrainingError, match="no training fault 'melt'"):
        training.inject("melt")
    with pytest.raises(TrainingError, match="not a number of seconds"):
        training.inject("disconnect", duration_s="five")
    with pytest.raises(TrainingError, match="out of range"):
        training.inject("disconnect", duration_s=0)
    with pytest.raises(TrainingError, match="no parameter 'factor'"):
        training.inject("contact_lost", factor=3)
    assert sim.snapshot()["connected"]


def test_the_built_in_simulator_is_found_behind_its_anonymous_url() -> None:
    """``sim://?...`` creates a simulator owned by the port: found while the port is open
    (and while it is unplugged), gone once the port is closed."""
    url = "sim://?speed=20&seed=3"
    assert simulator_for_url(url) is None
    device = DeviceClient(url, backoff=(0.05, 0.2))
    try:
        info = device.connect()
        sim = simulator_for_url(url)
        assert sim is not None and sim.serial_number == info.serial
        assert simulator_for_url(sim.url()) is sim  # its name reaches it too
        training = TrainingFaults(url, find_simulator=simulator_for_url, device_serial=info.serial)
        assert training.available()
    finally:
        device.close()
    assert simulator_for_url(url) is None
