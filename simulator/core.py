"""The ``Simulator``: a simulated EPM-1 with an endpoint, a clock and a control interface.

Two ways to run one:

* real time (default): a daemon runner thread drives the unit from the wall clock and serves
  one endpoint — in-process (``sim://<name>``), a pty, or a TCP port. Use it as a context
  manager or call :meth:`Simulator.close`.
* virtual clock (``clock="virtual"``): no thread, no endpoint. Tests write host bytes with
  :meth:`host_write`, move time with :meth:`advance` and read what the unit sent with
  :meth:`host_read` / :meth:`read_messages`. Same seed, same calls → same bytes.

Every public method is thread-safe (one lock around the engine). Fault injection, power cycles
and the timing records are the control interface; it is never the device protocol.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from serial import SerialException

from controller.wire import DecodeError, Fault, FrameDecoder, Handpiece, Message, State
from controller.wire.codec import decode_message
from simulator import registry
from simulator.catalogue import FaultSpec, parse_fault
from simulator.endpoints import Endpoint, InprocEndpoint, PtyEndpoint, TcpEndpoint
from simulator.engine import HANDPIECES, Engine, EngineConfig, default_tick_ms
from simulator.runner import Runner
from simulator.scenario import Scenario, load_scenario
from simulator.timing import OutputTransition, RequestReceipt

log = logging.getLogger("simulator")

EndpointKind = Literal["inproc", "pty", "tcp"]
ClockKind = Literal["real", "virtual"]
MAX_SPEED = 1000.0


def _handpiece(value: str | int | Handpiece) -> Handpiece:
    if isinstance(value, str):
        try:
            return HANDPIECES[value.lower()]
        except KeyError:
            raise ValueError(
                f"unknown handpiece {value!r}; use one of: {', '.join(HANDPIECES)}"
            ) from None
    return Handpiece(value)


class Simulator:
    """A simulated EPM-1; see the module docstring."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        speed: float = 1.0,
        handpiece: str | int | Handpiece | None = None,
        scenario: Scenario | str | Path | None = None,
        name: str | None = None,
        endpoint: EndpointKind = "inproc",
        tcp_port: int = 0,
        tcp_host: str = "127.0.0.1",
        pty_link: str | Path | None = None,
        baud: int | None = None,
        pace: bool = False,
        clock: ClockKind = "real",
        tick_ms: int | None = None,
        control: int | str | None = None,
    ) -> None:
        if not 0 < speed <= MAX_SPEED:
            raise ValueError(f"speed {speed} is outside 0 < speed <= {MAX_SPEED:g}")
        if clock not in ("real", "virtual"):
            raise ValueError(f"clock must be 'real' or 'virtual', not {clock!r}")
        if endpoint not in ("inproc", "pty", "tcp"):
            raise ValueError(f"endpoint must be 'inproc', 'pty' or 'tcp', not {endpoint!r}")
        if baud is not None and baud <= 0:
            raise ValueError(f"baud {baud} must be positive")
        if isinstance(scenario, str | Path):
            scenario = load_scenario(scenario)
        scenario = scenario or Scenario()
        seed = seed if seed is not None else (scenario.seed or 0)
        hp = _handpiece(handpiece if handpiece is not None else scenario.handpiece)
        tick = tick_ms if tick_ms is not None else default_tick_ms(speed)
        if tick < 1:
            raise ValueError("tick_ms must be at least 1")
        self.seed = seed
        self.speed = float(speed)
        self.clock: ClockKind = clock
        self.scenario = scenario
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self.engine = Engine(
            EngineConfig(
                seed=seed,
                speed=self.speed,
                handpiece=hp,
                scenario=scenario,
                tick_ms=tick,
                baud=baud,
                pace=pace,
            )
        )
        self.name = registry.register(self, name)
        self._endpoint: Endpoint | None = None
        self._runner: Runner | None = None
        self._control: Any = None
        # Virtual clock state.
        self._vlink = 0
        self._host_buffer = bytearray()
        self._host_decoder = FrameDecoder()
        self._v_gone_until: float | None = None
        self._v_gone_fault: str | None = None
        self.disconnect_count = 0
        try:
            if clock == "real":
                self._start_real(endpoint, tcp_port, tcp_host, pty_link)
            else:
                self._virtual_collect()  # what the unit sent at power-up
            if control is not None:
                from simulator.control import ControlServer

                self._control = ControlServer(self, control)
        except BaseException:
            self.close()
            raise

    # --- lifecycle ------------------------------------------------------------------------

    def _start_real(
        self, kind: EndpointKind, tcp_port: int, tcp_host: str, pty_link: str | Path | None
    ) -> None:
        runner_box: list[Runner] = []

        def wake() -> None:
            if runner_box:
                runner_box[0].wake()

        ep: Endpoint
        if kind == "pty":
            ep = PtyEndpoint(pty_link)
        elif kind == "tcp":
            ep = TcpEndpoint(tcp_port, tcp_host)
        else:
            ep = InprocEndpoint(self.name, wake)
        self._endpoint = ep
        runner = Runner(
            engine=self.engine,
            endpoint=ep,
            lock=self._lock,
            changed=self._changed,
            speed=self.speed,
            on_disconnect=self._count_disconnect,
        )
        runner_box.append(runner)
        self._runner = runner
        runner.start()
        log.info("simulator %s (%s) serving %s", self.name, self.serial_number, ep.url)

    def _count_disconnect(self, now_ms: float, duration_s: float | None) -> None:
        self.disconnect_count += 1

    def close(self) -> None:
        """Stop the runner and control server, close the endpoint, forget the name."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._control is not None:
            self._control.close()
        if self._runner is not None:
            self._runner.stop()
        if self._endpoint is not None:
            with self._lock:
                self._endpoint.close()
        registry.unregister(self.name)

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def running(self) -> bool:
        """A real-time simulator whose runner thread is alive (False after a crash or close)."""
        return self._runner is not None and self._runner.alive and not self._closed

    # --- where to connect -----------------------------------------------------------------

    def url(self) -> str:
        """What to give ``serial.serial_for_url`` (``sim://name``, a pty path, ``socket://``)."""
        if self._endpoint is None:
            raise RuntimeError(
                "a virtual-clock simulator has no port; drive it with host_write() and advance()"
            )
        return self._endpoint.url

    @property
    def endpoint(self) -> Endpoint | None:
        return self._endpoint

    @property
    def control_address(self) -> str | None:
        return None if self._control is None else str(self._control.address)

    # --- unit identity and state ----------------------------------------------------------

    @property
    def serial_number(self) -> str:
        """The serial of the unit behind the endpoint now (``replug_other_unit`` changes it)."""
        with self._lock:
            return self.engine.firmware.serial

    @property
    def boot_id(self) -> int:
        with self._lock:
            return self.engine.firmware.boot_id

    @property
    def state(self) -> State:
        with self._lock:
            return State(self.engine.firmware.state)

    @property
    def faults(self) -> Fault:
        with self._lock:
            return Fault(self.engine.firmware.faults)

    def snapshot(self) -> dict[str, Any]:
        """Everything about the unit now, as plain JSON-able values."""
        with self._lock:
            snap = self.engine.snapshot()
            snap["name"] = self.name
            snap["speed"] = self.speed
            snap["clock"] = self.clock
            snap["url"] = None if self._endpoint is None else self._endpoint.url
            snap["connected"] = not self._gone()
            return snap

    def wait_until(self, predicate: Callable[[Simulator], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(self)`` holds (checked after each runner loop) or timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    # --- control: faults, power, handpiece ------------------------------------------------

    def inject(self, fault: str | FaultSpec, **params: Any) -> FaultSpec:
        """Apply a catalogue fault now (name and parameters, or a spec); returns the spec.

        Raises ``ValueError`` (``pydantic.ValidationError`` is one) for an unknown fault or bad
        parameters, with a message that says which.
        """
        spec = parse_fault(fault, params) if isinstance(fault, str) else fault
        with self._lock:
            self.engine.inject(spec)
            self._after_control()
        return spec

    def clear(self, fault: str | None = None) -> list[str]:
        """End injected faults (all, or one by name); latched fault bits stay latched.

        Clearing the unplug fault that took the endpoint away brings it back now; a unit that
        was replaced or restarted behind the unplug stays replaced or restarted.
        """
        with self._lock:
            ended = self.engine.clear(fault)
            away = self._away_fault()
            if away is not None and fault in (None, away):
                self.reconnect()
                ended.append(away)
            self._after_control()
            return ended

    def power_cycle(self, *, selftest_fail: bool | None = None) -> int:
        """Restart the unit (new boot_id, returned). ``selftest_fail`` sets the self-test result."""
        with self._lock:
            if selftest_fail is not None:
                self.engine.selftest_failed = selftest_fail
            self.engine.power_cycle()
            self._after_control()
            return self.engine.firmware.boot_id

    def attach_handpiece(self, handpiece: str | int | Handpiece) -> None:
        with self._lock:
            self.engine.attach_handpiece(_handpiece(handpiece))
            self._after_control()

    def detach_handpiece(self) -> None:
        self.attach_handpiece(Handpiece.NONE)

    def reconnect(self) -> None:
        """End a disconnect (or another unplug fault) now."""
        with self._lock:
            if self._runner is not None:
                self._runner.reconnect()
            self._v_gone_until = None
            self._v_gone_fault = None

    def _away_fault(self) -> str | None:
        if self._runner is not None:
            return self._runner.away_fault
        return self._v_gone_fault

    def _gone(self) -> bool:
        if self._runner is not None:
            return self._runner.disconnected or bool(self._runner.engine.disconnects)
        return self._v_gone_until is not None

    def _after_control(self) -> None:
        if self._runner is not None:
            self._runner.wake()
        else:
            self._virtual_collect()

    # --- timing records -------------------------------------------------------------------

    def output_transitions(self) -> list[OutputTransition]:
        """Every output on/off switch so far, with ``time.perf_counter()`` timestamps."""
        with self._lock:
            return list(self.engine.firmware.transitions)

    def request_receipts(self) -> list[RequestReceipt]:
        """Every host frame that passed the CRC, with the time its last byte was read."""
        with self._lock:
            return list(self.engine.receipts)

    # --- in-process endpoint (used by simulator.urlhandler) -------------------------------

    def _inproc(self) -> InprocEndpoint:
        if self._closed:
            raise SerialException(f"simulator {self.name!r} is closed")
        if not isinstance(self._endpoint, InprocEndpoint):
            where = "it runs on a virtual clock" if self._endpoint is None else "its port is "
            if self._endpoint is not None:
                where += self._endpoint.url
            raise SerialException(f"simulator {self.name!r} has no sim:// port ({where})")
        return self._endpoint

    # --- virtual clock --------------------------------------------------------------------

    def _require_virtual(self) -> None:
        if self.clock != "virtual":
            raise RuntimeError("advance()/host_write()/host_read() need clock='virtual'")

    @property
    def link_ms(self) -> float:
        with self._lock:
            return self.engine.link_ms

    def advance(self, ms: int) -> None:
        """Move the virtual clock on by ``ms`` milliseconds, one millisecond at a time."""
        self._require_virtual()
        if ms < 0:
            raise ValueError("cannot advance by a negative time")
        with self._lock:
            engine = self.engine
            for _ in range(int(ms)):
                self._vlink += 1
                engine.link_ms = self._vlink
                engine.run_ticks(self._vlink * self.speed)
                engine.service(self._vlink)
                self._virtual_collect()

    def _virtual_collect(self) -> None:
        engine = self.engine
        now = self._vlink
        while engine.disconnects:
            spec = engine.disconnects.pop(0)
            engine.unplugged(spec)
            self._host_buffer.clear()
            self.disconnect_count += 1
            d = spec.duration_s
            self._v_gone_until = math.inf if d is None else now + d * 1000.0
            self._v_gone_fault = spec.fault
        if self._v_gone_until is not None and now >= self._v_gone_until:
            self._v_gone_until = None
            self._v_gone_fault = None
        out = engine.tx.pop_due(now)
        if out and self._v_gone_until is None:
            self._host_buffer += out

    def _check_present(self) -> None:
        if self._v_gone_until is not None:
            raise SerialException("device disconnected (simulated unplug)")

    def host_write(self, data: bytes) -> None:
        """Bytes from the host, received completely at the present virtual time."""
        self._require_virtual()
        with self._lock:
            self._check_present()
            self.engine.host_bytes(bytes(data), float(self._vlink), time.perf_counter())
            self._virtual_collect()

    def host_read(self) -> bytes:
        """Everything the unit sent since the last read."""
        self._require_virtual()
        with self._lock:
            self._check_present()
            out = bytes(self._host_buffer)
            self._host_buffer.clear()
            return out

    def read_messages(self) -> list[tuple[int, Message]]:
        """What the unit sent since the last read, decoded as (seq, message)."""
        out: list[tuple[int, Message]] = []
        for frame in self._host_decoder.feed(self.host_read()):
            try:
                out.append((frame.seq, decode_message(frame)))
            except DecodeError:
                continue
        return out
