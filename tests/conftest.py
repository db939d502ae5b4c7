"""Shared test set-up: data paths, and an environment that keeps the suite deterministic."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    """The EPM-1 conformance vectors (a copy of the interface document's file)."""
    return json.loads((DATA / "device-interface-vectors.json").read_text())
