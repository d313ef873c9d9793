"""`[qr_scu]`: how `dicom-gateway query` and `dicom-gateway retrieve` ask the PACS (Query/Retrieve
SCU, PS3.4 Annex C; the SCU is gateway/dicom/qr_scu.py, the verbs gateway/cli_query.py).

    [qr_scu]
    destination = ""          # the [destinations] entry asked by default; "" = the only destination
    retrieve = "move"         # "move": C-MOVE to move_destination (the PACS opens an association to
                              # the running service's STORE SCP); "get": C-GET, the instances come
                              # back on the query's own association and are ingested by the command
    move_destination = ""     # the AE title the PACS is told to send to; "" = ae.title (this box).
                              # The PACS must know it (its AE table: host and port of the service).
    calling_ae = ""           # our AE title towards the PACS; "" = ae.title
    association_s = 30        # connect and A-ASSOCIATE exchange
    inactivity_s = 90         # between two responses (each pending response restarts it)
    find_session_s = 3600     # a whole C-FIND association at most
    retrieve_session_s = 10800  # a whole C-MOVE / C-GET association at most
    max_results = 1000        # a C-FIND with more matches is cancelled (narrow the keys)

The timers are the seed conformance statement's (../shared/SEED-CONFORMANCE.md "Query / Retrieve
SCU": association 30 s, inactivity 90 s reset at each pending response, session 60 min for FIND and
180 min for MOVE). Which destination names exist is checked in root.py (it sees both sections).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator

from gateway.config.base import FloatRange, IntRange, Section, _check_ae_title


def _optional_ae(value: str) -> str:
    # "" means "this box's own title" (ae.title), resolved where both sections are at hand.
    return value if value == "" else _check_ae_title(value)


OptionalAE = Annotated[str, AfterValidator(_optional_ae)]


class QrScuSection(Section):
    destination: str = ""
    retrieve: Literal["move", "get"] = "move"
    move_destination: OptionalAE = ""
    calling_ae: OptionalAE = ""
    association_s: FloatRange(gt=0, le=600) = 30.0
    inactivity_s: FloatRange(gt=0, le=3600) = 90.0
    # At least a minute: a session timer shorter than one inactivity wait would cut every retrieve
    # that is merely slow; at most a day.
    find_session_s: FloatRange(ge=60, le=24 * 3600) = 3600.0
    retrieve_session_s: FloatRange(ge=60, le=24 * 3600) = 10800.0
    max_results: IntRange(1, 100000) = 1000

    def problems(self, destinations: dict) -> list[str]:
        """Cross-section checks (root.py): the default destination must be configured."""
        if self.destination and self.destination not in destinations:
            known = ", ".join(destinations) or "none configured"
            return [f"qr_scu.destination: unknown destination {self.destination!r} (known: {known})"]
        return []
