"""pydantic models of ``epm-protocol/1``: what a valid protocol file holds.

Single-field rules (types, ranges, enums, patterns, unknown fields) live in the field types.
Cross-field and derived rules live in :mod:`protocols.rules`; :class:`Protocol` re-runs them
after its fields are valid so that a protocol built in code obeys them too. The loader runs the
same rules on the raw file data beside field validation, so a technician sees every problem in
one pass.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from protocols import units
from protocols.enums import (
    HANDPIECE_AREA_CM2,
    Handpiece,
    Indication,
    Polarity,
    Status,
    StepKind,
    Waveform,
    Zone,
)

FORMAT = "epm-protocol/1"


def _not_null(value: object) -> object:
    """Optional fields are left out when unused; an explicit empty value is an error."""
    if value is None:
        raise PydanticCustomError("null_value", "no value given")
    return value


NotNull = BeforeValidator(_not_null)

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date(value: object) -> object:
    """Accept a YAML date (``2026-11-20``) or the same text quoted; nothing else."""
    if isinstance(value, dt.datetime):
        raise PydanticCustomError("date_type", "a date without a time of day is expected")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("date_type", "not a real calendar date") from None
    raise PydanticCustomError("date_type", "a date written as YYYY-MM-DD is expected")


Text = Annotated[str, Field(strict=True, min_length=1)]
Title = Annotated[str, Field(strict=True, min_length=1, max_length=units.TITLE_MAX_CHARS)]
ApprovalDate = Annotated[dt.date, BeforeValidator(_date)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Burst(_Model):
    """Pulsing in bursts: on_ms of pulses, then off_ms of pause."""

    on_ms: units.BurstOnMs
    off_ms: units.BurstOffMs

    @property
    def on_fraction(self) -> float:
        return self.on_ms / (self.on_ms + self.off_ms)


class DeliveryStep(_Model):
    """Electroporation output on one scalp zone."""

    kind: Literal["delivery"] = Field(description="delivery: output on one zone")
    zone: Zone = Field(description="Scalp zone treated in this step")
    duration_s: units.DeliveryDurationS
    waveform: Waveform = Field(description="Pulse shape")
    polarity: Annotated[Polarity | None, NotNull] = Field(
        default=None,
        description="Monophasic only (required there); leave out for biphasic",
    )
    amplitude_v: units.AmplitudeV
    amplitude_max_v: units.AmplitudeMaxV
    pulse_width_us: units.PulseWidthUs
    frequency_hz: units.FrequencyHz
    burst: Annotated[Burst | None, NotNull] = Field(
        default=None, description="Optional: pulse in bursts instead of continuously"
    )
    ramp_up_s: units.RampUpS
    ramp_down_s: units.RampDownS
    current_limit_ma: units.CurrentLimitMa

    @property
    def phases(self) -> int:
        return self.waveform.phases

    @property
    def effective_duty(self) -> float:
        """Fraction of time the output is on, weighted by the burst on-fraction."""
        from protocols import rules

        return rules.effective_duty(
            self.pulse_width_us,
            self.frequency_hz,
            self.phases,
            self.burst.on_ms if self.burst else None,
            self.burst.off_ms if self.burst else None,
        )


class ManualStep(_Model):
    """The practitioner does something by hand; device output stays off."""

    kind: Literal["manual"] = Field(description="manual: output stays off")
    title: Text = Field(description="What the practitioner does, in a few words")
    duration_s: Annotated[units.ManualDurationS | None, NotNull] = Field(
        default=None, description="Optional timer in s (1–1800)"
    )
    instructions: Annotated[Text | None, NotNull] = Field(
        default=None, description="Optional: how to do it, shown with the step"
    )


Step = DeliveryStep | ManualStep
_STEP_MODELS: dict[str, type[DeliveryStep] | type[ManualStep]] = {
    StepKind.DELIVERY: DeliveryStep,
    StepKind.MANUAL: ManualStep,
}


def _one_error(kind: str, message: str, loc: tuple[str, ...], value: object) -> ValidationError:
    detail = InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)
    return ValidationError.from_exception_data("Step", [detail])


def _validate_step(value: Any, handler: ValidatorFunctionWrapHandler) -> Step:
    """Pick the step model from ``kind`` so error locations stay ``steps, <n>, <field>``.

    A discriminated union would put the tag into the location (``steps, 3, delivery, ...``);
    this keeps locations the same as the file's structure.
    """
    if isinstance(value, DeliveryStep | ManualStep):
        return value
    if not isinstance(value, dict):
        raise _one_error("model_type", "a step must be a mapping of fields", (), value)
    if "kind" not in value:
        raise _one_error("missing", "Field required", ("kind",), value)
    model = _STEP_MODELS.get(value["kind"]) if isinstance(value["kind"], str) else None
    if model is None:
        raise _one_error("step_kind", "unknown step kind", ("kind",), value["kind"])
    return model.model_validate(value)


class Serum(_Model):
    name: Text = Field(description="The serum's name, as on its label")
    ingredients: Annotated[tuple[Text, ...], NotNull] = Field(
        default=(), description="Optional list of the serum's ingredients"
    )


class Course(_Model):
    sessions: units.CourseSessions
    interval_days: units.CourseIntervalDays
    maintenance_interval_days: Annotated[units.CourseMaintenanceDays | None, NotNull] = None


class Protocol(_Model):
    """One treatment protocol, as written in an epm-protocol/1 file."""

    format: Literal["epm-protocol/1"] = Field(description="Always epm-protocol/1")
    id: Annotated[str, Field(strict=True, pattern=units.ID_PATTERN)] = Field(
        description='3–64 characters of a-z, 0-9 and "-", starting with a letter'
    )
    version: Annotated[int, Field(strict=True, ge=units.VERSION_MIN)] = Field(
        description="A whole number, at least 1; raise it on every change"
    )
    title: Title = Field(description="Name shown to the practitioner (1–120 characters)")
    indication: Indication = Field(description="What the protocol treats")
    status: Status = Field(description="Only approved protocols run for clients on a device")
    approved_by: Annotated[Text | None, NotNull] = Field(
        default=None, description="Who approved it; only and always when status is approved"
    )
    approved_on: Annotated[ApprovalDate | None, NotNull] = Field(
        default=None, description="Date of approval, YYYY-MM-DD; only when status is approved"
    )
    handpiece: Handpiece = Field(description="Handpiece used for every delivery step")
    serum: Serum = Field(description="The serum, with name and optional ingredients")
    course: Course = Field(description="Sessions and intervals of a treatment course")
    steps: Annotated[
        tuple[Annotated[Step, WrapValidator(_validate_step)], ...],
        Field(min_length=units.STEPS_MIN, max_length=units.STEPS_MAX),
    ] = Field(description="1–40 steps, at least one of kind delivery")
    aftercare: Annotated[tuple[Text, ...], Field(min_length=1)] = Field(
        description="Advice shown and printed after each session, at least one item"
    )
    contraindications: Annotated[tuple[Text, ...], NotNull] = Field(
        default=(), description="Optional questions added to the pre-session checklist"
    )
    notes: Annotated[Annotated[str, Field(strict=True)] | None, NotNull] = Field(
        default=None, description="Optional free text"
    )

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Protocol:
        from protocols import rules

        issues = [
            issue
            for issue in rules.check_protocol(self.model_dump(exclude_none=True))
            if issue.severity == "error"
        ]
        if issues:
            text = "; ".join(issue.message for issue in issues)
            raise PydanticCustomError("protocol_rules", "{rules}", {"rules": text})
        return self

    # --- helpers for the session controller --------------------------------------------

    @property
    def area_cm2(self) -> float:
        return HANDPIECE_AREA_CM2[self.handpiece]

    @property
    def delivery_steps(self) -> tuple[DeliveryStep, ...]:
        return tuple(step for step in self.steps if isinstance(step, DeliveryStep))

    @property
    def zones(self) -> tuple[Zone, ...]:
        """Zones treated, in the order first treated, each once."""
        return tuple(dict.fromkeys(step.zone for step in self.delivery_steps))

    @property
    def total_delivery_s(self) -> float:
        return sum(step.duration_s for step in self.delivery_steps)

    @property
    def total_session_s(self) -> float:
        """Delivery time plus the timers of manual steps."""
        manual = sum(
            step.duration_s
            for step in self.steps
            if isinstance(step, ManualStep) and step.duration_s is not None
        )
        return self.total_delivery_s + manual

    @property
    def runs_on_real_device(self) -> bool:
        """Only approved protocols are run for a client on a real device."""
        return self.status is Status.APPROVED

    @property
    def runs_on_simulator(self) -> bool:
        """Draft and approved protocols run on the simulator; retired ones never."""
        return self.status is not Status.RETIRED
