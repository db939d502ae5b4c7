"""The link's sentences for operators and technicians, kept apart from its logic.

Every message says what happened and what to do about it; the library's or the operating
system's own words go into an error's ``detail``, never instead of the sentence.
"""

from __future__ import annotations

from controller.link.identity import DeviceIdentity
from controller.link.states import LinkState
from controller.wire.constants import RETRIES, Fault, MsgType, NakCode, State
from controller.wire.messages import HelloReply, Message, Nak, Status

PORT_FAILED = "the port failed (unplugged?) before the device answered"
LOST = "the link was lost before the device answered"
RESTARTED = "the device restarted before it answered"
CLOSED = "the link was closed"
GAVE_UP = "the link gave up reconnecting"


def state_name(value: int) -> str:
    try:
        return State(value).name
    except ValueError:
        return f"unknown ({value})"


def nak_text(reply: Message) -> str:
    if isinstance(reply, Nak):
        try:
            code = NakCode(reply.code).name
        except ValueError:
            code = str(reply.code)
        return f"NAK {code}, detail {reply.detail}"
    return type(reply).__name__


def link_up(url: str, baud: int, status: Status) -> str:
    return f"Connected on {url} at {baud} baud; device state {state_name(status.state)}."


def reconnected(url: str, status: Status) -> str:
    faults = ", ".join(Fault(status.faults).names())
    fault_text = f" with fault(s) {faults}" if faults else ""
    return (
        f"Reconnected on {url}; device state {state_name(status.state)}{fault_text}. Delivery "
        f"does not resume by itself: check the device and decide."
    )


def link_down(url: str, reason: str) -> str:
    return (
        f"Lost the port {url} ({reason}). It was closed; reconnecting. Device state unknown; "
        f"the device's watchdog turns any output off within 0.5 s."
    )


def link_lost(url: str, reason: str, estop: bool) -> str:
    sent = " ESTOP sent (best effort)." if estop else ""
    return (
        f"Lost the link to the device on {url}: {reason}.{sent} Device state unknown until "
        f"reconnected; reconnecting."
    )


def port_failed_in_handshake(url: str) -> str:
    return f"The port {url} failed during the handshake (unplugged?). Check the cable."


def gave_up(url: str, seconds: float) -> str:
    return (
        f"Gave up reconnecting to {url} within {seconds:g} s. The link is closed; the device's "
        f"watchdog has turned any output off. Check the device and the cable, then connect "
        f"again."
    )


def gave_up_refused(url: str, error: Exception) -> str:
    return (
        f"Gave up reconnecting to {url}: {error} The link is closed; the device's watchdog has "
        f"turned any output off."
    )


def busy(mtype: MsgType, limit: int) -> str:
    return f"{mtype.name} not sent: {limit} requests are already waiting for the link."


def cancelled(mtype: MsgType) -> str:
    return f"{mtype.name} abandoned: no answer came in time (a stuck link); check the device."


def not_sent(mtype: MsgType, reason: str) -> str:
    return f"{mtype.name} not sent ({reason}); the device never saw it."


def not_up(mtype: MsgType, state: LinkState) -> str:
    why = {
        LinkState.CONNECTING: "the link is (re)connecting to the device",
        LinkState.LOST: "the device stopped answering; the link is trying to reconnect",
        LinkState.RECONNECTING: "the port was lost (unplugged?); the link is reopening it",
    }.get(state, "the link is not up")
    return f"{mtype.name} not sent: {why}."


def stale(mtype: MsgType, decided: int | None, epoch: int) -> str:
    return (
        f"{mtype.name} not sent: it was decided before the connection changed (epoch "
        f"{decided}, now {epoch}: a loss, a reconnect, a restart or an emergency stop came in "
        f"between). Read the device's status and decide again."
    )


def other_unit_refusal(mtype: MsgType, pinned: DeviceIdentity, other: DeviceIdentity) -> str:
    return (
        f"{mtype.name} not sent: another unit ({other.describe()}) answered instead of "
        f"{pinned.describe()}. It gets nothing but a status read until the operator confirms "
        f"it on the device screen."
    )


def unit_changed(url: str, pinned: DeviceIdentity, found: DeviceIdentity) -> str:
    return (
        f"Another unit answered on {url}: expected {pinned.describe()}, found "
        f"{found.describe()}. Nothing is sent to it but a status read (and an emergency stop "
        f"if it is delivering); no session continues on it."
    )


def adopted(identity: DeviceIdentity) -> str:
    return f"The operator confirmed {identity.describe()} as the unit to use."


def abandoned(mtype: MsgType) -> str:
    return f"no reply to {mtype.name} before its time ran out after an emergency stop"


def no_reply_reason(mtype: MsgType) -> str:
    return f"the device did not answer {mtype.name} after {RETRIES + 1} sends"


def outcome_unknown(mtype: MsgType, reason: str) -> str:
    return (
        f"Outcome of {mtype.name} unknown: {reason}. It may or may not have taken effect; the "
        f"controller will not send it again. Check the device status after reconnecting and "
        f"decide."
    )


def outcome_unknown_event(mtype: MsgType) -> str:
    return (
        f"Outcome of {mtype.name} unknown: the link failed before the device answered. It will "
        f"not be sent again; check the device status after reconnecting and decide."
    )


def estop_sent(seq: int) -> str:
    return f"ESTOP written (seq {seq})."


def estop_unconfirmed() -> str:
    return (
        f"ESTOP was sent {RETRIES + 1} times without acknowledgement. Use the device's own stop "
        f"button and check it."
    )


def restarted(reason: str) -> str:
    return (
        f"The device restarted ({reason}). Everything known about its state is void and any "
        f"delivery has stopped; re-handshaking."
    )


def gap(lost: int) -> str:
    return f"{lost} frame(s) from the device were lost; reading its status."


def refreshed(status: Status) -> str:
    return (
        f"Device status read after lost frames: state {state_name(status.state)}, faults "
        f"{', '.join(Fault(status.faults).names()) or 'none'}."
    )


def supervision_lost(age: float | None) -> str:
    since = "never checked in" if age is None else f"not checked in for {age * 1000:.0f} ms"
    return (
        f"The session supervision has {since} while the device is active: the link stopped "
        f"writing frames of its own, so the device's watchdog turns output off."
    )


def nak_version(url: str) -> str:
    return (
        f"The device on {url} does not support protocol version 1, the only one this "
        f"controller speaks. Update the controller or the device firmware so both use version 1."
    )


def other_version(url: str, version: int) -> str:
    return (
        f"The device on {url} speaks protocol version {version}; this controller speaks version "
        f"1 only. Update the controller or the device firmware."
    )


def hello_refused(url: str, reply: Message) -> str:
    return f"The device on {url} refused HELLO ({nak_text(reply)})."


def wrong_model(url: str, hello: HelloReply) -> str:
    return (
        f"The device on {url} is a {hello.model!r} (serial {hello.serial!r}), not an EPM-1. "
        f"Check that this is the treatment unit's port."
    )


def status_refused(url: str, reply: Message) -> str:
    return f"The device on {url} refused GET_STATUS ({nak_text(reply)})."


def no_hello(url: str, baud: int, frames: int, seconds: float) -> str:
    return (
        f"No EPM-1 answered on {url} at {baud} baud: HELLO was sent {frames} times over "
        f"{seconds:.1f} s without a reply. Is this the right port, is the device switched on, "
        f"and is it set to {baud} baud (EPM-1 runs at 115200, 230400, 460800 or 921600)?"
    )


def no_status(url: str) -> str:
    return (
        f"The device on {url} answered HELLO but not GET_STATUS after {RETRIES + 1} sends; the "
        f"link is unreliable. Check the cable and the baud rate."
    )
