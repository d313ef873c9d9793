"""Why an association this box requested (pynetdicom's requestor: worklist, Q/R SCU) did not come
up, in one line for the operator: rejected (with PS3.8's reason), the connection refused or
unanswered, or aborted by the peer.

pynetdicom keeps little of it: is_rejected and the A-ASSOCIATE-RJ (R6), and it can lose the RJ in a
race (R15: the peer closed right after answering); the connection itself is tried again to tell a
refused or unreachable port from a peer that accepted TCP and then said nothing useful.
"""

from __future__ import annotations

import socket

from gateway.dicom.net.pynetdicom_patches import rejection, unread_abort, unread_rejection
from gateway.dicom.net.storage_requestor import describe_connect_error, describe_rejection


def rejected(assoc) -> tuple[int, int, int] | None:
    """(result, source, diagnostic) of the A-ASSOCIATE-RJ that answered `assoc`'s request, or None
    when it was not rejected (PS3.8 9.3.4)."""
    if assoc.is_rejected:
        result, source, reason = rejection(assoc)
        return result or 0, source or 0, reason or 0
    return unread_rejection(assoc)


def aborted_by_peer(assoc) -> bool:
    """The peer answered `assoc`'s request with an A-ABORT (read by pynetdicom or lost in R17's
    race); an abort of our own (a timeout, a Ctrl-C) is not one."""
    return unread_abort(assoc)


def why_no_association(assoc, where: str, host: str, port: int, timeout: float) -> str:
    """One line: why `assoc` (a pynetdicom requestor's Association, not established) failed.
    where: "AE@host:port" for the line; timeout: seconds allowed to connect and to be answered."""
    rj = rejected(assoc)
    if rj is not None:
        return f"association rejected by {where}: " + describe_rejection(*rj)
    if aborted_by_peer(assoc):
        return f"no association with {where}: it aborted the association request (A-ABORT)"
    # pynetdicom says no more than "failed": try the connection itself to say why in words.
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return f"no association with {where}: {describe_connect_error(exc, timeout)}"
    return f"no association with {where}: aborted or no answer within {timeout:g} s"
