"""`[peers.NAME]`: the callers the gateway knows, and what each may ask of it."""

from __future__ import annotations

from gateway.config.base import AETitle, Host, Port, Section


class PeerSection(Section):
    ae_title: AETitle
    host: Host = "127.0.0.1"
    port: Port = 104
    may_store: bool = True
    may_query: bool = False
    may_retrieve: bool = False
    may_print: bool = False
