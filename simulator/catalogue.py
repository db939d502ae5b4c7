"""The fault catalogue: every fault the simulator can inject, as validated, immutable specs.

One pydantic model per fault, told apart by ``fault``. The same models validate a scenario's
``events`` list, :meth:`simulator.Simulator.inject` and the control socket's ``inject`` command,
so a parameter means the same thing everywhere. ``at_s`` only matters in a scenario.

Durations of device faults are simulated seconds (they belong to the physics); durations of
link faults are link (wall-clock) seconds, since the link's timers run on wall time.

The three *unplug* faults (``disconnect``, ``replug_other_unit``, ``restart_unplugged``) take the
endpoint away for ``duration_s`` link seconds; the latter two also change the unit behind it
while it is away (interface document §3, identity across a reconnect).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from controller.wire.constants import SIM_SERIAL_PREFIX

Seconds = Annotated[float, Field(gt=0, le=86_400)]
Probability = Annotated[float, Field(ge=0, le=1)]
Direction = Literal["tx", "rx", "both"]
#: HELLO_REPLY's ``serial`` is ascii[12] (interface document §4).
SERIAL_BYTES = 12


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: When a scenario applies the fault: simulated seconds since the simulator started.
    at_s: Annotated[float, Field(ge=0)] = 0.0


# --- device faults -----------------------------------------------------------------------


class ContactLost(_Fault):
    """The handpiece leaves the skin: impedance open, contact none (RUNNING → HOLD)."""

    fault: Literal["contact_lost"]
    duration_s: Seconds | None = None


class ContactMarginal(_Fault):
    """Part of the electrode lifts: impedance in the marginal band (the unit keeps running)."""

    fault: Literal["contact_marginal"]
    impedance_ohm: Annotated[float, Field(gt=10_000, le=20_000)] = 15_000
    duration_s: Seconds | None = None


class ShortCircuit(_Fault):
    """The electrodes are bridged: contact short; with output on, fault SHORT_CIRCUIT."""

    fault: Literal["short_circuit"]
    impedance_ohm: Annotated[float, Field(ge=0, lt=50)] = 10.0
    duration_s: Seconds | None = None


class Overcurrent(_Fault):
    """The output stage delivers ``factor`` × the current limit whatever regulation does.

    Ends by itself once OVERCURRENT has latched (or after ``duration_s``).
    """

    fault: Literal["overcurrent"]
    factor: Annotated[float, Field(gt=1.1, le=10)] = 1.5
    duration_s: Seconds | None = None


class Overtemp(_Fault):
    """The handpiece heats at ``rate_c_per_s`` up to ``target_c``, then cools by itself."""

    fault: Literal["overtemp"]
    target_c: Annotated[float, Field(gt=41, le=80)] = 45.0
    rate_c_per_s: Annotated[float, Field(gt=0, le=20)] = 1.0
    duration_s: Seconds | None = None


class HandpieceRemoved(_Fault):
    """The handpiece is unplugged; re-plugged after ``duration_s`` (never, if absent)."""

    fault: Literal["handpiece_removed"]
    duration_s: Seconds | None = None


class OutputStuck(_Fault):
    """The output stage keeps delivering ``amplitude_dv`` while it should be off."""

    fault: Literal["output_stuck"]
    amplitude_dv: Annotated[int, Field(ge=1, le=1200)] = 60
    duration_s: Seconds | None = None


class NetDc(_Fault):
    """BI_SQUARE output carries a net DC component (OUTPUT_FAULT while it is on)."""

    fault: Literal["net_dc"]
    duration_s: Seconds | None = None


class Selftest(_Fault):
    """The unit power-cycles and fails its self-test: SELFTEST latched until power-cycled."""

    fault: Literal["selftest"]


class Reset(_Fault):
    """Power-cycle: new boot_id, IDLE, dseq and t_ms from 0, faults cleared but SELFTEST."""

    fault: Literal["reset"]


# --- link faults -------------------------------------------------------------------------


class _Counted(_Fault):
    """A fault that hits either each frame with a probability or the next ``count`` frames."""

    direction: Direction = "tx"
    probability: Probability | None = None
    count: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    duration_s: Seconds | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _Counted:
        if (self.probability is None) == (self.count is None):
            raise ValueError(
                "give exactly one of 'probability' (0..1, per frame) or 'count' (the next N frames)"
            )
        return self


class Drop(_Counted):
    """Frames vanish: ``tx`` device→host, ``rx`` host→device, or ``both``."""

    fault: Literal["drop"]


class Duplicate(_Counted):
    """Frames arrive twice."""

    fault: Literal["duplicate"]


class BitErrors(_Fault):
    """Each bit on the wire flips with probability ``ber``."""

    fault: Literal["bit_errors"]
    ber: Annotated[float, Field(gt=0, le=0.1)]
    direction: Direction = "both"
    duration_s: Seconds | None = None


class Delay(_Fault):
    """Device→host frames leave ``ms`` later (order kept)."""

    fault: Literal["delay"]
    ms: Annotated[int, Field(ge=1, le=60_000)]
    duration_s: Seconds | None = None


class Silent(_Fault):
    """The unit sends nothing and ignores all input for ``duration_s``; it keeps running."""

    fault: Literal["silent"]
    duration_s: Seconds = 1.0


class Disconnect(_Fault):
    """The endpoint goes away (pty master closed, TCP connection closed, in-process port
    raises SerialException); it comes back after ``duration_s`` (never, if null)."""

    fault: Literal["disconnect"]
    duration_s: Seconds | None = 1.0


class ReplugOtherUnit(_Fault):
    """The endpoint goes away as with disconnect and another unit (another serial) comes back.

    While it is away the unit is replaced: a power-up with a new serial (``serial``, or ``SIM-``
    and six digits drawn from the seed), a new boot_id, IDLE, no faults.
    """

    fault: Literal["replug_other_unit"]
    duration_s: Seconds = 1.0
    serial: str | None = None

    @field_validator("serial")
    @classmethod
    def _simulator_serial(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(SIM_SERIAL_PREFIX):
            raise ValueError(
                f"a simulated unit's serial begins with {SIM_SERIAL_PREFIX!r} (real units never"
                f" do), e.g. '{SIM_SERIAL_PREFIX}000042'; got {value!r}"
            )
        if not (value.isascii() and value.isprintable()) or len(value) > SERIAL_BYTES:
            raise ValueError(
                f"the serial must be printable ASCII of at most {SERIAL_BYTES} characters"
                f" (HELLO_REPLY's ascii[{SERIAL_BYTES}]); got {value!r}"
            )
        return value


class RestartUnplugged(_Fault):
    """The endpoint goes away as with disconnect and the same unit power-cycles meanwhile.

    Same serial, new boot_id, IDLE, dseq and t_ms from 0, as ``reset`` does: the host only
    learns of it from the handshake after it re-opens the port.
    """

    fault: Literal["restart_unplugged"]
    duration_s: Seconds = 1.0


#: Faults that take the endpoint away; the endpoint's owner acts on them.
Unplug = Disconnect | ReplugOtherUnit | RestartUnplugged
UNPLUG_FAULTS: tuple[str, ...] = ("disconnect", "replug_other_unit", "restart_unplugged")

DEVICE_FAULTS = (
    ContactLost,
    ContactMarginal,
    ShortCircuit,
    Overcurrent,
    Overtemp,
    HandpieceRemoved,
    OutputStuck,
    NetDc,
    Selftest,
    Reset,
)
LINK_FAULTS = (
    Drop,
    Duplicate,
    BitErrors,
    Delay,
    Silent,
    Disconnect,
    ReplugOtherUnit,
    RestartUnplugged,
)

FaultSpec = Annotated[
    ContactLost
    | ContactMarginal
    | ShortCircuit
    | Overcurrent
    | Overtemp
    | HandpieceRemoved
    | OutputStuck
    | NetDc
    | Selftest
    | Reset
    | Drop
    | Duplicate
    | BitErrors
    | Delay
    | Silent
    | Disconnect
    | ReplugOtherUnit
    | RestartUnplugged,
    Field(discriminator="fault"),
]

FAULT_ADAPTER: TypeAdapter[FaultSpec] = TypeAdapter(FaultSpec)

#: Catalogue names in documentation order.
FAULT_NAMES: tuple[str, ...] = tuple(
    cls.model_fields["fault"].annotation.__args__[0]  # type: ignore[union-attr]
    for cls in (*DEVICE_FAULTS, *LINK_FAULTS)
)


def parse_fault(name: str, params: dict[str, object] | None = None) -> FaultSpec:
    """Validate one fault given by name and parameters; raises ``pydantic.ValidationError``.

    An unknown name raises ``ValueError`` listing the catalogue.
    """
    if name not in FAULT_NAMES:
        raise ValueError(f"unknown fault {name!r}; the catalogue has: {', '.join(FAULT_NAMES)}")
    return FAULT_ADAPTER.validate_python({"fault": name, **(params or {})})


def describe_catalogue() -> list[dict[str, object]]:
    """Name, summary and parameters of every fault (for ``faults`` on the control socket)."""
    out: list[dict[str, object]] = []
    for cls in (*DEVICE_FAULTS, *LINK_FAULTS):
        params = {
            name: str(field.default) if not field.is_required() else "required"
            for name, field in cls.model_fields.items()
            if name not in ("fault", "at_s")
        }
        out.append(
            {
                "fault": cls.model_fields["fault"].annotation.__args__[0],  # type: ignore[union-attr]
                "kind": "device" if cls in DEVICE_FAULTS else "link",
                "summary": (cls.__doc__ or "").strip().splitlines()[0],
                "params": params,
            }
        )
    return out
