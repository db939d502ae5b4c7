"""The size cap: each file is rotated before it passes its size, a few backups are kept and
read back in order; a second writer's rotation is followed; the files are the owner's only;
a folder that cannot be written leaves epm running without a log."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from controller import servicelog
from controller.servicelog import JsonLinesFormatter, RotatingJsonLines
from tests.servicelog.conftest import json_lines


def test_rotation_caps_each_file_and_keeps_the_backups_in_order(data_dir: Path) -> None:
    log = servicelog.install(data_dir, process="test", max_bytes=4_000, backups=2)
    try:
        for n in range(400):
            logging.getLogger("epm.link").info("entry %d", n, extra={"n": n})
        assert log.flush()
    finally:
        log.close()
    path = servicelog.log_path(data_dir)
    files = servicelog.log_files(path)
    assert [f.name for f in files] == ["service.jsonl.2", "service.jsonl.1", "service.jsonl"]
    assert all(f.stat().st_size <= 4_000 for f in files)
    # Read back oldest first: the newest 400-odd entries that fit, in the order written.
    numbers = [e["n"] for e in json_lines(path) if "n" in e]
    assert numbers == sorted(numbers) and numbers[-1] == 399
    assert len(numbers) < 400  # the oldest went with the rotation: the cap holds
    reading = servicelog.read_log(path)
    assert reading.skipped == 0 and reading.entries[-1].msg == "epm test stopped"


def test_a_rotation_by_another_process_is_followed_not_written_after(data_dir: Path) -> None:
    """Two handlers on one file stand for the app and `epm sync`: what one writes after the
    other rotated goes to the new file, never to the renamed one."""
    path = servicelog.log_path(data_dir)
    path.parent.mkdir()
    first = RotatingJsonLines(path, max_bytes=1_500, backups=3)
    second = RotatingJsonLines(path, max_bytes=1_500, backups=3)
    for handler in (first, second):
        handler.setFormatter(JsonLinesFormatter())

    def write(handler: RotatingJsonLines, text: str) -> None:
        handler.handle(logging.LogRecord("epm.test", logging.INFO, __file__, 1, text, (), None))

    try:
        write(first, "from the first")
        for n in range(12):
            write(second, f"the second fills the file {n}")  # rotates at least once
        assert (path.parent / "service.jsonl.1").exists()
        write(first, "the first again")
    finally:
        first.close()
        second.close()
    current = [e["msg"] for e in json_lines(path)[-2:]]
    assert current[-1] == "the first again"
    assert "the first again" in path.read_text()  # the file at the path, not a backup
    assert first.write_errors == second.write_errors == 0


def test_the_folder_and_files_are_the_owners_only(data_dir: Path) -> None:
    with servicelog.installed(data_dir, process="test") as log:
        logging.getLogger("epm.link").info("hello")
        assert log.flush()
    path = servicelog.log_path(data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_folder_that_cannot_be_written_leaves_epm_running_without_a_log(
    data_dir: Path,
) -> None:
    (data_dir / "logs").write_text("a file where the folder should be")
    log = servicelog.install(data_dir, process="test")
    try:
        assert not log.active and "cannot be written" in log.error
        logging.getLogger("epm.link").warning("nowhere to go")  # and nothing breaks
    finally:
        log.close()
    assert servicelog.current() is None


def test_installing_twice_for_one_folder_is_one_log_closed_by_the_last_close(
    data_dir: Path, tmp_path: Path
) -> None:
    first = servicelog.install(data_dir, process="ui")
    second = servicelog.install(data_dir, process="sync")
    assert second is first
    first.close()
    assert servicelog.current() is first and first.active
    second.close()
    assert servicelog.current() is None and not first.active
    # Another folder replaces the one installed (a test or a tool that forgot to close).
    other = tmp_path / "other"
    one = servicelog.install(data_dir, process="test")
    two = servicelog.install(other, process="test")
    try:
        assert not one.active and two.active and servicelog.current() is two
    finally:
        two.close()
        one.close()
