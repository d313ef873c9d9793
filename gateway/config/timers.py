"""`[timers]`: how long the gateway waits for a peer at each stage, and for work in hand at stop."""

from __future__ import annotations

from gateway.config.base import FloatRange, Section


class TimersSection(Section):
    association_s: FloatRange(gt=0, le=600) = 30.0
    inactivity_s: FloatRange(gt=0, le=3600) = 180.0
    session_s: FloatRange(ge=10, le=24 * 3600) = 3600.0
    # A connection must finish association negotiation within this time, so half-open or stalled
    # sockets cannot hold association slots that real modalities need.
    handshake_s: FloatRange(gt=0, le=120) = 10.0
    # On SIGTERM, an object in hand (a C-STORE being received, a forward being sent) gets this long
    # to finish; past it, the association is aborted. Must stay below the unit's TimeoutStopSec (60 s)
    # with room for closing the index.
    stop_drain_s: FloatRange(ge=0, le=50) = 30.0
