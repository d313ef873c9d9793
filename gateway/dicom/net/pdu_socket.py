"""PDUs on a blocking socket: buffered reads, one-piece writes, and the few fixed-size PDUs
(PS3.8 9.3) that the storage path sends itself.

Reads go into one preallocated buffer with recv_into, and data is handed out as memoryviews into
it, so a P-DATA fragment travels from the socket to the spool file without a Python-level copy.

Every read re-arms TCP_QUICKACK (Linux clears it again by itself): a sender with Nagle on (stock
DCMTK writes each PDU header and its last short piece separately) holds that short tail until the
receiver ACKs what came before, and a delayed ACK makes that 40 ms per object. Measured with
stock storescu: one object in ~2 stalled for ~46 ms before this.
"""

from __future__ import annotations

import socket
import struct

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)

PDU_HEADER = struct.Struct(">BxI")
PDV_HEADER = struct.Struct(">IBB")

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

# A-ABORT source 2 (service provider) reasons, PS3.8 9.3.8
ABORT_UNEXPECTED_PDU = 0x02
ABORT_UNRECOGNIZED_PDU = 0x01
ABORT_INVALID_PARAMETER = 0x06
ABORT_NOT_SPECIFIED = 0x00


class ConnectionClosed(Exception):
    """The peer closed the connection (or it was shut down under us)."""


class MalformedPdu(ValueError):
    """A PDU whose items do not add up to its length."""


class SocketReader:
    def __init__(self, sock: socket.socket, size: int = 256 * 1024, quickack: bool = True):
        self.sock = sock
        self._quickack = quickack and _QUICKACK is not None
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0

    def _recv(self) -> None:
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(self._buf):
            # Only ever a few header bytes are carried over: move them to the front.
            n = self._end - self._start
            self._buf[:n] = self._buf[self._start:self._end]
            self._start, self._end = 0, n
        got = self.sock.recv_into(self._view[self._end:])
        if not got:
            raise ConnectionClosed()
        self._end += got
        if self._quickack:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                self._quickack = False

    def exact(self, n: int) -> bytes:
        """`n` bytes (n small: headers, command fragments are read with some())."""
        while self._end - self._start < n:
            self._recv()
        out = bytes(self._view[self._start:self._start + n])
        self._start += n
        return out

    def some(self, limit: int) -> memoryview:
        """Between 1 and `limit` bytes. Valid only until the next read."""
        if self._start == self._end:
            self._recv()
        n = min(limit, self._end - self._start)
        out = self._view[self._start:self._start + n]
        self._start += n
        return out

    def skip(self, n: int) -> None:
        while n:
            n -= len(self.some(n))


def pdv_items(reader: SocketReader, length: int):
    """The PDV items of a P-DATA-TF body of `length` bytes: yields (context ID, control header,
    value size). The caller reads each value (`size` bytes) before taking the next item."""
    remaining = length
    while remaining:
        if remaining < PDV_HEADER.size:
            raise MalformedPdu("P-DATA-TF ends inside a PDV header")
        item_length, context_id, control = PDV_HEADER.unpack(reader.exact(PDV_HEADER.size))
        if item_length < 2 or item_length + 4 > remaining:
            raise MalformedPdu(f"PDV item length {item_length} does not fit its PDU")
        remaining -= item_length + 4
        yield context_id, control, item_length - 2


def pdu(pdu_type: int, body: bytes) -> bytes:
    return PDU_HEADER.pack(pdu_type, len(body)) + body


def abort_pdu(source: int = 0x02, reason: int = ABORT_NOT_SPECIFIED) -> bytes:
    return pdu(A_ABORT, bytes((0, 0, source, reason)))


def release_rp_pdu() -> bytes:
    return pdu(A_RELEASE_RP, b"\x00\x00\x00\x00")


def reject_pdu(result: int, source: int, reason: int) -> bytes:
    return pdu(A_ASSOCIATE_RJ, bytes((0, result, source, reason)))


def command_pdus(context_id: int, command: bytes, peer_max_pdu: int) -> bytes:
    """P-DATA-TF PDU(s) carrying a command set, split to the peer's maximum PDU length."""
    # A PDV of n bytes needs n + 6 bytes of PDU body (item length, context ID, control header).
    room = peer_max_pdu - 6 if peer_max_pdu else len(command)
    room = max(room, 1)
    out = []
    for pos in range(0, len(command), room):
        piece = command[pos:pos + room]
        control = 0x01 | (0x02 if pos + room >= len(command) else 0)
        out.append(pdu(P_DATA_TF, PDV_HEADER.pack(len(piece) + 2, context_id, control) + piece))
    return b"".join(out)
