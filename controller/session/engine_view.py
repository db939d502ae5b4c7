"""Turning the engine's state into the immutable views of :mod:`controller.session.model`.

Why here: the snapshot is read by the UI 15-20 times a second from another thread; these small
pure functions build it from values the engine copied under its lock, so the UI never sees a
half-updated state and building it never waits for the port or the disk.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.device import DeviceInfo
from controller.link import LinkHealth
from controller.session.model import DeviceView, LinkView, LiveView, StepStatus, StepView
from controller.session.preflight import PlannedStep
from controller.wire import Contact, Fault, Handpiece, State, Telemetry


def state_name(value: int | None) -> str:
    if value is None:
        return "unknown"
    try:
        return State(value).name
    except ValueError:
        return f"unknown ({value})"


def contact_name(value: int | None) -> str:
    if value is None:
        return "unknown"
    try:
        return Contact(value).name.lower()
    except ValueError:
        return f"unknown ({value})"


def step_views(
    steps: Sequence[PlannedStep], current_pos: int | None, current_delivered_ms: int
) -> tuple[StepView, ...]:
    """One view per planned step; the current one adds its live delivered time."""
    views = []
    for planned in steps:
        delivered = planned.delivered_ms
        status = planned.status
        if planned.pos == current_pos:
            delivered += current_delivered_ms
            if status is StepStatus.PENDING:
                status = StepStatus.ACTIVE
        views.append(
            StepView(
                index=planned.index,
                kind=planned.kind,
                title=planned.title,
                zone=planned.zone,
                planned_ms=planned.planned_ms,
                delivered_ms=min(delivered, planned.planned_ms) if planned.is_delivery else 0,
                status=status,
                amplitude_max_dv=planned.amplitude_max_dv,
                instructions=planned.instructions,
            )
        )
    return tuple(views)


def live_view(
    telemetry: Telemetry | None,
    received_at: float | None,
    setpoint_dv: int | None,
    current_limit_ua: int | None,
    now: float,
) -> LiveView | None:
    if telemetry is None or received_at is None:
        return None
    return LiveView(
        device_state=state_name(telemetry.state),
        amplitude_dv=telemetry.amplitude_dv,
        setpoint_dv=setpoint_dv or 0,
        current_ua=telemetry.current_ua,
        current_limit_ua=current_limit_ua or 0,
        impedance_ohm=telemetry.impedance_ohm,
        temperature_dc=telemetry.temperature_dc,
        contact=contact_name(telemetry.contact),
        faults=tuple(Fault(telemetry.faults).names()),
        age_s=max(0.0, now - received_at),
    )


def link_view(health: LinkHealth, port: str) -> LinkView:
    return LinkView(
        state=str(health.state),
        port=port,
        crc_errors=health.crc_errors,
        dropped_frames=health.frames_dropped,
        retransmissions=health.retransmissions,
        rtt_p50_ms=health.rtt_p50_ms,
        rtt_p99_ms=health.rtt_p99_ms,
        telemetry_received=health.telemetry_received,
        telemetry_lost=health.telemetry_lost,
        last_frame_age_s=health.last_frame_age_s,
    )


def device_view(info: DeviceInfo, handpiece: Handpiece | None) -> DeviceView:
    hp = handpiece if handpiece is not None else info.handpiece
    return DeviceView(
        model=info.model,
        serial=info.serial,
        firmware=info.firmware,
        handpiece=hp.name,
        simulated=info.is_simulator,
    )
