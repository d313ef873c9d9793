"""How pynetdicom 3.0 reads PDUs, changed where it wastes work or trusts the peer too much.

AssociationSocket.recv reads a PDU body in 4 KB recv() calls (32 system calls and copies for a
128 KB PDU); here it reads in chunks of up to 256 KB (bench/bench_profile.py measured ~10% less CPU
per GB received with large reads). Memory still grows only with what actually arrived.

It also refuses a PDU longer than this AE ever accepts. pynetdicom reads whatever length a PDU
header announces into memory before looking at it, so one hostile header (4 GB of "P-DATA")
makes a Pi-sized box swap or die. Our maximum PDU length is negotiated; a peer that exceeds it
breaks PS3.8 9.3.1, and is treated as a broken connection (the DUL closes the association).

Every new association deep-copied the listener's supported presentation contexts (170 storage
classes x 13 transfer syntaxes, plus print): 10.6 ms of CPU before negotiation starts, the largest
part of the 15 ms an association set-up cost over DCMTK's storescp, paid per image by modalities
that open one association per image. Negotiation only reads them (presentation.
negotiate_as_acceptor builds new context objects for its answer), so a list copy suffices.

Tried and not kept: shortening or adapting pynetdicom's 1 ms idle polls (DUL loop and association
reactor). Throughput did not improve beyond run-to-run noise, shorter polls cost idle CPU on every
open association (0.1 ms: 18.7% of a core per idle association instead of 3.5%), and the extra
wake-ups competed for the GIL with the C-STORE handler.

pynetdicom is pinned (<3.1) in pyproject.toml because this relies on its internals:
AssociationSocket.recv's contract (return what was read, short or empty on a closed connection)
and transport.py's one use of deepcopy.
"""

from __future__ import annotations

import logging

import copy

from pynetdicom import transport
from pynetdicom.presentation import PresentationContext

log = logging.getLogger("gateway.dicom.pdu_limit")

_CHUNK = 256 * 1024
# A-ASSOCIATE-RQ/AC with many contexts and user identity stay far below this.
_MIN_LIMIT = 1024 * 1024
_limit = _MIN_LIMIT


def pdu_limit(max_pdu: int) -> int:
    """The longest PDU body accepted from a peer when this AE negotiates `max_pdu`."""
    return max(_MIN_LIMIT, max_pdu + 6)


def _recv(self, nr_bytes: int) -> bytearray:
    if nr_bytes > _limit:
        try:
            peer = self.socket.getpeername()
        except OSError:
            peer = "?"
        log.warning("closing connection with %s: it announced a PDU of %d bytes, more than the %d "
                    "this AE accepts", peer, nr_bytes, _limit)
        return bytearray()  # read as a closed connection: the DUL ends the association
    out = bytearray()
    while len(out) < nr_bytes:
        data = self.socket.recv(min(nr_bytes - len(out), _CHUNK))
        if not data:  # connection closed: return what was read, as pynetdicom's recv does
            break
        out += data
    return out


def _copy_contexts(value, memo=None):
    if isinstance(value, list) and all(isinstance(c, PresentationContext) for c in value):
        return list(value)
    return copy.deepcopy(value, memo)


def apply(max_pdu: int = 0) -> None:
    """`max_pdu`: the largest PDU this process negotiates to receive (plus the 6-byte header)."""
    global _limit
    _limit = pdu_limit(max_pdu)
    transport.AssociationSocket.recv = _recv
    # transport.py uses deepcopy only for the acceptor's supported contexts.
    transport.deepcopy = _copy_contexts
