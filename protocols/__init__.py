"""Treatment protocols for the EPM-1: the ``epm-protocol/1`` format, its checks and library.

Load a file with :func:`load_protocol` (or :func:`load_protocol_text` for text being edited);
the result holds the :class:`Protocol` when the file is valid and every :class:`Problem`
found, each located to its line and column. A protocol step becomes the device's
CONFIGURE_STEP values with :func:`to_device_step`.
"""

from __future__ import annotations

from typing import Any

from protocols.checklist import (
    BUILTIN_CHECKLIST,
    ChecklistItem,
    ItemKind,
    build_checklist,
    evaluate_checklist,
)
from protocols.device_units import DeviceStepValues, to_device_step
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
from protocols.library import bundled_library_path, load_library
from protocols.loader import LoadResult, ProtocolIdentity, load_protocol, load_protocol_text
from protocols.models import FORMAT, Burst, Course, DeliveryStep, ManualStep, Protocol, Serum, Step
from protocols.problem import Problem, Severity


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``epm-protocol/1`` (draft-07)."""
    from protocols.schema import json_schema as build

    return build()


__all__ = [
    "BUILTIN_CHECKLIST",
    "FORMAT",
    "HANDPIECE_AREA_CM2",
    "Burst",
    "ChecklistItem",
    "Course",
    "DeliveryStep",
    "DeviceStepValues",
    "Handpiece",
    "Indication",
    "ItemKind",
    "LoadResult",
    "ManualStep",
    "Polarity",
    "Problem",
    "Protocol",
    "ProtocolIdentity",
    "Serum",
    "Severity",
    "Status",
    "Step",
    "StepKind",
    "Waveform",
    "Zone",
    "build_checklist",
    "bundled_library_path",
    "evaluate_checklist",
    "json_schema",
    "load_library",
    "load_protocol",
    "load_protocol_text",
    "to_device_step",
]
