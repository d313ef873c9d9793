"""Query/Retrieve C-FIND SCP over the buffer: Patient Root and Study Root Information Model - FIND
(PS3.4 C.4.1, C.6.1, C.6.2) on the listener's port. Matching is gateway/buffer/query.py's; this
module is the DIMSE adapter: who may ask, the statuses, pendings and C-CANCEL.

Statuses (PS3.4 C.4.1.1.4, PS3.7 C):
  FF00 / FF01  a match (FF01 when a key asked for is not held: returned zero length, not matched)
  0000         no more matches
  FE00         C-CANCEL received: no further pendings
  0124         Refused: Not Authorized (PS3.7 Annex C, a general status of the DIMSE services): the
               calling AE is a configured peer with `may_query = false`. PS3.4 C.4.1.1.4 has no
               status for "not allowed"; A700 (out of resources) would tell the SCU to try again
               later, which is wrong, and A900 would blame its identifier.
  A900         the identifier does not fit the model (no or unknown Query/Retrieve Level, a key of a
               lower level, a missing or non-single unique key above the level, a wildcard or range
               where the VR allows none); Error Comment and Offending Element name the key
  A700         the index is busy or locked beyond its timeout, or memory ran out
  C000         the identifier cannot be decoded; C001 another index failure (logged)

Unknown callers: the association policy admits them only with `ae.accept_unknown_callers` (default
false); the C-FIND SCP then lets them query, as the print SCP lets them print (the flag says
"anyone on this network may use the box"), so 0124 answers configured peers without `may_query`.

Extended negotiation (PS3.4 C.5.1.1.1): byte 1 relational-queries answered 0 (not supported),
byte 2 combined date-time matching answered 1 when `qr_find.combined_datetime` (default true),
bytes 3 (fuzzy semantic PN matching) and 4 (timezone adjustment) answered 0.
"""

from __future__ import annotations

import logging
import sqlite3
import weakref

from pydicom.dataset import Dataset
from pynetdicom import _config as pynetdicom_config
from pynetdicom import evt

from gateway.buffer import query
from gateway.config import Config
from gateway.dicom.net.pynetdicom_patches import quiet_message_dumps
from gateway.dicom.net.service_role import SupportedContext
from gateway.event_kinds import QrQuery
from gateway.events import EventBus

log = logging.getLogger("gateway.dicom.qr_find")

FIND_MODELS = {query.PATIENT_ROOT_FIND: "PATIENT", query.STUDY_ROOT_FIND: "STUDY"}
NOT_AUTHORIZED = 0x0124
OUT_OF_RESOURCES = 0xA700
CANNOT_DECODE = 0xC000
INDEX_FAILURE = 0xC001
CANCELLED = 0xFE00
PENDING, PENDING_WARNING = 0xFF00, 0xFF01
# Every status this SCP answers besides pendings, with when (the conformance statement's table).
STATUSES = {
    0x0000: "no more matches",
    CANCELLED: "C-CANCEL received; no further matches are sent",
    NOT_AUTHORIZED: "the calling AE is a configured peer with `may_query = false`",
    OUT_OF_RESOURCES: "the index stayed busy or locked beyond its timeout, or memory ran out",
    query.IDENTIFIER_DOES_NOT_MATCH: "no or unknown Query/Retrieve Level, a key of a lower level, a unique key "
                                     "above the level missing or not a single value, a wildcard or range "
                                     "where the VR allows none (Error Comment and Offending Element say which)",
    CANNOT_DECODE: "the identifier cannot be decoded",
    INDEX_FAILURE: "another failure of the index (logged)",
}


def _status(code: int, comment: str = "", offending: int | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment.replace("\\", "/")[:64]
    if offending is not None:
        ds.OffendingElement = [offending]
    return ds


class QueryFindSCP:
    """The C-FIND SCP (a ServiceRole, gateway/dicom/net/service_role.py) over `index` (the buffer's
    Index; None only to describe the contexts). Publishes one QrQuery per C-FIND on `events`."""

    def __init__(self, config: Config, index, events: EventBus | None):
        self.config = config
        self.index = index
        self.events = events
        # Per association: whether combined date-time matching was agreed (weak: dropped with it).
        self._combined: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # Process-wide, and harmless to the other services: pynetdicom formats every C-FIND
        # response identifier for a debug line (service_class.py, _c_find_scp) whether or not debug
        # logging is on; 10,000 matches spent most of their time there.
        pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = False

    # -- the service role ----------------------------------------------------------------------
    def contexts(self) -> list[SupportedContext]:
        """Patient Root and Study Root FIND, pynetdicom's default transfer syntaxes, SCP only."""
        return [SupportedContext(uid) for uid in FIND_MODELS]

    def handlers(self) -> list[tuple]:
        return [(evt.EVT_C_FIND, self.on_find), (evt.EVT_SOP_EXTENDED, self.on_extended),
                (evt.EVT_ACCEPTED, self._accepted)]

    def _accepted(self, event) -> None:
        """An association with a FIND context: pynetdicom's per-message debug dumps run only when
        its debug log is on (pynetdicom_patches P10); formatting every pending response for a log
        nobody reads cost more than building it."""
        if any(str(cx.abstract_syntax) in FIND_MODELS for cx in event.assoc.accepted_contexts):
            quiet_message_dumps(event.assoc, log)

    def called_titles(self) -> list[str]:
        return []

    # -- extended negotiation ------------------------------------------------------------------
    def on_extended(self, event) -> dict:
        """Answer the SOP Class Extended Negotiation of the FIND classes (PS3.4 C.5.1.1.1):
        relational-queries 0, combined date-time 1 when configured, the rest 0."""
        answers = {}
        for uid, info in (event.app_info or {}).items():
            if str(uid) not in FIND_MODELS or not info:
                continue
            wants = len(info) > 1 and info[1] == 1
            agreed = wants and self.config.qr_find.combined_datetime
            # As long as the proposal: relational 0, date-time as agreed, every other byte 0.
            answer = bytearray(len(info))
            answer[1] = 1 if agreed else 0
            answers[uid] = bytes(answer)
            if agreed:
                self._combined.setdefault(event.assoc, set()).add(str(uid))
        return answers

    # -- C-FIND --------------------------------------------------------------------------------
    def _may_query(self, assoc) -> bool:
        peer = self.config.peer_by_ae(assoc.requestor.ae_title)
        return peer.may_query if peer is not None else self.config.ae.accept_unknown_callers

    def on_find(self, event):
        """EVT_C_FIND: yields (status, identifier) pairs for pynetdicom (PS3.4 C.4.1.3)."""
        assoc = event.assoc
        calling = assoc.requestor.ae_title.strip()
        model = str(event.request.AffectedSOPClassUID)
        state = {"level": "", "matches": 0}

        def done(code: int, comment: str = "", offending: int | None = None):
            if code not in (0x0000, CANCELLED):
                log.warning("C-FIND from %s refused with 0x%04X: %s", calling, code, comment)
            if self.events is not None:
                self.events.publish(QrQuery(calling_ae=calling, model=FIND_MODELS.get(model, model),
                                            level=state["level"], matches=state["matches"], status=code))
            return _status(code, comment, offending), None

        if not self._may_query(assoc):
            yield done(NOT_AUTHORIZED, f"{calling} may not query (peers.*.may_query)")
            return
        combined = model in self._combined.get(assoc, ())
        try:
            # pydicom decodes the identifier's values (with its Specific Character Set) as plan()
            # reads them: a value it cannot decode raises there, whatever its kind.
            plan = query.plan(event.identifier, model, combined_datetime=combined,
                              pn_case_insensitive=self.config.qr_find.pn_case_insensitive)
        except query.QueryError as exc:
            yield done(exc.status, exc.comment, exc.offending)
            return
        except Exception as exc:  # pydicom raises many kinds on an identifier it cannot decode
            yield done(CANNOT_DECODE, f"cannot decode the identifier: {type(exc).__name__}")
            return
        state["level"] = plan.level
        pending = PENDING_WARNING if plan.unsupported else PENDING
        try:
            ts = event.context.transfer_syntax
            wire = (ts.is_implicit_VR, ts.is_little_endian)
            for ds in query.responses(self.index, plan, self.config.ae.title, wire):
                if event.is_cancelled:
                    yield done(CANCELLED)
                    return
                state["matches"] += 1
                yield pending, ds
        except (sqlite3.OperationalError, MemoryError) as exc:
            yield done(OUT_OF_RESOURCES, f"index busy: {exc}")
            return
        except sqlite3.Error as exc:
            log.error("C-FIND from %s: index failure: %s", calling, exc)
            yield done(INDEX_FAILURE, f"index failure: {type(exc).__name__}")
            return
        if event.is_cancelled:
            yield done(CANCELLED)
            return
        log.info("C-FIND %s level from %s: %d matches", plan.level, calling, state["matches"])
        yield done(0x0000)
