"""Each alarm raised by its simulator fault, recorded before anyone is told, and cleared as
docs/alarms.md specifies; device faults and the acknowledge -> clear -> continue path."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest

from controller.session.model import Action, Outcome, Phase, SessionNotice
from controller.wire import Fault, MsgType, State
from tests.integration.helpers import EngineEnv, OffsetClock, Session, engine_env

__all__ = ["engine_env"]


def _alarm_kinds(s: Session, code: str) -> list[str]:
    return [e.kind for e in s.events() if e.kind.startswith("alarm_") and e.data["alarm"] == code]


def test_contact_lost_for_more_than_10_s_raises_and_clears_when_contact_is_back(
    engine_env: EngineEnv,
) -> None:
    clock = OffsetClock()
    s = engine_env.session("one-zone.yaml", speed=20, clock=clock)
    s.watch.delivering()
    s.sim.inject("contact_lost")
    s.watch.phase(Phase.HOLD)
    snap = s.engine.snapshot()
    assert all(a.code.value != "contact_lost" for a in snap.alarms)  # not yet 10 s
    clock.jump(10.5)  # the host clock passes the 10 s threshold
    snap = s.watch.alarm("contact_lost")
    alarm = next(a for a in snap.alarms if a.code.value == "contact_lost")
    assert alarm.priority.value == "medium" and not alarm.latching
    s.sim.clear("contact_lost")
    s.watch.no_alarm("contact_lost")  # non-latching: gone with its condition
    assert _alarm_kinds(s, "contact_lost") == ["alarm_raised", "alarm_cleared"]


def test_marginal_contact_is_a_low_alarm_recorded_before_listeners_hear_of_it(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("one-zone.yaml", speed=20)
    seen: list[tuple[str, bool]] = []

    def check_recorded_first(notice: SessionNotice) -> None:
        if notice.kind == "alarm" and notice.detail["code"] == "contact_marginal":
            kind = f"alarm_{notice.detail['change']}"
            recorded = [e.kind for e in s.events() if e.data.get("alarm") == "contact_marginal"]
            seen.append((kind, kind in recorded))

    s.engine.add_listener(check_recorded_first)
    s.watch.delivering()
    s.sim.inject("contact_marginal", impedance_ohm=15_000)
    snap = s.watch.alarm("contact_marginal")
    alarm = next(a for a in snap.alarms if a.code.value == "contact_marginal")
    assert alarm.priority.value == "low"
    assert snap.phase is Phase.DELIVERING  # delivery continues
    s.sim.clear("contact_marginal")
    s.watch.no_alarm("contact_marginal")
    s.watch.until(lambda _: len(seen) >= 2, what="both alarm notices")
    assert seen == [("alarm_raised", True), ("alarm_cleared", True)]


def test_current_regulation_raises_amplitude_limited_and_is_recorded_as_a_device_change(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("limited.yaml", speed=20)
    snap = s.watch.alarm("amplitude_limited")
    assert snap.setpoint_dv is not None and snap.setpoint_dv < 600
    s.watch.until(lambda _: bool(s.events("amplitude_change")), what="the recorded change")
    change = s.events("amplitude_change")[0].data
    assert change["source"] == "device_limited" and change["from_dv"] == 600
    assert change["to_dv"] < 600
    s.engine.request(Action.STOP)
    s.watch.finished()
    s.watch.no_alarm("amplitude_limited")  # cleared once the device is idle


@pytest.mark.parametrize(
    ("fault", "params", "bit"),
    [
        ("overcurrent", {"factor": 2.0}, Fault.OVERCURRENT),
        ("short_circuit", {}, Fault.SHORT_CIRCUIT),
        ("overtemp", {"target_c": 45.0, "rate_c_per_s": 5.0}, Fault.OVERTEMP),
    ],
)
def test_a_device_fault_is_acknowledged_cleared_and_the_zone_continues_for_its_remaining_time(
    engine_env: EngineEnv, fault: str, params: dict[str, float], bit: Fault
) -> None:
    s = engine_env.session("one-zone.yaml", speed=50)
    s.watch.delivering(20_000)
    s.sim.inject(fault, **params)
    snap = s.watch.phase(Phase.FAULT)
    snap = s.watch.alarm("device_fault")
    alarm = next(a for a in snap.alarms if a.code.value == "device_fault")
    assert alarm.priority.value == "high" and alarm.latching
    assert bit.name in alarm.detail["faults"]
    assert Action.ACKNOWLEDGE in snap.allowed and Action.CLEAR_FAULTS not in snap.allowed
    assert Action.CONTINUE not in snap.allowed
    first = s.store.steps(s.engine.session_id)[0]
    assert first.outcome == "faulted" and first.delivered_ms >= 20_000

    s.sim.clear(fault)  # the cause is removed
    s.engine.request(Action.ACKNOWLEDGE)
    s.watch.until(lambda x: Action.CLEAR_FAULTS in x.allowed, what="clear faults allowed")
    if bit is Fault.OVERTEMP:
        # Still 40 °C or more: the device refuses, and the notice says why.
        s.engine.request(Action.CLEAR_FAULTS)
        s.watch.until(lambda x: any("still present" in n for n in x.notices), what="refusal")
        assert s.sim.wait_until(lambda x: x.snapshot()["temperature_c"] < 39.5, 10)
    s.engine.request(Action.CLEAR_FAULTS)
    snap = s.watch.until(
        lambda x: Action.CONTINUE in x.allowed and "Faults cleared" in x.message,
        what="faults cleared, continue allowed",
    )
    assert snap.phase is Phase.FAULT
    s.watch.no_alarm("device_fault")
    s.engine.request(Action.CONTINUE)
    s.watch.phase(Phase.DELIVERING)
    second = s.events("command_sent")[-2]
    assert second.data["command"] == "CONFIGURE_STEP"
    assert second.data["values"]["duration_ms"] == 600_000 - first.delivered_ms
    # The placement line for the rest of the zone says its time in words, never "579.877 s".
    placing = [str(e.data["message"]) for e in s.events("state") if e.data["new"] == "place"]
    left = [m for m in placing if "confirm to start" in m]
    assert len(left) >= 2 and not any(re.search(r"\d\.\d+ s", m) for m in left), left
    assert "min" in left[-1] and "left" in left[-1], left[-1]
    assert _alarm_kinds(s, "device_fault")[0] == "alarm_raised"
    assert "alarm_cleared" in _alarm_kinds(s, "device_fault")
    s.engine.request(Action.END, "fault test done")
    assert s.watch.finished().outcome is Outcome.STOPPED
    attempts = [(r.attempt, r.outcome) for r in s.store.steps(s.engine.session_id)]
    assert attempts == [(1, "faulted"), (2, "stopped")]


def test_ending_the_session_in_a_fault_records_it_as_faulted(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=50)
    s.watch.delivering()
    s.sim.inject("handpiece_removed")
    snap = s.watch.phase(Phase.FAULT)
    assert "handpiece removed" in snap.message.lower()
    s.engine.request(Action.END, "handpiece cable broke")
    snap = s.watch.finished()
    assert snap.outcome is Outcome.FAULTED
    assert s.store.get_session(s.engine.session_id).outcome == "faulted"


def test_output_while_it_should_be_off_sends_estop_at_once_and_raises_output_mismatch(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("one-zone.yaml", speed=20, auto=False)
    s.watch.phase(Phase.PLACE)
    s.sim.inject("output_stuck", amplitude_dv=60)
    snap = s.watch.alarm("output_mismatch")
    assert s.receipts_after(0.0, MsgType.ESTOP), "the supervisor's ESTOP reached the device"
    assert s.sim.faults & Fault.ESTOP
    estop = s.watch.until(lambda x: x.phase is Phase.FAULT) and s.events("estop")
    assert estop and estop[0].data["source"] == "supervisor"
    assert "output_mismatch" in estop[0].data["reason"]
    alarm = next(a for a in snap.alarms if a.code.value == "output_mismatch")
    assert "output_while_off" in alarm.detail["checks"]
    s.sim.clear("output_stuck")
    snap = s.watch.until(
        lambda x: any(
            a.code.value == "output_mismatch" and not a.condition_active for a in x.alarms
        ),
        what="output_mismatch resolved but latched",
    )
    s.engine.request(Action.ACKNOWLEDGE)
    s.watch.no_alarm("output_mismatch")
    kinds = _alarm_kinds(s, "output_mismatch")
    assert kinds[0] == "alarm_raised" and "alarm_resolved" in kinds and kinds[-1] == "alarm_cleared"


def test_telemetry_that_stops_raises_telemetry_stale_which_latches_until_acknowledged(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("one-zone.yaml", speed=20, auto=False)
    s.watch.phase(Phase.PLACE)
    s.sim.inject("silent", duration_s=0.6)
    s.watch.alarm("telemetry_stale")
    snap = s.watch.until(
        lambda x: any(
            a.code.value == "telemetry_stale" and not a.condition_active for a in x.alarms
        ),
        what="telemetry back, alarm still shown",
    )
    assert Action.ACKNOWLEDGE in snap.allowed
    s.engine.request(Action.ACKNOWLEDGE)
    s.watch.no_alarm("telemetry_stale")
    assert _alarm_kinds(s, "telemetry_stale") == ["alarm_raised", "alarm_resolved", "alarm_cleared"]
    acked = [e for e in s.events("alarm_cleared") if e.data["alarm"] == "telemetry_stale"]
    assert acked[0].data["by"] == "Dana Practitioner"
    assert s.sim.state is State.READY  # nothing else happened to the device


def test_a_host_too_busy_to_hand_on_telemetry_raises_no_measurements_stopped(
    engine_env: EngineEnv,
) -> None:
    """Issue 11: "Measurements stopped" with no fault on a busy PC. The link's dispatch
    thread is held (as a loaded host holds it) while the device keeps talking: the reader
    hears every frame, so nothing is stale, though the engine got none for the whole time."""
    s = engine_env.session("one-zone.yaml", speed=20, auto=False)
    s.watch.phase(Phase.PLACE)
    held = threading.Event()
    released = threading.Event()

    def busy_host(_: object) -> None:
        if held.is_set() or released.is_set():
            return
        held.set()
        start = s.device.health().telemetry_received
        deadline = time.monotonic() + 10.0
        # Hold the dispatch thread until the reader has heard 0.8 s of frames (50 Hz).
        while s.device.health().telemetry_received - start < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        released.set()

    s.device.add_telemetry_listener(busy_host)
    assert released.wait(15), "the dispatch thread was never held"
    s.watch.until(
        lambda x: x.live is not None and x.live.age_s is not None and x.live.age_s < 0.3,
        what="telemetry handed on again",
    )
    snap = s.engine.snapshot()
    assert all(a.code.value != "telemetry_stale" for a in snap.alarms), snap.alarms
    assert "telemetry_stale" not in [e.data.get("alarm") for e in s.events("alarm_raised")]


def test_lost_telemetry_frames_raise_link_degraded_until_a_clean_window(
    engine_env: EngineEnv,
) -> None:
    clock = OffsetClock()
    s = engine_env.session("one-zone.yaml", speed=20, auto=False, clock=clock)
    s.watch.phase(Phase.PLACE)
    s.sim.inject("drop", direction="tx", count=10)
    snap = s.watch.alarm("link_degraded")
    alarm = next(a for a in snap.alarms if a.code.value == "link_degraded")
    assert alarm.detail["telemetry_lost"] >= 10 and not alarm.latching
    clock.jump(6.0)  # a whole 5 s window passes with no counter moving
    s.watch.no_alarm("link_degraded")
    assert _alarm_kinds(s, "link_degraded") == ["alarm_raised", "alarm_cleared"]


def test_a_telemetry_frame_has_one_arrival_time_for_the_screen_and_the_supervisor(
    engine_env: EngineEnv,
) -> None:
    """Found under load (tests/ui/test_flow_safety.py): the screen's latest frame and the
    supervisor's contact-loss window read the clock separately, so a clock step between the
    two (a busy machine, or the test's jump) started the 10 s window late."""

    class Ticking:
        """Host time that moves on at every reading (as a busy machine's does)."""

        def __init__(self) -> None:
            self.n = 0

        def __call__(self) -> float:
            self.n += 1
            return time.monotonic() + self.n * 1e-6

    s = engine_env.session("one-zone.yaml", speed=20, auto=False, clock=Ticking())
    sup = s.engine._sup
    real = sup.on_telemetry
    disagreements: list[tuple[float, float]] = []
    seen = threading.Event()

    def checked(t: Any, now: float) -> Any:
        latest = s.engine._in.latest
        if latest is not None and latest[0] is t and latest[1] != now:
            disagreements.append((latest[1], now))
        seen.set()
        return real(t, now)

    sup.on_telemetry = checked  # type: ignore[method-assign]
    s.watch.phase(Phase.PLACE)
    assert seen.wait(10)
    s.watch.until(lambda x: x.live is not None, what="a few frames")
    assert disagreements == []
