"""`[peers.NAME]`: the callers the gateway knows, and what each may ask of it."""

from __future__ import annotations

from pydantic import model_validator

from gateway.config.base import AETitle, Host, Port, Section


class PeerSection(Section):
    """One caller. may_query: C-FIND over the buffer; may_retrieve: C-MOVE and C-GET from it, unset
    = as may_query (Query/Retrieve is one service: a peer that may query may retrieve what it found
    unless the config says `may_retrieve = false`; retrieving without may_query is refused here)."""

    ae_title: AETitle
    host: Host = "127.0.0.1"
    port: Port = 104
    may_store: bool = True
    may_query: bool = False
    may_retrieve: bool | None = None
    may_print: bool = False

    @model_validator(mode="after")
    def _retrieve_needs_query(self) -> "PeerSection":
        if self.may_retrieve and not self.may_query:
            raise ValueError("may_retrieve = true needs may_query = true: only a peer that may query may "
                             "retrieve (leave may_retrieve out to follow may_query)")
        return self

    @property
    def retrieves(self) -> bool:
        """May this peer C-MOVE or C-GET from the buffer (may_query, and may_retrieve not false)."""
        return self.may_query and self.may_retrieve is not False
