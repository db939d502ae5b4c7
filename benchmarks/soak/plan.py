"""What the soak runs: the protocols, every session's fault story, and the outcome expected.

The expectation table (:data:`EXPECTED`) is the one place that says which outcome each story
must end in, and why. A story is a row of the fault × outcome matrix: a catalogue fault, the
variant of it (how long it lasts, what the practitioner decides) and, for the combinations, the
situation it meets (a reconnect, a pause, a ramp-down). The plan is drawn from one seed, so a
run can be repeated: ``python -m benchmarks.soak --seed N`` draws the same sessions.

The practitioner of the soak (:mod:`benchmarks.soak.station`) acts as docs/alarms.md and
docs/user-guide.md say a practitioner does: acknowledges alarms, removes what caused a fault
(wipes a short, re-plugs the handpiece, waits for a hot handpiece to cool), clears faults and
then either continues the zone or ends the session, as the story's ``decision`` says. Nothing is
continued, resumed or ended by the soak except through an explicit ``SessionEngine.request``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The simulator's whole catalogue (simulator/catalogue.py), in its order.
DEVICE_FAULTS = (
    "contact_lost",
    "contact_marginal",
    "short_circuit",
    "overcurrent",
    "overtemp",
    "handpiece_removed",
    "output_stuck",
    "net_dc",
    "selftest",
    "reset",
)
LINK_FAULTS = (
    "drop",
    "duplicate",
    "bit_errors",
    "delay",
    "silent",
    "disconnect",
    "replug_other_unit",
    "restart_unplugged",
)
FAULT_CLASSES = DEVICE_FAULTS + LINK_FAULTS


@dataclass(frozen=True)
class Expect:
    outcome: str
    why: str
    also: tuple[str, ...] = ()
    """Other outcomes accepted (one row only: a race the station cannot close, see there)."""

    def accepts(self, outcome: str | None) -> bool:
        return outcome == self.outcome or outcome in self.also


# fmt: off
#: Row of the matrix -> the session outcome it must end in, and why (from the engine's code and
#: docs/safety.md "Emergency stop outcome": after a fault ``faulted``, after a lost link or a
#: restart ``interrupted``, otherwise ``stopped``; ``completed`` only when every zone got its
#: planned time). ``:continue`` / ``:end`` is the practitioner's decision after the trouble.
EXPECTED: dict[str, Expect] = {
    "none": Expect("completed", "nothing injected: every planned zone gets its time"),
    # --- device faults ---------------------------------------------------------------------
    "contact_lost:brief": Expect("completed", "the device holds (output off, zone time frozen) "
        "and runs again 300 ms after contact is back; the zone still gets its full time"),
    "contact_lost:held": Expect("stopped", "contact never comes back; epm has no hold limit of "
        "its own (the device holds indefinitely), so after a hold longer than the "
        "practitioner's patience the practitioner stops the session (STOP)"),
    "contact_marginal": Expect("completed", "the unit keeps running on marginal contact; a low "
        "alarm only"),
    "short_circuit:continue": Expect("completed", "SHORT_CIRCUIT -> FAULT; serum wiped, faults "
        "acknowledged and cleared, the zone continues for its remaining time"),
    "short_circuit:end": Expect("faulted", "ended in FAULT after a device fault"),
    "overcurrent:continue": Expect("completed", "OVERCURRENT -> FAULT; cleared, zone continued"),
    "overcurrent:end": Expect("faulted", "ended in FAULT after a device fault"),
    "overtemp:continue": Expect("completed", "OVERTEMP -> FAULT; CLEAR_FAULTS is refused until "
        "the handpiece is below 40 C, then the zone continues"),
    "overtemp:end": Expect("faulted", "ended in FAULT after a device fault"),
    "handpiece_removed:continue": Expect("completed", "HANDPIECE_REMOVED -> FAULT; re-plugged, "
        "cleared, zone continued"),
    "handpiece_removed:end": Expect("faulted", "ended in FAULT after a device fault"),
    "output_stuck": Expect("faulted", "output while off: OUTPUT_FAULT and the supervisor's ESTOP "
        "(output_mismatch); the unit needs service, so the session is ended in FAULT (the "
        "supervisor's ESTOP is not the operator's: faulted, not aborted)"),
    "net_dc": Expect("faulted", "net DC: OUTPUT_FAULT as soon as output is on; the unit needs "
        "service, the session is ended in FAULT"),
    "selftest": Expect("interrupted", "a power cycle with a failed self-test: device_restarted, "
        "RECOVERY with SELFTEST latched (never cleared by the practitioner); ended after a "
        "restart"),
    "reset:continue": Expect("completed", "device_restarted -> RECOVERY; the practitioner "
        "continues and the zone is configured again for its remaining time"),
    "reset:end": Expect("interrupted", "ended after a restart"),
    # --- link faults -----------------------------------------------------------------------
    "drop": Expect("completed", "a few frames lost: retransmissions, no loss of the link"),
    "duplicate": Expect("completed", "duplicates are recognised by seq (stored replies)"),
    "bit_errors": Expect("completed", "CRC errors: frames dropped and re-sent"),
    "delay": Expect("completed", "replies later than usual but within T_reply"),
    "silent:continue": Expect("completed", "retries exhausted -> link lost, the watchdog stops "
        "output (WATCHDOG); reconnected -> RECOVERY; cleared and continued"),
    "silent:end": Expect("interrupted", "ended after a lost link"),
    "disconnect:continue": Expect("completed", "unplugged and back within the reconnect limit; "
        "RECOVERY; cleared and continued"),
    "disconnect:end": Expect("interrupted", "ended after a lost link"),
    "disconnect:beyond_limit": Expect("interrupted", "unplugged longer than the engine's "
        "reconnect limit: reconnect_failed, the practitioner ends the session"),
    "replug_other_unit": Expect("interrupted", "another unit answers after the reconnect: the "
        "engine ends the session itself (unit_changed), nothing is sent to that unit"),
    "restart_unplugged:continue": Expect("completed", "the restart is seen on the handshake; "
        "RECOVERY; continued"),
    "restart_unplugged:end": Expect("interrupted", "ended after a restart"),
    # --- combinations ----------------------------------------------------------------------
    "reconnect+contact_lost:continue": Expect("completed", "contact lost while the link is "
        "down; after RECOVERY the practitioner continues, the zone waits in PLACE for contact "
        "and starts once the handpiece is back"),
    "reconnect+contact_lost:end": Expect("interrupted", "ended after a lost link"),
    "paused+overtemp:continue": Expect("completed", "OVERTEMP while paused -> FAULT; cooled, "
        "cleared, continued"),
    "paused+overtemp:end": Expect("faulted", "ended in FAULT after a device fault"),
    "paused+handpiece_removed:continue": Expect("completed", "HANDPIECE_REMOVED while paused "
        "(outside IDLE it latches) -> FAULT; re-plugged, cleared, continued"),
    "paused+handpiece_removed:end": Expect("faulted", "ended in FAULT after a device fault"),
    "paused+reset:continue": Expect("completed", "restart while paused -> RECOVERY; continued"),
    "paused+reset:end": Expect("interrupted", "ended after a restart"),
    "paused+disconnect:continue": Expect("completed", "unplugged while paused (PAUSED is "
        "active: the watchdog trips) -> RECOVERY; cleared, continued"),
    "paused+disconnect:end": Expect("interrupted", "ended after a lost link"),
    "stopping+reset": Expect("interrupted", "the practitioner stopped the session and the unit "
        "restarted during the ramp-down: an ending after a restart is interrupted"),
    "stopping+reset:late": Expect("interrupted", "the station saw the unit ramping down and "
        "the restart came a few microseconds later, but the ramp-down had just ended: the STOP "
        "or the restart is seen first, so stopped is as right as interrupted",
        also=("stopped",)),
    "stopping+reset:missed": Expect("stopped", "the ramp-down ended before the station saw it, "
        "so no restart was injected: the practitioner's STOP ended the session"),
}
# fmt: on

#: Variants of each catalogue fault when it is the session's only fault story.
VARIANTS: dict[str, tuple[str, ...]] = {
    "contact_lost": ("brief", "held"),
    "contact_marginal": ("",),
    "short_circuit": ("continue", "end"),
    "overcurrent": ("continue", "end"),
    "overtemp": ("continue", "end"),
    "handpiece_removed": ("continue", "end"),
    "output_stuck": ("",),
    "net_dc": ("",),
    "selftest": ("",),
    "reset": ("continue", "end"),
    "drop": ("",),
    "duplicate": ("",),
    "bit_errors": ("",),
    "delay": ("",),
    "silent": ("continue", "end"),
    "disconnect": ("continue", "end", "beyond_limit"),
    "replug_other_unit": ("",),
    "restart_unplugged": ("continue", "end"),
}
#: Faults that may hit at any time of a session (a manual step too); the others need the
#: output on (a short, an over-current, net DC, a hold, a handpiece pulled outside IDLE) or an
#: active device whose silence the link notices (silent).
ANYWHERE = frozenset(
    {
        "drop",
        "duplicate",
        "bit_errors",
        "delay",
        "reset",
        "selftest",
        "contact_marginal",
        "overtemp",
        "output_stuck",
        "disconnect",
        "restart_unplugged",
        "replug_other_unit",
    }
)
#: Faults while paused (combinations): each acts on a paused unit.
PAUSED_FAULTS = ("overtemp", "handpiece_removed", "reset", "disconnect")
#: Conditions a practitioner removes when told to (handpiece back, serum wiped, handpiece
#: re-plugged, the hot handpiece left to cool); the others go away by themselves or need service.
FIXABLE = frozenset({"contact_lost", "contact_marginal", "short_circuit", "handpiece_removed"})
#: Faults after which the unit goes to service (a technician power-cycles it after the session).
SERVICE = frozenset({"output_stuck", "net_dc", "selftest"})


@dataclass(frozen=True)
class Move:
    """One thing the station does during a session, once ``when`` holds.

    ``when``: ``zone`` (delivering the story's zone past its fraction), ``manual`` (the manual
    step past its fraction), ``paused``, ``stopping`` (the unit seen ramping down), ``link_lost``
    (the session shows the link lost), ``hold`` (the zone on hold for longer than the
    practitioner's patience). ``do``: ``pause`` or ``stop`` (the practitioner's requests), or a
    catalogue fault injected with ``params``.
    """

    when: str
    do: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Story:
    """One session: its protocol, what happens in it and what it must end in."""

    index: int
    key: str
    protocol: str
    client: str
    moves: tuple[Move, ...]
    decision: str = "continue"
    """What the practitioner does after the story's trouble: ``continue``, ``end``, or
    ``stopped`` (the practitioner asked to stop before the trouble and expects the session to
    end without being asked again)."""
    zone: int = 0
    """Which delivery zone (0-based) the ``zone`` trigger waits for."""
    fraction: float = 0.3
    """How far into that zone (or the manual step), as a share of its planned time."""

    @property
    def faults(self) -> tuple[str, ...]:
        return tuple(m.do for m in self.moves if m.do not in ("pause", "stop"))


@dataclass(frozen=True)
class ProtocolShape:
    name: str
    zones: tuple[str, ...]
    duration_s: int
    manual_s: int = 0
    ramp_down_s: int = 2


#: 2-4 zones of 30-120 s (simulated), some with a timed manual step; the ramp-down of the first
#: is the longest the protocol format allows, so a station can see the unit ramping down.
PROTOCOLS: tuple[ProtocolShape, ...] = (
    ProtocolShape("soak-two", ("frontal", "crown"), 60, ramp_down_s=10),
    ProtocolShape("soak-three", ("frontal", "midscalp", "crown"), 40, manual_s=30),
    ProtocolShape("soak-four", ("frontal", "temporal_left", "temporal_right", "occipital"), 30),
    ProtocolShape("soak-long", ("midscalp", "crown"), 120, manual_s=60, ramp_down_s=10),
)
SHORT_PROTOCOLS: tuple[ProtocolShape, ...] = (
    ProtocolShape("soak-two", ("frontal", "crown"), 40, ramp_down_s=10),
    ProtocolShape("soak-three", ("frontal", "midscalp", "crown"), 30, manual_s=20),
)

_ZONE = """\
  - kind: delivery
    zone: {zone}
    duration_s: {duration_s}
    waveform: biphasic_square
    amplitude_v: 40
    amplitude_max_v: 60
    pulse_width_us: 100
    frequency_hz: 5
    burst: {{on_ms: 500, off_ms: 500}}
    ramp_up_s: 2
    ramp_down_s: {ramp_down_s}
    current_limit_ma: 6.0
"""
_PROTOCOL = """\
format: epm-protocol/1
id: {id}
version: 1
title: Soak {id}
indication: early_androgenetic_alopecia
status: draft
handpiece: scalp_roller
serum:
  name: Soak serum
course:
  sessions: 6
  interval_days: 14
steps:
{manual}{zones}aftercare:
  - Do not wash the hair for 48 hours.
"""


def write_protocols(folder: Path, shapes: tuple[ProtocolShape, ...]) -> dict[str, Path]:
    """The protocol files (drafts: they run on a simulator only), by name."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for shape in shapes:
        manual = (
            f"  - kind: manual\n    title: Apply the serum\n    duration_s: {shape.manual_s}\n"
            if shape.manual_s
            else ""
        )
        zones = "".join(
            _ZONE.format(zone=z, duration_s=shape.duration_s, ramp_down_s=shape.ramp_down_s)
            for z in shape.zones
        )
        path = folder / f"{shape.name}.yaml"
        path.write_text(_PROTOCOL.format(id=shape.name, manual=manual, zones=zones), "utf-8")
        out[shape.name] = path
    return out


@dataclass(frozen=True)
class Timing:
    """Wall-clock lengths of the link faults and the practitioner's patience.

    Link-fault durations are wall seconds (the link's timers are), device-fault durations
    simulated seconds (docs/simulator.md)."""

    reconnect_limit_s: float = 3.0
    """The engine's reconnect limit (``SessionEngine(reconnect_limit_s=...)``)."""
    unplug_s: tuple[float, float] = (0.3, 1.0)
    silent_s: tuple[float, float] = (0.6, 1.2)
    beyond_limit_extra_s: float = 1.5
    hold_patience_s: float = 0.3
    """How long the practitioner waits with the zone on hold before stopping (``held``)."""
    stopped_patience_s: float = 3.0
    """How long a practitioner who asked to stop waits for the session to end by itself."""


FULL_TIMING = Timing()
SHORT_TIMING = Timing(reconnect_limit_s=1.2, unplug_s=(0.3, 0.6), silent_s=(0.6, 0.8))


def _uniform(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 3)


def fault_params(fault: str, variant: str, rng: random.Random, timing: Timing) -> dict[str, Any]:
    """Parameters for one injection (device durations simulated s, link durations wall s)."""
    if fault == "contact_lost":
        return {"duration_s": _uniform(rng, 2, 20)} if variant == "brief" else {}
    if fault == "contact_marginal":
        return {"impedance_ohm": rng.randint(11_000, 19_000), "duration_s": _uniform(rng, 5, 40)}
    if fault == "short_circuit":
        return {"impedance_ohm": _uniform(rng, 0, 40)}
    if fault == "overcurrent":
        return {"factor": _uniform(rng, 1.3, 3.0)}
    if fault == "overtemp":
        return {"target_c": _uniform(rng, 42, 48), "rate_c_per_s": _uniform(rng, 2, 8)}
    if fault == "output_stuck":
        return {"amplitude_dv": rng.randint(30, 100)}
    if fault in ("handpiece_removed", "net_dc", "selftest", "reset"):
        return {}
    if fault in ("drop", "duplicate"):
        direction = rng.choice(("tx", "rx", "both"))
        if rng.random() < 0.5:
            # "both" loses a request and its reply separately: keep within the 4 sends.
            return {
                "direction": direction,
                "count": rng.randint(1, 2 if direction == "both" else 3),
            }
        top = 0.03 if fault == "drop" else 0.2
        return {
            "direction": direction,
            "probability": _uniform(rng, 0.01, top),
            "duration_s": _uniform(rng, 0.4, 1.0),
        }
    if fault == "bit_errors":
        return {"ber": round(rng.uniform(2e-5, 1e-4), 7), "duration_s": _uniform(rng, 0.4, 1.0)}
    if fault == "delay":
        return {"ms": rng.randint(5, 30), "duration_s": _uniform(rng, 0.4, 1.0)}
    if fault == "silent":
        return {"duration_s": _uniform(rng, *timing.silent_s)}
    if fault in ("disconnect", "replug_other_unit", "restart_unplugged"):
        if variant == "beyond_limit":
            return {"duration_s": round(timing.reconnect_limit_s + timing.beyond_limit_extra_s, 3)}
        return {"duration_s": _uniform(rng, *timing.unplug_s)}
    raise ValueError(f"no parameters for {fault}")


def _story(
    index: int,
    key: str,
    *,
    rng: random.Random,
    shapes: tuple[ProtocolShape, ...],
    timing: Timing,
    clients: int,
) -> Story:
    """The session for matrix row ``key``, its random parts drawn from ``rng``."""
    base, _, variant = key.partition(":")
    # The practitioner ends once the reconnect limit has passed (beyond_limit), when the unit
    # needs service, or as told; after asking to stop, the practitioner has decided already.
    if variant in ("end", "beyond_limit") or base in SERVICE:
        decision = "end"
    elif base == "stopping+reset":
        decision = "stopped"
    else:
        decision = "continue"
    shape = rng.choice(shapes)
    zone = rng.randrange(len(shape.zones))
    fraction = _uniform(rng, 0.15, 0.6)
    client = f"SOAK-{rng.randrange(clients) + 1:03d}"
    moves: list[Move]
    if base == "none":
        moves = []
    elif base == "reconnect+contact_lost":
        moves = [
            Move("zone", "disconnect", fault_params("disconnect", "", rng, timing)),
            Move("link_lost", "contact_lost", {}),
        ]
    elif base.startswith("paused+"):
        fault = base.removeprefix("paused+")
        moves = [Move("zone", "pause"), Move("paused", fault, fault_params(fault, "", rng, timing))]
    elif base == "stopping+reset":
        shape = shapes[0]  # the longest ramp-down
        zone = rng.randrange(len(shape.zones))
        moves = [Move("zone", "stop"), Move("stopping", "reset")]
    else:
        when = "zone"
        if base in ANYWHERE and shape.manual_s and rng.random() < 0.25:
            when = "manual"
        moves = [Move(when, base, fault_params(base, variant, rng, timing))]
        if key == "contact_lost:held":
            moves.append(Move("hold", "stop"))
    return Story(index, key, shape.name, client, tuple(moves), decision, zone, fraction)


COMBINATIONS: tuple[str, ...] = (
    "reconnect+contact_lost:continue",
    "reconnect+contact_lost:end",
    *(f"paused+{f}:{d}" for f in PAUSED_FAULTS for d in ("continue", "end")),
    "stopping+reset",
)


def make_plan(
    seed: int,
    *,
    per_class: int,
    min_sessions: int,
    combos_each: int,
    shapes: tuple[ProtocolShape, ...] = PROTOCOLS,
    timing: Timing = FULL_TIMING,
    clients: int = 40,
) -> list[Story]:
    """Every catalogue fault as the story of ``per_class`` sessions (its variants in turn),
    each combination ``combos_each`` times, and fault-free sessions up to ``min_sessions``;
    shuffled with ``seed``. Each session's random parts come from its own generator, so one
    session can be drawn again alone (``story_for``)."""
    rng = random.Random(seed)
    keys: list[str] = []
    for fault in FAULT_CLASSES:
        variants = list(VARIANTS[fault])
        rng.shuffle(variants)
        keys += [_key(fault, variants[i % len(variants)]) for i in range(per_class)]
    keys += [combo for combo in COMBINATIONS for _ in range(combos_each)]
    keys += ["none"] * max(1, min_sessions - len(keys))
    rng.shuffle(keys)
    return [
        _story(
            i, key, rng=random.Random(f"{seed}/{i}"), shapes=shapes, timing=timing, clients=clients
        )
        for i, key in enumerate(keys)
    ]


def _key(fault: str, variant: str) -> str:
    return f"{fault}:{variant}" if variant else fault
