"""Today's sessions on the home screen: time, client, protocol, outcome, simulated or not.

Why: the practitioner sees at a glance who was treated today and how each session ended (an
interrupted or faulted session needs a follow-up).
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import DataTable

from controller.records import SessionRecord
from controller.records.models import local


class TodaySessions(DataTable[str]):
    """A read-only table; call :meth:`show` with ``store.today_sessions()``."""

    DEFAULT_CSS = """
    TodaySessions {
        height: 1fr;
        min-height: 3;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.add_columns("Time", "Client", "Protocol", "Outcome", "")

    def show(self, sessions: Sequence[SessionRecord]) -> None:
        self.clear()
        for record in sessions:
            self.add_row(
                local(record.started_at, "%H:%M"),
                record.client_code,
                f"{record.protocol_id} v{record.protocol_version}",
                record.outcome,
                "SIM" if record.simulated else "",
                key=str(record.id),
            )
