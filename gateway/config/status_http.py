"""`[status_http]`: the read-only status endpoint (gateway/status/): /healthz, /status.json,
/metrics and the status page.

Loopback by default. Any other bind address exposes the box's state (destinations, queue depths,
disk) to the network, so it needs a token that every request must carry (`Authorization: Bearer
<token>`): a non-loopback bind without one is refused here, so `check-config` and `run` both
refuse it. The endpoint never offers a control action, whatever the bind.
"""

from __future__ import annotations

import ipaddress


from gateway.config.base import Host, IntRange, Port, Section

# A token shorter than this is guessable by a script on the hospital network in hours.
MIN_TOKEN_CHARS = 16
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the names "localhost" / "localhost.localdomain". A host name
    other than those counts as not loopback: it may resolve to any address."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatusHttpSection(Section):
    """enabled: serve the endpoint at all. bind / port: where it listens (a port of its own, not the
    DICOM one). token: the bearer token every request must carry; "" = none, allowed on loopback
    only. sse_max_clients: status pages open at once (each holds a Server-Sent Events stream);
    one more is answered 503, so a forgotten wall of tabs cannot eat a Pi's memory."""

    enabled: bool = True
    bind: Host = "127.0.0.1"
    port: Port = 8080
    token: str = ""
    sse_max_clients: IntRange(1, 32) = 4

    def problems(self) -> list[str]:
        """The checks that need two keys, as "status_http.key: why" lines (Config._cross_checks
        reports them with the other sections' problems). Checked here rather than by a field
        validator: a refused token must not be echoed into a log or a terminal."""
        if self.token and (len(self.token) < MIN_TOKEN_CHARS
                           or any(c.isspace() or not c.isprintable() for c in self.token)):
            return [f"status_http.token: must be at least {MIN_TOKEN_CHARS} printable characters without "
                    "spaces (the value is not shown)"]
        if self.enabled and not self.token and not is_loopback(self.bind):
            return [f"status_http.bind: {self.bind} is not loopback: set status_http.token (every request "
                    "must then send 'Authorization: Bearer <token>'), or bind 127.0.0.1"]
        return []
