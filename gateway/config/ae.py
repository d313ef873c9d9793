"""`[ae]`: the gateway's own Application Entity: its title, where it listens, and the association
limits that protect the box from a flood of callers."""

from __future__ import annotations

from gateway.config.base import AETitle, Host, IntRange, Port, Section


class AESection(Section):
    title: AETitle = "EDGE"
    bind: Host = "127.0.0.1"
    port: Port = 11112
    max_pdu: IntRange(4096, 16 * 1024 * 1024) = 131072
    max_associations: IntRange(1, 256) = 16
    # The seed product accepts any caller; a hospital network wants deny-by-default.
    accept_unknown_callers: bool = False
    tcp_nodelay: bool = True
