"""epm controller: wire codec, link, device client, session engine, records, UI and CLI.

Layers import downward only: ui -> session -> device -> link -> wire.
"""

__version__ = "0.1.0"
