"""``epm log --follow``: prints what is there, then each new entry as it is written, across
rotations, every entry once and in order; a file cut short is read again. Waits are on
conditions, never on the clock."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from controller import servicelog
from controller.cli import cmd_log
from tests.servicelog.conftest import wait_until


class Sink:
    """A thread-safe stand-in for standard output."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text = ""

    def write(self, text: str) -> int:
        with self._lock:
            self._text += text
        return len(text)

    def flush(self) -> None:
        return None

    def lines(self) -> list[str]:
        with self._lock:
            return self._text.splitlines()


def test_follow_prints_new_entries_and_follows_a_rotation(data_dir: Path) -> None:
    log = servicelog.install(data_dir, process="test", max_bytes=3_000, backups=3)
    link = logging.getLogger("epm.link")
    sink = Sink()
    stop = threading.Event()
    result: list[int] = []
    try:
        link.info("before following")
        assert log.flush()
        follower = threading.Thread(
            target=lambda: result.append(
                cmd_log.follow(
                    log.path,
                    sink,
                    since=None,
                    level=0,
                    fmt="text",
                    count=None,
                    stop=stop,
                    poll_s=0.01,
                )
            ),
            name="test-follow",
        )
        follower.start()
        assert wait_until(lambda: any("before following" in line for line in sink.lines()))
        link.warning("a new line")
        assert wait_until(lambda: any("a new line" in line for line in sink.lines()))
        # Enough entries to rotate the file (3 kB) at least once, then one more.
        for n in range(30):
            link.info("filler %02d", n)
        assert log.flush()
        assert (log.path.parent / "service.jsonl.1").exists()
        link.error("after the rotation")
        assert wait_until(lambda: any("after the rotation" in line for line in sink.lines()))
    finally:
        stop.set()
        log.close()
    follower.join(10)
    assert result == [0]  # nothing skipped
    messages = [line.split(None, 4)[-1] for line in sink.lines()]
    fillers = [m for m in messages if m.startswith("filler")]
    assert fillers == [f"filler {n:02d}" for n in range(30)]  # each once, in order
    assert messages.index("a new line") < messages.index("filler 00")
    assert messages.index("filler 29") < messages.index("after the rotation")


def test_follow_starts_with_the_last_n_and_reads_a_cut_file_again(data_dir: Path) -> None:
    path = servicelog.log_path(data_dir)
    path.parent.mkdir()
    entry = '{"ts":"2026-03-02T12:00:00+00:00","level":"INFO","area":"link","msg":"%s"}\n'
    path.write_text("".join(entry % f"old {n}" for n in range(5)))
    sink = Sink()
    stop = threading.Event()
    thread = threading.Thread(
        target=cmd_log.follow,
        args=(path, sink),
        kwargs={
            "since": None,
            "level": 0,
            "fmt": "json",
            "count": 2,
            "stop": stop,
            "poll_s": 0.01,
        },
        name="test-follow",
    )
    thread.start()
    try:
        assert wait_until(lambda: len(sink.lines()) == 2)
        assert [line.count("old") for line in sink.lines()] == [1, 1]
        assert '"old 3"' in sink.lines()[0] and '"old 4"' in sink.lines()[1]
        path.write_text(entry % "after a cut")  # the file was cut short (emptied, rewritten)
        assert wait_until(lambda: any("after a cut" in line for line in sink.lines()))
    finally:
        stop.set()
        thread.join(10)
