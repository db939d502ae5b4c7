"""Shared set-up of the configuration tests: no override from the developer's shell, a data
folder in ``tmp_path``, and ``epm`` run in-process with its exit code and output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from controller.cli import main

#: Variables that move the data folder or override a setting.
VARIABLES = ("EPM_HOME", "EPM_PORT", "EPM_BAUD", "EPM_PRACTITIONER")

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data folder (not created: epm creates it when it writes)."""
    return tmp_path / "data"


def write(data: Path, text: str) -> Path:
    """``text`` as the data folder's config.yaml."""
    data.mkdir(exist_ok=True)
    path = data / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def epm(capsys: pytest.CaptureFixture[str]) -> Run:
    """``epm(*argv) -> (exit code, stdout, stderr)``, as ``epm`` itself runs them."""

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
