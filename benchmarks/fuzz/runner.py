"""The fuzz loop shared by every target: cases, escapes, slow inputs, summaries and fixtures.

A target is a :class:`Fuzzer`: ``generate(seed, index)`` makes case ``index`` of ``seed`` (always
the same bytes: its ``random.Random`` is derived from the target, the seed and the index only) and
``check(case)`` runs the code under test on it. ``check`` returns the invariants the outcome broke;
any exception it lets through is an *escape*. A target that checks several cases together (the
protocol library, folder by folder) also has ``check_batch``.

Runs are split into chunks of consecutive cases; with ``jobs > 1`` the chunks run in worker
processes and their summaries are merged, so the figures do not depend on the number of jobs
(except the times).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[2]
#: Where escapes are saved for replay (``escape-<target>-<case>.bin`` and a ``.json`` beside it).
FIXTURES = ROOT / "tests" / "data" / "fuzz"
#: An input that takes longer than this is reported as slow (a failure of its own).
SLOW_S = 1.0
#: A case still running after this is stopped and reported as slow (timed out).
TIMEOUT_S = 10.0
#: Escapes kept per signature (with their bytes) and saved as fixtures per run and target.
KEEP_PER_SIGNATURE = 1
MAX_FIXTURES = 30
#: Source folders of the project: the innermost frame in one of them names where an escape rose.
_OWN = ("protocols/", "controller/", "simulator/")


@dataclass(frozen=True)
class Case:
    """One generated input. ``data`` is what is saved for replay; ``meta`` is JSON-ready."""

    target: str
    seed: int
    index: int
    description: str
    data: bytes
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """What went wrong with one case: ``kind`` is ``escape``, ``invariant`` or ``slow``."""

    kind: str
    signature: str
    detail: str


class EscapeError(Exception):
    """An exception from the code under test, with the call it came out of."""

    def __init__(self, where: str, error: BaseException) -> None:
        super().__init__(f"{where}: {error!r}")
        self.where = where
        self.error = error


class Fuzzer(Protocol):
    name: str
    default_count: int
    #: Cases checked together by ``check_batch`` (1: no batch check). Chunks are multiples.
    batch: int

    def __enter__(self) -> Fuzzer: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def generate(self, seed: int, index: int) -> Case: ...

    def check(self, case: Case, notes: Counter[str]) -> list[Failure]: ...

    def check_batch(
        self, cases: Sequence[Case], notes: Counter[str]
    ) -> list[tuple[Case, Failure]]: ...


@dataclass
class EscapeRecord:
    seed: int
    case: int
    description: str
    kind: str
    signature: str
    detail: str
    size: int
    data: bytes = b""
    meta: dict[str, Any] = field(default_factory=dict)
    fixture: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["data"]
        return out


@dataclass
class Summary:
    """The figures of one target's run (or of one chunk, before merging)."""

    target: str
    seed: int
    start: int
    cases: int = 0
    escapes: int = 0
    slow: int = 0
    signatures: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    first: list[EscapeRecord] = field(default_factory=list)
    slowest_s: float = 0.0
    slowest_case: int | None = None
    slowest_size: int = 0
    slowest_description: str = ""
    total_s: float = 0.0
    jobs: int = 1

    @property
    def failed(self) -> bool:
        return bool(self.escapes or self.slow)

    def add(self, case: Case, failure: Failure) -> None:
        if failure.kind == "slow":
            self.slow += 1
        else:
            self.escapes += 1
        key = f"{failure.kind}: {failure.signature}"
        self.signatures[key] += 1
        if self.signatures[key] <= KEEP_PER_SIGNATURE:
            self.first.append(
                EscapeRecord(
                    case.seed,
                    case.index,
                    case.description,
                    failure.kind,
                    failure.signature,
                    failure.detail,
                    len(case.data),
                    case.data,
                    case.meta,
                )
            )

    def timed(self, case: Case, seconds: float) -> None:
        if seconds >= self.slowest_s:
            self.slowest_s = seconds
            self.slowest_case = case.index
            self.slowest_size = len(case.data)
            self.slowest_description = case.description

    def merge(self, other: Summary) -> None:
        self.cases += other.cases
        self.escapes += other.escapes
        self.slow += other.slow
        self.signatures.update(other.signatures)
        self.notes.update(other.notes)
        self.first.extend(other.first)
        if other.slowest_s >= self.slowest_s and other.slowest_case is not None:
            self.slowest_s = other.slowest_s
            self.slowest_case = other.slowest_case
            self.slowest_size = other.slowest_size
            self.slowest_description = other.slowest_description

    def finish(self) -> None:
        """Keep the first escape of each signature, in case order."""
        seen: Counter[str] = Counter()
        kept = []
        for record in sorted(self.first, key=lambda r: r.case):
            key = f"{record.kind}: {record.signature}"
            seen[key] += 1
            if seen[key] <= KEEP_PER_SIGNATURE:
                kept.append(record)
        self.first = kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "seed": self.seed,
            "start": self.start,
            "cases": self.cases,
            "escapes": self.escapes,
            "slow": self.slow,
            "signatures": dict(self.signatures.most_common()),
            "first": [r.to_dict() for r in self.first],
            "slowest": {
                "seconds": round(self.slowest_s, 4),
                "case": self.slowest_case,
                "size": self.slowest_size,
                "description": self.slowest_description,
            },
            "notes": dict(sorted(self.notes.items())),
            "total_s": round(self.total_s, 2),
            "jobs": self.jobs,
        }


# --- describing an exception -------------------------------------------------------------------


def _where(error: BaseException) -> str:
    """``file:line in function`` of the innermost project frame the exception went through."""
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        path = frame.filename.replace(os.sep, "/")
        for own in _OWN:
            at = path.rfind("/" + own)
            if at >= 0:
                return f"{path[at + 1 :]}:{frame.lineno} in {frame.name}"
    if frames:
        last = frames[-1]
        return f"{Path(last.filename).name}:{last.lineno} in {last.name}"
    return "?"


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def escape_failure(error: BaseException, call: str | None = None) -> Failure:
    """An escaped exception as a failure; the signature ignores numbers (one bug, one line)."""
    if isinstance(error, EscapeError):
        return escape_failure(error.error, error.where)
    message = _first_line(str(error))
    where = _where(error)
    # Numbers and quoted values vary from input to input of one bug: keep the words.
    shape = message.split(" with text ")[0]
    shape = re.sub(r"b?'[^']*'|\"[^\"]*\"", "'…'", shape)
    shape = re.sub(r"\d+", "N", shape)[:80]
    site = re.sub(r":\d+ in ", " in ", where)
    head = f"{call}: " if call else ""
    signature = f"{head}{type(error).__name__} at {site}: {shape}"
    return Failure("escape", signature, f"{head}{type(error).__name__}: {message} ({where})")


# --- running ------------------------------------------------------------------------------------


class CaseTimeout(BaseException):
    """Raised in the case's code by the alarm: a BaseException, so ``except Exception`` in the
    code under test does not swallow it."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` with :class:`CaseTimeout` (main thread, POSIX).

    A timer already set (pytest-timeout's) is put back with the time it had left.
    """
    usable = (
        seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise CaseTimeout

    began = time.monotonic()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay > 0:
            left = max(old_delay - (time.monotonic() - began), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


_FUZZERS: dict[str, Fuzzer] = {}


def make_fuzzer(name: str, workdir: Path) -> Fuzzer:
    from benchmarks.fuzz import library, records, wire

    makers: dict[str, Callable[[Path], Fuzzer]] = {
        "library": library.LibraryFuzzer,
        "wire": wire.WireFuzzer,
        "records": records.RecordsFuzzer,
    }
    return makers[name](workdir)


def _worker_fuzzer(name: str, workdir: str) -> Fuzzer:
    """One fuzzer per worker process and target, set up once (records builds a database)."""
    fuzzer = _FUZZERS.get(name)
    if fuzzer is None:
        mine = Path(workdir) / f"{name}-{os.getpid()}"
        mine.mkdir(parents=True, exist_ok=True)
        fuzzer = make_fuzzer(name, mine).__enter__()
        _FUZZERS[name] = fuzzer
    return fuzzer


def check_one(
    fuzzer: Fuzzer, case: Case, notes: Counter[str], slow_s: float, timeout_s: float
) -> tuple[list[Failure], float]:
    """Run one case under the deadline; its failures (slow included) and its time."""
    began = time.perf_counter()
    timed_out = False
    try:
        with deadline(timeout_s):
            failures = fuzzer.check(case, notes)
    except CaseTimeout:
        failures, timed_out = [], True
    except Exception as error:
        failures = [escape_failure(error)]
    elapsed = time.perf_counter() - began
    if timed_out:
        failures.append(
            Failure("slow", f"timed out (> {timeout_s:g} s)", f"stopped after {elapsed:.1f} s")
        )
    elif elapsed > slow_s:
        failures.append(Failure("slow", f"over {slow_s:g} s", f"{elapsed:.2f} s"))
    return failures, elapsed


def run_chunk(
    fuzzer: Fuzzer,
    seed: int,
    start: int,
    stop: int,
    *,
    slow_s: float = SLOW_S,
    timeout_s: float = TIMEOUT_S,
) -> Summary:
    """Cases ``start`` .. ``stop - 1`` of ``seed``."""
    summary = Summary(fuzzer.name, seed, start)
    pending: list[Case] = []
    for index in range(start, stop):
        case = fuzzer.generate(seed, index)
        failures, elapsed = check_one(fuzzer, case, summary.notes, slow_s, timeout_s)
        summary.cases += 1
        summary.timed(case, elapsed)
        for failure in failures:
            summary.add(case, failure)
        if fuzzer.batch > 1:
            if elapsed <= slow_s:  # a slow input is reported already; keep batches quick
                pending.append(case)
            if pending and (len(pending) >= fuzzer.batch or index == stop - 1):
                _check_batch(fuzzer, pending, summary, timeout_s)
                pending = []
    return summary


def _check_batch(fuzzer: Fuzzer, cases: list[Case], summary: Summary, timeout_s: float) -> None:
    began = time.perf_counter()
    try:
        with deadline(timeout_s * 2):
            found = fuzzer.check_batch(cases, summary.notes)
    except CaseTimeout:
        elapsed = time.perf_counter() - began
        found = [
            (cases[0], Failure("slow", "batch timed out", f"{len(cases)} files, {elapsed:.1f} s"))
        ]
    except Exception as error:
        found = [(cases[0], escape_failure(error, "batch"))]
    for case, failure in found:
        summary.add(case, failure)
    summary.notes["batches"] += 1


def _run_chunk_in_worker(
    name: str, workdir: str, seed: int, span: tuple[int, int], limits: tuple[float, float]
) -> Summary:
    fuzzer = _worker_fuzzer(name, workdir)
    return run_chunk(fuzzer, seed, *span, slow_s=limits[0], timeout_s=limits[1])


def chunks(start: int, count: int, size: int) -> Iterator[tuple[int, int]]:
    stop = start + count
    for first in range(start, stop, size):
        yield first, min(first + size, stop)


def run_target(
    name: str,
    count: int | None = None,
    seed: int = 0,
    *,
    start: int = 0,
    jobs: int = 1,
    slow_s: float = SLOW_S,
    timeout_s: float = TIMEOUT_S,
    save_dir: Path | None = None,
) -> Summary:
    """Run ``count`` cases (the target's default when None) of target ``name``.

    ``jobs == 1`` runs in this process (tests monkeypatch the code under test); escapes are
    saved to ``save_dir`` when it is given.
    """
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix=f"epm-fuzz-{name}-"))
    try:
        if jobs <= 1:
            with make_fuzzer(name, workdir) as fuzzer:
                total = fuzzer.default_count if count is None else count
                summary = run_chunk(
                    fuzzer, seed, start, start + total, slow_s=slow_s, timeout_s=timeout_s
                )
        else:
            summary = _run_parallel(
                name,
                count,
                seed,
                start=start,
                jobs=jobs,
                limits=(slow_s, timeout_s),
                workdir=workdir,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary.finish()
    summary.jobs = max(1, jobs)
    summary.total_s = time.perf_counter() - began
    if save_dir is not None:
        save_escapes(summary, save_dir)
    return summary


def _run_parallel(
    name: str,
    count: int | None,
    seed: int,
    *,
    start: int,
    jobs: int,
    limits: tuple[float, float],
    workdir: Path,
) -> Summary:
    probe = make_fuzzer(name, workdir)  # not entered: only its class attributes are read
    total = probe.default_count if count is None else count
    size = max(probe.batch, 200 // probe.batch * probe.batch) if probe.batch > 1 else 200
    summary = Summary(name, seed, start)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(_run_chunk_in_worker, name, str(workdir), seed, (first, stop), limits)
            for first, stop in chunks(start, total, size)
        ]
        for future in futures:
            summary.merge(future.result())
    return summary


def fixture_group(signature: str) -> str:
    """Escapes saved once per call, exception type and place (messages vary more than bugs)."""
    match = re.match(r"(.*? at \S+ in \S+):", signature)
    return match.group(1) if match else signature


def save_escapes(summary: Summary, folder: Path) -> None:
    """Write the first escape of each group as ``escape-<target>-<case>.bin`` with a ``.json``
    beside it (at most :data:`MAX_FIXTURES` per target and run)."""
    chosen: dict[str, EscapeRecord] = {}
    for record in summary.first:  # in case order
        chosen.setdefault(f"{record.kind}: {fixture_group(record.signature)}", record)
    if not chosen:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for record in list(chosen.values())[:MAX_FIXTURES]:
        stem = f"escape-{summary.target}-{record.case}"
        (folder / f"{stem}.bin").write_bytes(record.data)
        info = {"target": summary.target, **record.to_dict()}
        info["fixture"] = f"{stem}.bin"
        (folder / f"{stem}.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
        try:
            record.fixture = str((folder / f"{stem}.bin").relative_to(ROOT))
        except ValueError:
            record.fixture = str(folder / f"{stem}.bin")


def replay(path: Path, target: str | None = None) -> tuple[str, list[Failure]]:
    """Check one saved input again; the target comes from ``escape-<target>-…`` if not given."""
    if target is None:
        match = re.match(r"escape-(\w+)-", path.name)
        if match is None:
            raise ValueError(f"cannot tell the target of {path.name}: give --target")
        target = match.group(1)
    meta: dict[str, Any] = {}
    sidecar = path.with_suffix(".json")
    if sidecar.exists():
        meta = dict(json.loads(sidecar.read_text()).get("meta") or {})
    workdir = Path(tempfile.mkdtemp(prefix=f"epm-fuzz-{target}-"))
    try:
        with make_fuzzer(target, workdir) as fuzzer:
            case = Case(target, -1, -1, f"replay of {path.name}", path.read_bytes(), meta)
            notes: Counter[str] = Counter()
            try:
                failures = fuzzer.check(case, notes)
            except Exception as error:
                failures = [escape_failure(error)]
            if fuzzer.batch > 1:
                failures += [f for _, f in fuzzer.check_batch([case], notes)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return target, failures
