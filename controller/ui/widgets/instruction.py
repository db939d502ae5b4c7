"""What to do next, big and clear: the phase badge, the zone, and the engine's message.

Why: the practitioner's eyes are on the client; one glance must tell them the state and the
next action. The text is the engine's ``SessionSnapshot.message``; this widget decides nothing.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from controller.session.model import Phase, SessionSnapshot
from controller.ui.widgets import formatting as fmt

#: Phases shown with the attention style (output off for a reason the practitioner must see).
ATTENTION_PHASES = frozenset(
    {Phase.HOLD, Phase.FAULT, Phase.LINK_LOST, Phase.RECOVERY, Phase.REFUSED}
)


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
    if snap.notices:
        text.append(f"\n{snap.notices[-1]}", style="italic")
    return text


class Instruction(Static):
    """Call :meth:`show` with the latest snapshot."""

    DEFAULT_CSS = """
    Instruction {
        width: 100%;
        height: auto;
        min-height: 3;
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
        # cause a redraw (and a layout pass) of this widget.
        shown_step = (
            (step.index, step.kind, step.zone, step.title, step.instructions) if step else None
        )
        key = (snap.phase, snap.message, snap.refusals, snap.notices, shown_step, len(snap.steps))
        if key == self._key:
            return
        self._key = key
        self.update(instruction_text(snap))
