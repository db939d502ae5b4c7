"""A plain (non-editable) install carries the bundled library, the schema and the stylesheets."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("epm-*.whl")
    return built


def test_wheel_holds_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    library = sorted(p.name for p in (ROOT / "protocols" / "library").glob("*.yaml"))
    assert library, "the bundled library is empty"
    for name in library:
        assert f"protocols/library/{name}" in names
    assert "protocols/schema/protocol-v1.json" in names
    for tcss in (ROOT / "controller").rglob("*.tcss"):
        assert tcss.relative_to(ROOT).as_posix() in names
    assert not any(n.startswith("tests/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "epm = controller.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_epm_validates_its_bundled_library(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target), "EPM_HOME": str(tmp_path / "home")}
    code = (
        "import protocols, sys; p = protocols.bundled_library_path(); "
        "assert str(p).startswith(sys.argv[1]), p; "
        "from controller.cli import main; sys.exit(main(['validate', str(p)]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 invalid" in done.stdout
    schema = subprocess.run(
        [sys.executable, "-m", "controller", "schema"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert schema.returncode == 0, schema.stderr
    assert '"$id"' in schema.stdout
