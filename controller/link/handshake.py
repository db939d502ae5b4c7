"""The handshake and the identity check: a part of the sans-IO core, pure functions and state.

After the port opens (and after a loss or a restart) the core sends HELLO, then SET_TELEMETRY
if a rate other than the default was chosen (HELLO resets it), then GET_STATUS. The
HELLO_REPLY is checked here: the protocol version and model, and which unit answered compared
with the pinned one (interface §3, [1.1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controller.link import texts
from controller.link.errors import (
    HandshakeError,
    HandshakeRefused,
    NoHandshakeReply,
    UnsupportedProtocolVersion,
    WrongDeviceModel,
)
from controller.link.identity import DeviceIdentity
from controller.wire.constants import PROTO_VERSION, MsgType, NakCode
from controller.wire.messages import HelloReply, Message, Nak

EXPECTED_MODEL = "EPM-1"


@dataclass
class HandshakeRun:
    """One handshake in progress. ``first``: the link's first open (its errors fail it)."""

    first: bool
    started: float
    delay: float
    hello_frames: int = 0
    retry_at: float | None = None


class Verdict(StrEnum):
    """Which unit a HELLO_REPLY names, compared with the pinned one."""

    NEW = "new"
    """Nothing was pinned yet: pin this one."""
    SAME = "same"
    """The pinned unit, same boot (or a restart already reported)."""
    RESTARTED = "restarted"
    """The pinned unit with another ``boot_id``: it restarted (maybe while the port was shut)."""
    OTHER = "other"
    """Another model or serial: another unit."""


def identify(
    pinned: DeviceIdentity | None, found: DeviceIdentity, reported_boot: int | None
) -> Verdict:
    if pinned is None:
        return Verdict.NEW
    if not pinned.same_unit(found):
        return Verdict.OTHER
    if found.boot_id in (pinned.boot_id, reported_boot):
        return Verdict.SAME
    return Verdict.RESTARTED


def hello_error(msg: Message, url: str, pinned: DeviceIdentity | None) -> HandshakeError | None:
    """Why this answer to HELLO ends the handshake (None: it may go on)."""
    if isinstance(msg, Nak):
        if msg.code == NakCode.UNSUPPORTED_VERSION:
            return UnsupportedProtocolVersion(
                texts.nak_version(url), url=url, detail="NAK UNSUPPORTED_VERSION", version=0
            )
        return HandshakeRefused(texts.hello_refused(url, msg), url=url)
    if not isinstance(msg, HelloReply):  # pragma: no cover - reply_fits guarantees it
        return HandshakeRefused(f"Unexpected answer to HELLO: {msg!r}", url=url)
    if msg.proto_version != PROTO_VERSION:
        return UnsupportedProtocolVersion(
            texts.other_version(url, msg.proto_version),
            url=url,
            detail=f"HELLO_REPLY proto_version={msg.proto_version}",
            version=msg.proto_version,
        )
    if msg.model != EXPECTED_MODEL and pinned is None:  # with a pin it is another unit
        return WrongDeviceModel(texts.wrong_model(url, msg), url=url, model=msg.model)
    return None


def attempt_failed(
    run: HandshakeRun,
    mtype: MsgType,
    now: float,
    *,
    url: str,
    baud: int,
    timeout: float,
    backoff_max: float,
) -> HandshakeError | None:
    """A handshake request got no reply after all its sends: when to try again (sets
    ``run.retry_at``), or the error that ends a first open."""
    if not run.first:
        run.retry_at = now + run.delay
        run.delay = min(run.delay * 2, backoff_max)
        return None
    if mtype is not MsgType.HELLO:
        return NoHandshakeReply(texts.no_status(url), url=url)
    elapsed = now - run.started
    if elapsed >= timeout:
        message = texts.no_hello(url, baud, run.hello_frames, elapsed)
        return NoHandshakeReply(message, url=url, attempts=run.hello_frames, seconds=elapsed)
    run.retry_at = now
    return None
