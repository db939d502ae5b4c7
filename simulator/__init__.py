"""A simulated EPM-1 that follows the device interface document, for CI, demos and training.

``Simulator`` runs one unit (real time with an endpoint, or a virtual clock for tests);
``register_url_handler()`` makes ``sim://`` URLs openable with ``serial.serial_for_url``.
docs/simulator.md describes the model, the fault catalogue and the control interface.
"""

from __future__ import annotations

import serial

from simulator.catalogue import FAULT_NAMES, parse_fault
from simulator.core import Simulator
from simulator.registry import for_url as simulator_for_url
from simulator.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from simulator.timing import OutputTransition, RequestReceipt

URL_HANDLER_PACKAGE = "simulator.urlhandler"


def register_url_handler() -> None:
    """Let ``serial.serial_for_url("sim://...")`` open simulators (idempotent)."""
    if URL_HANDLER_PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(URL_HANDLER_PACKAGE)


__all__ = [
    "FAULT_NAMES",
    "OutputTransition",
    "RequestReceipt",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "load_scenario",
    "parse_fault",
    "parse_scenario",
    "register_url_handler",
    "simulator_for_url",
]
