"""The device layer's facts for the screens: link health, telemetry samples, contact.

The UI takes what it shows of the device from here and from the session's snapshot, never from
``controller.link`` or ``controller.wire`` (``tests/test_layers.py`` enforces it): these names
are the device layer's promise of what a screen may rely on, whatever the link and the codec
below them become.
"""

from __future__ import annotations

from controller.link import LinkHealth, LinkState
from controller.wire import Contact, Telemetry

#: The link's counters and state, as :meth:`DeviceClient.health` returns them.
HealthView = LinkHealth
#: One telemetry sample as the session engine's ``drain_telemetry`` hands it out.
TelemetrySample = Telemetry

__all__ = ["Contact", "HealthView", "LinkState", "TelemetrySample"]
