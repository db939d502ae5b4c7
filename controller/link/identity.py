"""Which unit the host is talking to: model, serial and ``boot_id``, pinned across reconnects.

Interface §3 ([1.1]): the host keeps the identity of the unit it handshook with for as long as
a session lasts, across closing and re-opening the port and across re-creating the object that
owns it. A different model or serial after a reconnect is another unit (USB adapters swap names
on re-plug; a ``socket://`` address can reach another box); the same serial with another
``boot_id`` is a restart of the same unit, also when it happened while the port was closed.

:class:`Continuity` is what one :class:`~controller.link.Link` hands the next (a manual
reconnect builds a new one): the pin, the connection epoch and the last seq, so neither the
epoch nor seq numbering ever restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from controller.wire.messages import HelloReply


@dataclass(frozen=True)
class DeviceIdentity:
    """The unit a HELLO_REPLY describes."""

    model: str
    serial: str
    boot_id: int

    @classmethod
    def from_hello(cls, hello: HelloReply) -> DeviceIdentity:
        return cls(hello.model, hello.serial, hello.boot_id)

    def same_unit(self, other: DeviceIdentity) -> bool:
        """Same model and serial (a restart keeps the unit; another serial does not)."""
        return self.model == other.model and self.serial == other.serial

    def with_boot(self, boot_id: int) -> DeviceIdentity:
        return replace(self, boot_id=boot_id)

    def describe(self) -> str:
        return f"{self.model} {self.serial}"


@dataclass(frozen=True)
class Continuity:
    """What carries over from one link to the next to the same port."""

    pinned: DeviceIdentity | None = None
    epoch: int = 0
    last_seq: int = 0
    connection: int = 0
