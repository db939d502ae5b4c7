"""Shared set-up for the session engine tests: simulators, engines and bounded waits.

``engine_env`` builds real-time simulators on the in-process ``sim://`` endpoint, device
clients, a private record store and engines, and closes every one of them at teardown (then
checks that no engine, link or simulator thread outlived the test). ``Watch`` waits for the
engine's snapshots with bounded condition waits, never bare sleeps.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.device import DeviceClient, DeviceInfo
from controller.records import EventRow, RecordStore
from controller.session.engine import SessionEngine
from controller.session.headless import checklist_answers
from controller.session.model import Phase, SessionNotice, SessionPlan, SessionSnapshot
from protocols import load_protocol
from simulator import RequestReceipt, Simulator, register_url_handler

DATA = Path(__file__).parent / "data"
_THREAD_PREFIXES = ("epm-session", "epm-link-", "epm-sim-runner")


def protocol_path(name: str) -> Path:
    return DATA / name


class OffsetClock:
    """``time.monotonic`` plus an offset the test moves forward (a host-clock jump)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


class RealLookingClient(DeviceClient):
    """A device client that reports a unit without the ``SIM-`` prefix, as a real one would.

    The simulator always says ``SIM-``; this stands in for a real EPM-1 at the one place the
    controller asks (the handshake's DeviceInfo), so the real-device rules can be exercised.
    """

    SERIAL = "EPM1-004711"

    def _real(self, info: DeviceInfo | None) -> DeviceInfo | None:
        if info is None:
            return None
        return dataclasses.replace(info, serial=self.SERIAL, is_simulator=False)

    @property
    def info(self) -> DeviceInfo | None:
        return self._real(super().info)

    def connect(self) -> DeviceInfo:
        info = self._real(super().connect())
        assert info is not None
        return info

    def current_info(self) -> DeviceInfo:
        info = self._real(super().current_info())
        assert info is not None
        return info


class Watch:
    """Keeps an engine's notices and waits for conditions on its snapshot."""

    def __init__(self, engine: SessionEngine) -> None:
        self.engine = engine
        self._cond = threading.Condition()
        self.notices: list[SessionNotice] = []
        engine.add_listener(self._on_notice)

    def _on_notice(self, notice: SessionNotice) -> None:
        with self._cond:
            self.notices.append(notice)
            self._cond.notify_all()

    def until(
        self, predicate: Callable[[SessionSnapshot], bool], timeout: float = 10.0, what: str = ""
    ) -> SessionSnapshot:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                snap = self.engine.snapshot()
                if predicate(snap):
                    return snap
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout} s waiting for {what or predicate}: phase "
                        f"{snap.phase}, message {snap.message!r}, notices {list(snap.notices)}, "
                        f"alarms {[a.code.value for a in snap.alarms]}"
                    )
                self._cond.wait(min(left, 0.02))

    def phase(self, phase: Phase, timeout: float = 10.0) -> SessionSnapshot:
        return self.until(lambda s: s.phase is phase, timeout, f"phase {phase.value}")

    def alarm(self, code: str, timeout: float = 10.0) -> SessionSnapshot:
        return self.until(
            lambda s: any(a.code.value == code for a in s.alarms), timeout, f"alarm {code}"
        )

    def no_alarm(self, code: str, timeout: float = 10.0) -> SessionSnapshot:
        return self.until(
            lambda s: all(a.code.value != code for a in s.alarms), timeout, f"no alarm {code}"
        )

    def delivering(self, at_least_ms: int = 2_000, timeout: float = 10.0) -> SessionSnapshot:
        """Wait until the zone has delivered for ``at_least_ms`` (device time)."""
        return self.until(
            lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms >= at_least_ms,
            timeout,
            f"delivering for {at_least_ms} ms",
        )

    def finished(self, timeout: float = 20.0) -> SessionSnapshot:
        assert self.engine.wait(timeout), f"the session did not end: {self.engine.snapshot()}"
        return self.engine.snapshot()

    def kinds(self) -> list[str]:
        with self._cond:
            return [n.kind for n in self.notices]


@dataclasses.dataclass
class Session:
    engine: SessionEngine
    device: DeviceClient
    sim: Simulator
    store: RecordStore
    watch: Watch
    plan: SessionPlan

    def events(self, kind: str | None = None) -> list[EventRow]:
        sid = self.engine.session_id
        assert sid is not None, "no session row was written"
        rows = self.store.events(sid)
        return [e for e in rows if kind is None or e.kind == kind]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events()]

    def commands(self) -> list[str]:
        return [str(e.data["command"]) for e in self.events("command_sent")]

    def receipts_after(self, perf_s: float, *types: int) -> list[RequestReceipt]:
        return [r for r in self.sim.request_receipts() if r.perf_s >= perf_s and r.type in types]


class EngineEnv:
    """Factory for simulators, clients and engines that all close at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        register_url_handler()
        self.tmp_path = tmp_path
        self.store = RecordStore.open(tmp_path / "epm-data")
        self._sims: list[Simulator] = []
        self._devices: list[DeviceClient] = []
        self._engines: list[SessionEngine] = []

    def sim(self, speed: float = 300, **kwargs: Any) -> Simulator:
        kwargs.setdefault("seed", 7)
        sim = Simulator(speed=speed, **kwargs)
        self._sims.append(sim)
        return sim

    def session(
        self,
        protocol: str = "two-zones.yaml",
        *,
        speed: float = 300,
        auto: bool = True,
        zones: tuple[str, ...] | None = None,
        answers: dict[str, bool] | None = None,
        sim: Simulator | None = None,
        clock: Callable[[], float] = time.monotonic,
        client_cls: type[DeviceClient] = DeviceClient,
        serum_lot: str = "LOT-42",
        client_code: str = "C-0001",
        reconnect_limit_s: float | None = None,
        manual_speed: float | None = None,
        path: Path | None = None,
        url: str | None = None,
        link_reconnect_s: float | None = None,
        start: bool = True,
    ) -> Session:
        sim = sim or self.sim(speed)
        load_result = load_protocol(path or protocol_path(protocol))
        assert load_result.protocol is not None, load_result.errors
        plan = SessionPlan(
            load_result=load_result,
            client_code=client_code,
            practitioner="Dana Practitioner",
            serum_lot=serum_lot,
            checklist_answers=answers
            if answers is not None
            else checklist_answers(load_result.protocol),
            zones=zones,
        )
        device = client_cls(
            url or sim.url(), backoff=(0.05, 0.2), reconnect_timeout=link_reconnect_s
        )
        self._devices.append(device)
        engine = SessionEngine(
            device,
            self.store,
            plan,
            clock=clock,
            auto_confirm=auto,
            reconnect_limit_s=reconnect_limit_s,
            manual_speed=speed if manual_speed is None else manual_speed,
        )
        self._engines.append(engine)
        watch = Watch(engine)
        if start:
            engine.start()
        return Session(engine, device, sim, self.store, watch, plan)

    def close(self) -> None:
        for engine in self._engines:
            engine.shutdown("test teardown", timeout=5.0)
        for device in self._devices:
            device.close()
        for sim in self._sims:
            sim.close()
        self.store.close()


def _our_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.is_alive() and t.name.startswith(_THREAD_PREFIXES) and t not in before
    ]


@pytest.fixture
def engine_env(tmp_path: Path) -> Iterator[EngineEnv]:
    """An :class:`EngineEnv`; at teardown everything is closed and no thread it started is
    left running."""
    before = set(threading.enumerate())
    env = EngineEnv(tmp_path)
    try:
        yield env
    finally:
        env.close()
    deadline = time.monotonic() + 5.0
    tick = threading.Event()
    while _our_threads(before) and time.monotonic() < deadline:
        tick.wait(0.02)
    left = _our_threads(before)
    assert not left, f"threads left running: {[t.name for t in left]}"
