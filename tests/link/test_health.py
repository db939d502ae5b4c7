"""Health snapshot: counters, RTT percentiles over a rolling window, frame age."""

from __future__ import annotations

import pytest

from controller.link.health import RTT_WINDOW, HealthRecorder, LinkState, percentile
from controller.wire.codec import DropCounters


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_snapshot_reports_counters_rtt_and_decoder_drops() -> None:
    counters = DropCounters()
    rec = HealthRecorder(counters)
    rec.add("retransmissions", 2)
    rec.add("telemetry_lost", 5)
    for ms in range(1, 11):
        rec.rtt(ms / 1000)
    counters.crc += 3
    counters.cobs += 1
    rec.frame_seen(100.0)
    rec.device_counters(4, 6)
    snap = rec.snapshot(LinkState.UP, now=100.25)
    assert snap.state is LinkState.UP
    assert snap.retransmissions == 2
    assert snap.telemetry_lost == 5
    assert snap.rtt_p50_ms == pytest.approx(5.0)
    assert snap.rtt_p99_ms == pytest.approx(10.0)
    assert snap.rtt_samples == 10
    assert (snap.crc_errors, snap.cobs_errors, snap.frames_dropped) == (3, 1, 4)
    assert snap.last_frame_age_s == pytest.approx(0.25)
    assert (snap.device_rx_crc_errors, snap.device_rx_frame_errors) == (4, 6)


def test_rtt_window_keeps_only_recent_requests() -> None:
    rec = HealthRecorder(DropCounters())
    for _ in range(RTT_WINDOW):
        rec.rtt(1.0)
    for _ in range(RTT_WINDOW):
        rec.rtt(0.001)
    snap = rec.snapshot(LinkState.UP)
    assert snap.rtt_samples == RTT_WINDOW
    assert snap.rtt_p99_ms == pytest.approx(1.0)


def test_empty_snapshot_has_no_rtt_or_age() -> None:
    snap = HealthRecorder(DropCounters()).snapshot(LinkState.CLOSED)
    assert snap.rtt_p50_ms is None and snap.last_frame_age_s is None
    assert snap.device_rx_crc_errors is None
