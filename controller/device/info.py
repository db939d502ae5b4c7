"""Typed views of what the device tells about itself: DeviceInfo (HELLO_REPLY) and Status.

The wire messages carry raw integers; these frozen types carry enums and units so the session
engine and the UI never decode bit fields themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from controller.wire import messages as wire
from controller.wire.constants import Fault, Handpiece, State, Waveform, is_simulator_serial


class DeviceProtocolError(ValueError):
    """The device sent a value the interface document does not define."""


_E = TypeVar("_E", State, Handpiece)


def _enum(cls: type[_E], value: int, what: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        raise DeviceProtocolError(f"the device reported an undefined {what} {value}") from None


@dataclass(frozen=True)
class Capabilities:
    """The device's limits from HELLO_REPLY, in device units."""

    max_amplitude_dv: int
    max_current_ua: int
    pulse_width_min_us: int
    pulse_width_max_us: int
    frequency_min_hz: int
    frequency_max_hz: int
    max_step_ms: int
    waveforms: frozenset[Waveform]
    max_telemetry_hz: int

    @classmethod
    def from_hello(cls, hello: wire.HelloReply) -> Capabilities:
        return cls(
            max_amplitude_dv=hello.max_amplitude_dv,
            max_current_ua=hello.max_current_ua,
            pulse_width_min_us=hello.pulse_width_min_us,
            pulse_width_max_us=hello.pulse_width_max_us,
            frequency_min_hz=hello.frequency_min_hz,
            frequency_max_hz=hello.frequency_max_hz,
            max_step_ms=hello.max_step_ms,
            waveforms=frozenset(w for w in Waveform if hello.waveforms & (1 << (w.value - 1))),
            max_telemetry_hz=hello.max_telemetry_hz,
        )


@dataclass(frozen=True)
class DeviceInfo:
    """Who the device is and what it can do, from the latest handshake."""

    model: str
    serial: str
    firmware: str
    boot_id: int
    capabilities: Capabilities
    handpiece: Handpiece
    is_simulator: bool
    url: str
    baud: int
    proto_version: int

    @classmethod
    def from_hello(cls, hello: wire.HelloReply, url: str, baud: int) -> DeviceInfo:
        return cls(
            model=hello.model,
            serial=hello.serial,
            firmware=f"{hello.fw_major}.{hello.fw_minor}.{hello.fw_patch}",
            boot_id=hello.boot_id,
            capabilities=Capabilities.from_hello(hello),
            handpiece=_enum(Handpiece, hello.handpiece, "handpiece"),
            is_simulator=is_simulator_serial(hello.serial),
            url=url,
            baud=baud,
            proto_version=hello.proto_version,
        )


@dataclass(frozen=True)
class Status:
    """The device's authoritative state (STATUS), with enums in place of raw codes."""

    boot_id: int
    state: State
    faults: Fault
    step_id: int
    step_elapsed_ms: int
    step_duration_ms: int
    handpiece: Handpiece
    amplitude_dv: int
    rx_crc_errors: int
    rx_frame_errors: int

    @classmethod
    def from_wire(cls, status: wire.Status) -> Status:
        return cls(
            boot_id=status.boot_id,
            state=_enum(State, status.state, "state"),
            faults=Fault(status.faults),
            step_id=status.step_id,
            step_elapsed_ms=status.step_elapsed_ms,
            step_duration_ms=status.step_duration_ms,
            handpiece=_enum(Handpiece, status.handpiece, "handpiece"),
            amplitude_dv=status.amplitude_dv,
            rx_crc_errors=status.rx_crc_errors,
            rx_frame_errors=status.rx_frame_errors,
        )
