"""A protocol's summary for choosing it: zones and times, parameters, course, warnings, and
why it may not run on this device.

Why: the practitioner confirms they picked the right protocol for the client before the
checklist; a protocol that may not run says which rule stops it and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import Static

from controller.ui.shared import formatting as fmt
from protocols import DeliveryStep, ManualStep


def step_parameters(step: DeliveryStep) -> str:
    if step.waveform.phases == 2:
        shape = "biphasic"
    elif step.polarity is not None:
        polarity = fmt.POLARITY_WORDS.get(step.polarity.value, fmt.words(step.polarity.value))
        shape = f"monophasic, {polarity}"
    else:
        shape = "monophasic"
    parts = [
        shape,
        f"{step.amplitude_v:g}→{step.amplitude_max_v:g} V",
        f"{step.pulse_width_us:g} µs",
        f"{step.frequency_hz:g} Hz",
    ]
    if step.burst is not None:
        parts.append(f"bursts {step.burst.on_ms:g}/{step.burst.off_ms:g} ms")
    parts.append(f"≤ {step.current_limit_ma:g} mA")
    return " · ".join(parts)


def summary_text(load_result: Any, refusals: Sequence[str] = ()) -> Text:
    """Everything the practitioner checks before choosing ``load_result``'s protocol."""
    text = Text()
    protocol = load_result.protocol
    if protocol is None:
        text.append(f"{load_result.path.name}: not a valid protocol file\n", style="bold")
        for problem in load_result.errors[:5]:
            text.append(f" • line {problem.line}: {fmt.plain_words(problem.message)}\n")
        for reason in refusals:
            text.append(f" • {fmt.plain_words(reason)}\n")
        return text
    text.append(f"{protocol.title}\n", style="bold")
    text.append(
        f"{protocol.id} v{protocol.version} · {protocol.status.value} · "
        f"{fmt.words(protocol.handpiece.value)} · serum {protocol.serum.name}\n"
    )
    text.append(
        f"Course: {protocol.course.sessions} sessions, every {protocol.course.interval_days} days"
    )
    if protocol.course.maintenance_interval_days:
        text.append(f", then every {protocol.course.maintenance_interval_days} days")
    text.append(
        f" · session {fmt.seconds(protocol.total_session_s)}, "
        f"delivery {fmt.seconds(protocol.total_delivery_s)}\n"
    )
    for number, step in enumerate(protocol.steps, start=1):
        if isinstance(step, ManualStep):
            timer = fmt.seconds(step.duration_s) if step.duration_s else "no timer"
            text.append(f"{number:>2}. manual: {step.title} ({timer})\n")
        else:
            text.append(
                f"{number:>2}. {fmt.zone(step.zone.value)} {fmt.seconds(step.duration_s)}"
                f": {step_parameters(step)}\n"
            )
    for problem in load_result.warnings:
        text.append(f"Warning: {fmt.plain_words(problem.message)}\n", style="italic")
    if refusals:
        text.append("Cannot run on this device:\n", style="bold reverse")
        for reason in refusals:
            text.append(f" • {fmt.plain_words(reason)}\n")
    return text


class ProtocolSummary(Static):
    """Call :meth:`show` with a ``LoadResult`` and its ``check_runnable`` reasons."""

    DEFAULT_CSS = """
    ProtocolSummary {
        width: 100%;
        height: auto;
        padding: 0 1;
    }
    """

    def show(self, load_result: Any | None, refusals: Sequence[str] = ()) -> None:
        if load_result is None:
            self.update(Text("Choose a protocol to see its summary.", style="dim"))
            return
        self.update(summary_text(load_result, refusals))
