"""One line of link health: state, port, round-trip time and the error counters.

Why: a flaky cable shows first as retransmissions and lost telemetry; the practitioner and the
technician see them before they become a lost link. Works from the session's ``LinkView`` or,
outside a session, from the device client's ``LinkHealth``.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from controller.device.views import HealthView as LinkHealth
from controller.session.model import LinkView

STATE_WORDS = {
    "connecting": "connecting…",
    "up": "up",
    "lost": "LOST — reconnecting",
    "reconnecting": "DOWN — reconnecting",
    "closed": "closed",
}


def _rtt(value: float | None) -> str:
    return "--" if value is None else f"{value:.1f} ms"


def link_text(view: LinkView | LinkHealth | None, port: str = "") -> Text:
    """``Link up · sim:// · RTT p50 1.2 ms p99 3.4 ms · retx 0 · CRC 0 · dropped 0 · lost 0``."""
    if view is None:
        return Text("Link: not connected", style="dim")
    if isinstance(view, LinkHealth):
        state = str(view.state)
        dropped = view.frames_dropped
    else:
        state = view.state
        port = view.port or port
        dropped = view.dropped_frames
    healthy = state == "up"
    text = Text()
    text.append("Link ", style="bold")
    text.append(STATE_WORDS.get(state, state), style="bold" if healthy else "bold reverse")
    if port:
        text.append(f" · {port}")
    text.append(f" · RTT p50 {_rtt(view.rtt_p50_ms)} p99 {_rtt(view.rtt_p99_ms)}")
    text.append(f" · retx {view.retransmissions} · CRC {view.crc_errors}")
    text.append(f" · dropped {dropped} · lost {view.telemetry_lost}")
    return text


def run_link_text(view: LinkView | LinkHealth | None, port: str = "") -> Text:
    """The run screen's line, in words: ``Link up · sim://… · round trip 1.2 ms (at worst
    3.4 ms) · no errors``, or the counts of what went wrong (``3 resent, 2 measurements lost``).
    """
    if view is None:
        return Text("Link: not connected", style="dim")
    if isinstance(view, LinkHealth):
        state, dropped = str(view.state), view.frames_dropped
    else:
        state, dropped = view.state, view.dropped_frames
        port = view.port or port
    text = Text()
    text.append("Link ", style="bold")
    text.append(STATE_WORDS.get(state, state), style="bold" if state == "up" else "bold reverse")
    if port:
        text.append(f" · {port}")
    if view.rtt_p50_ms is not None:
        text.append(f" · round trip {_rtt(view.rtt_p50_ms)}")
        if view.rtt_p99_ms is not None:
            text.append(f" (at worst {_rtt(view.rtt_p99_ms)})")
    problems = [
        (view.retransmissions, "resent"),
        (view.crc_errors, "corrupt"),
        (dropped, "dropped"),
        (view.telemetry_lost, "measurements lost"),
    ]
    counted = [f"{count} {word}" for count, word in problems if count]
    text.append(f" · {', '.join(counted)}" if counted else " · no errors")
    return text


class LinkHealthLine(Static):
    """The run screen's link line: call :meth:`show` with a ``LinkView`` or ``LinkHealth``."""

    DEFAULT_CSS = """
    LinkHealthLine {
        width: 100%;
        height: 1;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def show(self, view: LinkView | LinkHealth | None, port: str = "") -> None:
        text = run_link_text(view, port)
        if text != getattr(self, "_last_text", None):
            self._last_text = text
            self.update(text, layout=False)  # always one line
