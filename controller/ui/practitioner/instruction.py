"""What to do next, big and clear: the phase badge, the step and zone, and the engine's message.

Why: the practitioner's eyes are on the client; one glance must tell them the state and the
next action. The text is the engine's ``SessionSnapshot.message``; this widget decides nothing.
On a manual step with a minimum time it also says how long to wait before Enter confirms it
("wait 4 min 12 s"), in words, as every duration in a sentence on this screen.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from controller.session.model import Phase, SessionSnapshot
from controller.ui.practitioner.run_text import duration_words
from controller.ui.shared import formatting as fmt

#: Phases shown with the attention style (output off for a reason the practitioner must see).
ATTENTION_PHASES = frozenset(
    {Phase.HOLD, Phase.FAULT, Phase.LINK_LOST, Phase.RECOVERY, Phase.REFUSED}
)


def manual_wait_s(snap: SessionSnapshot) -> int | None:
    """Whole seconds (rounded up) before a manual step's minimum time is over; None: no timer."""
    if snap.phase is not Phase.MANUAL or snap.manual_remaining_ms is None:
        return None
    return (max(0, snap.manual_remaining_ms) + 999) // 1000


def manual_line(snap: SessionSnapshot) -> str:
    """``Minimum time: wait 4 min 12 s, then Enter when done.`` (empty without a timer)."""
    wait = manual_wait_s(snap)
    if wait is None:
        return ""
    if wait > 0:
        return f"Minimum time: wait {duration_words(wait * 1000)}, then press Enter when done."
    return "Minimum time is over: press Enter when the step is done."


def instruction_text(snap: SessionSnapshot) -> Text:
    text = Text()
    text.append(f" {fmt.PHASE_LABELS.get(snap.phase, snap.phase.value.upper())} ", "bold reverse")
    step = snap.current_step
    if step is not None:
        where = fmt.zone(step.zone) if step.kind == "delivery" and step.zone else step.title
        text.append(f"  Step {step.index} of {len(snap.steps)}: {where}", style="bold")
    text.append("\n")
    if snap.phase is Phase.REFUSED and snap.refusals:
        text.append(
            "Nothing was delivered. Fix this, then start again (Esc goes back):", style="bold"
        )
        for reason in snap.refusals:
            text.append(f"\n • {reason}")
    else:
        text.append(snap.message or "", style="bold")
    if step is not None and step.kind == "manual" and step.instructions:
        text.append(f"\n{step.instructions}")
    timer = manual_line(snap)
    if timer:
        text.append(f"\n{timer}", style="bold")
    if snap.notices:
        text.append(f"\n{snap.notices[-1]}", style="italic")
    return text


class Instruction(Static):
    """Call :meth:`show` with the latest snapshot."""

    DEFAULT_CSS = """
    Instruction {
        width: 100%;
        height: auto;
        min-height: 2;
        padding: 0 1;
        border-left: thick $primary;
        background: $boost;
    }
    Instruction.-attention {
        border-left: thick $accent;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._key: object = None

    def show(self, snap: SessionSnapshot) -> None:
        self.set_class(snap.phase in ATTENTION_PHASES, "-attention")
        step = snap.current_step
        # Only what the text shows: the step's delivered time changes every tick and must not
        # cause a redraw (and a layout pass) of this widget; the manual wait, once a second.
        shown_step = (
            (step.index, step.kind, step.zone, step.title, step.instructions) if step else None
        )
        key = (
            snap.phase,
            snap.message,
            snap.refusals,
            snap.notices,
            shown_step,
            len(snap.steps),
            manual_wait_s(snap),
        )
        if key == self._key:
            return
        self._key = key
        self.update(instruction_text(snap))
