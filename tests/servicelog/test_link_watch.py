"""The link's health watch on a clock the test moves: one entry per retransmission burst (its
count and span), an entry every BURST_MAX_S while a burst goes on, frame errors when they
change and at most every ERRORS_EVERY_S; reconnect attempts a few lines per outage."""

from __future__ import annotations

import logging

import pytest

from controller.link.health import HealthRecorder, HealthWatch, worth_logging
from controller.wire.codec import FrameDecoder


@pytest.fixture
def recorder() -> HealthRecorder:
    return HealthRecorder(FrameDecoder().counters)


def _watch(recorder: HealthRecorder) -> HealthWatch:
    return HealthWatch(recorder, "sim://x", quiet_s=2.0, burst_max_s=30.0, errors_every_s=10.0)


def _entries(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def test_retransmissions_close_together_are_one_entry_with_count_and_span(
    recorder: HealthRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="epm.link")
    watch = _watch(recorder)
    for t, n in ((10.0, 1), (10.5, 2), (11.0, 1)):  # four resends over one second
        recorder.add("retransmissions", n)
        watch.poll(t)
    watch.poll(12.9)
    assert not _entries(caplog, "retransmit_burst")  # not quiet for 2 s yet
    watch.poll(13.1)
    (burst,) = _entries(caplog, "retransmit_burst")
    assert burst.getMessage() == "4 retransmissions in 1.0 s"
    assert (burst.count, burst.span_s, burst.total, burst.ongoing) == (4, 1.0, 4, False)  # type: ignore[attr-defined]
    recorder.add("retransmissions")
    watch.poll(20.0)
    watch.poll(22.5)
    assert [r.count for r in _entries(caplog, "retransmit_burst")] == [4, 1]  # type: ignore[attr-defined]


def test_a_burst_that_goes_on_is_written_every_burst_max_s(
    recorder: HealthRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="epm.link")
    watch = _watch(recorder)
    t = 0.0
    while t < 65.0:  # a resend every second for 65 s
        recorder.add("retransmissions")
        watch.poll(t)
        t += 1.0
    watch.finish(t)
    bursts = _entries(caplog, "retransmit_burst")
    assert [r.ongoing for r in bursts] == [True, True, False]  # type: ignore[attr-defined]
    assert sum(r.count for r in bursts) == 65  # type: ignore[attr-defined]
    assert "still going on" in bursts[0].getMessage()


def test_frame_errors_are_written_when_they_change_at_most_every_10_s(
    recorder: HealthRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="epm.link")
    watch = _watch(recorder)
    watch.poll(0.0)
    assert not _entries(caplog, "frame_errors")  # nothing to say
    recorder.add("malformed_frames")
    recorder.device_counters(rx_crc_errors=2, rx_frame_errors=0)
    watch.poll(1.0)
    first = _entries(caplog, "frame_errors")
    assert len(first) == 1
    assert first[0].new == {"malformed_frames": 1, "device_rx_crc_errors": 2}  # type: ignore[attr-defined]
    for t in range(2, 11):
        recorder.add("malformed_frames")
        watch.poll(float(t))
    assert len(_entries(caplog, "frame_errors")) == 1  # rate-limited
    watch.poll(11.0)
    second = _entries(caplog, "frame_errors")[-1]
    assert second.new == {"malformed_frames": 9}  # type: ignore[attr-defined]
    assert second.totals["malformed_frames"] == 10  # type: ignore[attr-defined]
    assert "malformed frames +9" in second.getMessage()


def test_a_long_outage_is_a_few_reconnect_lines() -> None:
    logged = [n for n in range(1, 1001) if worth_logging(n)]
    assert logged[:6] == [1, 2, 3, 4, 8, 16]
    assert len(logged) < 25
