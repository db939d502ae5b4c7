"""The starting text of a new protocol file, and the rules for its file name.

Why: a technician starting from an empty file meets a dozen "missing field" errors before
anything useful happens. The template is a complete, valid ``draft`` protocol (a manual step
and one conservative biphasic delivery step, settings from the bundled library) whose id is
taken from the file name, so it validates at once and runs only on the simulator until it is
reviewed and approved.
"""

from __future__ import annotations

import re
from pathlib import Path

#: A protocol id: 3–64 characters of a-z, 0-9 and -, starting with a letter (the format's rule).
ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{2,63}$")

TEMPLATE = """\
# New protocol: a draft. It runs only on the simulator until it has been reviewed, its status
# set to approved (with approved_by and approved_on) and the file approved in epm.
# For completion in another editor: `epm schema > protocol-v1.json`, then add the line
# `# yaml-language-server: $schema=protocol-v1.json` at the top.
format: epm-protocol/1
id: {protocol_id}
version: 1
title: {title}
indication: early_androgenetic_alopecia
status: draft
handpiece: scalp_roller
serum:
  name: Name of the serum
  ingredients: [biotin, panthenol]
course:
  sessions: 6
  interval_days: 14
steps:
  - kind: manual
    title: Cleanse the scalp and apply the serum
    duration_s: 180
  - kind: delivery
    zone: frontal
    duration_s: 900
    waveform: biphasic_square
    amplitude_v: 40
    amplitude_max_v: 60
    pulse_width_us: 500
    frequency_hz: 50
    burst: {{on_ms: 500, off_ms: 500}}
    ramp_up_s: 10
    ramp_down_s: 2
    current_limit_ma: 6.0
aftercare:
  - Do not wash the hair for 48 hours.
  - No blow-dryers or hot styling tools for 2 days.
"""


class TemplateNameError(ValueError):
    """The file name given for a new protocol is unusable; the message says how to fix it."""


def protocol_id_for(stem: str) -> str:
    """The protocol id a new file named ``stem`` gets (the stem itself when it is a valid id)."""
    return stem.lower()


def new_protocol_path(folder: Path, name: str) -> Path:
    """The path of a new protocol file called ``name`` in ``folder`` (``.yaml`` added when it
    has no suffix). Raises :class:`TemplateNameError` for a bad or existing name."""
    name = name.strip()
    if not name:
        raise TemplateNameError("type a file name, e.g. aga-trial (.yaml is added)")
    if name.endswith((".yaml", ".yml")):
        stem = name.rsplit(".", 1)[0]
    else:
        stem, name = name, name + ".yaml"
    if "/" in name or "\\" in name:
        raise TemplateNameError(
            f"{name!r} contains a folder separator: give only a file name; the file is created "
            f"in the library folder {folder}"
        )
    if not ID_PATTERN.match(stem):
        raise TemplateNameError(
            f"{stem!r} cannot be a protocol id: use 3–64 lower-case letters, digits and '-', "
            "starting with a letter (e.g. aga-trial); the file name is the protocol's id"
        )
    path = folder / name
    if path.exists():
        raise TemplateNameError(
            f"{path.name} already exists in {folder}: choose another name, or open it with e"
        )
    return path


def template_text(protocol_id: str) -> str:
    """A valid draft protocol whose id is ``protocol_id``."""
    title = protocol_id.replace("-", " ").capitalize() + " (draft)"
    return TEMPLATE.format(protocol_id=protocol_id, title=title)
