"""Preflight: every check a session must pass, each refusal naming its layer and the fix, the
record of a refused session, and the real-device rules (approval of the exact file, serum lot,
simulated sessions labelled and never counted in a course)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from controller.device import DeviceClient, DeviceInfo
from controller.records.approvals import approve
from controller.session.headless import checklist_answers
from controller.session.model import Action, Outcome, Phase
from controller.wire import Fault, MsgType, State
from protocols import load_protocol
from tests.integration.helpers import EngineEnv, RealLookingClient, engine_env, protocol_path

__all__ = ["engine_env"]


class FiftyVoltClient(DeviceClient):
    """A unit that states a lower amplitude ceiling (50 V) than EPM-1's, as another model might."""

    def _smaller(self, info: DeviceInfo | None) -> DeviceInfo | None:
        if info is None:
            return None
        caps = dataclasses.replace(info.capabilities, max_amplitude_dv=500)
        return dataclasses.replace(info, capabilities=caps)

    @property
    def info(self) -> DeviceInfo | None:
        return self._smaller(super().info)

    def current_info(self) -> DeviceInfo:
        info = self._smaller(super().current_info())
        assert info is not None
        return info


def _configure_or_start_sent(session) -> bool:
    return bool(session.receipts_after(0.0, MsgType.CONFIGURE_STEP, MsgType.START))


def test_a_refusal_lists_every_failed_check_by_layer_and_is_recorded(
    engine_env: EngineEnv,
) -> None:
    answers = checklist_answers(load_protocol(protocol_path("two-zones.yaml")).protocol)
    answers["serum-allergy"] = True  # a contraindication present
    del answers["numbing-cream"]  # a confirmation not answered
    sim = engine_env.sim(300, handpiece="flat_probe")
    s = engine_env.session("two-zones.yaml", sim=sim, answers=answers, zones=("frontal", "nape"))
    snap = s.watch.finished()
    assert snap.phase is Phase.REFUSED and snap.outcome is Outcome.REFUSED
    refusals = "\n".join(snap.refusals)
    assert "Checklist: Contraindication present: Known allergy" in refusals
    assert "Checklist: Not answered: Numbing cream" in refusals
    assert "Zones: nape not in protocol test-two-zones" in refusals
    assert "Handpiece (controller check)" in refusals and "FLAT_PROBE" in refusals
    assert snap.allowed == frozenset({Action.ESTOP})
    assert not _configure_or_start_sent(s)
    session = s.store.get_session(s.engine.session_id)
    assert session.outcome == "refused" and session.simulated
    kinds = [e.kind for e in s.events()]
    assert kinds[:2] == ["session_started", "preflight"] and kinds[-1] == "session_end"
    # the soft-limit warning; the device seen inactive at the end; preflight -> refused
    assert kinds[2:-1] == ["warning", "end_check", "state"]
    assert s.events("state")[0].data["new"] == "refused"
    assert s.events("preflight")[0].data["refusals"] == list(snap.refusals)
    assert s.events("session_end")[0].data["outcome"] == "refused"


def test_capabilities_are_checked_against_what_the_device_states(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", client_cls=FiftyVoltClient)
    snap = s.watch.finished()
    assert snap.outcome is Outcome.REFUSED
    frontal = [r for r in snap.refusals if "step 2 (frontal)" in r]
    assert len(frontal) == 1
    assert frontal[0].startswith("Device capabilities (controller check, limit max_amplitude_dv)")
    assert "60.0 V exceeds this device's maximum of 50.0 V" in frontal[0]
    assert any("step 3 (crown)" in r for r in snap.refusals)
    assert not _configure_or_start_sent(s)


def test_an_unreachable_device_is_refused_with_nothing_recorded(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", url="sim://no-such-simulator")
    snap = s.watch.finished()
    assert snap.outcome is Outcome.REFUSED and s.engine.session_id is None
    assert any("could not connect to sim://no-such-simulator" in r for r in snap.refusals)


def test_a_real_device_runs_only_the_exact_approved_file(
    engine_env: EngineEnv, tmp_path: Path
) -> None:
    kwargs = {"client_cls": RealLookingClient, "manual_speed": 1.0, "speed": 300}
    # Not approved yet: refused, with the command that fixes it.
    s = engine_env.session("one-zone.yaml", **kwargs)
    snap = s.watch.finished()
    assert snap.outcome is Outcome.REFUSED and not snap.simulated
    assert any(
        r.startswith("Approval: rule: on a real device a protocol runs only as approved")
        and "epm approve" in r
        for r in snap.refusals
    )
    assert not _configure_or_start_sent(s)
    assert s.store.get_session(s.engine.session_id).device_serial == RealLookingClient.SERIAL

    # Approved: it runs, recorded as a real session.
    load_result = load_protocol(protocol_path("one-zone.yaml"))
    approve(s.store, load_result, protocol_path("one-zone.yaml"), "Head technician")
    s = engine_env.session("one-zone.yaml", auto=False, **kwargs)
    s.watch.phase(Phase.PLACE)
    session = s.store.get_session(s.engine.session_id)
    assert not session.simulated and session.protocol_sha256 == load_result.sha256
    s.engine.request(Action.END, "approval test done")
    s.watch.finished()

    # One byte changed after approval: refused, naming the earlier approval.
    edited = tmp_path / "one-zone-edited.yaml"
    edited.write_bytes(protocol_path("one-zone.yaml").read_bytes() + b"# edited\n")
    s = engine_env.session(path=edited, **kwargs)
    snap = s.watch.finished()
    assert any(
        "changed since it was approved" in r and "Head technician" in r for r in snap.refusals
    )

    # A draft never runs on a real device.
    s = engine_env.session("draft.yaml", **kwargs)
    snap = s.watch.finished()
    assert any("draft protocol runs only on the simulator" in r for r in snap.refusals)


def test_a_real_device_needs_the_serum_lot_and_real_time_manual_timers(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session(
        "two-zones.yaml", client_cls=RealLookingClient, serum_lot="", manual_speed=300
    )
    snap = s.watch.finished()
    assert any(r.startswith("Serum: the serum lot number is required") for r in snap.refusals)
    assert any(r.startswith("Clock: manual-step timers 300× faster") for r in snap.refusals)
    # Without a serum lot a real session row cannot be written: nothing is recorded.
    assert s.engine.session_id is None


def test_a_draft_runs_on_the_simulator_labelled_simulated_and_never_counts_in_a_course(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("draft.yaml", speed=600)
    snap = s.watch.finished()
    assert snap.outcome is Outcome.COMPLETED and snap.simulated
    session = s.store.get_session(s.engine.session_id)
    assert session.simulated and session.device_serial.startswith("SIM-")
    assert snap.course is not None and snap.course.done == 0


def test_course_progress_counts_a_completed_real_session(engine_env: EngineEnv) -> None:
    path = protocol_path("limited.yaml")  # a two-minute zone, no manual step
    approve(engine_env.store, load_protocol(path), path, "Head technician")
    s = engine_env.session(
        "limited.yaml", client_cls=RealLookingClient, manual_speed=1.0, speed=600
    )
    before = s.watch.until(lambda x: x.course is not None, what="course progress").course
    assert before is not None and before.done == 0 and before.total == 6
    snap = s.watch.finished()
    assert snap.outcome is Outcome.COMPLETED
    assert snap.course is not None and snap.course.done == 1 and snap.course.next_due is not None
    assert s.engine.course_progress() == snap.course


def test_faults_latched_before_the_session_are_cleared_at_its_start_and_recorded(
    engine_env: EngineEnv,
) -> None:
    sim = engine_env.sim(300)
    with DeviceClient(sim.url()) as earlier:
        earlier.connect()
        earlier.estop()
        assert sim.wait_until(lambda x: x.state is State.FAULT, 5)
    s = engine_env.session("one-zone.yaml", sim=sim, auto=False)
    snap = s.watch.phase(Phase.PLACE)
    assert any("ESTOP were latched before this session" in w for w in snap.warnings)
    assert s.commands()[:2] == ["CLEAR_FAULTS", "CONFIGURE_STEP"]
    assert s.sim.state is State.READY


def test_a_device_that_failed_its_self_test_is_refused(engine_env: EngineEnv) -> None:
    sim = engine_env.sim(300)
    sim.inject("selftest")
    assert sim.wait_until(lambda x: bool(x.faults & Fault.SELFTEST), 5)
    s = engine_env.session("one-zone.yaml", sim=sim)
    snap = s.watch.finished()
    assert any(r.startswith("Device: fault(s) SELFTEST latched") for r in snap.refusals)
    assert "CLEAR_FAULTS" not in s.commands()
