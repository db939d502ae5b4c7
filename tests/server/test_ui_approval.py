"""The technician's approval dialog with a clinic server: the approval is made on the server
(in a thread) and taken here at once; an unreachable server records nothing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import psycopg
from textual.widgets import Input, Static

from controller.server.schema import init_server
from controller.ui.technician.choice_dialog import ChoiceDialog
from controller.ui.technician.library import LibraryScreen
from controller.ui.technician.prompt_dialog import PromptDialog
from protocols import load_protocol
from tests.ui.test_library_harness import FixedClock, TechApp, make_library, open_store, wait_for
from tests.ui.test_library_screen import open_library, rows, select, text_of


async def approve_in_the_library(tmp_path: Path, url: str) -> tuple[str, object, str]:
    library = make_library(tmp_path / "lib")
    with open_store(tmp_path / "data", FixedClock()) as store:
        app = TechApp(store, library, start=lambda a: LibraryScreen(library, store, poll_s=0.1))
        app.sync_worker = SimpleNamespace(url=url)  # type: ignore[attr-defined]
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_library(pilot)
            await select(pilot, screen, "high-amplitude.yaml")
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, PromptDialog))
            pilot.app.screen.query_one(Input).value = "Dana Lead"
            await pilot.press("enter")
            status = screen.query_one("#library-status")
            # A thread talks to the server meanwhile; then the status line says how it went.
            await wait_for(pilot, lambda: "approved" in text_of(status), timeout=20)
            shown = text_of(status)
            if isinstance(pilot.app.screen, ChoiceDialog):  # refused: the reason is shown
                shown += " " + " ".join(text_of(w) for w in pilot.app.screen.query(Static))
            sha = str(load_protocol(library / "high-amplitude.yaml").sha256)
            approval = store.is_approved(sha)
            if approval is not None:
                await wait_for(pilot, lambda: rows(screen)["high-amplitude.yaml"][4] == "yes")
            return shown, approval, sha


async def test_the_dialog_approves_on_the_clinic_server(pg_url: str, tmp_path: Path) -> None:
    init_server(pg_url)
    shown, approval, sha = await approve_in_the_library(tmp_path, pg_url)
    assert "approved on the clinic server by Dana Lead" in shown
    assert approval is not None and "clinic server" in approval.file_path  # type: ignore[attr-defined]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT sha256, approved_by FROM approvals").fetchall() == [
            (sha, "Dana Lead")
        ]


async def test_an_unreachable_server_approves_nothing(tmp_path: Path, pg_server: Path) -> None:
    gone = f"postgresql://postgres@/nowhere?host={tmp_path}"
    shown, approval, _sha = await approve_in_the_library(tmp_path, gone)
    assert "was not approved" in shown
    assert "nothing was approved" in shown and "cannot connect" in shown
    assert approval is None
