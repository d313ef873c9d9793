"""How pynetdicom 3.0 reads PDUs, changed where it measurably wastes work on the receive path.

AssociationSocket.recv reads a PDU in 4 KB recv() calls appended to a bytearray (32 system calls
and copies for a 128 KB PDU); recv_into a preallocated buffer reads it in a few. bench/
bench_profile.py measured ~10% less CPU per GB received.

Tried and not kept: shortening or adapting pynetdicom's 1 ms idle polls (DUL loop and association
reactor). Throughput did not improve beyond run-to-run noise, shorter polls cost idle CPU on every
open association (0.1 ms: 18.7% of a core per idle association instead of 3.5%), and the extra
wake-ups competed for the GIL with the C-STORE handler. The time per object is spent in
pynetdicom's per-message machinery and in the three fsyncs durability needs (see bench/README.md).

Applied once per process by `apply()`; pynetdicom is pinned (<3.1) in pyproject.toml because this
relies on AssociationSocket.recv's contract: return what was read, short on a closed connection.
"""

from __future__ import annotations

from pynetdicom import transport


def _recv(self, nr_bytes: int) -> bytearray:
    buf = bytearray(nr_bytes)
    got = 0
    with memoryview(buf) as view:
        while got < nr_bytes:
            n = self.socket.recv_into(view[got:], nr_bytes - got)
            if n == 0:  # connection closed: return what was read, as pynetdicom's recv does
                break
            got += n
    return buf if got == nr_bytes else buf[:got]


def apply() -> None:
    transport.AssociationSocket.recv = _recv
