"""The Print SCP's answers to DIMSE-N requests pynetdicom would leave unanswered, and its quiet
message dumps: the print policy only.  The reaches into pynetdicom they need are entries of
gateway/dicom/net/pynetdicom_patches.py (P9 guard_requests, P10 quiet_message_dumps, R7
send_message), each with a version-pinned test; nothing here touches pynetdicom internals.

- RequestGuard: every DIMSE-N request gets a response with a status (PS3.7 10.1.3).  pynetdicom
  drops an N-* request that lacks a mandatory command element without answering ("unexpected
  N-SET service message") and aborts on a SOP class it does not know; the guard answers those
  first (0118 no such SOP class, 0117 invalid object instance, 0123 no such action type, 0113 no
  such event type), and aborts the association on a request without a Message ID (a response
  could not name it).
- quiet_message_dumps: pynetdicom's standard EVT_DIMSE_RECV/SENT log handlers, run only when
  their debug log is wanted and never with a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection

from pynetdicom.dimse_primitives import N_ACTION, N_CREATE, N_EVENT_REPORT

from gateway.dicom.net import pynetdicom_patches

log = logging.getLogger("gateway.dicom.print_scp")  # the Print SCP's lines keep their logger name

_UID_CHARS = re.compile(r"[0-9.]+")


def valid_uid(value) -> bool:
    """Loose on purpose (digits and dots, 1 to 64 characters): the listener tolerates
    odd-but-parsable UIDs (ENFORCE_UID_CONFORMANCE off), and a client's own session UID must keep
    working."""
    text = str(value) if value is not None else ""
    return 0 < len(text) <= 64 and _UID_CHARS.fullmatch(text) is not None


class RequestGuard:
    """Answers the DIMSE-N requests pynetdicom would leave unanswered or abort on (PS3.7 10.1.3:
    every request gets a response with a status), before pynetdicom's service class sees them.
    pynetdicom_patches.guard_requests (P9) shows it each DIMSE-N request on the association's
    reactor thread, in the order the requests came, and sends the response it returns."""

    def __init__(self, assoc, sop_classes: Collection[str]):
        self.assoc, self.sop_classes = assoc, sop_classes

    @classmethod
    def install(cls, assoc, sop_classes: Collection[str]) -> None:
        """Put the guard in front of `assoc`'s request dispatch; `sop_classes` are the SOP Class
        UIDs a request on this association may name (others: 0118).  Call before the client can
        send P-DATA (EVT_REQUESTED)."""
        pynetdicom_patches.guard_requests(assoc, cls(assoc, sop_classes))

    def __call__(self, msg):
        """P9's check: None (pynetdicom serves `msg`), ABORT, or the response primitive."""
        if msg.MessageID is None:
            # A response must name the request's Message ID: there is nothing to answer, and
            # waiting would hang the client; a protocol error ends the association (PS3.8 9.2).
            log.warning("%s without a Message ID from %s: aborting the association",
                        msg.msg_type, self.assoc.requestor.ae_title.strip())
            return pynetdicom_patches.ABORT
        problem = request_problem(msg, self.sop_classes)
        if problem is None:
            return None
        code, comment = problem
        rsp = type(msg)()
        rsp.MessageIDBeingRespondedTo = msg.MessageID
        rsp.Status = code
        rsp.ErrorComment = comment[:64]
        cls_uid, inst_uid = request_uids(msg)
        if valid_uid(cls_uid):
            rsp.AffectedSOPClassUID = cls_uid
        if valid_uid(inst_uid):
            rsp.AffectedSOPInstanceUID = inst_uid
        if isinstance(msg, N_ACTION) and msg.ActionTypeID is not None:
            rsp.ActionTypeID = msg.ActionTypeID
        if isinstance(msg, N_EVENT_REPORT) and msg.EventTypeID is not None:
            rsp.EventTypeID = msg.EventTypeID
        log.warning("%s from %s refused with 0x%04X: %s", msg.msg_type,
                    self.assoc.requestor.ae_title.strip(), code, comment)
        return rsp


def quiet_message_dumps(assoc) -> None:
    """pynetdicom's default EVT_DIMSE_RECV/SENT handlers would format every message of `assoc`
    for their debug log even when it is off, and fail with an ERROR and a traceback on a
    malformed request that RequestGuard answers: run only when wanted, a failure logged as one
    debug line of the Print SCP (pynetdicom_patches P10)."""
    pynetdicom_patches.quiet_message_dumps(assoc, log)


def request_uids(msg) -> tuple:
    """(SOP Class UID, SOP Instance UID) a DIMSE-N request names: Affected for N-CREATE and
    N-EVENT-REPORT, Requested for the others (PS3.7 10.1); either may be None."""
    if isinstance(msg, (N_CREATE, N_EVENT_REPORT)):
        return msg.AffectedSOPClassUID, msg.AffectedSOPInstanceUID
    return msg.RequestedSOPClassUID, msg.RequestedSOPInstanceUID


def request_problem(msg, sop_classes: Collection[str]) -> tuple[int, str] | None:
    """(status, comment) for a request that cannot be served as sent, else None."""
    name = "Affected" if isinstance(msg, (N_CREATE, N_EVENT_REPORT)) else "Requested"
    cls_uid, inst_uid = request_uids(msg)
    if cls_uid is None or not str(cls_uid):
        return 0x0118, f"no {name} SOP Class UID"
    if not valid_uid(cls_uid) or str(cls_uid) not in sop_classes:
        return 0x0118, f"no such SOP class on a print association: {str(cls_uid)[:24]}"
    if isinstance(msg, N_CREATE):
        # Optional here (PS3.7 10.1.5.1.4): absent or empty means the SCP assigns it.
        if inst_uid is not None and str(inst_uid) and not valid_uid(inst_uid):
            return 0x0117, "Affected SOP Instance UID is not a valid UID"
    elif inst_uid is None or not str(inst_uid):
        return 0x0117, f"no {name} SOP Instance UID"
    elif not valid_uid(inst_uid):
        return 0x0117, f"{name} SOP Instance UID is not a valid UID"
    if isinstance(msg, N_ACTION) and msg.ActionTypeID is None:
        return 0x0123, "no Action Type ID"
    if isinstance(msg, N_EVENT_REPORT) and msg.EventTypeID is None:
        return 0x0113, "no Event Type ID"
    return None
