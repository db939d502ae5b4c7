"""Safety supervisor: cross-checks and ESTOP, faults, contact, staleness, link, reconciliation.

Every time is explicit: host ``now`` in seconds, device ``t_ms`` derived from it by the fake
device below (so both clocks agree unless a test says otherwise). Nothing sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from controller.session.alarms import AlarmCode, ChangeKind, Priority
from controller.session.supervisor import (
    ClearAlarm,
    RaiseAlarm,
    SafetySupervisor,
    SendEstop,
    UpdateAlarm,
)
from controller.wire import (
    ConfigureStep,
    Contact,
    Event,
    EventCode,
    Fault,
    State,
    Status,
    Telemetry,
)

STEP = ConfigureStep(
    step_id=7,
    waveform=2,
    polarity=0,
    amplitude_dv=400,
    amplitude_max_dv=600,
    pulse_width_us=500,
    frequency_hz=50,
    burst_on_ms=500,
    burst_off_ms=500,
    ramp_up_ms=10_000,
    ramp_down_ms=2_000,
    current_limit_ua=6_000,
    duration_ms=300_000,
    handpiece=1,
)


class FakeDevice:
    """Builds TELEMETRY/EVENT frames with one dseq counter, as the device does."""

    def __init__(self, boot_id: int = 0x1234) -> None:
        self.boot_id = boot_id
        self.dseq = 0

    def _next(self) -> int:
        self.dseq = (self.dseq + 1) % 65536
        return self.dseq

    def tel(
        self,
        now: float,
        *,
        state: State = State.RUNNING,
        amplitude_dv: int = 400,
        current_ua: int = 3_000,
        impedance_ohm: int = 2_000,
        contact: Contact = Contact.OK,
        faults: int = 0,
    ) -> Telemetry:
        return Telemetry(
            dseq=self._next(),
            boot_id=self.boot_id,
            t_ms=round(now * 1000),
            state=int(state),
            faults=int(faults),
            step_id=7,
            step_elapsed_ms=0,
            amplitude_dv=amplitude_dv,
            current_ua=current_ua,
            impedance_ohm=impedance_ohm,
            temperature_dc=320,
            contact=int(contact),
        )

    def event(self, now: float, code: EventCode, arg: int) -> Event:
        return Event(dseq=self._next(), t_ms=round(now * 1000), event=int(code), arg=arg)


def status(state: State = State.READY, faults: int = 0, boot_id: int = 0x1234) -> Status:
    return Status(boot_id, int(state), faults, 7, 0, 300_000, 1, 400, 0, 0)


@dataclass
class Health:
    crc_errors: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    telemetry_lost: int = 0
    telemetry_received: int = 0
    rtt_p99_s: float | None = 0.004


def estops(actions):
    return [a for a in actions if isinstance(a, SendEstop)]


def raised(actions):
    return [a.change.code for a in actions if isinstance(a, RaiseAlarm)]


def cleared(actions):
    return [a.change.code for a in actions if isinstance(a, ClearAlarm)]


@pytest.fixture
def dev() -> FakeDevice:
    return FakeDevice()


@pytest.fixture
def sup() -> SafetySupervisor:
    s = SafetySupervisor()
    s.configure(STEP, 0.0)
    return s


def run(sup, dev, start, end, period=0.02, **kw):
    """Feed frames every ``period`` s from ``start`` to ``end`` inclusive; all actions."""
    actions = []
    n = round((end - start) / period)
    for i in range(n + 1):
        now = start + i * period
        actions += sup.on_telemetry(dev.tel(now, **kw), now)
    return actions


# --- clean delivery ------------------------------------------------------------------------


def test_normal_delivery_raises_nothing(sup, dev):
    actions = run(sup, dev, 1.0, 3.0)
    actions += run(sup, dev, 3.02, 3.5, state=State.READY, amplitude_dv=0, current_ua=0)
    for i in range(10):
        actions += sup.tick(3.5 + i * 0.02)
    assert actions == []
    assert sup.alarms.active() == []


def test_ramp_up_from_zero_and_ramp_down_in_stopping_raise_nothing(sup, dev):
    actions = []
    for i in range(0, 41):  # START ramp 0 -> 40 V
        now = 1.0 + i * 0.02
        actions += sup.on_telemetry(dev.tel(now, amplitude_dv=i * 10), now)
    for i in range(40, -1, -1):  # STOP: ramp-down in STOPPING
        now = 2.0 + (40 - i) * 0.02
        actions += sup.on_telemetry(dev.tel(now, state=State.STOPPING, amplitude_dv=i * 10), now)
    assert actions == []


# --- cross-check: output while off ---------------------------------------------------------


@pytest.mark.parametrize("state", [State.IDLE, State.READY, State.PAUSED, State.HOLD, State.FAULT])
def test_amplitude_while_off_sends_estop_first(sup, dev, state):
    actions = sup.on_telemetry(dev.tel(1.0, state=state, amplitude_dv=5, current_ua=0), 1.0)
    assert isinstance(actions[0], SendEstop)
    estop = actions[0]
    assert estop.detail.layer == "controller"
    assert estop.detail.limit == "output_off"
    assert estop.detail.value == 0.5 and estop.detail.unit == "V"
    assert state.name in estop.detail.message
    assert AlarmCode.OUTPUT_MISMATCH in raised(actions)
    alarm = sup.alarms.get(AlarmCode.OUTPUT_MISMATCH)
    assert alarm.priority is Priority.HIGH
    assert alarm.detail["checks"] == ["output_while_off"]
    assert "emergency stop" in alarm.message


def test_unknown_state_counts_as_off(sup, dev):
    frame = dev.tel(1.0)._replace(state=42, amplitude_dv=100)
    actions = sup.on_telemetry(frame, 1.0)
    assert estops(actions) and "unknown state 42" in estops(actions)[0].detail.message


def test_current_decaying_after_pause_is_tolerated_then_caught(sup, dev):
    run(sup, dev, 1.0, 2.0)
    # Output off at 2.02 (first PAUSED frame); r.m.s. current lingers.
    quiet = run(sup, dev, 2.02, 2.16, state=State.PAUSED, amplitude_dv=0, current_ua=2_000)
    assert quiet == [], "within 150 ms of output off the r.m.s. tail is expected"
    late = run(sup, dev, 2.18, 2.18, state=State.PAUSED, amplitude_dv=0, current_ua=2_000)
    assert estops(late)
    assert estops(late)[0].detail.unit == "mA"
    assert sup.alarms.get(AlarmCode.OUTPUT_MISMATCH).detail["checks"] == ["current_while_off"]


def test_output_on_shorter_than_a_telemetry_period_is_timed_from_the_state_change(sup, dev):
    """START then HOLD within one telemetry period: telemetry never shows RUNNING, but the
    STATE_CHANGED events do; the r.m.s. tail after HOLD is not current while off."""
    assert run(sup, dev, 1.0, 2.0, state=State.READY, amplitude_dv=0, current_ua=0) == []
    running = (int(State.READY) << 8) | int(State.RUNNING)
    hold = (int(State.RUNNING) << 8) | int(State.HOLD)
    assert not estops(
        sup.on_device_event(dev.event(2.005, EventCode.STATE_CHANGED, running), 2.005)
    )
    assert not estops(sup.on_device_event(dev.event(2.015, EventCode.STATE_CHANGED, hold), 2.015))
    tail = sup.on_telemetry(dev.tel(2.02, state=State.HOLD, amplitude_dv=0, current_ua=900), 2.02)
    assert estops(tail) == []
    late = sup.on_telemetry(dev.tel(2.2, state=State.HOLD, amplitude_dv=0, current_ua=900), 2.2)
    assert estops(late), "past the settle window the current is output while off again"


def test_current_at_noise_level_while_off_is_not_output(sup, dev):
    actions = run(sup, dev, 1.0, 3.0, state=State.READY, amplitude_dv=0, current_ua=100)
    assert actions == []


def test_current_while_off_boundary_is_strict(sup, dev):
    run(sup, dev, 1.0, 1.0)
    assert run(sup, dev, 1.1, 1.1, state=State.HOLD, amplitude_dv=0, current_ua=0) == []
    at_150 = sup.on_telemetry(dev.tel(1.25, state=State.HOLD, amplitude_dv=0, current_ua=500), 1.25)
    assert at_150 == []
    at_151 = sup.on_telemetry(
        dev.tel(1.251, state=State.HOLD, amplitude_dv=0, current_ua=500), 1.251
    )
    assert estops(at_151)


# --- cross-check: amplitude above setpoint -------------------------------------------------


def test_amplitude_within_tolerance_of_setpoint_is_accepted(sup, dev):
    assert run(sup, dev, 1.0, 2.0, amplitude_dv=410) == []


def test_amplitude_above_setpoint_beyond_tolerance_sends_estop(sup, dev):
    actions = sup.on_telemetry(dev.tel(1.0, amplitude_dv=411), 1.0)
    (estop,) = estops(actions)
    assert estop.detail.limit == "setpoint"
    assert estop.detail.value == 41.1
    assert "40.0 V" in estop.detail.message
    assert sup.alarms.get(AlarmCode.OUTPUT_MISMATCH).detail["checks"] == [
        "amplitude_above_setpoint"
    ]


def test_setpoint_decrease_tolerates_frames_in_flight_then_enforces(sup, dev):
    run(sup, dev, 1.0, 2.0)
    sup.setpoint_changed(200, 2.0)
    assert sup.setpoint_dv == 200
    # Frames measured before the device applied the decrease still show 40 V.
    assert run(sup, dev, 2.02, 2.5, amplitude_dv=400) == []
    assert run(sup, dev, 2.52, 2.98, amplitude_dv=200) == []
    late = sup.on_telemetry(dev.tel(3.1, amplitude_dv=400), 3.1)
    assert estops(late), "after the grace period the new setpoint is enforced"


def test_setpoint_increase_ramps_below_new_setpoint(sup, dev):
    sup.setpoint_changed(550, 1.0)
    actions = []
    for i in range(16):  # 10 V/s ramp from 40 V to 55 V
        now = 1.0 + i * 0.1
        actions += sup.on_telemetry(dev.tel(now, amplitude_dv=400 + i * 10), now)
    assert actions == []
    assert estops(sup.on_telemetry(dev.tel(2.7, amplitude_dv=561), 2.7))


def test_setpoint_is_capped_at_step_maximum(sup, dev):
    sup.setpoint_changed(900, 1.0)
    assert sup.setpoint_dv == 600
    assert estops(sup.on_telemetry(dev.tel(1.1, amplitude_dv=700), 1.1))


def test_current_regulation_lowering_setpoint_is_tolerated(sup, dev):
    run(sup, dev, 1.0, 2.0)
    actions = sup.on_device_event(dev.event(2.0, EventCode.AMPLITUDE_LIMITED, 320), 2.0)
    assert raised(actions) == [AlarmCode.AMPLITUDE_LIMITED]
    alarm = sup.alarms.get(AlarmCode.AMPLITUDE_LIMITED)
    assert alarm.priority is Priority.LOW
    assert alarm.detail == {"amplitude_dv": 320, "amplitude_v": 32.0}
    assert "32.0 V" in alarm.message
    assert sup.device_setpoint_dv == 320
    # Output at the regulated value, current held just at the limit: no cross-check fails.
    assert run(sup, dev, 2.02, 4.0, amplitude_dv=320, current_ua=6_000) == []
    # Even back at the practitioner's setpoint, output never exceeded what was set.
    assert run(sup, dev, 4.02, 4.5, amplitude_dv=400) == []


def test_amplitude_limited_updates_and_clears_on_new_setpoint(sup, dev):
    sup.on_device_event(dev.event(1.0, EventCode.AMPLITUDE_LIMITED, 350), 1.0)
    actions = sup.on_device_event(dev.event(1.5, EventCode.AMPLITUDE_LIMITED, 330), 1.5)
    assert [type(a) for a in actions] == [UpdateAlarm]
    assert cleared(sup.setpoint_changed(330, 2.0)) == [AlarmCode.AMPLITUDE_LIMITED]


def test_amplitude_limited_clears_when_step_ends(sup, dev):
    sup.on_device_event(dev.event(1.0, EventCode.AMPLITUDE_LIMITED, 350), 1.0)
    actions = sup.on_telemetry(dev.tel(2.0, state=State.IDLE, amplitude_dv=0, current_ua=0), 2.0)
    assert cleared(actions) == [AlarmCode.AMPLITUDE_LIMITED]


# --- cross-check: current above the limit --------------------------------------------------


def test_current_at_exactly_110_percent_is_accepted(sup, dev):
    assert run(sup, dev, 1.0, 3.0, current_ua=6_600) == []


def test_overcurrent_not_before_200_ms_then_estop(sup, dev):
    assert run(sup, dev, 1.0, 1.2, current_ua=6_601) == [], "exactly 200 ms: not yet"
    actions = sup.on_telemetry(dev.tel(1.201, current_ua=6_601), 1.201)
    (estop,) = estops(actions)
    assert estop.detail.limit == "current_limit_ma"
    assert estop.detail.unit == "mA" and estop.detail.value == 6.601
    assert "6.00 mA" in estop.detail.message
    assert sup.alarms.get(AlarmCode.OUTPUT_MISMATCH).detail["checks"] == ["current_above_limit"]


def test_interrupted_overcurrent_restarts_the_window(sup, dev):
    actions = run(sup, dev, 1.0, 1.16, current_ua=7_000)
    actions += run(sup, dev, 1.18, 1.18, current_ua=5_000)
    actions += run(sup, dev, 1.2, 1.36, current_ua=7_000)
    assert actions == []


def test_device_overcurrent_fault_tail_is_not_a_mismatch(sup, dev):
    """The device faults after 100 ms; its r.m.s. current stays high for up to 100 ms more."""
    actions = run(sup, dev, 1.0, 1.1, current_ua=7_000)
    actions += run(
        sup,
        dev,
        1.12,
        1.24,
        state=State.FAULT,
        amplitude_dv=0,
        current_ua=7_000,
        faults=Fault.OVERCURRENT,
    )
    assert estops(actions) == []
    assert raised(actions) == [AlarmCode.DEVICE_FAULT]


def test_overcurrent_window_uses_device_clock_for_batched_frames(sup, dev):
    # Twelve frames 20 ms apart on the device clock, all drained at the same host time.
    frames = [dev.tel(1.0 + i * 0.02, current_ua=7_000) for i in range(12)]
    actions = []
    for frame in frames:
        actions += sup.on_telemetry(frame, 5.0)
    assert len(estops(actions)) == 1
    assert frames[-1].t_ms - frames[0].t_ms == 220


# --- cross-check: short circuit with output ------------------------------------------------


def test_short_contact_warns_at_once_and_estops_if_device_does_not_fault(sup, dev):
    first = sup.on_telemetry(dev.tel(1.0, contact=Contact.SHORT, impedance_ohm=30), 1.0)
    assert raised(first) == [AlarmCode.CONTACT_MARGINAL]
    alarm = sup.alarms.get(AlarmCode.CONTACT_MARGINAL)
    assert alarm.detail == {"contact": "short"} and "50 Ω" in alarm.message
    assert run(sup, dev, 1.02, 1.2, contact=Contact.SHORT, impedance_ohm=30) == []
    late = sup.on_telemetry(dev.tel(1.22, contact=Contact.SHORT, impedance_ohm=30), 1.22)
    (estop,) = estops(late)
    assert estop.detail.limit == "short_circuit" and estop.detail.unit == "Ω"


def test_short_that_the_device_faults_on_is_device_fault_territory(sup, dev):
    actions = run(sup, dev, 1.0, 1.0, contact=Contact.SHORT, impedance_ohm=30)
    actions += run(
        sup,
        dev,
        1.01,
        1.5,
        state=State.FAULT,
        amplitude_dv=0,
        current_ua=0,
        contact=Contact.SHORT,
        impedance_ohm=30,
        faults=Fault.SHORT_CIRCUIT,
    )
    assert estops(actions) == []
    assert AlarmCode.DEVICE_FAULT in raised(actions)
    assert "short circuit" in sup.alarms.get(AlarmCode.DEVICE_FAULT).message.lower()
    assert not sup.alarms.is_shown(AlarmCode.CONTACT_MARGINAL), "FAULT: the fault covers it"


# --- ESTOP repetition and latching of output_mismatch ------------------------------------


def test_persisting_mismatch_resends_estop_every_second(sup, dev):
    stuck = {"state": State.FAULT, "amplitude_dv": 50, "current_ua": 0, "faults": Fault.ESTOP}
    actions = run(sup, dev, 1.0, 1.98, **stuck)
    assert len(estops(actions)) == 1
    assert raised(actions).count(AlarmCode.OUTPUT_MISMATCH) == 1
    again = run(sup, dev, 2.0, 2.0, **stuck)
    assert len(estops(again)) == 1


def test_output_mismatch_latches_until_acknowledged(sup, dev):
    sup.on_telemetry(dev.tel(1.0, state=State.READY, amplitude_dv=50), 1.0)
    clean = sup.on_telemetry(dev.tel(1.02, state=State.READY, amplitude_dv=0, current_ua=0), 1.02)
    assert [a.change.kind for a in clean] == [ChangeKind.RESOLVED]
    assert sup.alarms.is_latched(AlarmCode.OUTPUT_MISMATCH)
    assert cleared(sup.acknowledge(AlarmCode.OUTPUT_MISMATCH, 2.0)) == [AlarmCode.OUTPUT_MISMATCH]


def test_a_further_failing_check_renews_the_mismatch_and_estops_again(sup, dev):
    sup.on_telemetry(dev.tel(1.0, amplitude_dv=450), 1.0)
    sup.acknowledge(AlarmCode.OUTPUT_MISMATCH, 1.01)
    quiet = run(sup, dev, 1.02, 1.22, amplitude_dv=450, current_ua=7_000)
    assert estops(quiet) == [], "same failing check: ESTOP repeats only after 1 s"
    actions = sup.on_telemetry(dev.tel(1.24, amplitude_dv=450, current_ua=7_000), 1.24)
    assert len(estops(actions)) == 1
    alarm = sup.alarms.get(AlarmCode.OUTPUT_MISMATCH)
    assert alarm.detail["checks"] == ["amplitude_above_setpoint", "current_above_limit"]
    assert not alarm.acknowledged


# --- device faults -------------------------------------------------------------------------


def test_fault_in_telemetry_raises_device_fault_with_names(sup, dev):
    actions = sup.on_telemetry(
        dev.tel(1.0, state=State.FAULT, amplitude_dv=0, current_ua=0, faults=Fault.OVERTEMP),
        1.0,
    )
    assert raised(actions) == [AlarmCode.DEVICE_FAULT]
    alarm = sup.alarms.get(AlarmCode.DEVICE_FAULT)
    assert alarm.detail == {"faults": ["OVERTEMP"], "bits": int(Fault.OVERTEMP)}
    assert "40 °C" in alarm.message and "clear faults" in alarm.message


def test_new_fault_bit_reannounces_an_acknowledged_fault(sup, dev):
    off = {"state": State.FAULT, "amplitude_dv": 0, "current_ua": 0}
    sup.on_telemetry(dev.tel(1.0, faults=Fault.WATCHDOG, **off), 1.0)
    sup.acknowledge(AlarmCode.DEVICE_FAULT, 1.5)
    both = Fault.WATCHDOG | Fault.HANDPIECE_REMOVED
    actions = sup.on_telemetry(dev.tel(2.0, faults=both, **off), 2.0)
    assert [a.change.kind for a in actions] == [ChangeKind.UPDATED]
    alarm = sup.alarms.get(AlarmCode.DEVICE_FAULT)
    assert not alarm.acknowledged
    assert alarm.detail["faults"] == ["WATCHDOG", "HANDPIECE_REMOVED"]
    # Fewer bits is not news: no re-announcement after a second acknowledgement.
    sup.acknowledge(AlarmCode.DEVICE_FAULT, 2.5)
    sup.on_telemetry(dev.tel(3.0, faults=Fault.HANDPIECE_REMOVED, **off), 3.0)
    assert sup.alarms.get(AlarmCode.DEVICE_FAULT).acknowledged
    # All cleared: acknowledged already, so it goes.
    gone = sup.on_telemetry(dev.tel(4.0, state=State.IDLE, amplitude_dv=0, current_ua=0), 4.0)
    assert cleared(gone) == [AlarmCode.DEVICE_FAULT]


def test_fault_from_status(sup):
    actions = sup.on_status(status(State.FAULT, Fault.SELFTEST), 1.0)
    assert raised(actions) == [AlarmCode.DEVICE_FAULT]
    assert "serviced" in sup.alarms.get(AlarmCode.DEVICE_FAULT).message
    resolved = sup.on_status(status(State.IDLE, 0), 2.0)
    assert [a.change.kind for a in resolved] == [ChangeKind.RESOLVED]


def test_fault_event_is_not_undone_by_an_older_telemetry_frame(sup, dev):
    old = dev.tel(1.0)  # measured before the fault, processed after the event
    ev = dev.event(1.01, EventCode.FAULT_RAISED, int(Fault.OVERTEMP))
    assert raised(sup.on_device_event(ev, 1.02)) == [AlarmCode.DEVICE_FAULT]
    sup.on_telemetry(old, 1.03)
    assert sup.alarms.get(AlarmCode.DEVICE_FAULT).condition_active
    cleared_ev = dev.event(2.0, EventCode.FAULTS_CLEARED, int(Fault.OVERTEMP))
    actions = sup.on_device_event(cleared_ev, 2.0)
    assert [a.change.kind for a in actions] == [ChangeKind.RESOLVED]


def test_duplicate_telemetry_only_counts_for_staleness(sup, dev):
    bad = dev.tel(1.0, state=State.READY, amplitude_dv=50)
    assert estops(sup.on_telemetry(bad, 1.0))
    sup.acknowledge(None, 1.01)
    again = sup.on_telemetry(bad, 2.0)
    assert estops(again) == []


def test_unknown_fault_bit_is_named_and_explained(sup, dev):
    actions = sup.on_status(status(State.FAULT, 1 << 9), 1.0)
    assert raised(actions) == [AlarmCode.DEVICE_FAULT]
    alarm = sup.alarms.get(AlarmCode.DEVICE_FAULT)
    assert alarm.detail["faults"] == ["BIT9"] and "unknown fault bit" in alarm.message


# --- contact -------------------------------------------------------------------------------


def test_marginal_contact_while_delivering_is_a_low_non_latching_alarm(sup, dev):
    actions = sup.on_telemetry(dev.tel(1.0, contact=Contact.MARGINAL, impedance_ohm=15_000), 1.0)
    assert raised(actions) == [AlarmCode.CONTACT_MARGINAL]
    assert sup.alarms.get(AlarmCode.CONTACT_MARGINAL).priority is Priority.LOW
    assert cleared(sup.on_telemetry(dev.tel(1.02), 1.02)) == [AlarmCode.CONTACT_MARGINAL]


def test_marginal_contact_while_output_is_off_is_not_an_alarm(sup, dev):
    off = {"state": State.READY, "amplitude_dv": 0, "current_ua": 0}
    actions = run(sup, dev, 1.0, 1.5, contact=Contact.MARGINAL, **off)
    assert actions == []


def hold(sup, dev, now):
    return sup.on_telemetry(
        dev.tel(now, state=State.HOLD, amplitude_dv=0, current_ua=0, contact=Contact.NONE), now
    )


def test_contact_lost_at_ten_second_boundary(sup, dev):
    assert sup.on_telemetry(dev.tel(100.0, contact=Contact.NONE), 100.0) == []
    assert hold(sup, dev, 105.0) == []
    # (telemetry stopped at 105 s too: ticks also raise telemetry_stale, filtered out here)
    assert AlarmCode.CONTACT_LOST not in raised(sup.tick(110.0)), "exactly 10 s: still HOLD"
    actions = sup.tick(110.001)
    assert raised(actions) == [AlarmCode.CONTACT_LOST]
    alarm = sup.alarms.get(AlarmCode.CONTACT_LOST)
    assert alarm.priority is Priority.MEDIUM and not alarm.latching
    assert sup.tick(111.0) == [], "no repeated changes while it lasts"
    back = sup.on_telemetry(dev.tel(112.0, contact=Contact.OK), 112.0)
    assert cleared(back) == [AlarmCode.CONTACT_LOST]


def test_contact_lost_also_raised_by_telemetry_without_tick(sup, dev):
    hold(sup, dev, 100.0)
    assert hold(sup, dev, 110.0) == []
    assert raised(hold(sup, dev, 110.02)) == [AlarmCode.CONTACT_LOST]


def test_contact_returning_briefly_restarts_the_ten_seconds(sup, dev):
    hold(sup, dev, 100.0)
    hold(sup, dev, 109.0)
    sup.on_telemetry(dev.tel(109.5, contact=Contact.OK), 109.5)
    hold(sup, dev, 109.6)
    assert AlarmCode.CONTACT_LOST not in raised(sup.tick(119.0))
    assert raised(sup.tick(119.7)) == [AlarmCode.CONTACT_LOST]


def test_no_contact_while_paused_or_ready_is_not_contact_lost(sup, dev):
    for state in (State.PAUSED, State.READY, State.IDLE):
        s = SafetySupervisor()
        s.configure(STEP, 0.0)
        s.on_telemetry(
            dev.tel(1.0, state=state, amplitude_dv=0, current_ua=0, contact=Contact.NONE), 1.0
        )
        assert AlarmCode.CONTACT_LOST not in raised(s.tick(30.0))
        assert not s.alarms.is_shown(AlarmCode.CONTACT_LOST)


def test_pausing_clears_contact_lost(sup, dev):
    hold(sup, dev, 100.0)
    sup.tick(111.0)
    actions = sup.on_device_event(
        dev.event(112.0, EventCode.STATE_CHANGED, (State.HOLD << 8) | State.PAUSED), 112.0
    )
    assert cleared(actions) == [AlarmCode.CONTACT_LOST]


def test_contact_events_feed_the_same_logic(sup, dev):
    sup.on_telemetry(dev.tel(1.0), 1.0)
    actions = sup.on_device_event(
        dev.event(1.01, EventCode.CONTACT_CHANGED, Contact.MARGINAL), 1.01
    )
    assert raised(actions) == [AlarmCode.CONTACT_MARGINAL]


# --- telemetry staleness -------------------------------------------------------------------


def test_telemetry_stale_at_300_ms_boundary_and_latches(sup, dev):
    sup.on_telemetry(dev.tel(10.0), 10.0)
    assert sup.tick(10.3) == []
    actions = sup.tick(10.301)
    assert raised(actions) == [AlarmCode.TELEMETRY_STALE]
    assert sup.alarms.get(AlarmCode.TELEMETRY_STALE).priority is Priority.MEDIUM
    assert sup.tick(10.5) == []
    back = sup.on_telemetry(dev.tel(10.6), 10.6)
    assert [a.change.kind for a in back] == [ChangeKind.RESOLVED]
    assert sup.alarms.is_latched(AlarmCode.TELEMETRY_STALE)
    assert cleared(sup.acknowledge(None, 11.0)) == [AlarmCode.TELEMETRY_STALE]


def test_a_busy_host_is_not_a_silent_device(sup, dev):
    """The engine passes the link reader's own measure of silence: a host starved for a
    second (frames waiting in the port) raises nothing; a reader that listened 301 ms and
    heard no telemetry does."""
    sup.on_telemetry(dev.tel(10.0), 10.0)
    assert sup.tick(11.0, silence_s=0.0) == [], "1 s since the last frame fed, none missed"
    assert sup.tick(11.1, silence_s=0.3) == []
    assert raised(sup.tick(11.2, silence_s=0.301)) == [AlarmCode.TELEMETRY_STALE]


def test_no_staleness_when_the_reader_says_the_link_is_not_up(sup, dev):
    sup.on_telemetry(dev.tel(10.0), 10.0)
    assert sup.tick(20.0, silence_s=None) == []


def test_no_staleness_before_anything_was_expected():
    s = SafetySupervisor()
    assert s.tick(100.0) == []


def test_link_up_starts_the_staleness_clock():
    s = SafetySupervisor()
    s.on_link_up(5.0)
    assert s.tick(5.3) == []
    assert raised(s.tick(5.31)) == [AlarmCode.TELEMETRY_STALE]


def test_no_staleness_while_the_link_is_lost(sup, dev):
    sup.on_telemetry(dev.tel(1.0), 1.0)
    sup.on_link_lost(False, 1.1)
    assert sup.tick(5.0) == []


# --- link lost, outcome unknown, restart ---------------------------------------------------


def test_link_lost_during_delivery_is_high_and_latches(sup, dev):
    sup.on_telemetry(dev.tel(1.0), 1.0)
    actions = sup.on_link_lost(True, 1.5)
    assert raised(actions) == [AlarmCode.LINK_LOST]
    assert estops(actions) == [], "the link sends ESTOP itself"
    assert sup.alarms.get(AlarmCode.LINK_LOST).priority is Priority.HIGH
    up = sup.on_link_up(3.0)
    assert [a.change.kind for a in up] == [ChangeKind.RESOLVED]
    assert cleared(sup.acknowledge(AlarmCode.LINK_LOST, 4.0)) == [AlarmCode.LINK_LOST]


def test_link_lost_outside_delivery_raises_nothing(sup):
    assert sup.on_link_lost(False, 1.0) == []


def test_link_lost_supersedes_stale_and_contact_lost(sup, dev):
    hold(sup, dev, 100.0)
    sup.tick(110.5)
    assert sup.alarms.is_shown(AlarmCode.CONTACT_LOST)
    assert sup.alarms.is_shown(AlarmCode.TELEMETRY_STALE)
    actions = sup.on_link_lost(True, 111.0)
    assert AlarmCode.CONTACT_LOST in cleared(actions)
    assert sup.alarms.is_latched(AlarmCode.TELEMETRY_STALE)
    assert AlarmCode.LINK_LOST in raised(actions)


def test_outcome_unknown_resolves_only_on_status_with_link_up(sup):
    sup.on_link_lost(True, 1.0)
    actions = sup.on_outcome_unknown("SET_AMPLITUDE", 1.0)
    assert raised(actions) == [AlarmCode.OUTCOME_UNKNOWN]
    alarm = sup.alarms.get(AlarmCode.OUTCOME_UNKNOWN)
    assert alarm.detail == {"request": "SET_AMPLITUDE"}
    assert alarm.message.startswith("SET_AMPLITUDE was sent")
    sup.on_status(status(), 1.5)  # a stale reply while still down resolves nothing
    assert sup.alarms.get(AlarmCode.OUTCOME_UNKNOWN).condition_active
    sup.on_link_up(2.0)
    resolved = sup.on_status(status(State.READY), 2.1)
    assert [(a.change.code, a.change.kind) for a in resolved] == [
        (AlarmCode.OUTCOME_UNKNOWN, ChangeKind.RESOLVED)
    ]
    assert sup.alarms.is_latched(AlarmCode.OUTCOME_UNKNOWN), "the operator decides"


def test_device_restart_voids_the_step_and_resolves_on_status(sup, dev):
    sup.on_telemetry(dev.tel(1.0), 1.0)
    actions = sup.on_device_restarted(2.0)
    assert raised(actions) == [AlarmCode.DEVICE_RESTARTED]
    assert sup.setpoint_dv is None
    new_boot = FakeDevice(boot_id=0x9999)
    # No step is known: the setpoint check is off, the off-output check stays on.
    assert estops(sup.on_telemetry(new_boot.tel(2.1, amplitude_dv=900), 2.1)) == []
    assert estops(sup.on_telemetry(new_boot.tel(2.2, state=State.IDLE, amplitude_dv=10), 2.2))
    resolved = sup.on_status(status(State.FAULT, Fault.ESTOP, boot_id=0x9999), 2.3)
    kinds = {a.change.code: a.change.kind for a in resolved if not isinstance(a, SendEstop)}
    assert kinds[AlarmCode.DEVICE_RESTARTED] is ChangeKind.RESOLVED


def test_new_boot_id_restarts_frame_ordering(sup, dev):
    sup.on_telemetry(dev.tel(1.0), 1.0)
    sup.on_telemetry(dev.tel(1.02), 1.02)  # last dseq 2; the new boot starts again at 1
    fresh = FakeDevice(boot_id=0x4321)
    actions = sup.on_telemetry(fresh.tel(2.0, state=State.IDLE, amplitude_dv=30), 2.0)
    assert estops(actions), "dseq 1 of a new boot is not an old frame"


# --- link degraded -------------------------------------------------------------------------


def test_link_degraded_not_below_three_retransmissions():
    s = SafetySupervisor()
    h = Health()
    assert s.on_link_health(h, 0.0) == []
    h.retransmissions = 2
    assert s.on_link_health(h, 1.0) == []
    assert not s.alarms.is_shown(AlarmCode.LINK_DEGRADED)


def test_link_degraded_raised_and_cleared_after_a_clean_window():
    s = SafetySupervisor()
    h = Health()
    s.on_link_health(h, 0.0)
    h.retransmissions, h.telemetry_received = 3, 50
    actions = s.on_link_health(h, 1.0)
    assert raised(actions) == [AlarmCode.LINK_DEGRADED]
    alarm = s.alarms.get(AlarmCode.LINK_DEGRADED)
    assert alarm.priority is Priority.MEDIUM and not alarm.latching
    assert alarm.detail["retransmissions"] == 3 and alarm.detail["window_s"] == 5.0
    assert alarm.detail["rtt_p99_s"] == 0.004 and alarm.detail["timeouts"] == 0
    # No further errors: the retransmissions (between 0 s and 1 s) stay in the window until
    # the 1 s sample is the window's base, at 6 s.
    for t in (2.0, 3.0, 4.0, 5.0):
        h.telemetry_received += 50
        assert s.on_link_health(h, t) == [], t
    h.telemetry_received += 50
    assert cleared(s.on_link_health(h, 6.0)) == [AlarmCode.LINK_DEGRADED]


def test_link_degraded_needs_a_whole_clean_window_to_clear():
    s = SafetySupervisor()
    h = Health()
    s.on_link_health(h, 0.0)
    h.retransmissions = 3
    s.on_link_health(h, 1.0)
    h.retransmissions = 4  # one more at 3 s: below the raise threshold, but not clean
    s.on_link_health(h, 3.0)
    assert s.on_link_health(h, 6.0) == []
    assert s.on_link_health(h, 7.9) == []
    assert cleared(s.on_link_health(h, 8.0)) == [AlarmCode.LINK_DEGRADED]


def test_link_degraded_by_telemetry_loss_ratio():
    below = SafetySupervisor()  # 2 of 250 lost in 5 s: 0.8 %
    below.on_link_health(Health(), 0.0)
    assert below.on_link_health(Health(telemetry_lost=2, telemetry_received=248), 5.0) == []
    above = SafetySupervisor()  # 3 of 250: 1.2 %
    above.on_link_health(Health(), 0.0)
    actions = above.on_link_health(Health(telemetry_lost=3, telemetry_received=247), 5.0)
    assert raised(actions) == [AlarmCode.LINK_DEGRADED]
    assert above.alarms.get(AlarmCode.LINK_DEGRADED).detail["telemetry_loss_percent"] == 1.2


def test_link_degraded_by_crc_errors():
    s = SafetySupervisor()
    s.on_link_health(Health(), 0.0)
    assert s.on_link_health(Health(crc_errors=2), 1.0) == []
    assert raised(s.on_link_health(Health(crc_errors=3), 2.0)) == [AlarmCode.LINK_DEGRADED]


def test_old_errors_fall_out_of_the_window():
    # One retransmission every 3 s: never 3 within a 5 s window.
    s = SafetySupervisor()
    h = Health()
    actions = []
    for i in range(31):
        if i % 3 == 0:
            h.retransmissions += 1
        actions += s.on_link_health(h, float(i))
    assert raised(actions) == []
    # Every 2 s does put 3 in one window.
    t = SafetySupervisor()
    h = Health()
    actions = []
    for i in range(31):
        if i % 2 == 0:
            h.retransmissions += 1
        actions += t.on_link_health(h, float(i))
    assert raised(actions) == [AlarmCode.LINK_DEGRADED]


def test_link_snapshot_with_the_link_layers_field_names_is_accepted():
    @dataclass
    class LinkSnapshot:  # controller.link's names: reply_timeouts, rtt_p99_ms
        crc_errors: int = 0
        retransmissions: int = 0
        reply_timeouts: int = 0
        telemetry_lost: int = 0
        telemetry_received: int = 0
        rtt_p99_ms: float | None = 12.0

    s = SafetySupervisor()
    s.on_link_health(LinkSnapshot(), 0.0)
    actions = s.on_link_health(LinkSnapshot(retransmissions=3, reply_timeouts=2), 1.0)
    assert raised(actions) == [AlarmCode.LINK_DEGRADED]
    detail = s.alarms.get(AlarmCode.LINK_DEGRADED).detail
    assert detail["timeouts"] == 2 and detail["rtt_p99_s"] == 0.012


def test_counters_restarting_with_a_new_link_are_not_errors():
    s = SafetySupervisor()
    s.on_link_health(Health(retransmissions=2, telemetry_received=1000), 0.0)
    assert s.on_link_health(Health(retransmissions=0, telemetry_received=10), 1.0) == []
    assert s.on_link_health(Health(retransmissions=2, telemetry_received=60), 2.0) == []
    assert not s.alarms.is_shown(AlarmCode.LINK_DEGRADED)


# --- priorities and acknowledgement through the supervisor ---------------------------------


def test_active_alarms_ordered_high_medium_low(sup, dev):
    sup.on_telemetry(dev.tel(1.0, contact=Contact.MARGINAL), 1.0)
    sup.tick(1.5)
    sup.on_device_event(dev.event(1.6, EventCode.FAULT_RAISED, int(Fault.WATCHDOG)), 1.6)
    assert [a.priority for a in sup.alarms.active()] == [
        Priority.HIGH,
        Priority.MEDIUM,
        Priority.LOW,
    ]
    assert sup.alarms.highest().code is AlarmCode.DEVICE_FAULT


def test_acknowledge_all_returns_update_and_clear_actions(sup, dev):
    sup.on_telemetry(dev.tel(1.0), 1.0)
    sup.tick(1.5)  # stale
    sup.on_telemetry(dev.tel(1.6), 1.6)  # resolved, latched
    sup.on_status(status(State.FAULT, Fault.ESTOP), 1.7)
    actions = sup.acknowledge(None, 2.0)
    assert {type(a) for a in actions} == {UpdateAlarm, ClearAlarm}
    assert cleared(actions) == [AlarmCode.TELEMETRY_STALE]
    assert sup.alarms.get(AlarmCode.DEVICE_FAULT).acknowledged
