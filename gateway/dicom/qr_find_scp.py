"""Query/Retrieve C-FIND SCP over the buffer: Patient Root and Study Root Information Model - FIND
(PS3.4 C.4.1, C.6.1, C.6.2) on the listener's port. Matching is gateway/buffer/query.py's; this
module is the DIMSE adapter: who may ask, the statuses, pendings and C-CANCEL.

Statuses (PS3.4 C.4.1.1.4, PS3.7 C):
  FF00 / FF01  a match (FF01 when a key asked for is not held, or is of a level below the query
               level: returned zero length, not matched; Modality at STUDY level is matched as
               Modalities in Study, and still FF01: gateway/buffer/query.py)
  0000         no more matches
  FE00         C-CANCEL received: no further pendings
  0124         Refused: Not Authorized (PS3.7 Annex C, a general status of the DIMSE services): the
               calling AE is a configured peer with `may_query = false`. PS3.4 C.4.1.1.4 has no
               status for "not allowed"; A700 (out of resources) would tell the SCU to try again
               later, which is wrong, and A900 would blame its identifier.
  A900         the identifier does not fit the model (no or unknown Query/Retrieve Level, a missing
               or non-single unique key above the level, a wildcard or range where the VR allows
               none); Error Comment and Offending Element name the key
  A700         the index is busy or locked beyond its timeout, or memory ran out
  C000         the identifier cannot be decoded; C001 another index failure (logged)

Unknown callers: the association policy admits them only with `ae.accept_unknown_callers` (default
false); the C-FIND SCP then lets them query, as the print SCP lets them print (the flag says
"anyone on this network may use the box"), so 0124 answers configured peers without `may_query`.

How responses go out: on a Little Endian context (implicit or explicit VR: every context an SCU
proposes in practice) the C-FIND requests are taken from pynetdicom (pynetdicom_patches P13) and
each pending response is sent as ONE pre-encoded message: the C-FIND-RSP command set encoded once
per request by pynetdicom (R13) with only Status fixed for the request, the identifier encoded by
hand (query.encode_response), both as two PDVs of one P-DATA-TF PDU through the DUL's queue (R12);
the queue is bounded (P7) so that memory does not grow with the number of matches and a C-CANCEL
is seen while the DUL still has at most a few pendings to send. (pynetdicom's DUL reads the peer's
PDUs only in a loop where its outgoing queue is empty: the C-CANCEL is read when the matching
falls behind the sending, which tests/interop/test_qr_find_fast_wire.py checks by count: 65-70
pendings after findscu --cancel 2 over 10,000 matches.) Final responses, failures and
every other transfer syntax (deflated, big endian) go through pynetdicom's send_msg, as all
responses did before: 690 responses/s against Orthanc's 2,652 (bench/bench_qrfind.py), most of each
response's time being pynetdicom's command-set Dataset, pydicom's generic writer and two DUL loops
per message.

Extended negotiation (PS3.4 C.5.1.1.1): byte 1 relational-queries answered 0 (not supported),
byte 2 combined date-time matching answered 1 when `qr_find.combined_datetime` (default true),
bytes 3 (fuzzy semantic PN matching) and 4 (timezone adjustment) answered 0.
"""

from __future__ import annotations

import logging
import sqlite3
import weakref
from io import BytesIO

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pynetdicom import _config as pynetdicom_config
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import decode

from gateway.buffer import query
from gateway.config import Config
from gateway.dicom.net import pynetdicom_patches
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
_MODALITY = 0x00080060
# Every status this SCP answers besides pendings, with when (the conformance statement's table).
STATUSES = {
    0x0000: "no more matches",
    CANCELLED: "C-CANCEL received; no further matches are sent",
    NOT_AUTHORIZED: "the calling AE is a configured peer with `may_query = false`",
    OUT_OF_RESOURCES: "the index stayed busy or locked beyond its timeout, or memory ran out",
    query.IDENTIFIER_DOES_NOT_MATCH: "no or unknown Query/Retrieve Level, a unique key above the level missing "
                                     "or not a single value, a wildcard or range where the VR allows none "
                                     "(Error Comment and Offending Element say which)",
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


def _ignored(plan: query.FindPlan) -> str:
    """The keys of a level below the query level, for the query's log line: keywords and tags,
    never values (they may be patient data); "" when there are none."""
    if not plan.ignored:
        return ""
    names = []
    for tag in plan.ignored:
        name = f"{keyword_for_tag(tag)} ({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if tag == _MODALITY and plan.level == "STUDY":
            name += " matched as ModalitiesInStudy"
        names.append(name)
    return f"; keys below the {plan.level} level not supported (FF01): {', '.join(names)}"


# P-DATA primitives (one per pending response) waiting for the DUL thread: enough that it never
# waits for the matching, few enough that memory stays flat and a C-CANCEL stops the answers soon.
_PENDING_LIMIT = 32


def _fast_context(req, context) -> bool:
    """P13's `wants`: the contexts whose identifiers query.encode_response writes (Little Endian,
    not deflated)."""
    ts = context.transfer_syntax[0]
    return ts.is_little_endian and not ts.is_deflated


def _response(req, status: int) -> C_FIND:
    """A C-FIND-RSP primitive to `req`, as pynetdicom's C-FIND SCP fills it (service_class.py
    _c_find_scp: Message ID, Message ID Being Responded To, Affected SOP Class UID)."""
    rsp = C_FIND()
    rsp.MessageID = req.MessageID
    rsp.MessageIDBeingRespondedTo = req.MessageID
    rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
    rsp.Status = status
    return rsp


class _Request:
    """What _answers reads of a pynetdicom Event, for a request taken from pynetdicom (P13):
    assoc, request, context (context_id, abstract_syntax, transfer_syntax), identifier (decoded
    as pynetdicom's Event.identifier does, on first use) and is_cancelled (R11)."""

    def __init__(self, assoc, request, context):
        self.assoc, self.request, self.context = assoc, request, context
        self._identifier = None

    @property
    def identifier(self) -> Dataset:
        if self._identifier is None:
            stream = self.request.Identifier
            if stream is None or stream.getvalue() == b"":
                self._identifier = Dataset()
            else:
                ts = self.context.transfer_syntax
                self._identifier = decode(stream, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
        return self._identifier

    @property
    def is_cancelled(self) -> bool:
        return pynetdicom_patches.cancel_requested(self.assoc, self.request.MessageID)


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
                (evt.EVT_REQUESTED, self._requested), (evt.EVT_ACCEPTED, self._accepted)]

    def _requested(self, event) -> None:
        """A-ASSOCIATE-RQ received, AC not yet sent: take this association's C-FIND requests on
        Little Endian contexts before any can arrive (pynetdicom_patches P13); the rest stay
        pynetdicom's (EVT_C_FIND, on_find)."""
        assoc = event.assoc
        proposed = pynetdicom_patches.request_primitive(assoc).presentation_context_definition_list or []
        if any(str(cx.abstract_syntax) in FIND_MODELS for cx in proposed):
            pynetdicom_patches.take_requests(assoc, (C_FIND,), lambda req, cx: self.serve(assoc, req, cx),
                                             wants=_fast_context)

    def _accepted(self, event) -> None:
        """An association with a FIND context: pynetdicom's per-message debug dumps run only when
        its debug log is on (pynetdicom_patches P10); formatting every pending response for a log
        nobody reads cost more than building it. Its outgoing P-DATA queue is bounded (P7, here
        while it holds at most the A-ASSOCIATE-AC: the reactor thread, which runs this handler,
        sends nothing else before it returns)."""
        if any(str(cx.abstract_syntax) in FIND_MODELS for cx in event.assoc.accepted_contexts):
            quiet_message_dumps(event.assoc, log)
            pynetdicom_patches.limit_pending_pdata(event.assoc, _PENDING_LIMIT)

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
        return self._answers(event, None)

    def serve(self, assoc, req, context) -> None:
        """A C-FIND request taken from pynetdicom (P13) on a Little Endian context: the same
        answers as on_find, each pending sent as one pre-encoded message (R12, R13), the rest
        through pynetdicom's send_msg (R7). Runs on the association's reactor thread."""
        request = _Request(assoc, req, context.as_tuple)
        implicit = request.context.transfer_syntax.is_implicit_VR
        try:
            self._send_answers(assoc, req, context, self._answers(request, implicit))
        except Exception as exc:  # noqa: BLE001 - the association and the service keep running
            # pynetdicom's C-FIND SCP answers a failing handler with a failure status (C311);
            # here the same, with the one line the house's logs allow.
            log.error("C-FIND from %s failed: %s: %s", assoc.requestor.ae_title.strip(), type(exc).__name__, exc)
            if assoc.is_established:
                pynetdicom_patches.send_message(assoc, _response(req, INDEX_FAILURE), context.context_id)

    def _send_answers(self, assoc, req, context, answers) -> None:
        cx_id = context.context_id
        command = None  # the pending command set, once per request: only Status differs
        for status, identifier in answers:
            if not assoc.is_established:
                return
            if isinstance(status, int):  # a pending: (FF00 or FF01, identifier)
                if command is None:
                    rsp = _response(req, status)
                    rsp.Identifier = BytesIO(b"\0\0")  # present: Command Data Set Type says so
                    command = pynetdicom_patches.encode_command_set(rsp)
                if isinstance(identifier, bytes):
                    if pynetdicom_patches.send_whole_message(assoc, cx_id, command, identifier):
                        continue
                    encoded = identifier
                else:
                    encoded = pynetdicom_patches.encode_dataset(identifier, context)
                rsp = _response(req, status)
                rsp.Identifier = BytesIO(encoded)
                pynetdicom_patches.send_message(assoc, rsp, cx_id)
                continue
            # The final response: a status Dataset (Status, Error Comment, Offending Element),
            # copied into the response as pynetdicom's validate_status does.
            rsp = _response(req, status.Status)
            for elem in status:
                setattr(rsp, elem.keyword, elem.value)
            pynetdicom_patches.send_message(assoc, rsp, cx_id)
            return

    def _answers(self, event, implicit: bool | None):
        """(status, identifier) pairs of one C-FIND (PS3.4 C.4.1.3). Pendings carry a Dataset
        when `implicit` is None (pynetdicom encodes it), else the identifier already encoded in
        Little Endian with implicit (True) or explicit (False) VR; the last pair is a final status
        as a Dataset of Status / Error Comment / Offending Element, with None."""
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
            if implicit is not None and query.encodable_by_hand(plan):
                found = query.encoded_responses(self.index, plan, self.config.ae.title, implicit)
            else:
                found = query.responses(self.index, plan, self.config.ae.title,
                                        (ts.is_implicit_VR, ts.is_little_endian))
            for ds in found:
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
        log.info("C-FIND %s level from %s: %d matches%s", plan.level, calling, state["matches"], _ignored(plan))
        yield done(0x0000)
