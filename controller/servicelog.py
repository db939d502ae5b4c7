"""The service log: a structured, size-capped, rotating JSON-lines log in the data folder.

Why: when a unit faults or a link is flaky, a service technician needs the story (connects and
handshakes, losses and reconnects, retransmission bursts, frame errors, faults, alarms,
emergency stops, session starts and ends, and every exception with its traceback) without a
debugger and without client data. The session record is the clinical truth; this log is the
technical one, and it never holds a client's code or name.

How (standard library only, see docs/dependencies.md): the code base logs with plain
``logging.getLogger("epm.<area>")`` (and the older ``controller.*`` loggers), structured facts
as ``extra={...}``. :func:`install` attaches one :class:`~logging.handlers.QueueHandler` to the
``epm`` and ``controller`` loggers: the calling thread (the link's reader, an emergency stop's
caller, the session engine) only formats the message and puts the record on a bounded queue,
never touching the disk and never blocking (a full queue drops and counts). One writer thread
(``epm-servicelog``, :class:`Writer`) takes the records in batches, once a burst of them is
over (so its work never competes with what an event sets off: an emergency stop, the
supervisor's reaction), removes client data (:class:`ClientDataFilter`: known keys
redacted at any depth, and client codes and names given to :func:`protect` scrubbed from all
text) and writes one JSON object per line to
``<data folder>/logs/service.jsonl`` (:class:`JsonLinesFormatter`), rotated at
:data:`MAX_BYTES` with :data:`BACKUPS` older files kept (:class:`RotatingJsonLines`, which also
copes with a second epm process writing the same file). :func:`install` also routes uncaught
exceptions (``sys.excepthook``, ``threading.excepthook``) into the log, with their traceback.

Reading (``epm log`` and the device screen) is plain functions over the files:
:func:`read_log`, :func:`last_entries`, :class:`Tail`, :class:`Follower`, :func:`format_entry`,
:func:`short_line`, :func:`parse_since` and :func:`parse_level`. See docs/service-log.md.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import datetime as dt
import enum
import io
import json
import logging
import logging.handlers
import math
import os
import queue
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

try:  # POSIX: a lock file serialises writers of the same log (the app and `epm sync`)
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writer per data folder is assumed
    fcntl = None  # type: ignore[assignment]

#: The folder inside the data folder, the file, and the lock file next to it.
LOG_FOLDER = "logs"
LOG_FILENAME = "service.jsonl"
LOCK_FILENAME = "service.lock"
#: Each file is rotated before it would pass this size; BACKUPS older files are kept
#: (``service.jsonl.1`` is the newest of them), so the log never takes more than about
#: (BACKUPS + 1) × MAX_BYTES of disk.
MAX_BYTES = 1_000_000
BACKUPS = 4
#: What is written: INFO and above.
LEVEL = logging.INFO
#: The loggers whose records (and their children's) are written.
LOGGER_NAMES = ("epm", "controller")
#: Records waiting for the writer thread; beyond this they are dropped (and counted), never
#: waited for: a stuck disk must not stall the link or an emergency stop.
QUEUE_SIZE = 10_000
THREAD_NAME = "epm-servicelog"
#: The writer writes once no entry came for WRITE_QUIET_S (at the latest WRITE_MAX_DELAY_S after
#: the first one waiting): entries come in bursts (a fault, an ESTOP and what follows it), and
#: the file work then comes after the burst, never in the middle of it.
WRITE_QUIET_S = 0.05
WRITE_MAX_DELAY_S = 1.0
#: The writer thread's niceness (lower priority than every other thread of epm).
WRITER_NICE = 10
FILE_MODE = 0o600
DIR_MODE = 0o700
#: Longest message, traceback and field text kept in one entry (characters).
MAX_MESSAGE = 2_000
MAX_TRACEBACK = 16_000
MAX_FIELD = 500
#: Keys whose values are never written, at any depth of an entry's fields.
REDACTED_KEYS = frozenset(
    {
        "client",
        "client_code",
        "client_name",
        "client_id",
        "clients",
        "name",
        "first_name",
        "last_name",
        "full_name",
        "patient",
        "patient_name",
        "date_of_birth",
        "dob",
        "notes",
    }
)
REDACTED = "[redacted]"
#: What a protected client code or name becomes in any text.
SCRUBBED = "[client]"
#: Shorter values are not scrubbed from free text: they cannot be told from numbers and words.
MIN_PROTECTED = 3
MAX_PROTECTED = 256
#: Keys of an entry itself; a field with one of these names is written as ``f_<name>``.
RESERVED = ("ts", "level", "area", "msg", "logger", "thread", "pid", "exc")

_log = logging.getLogger("epm")


def _standard_attributes() -> frozenset[str]:
    probe = logging.LogRecord("probe", logging.INFO, __file__, 0, "", (), None)
    return frozenset(probe.__dict__) | {"message", "asctime", "taskName", "epm_fields"}


#: LogRecord attributes that are not fields (everything else a record carries came from
#: ``extra=``).
STANDARD_ATTRIBUTES = _standard_attributes()


# --- where the log is --------------------------------------------------------------------------


def log_path(data_dir: str | Path) -> Path:
    """The service log of the data folder ``data_dir``."""
    return Path(data_dir) / LOG_FOLDER / LOG_FILENAME


def data_dir_for(explicit: str | Path | None = None) -> Path:
    """The data folder as every command chooses it (``--data-dir``, ``$EPM_HOME``, the
    per-user default), without creating it: reading a log must not create a folder."""
    from controller.records.paths import ENV_VAR, default_data_dir

    if explicit is not None and str(explicit).strip():
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else default_data_dir()


def log_files(path: Path) -> list[Path]:
    """The log's files that exist, oldest first (``service.jsonl.4`` ... ``service.jsonl``)."""
    backups = []
    for candidate in path.parent.glob(path.name + ".*"):
        suffix = candidate.name[len(path.name) + 1 :]
        if suffix.isdigit():
            backups.append((int(suffix), candidate))
    files = [p for _, p in sorted(backups, reverse=True)]
    if path.exists():
        files.append(path)
    return files


# --- client data never leaves the process --------------------------------------------------------


#: A database error quotes the row it refused (PostgreSQL's DETAIL: a key's value, a failing
#: row), which may be a client's code or name: the values go, the column names stay.
_ROW_VALUES = (
    (
        re.compile(r"(Key \([^)]*\)=\().*?(\)(?: already exists| is not present|\.|$))", re.M),
        r"\1[redacted]\2",
    ),
    (re.compile(r"(Failing row contains \().*(\)\.?)$", re.M), r"\1[redacted]\2"),
)


class _Protected:
    """Client codes and names the station is working with, scrubbed from every entry's text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str | None]) -> None:
        with self._lock:
            for value in values:
                text = (value or "").strip()
                if len(text) < MIN_PROTECTED:
                    continue
                self._values.pop(text, None)
                self._values[text] = None
            while len(self._values) > MAX_PROTECTED:
                del self._values[next(iter(self._values))]
            words = sorted(self._values, key=len, reverse=True)
            self._pattern = (
                re.compile(
                    r"(?<![\w-])(?:" + "|".join(re.escape(w) for w in words) + r")(?![\w-])",
                    re.IGNORECASE,
                )
                if words
                else None
            )

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None

    def scrub(self, text: str) -> str:
        if "Key (" in text or "Failing row" in text:
            for row, keep in _ROW_VALUES:
                text = row.sub(keep, text)
        pattern = self._pattern
        return text if pattern is None else pattern.sub(SCRUBBED, text)


_protected = _Protected()


def protect(*values: str | None) -> None:
    """Never write these client codes or names, in any entry's text (call it when a session
    for a client is set up: the app's ``start_session``, ``epm run --headless --client``).
    Values shorter than :data:`MIN_PROTECTED` characters are ignored (see the module doc)."""
    _protected.add(values)


def forget_protected() -> None:
    """Forget every protected value (tests)."""
    _protected.clear()


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if str(k).lower() in REDACTED_KEYS else _redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v, depth + 1) for v in value]
    if isinstance(value, str):
        return _protected.scrub(value)
    return value


class ClientDataFilter(logging.Filter):
    """Takes client data out of an entry before it is written (never refuses the entry: the
    technical story must stay whole): a field named like :data:`REDACTED_KEYS` (at any depth)
    becomes ``[redacted]``; protected client codes and names become ``[client]`` in the
    message, the traceback and every text field."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.epm_fields = _redact(_fields_of(record))
        record.msg = _protected.scrub(_message_of(record))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _traceback_of(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = _protected.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = _protected.scrub(record.stack_info)
        return True


# --- turning a record into one JSON line ---------------------------------------------------------


def area_of(logger_name: str) -> str:
    """``epm.link`` and ``controller.link.link`` -> ``link``; ``epm`` -> ``epm``."""
    parts = logger_name.split(".")
    if parts[0] in ("epm", "controller"):
        return parts[1] if len(parts) > 1 else "epm"
    return logger_name


def _json_safe(value: Any, depth: int = 0) -> Any:
    if isinstance(value, enum.Enum):
        return value.name if isinstance(value, enum.IntEnum | enum.IntFlag) else value.value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_FIELD else value[:MAX_FIELD] + "…"
    if depth > 6:
        return str(value)[:MAX_FIELD]
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v, depth + 1) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)[:MAX_FIELD]


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured facts of a record: what ``extra=`` added (a ``fields`` dict is merged)."""
    ready = record.__dict__.get("epm_fields")
    if isinstance(ready, dict):
        return ready
    fields: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in STANDARD_ATTRIBUTES or key.startswith("_"):
            continue
        if key == "fields" and isinstance(value, Mapping):
            fields.update(_json_safe(value))
        else:
            fields[key] = _json_safe(value)
    return fields


def _message_of(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception as exc:  # bad %-arguments: keep what can be kept
        text = f"{record.msg!s} (unformattable arguments: {exc})"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def _traceback_of(exc_info: Any) -> str:
    if exc_info is True:
        exc_info = sys.exc_info()
    if not isinstance(exc_info, tuple) or exc_info[0] is None:
        return ""
    return "".join(traceback.format_exception(*exc_info)).rstrip("\n")


def _local_iso(created: float) -> str:
    """``created`` as local time with its UTC offset, to the millisecond (ISO 8601)."""
    local = time.localtime(created)
    offset = local.tm_gmtoff
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset)
    millis = int((created - int(created)) * 1000)
    return (
        f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{millis:03d}"
        f"{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}"
    )


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (local time with its UTC offset, ms), ``level``,
    ``area``, ``msg``, the record's fields, ``thread``, ``pid``, ``logger`` and, with an
    exception, ``exc`` (its traceback). Never raises for a value it cannot encode."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _local_iso(record.created),
            "level": record.levelname,
            "area": area_of(record.name),
            "msg": _message_of(record),
        }
        for key, value in _fields_of(record).items():
            entry[f"f_{key}" if key in RESERVED else key] = value
        entry["thread"] = record.threadName
        entry["pid"] = record.process
        entry["logger"] = record.name
        exc = record.exc_text or (_traceback_of(record.exc_info) if record.exc_info else "")
        if record.stack_info:
            exc = (exc + "\n" if exc else "") + record.stack_info
        if exc:
            entry["exc"] = exc if len(exc) <= MAX_TRACEBACK else "…" + exc[-MAX_TRACEBACK:]
        return json.dumps(entry, ensure_ascii=False, default=str, separators=(",", ":"))


class _Enqueue(logging.handlers.QueueHandler):
    """On the logging thread: make the record self-contained (message formatted, traceback as
    text, fields copied) and put it on the queue without ever waiting."""

    def __init__(self, q: queue.Queue[Any]) -> None:
        super().__init__(q)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        ready = copy.copy(record)
        ready.msg = _message_of(record)
        ready.args = None
        if record.exc_info:
            ready.exc_text = record.exc_text or _traceback_of(record.exc_info)
        ready.exc_info = None
        ready.epm_fields = _fields_of(record)
        return ready

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class RotatingJsonLines(logging.handlers.RotatingFileHandler):
    """The file: rotated before it passes ``max_bytes`` (``backups`` older files kept), owner
    read/write only, each line written whole and flushed. Another epm process may write the
    same file (the app and ``epm sync``): a lock file serialises the writes and rotations, and
    a file rotated by the other process is reopened, never written after it was renamed.
    A write that fails is counted (``write_errors``), never printed over the terminal UI."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        super().__init__(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
        )
        self.write_errors = 0
        self.last_error = ""
        self.dropped_from: _Enqueue | None = None
        self._dropped_told = 0
        self._lock_fd: int | None = None
        self._lock_path = path.parent / LOCK_FILENAME

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        return open(fd, "a", encoding="utf-8")

    @contextlib.contextmanager
    def _interprocess(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _current_stream(self) -> io.TextIOWrapper:
        """The stream of the file at the path now (reopened when it was rotated elsewhere)."""
        stream = self.stream
        if stream is not None:
            try:
                same = os.fstat(stream.fileno()).st_ino == os.stat(self.baseFilename).st_ino
            except OSError:
                same = False
            if not same:
                with contextlib.suppress(OSError):
                    stream.close()
                stream = self.stream = None
        if stream is None:
            stream = self.stream = self._open()
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lines = [self.format(record) + "\n"]
            source = self.dropped_from
            if source is not None and source.dropped > self._dropped_told:
                lost, self._dropped_told = source.dropped - self._dropped_told, source.dropped
                lines.insert(0, _dropped_line(lost) + "\n")
            with self._interprocess():
                for line in lines:
                    stream = self._current_stream()
                    size = os.fstat(stream.fileno()).st_size
                    if self.maxBytes > 0 and size and size + len(line.encode()) > self.maxBytes:
                        self.doRollover()
                        stream = self._current_stream()
                    stream.write(line)
                    stream.flush()
        except Exception as exc:
            self.write_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        super().close()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None


def _dropped_line(count: int) -> str:
    record = logging.LogRecord(
        "epm",
        logging.WARNING,
        __file__,
        0,
        "%d log entries were dropped: the writer fell behind",
        (count,),
        None,
    )
    record.epm_fields = {"event": "entries_dropped", "count": count}
    return JsonLinesFormatter().format(record)


class Writer:
    """The one thread that writes the queued records (``epm-servicelog``): it waits for one,
    then until the queue is quiet for :data:`WRITE_QUIET_S` (at most
    :data:`WRITE_MAX_DELAY_S`; at once after :meth:`hurry`), then hands the handler the batch,
    yielding between entries; ``task_done`` for each, so ``queue.join()`` means "all written"."""

    def __init__(
        self,
        q: queue.Queue[Any],
        handler: logging.Handler,
        quiet_s: float = WRITE_QUIET_S,
        max_delay_s: float = WRITE_MAX_DELAY_S,
    ) -> None:
        self._queue = q
        self._handler = handler
        self._quiet_s = quiet_s
        self._max_delay_s = max_delay_s
        self._hurry = threading.Event()
        self._stop = object()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def hurry(self) -> None:
        """Write what is queued now (a flush, closing)."""
        self._hurry.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, then end the thread."""
        self._hurry.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(self._stop, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        # The least urgent thread of the process: below the link's, the engine's and the UI's
        # (Linux and macOS take a thread id here; elsewhere it stays as it is).
        with contextlib.suppress(Exception):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
        q = self._queue
        while True:
            batch = [q.get()]
            until = time.monotonic() + self._max_delay_s
            while not self._hurry.is_set():
                left = until - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(q.get(timeout=min(self._quiet_s, left)))
                except queue.Empty:
                    break  # quiet: the burst is over
            while True:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            self._hurry.clear()
            stopping = False
            for record in batch:
                if record is self._stop:
                    stopping = True
                else:
                    # The handler counts its own failures; the writer never dies of one.
                    with contextlib.suppress(Exception):
                        self._handler.handle(record)
                    time.sleep(0)  # let a thread waiting for the GIL have it between entries
                q.task_done()
            if stopping:
                return


# --- installing it ------------------------------------------------------------------------------


_install_lock = threading.Lock()


class _Installed:
    """The service log installed in this process (guarded by ``_install_lock``)."""

    log: ServiceLog | None = None


_installed = _Installed()


class ServiceLog:
    """The installed service log of one data folder (see :func:`install`)."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = MAX_BYTES,
        backups: int = BACKUPS,
        level: int = LEVEL,
        hooks: bool = True,
        process: str = "epm",
    ) -> None:
        self.path = path
        self.process = process
        self.level = level
        self.error = ""
        """Why the log could not be opened (then nothing is written; epm runs on)."""
        self._max_bytes = max_bytes
        self._backups = backups
        self._hooks = hooks
        self._users = 1
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_SIZE)
        self._enqueue = _Enqueue(self._queue)
        self._file: RotatingJsonLines | None = None
        self._writer: Writer | None = None
        self._levels: dict[str, int] = {}
        self._prev_sys_hook: Callable[..., Any] | None = None
        self._prev_thread_hook: Callable[..., Any] | None = None
        self._active = False

    @property
    def active(self) -> bool:
        """Whether entries are being written."""
        return self._active

    @property
    def write_errors(self) -> int:
        return self._file.write_errors if self._file is not None else 0

    @property
    def dropped(self) -> int:
        return self._enqueue.dropped

    def _start(self) -> None:
        try:
            self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            handler = RotatingJsonLines(self.path, self._max_bytes, self._backups)
            handler.stream = handler._open()  # fail here, not silently on the first entry
        except OSError as exc:
            self.error = f"the service log {self.path} cannot be written: {exc}"
            return
        handler.setFormatter(JsonLinesFormatter())
        handler.addFilter(ClientDataFilter())
        handler.dropped_from = self._enqueue
        self._file = handler
        self._enqueue.setLevel(self.level)
        self._writer = Writer(self._queue, handler)
        self._writer.start()
        for name in LOGGER_NAMES:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            if logger.getEffectiveLevel() > self.level:
                logger.setLevel(self.level)
            logger.addHandler(self._enqueue)
        if self._hooks:
            self._prev_sys_hook = sys.excepthook
            self._prev_thread_hook = threading.excepthook
            sys.excepthook = self._sys_hook
            threading.excepthook = self._thread_hook
        atexit.register(self._at_exit)
        self._active = True

    def _sys_hook(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        if self._active and not issubclass(exc_type, KeyboardInterrupt):
            logging.getLogger("epm.crash").critical(
                "uncaught exception: %s: %s",
                exc_type.__name__,
                exc,
                exc_info=(exc_type, exc, tb),
                extra={"event": "uncaught_exception"},
            )
        previous = self._prev_sys_hook or sys.__excepthook__
        previous(exc_type, exc, tb)

    def _thread_hook(self, args: threading.ExceptHookArgs) -> None:
        if self._active and args.exc_type is not SystemExit:
            name = args.thread.name if args.thread is not None else "?"
            logging.getLogger("epm.crash").critical(
                "uncaught exception in thread %s: %s: %s",
                name,
                args.exc_type.__name__,
                args.exc_value,
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
                extra={"event": "uncaught_exception", "in_thread": name},
            )
        previous = self._prev_thread_hook or threading.__excepthook__
        previous(args)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every entry logged so far is written (tests; the device screen never
        needs it). False after ``timeout`` s."""
        if not self._active:
            return True
        done = threading.Event()
        if self._writer is not None:
            self._writer.hurry()

        def join() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=join, name="epm-servicelog-flush", daemon=True).start()
        return done.wait(timeout)

    def close(self) -> None:
        """Done with it (each :func:`install` is matched by one close): the last close writes
        what is queued, then removes the handler, the levels and the hooks it installed."""
        with _install_lock:
            self._users -= 1
            if self._users > 0:
                return
            if _installed.log is self:
                _installed.log = None
        self._teardown()

    def _at_exit(self) -> None:
        with _install_lock:
            if _installed.log is self:
                _installed.log = None
        self._teardown()

    def _teardown(self) -> None:
        if not self._active:
            return
        _log.info(
            "epm %s stopped",
            self.process,
            extra={"event": "process_end", "program": self.process},
        )
        self._active = False
        for name in LOGGER_NAMES:
            logger = logging.getLogger(name)
            logger.removeHandler(self._enqueue)
            if name in self._levels:
                logger.setLevel(self._levels[name])
        if self._hooks:
            if sys.excepthook == self._sys_hook:
                sys.excepthook = self._prev_sys_hook or sys.__excepthook__
            if threading.excepthook == self._thread_hook:
                threading.excepthook = self._prev_thread_hook or threading.__excepthook__
        if self._writer is not None:
            self._writer.stop()  # writes what is queued first
            self._writer = None
        if self._file is not None:
            self._file.close()
        with contextlib.suppress(Exception):
            atexit.unregister(self._at_exit)


def install(
    data_dir: str | Path,
    *,
    process: str = "epm",
    max_bytes: int = MAX_BYTES,
    backups: int = BACKUPS,
    level: int = LEVEL,
    hooks: bool = True,
) -> ServiceLog:
    """Write the ``epm`` and ``controller`` loggers' entries to ``data_dir``'s service log.

    Installed once per process: a second install for the same folder returns the same log
    (close it as often as it was installed); one for another folder closes the first.
    ``process`` names the program in the start and end entries (``ui``, ``run``, ``sync``).
    Never raises for an unwritable folder: the returned log is then inactive and says why
    (``error``), and epm runs on without it.
    """
    path = log_path(data_dir).absolute()
    with _install_lock:
        current = _installed.log
        if current is not None and current.path == path and current.active:
            current._users += 1
            return current
        _installed.log = None
    if current is not None:
        current._teardown()
    service = ServiceLog(
        path, max_bytes=max_bytes, backups=backups, level=level, hooks=hooks, process=process
    )
    service._start()
    if service.active:
        from controller import __version__

        with _install_lock:
            _installed.log = service
        _log.info(
            "epm %s started (version %s, pid %d)",
            process,
            __version__,
            os.getpid(),
            extra={"event": "process_start", "program": process, "version": __version__},
        )
    return service


def current() -> ServiceLog | None:
    """The service log installed in this process, if any."""
    return _installed.log


@contextlib.contextmanager
def installed(data_dir: str | Path, *, process: str = "epm") -> Iterator[ServiceLog]:
    """:func:`install` for the length of a ``with`` block."""
    service = install(data_dir, process=process)
    try:
        yield service
    finally:
        service.close()


# --- reading it ---------------------------------------------------------------------------------

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


@dataclass(frozen=True)
class Entry:
    """One entry as read back: ``when`` (aware), the level, area and message, its fields,
    its traceback (``exc``) and the line as written (``line``)."""

    when: dt.datetime
    level: str
    levelno: int
    area: str
    msg: str
    fields: dict[str, Any] = field(default_factory=dict)
    exc: str | None = None
    line: str = ""

    @property
    def event(self) -> str:
        return str(self.fields.get("event", ""))


#: Fields not shown in the readable form (they are in ``--format json``).
QUIET_FIELDS = frozenset({"event", "thread", "pid", "logger", "in_thread", "protocol_sha256"})


def parse_entry(line: str) -> Entry | None:
    """The entry on one line of the log, or None when the line is not one (cut short by a
    crash, edited by hand, another program's)."""
    text = line.strip()
    if not text:
        return None
    try:
        raw = json.loads(text)
        when = dt.datetime.fromisoformat(str(raw["ts"]))
        level = str(raw["level"]).upper()
        msg = str(raw["msg"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(raw, dict):
        return None
    if when.tzinfo is None:
        when = when.astimezone()
    fields = {k: v for k, v in raw.items() if k not in ("ts", "level", "area", "msg", "exc")}
    exc = raw.get("exc")
    return Entry(
        when=when,
        level=level,
        levelno=LEVELS.get(level.lower(), 0),
        area=str(raw.get("area", "")),
        msg=msg,
        fields=fields,
        exc=str(exc) if exc else None,
        line=text,
    )


@dataclass
class Reading:
    """What :func:`read_log` found: the entries (oldest first) and how many lines were not
    entries (skipped)."""

    entries: list[Entry] = field(default_factory=list)
    skipped: int = 0
    files: list[Path] = field(default_factory=list)


def _keep(entry: Entry, since: dt.datetime | None, level: int) -> bool:
    return entry.levelno >= level and (since is None or entry.when >= since)


def read_log(path: Path, *, since: dt.datetime | None = None, level: int = 0) -> Reading:
    """Every entry of the log at ``path``, its rotated files first, oldest first, at
    ``level`` or above and from ``since`` on. Unreadable lines are skipped and counted;
    a file that vanishes while it is read (rotated) is passed over."""
    reading = Reading(files=log_files(path))
    for file in reading.files:
        try:
            with open(file, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if not line.strip():
                        continue
                    entry = parse_entry(line)
                    if entry is None:
                        reading.skipped += 1
                    elif _keep(entry, since, level):
                        reading.entries.append(entry)
        except FileNotFoundError:
            continue
    # In time order: an event's entry is made shortly after it happened (the device client
    # writes its events 20 ms late, off the link's threads), so the file's order may differ.
    reading.entries.sort(key=lambda e: e.when)
    return reading


def _tail_lines(file: Path, wanted: int, chunk: int = 16_384) -> list[str]:
    """The last ``wanted`` (or more) complete lines of ``file``, read from its end."""
    with open(file, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        pos = handle.tell()
        data = b""
        while pos > 0 and data.count(b"\n") <= wanted:
            step = min(chunk, pos)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
    lines = data.split(b"\n")
    if pos > 0:
        lines = lines[1:]  # the first may be cut
    return [line.decode("utf-8", "replace") for line in lines if line.strip()]


def last_entries(path: Path, count: int, *, level: int = 0) -> list[Entry]:
    """The last ``count`` entries of the log (oldest first), at ``level`` or above, read from
    the end of the files (the device screen calls this every second)."""
    found: list[Entry] = []
    for file in reversed(log_files(path)):
        try:
            lines = _tail_lines(file, (count - len(found)) * 2 + 4)
        except OSError:
            continue
        entries = [e for e in map(parse_entry, lines) if e is not None and e.levelno >= level]
        found = entries[-(count - len(found)) :] + found
        if len(found) >= count:
            break
    found.sort(key=lambda e: e.when)  # see read_log
    return found[-count:] if count > 0 else []


class Tail:
    """The last entries of a log, read again only when its file changed (for a screen that
    refreshes every second)."""

    def __init__(self, path: Path, count: int = 8) -> None:
        self.path = path
        self.count = count
        self._seen: tuple[int, int, int] | None = None
        self._entries: list[Entry] = []

    def entries(self) -> list[Entry]:
        try:
            st = os.stat(self.path)
        except OSError:
            self._seen, self._entries = None, []
            return []
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._seen:
            self._seen = key
            self._entries = last_entries(self.path, self.count)
        return list(self._entries)


class Follower:
    """New complete lines of a growing log, across rotations (``epm log --follow``).

    ``poll()`` returns the lines written since the last poll. When the file was rotated (the
    path now names a new file), the rest of the old file is read first, then the new one
    from its start; a file cut short starts again from its beginning.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None
        self._ino: int | None = None
        self._pending = b""

    def _open(self) -> bool:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
        except OSError:
            return False
        self._handle = handle
        self._ino = os.fstat(handle.fileno()).st_ino
        self._pending = b""
        return True

    def _read(self) -> list[str]:
        data = self._pending + self._handle.read()
        *complete, self._pending = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete if line.strip()]

    def poll(self) -> list[str]:
        if self._handle is None and not self._open():
            return []
        lines = self._read()
        try:
            st = os.stat(self.path)
        except OSError:
            return lines  # between a rotation's rename and the new file: next time
        if st.st_ino != self._ino:
            self._handle.close()
            if self._open():
                lines += self._read()
        elif st.st_size < self._handle.tell():  # cut short: read it again from the start
            self._handle.seek(0)
            self._pending = b""
            lines += self._read()
        return lines

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if (not value or " " in value) else value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value, ensure_ascii=False, default=str)


def _said(value: Any, message: str) -> bool:
    """Whether the message already says this field's value (a port, a serial, a boot id):
    the readable form does not repeat it."""
    if isinstance(value, list) and value:
        return all(isinstance(v, str) and _said(v, message) for v in value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return False
    text = str(value)
    return (
        len(text) >= 3
        and re.search(r"(?<![\w-])" + re.escape(text) + r"(?![\w-])", message) is not None
    )


def format_entry(entry: Entry, *, tz: dt.tzinfo | None = None, traceback: bool = True) -> str:
    """The readable form of an entry: local time, level, area, message and key fields
    (``key=value``), with its traceback indented below it."""
    when = entry.when.astimezone(tz)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"
    fields = "  ".join(
        f"{k}={_value_text(v)}"
        for k, v in entry.fields.items()
        if k not in QUIET_FIELDS and not _said(v, entry.msg)
    )
    text = f"{stamp} {entry.level:<8} {entry.area:<8} {entry.msg}"
    if fields:
        text += "  " + fields
    if traceback and entry.exc:
        text += "\n" + "\n".join("    " + line for line in entry.exc.splitlines())
    return text


SHORT_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "WARN", "ERROR": "ERROR"}


def short_line(entry: Entry, width: int = 78, *, tz: dt.tzinfo | None = None) -> str:
    """One screen line: ``HH:MM:SS LEVEL area message``, cut to ``width`` columns."""
    when = entry.when.astimezone(tz)
    level = SHORT_LEVELS.get(entry.level, entry.level[:5])
    text = f"{when:%H:%M:%S} {level:<5} {entry.area:<7} {entry.msg}"
    text = " ".join(text.split("\n"))
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|w)s?\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400}
_UNIT_S["w"] = 7 * 86400


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``--since``: an ISO date or time (``2026-03-02``, ``2026-03-02T13:05``, with or
    without an offset; no offset is local time), a time today (``13:05``), a span back from
    now (``90s``, ``10m``, ``2h``, ``3d``, ``1w``), ``today`` or ``yesterday``. Raises
    ValueError saying what is accepted."""
    now = (now or dt.datetime.now()).astimezone()
    word = text.strip().lower()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if word == "today":
        return midnight
    if word == "yesterday":
        return (midnight - dt.timedelta(days=1)).replace(tzinfo=None).astimezone()
    if word == "now":
        return now
    match = _RELATIVE.match(word)
    if match:
        return now - dt.timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", word):
            clock = dt.time.fromisoformat(word if len(word.split(":")[0]) == 2 else "0" + word)
            when = dt.datetime.combine(now.date(), clock)
        else:
            when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give an ISO date or time (2026-03-02, 2026-03-02T13:05, "
            "13:05), a span back from now (90s, 10m, 2h, 3d, 1w), today or yesterday"
        ) from None
    return when.astimezone() if when.tzinfo is None else when


def parse_level(text: str) -> int:
    """``--level``: debug, info, warning (warn), error or critical (any case)."""
    level = LEVELS.get(text.strip().lower())
    if level is None:
        raise ValueError(f"{text!r} is not a level: use debug, info, warning, error or critical")
    return level
