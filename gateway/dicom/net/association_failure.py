"""Why an association this box requested (pynetdicom's requestor: worklist, Q/R SCU) did not come
up, in one line for the operator: rejected (with PS3.8's reason), the connection refused or
unanswered, or aborted by the peer.

pynetdicom keeps little of it: is_rejected and the A-ASSOCIATE-RJ (R6), and it can lose the RJ in a
race (R15: the peer closed right after answering); the connection itself is tried again to tell a
refused or unreachable port from a peer that accepted TCP and then said nothing useful.
"""

from __future__ import annotations

import socket

from gateway.dicom.net.pynetdicom_patches import rejection, unread_rejection
from gateway.dicom.net.storage_requestor import describe_connect_error, describe_rejection


def rejected(assoc) -> tuple[int, int, int] | None:
    """(result, source, diagnostic) of the A-ASSOCIATE-RJ that answered `assoc`'s request, or None
    when it was not rejected (PS3.8 9.3.4)."""
    if assoc.is_rejected:
        result, source, reason = rejection(assoc)
        return result or 0, source or 0, reason or 0
    return unread_rejection(assoc)


def why_no_association(assoc, where: str, host: str, port: int, timeout: float,
                       aborted: str = "aborted or no answer") -> str:
    """One line: why `assoc` (a pynetdicom requestor's Association, not established) failed.
    where: "AE@host:port" for the line; timeout: seconds allowed to connect and to be answered;
    aborted: the words for a peer that took the connection and did not accept (the caller may know
    more, e.g. the PACS aborted)."""
    rj = rejected(assoc)
    if rj is not None:
        return f"association rejected by {where}: " + describe_rejection(*rj)
    # pynetdicom says no more than "failed": try the connection itself to say why in words.
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return f"no association with {where}: {describe_connect_error(exc, timeout)}"
    return f"no association with {where}: {aborted} within {timeout:g} s"
