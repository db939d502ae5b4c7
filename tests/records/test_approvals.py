"""Protocol approval: bound to the file's exact bytes; draft only on the simulator; retired and
invalid files never."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import protocols
from controller.records import RecordStore
from controller.records.approvals import (
    ApprovalRefusedError,
    approvals_for,
    approve,
    check_runnable,
    is_approved,
)
from tests.records.conftest import protocol_text


def load(path: Path) -> Any:
    return protocols.load_protocol(path)


def test_approve_records_the_exact_file(store: RecordStore, write_protocol: Any) -> None:
    path = write_protocol("aga.yaml", protocol_text())
    result = load(path)
    approval, new = approve(store, result, path, "Head Technician")
    assert new
    assert approval.sha256 == result.sha256
    assert (approval.protocol_id, approval.protocol_version) == ("aga-test", 1)
    assert approval.approved_by == "Head Technician"
    assert approval.file_path == str(path.resolve())
    assert is_approved(store, result.sha256) == approval
    again, new_again = approve(store, result, path, "Someone Else")
    assert (again, new_again) == (approval, False)


def test_approved_file_runs_on_a_real_device(store: RecordStore, write_protocol: Any) -> None:
    path = write_protocol("aga.yaml", protocol_text())
    approve(store, load(path), path, "Head Technician")
    assert check_runnable(load(path), device_is_simulator=False, store=store) == []


def test_edited_file_is_refused_until_approved_again(
    store: RecordStore, write_protocol: Any
) -> None:
    path = write_protocol("aga.yaml", protocol_text())
    approve(store, load(path), path, "Head Technician")
    path.write_text(protocol_text().replace("amplitude_v: 40", "amplitude_v: 45", 1))
    (reason,) = check_runnable(load(path), device_is_simulator=False, store=store)
    assert "this file changed since it was approved (or was never approved)" in reason
    assert f"run `epm approve {path} --by NAME`" in reason
    assert "other content of aga-test version 1 was approved by Head Technician" in reason
    # The simulator runs it (approved status); after approving the edit, so does a real device.
    assert check_runnable(load(path), device_is_simulator=True, store=store) == []
    approve(store, load(path), path, "Head Technician")
    assert check_runnable(load(path), device_is_simulator=False, store=store) == []
    assert len(approvals_for(store, "aga-test", 1)) == 2


def test_never_approved_file_is_refused_on_a_real_device(
    store: RecordStore, write_protocol: Any
) -> None:
    path = write_protocol("aga.yaml", protocol_text())
    (reason,) = check_runnable(load(path), device_is_simulator=False, store=store)
    assert reason.startswith("rule: on a real device a protocol runs only as approved")
    assert "other content" not in reason


def test_draft_runs_only_on_the_simulator(store: RecordStore, write_protocol: Any) -> None:
    path = write_protocol("draft.yaml", protocol_text("draft"))
    assert check_runnable(load(path), device_is_simulator=True, store=store) == []
    (reason,) = check_runnable(load(path), device_is_simulator=False, store=store)
    assert "a draft protocol runs only on the simulator" in reason
    assert "set `status: approved`" in reason
    with pytest.raises(ApprovalRefusedError, match="says `status: draft`"):
        approve(store, load(path), path, "Head Technician")


def test_retired_never_runs_and_is_never_approved(store: RecordStore, write_protocol: Any) -> None:
    path = write_protocol("old.yaml", protocol_text("retired"))
    for simulator in (True, False):
        (reason,) = check_runnable(load(path), device_is_simulator=simulator, store=store)
        assert "a retired protocol never runs" in reason
    with pytest.raises(ApprovalRefusedError, match="retired protocol is never approved"):
        approve(store, load(path), path, "Head Technician")


def test_invalid_file_never_runs_and_is_never_approved(
    store: RecordStore, write_protocol: Any
) -> None:
    path = write_protocol(
        "bad.yaml", protocol_text().replace("pulse_width_us: 500", "pulse_width_us: 2500", 1)
    )
    result = load(path)
    assert not result.ok
    for simulator in (True, False):
        (reason,) = check_runnable(result, device_is_simulator=simulator, store=store)
        assert "only a valid protocol file runs" in reason and "1 error(s)" in reason
    with pytest.raises(ApprovalRefusedError) as err:
        approve(store, result, path, "Head Technician")
    assert any("pulse_width_us" in r for r in err.value.reasons)


def test_approver_name_is_required(store: RecordStore, write_protocol: Any) -> None:
    from controller.records import InvalidRecordError

    path = write_protocol("aga.yaml", protocol_text())
    with pytest.raises(InvalidRecordError, match="--by NAME"):
        approve(store, load(path), path, "  ")


def test_the_store_answers_is_approved_too(store: RecordStore, write_protocol: Any) -> None:
    path = write_protocol("aga.yaml", protocol_text())
    result = load(path)
    assert store.is_approved(result.sha256) is None
    approval, _ = approve(store, result, path, "Head Technician")
    assert store.is_approved(result.sha256) == approval
