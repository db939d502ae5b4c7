"""Export and verify, as the records list and a session's detail both offer them.

Why shared: both screens must export to the same place in the same formats and report a
tampered event log in the same unmissable way. Verification walks the whole event log, which
can take a moment on a large database, and so can an export of a long session: both run in a
background thread (:mod:`~controller.ui.technician.background`) and report back on the UI
thread, so the keyboard — the emergency stop above all — never waits for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from textual.screen import Screen

from controller.records import RecordsError, RecordStore, VerifyReport
from controller.ui.technician.background import Failed, run_in_background
from controller.ui.technician.choice_dialog import ChoiceDialog
from controller.ui.technician.records_model import Exported, describe_export, export_sessions

#: Called with (message, ok) to show the outcome on the screen.
Report = Callable[[str, bool], None]


def do_export(
    screen: Screen[Any],
    store: RecordStore,
    session_ids: list[int],
    fmt: str,
    report: Report,
    *,
    exported: Callable[[list[Path]], None] | None = None,
) -> None:
    """Export in a background thread (a long session's telemetry takes a while); then say
    where the files went, or why nothing was written, and pass the paths to ``exported``."""
    report(f"Exporting {len(session_ids)} session(s) as {fmt.upper()}…", True)

    def export() -> Exported | str:
        try:
            return export_sessions(store, session_ids, fmt)
        except (RecordsError, OSError, ValueError) as exc:
            return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)

    def finished(outcome: Exported | str | Failed) -> None:
        if not screen.is_attached:
            return
        if isinstance(outcome, Failed | str):
            reason = outcome.message if isinstance(outcome, Failed) else outcome
            report(f"Nothing was exported: {reason}", False)
            return
        message = describe_export(outcome)
        report(message, True)
        screen.notify(message, title="Exported", timeout=8)
        if exported is not None:
            exported(outcome.paths)

    run_in_background(screen.app, "epm-ui-export", export, finished)


def ask_export(
    screen: Screen[Any],
    store: RecordStore,
    choices: Sequence[tuple[str, str, list[int], str]],
    report: Report,
    exported: Callable[[list[Path]], None] | None = None,
) -> None:
    """Offer ``(id, label, session_ids, fmt)`` choices, then export the chosen one."""
    by_id = {choice_id: (ids, fmt) for choice_id, _, ids, fmt in choices}

    def chosen(choice: str | None) -> None:
        if choice is None or choice not in by_id:
            report("Export cancelled: nothing was written.", True)
            return
        ids, fmt = by_id[choice]
        do_export(screen, store, ids, fmt, report, exported=exported)

    screen.app.push_screen(
        ChoiceDialog(
            "Export records",
            f"Files go to {Path(store.data_dir) / 'exports'} (readable only by you).",
            [(choice_id, label) for choice_id, label, _, _ in choices],
        ),
        chosen,
    )


def show_report(screen: Screen[Any], report: VerifyReport, status: Report) -> None:
    """Show a verification result: green when intact, a lasting error when tampered."""
    status(report.headline(), report.ok)
    if report.ok:
        screen.notify(report.describe(), title="Records verified")
    else:
        screen.notify(
            report.describe() + "\nKeep the data folder as it is, tell the clinic's "
            "responsible person, and compare with the head hash of an earlier export",
            title="Event log TAMPERED",
            severity="error",
            timeout=30,
        )


def start_verify(
    screen: Screen[Any], store: RecordStore, done: Callable[[VerifyReport], None], status: Report
) -> None:
    """Verify the hash chain in a background thread; ``done`` runs on the UI thread (if the screen
    is still shown) with the report."""
    status("Verifying the event log's hash chain…", True)

    def verify() -> VerifyReport:
        return store.verify_chain()

    def finished(outcome: VerifyReport | Failed) -> None:
        if not screen.is_attached:
            return
        if isinstance(outcome, Failed):
            status(f"The event log could not be verified: {outcome.message}", False)
            return
        done(outcome)
        show_report(screen, outcome, status)

    run_in_background(screen.app, "epm-ui-verify", verify, finished)
