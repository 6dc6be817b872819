"""Transports: how messages reach the platform (one interface, two implementations)."""

from ...errors import InvalidValue
from .base import OutboundMessage, SendResult, SimClock, Transport, TransportError, WallClock
from .simulated import SimRates, SimulatedTransport


def make(transport=None, *, seed: int | None = None) -> Transport:
    """A transport from a name (``"simulated"``, ``"cloud"``), an instance, or None
    (the simulated transport with ``seed``)."""
    if transport is None or transport == "simulated":
        return SimulatedTransport(seed)
    if transport == "cloud":
        from .cloud_api import CloudApiTransport

        return CloudApiTransport()
    if isinstance(transport, Transport):
        return transport
    raise InvalidValue(f"Unknown transport {transport!r}: use 'simulated', 'cloud' or a "
                     "Transport instance.")


__all__ = ["OutboundMessage", "SendResult", "SimClock", "SimRates", "SimulatedTransport",
           "Transport", "TransportError", "WallClock", "make"]
