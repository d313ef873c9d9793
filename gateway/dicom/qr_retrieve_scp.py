"""Query/Retrieve C-MOVE and C-GET SCP over the buffer (PS3.4 C.4.2 Move, C.4.3 Get; Patient Root
and Study Root information models, hierarchical retrieve, PS3.4 C.4.2.2.1).

Who may retrieve: a calling AE configured as a peer that may query (`may_query = true`, unless
`may_retrieve = false` takes retrieving away, PeerSection.retrieves); any other caller
(unknown callers included, even with ae.accept_unknown_callers) is answered 0x0124 Refused: Not
Authorized, as the Print SCP answers a peer without may_print.

Where a C-MOVE may send (the Move Destination, PS3.4 C.4.2.1.2): only an AE title this box has an
address for in its config, so that no request can steer images to an arbitrary host:
  1. a [destinations.NAME] whose ae_title is the Move Destination (the PACS, an archive), or
  2. a [peers.NAME] whose ae_title is the Move Destination and that may retrieve (a
     workstation pulling to itself), at its host and port, both written in the config (a peer
     without them would get the schema's defaults, 127.0.0.1:104).
Anything else: 0xA801 Refused: Move Destination unknown. The destination's host and port come
from the config only, never from the request.

Sub-operations send each stored file as it is: its own bytes in its own transfer syntax on a
presentation context proposed for exactly that syntax; when the destination (or the C-GET
requestor) did not accept that syntax, the existing forward path's rule applies (StoreSCU.send,
gateway/dicom/store_scu.py): the data set is decoded and sent in Explicit/Implicit VR Little
Endian with the same SOP Instance UID, or, if neither is accepted, that sub-operation fails and
is counted. A C-MOVE's sub-operations go over the gateway's own storage requestor (as a forward
does: C-STOREs written from the file, TCP_NODELAY), one association per 127 contexts' worth of
instances, each C-STORE-RQ naming the C-MOVE's AE title and Message ID (Move Originator, PS3.7
9.3.1.1); a sub-operation whose association is lost under it (a destination that ends
associations after some objects) is sent once more on a new one; a C-GET's go back over the requestor's association, on the storage contexts for which
it took the SCP role (SCP/SCU Role Selection, PS3.7 D.3.3.4; PS3.4 C.4.3.1.3 / C.4.3.3). Every
sub-operation has the request's Priority (PS3.4 C.4.2.1.2); requests are not ordered by it.

Responses (PS3.4 C.4.2.1.5 / C.4.3.1.4): a Pending (0xFF00) after each sub-operation with the
Remaining / Completed / Failed / Warning counts; the final one is 0x0000 when nothing failed or
warned, 0xB000 with the Failed SOP Instance UID List (0008,0058) when some failed or warned,
0xA702 with the list when every one failed, 0xFE00 with the counts (and Remaining) when a
C-CANCEL came: the cancel is honoured between sub-operations, the one in flight completes. An
identifier that matches nothing is answered 0x0000 with every count 0: "Sub-operations complete,
no failures" holds of zero sub-operations (PS3.4 C.4.2.3.1; DCMTK's and pynetdicom's SCPs answer
the same). A bad identifier gets 0xA900 (or 0xA701 beyond 65535 instances) with an Error Comment
naming the problem (gateway/buffer/retrieve_select.py); an index that cannot be read, 0xA701.

Files leaving meanwhile: the selection is a snapshot of the index. Before each sub-operation the
instance's row is read again (a newer copy of it may have replaced the file), and the file is
opened only then; once open, an eviction's unlink does not take the bytes away (POSIX keeps an
open file's data). A file evicted before its turn makes that one sub-operation fail, counted and
listed, never the retrieve. This is why no job_items link protects a retrieve: retention evicts
only delivered instances (already at the PACS, gateway/buffer/retention.py), so the failure
loses no data, and a link would need a job row that outlives a crash (pinning instances and
showing in the queue's backlog until someone removed it).

The requests are taken from pynetdicom before its own Q/R service class sees them
(pynetdicom_patches P13): its C-MOVE/C-GET SCPs accept only decoded Datasets and re-encode them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.dsutils import decode

from gateway.buffer import retrieve_select
from gateway.buffer.ingest import Buffer
from gateway.buffer.retrieve_select import BadIdentifier, Match
from gateway.config import Config, DestinationSection
from gateway.dicom import status
from gateway.dicom.net import pynetdicom_patches
from gateway.dicom.net.service_role import SupportedContext
from gateway.dicom.sop_classes import ACCEPTED_TRANSFER_SYNTAXES, storage_sop_classes
from gateway.dicom.store_scu import MAX_CONTEXTS, AssociationFailed, SendItem, StoreSCU
from gateway.event_kinds import QRRetrieve
from gateway.events import EventBus
from gateway.identity import normalise_ae

log = logging.getLogger("gateway.dicom.qr_retrieve_scp")

# Query/Retrieve SOP classes (PS3.4 C.6.1.1, C.6.2.1; PS3.6 Annex A).
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
MODEL_OF = {
    PATIENT_ROOT_MOVE: retrieve_select.PATIENT_ROOT,
    PATIENT_ROOT_GET: retrieve_select.PATIENT_ROOT,
    STUDY_ROOT_MOVE: retrieve_select.STUDY_ROOT,
    STUDY_ROOT_GET: retrieve_select.STUDY_ROOT,
}
MOVE_CLASSES = (PATIENT_ROOT_MOVE, STUDY_ROOT_MOVE)
GET_CLASSES = (PATIENT_ROOT_GET, STUDY_ROOT_GET)

# Statuses (PS3.4 C.4.2.1.5 Table C.4-2, C.4.3.1.4 Table C.4-3; PS3.7 C for 0124 / C000).
PENDING = 0xFF00
SUCCESS = 0x0000
WARNING = 0xB000  # sub-operations complete, one or more failures or warnings
CANCELLED = 0xFE00
UNABLE_SUBOPS = 0xA702  # refused: out of resources, unable to perform sub-operations
UNABLE_MATCHES = 0xA701  # refused: out of resources, unable to calculate number of matches
DESTINATION_UNKNOWN = 0xA801
NOT_AUTHORIZED = status.NOT_AUTHORIZED  # 0x0124
CANNOT_UNDERSTAND = status.CANNOT_UNDERSTAND  # 0xC000
UNABLE_TO_PROCESS = 0xC511  # Failed: unable to process (Cxxx, as pynetdicom's own SCP); a fault of this SCP


# What one sub-operation came to (QRRetrieveSCP._one).
SENT, FAILED, RETRY = "sent", "failed", "retry"


@dataclass
class _Tally:
    """Sub-operation counts of one retrieve (PS3.7 9.1.3 / 9.1.4 response fields)."""

    remaining: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)

    def fail(self, uid: str) -> None:
        self.remaining -= 1
        self.failed += 1
        self.failed_uids.append(uid)

    def final_status(self) -> int:
        if not self.failed and not self.warning:
            return SUCCESS
        if not self.completed and not self.warning:
            return UNABLE_SUBOPS
        return WARNING


class _MoveStorage:
    """A C-MOVE's association to its destination (StorageRequestor) as StoreSCU.send uses it, each
    C-STORE-RQ carrying the C-MOVE's Priority (PS3.4 C.4.2.1.2: the same for every sub-operation)
    and its Move Originator AE Title and Message ID (PS3.7 9.3.1.1), by which the destination
    (Orthanc, a retrieving workstation) tells which C-MOVE an object answers."""

    def __init__(self, out, priority: int, originator: tuple[str, int]):
        self.out, self.priority, self.originator = out, priority, originator
        self.accepted_contexts = out.accepted_contexts

    @property
    def is_established(self) -> bool:
        return self.out.is_established

    def send_c_store(self, dataset):
        return self.out.send_c_store(dataset, priority=self.priority, originator=self.originator)


class _GetRequestor:
    """The C-GET requestor's association as StoreSCU.send uses a storage association: only the
    contexts on which this box may act as SCU (the requestor took the SCP role for them), a fresh
    Message ID per C-STORE (pynetdicom's send_c_store defaults every one to 1) and the C-GET's
    Priority (PS3.4 C.4.3.1.2)."""

    def __init__(self, assoc, first_id: int, priority: int):
        self.assoc = assoc
        self.accepted_contexts = [cx for cx in assoc.accepted_contexts if cx.as_scu]
        self._next = first_id
        self.priority = priority

    @property
    def is_established(self) -> bool:
        return self.assoc.is_established

    def send_c_store(self, dataset):
        self._next = self._next % 0xFFFF + 1
        return self.assoc.send_c_store(dataset, msg_id=self._next, priority=self.priority)


class QRRetrieveSCP:
    """The retrieve half of the Q/R SCP (see the module docstring): a ServiceRole
    (gateway/dicom/net/service_role.py) for the listener. List it AFTER the Store SCP in app.py's
    roles: it re-adds the storage contexts with the SCP/SCU role answers a C-GET needs, and the
    listener keeps the last role answers given for an abstract syntax."""

    def __init__(self, config: Config, buffer: Buffer, events: EventBus | None = None):
        self.config = config
        self.buffer = buffer
        self.events = events
        self.storage_classes = storage_sop_classes(config.storage.extra_sop_classes)

    # -- the service role ------------------------------------------------------------------------
    def contexts(self) -> list[SupportedContext]:
        """Patient Root and Study Root MOVE and GET (default transfer syntaxes: Implicit/Explicit VR
        LE, Deflated, Explicit BE), and every storage class with the SCP/SCU role selection
        accepted both ways, so that a C-GET requestor that proposes the SCP role for storage
        (PS3.4 C.4.3.3) gets it; a requestor that proposes nothing keeps the default roles."""
        qr = [SupportedContext(uid) for uid in (*MOVE_CLASSES, *GET_CLASSES)]
        storage = [SupportedContext(uid, tuple(ACCEPTED_TRANSFER_SYNTAXES), scu_role=True, scp_role=True)
                   for uid in sorted(self.storage_classes)]
        return qr + storage

    def handlers(self) -> list[tuple]:
        return [(evt.EVT_REQUESTED, self._requested)]

    @staticmethod
    def called_titles() -> list[str]:
        return []

    def _requested(self, event) -> None:
        """A-ASSOCIATE-RQ received, AC not yet sent: take this association's C-MOVE / C-GET
        requests before any can arrive (pynetdicom_patches P13)."""
        assoc = event.assoc
        proposed = pynetdicom_patches.request_primitive(assoc).presentation_context_definition_list or []
        if any(str(cx.abstract_syntax) in MODEL_OF for cx in proposed):
            pynetdicom_patches.take_requests(assoc, (C_MOVE, C_GET), lambda req, cx: self.serve(assoc, req, cx))

    # -- the requests ----------------------------------------------------------------------------
    def serve(self, assoc, req, context) -> None:
        """One C-MOVE or C-GET request, from refusal or selection to the final response; runs on
        the association's reactor thread (P13). Never raises: every outcome is a response."""
        operation = "C-MOVE" if isinstance(req, C_MOVE) else "C-GET"
        calling = normalise_ae(str(assoc.requestor.ae_title))
        destination = normalise_ae(str(req.MoveDestination or "")) if operation == "C-MOVE" else calling
        tally = _Tally(remaining=0)
        try:
            final = self._serve(assoc, operation, req, context, calling, destination, tally)
        except Exception:
            # A fault here, not of the request: still answer (PS3.7 9.1: every request gets a
            # final response), and log the traceback for the developers.
            log.exception("%s from %s failed", operation, calling)
            final = (UNABLE_TO_PROCESS, "internal error; see the gateway's log")
            tally = _Tally(remaining=0)
        code, comment = final
        if code is not None:
            self._respond(assoc, req, context, code, tally, comment)
        level = logging.INFO if code == SUCCESS else logging.WARNING
        said = f"status 0x{code:04X}" if code is not None else "no final response"
        # A C-GET has no destination: its sub-operations go back over the requestor's association.
        where = f"to {destination}" if operation == "C-MOVE" else "over its own association"
        log.log(level, "%s from %s %s: %d completed, %d failed, %d warning, %d not attempted; %s%s",
                operation, calling, where, tally.completed, tally.failed, tally.warning, tally.remaining,
                said, f" ({comment})" if comment else "")
        if self.events is not None:
            self.events.publish(QRRetrieve(operation=operation, calling_ae=calling, destination=destination,
                                           status=code if code is not None else -1, completed=tally.completed,
                                           failed=tally.failed, warning=tally.warning, remaining=tally.remaining))

    def _serve(self, assoc, operation, req, context, calling, destination, tally) -> tuple[int | None, str]:
        """(final status, Error Comment); status None when no final response can be sent (the
        requestor's association is gone)."""
        peer = self.config.peer_by_ae(calling)
        if peer is None or not peer.retrieves:
            return NOT_AUTHORIZED, (f"{calling} may not retrieve (not a peer with may_query)" if peer is None or not
                                    peer.may_query else f"{calling} may not retrieve (may_retrieve = false)")
        dest_section = None
        if operation == "C-MOVE":
            dest_section = self.move_destination(destination)
            if dest_section is None:
                return DESTINATION_UNKNOWN, self._unknown_destination(destination)
        ts = context.transfer_syntax[0]
        try:
            identifier = decode(req.Identifier, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
        except Exception as exc:  # pynetdicom/pydicom raise many kinds on bad bytes
            return CANNOT_UNDERSTAND, f"identifier cannot be decoded: {type(exc).__name__}"
        try:
            matches = retrieve_select.retrieve_matches(self.buffer.index, MODEL_OF[str(context.abstract_syntax)],
                                                       identifier)
        except BadIdentifier as exc:
            return exc.status, str(exc)
        except sqlite3.Error as exc:
            return UNABLE_MATCHES, f"buffer index unreadable: {exc}"
        tally.remaining = len(matches)
        if not matches:
            return SUCCESS, ""
        if operation == "C-MOVE":
            self._move(assoc, req, context, calling, dest_section, matches, tally)
        else:
            self._get(assoc, req, context, calling, matches, tally)
        if not assoc.is_established:
            return None, "the requestor's association ended"
        if pynetdicom_patches.cancel_requested(assoc, req.MessageID) and tally.remaining:
            return CANCELLED, ""
        return tally.final_status(), ""

    def move_destination(self, ae_title: str) -> DestinationSection | None:
        """Where a C-MOVE to `ae_title` goes (see the module docstring): a destination's section,
        or a section made from a retrieving peer's address; None when the title is unknown."""
        for dest in self.config.destinations.values():
            if dest.ae_title == ae_title:
                return dest
        peer = self.config.peer_by_ae(ae_title)
        # Only with its address written in the config: a peer known by its title alone would get
        # the schema's defaults (127.0.0.1:104), somebody else's port or nobody's.
        if peer is not None and peer.retrieves and {"host", "port"} <= peer.model_fields_set:
            return DestinationSection(ae_title=peer.ae_title, host=peer.host, port=peer.port)
        return None

    def _unknown_destination(self, ae_title: str) -> str:
        """The 0xA801 Error Comment: why `ae_title` is no Move Destination (within LO's 64
        characters for a 16-character title; the log line says it too)."""
        peer = self.config.peer_by_ae(ae_title)
        if peer is None:
            return f"Move Destination {ae_title} is not a configured AE"
        if not peer.retrieves:
            return f"Move Destination {ae_title}: a peer that may not retrieve"
        return f"Move Destination {ae_title}: a peer with no host/port set"

    def _move(self, assoc, req, context, calling: str, dest: DestinationSection, matches: list[Match],
              tally: _Tally) -> None:
        c = self.config
        scu = StoreSCU(c.ae.title, dest, c.timers, c.ae.tcp_nodelay, c.ae.max_pdu)
        for batch in _batches(matches):
            pending = deque(batch)
            out, progressed, retried = None, False, set()
            try:
                while pending:
                    if self._stopped(assoc, req):
                        return
                    if out is None or not out.is_established:
                        if out is not None and not progressed:
                            # The last association ended without one instance sent: the destination
                            # is refusing or failing, not closing between objects; stop trying.
                            self._fail_all(assoc, req, context, tally, pending,
                                           f"{dest.ae_title} ended the association")
                            break
                        try:
                            out = scu.open([self._item(m) for m in pending])
                        except AssociationFailed as exc:
                            self._fail_all(assoc, req, context, tally, pending, str(exc))
                            break
                        progressed = False
                    m = pending[0]
                    outcome = self._one(scu, _MoveStorage(out, _priority(req), (calling, req.MessageID)), m, tally,
                                        retry=m.sop_uid not in retried)
                    if outcome == RETRY:
                        # The association was lost under this sub-operation (a destination that
                        # closes after a number of objects, a dropped connection): once more on a
                        # new one.
                        retried.add(m.sop_uid)
                        continue
                    pending.popleft()
                    progressed = progressed or outcome == SENT
                    self._respond(assoc, req, context, PENDING, tally)
            finally:
                if out is not None and out.is_established:
                    out.release()

    def _fail_all(self, assoc, req, context, tally: _Tally, pending, why: str) -> None:
        log.warning("C-MOVE to %s: %s; %d sub-operations fail", req.MoveDestination, why, len(pending))
        for m in pending:
            tally.fail(m.sop_uid)
        pending.clear()
        self._respond(assoc, req, context, PENDING, tally)

    def _get(self, assoc, req, context, calling: str, matches: list[Match], tally: _Tally) -> None:
        c = self.config
        scu = StoreSCU(c.ae.title, DestinationSection(ae_title=calling), c.timers, c.ae.tcp_nodelay, c.ae.max_pdu)
        back = _GetRequestor(assoc, req.MessageID, _priority(req))
        for m in matches:
            if self._stopped(assoc, req):
                return
            self._one(scu, back, m, tally)
            self._respond(assoc, req, context, PENDING, tally)

    def _one(self, scu: StoreSCU, out, m: Match, tally: _Tally, retry: bool = False) -> str:
        """One C-STORE sub-operation, counted in `tally`: SENT (completed or warning), FAILED, or,
        when `retry` and the association was lost under it, RETRY (not counted: the caller sends
        it again on a new association)."""
        try:
            now = retrieve_select.current(self.buffer.index, m)
        except sqlite3.Error as exc:
            # The index closed under a stopping service, or cannot be read: this sub-operation
            # fails, the retrieve goes on (the next check sees the association ended).
            log.warning("sub-operation for %s failed: buffer index unreadable: %s", m.sop_uid, exc)
            tally.fail(m.sop_uid)
            return FAILED
        if now is None:
            log.info("sub-operation for %s failed: evicted from the buffer since the selection", m.sop_uid)
            tally.fail(m.sop_uid)
            return FAILED
        if not out.is_established:
            tally.fail(m.sop_uid)
            return FAILED
        result = scu.send(out, self._item(now))
        if not result.ok:
            if retry and result.transient and not out.is_established:
                log.info("sub-operation for %s: association lost (%s); trying once more", m.sop_uid, result.error)
                return RETRY
            log.info("sub-operation for %s failed: %s", m.sop_uid, result.error)
            tally.fail(m.sop_uid)
            return FAILED
        tally.remaining -= 1
        if result.warning:
            tally.warning += 1
        else:
            tally.completed += 1
        return SENT

    @staticmethod
    def _stopped(assoc, req) -> bool:
        return not assoc.is_established or pynetdicom_patches.cancel_requested(assoc, req.MessageID)

    def _item(self, m: Match) -> SendItem:
        return SendItem(self.buffer.files.absolute(m.path), m.sop_class, m.sop_uid, m.transfer_syntax)

    @staticmethod
    def _respond(assoc, req, context, code: int, tally: _Tally, comment: str = "") -> None:
        """Send one C-MOVE / C-GET response on the request's context (PS3.7 9.1.3.1 / 9.1.4.1):
        Pending with all four counts; final with Completed/Failed/Warning (Remaining only when
        cancelled) and, for Warning/Failure/Cancel after sub-operations, the Failed SOP Instance UID
        List; a refusal before any sub-operation with its Error Comment."""
        if not assoc.is_established:
            return
        rsp = C_MOVE() if isinstance(req, C_MOVE) else C_GET()
        rsp.MessageIDBeingRespondedTo = req.MessageID
        rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
        rsp.Status = code
        started = code in (PENDING, SUCCESS, WARNING, CANCELLED, UNABLE_SUBOPS) and (
            tally.completed + tally.failed + tally.warning + tally.remaining > 0 or code == SUCCESS)
        if started:
            if code in (PENDING, CANCELLED):
                rsp.NumberOfRemainingSuboperations = tally.remaining
            rsp.NumberOfCompletedSuboperations = tally.completed
            rsp.NumberOfFailedSuboperations = tally.failed
            rsp.NumberOfWarningSuboperations = tally.warning
            if code in (WARNING, CANCELLED, UNABLE_SUBOPS):
                ds = Dataset()
                ds.FailedSOPInstanceUIDList = list(tally.failed_uids)
                encoded = pynetdicom_patches.encode_dataset(ds, context)
                if encoded is not None:
                    rsp.Identifier = BytesIO(encoded)
        if comment and code not in (PENDING, SUCCESS):
            rsp.ErrorComment = comment.replace("\\", "/")[:64]
        pynetdicom_patches.send_message(assoc, rsp, context.context_id)


def _priority(req) -> int:
    """The request's Priority (0 medium, 1 high, 2 low; PS3.7 9.1.1.1.4), medium if out of range."""
    return req.Priority if req.Priority in (0, 1, 2) else 0


def _batches(matches: list[Match]) -> list[list[Match]]:
    """`matches` cut, in order, into runs whose presentation contexts (StoreSCU's contexts_for:
    each stored syntax, plus the uncompressed fallback, per SOP class) fit one association
    (MAX_CONTEXTS). Written here, in one pass, because store_scu.fit_batch tries every prefix
    length and a retrieve may name tens of thousands of instances."""
    out: list[list[Match]] = []
    batch: list[Match] = []
    keys: set[tuple[str, str]] = set()
    for m in matches:
        new = {(m.sop_class, m.transfer_syntax), (m.sop_class, "fallback")} - keys
        if batch and len(keys) + len(new) > MAX_CONTEXTS:
            out.append(batch)
            batch, keys = [], set()
            new = {(m.sop_class, m.transfer_syntax), (m.sop_class, "fallback")}
        batch.append(m)
        keys |= new
    if batch:
        out.append(batch)
    return out
