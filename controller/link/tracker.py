"""Checks on the device's own frames: ``dseq`` gaps and signs that the device restarted.

Pure logic, no I/O or threads, so every rule is unit-tested directly. The link feeds it every
TELEMETRY, EVENT and STATUS and acts on the verdicts (GET_STATUS after a gap, re-handshake
after a restart).

Choices where the interface document is silent: TELEMETRY and EVENT ``t_ms`` are checked
against the previous frame *of the same type*, because an EVENT may carry the time its
change happened and follow a TELEMETRY sampled a few ms later; a device restart resets
``dseq`` tracking (no gap is reported for the restarted device's first frame).
"""

from __future__ import annotations

from typing import NamedTuple

from controller.wire.messages import Event, Status, Telemetry
from controller.wire.sequence import dseq_is_newer, dseq_lost

_U32 = 0x1_0000_0000


class Verdict(NamedTuple):
    """What one device frame revealed: frames lost before it, and a restart (with reason)."""

    lost: int = 0
    restart: str | None = None
    old_boot_id: int | None = None
    new_boot_id: int | None = None


OK = Verdict()


def clock_went_backwards(previous: int, current: int) -> bool:
    """Whether the u32 ms clock went backwards (a wrap past 2³² ms counts as forwards)."""
    return (current - previous) % _U32 > _U32 // 2


class StreamTracker:
    """Remembers the handshake's ``boot_id``, the last ``dseq`` and the last ``t_ms`` values."""

    def __init__(self) -> None:
        self.boot_id: int | None = None
        self._dseq: int | None = None
        self._t_telemetry: int | None = None
        self._t_event: int | None = None

    def handshake(self, boot_id: int) -> None:
        """A HELLO_REPLY arrived: this is the device now.

        HELLO does not reset the device's ``dseq`` or clock, so with the same ``boot_id`` the
        stream checks continue; a different one starts them over.
        """
        if boot_id != self.boot_id:
            self._dseq = None
            self._t_telemetry = None
            self._t_event = None
        self.boot_id = boot_id

    def forget(self) -> None:
        """The port was reopened: start over (the handshake will set ``boot_id`` again)."""
        self.boot_id = None
        self._dseq = None
        self._t_telemetry = None
        self._t_event = None

    def on_telemetry(self, tel: Telemetry) -> Verdict:
        if self.boot_id is not None and tel.boot_id != self.boot_id:
            return self._restarted(
                f"boot_id changed from 0x{self.boot_id:04X} to 0x{tel.boot_id:04X}",
                tel.boot_id,
                tel.dseq,
                t_telemetry=tel.t_ms,
            )
        if self._t_telemetry is not None and clock_went_backwards(self._t_telemetry, tel.t_ms):
            return self._restarted(
                f"device clock went backwards from {self._t_telemetry} ms to {tel.t_ms} ms",
                tel.boot_id,
                tel.dseq,
                t_telemetry=tel.t_ms,
            )
        self._t_telemetry = tel.t_ms
        return Verdict(lost=self._advance(tel.dseq))

    def on_event(self, event: Event) -> Verdict:
        if self._t_event is not None and clock_went_backwards(self._t_event, event.t_ms):
            return self._restarted(
                f"device clock went backwards from {self._t_event} ms to {event.t_ms} ms",
                self.boot_id,
                event.dseq,
                t_event=event.t_ms,
            )
        self._t_event = event.t_ms
        return Verdict(lost=self._advance(event.dseq))

    def on_status(self, status: Status) -> Verdict:
        if self.boot_id is not None and status.boot_id != self.boot_id:
            old = self.boot_id
            self.boot_id = status.boot_id
            self._dseq = None
            self._t_telemetry = None
            self._t_event = None
            return Verdict(
                restart=f"boot_id changed from 0x{old:04X} to 0x{status.boot_id:04X}",
                old_boot_id=old,
                new_boot_id=status.boot_id,
            )
        return OK

    def _advance(self, dseq: int) -> int:
        """Frames lost before ``dseq``; a repeated or older ``dseq`` loses none and is not
        taken as the new position."""
        lost = dseq_lost(self._dseq, dseq)
        if dseq_is_newer(dseq, self._dseq):
            self._dseq = dseq
        return lost

    def _restarted(
        self,
        reason: str,
        boot_id: int | None,
        dseq: int,
        *,
        t_telemetry: int | None = None,
        t_event: int | None = None,
    ) -> Verdict:
        old = self.boot_id
        self.boot_id = boot_id
        self._dseq = dseq
        self._t_telemetry = t_telemetry
        self._t_event = t_event
        return Verdict(restart=reason, old_boot_id=old, new_boot_id=boot_id)
