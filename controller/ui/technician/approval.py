"""The approval flow shared by the library and the editor: check, show, ask who, record.

Why in one place: approving a protocol file is the clinic's statement that these exact bytes
may run on clients, so both screens must follow the records module's rules identically. The
file is loaded again from disk right before anything is shown (never an older scan or the
editor's unsaved text), refused with the records module's own reasons when a rule forbids it,
its warnings are shown before the name is asked, and if the file changes while the dialog is
open the approval is refused rather than recording bytes nobody looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.content import Content
from textual.screen import Screen

from controller.records import RecordsError, RecordStore
from controller.records.approvals import (
    ApprovalRefusedError,
    approval_refusals,
    approvals_for,
    approve,
    is_approved,
)
from controller.ui.technician.choice_dialog import ChoiceDialog
from controller.ui.technician.prompt_dialog import PromptDialog
from controller.ui.technician.yaml_problems import problem_text
from protocols import LoadResult, load_protocol

#: Called with (message, ok) when the flow ends, so the screen can show the outcome.
Outcome = Callable[[str, bool], None]

MAX_NAME = 120


def check_name(name: str) -> str | None:
    """Why an approver's name is unusable, or ``None``."""
    if not name:
        return "type the approver's full name: the approval record names who approved"
    if len(name) > MAX_NAME:
        return f"the name is longer than {MAX_NAME} characters: shorten it"
    return None


def approval_details(result: LoadResult, store: RecordStore) -> list[Content]:
    """What the approver sees before typing a name: identity, fingerprint, warnings."""
    protocol = result.protocol
    assert protocol is not None
    lines = [
        Content(f"File: {result.path}"),
        Content(f"Protocol: {protocol.id} version {protocol.version} — {protocol.title}"),
        Content(f"SHA-256: {result.sha256}"),
        Content(f"In the file: approved by {protocol.approved_by} on {protocol.approved_on}"),
    ]
    earlier = approvals_for(store, protocol.id, int(protocol.version))
    for other in earlier:
        lines.append(
            Content.styled(
                f"Other content of this id and version was approved by {other.approved_by} "
                f"on {other.approved_at[:10]} ({other.file_path})",
                "$text-warning",
            )
        )
    if result.warnings:
        lines.append(Content(f"{len(result.warnings)} warning(s) — read them before approving:"))
        lines.extend(problem_text(p, result.path.name) for p in result.warnings)
    else:
        lines.append(Content.styled("No warnings.", "$text-success"))
    return lines


def _refused(screen: Screen[Any], path: Path, reasons: list[str], done: Outcome) -> None:
    message = f"{path.name} was not approved:\n" + "\n".join(reasons)
    screen.app.push_screen(ChoiceDialog("Approval refused", message, [("ok", "OK")]))
    done(message, False)


def clinic_server_url(screen: Screen[Any]) -> str:
    """The clinic server the app syncs with ("" when none): approvals are made there."""
    worker = getattr(screen.app, "sync_worker", None)
    return str(getattr(worker, "url", "") or "")


def start_approval(
    screen: Screen[Any], path: Path, store: RecordStore | None, done: Outcome
) -> None:
    """Run the approval of the file at ``path`` from ``screen``; ``done`` gets the outcome.

    With a clinic server (the app's background sync), the approval is made on the server, in
    a thread (the keys stay live meanwhile), and taken here at once; every other station
    honours it after its next pull. A server that cannot be reached records nothing."""
    if store is None:
        done("approval needs the records store, and none is open", False)
        return
    result = load_protocol(path)
    refusals = approval_refusals(result)
    if refusals:
        _refused(screen, path, refusals, done)
        return
    assert result.sha256 is not None
    existing = is_approved(store, result.sha256)
    if existing is not None:
        message = (
            f"{path.name} is already approved: these exact bytes were approved by "
            f"{existing.approved_by} on {existing.approved_at[:10]}"
        )
        screen.notify(message, title="Already approved")
        done(message, True)
        return

    def approve_as(name: str | None) -> None:
        if name is None:
            done("approval cancelled: nothing was recorded", False)
            return
        again = load_protocol(path)
        if again.sha256 != result.sha256:
            _refused(
                screen,
                path,
                [
                    "the file changed on disk while the approval dialog was open: nothing was "
                    "recorded; review the new content and approve again"
                ],
                done,
            )
            return
        url = clinic_server_url(screen)
        if url:
            _approve_on_server(screen, path, store, again, name, url, done)
            return
        try:
            approval, _new = approve(store, again, path, name)
        except ApprovalRefusedError as exc:
            _refused(screen, path, exc.reasons, done)
            return
        except RecordsError as exc:
            _refused(screen, path, [str(exc)], done)
            return
        message = (
            f"{path.name} approved by {approval.approved_by}: {approval.protocol_id} version "
            f"{approval.protocol_version}, SHA-256 {approval.sha256[:12]}…"
        )
        screen.notify(message, title="Approved")
        done(message, True)

    screen.app.push_screen(
        PromptDialog(
            "Approve protocol file",
            "Approver's full name (recorded with the approval):",
            details=approval_details(result, store),
            ok_label="Approve",
            check=check_name,
        ),
        approve_as,
    )


def _approve_on_server(  # noqa: PLR0917 - the approval's context, passed on
    screen: Screen[Any],
    path: Path,
    store: RecordStore,
    result: LoadResult,
    name: str,
    url: str,
    done: Outcome,
) -> None:
    import contextlib
    import threading

    from controller.server import ServerError
    from controller.server.clinic import approve_for_clinic

    screen.notify("Recording the approval on the clinic server…", title="Approving")

    def finish(message: str, ok: bool) -> None:
        if ok:
            screen.notify(message, title="Approved")
            done(message, True)
        else:
            _refused(screen, path, [message], done)

    def work() -> None:  # never touches the DOM: the outcome goes back through the app
        try:
            approval, new = approve_for_clinic(store, result, path, by=name, url=url)
        except (ServerError, RecordsError) as exc:
            outcome = (f"nothing was approved: {exc}", False)
        except Exception as exc:  # the dialog must get an answer
            outcome = (f"nothing was approved: {type(exc).__name__}: {exc}", False)
        else:
            state = "approved" if new else "already approved"
            outcome = (
                f"{path.name} {state} on the clinic server by {approval.approved_by}: "
                f"{approval.protocol_id} version {approval.protocol_version}, SHA-256 "
                f"{approval.sha256[:12]}…; every station honours it from its next pull",
                True,
            )
        # The app may have closed meanwhile: the outcome stands on the server all the same.
        with contextlib.suppress(RuntimeError):
            screen.app.call_from_thread(finish, *outcome)

    threading.Thread(target=work, name="epm-ui-approve", daemon=True).start()
