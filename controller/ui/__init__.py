"""The terminal UI (Textual): the practitioner's session flow and the technician's tools.

``create_app(...)`` builds the app the ``epm`` command runs (and the tests drive); ``EpmApp``
takes its parts (record store, device client, protocol library, session-engine factory)
injected. The UI never touches bytes and never decides about safety: it shows the session
engine's snapshot and sends its requests.
"""

from controller.ui.app import EpmApp, create_app, resolve_port

__all__ = ["EpmApp", "create_app", "resolve_port"]
