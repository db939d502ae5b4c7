"""Where the host meets the simulated unit: a pty, a TCP port, or an in-process socket pair.

Every endpoint is driven by the runner thread alone (only the in-process endpoint's attach and
detach are called from the host's thread, under its own lock). They share one small interface
so the runner's select() loop treats them alike.
"""

from simulator.endpoints.base import Endpoint
from simulator.endpoints.inproc import InprocEndpoint
from simulator.endpoints.pty import PtyEndpoint
from simulator.endpoints.tcp import TcpEndpoint

__all__ = ["Endpoint", "InprocEndpoint", "PtyEndpoint", "TcpEndpoint"]
