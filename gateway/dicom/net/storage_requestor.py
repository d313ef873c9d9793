"""The forwarder's side of a Storage-only association: stored files out to a PACS, fast.

Why not pynetdicom here: its C-STORE SCU goes through the same per-message machinery as its SCP
(two polling threads, pydicom-encoded command sets, PDU queues) and sent CT at a fifth of
storescu's rate on a 2-core box (bench/README.md). This is one thread, blocking I/O: a stored file
goes out in PDUs read straight from the file after its meta header (never decoded), each PDU in
one sendmsg. Associations that also carry storage commitment stay with pynetdicom (store_scu.py).

It offers the subset of pynetdicom's Association that StoreSCU and the forwarder use
(is_established, accepted_contexts, send_c_store, release, abort), so both kinds are driven by
the same code.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom.dsutils import encode
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import PresentationContext

from gateway.dicom.net import dimse_command
from gateway.dicom.net.pdu_connection import PduConnection
from gateway.dicom.net.pdu_socket import (
    A_ABORT,
    A_ASSOCIATE_AC as AC_TYPE,
    A_ASSOCIATE_RJ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    P_DATA_TF,
    PDU_HEADER,
    PDV_HEADER,
    ConnectionClosed,
    SocketReader,
    abort_pdu,
    command_pdus,
    pdu,
    pdv_items,
)
from gateway.identity import APPLICATION_CONTEXT_NAME, user_information
from gateway.part10.structure import StructureError, file_meta

log = logging.getLogger("gateway.dicom.storage_requestor")

IMPLICIT_LE = "1.2.840.10008.1.2"
# Data PDUs when the peer sets no maximum (0): the size DCMTK and this gateway accept by default.
_DEFAULT_PDV = 128 * 1024
# The file meta group of a stored file fits in this many bytes (it is a few hundred).
_META_READ = 64 * 1024


VERIFICATION = "1.2.840.10008.1.1"
C_STORE_RSP = 0x8001
C_ECHO_RSP = 0x8030

# PS3.8 Table 9-21: A-ASSOCIATE-RJ (source, reason) in the words an operator can act on.
_REJECT_REASONS = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (2, 1): "no reason given (ACSE)",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded (too many associations)",
}


def describe_rejection(result: int, source: int, reason: int) -> str:
    """An A-ASSOCIATE-RJ in words, the codes after it for whoever reads the peer's log:
    e.g. "calling AE title not recognised (permanent; A-ASSOCIATE-RJ 1/1/3)"."""
    words = _REJECT_REASONS.get((source, reason), f"reason {reason} from source {source}")
    kind = {1: "permanent", 2: "transient"}.get(result, f"result {result}")
    return f"{words} ({kind}; A-ASSOCIATE-RJ {result}/{source}/{reason})"


def describe_connect_error(exc: OSError, timeout: float) -> str:
    """Why a TCP connection failed, in words."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s (host down, or a firewall drops the connection)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return exc.strerror or str(exc)


class RequestRefused(Exception):
    """No association: connection failed, rejected (`result` from the A-ASSOCIATE-RJ) or aborted."""

    def __init__(self, reason: str, result: int | None = None):
        super().__init__(reason)
        self.result = result


@dataclass(frozen=True)
class AcceptedContext:
    """What StoreSCU reads of pynetdicom's PresentationContext."""
    context_id: int
    abstract_syntax: str
    transfer_syntax: tuple[str, ...]


class StorageRequestor(PduConnection):
    """`reader`: the one that read the A-ASSOCIATE-AC (it may hold bytes that followed it)."""

    def __init__(self, sock: socket.socket, contexts: list[AcceptedContext], peer_max_pdu: int,
                 reader: SocketReader | None = None):
        # PduConnection's lock: abort() may come from the service's stop.
        super().__init__(sock, reader or SocketReader(sock))
        self.accepted_contexts = contexts
        self.peer_max_pdu = peer_max_pdu
        self._message_id = 0
        # Data per PDU: the peer's maximum PDU length less the PDV item header.
        self._step = max(min(peer_max_pdu - 6, 1 << 20), 1) if peer_max_pdu else _DEFAULT_PDV

    # -- association ---------------------------------------------------------------------------
    @classmethod
    def connect(cls, host: str, port: int, calling_ae: str, called_ae: str,
                requested: list[tuple[str, list[str]]], max_pdu: int, connect_s: float, inactivity_s: float,
                nodelay: bool = True) -> "StorageRequestor":
        try:
            sock = socket.create_connection((host, port), timeout=connect_s)
        except OSError as exc:
            raise RequestRefused(describe_connect_error(exc, connect_s)) from None
        try:
            if nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            proposed = []
            for i, (abstract, syntaxes) in enumerate(requested):
                cx = PresentationContext()
                cx.context_id = 2 * i + 1
                cx.abstract_syntax = abstract
                cx.transfer_syntax = list(syntaxes)
                proposed.append(cx)
            sock.sendall(_request_pdu(calling_ae, called_ae, proposed, max_pdu))
            reader = SocketReader(sock)
            pdu_type, length = PDU_HEADER.unpack(reader.exact(PDU_HEADER.size))
            if length > 1 << 20:
                raise RequestRefused(f"answered the association request with a PDU of {length} bytes")
            body = reader.exact(length)
            if pdu_type == A_ASSOCIATE_RJ:
                result, source, reason = body[1], body[2], body[3]
                raise RequestRefused(describe_rejection(result, source, reason), result)
            if pdu_type == A_ABORT:
                raise RequestRefused("the peer answered the association request with A-ABORT")
            if pdu_type != AC_TYPE:
                raise RequestRefused(f"answered the association request with PDU type 0x{pdu_type:02X}")
            ac = A_ASSOCIATE_AC()
            ac.decode(PDU_HEADER.pack(pdu_type, length) + body)
            primitive = ac.to_primitive()
            by_id = {cx.context_id: cx.abstract_syntax for cx in proposed}
            accepted = [AcceptedContext(cx.context_id, str(by_id[cx.context_id]), (str(cx.transfer_syntax[0]),))
                        for cx in primitive.presentation_context_definition_results_list
                        if cx.result == 0x00 and cx.context_id in by_id]
            sock.settimeout(inactivity_s)
            return cls(sock, accepted, primitive.maximum_length_received or 0, reader)
        except RequestRefused:
            sock.close()
            raise
        except (OSError, ConnectionClosed, ValueError, struct.error) as exc:
            sock.close()
            raise RequestRefused(f"association failed: {exc}") from None

    def release(self) -> None:
        """A-RELEASE-RQ, wait for the RP (bounded by the inactivity timer), close."""
        if not self.is_established:
            return
        try:
            self._send(pdu(A_RELEASE_RQ, b"\x00\x00\x00\x00"))
            while True:
                pdu_type, length = PDU_HEADER.unpack(self.reader.exact(PDU_HEADER.size))
                self.reader.skip(length)
                if pdu_type in (A_RELEASE_RP, A_ABORT):
                    break
        except (OSError, ConnectionClosed):
            pass
        self._close()

    def abort(self) -> None:
        """A-ABORT and close; from another thread too (service stop), where a send in progress
        may hold the socket: then the connection is only shut down, which ends that send."""
        if not self.is_established:
            return
        if self._lock.acquire(timeout=0.5):
            try:
                self.sock.sendall(abort_pdu(0x00, 0x00))
            except OSError:
                pass
            finally:
                self._lock.release()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._close()

    @property
    def is_established(self) -> bool:
        """As pynetdicom's Association: False once released, aborted or lost (PduConnection._close)."""
        return not self._closed

    # -- C-STORE -------------------------------------------------------------------------------
    def send_c_store(self, dataset: str | Path | Dataset, *, priority: int = 0x0000,
                     originator: tuple[str, int] | None = None) -> Dataset:
        """Send a stored Part-10 file as it is, or a decoded data set in an accepted uncompressed
        syntax. Returns the response's Status (and Error Comment) as pynetdicom does; an empty
        Dataset when no response came (association lost, inactivity timer). `priority` (PS3.7
        9.1.1.1.4: 0 medium, 1 high, 2 low) and `originator` (a C-MOVE's AE title and Message ID,
        for its sub-operations) go into the C-STORE-RQ (dimse_command.store_request)."""
        if not self.is_established:
            raise RuntimeError("the association is not established")
        extra = (priority, originator)
        if isinstance(dataset, Dataset):
            return self._send_decoded(dataset, extra)
        with open(dataset, "rb", buffering=0) as fh:
            head = fh.read(_META_READ)
            try:
                start, meta = file_meta(head)
            except StructureError as exc:
                raise ValueError(f"stored file unreadable: {exc}") from None
            cx = self._context(meta.get("sop_class", ""), (meta.get("transfer_syntax", ""),))
            fh.seek(start)
            size = os.fstat(fh.fileno()).st_size - start
            return self._exchange(cx, meta["sop_class"], meta.get("sop_instance", ""), _FileData(fh, size), extra)

    def send_c_echo(self) -> int | None:
        """C-ECHO on the Verification context: the response's Status, None when none came."""
        cx = next((c for c in self.accepted_contexts if c.abstract_syntax == VERIFICATION), None)
        if cx is None:
            raise ValueError("the peer did not accept the Verification SOP class")
        self._message_id = self._message_id % 0xFFFF + 1
        body = (dimse_command._element(0x0002, VERIFICATION.encode("ascii"))
                + dimse_command._element(0x0100, struct.pack("<H", dimse_command.C_ECHO_RQ))
                + dimse_command._element(0x0110, struct.pack("<H", self._message_id))
                + dimse_command._element(0x0800, struct.pack("<H", dimse_command.NO_DATA_SET)))
        try:
            self._send(command_pdus(cx.context_id, dimse_command._command_set(body), self.peer_max_pdu))
            return self._read_response(cx.context_id, C_ECHO_RSP).status
        except (OSError, ConnectionClosed, ValueError) as exc:
            log.warning("association lost during C-ECHO: %s", exc)
            self.abort()
            return None

    def _send_decoded(self, ds: Dataset, extra: tuple = (0x0000, None)) -> Dataset:
        cx = self._context(str(ds.SOPClassUID), ("1.2.840.10008.1.2.1", IMPLICIT_LE))
        body = encode(ds, cx.transfer_syntax[0] == IMPLICIT_LE, True)
        if body is None:
            raise ValueError("the data set cannot be encoded in the accepted transfer syntax")
        return self._exchange(cx, str(ds.SOPClassUID), str(ds.SOPInstanceUID), memoryview(body), extra)

    def _context(self, sop_class: str, syntaxes: tuple[str, ...]) -> AcceptedContext:
        for ts in syntaxes:
            for cx in self.accepted_contexts:
                if cx.abstract_syntax == sop_class and cx.transfer_syntax[0] == ts:
                    return cx
        raise ValueError(f"no accepted presentation context for {sop_class} in {', '.join(syntaxes)}")

    def _exchange(self, cx: AcceptedContext, sop_class: str, sop_instance: str,
                  data: "memoryview | _FileData", extra: tuple = (0x0000, None)) -> Dataset:
        """One C-STORE exchange; `extra`: (priority, originator) for the request's command set."""
        self._message_id = self._message_id % 0xFFFF + 1
        try:
            self._send(command_pdus(cx.context_id, dimse_command.store_request(
                self._message_id, sop_class, sop_instance, *extra), self.peer_max_pdu))
            self._send_data(cx.context_id, data)
            rsp = self._read_response(cx.context_id, C_STORE_RSP)
        except (OSError, ConnectionClosed, ValueError) as exc:
            log.warning("association lost while sending %s: %s", sop_instance, exc)
            self.abort()
            return Dataset()
        out = Dataset()
        out.Status = rsp.status
        if rsp.error_comment:
            out.ErrorComment = rsp.error_comment
        return out

    def _send_data(self, context_id: int, data: "memoryview | _FileData") -> None:
        step = self._step
        total = len(data)
        if total == 0:
            self._send(pdu(P_DATA_TF, PDV_HEADER.pack(2, context_id, 0x02)))
            return
        if isinstance(data, _FileData):
            pieces = data.pieces(step)
        else:
            pieces = (data[pos:pos + step] for pos in range(0, total, step))
        sent = 0
        for piece in pieces:
            sent += len(piece)
            control = 0x02 if sent >= total else 0x00
            header = PDU_HEADER.pack(P_DATA_TF, len(piece) + 6) + PDV_HEADER.pack(len(piece) + 2, context_id, control)
            # One sendmsg per PDU, header and value together: with TCP_NODELAY the header never
            # leaves as a segment of its own.
            with self._lock:
                _sendmsg_all(self.sock, header, piece)

    def _read_response(self, context_id: int, field: int) -> dimse_command.Command:
        command = bytearray()
        while True:
            pdu_type, length = PDU_HEADER.unpack(self.reader.exact(PDU_HEADER.size))
            if length > 1 << 20:
                raise ValueError(f"peer sent a PDU of {length} bytes")
            if pdu_type == A_ABORT:
                self.reader.skip(length)
                raise ConnectionClosed()
            if pdu_type != P_DATA_TF:
                raise ValueError(f"unexpected PDU type 0x{pdu_type:02X} while waiting for a C-STORE-RSP")
            consumed = 0
            for pcid, control, size in pdv_items(self.reader, length):
                consumed += size + 6
                if not control & 0x01 or pcid != context_id or len(command) + size > 65536:
                    raise ValueError("unexpected data in place of a C-STORE-RSP")
                command += self.reader.exact(size)
                if control & 0x02:
                    if consumed != length:
                        raise ValueError("data after the C-STORE-RSP")
                    rsp = dimse_command.parse(command)
                    if rsp.command_field != field or rsp.message_id_responded_to != self._message_id:
                        raise ValueError("response does not answer the request")
                    return rsp


class _FileData:
    """The data set part of a stored file, read piece by piece into one reused buffer (reading
    beats mapping here: a mapped 15 MB file costs a page fault per 4 KB on the way out)."""

    def __init__(self, fh, size: int):
        self.fh, self.size = fh, size

    def __len__(self) -> int:
        return self.size

    def pieces(self, step: int):
        buf = memoryview(bytearray(min(step, self.size)))
        left = self.size
        while left:
            n = self.fh.readinto(buf[:min(step, left)])
            if not n:
                raise ValueError("stored file shorter than when it was indexed")
            left -= n
            yield buf[:n]


def _sendmsg_all(sock: socket.socket, header: bytes, piece: memoryview) -> None:
    parts = [memoryview(header), piece]
    while parts:
        sent = sock.sendmsg(parts)
        while parts and sent >= len(parts[0]):
            sent -= len(parts[0])
            parts.pop(0)
        if parts and sent:
            parts[0] = parts[0][sent:]


def _request_pdu(calling: str, called: str, contexts: list[PresentationContext], max_pdu: int) -> bytes:
    rq = A_ASSOCIATE()
    rq.application_context_name = APPLICATION_CONTEXT_NAME
    rq.calling_ae_title = calling
    rq.called_ae_title = called
    rq.presentation_context_definition_list = contexts
    rq.user_information = user_information(max_pdu)
    out = A_ASSOCIATE_RQ()
    out.from_primitive(rq)
    return out.encode()
