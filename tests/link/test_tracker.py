"""dseq gaps (16-bit wrap) and device-restart detection (boot_id, t_ms backwards, 2³² wrap)."""

from __future__ import annotations

from controller.link.tracker import StreamTracker, clock_went_backwards
from controller.wire.messages import Event, Status, Telemetry


def tel(dseq: int, t_ms: int = 1000, boot_id: int = 7) -> Telemetry:
    return Telemetry(dseq, boot_id, t_ms, 1, 0, 0, 0, 0, 0, 1000, 330, 1)


def status(boot_id: int) -> Status:
    return Status(boot_id, 1, 0, 0, 0, 0, 1, 0, 0, 0)


def test_consecutive_dseq_is_no_gap_across_the_16_bit_wrap() -> None:
    tr = StreamTracker()
    tr.handshake(7)
    assert [tr.on_telemetry(tel(d, t)).lost for t, d in enumerate([65534, 65535, 0, 1])] == [
        0,
        0,
        0,
        0,
    ]


def test_gap_counts_lost_frames_including_across_wrap() -> None:
    tr = StreamTracker()
    tr.handshake(7)
    tr.on_telemetry(tel(65534, 1))
    assert tr.on_telemetry(tel(2, 2)).lost == 3  # 65535, 0, 1 lost


def test_events_and_telemetry_share_one_dseq() -> None:
    tr = StreamTracker()
    tr.handshake(7)
    tr.on_telemetry(tel(10, 100))
    assert tr.on_event(Event(11, 100, 1, 0)).lost == 0
    assert tr.on_telemetry(tel(13, 120)).lost == 1


def test_boot_id_change_is_a_restart_and_resets_tracking() -> None:
    tr = StreamTracker()
    tr.handshake(7)
    tr.on_telemetry(tel(500, 90_000))
    verdict = tr.on_telemetry(tel(0, 5, boot_id=8))
    assert verdict.restart is not None and "boot_id" in verdict.restart
    assert (verdict.old_boot_id, verdict.new_boot_id) == (7, 8)
    assert verdict.lost == 0
    # the restarted device's next frame is judged against the new stream
    assert tr.on_telemetry(tel(1, 25, boot_id=8)) == (0, None, None, None)


def test_no_restart_before_the_first_handshake() -> None:
    tr = StreamTracker()
    assert tr.on_telemetry(tel(3, boot_id=99)).restart is None


def test_t_ms_backwards_is_a_restart_but_a_wrap_is_not() -> None:
    tr = StreamTracker()
    tr.handshake(7)
    tr.on_telemetry(tel(1, 0xFFFF_FFF0))
    assert tr.on_telemetry(tel(2, 0x10)).restart is None  # wrapped past 2³² ms
    assert tr.on_telemetry(tel(3, 0x05)).restart is not None


def test_clock_went_backwards() -> None:
    assert clock_went_backwards(1000, 999)
    assert not clock_went_backwards(1000, 1000)
    assert not clock_went_backwards(1000, 1001)
    assert not clock_went_backwards(0xFFFF_FFFF, 0)


def test_event_clock_is_checked_against_events_only() -> None:
    tr = StreamTracker()
    tr.handshake(7)
    tr.on_telemetry(tel(1, 5000))
    # an event may carry the earlier time its change happened
    assert tr.on_event(Event(2, 4995, 1, 0)).restart is None
    assert tr.on_event(Event(3, 100, 1, 0)).restart is not None


def test_status_with_other_boot_id_is_a_restart() -> None:
    tr = StreamTracker()
    tr.handshake(7)
    assert tr.on_status(status(7)).restart is None
    verdict = tr.on_status(status(9))
    assert verdict.restart is not None and verdict.new_boot_id == 9


def test_handshake_with_same_boot_keeps_dseq_tracking() -> None:
    tr = StreamTracker()
    tr.handshake(7)
    tr.on_telemetry(tel(10, 100))
    tr.handshake(7)
    assert tr.on_telemetry(tel(12, 110)).lost == 1
    tr.handshake(8)
    assert tr.on_telemetry(tel(0, 5, boot_id=8)).lost == 0
