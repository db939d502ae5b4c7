"""Training on the simulator: inject faults into the simulated unit epm is connected to, and
record each one in the running (simulated) session.

Why here: a trainer at the training desk makes the simulator misbehave (contact lost, a short,
a hot handpiece, the cable pulled, another unit plugged in) while a trainee runs a session, and
the session's record must say which of its alarms were staged. The UI reaches the simulator only
through :class:`TrainingFaults` (never through the link or the wire, never with bytes).

Safety: it works on a simulator only. ``find_simulator(device_url)`` must return the simulator
running *in this process* behind that URL (the UI passes ``simulator.simulator_for_url``); a
real device's port never resolves to one, and a device whose serial does not begin with ``SIM-``
is refused whatever the URL. ``controller.session`` never imports the simulator package (the
layers go downward only): the simulator comes in through ``find_simulator``.

Recording: each injection is committed as a chained ``training_fault`` event (fault, title,
params, by) by the session engine's own record writer, before the fault is injected (a record
that cannot be written means nothing is injected). With no session open nothing is recorded and
the result says so. The simulator's catalogue (``simulator/catalogue.py``) defines the names and
parameters; :data:`TRAINING_FAULTS` is the part of it offered to trainers, in plain words.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from controller.session.engine_record import RecordWriteError
from controller.wire.constants import SIM_SERIAL_PREFIX

#: The pseudo-fault that ends every injected condition (contact, handpiece and link come back).
CLEAR = "clear"
#: Who the record names as the author of an injection.
TRAINER = "trainer"
#: Longest duration a trainer may ask for (the simulator's catalogue allows up to a day).
MAX_SECONDS = 86_400.0


class SimulatorControl(Protocol):
    """What training needs of ``simulator.Simulator`` (its control interface, not the port)."""

    @property
    def serial_number(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    def inject(self, fault: str, **params: Any) -> object: ...

    def clear(self, fault: str | None = None) -> list[str]: ...


#: Finds the in-process simulator behind a device URL (None: not one of ours).
FindSimulator = Callable[[str], SimulatorControl | None]


@dataclass(frozen=True)
class TrainingFault:
    """One entry of the training catalogue."""

    name: str
    """The simulator catalogue's name (``contact_lost``...), or :data:`CLEAR`."""
    title: str
    """What it is, in plain words (what the panel lists)."""
    effect: str
    """What the trainee should see happen."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The parameters injected (the values a trainer is not asked for are fixed here)."""
    ask: str | None = None
    """A parameter the panel asks for (a number of seconds); ``params[ask]`` is its default."""
    ask_prompt: str = ""


TRAINING_FAULTS: tuple[TrainingFault, ...] = (
    TrainingFault(
        "contact_lost",
        "Contact lost: the handpiece leaves the skin",
        "Output off and the unit holds (HOLD); after 10 s the 'No skin contact' alarm. "
        "Lasts until you put everything back.",
    ),
    TrainingFault(
        "contact_marginal",
        "Poor contact: part of the roller lifts",
        "Delivery continues with the 'Poor skin contact' alarm (low). Lasts until you put "
        "everything back.",
        {"impedance_ohm": 15_000},
    ),
    TrainingFault(
        "short_circuit",
        "Short circuit: the electrodes are bridged (too much serum)",
        "While delivering the unit faults (short circuit) and turns output off. Lasts until "
        "you put everything back.",
        {"impedance_ohm": 10.0},
    ),
    TrainingFault(
        "overcurrent",
        "Over-current: the output delivers 1.5 times the current limit",
        "While delivering the unit faults (over-current) within a fraction of a second.",
        {"factor": 1.5},
    ),
    TrainingFault(
        "overtemp",
        "Handpiece overheats: it heats to 45 °C, then cools by itself",
        "At 41 °C the unit faults (over-temperature); the fault cannot be cleared until the "
        "handpiece is below 40 °C.",
        {"target_c": 45.0, "rate_c_per_s": 1.0},
    ),
    TrainingFault(
        "handpiece_removed",
        "Handpiece unplugged",
        "The unit faults (handpiece removed) unless idle. Lasts until you put everything back.",
    ),
    TrainingFault(
        "disconnect",
        "Link lost: the cable is pulled for a number of seconds",
        "'Connection lost' (when delivering); epm reconnects by itself when the cable is back "
        "and nothing resumes by itself.",
        {"duration_s": 5.0},
        ask="duration_s",
        ask_prompt="For how many seconds is the cable out?",
    ),
    TrainingFault(
        "reset",
        "Device restarts: a power cut and back",
        "The red 'Device restarted' alarm; the unit's settings are gone.",
    ),
    TrainingFault(
        "replug_other_unit",
        "Another unit answers: the cable is plugged into another EPM-1",
        "The red 'Another unit answered' alarm naming both serials; an open session ends.",
        {"duration_s": 1.0},
    ),
    TrainingFault(
        CLEAR,
        "Put everything back: contact, handpiece and cable return now",
        "Ends the conditions injected above; faults the unit latched stay until cleared (c).",
    ),
)


@dataclass(frozen=True)
class Injection:
    """What one injection did."""

    fault: TrainingFault
    params: Mapping[str, Any]
    recorded: bool
    session_id: int | None
    """The session it was recorded in (None: not recorded)."""
    message: str
    """The outcome in plain words, for the panel."""


class TrainingError(Exception):
    """An injection that was refused or failed; ``str()`` says why in plain words."""


class TrainingRefusedError(TrainingError):
    """Training faults are not available here (a real device, or no simulator in reach)."""


class _Engine(Protocol):
    def open_session_id(self) -> int | None: ...

    def record_training_fault(
        self, fault: str, params: Mapping[str, Any], *, title: str = "", by: str = "trainer"
    ) -> bool: ...


def session_engine(engine: object | None) -> _Engine | None:
    """``engine`` when it has a session whose record is open (begun and not ended), else
    None. The session engine is the only writer of a running session's records: an injection
    is recorded through it, chained with its own events."""
    opened = getattr(engine, "open_session_id", None)
    if not callable(opened) or opened() is None:
        return None
    return cast("_Engine", engine)


class TrainingFaults:
    """Fault injection on the simulator behind ``device_url``; see the module docstring.

    ``find_simulator`` finds the in-process simulator for a URL (``simulator_for_url``);
    ``device_serial`` is the serial the device answered with (None: not connected yet);
    ``session`` returns the current session engine (or None) each time it is called.
    """

    def __init__(
        self,
        device_url: str,
        *,
        find_simulator: FindSimulator,
        device_serial: str | None = None,
        session: Callable[[], object | None] = lambda: None,
        by: str = TRAINER,
    ) -> None:
        self.device_url = device_url
        self.device_serial = device_serial
        self._find = find_simulator
        self._session = session
        self.by = by

    # --- may we? ----------------------------------------------------------------------------

    def _simulator(self) -> SimulatorControl | None:
        sim = self._find(self.device_url) if self.device_url else None
        return None if sim is None or sim.closed else sim

    def refusal(self) -> str | None:
        """Why training faults are not available here, in plain words (None: they are)."""
        serial = self.device_serial
        if serial is not None and not serial.startswith(SIM_SERIAL_PREFIX):
            return (
                f"Training faults are for the simulator only: this is a real EPM-1 (serial "
                f"{serial}). Nothing can be injected into a real device."
            )
        sim = self._simulator()
        if sim is None:
            if self.device_url.lower().startswith("sim://"):
                return (
                    f"The simulator at {self.device_url} is not running in epm now (is the "
                    "device connected?). Connect it first (c on the home screen)."
                )
            return (
                f"Training faults need the simulator built into epm; {self.device_url or 'no port'}"
                " is not one. A simulator started with `epm sim` takes faults through its "
                "control socket."
            )
        if not sim.serial_number.startswith(SIM_SERIAL_PREFIX):
            return (
                f"The unit behind {self.device_url} does not say it is a simulator (serial "
                f"{sim.serial_number}): nothing can be injected."
            )
        return None

    def available(self) -> bool:
        return self.refusal() is None

    def catalogue(self) -> tuple[TrainingFault, ...]:
        """The faults offered, in the order the panel lists them."""
        return TRAINING_FAULTS

    def fault(self, name: str) -> TrainingFault:
        for entry in TRAINING_FAULTS:
            if entry.name == name:
                return entry
        names = ", ".join(entry.name for entry in TRAINING_FAULTS)
        raise TrainingError(f"There is no training fault {name!r}; the panel offers: {names}.")

    def session_id(self) -> int | None:
        """The open session an injection now would be recorded in (None: none is open)."""
        engine = session_engine(self._session())
        return None if engine is None else engine.open_session_id()

    # --- inject -----------------------------------------------------------------------------

    def _values(self, fault: TrainingFault, given: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(given) - {fault.ask}) if fault.ask else sorted(given)
        if unknown:
            asked = f"only {fault.ask!r}" if fault.ask else "none"
            raise TrainingError(
                f"{fault.title}: no parameter {', '.join(map(repr, unknown))} here ({asked} "
                "can be given)."
            )
        values = dict(fault.params)
        if fault.ask is not None and fault.ask in given:
            values[fault.ask] = seconds(given[fault.ask])
        return values

    def inject(self, name: str, **params: Any) -> Injection:
        """Record, then inject the training fault ``name`` (``params``: the asked value).

        Raises :class:`TrainingRefusedError` where training is not available (nothing recorded or
        injected) and :class:`TrainingError` for a bad value, a record that could not be
        written (nothing injected) or a simulator that refused.
        """
        refusal = self.refusal()
        if refusal is not None:
            raise TrainingRefusedError(refusal)
        fault = self.fault(name)
        values = self._values(fault, params)
        sim = self._simulator()
        if sim is None:  # closed between the check and now
            raise TrainingRefusedError(self.refusal() or "The simulator has gone.")
        engine = session_engine(self._session())
        recorded = False
        session_id = None
        if engine is not None:
            session_id = engine.open_session_id()
            try:
                recorded = engine.record_training_fault(
                    fault.name, values, title=fault.title, by=self.by
                )
            except RecordWriteError as exc:
                raise TrainingError(f"Not injected: {exc}") from exc
        session_id = session_id if recorded else None
        try:
            if fault.name == CLEAR:
                sim.clear()
            else:
                sim.inject(fault.name, **values)
        except (ValueError, RuntimeError, OSError) as exc:
            where = f" (the attempt is recorded in session #{session_id})" if recorded else ""
            raise TrainingError(f"The simulator refused {fault.title}{where}: {exc}") from exc
        done = "Done" if fault.name == CLEAR else "Injected"
        if recorded:
            note = f"Recorded in session #{session_id}."
        else:
            note = "No session is running: nothing was recorded."
        return Injection(fault, values, recorded, session_id, f"{done}: {fault.title}. {note}")


def seconds(value: object) -> float:
    """A number of seconds a trainer typed (or gave): positive, at most a day."""
    try:
        number = float(str(value).strip().replace(",", "."))
    except ValueError:
        raise TrainingError(f"{value!r} is not a number of seconds; type e.g. 5.") from None
    if not math.isfinite(number) or not 0 < number <= MAX_SECONDS:
        raise TrainingError(
            f"{value} s is out of range: give more than 0 and at most {MAX_SECONDS:g} seconds."
        )
    return number
