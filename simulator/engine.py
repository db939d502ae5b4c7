"""One simulated unit with its surroundings, as a single-threaded object driven from outside.

The engine owns the firmware, the plant (handpiece on skin), the practitioner, the injected
faults, the scenario's schedule and the link between unit and host. It has no clock and no
thread: the virtual clock (tests) and the real-time runner both drive it through
:meth:`Engine.run_ticks` (simulated time), :meth:`Engine.service` (link time) and
:meth:`Engine.host_bytes` (what the host sent). Same seed, same scenario, same calls → same
bytes out.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from controller.wire import Fault, Handpiece, State
from simulator.capabilities import draw_serial, serial_for_seed
from simulator.catalogue import (
    BitErrors,
    ContactLost,
    ContactMarginal,
    Delay,
    Disconnect,
    Drop,
    Duplicate,
    FaultSpec,
    HandpieceRemoved,
    NetDc,
    OutputStuck,
    Overcurrent,
    Overtemp,
    ReplugOtherUnit,
    Reset,
    RestartUnplugged,
    Selftest,
    ShortCircuit,
    Silent,
    Unplug,
)
from simulator.firmware import Firmware
from simulator.linkfaults import LinkFaults, TxQueue
from simulator.physics import Plant
from simulator.practitioner import Practitioner
from simulator.scenario import Scenario
from simulator.timing import RequestReceipt

#: How many request receipts to keep for benchmarks (about an hour of heartbeats).
RECEIPTS_KEPT = 50_000

HANDPIECES: dict[str, Handpiece] = {
    "scalp_roller": Handpiece.SCALP_ROLLER,
    "flat_probe": Handpiece.FLAT_PROBE,
    "comb": Handpiece.COMB,
    "none": Handpiece.NONE,
}


def default_tick_ms(speed: float) -> int:
    """1 ms up to 7× speed, then coarser so the runner does at most ~5 000 ticks per second."""
    return max(1, round(speed / 5.0))


@dataclass(frozen=True)
class EngineConfig:
    seed: int = 0
    speed: float = 1.0
    handpiece: Handpiece = Handpiece.SCALP_ROLLER
    scenario: Scenario = field(default_factory=Scenario)
    tick_ms: int = 1
    baud: int | None = None
    pace: bool = False


@dataclass
class _Active:
    spec: FaultSpec
    until_sim_ms: float


class Engine:
    """Firmware + plant + practitioner + faults + link; see the module docstring."""

    def __init__(self, config: EngineConfig, link_ms: float = 0.0) -> None:
        self.config = config
        scenario = config.scenario

        def rng(stream: str) -> random.Random:
            return random.Random(f"epm-sim:{config.seed}:{stream}")

        self.plant = Plant(scenario.skin.params(), config.tick_ms, config.handpiece)
        self.selftest_failed = scenario.selftest_fail
        self.link_ms = link_ms
        self.firmware = Firmware(
            self.plant,
            serial=serial_for_seed(config.seed),
            boot_rng=rng("boot"),
            noise_rng=rng("noise"),
            tick_ms=config.tick_ms,
            link_ms=link_ms,
            selftest_failed=self.selftest_failed,
        )
        self.practitioner = (
            Practitioner(scenario.practitioner, rng("practitioner"))
            if scenario.practitioner.enabled
            else None
        )
        #: Serials of replacement units (``replug_other_unit``) come from their own stream.
        self._replug_rng = rng("replug")
        self._serials_used = {self.firmware.serial}
        self.link = LinkFaults(rng("link"))
        self.tx = TxQueue(config.baud, config.pace)
        self.receipts: deque[RequestReceipt] = deque(maxlen=RECEIPTS_KEPT)
        self.device_faults: dict[str, _Active] = {}
        #: Unplug faults (disconnect and the identity faults) waiting for the endpoint owner,
        #: who takes the endpoint away and then calls :meth:`unplugged`.
        self.disconnects: list[Unplug] = []
        self._schedule = deque(sorted(scenario.events, key=lambda e: e.at_s))
        self._removed_handpiece = Handpiece.NONE
        self._apply_due_events()
        self._pump_tx()

    # --- clocks ---------------------------------------------------------------------------

    @property
    def sim_ms(self) -> int:
        return self.firmware.sim_ms

    def run_ticks(self, sim_target_ms: float, max_ticks: int | None = None) -> int:
        """Advance simulated time in whole ticks up to ``sim_target_ms``; returns ticks run."""
        fw = self.firmware
        tick = self.config.tick_ms
        ran = 0
        fw.link_ms = self.link_ms
        while fw.sim_ms + tick <= sim_target_ms and (max_ticks is None or ran < max_ticks):
            if self.practitioner is not None:
                self.practitioner.advance(tick)
                self.plant.contact_fraction = self.practitioner.fraction(
                    self.plant.skin.resistance()
                )
            fw.tick()
            # Faults that start or end at this instant act from the next tick on.
            self._after_tick()
            self._expire_device_faults()
            self._apply_due_events()
            ran += 1
        if ran:
            self._pump_tx()
        return ran

    def service(self, link_ms: float) -> None:
        """Link-time duties: watchdog, telemetry, expiry of link faults."""
        self.link_ms = link_ms
        self.link.expire(link_ms)
        self.firmware.service(link_ms)
        self._pump_tx()

    def next_link_deadline(self) -> float:
        return min(self.firmware.next_deadline(), self.tx.next_release(), self.link.next_change())

    # --- host input ------------------------------------------------------------------------

    def host_bytes(self, data: bytes, link_ms: float, perf_s: float) -> None:
        """Bytes from the host, all read at ``perf_s`` (``time.perf_counter``)."""
        self.link_ms = link_ms
        data = self.link.rx_bytes(data, link_ms)
        if not data:
            return
        frames = self.link.rx_frames(self.firmware.decode(data))
        for frame in frames:
            self.receipts.append(RequestReceipt(perf_s, link_ms, frame.seq, frame.type))
            self.firmware.receive_frame(frame, link_ms)
        self._pump_tx()

    def _pump_tx(self) -> None:
        now = self.link_ms
        delay = self.link.delay_ms()
        for frame in self.firmware.take_outbox():
            for out in self.link.tx_frames(frame, now):
                self.tx.push(out, now, delay)

    # --- faults ----------------------------------------------------------------------------

    def _apply_due_events(self) -> None:
        while self._schedule and self._schedule[0].at_s * 1000.0 <= self.sim_ms:
            self.inject(self._schedule.popleft())

    def inject(self, spec: FaultSpec) -> None:
        """Apply a catalogue fault now."""
        if isinstance(spec, Drop | Duplicate | BitErrors | Delay | Silent):
            self.link.apply(spec, self.link_ms)
            return
        if isinstance(spec, Disconnect | ReplugOtherUnit | RestartUnplugged):
            self.disconnects.append(spec)
            return
        if isinstance(spec, Reset):
            self.power_cycle()
            return
        if isinstance(spec, Selftest):
            self.selftest_failed = True
            self.power_cycle()
            return
        plant = self.plant
        duration = getattr(spec, "duration_s", None)
        until = math.inf if duration is None else self.sim_ms + duration * 1000.0
        previous = self.device_faults.pop(spec.fault, None)
        if previous is not None:
            self._undo(previous.spec)
        self.device_faults[spec.fault] = _Active(spec, until)
        if isinstance(spec, ContactLost | ContactMarginal):
            self._apply_contact(spec)
        elif isinstance(spec, ShortCircuit):
            plant.short_ohm = spec.impedance_ohm
        elif isinstance(spec, Overcurrent):
            plant.overcurrent_factor = spec.factor
        elif isinstance(spec, Overtemp):
            plant.heater_c_per_s = spec.rate_c_per_s
            plant.heater_target_c = spec.target_c
        elif isinstance(spec, HandpieceRemoved):
            if plant.handpiece != Handpiece.NONE:
                self._removed_handpiece = plant.handpiece
                plant.attach(Handpiece.NONE)
                self.firmware.handpiece_changed()
        elif isinstance(spec, OutputStuck):
            plant.stuck_dv = spec.amplitude_dv
        elif isinstance(spec, NetDc):
            plant.net_dc = True
        self.firmware.remeasure()
        self._pump_tx()

    def _apply_contact(self, spec: FaultSpec) -> None:
        plant = self.plant
        if isinstance(spec, ContactLost):
            plant.contact_override = 0.0
        elif isinstance(spec, ContactMarginal):
            plant.contact_override = min(1.0, plant.skin.resistance() / spec.impedance_ohm)

    def _undo(self, spec: FaultSpec) -> None:
        plant = self.plant
        if isinstance(spec, ContactLost | ContactMarginal):
            plant.contact_override = None
            # The other contact fault, if still active, takes over again.
            remaining = self.device_faults.get("contact_lost") or self.device_faults.get(
                "contact_marginal"
            )
            if remaining is not None:
                self._apply_contact(remaining.spec)
        elif isinstance(spec, ShortCircuit):
            plant.short_ohm = None
        elif isinstance(spec, Overcurrent):
            plant.overcurrent_factor = 0.0
        elif isinstance(spec, Overtemp):
            plant.heater_c_per_s = 0.0
        elif isinstance(spec, HandpieceRemoved):
            if plant.handpiece == Handpiece.NONE and self._removed_handpiece != Handpiece.NONE:
                self.attach_handpiece(self._removed_handpiece)
        elif isinstance(spec, OutputStuck):
            plant.stuck_dv = 0
            if not self.firmware.output_on:
                self.firmware.measured_dv = 0.0
        elif isinstance(spec, NetDc):
            plant.net_dc = False

    def clear(self, name: str | None = None) -> list[str]:
        """End injected faults (all, or the one named); returns the names ended.

        Latched fault bits stay latched: the host clears them with CLEAR_FAULTS.
        """
        ended: list[str] = []
        for fault in list(self.device_faults):
            if name in (None, fault):
                self._undo(self.device_faults.pop(fault).spec)
                ended.append(fault)
        if name in (None, "selftest") and self.selftest_failed:
            self.selftest_failed = False
            ended.append("selftest")
        # An unplug the endpoint owner has not acted on yet is cancelled (no swap behind it).
        pending = [s for s in self.disconnects if name in (None, s.fault)]
        self.disconnects = [s for s in self.disconnects if s not in pending]
        ended += [s.fault for s in pending]
        link_names = {"drop", "duplicate", "bit_errors", "delay", "silent"}
        if name is None or name in link_names:
            wanted = link_names if name is None else {name}
            before = self.link.active(self.link_ms)
            self.link.clear(name)
            ended += [n for n in before if n.split("/")[0] in wanted]
        self.firmware.remeasure()
        self._pump_tx()
        return ended

    def _expire_device_faults(self) -> None:
        for fault, active in list(self.device_faults.items()):
            if self.sim_ms >= active.until_sim_ms:
                del self.device_faults[fault]
                self._undo(active.spec)

    def _after_tick(self) -> None:
        """One-shot faults end once they did their work."""
        faults = self.device_faults
        if "overcurrent" in faults and self.firmware.faults & Fault.OVERCURRENT:
            self._undo(faults.pop("overcurrent").spec)
        heat = faults.get("overtemp")
        if heat is not None and self.plant.thermal.temperature_c >= self.plant.heater_target_c:
            self._undo(faults.pop("overtemp").spec)

    def power_cycle(self) -> None:
        """Restart the firmware; injected hardware conditions stay as they are."""
        self.firmware.power_cycle(self.link_ms, selftest_failed=self.selftest_failed)
        self._pump_tx()

    def unplugged(self, spec: Unplug) -> None:
        """The endpoint owner has just taken the endpoint away for ``spec``.

        What was on its way to the host is lost; behind the unplug the unit restarts
        (``restart_unplugged``) or another one takes its place (``replug_other_unit``).
        """
        if isinstance(spec, RestartUnplugged):
            self.power_cycle()
        elif isinstance(spec, ReplugOtherUnit):
            self.replace_unit(spec.serial)
        self.tx.clear()

    def replace_unit(self, serial: str | None = None) -> str:
        """Another unit of the same model takes this one's place; returns its serial.

        It powers up with ``serial`` (default: ``SIM-`` and six digits from the seed's replug
        stream, never one this engine used before), passes its self-test, and has none of the
        old unit's injected device faults. Handpiece, skin and link faults stay: they are not
        part of the unit.
        """
        for name in list(self.device_faults):
            self._undo(self.device_faults.pop(name).spec)
        self.selftest_failed = False
        if serial is None:
            serial = draw_serial(self._replug_rng)
            while serial in self._serials_used:
                serial = draw_serial(self._replug_rng)
        self._serials_used.add(serial)
        self.firmware.serial = serial
        self.power_cycle()
        return serial

    def attach_handpiece(self, handpiece: Handpiece) -> None:
        if handpiece == self.plant.handpiece:
            return
        if Handpiece.NONE not in (self.plant.handpiece, handpiece):
            # A different handpiece goes in: the old one comes out first.
            self.plant.attach(Handpiece.NONE)
            self.firmware.handpiece_changed()
        self.plant.attach(handpiece)
        self.firmware.handpiece_changed()
        self._pump_tx()

    # --- inspection ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        fw = self.firmware
        return {
            "serial": fw.serial,
            "boot_id": fw.boot_id,
            "state": State(fw.state).name,
            "faults": Fault(fw.faults).names(),
            "t_ms": fw.t_ms,
            "sim_ms": fw.sim_ms,
            "link_ms": round(self.link_ms, 3),
            "step_id": fw.step_id,
            "step_elapsed_ms": fw.step_elapsed_ms,
            "step_duration_ms": fw.step_duration_ms,
            "setpoint_dv": fw.setpoint_dv,
            "output_dv": round(fw.measured_dv, 1),
            "current_ua": round(fw.rms_current_ua),
            "impedance_ohm": fw.impedance_ohm,
            "contact": fw.contact.name,
            "temperature_c": round(self.plant.thermal.temperature_c, 2),
            "handpiece": Handpiece(self.plant.handpiece).name,
            "telemetry_hz": fw.telemetry_hz,
            "rx_crc_errors": fw.rx_crc_errors,
            "rx_frame_errors": fw.rx_frame_errors,
            "device_faults": sorted(self.device_faults),
            "link_faults": self.link.active(self.link_ms),
            "practitioner": self.practitioner.phase if self.practitioner else None,
            "selftest_failed": self.selftest_failed,
        }
