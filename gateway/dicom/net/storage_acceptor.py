"""An established association that carries only Storage and Verification: the receive fast path.

Why not pynetdicom here: per C-STORE it runs two polling threads (the DUL's and the
association's, 1 ms sleeps), decodes and encodes every command set with pydicom, and passes each
PDU through two queues; on a 2-core box that cost more than the fsyncs the durability promise
needs (bench/README.md). This is one thread doing blocking reads: the P-DATA fragments of a data
set go from the socket buffer straight into the spool file, the command set is read by hand
(dimse_command.py), and the store itself is StoreSCP.store, the same door as every other path.

State machine (PS3.8 9.2, the acceptor's side after A-ASSOCIATE-AC):
  idle --command fragment--> command --last fragment: C-STORE-RQ with data--> data
  data --last fragment--> store --response sent--> idle
  idle --A-RELEASE-RQ--> send A-RELEASE-RP, close;  any --A-ABORT--> close
  anything else (an unexpected PDU, a fragment of another context, a command inside a data set,
  a PDU over our maximum length) --> A-ABORT, close.
A data set cut short by a closed connection or an abort is deleted at once, never stored.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any, Callable

from gateway.dicom import status
from gateway.dicom.net import dimse_command, receive_spool
from gateway.dicom.net.pdu_connection import PduConnection
from gateway.dicom.net.pdu_socket import (
    ABORT_INVALID_PARAMETER,
    ABORT_UNEXPECTED_PDU,
    ABORT_UNRECOGNIZED_PDU,
    A_ABORT,
    A_RELEASE_RQ,
    P_DATA_TF,
    PDU_HEADER,
    ConnectionClosed,
    MalformedPdu,
    SocketReader,
    abort_pdu,
    command_pdus,
    pdv_items,
    release_rp_pdu,
)
from gateway.dicom.sop_classes import VERIFICATION
from gateway.part10 import file_meta

log = logging.getLogger("gateway.dicom.storage")

# Status for a DIMSE operation this path does not offer on a storage or verification context.
UNRECOGNIZED_OPERATION = 0x0211

# A command set is a few hundred bytes; one that keeps growing is an attack on memory.
MAX_COMMAND_SET = 64 * 1024

# StoreSCP.store(path, calling AE, SOP class, SOP instance, start of the spool's fsync).
Store = Callable[[Path, str, str, str, Callable], "tuple[int, str]"]
# (spool path, calling AE, SOP Instance UID) -> the head coercion for that object, or None.
HeadCoercionHook = Callable[[Path, str, str], Any]


class ProtocolError(Exception):
    def __init__(self, reason: int, message: str):
        super().__init__(message)
        self.reason = reason


class _Message:
    """The DIMSE message being received: its command fragments, then its data set."""

    def __init__(self, context_id: int):
        self.context_id = context_id
        self.command_bytes = bytearray()
        self.command: dimse_command.Command | None = None
        self.spool: receive_spool.SpoolFile | None = None
        self.spool_error: OSError | None = None  # no spool file could be created
        # Data set of a refused operation: read and dropped, then answered with this status.
        self.discard: tuple[int, str] | None = None

    def drop(self) -> None:
        if self.spool is not None:
            self.drop_spool(self.spool)
            self.spool = None

    @staticmethod
    def drop_spool(spool: receive_spool.SpoolFile) -> None:
        spool.close()
        Path(spool.name).unlink(missing_ok=True)


class StorageAcceptor(PduConnection):
    """`contexts`: accepted context ID -> (abstract syntax, transfer syntax)."""

    def __init__(self, sock: socket.socket, reader: SocketReader, calling_ae: str, peer: str,
                 contexts: dict[int, tuple[str, str]], peer_max_pdu: int, pdu_limit: int,
                 session_s: float, store: Store, head_coercion: HeadCoercionHook | None = None):
        # PduConnection's lock also serialises the stop decision: stop() must not abort in the
        # middle of a store whose Success is about to go out, nor write into a response.
        super().__init__(sock, reader)
        self.calling_ae = calling_ae
        self.peer = peer
        self.contexts = contexts
        self.peer_max_pdu = peer_max_pdu
        self.pdu_limit = pdu_limit
        self.session_s = session_s
        self.store = store
        # The ingest coercion rules applied in the receive stream (gateway/buffer/head_coercion.py).
        self.head_coercion = head_coercion
        self._message: _Message | None = None
        # The spool file for the next object, created while the sender prepares it (creating a
        # file costs a journal operation; off the critical path it is free).
        self._spare: receive_spool.SpoolFile | None = None
        self._storing = False
        self._stopping = False  # service stop: finish the message in hand, then abort
        self._cut = False  # the stop's drain deadline passed: aborted, store nothing more
        self.released = False  # ended by the peer's A-RELEASE-RQ, answered (else: aborted)

    # -- lifecycle -----------------------------------------------------------------------------
    def run(self) -> None:
        started = time.monotonic()
        try:
            while True:
                if time.monotonic() - started > self.session_s:
                    log.warning("aborting association from %s (%s): session timer (%.0f s) expired",
                                self.calling_ae, self.peer, self.session_s)
                    self._abort()
                    return
                if not self._next_pdu():
                    return
                if self._stopping and self._message is None:
                    # Service stop, and the object in hand (if any) is answered: end here.
                    log.info("aborting association from %s (%s): the service is stopping",
                             self.calling_ae, self.peer)
                    self._abort()
                    return
        except ConnectionClosed:
            if self._message is not None and not self._stopping:
                log.warning("association from %s (%s) closed by the peer in the middle of a message; "
                            "the partial data set is deleted", self.calling_ae, self.peer)
        except socket.timeout:
            log.warning("aborting association from %s (%s): nothing received for the inactivity "
                        "timer", self.calling_ae, self.peer)
            self._abort()
        except ProtocolError as exc:
            log.warning("aborting association from %s (%s): %s", self.calling_ae, self.peer, exc)
            self._abort(exc.reason)
        except OSError as exc:
            if not self._stopping:
                log.warning("association from %s (%s) ended: %s", self.calling_ae, self.peer, exc)
        finally:
            if self._message is not None:
                self._message.drop()
                self._message = None
            self._drop_spare()
            self._close()

    def stop(self) -> None:
        """From another thread (service stop): an idle association is aborted now; one in the
        middle of a message finishes it (a C-STORE is stored and answered) and is aborted right
        after. cut() ends a message that takes too long."""
        with self._lock:
            self._stopping = True
            if self._storing or self._closed or self._message is not None:
                return
            try:
                self._send_locked(abort_pdu())
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread
            except OSError:
                pass

    def cut(self, drain_s: float) -> None:
        """From another thread, when the stop's drain deadline has passed: A-ABORT now, the partial
        data set is deleted and nothing more is stored. A store already under way (local, short)
        is left to answer; the association is aborted right after it."""
        with self._lock:
            self._stopping = True
            if self._closed or self._storing:
                return
            self._cut = True
            m = self._message
            what = (f"in the middle of C-STORE {m.command.affected_sop_instance}"
                    if m is not None and m.command is not None else "in the middle of a message")
            log.warning("aborting association from %s (%s): the service is stopping and the drain "
                        "deadline (timers.stop_drain_s = %.0f s) passed %s; the partial data set is deleted, "
                        "the sender keeps the object", self.calling_ae, self.peer, drain_s, what)
            try:
                self._send_locked(abort_pdu())
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread
            except (OSError, ConnectionClosed):
                pass

    # -- PDUs ----------------------------------------------------------------------------------
    def _next_pdu(self) -> bool:
        pdu_type, length = PDU_HEADER.unpack(self.reader.exact(PDU_HEADER.size))
        if length > self.pdu_limit:
            raise ProtocolError(ABORT_INVALID_PARAMETER,
                                f"PDU of {length} bytes announced, more than the {self.pdu_limit} this AE accepts")
        if pdu_type == P_DATA_TF:
            self._p_data(length)
            return True
        self.reader.skip(length)
        if pdu_type == A_RELEASE_RQ:
            if self._message is not None:
                raise ProtocolError(ABORT_UNEXPECTED_PDU, "A-RELEASE-RQ in the middle of a message")
            self._drop_spare()  # before the peer hears the release: nothing left in incoming/
            self._send(release_rp_pdu())
            self.released = True
            log.info("association from %s (%s) released", self.calling_ae, self.peer)
            return False
        if pdu_type == A_ABORT:
            if self._message is not None:
                log.warning("association from %s (%s) aborted by the peer in the middle of a message; "
                            "the partial data set is deleted", self.calling_ae, self.peer)
            else:
                log.info("association from %s (%s) aborted by the peer", self.calling_ae, self.peer)
            return False
        if 0x01 <= pdu_type <= 0x07:
            raise ProtocolError(ABORT_UNEXPECTED_PDU, f"unexpected PDU type 0x{pdu_type:02X}")
        raise ProtocolError(ABORT_UNRECOGNIZED_PDU, f"unrecognised PDU type 0x{pdu_type:02X}")

    def _p_data(self, length: int) -> None:
        try:
            for context_id, control, size in pdv_items(self.reader, length):
                self._fragment(context_id, bool(control & 0x01), bool(control & 0x02), size)
        except MalformedPdu as exc:
            raise ProtocolError(ABORT_INVALID_PARAMETER, str(exc)) from None

    def _fragment(self, context_id: int, is_command: bool, last: bool, size: int) -> None:
        if context_id not in self.contexts:
            raise ProtocolError(ABORT_INVALID_PARAMETER, f"P-DATA on presentation context {context_id}, "
                                "which was not accepted")
        m = self._message
        if m is None:
            if not is_command:
                raise ProtocolError(ABORT_UNEXPECTED_PDU, "data set fragment without a command")
            m = self._message = _Message(context_id)
        if m.context_id != context_id:
            raise ProtocolError(ABORT_INVALID_PARAMETER, "message continues on another presentation context")
        if is_command:
            if m.command is not None:
                raise ProtocolError(ABORT_UNEXPECTED_PDU, "command fragment inside a data set")
            if len(m.command_bytes) + size > MAX_COMMAND_SET:
                raise ProtocolError(ABORT_INVALID_PARAMETER,
                                    f"command set longer than {MAX_COMMAND_SET} bytes")
            while size:
                piece = self.reader.some(size)
                m.command_bytes += piece
                size -= len(piece)
            if last:
                self._command_complete(m)
            return
        if m.command is None:
            raise ProtocolError(ABORT_UNEXPECTED_PDU, "data set fragment before the command was complete")
        while size:
            piece = self.reader.some(size)
            if m.spool is not None:
                m.spool.write(piece)
            size -= len(piece)
        if last:
            self._data_set_complete(m)

    # -- DIMSE ---------------------------------------------------------------------------------
    def _command_complete(self, m: _Message) -> None:
        try:
            command = dimse_command.parse(m.command_bytes)
        except dimse_command.CommandError as exc:
            raise ProtocolError(ABORT_INVALID_PARAMETER, f"unreadable command set: {exc}") from None
        m.command = command
        refused = self._refusal(m.context_id, command)
        if refused is not None:
            if command.has_data_set:
                m.discard = refused
            else:
                self._message = None
                self._respond(m.context_id, command, *refused)
            return
        if command.command_field == dimse_command.C_ECHO_RQ:
            self._message = None
            self._respond(m.context_id, command, status.SUCCESS)
            return
        spare, self._spare = self._spare, None
        if spare is not None and spare.error is not None:
            # Refused by the reserve check when it was made: check again now.
            _Message.drop_spool(spare)
            spare = None
        try:
            m.spool = spare or receive_spool.SpoolFile()
        except OSError as exc:
            m.spool_error = exc
            return
        transfer_syntax = self.contexts[m.context_id][1]
        meta = file_meta.encode(command.affected_sop_class, command.affected_sop_instance, transfer_syntax,
                                self.calling_ae)
        if self.head_coercion is not None:
            head = self.head_coercion(Path(m.spool.name), self.calling_ae, command.affected_sop_instance)
            if head is not None:
                head.expect_meta(len(meta), transfer_syntax)
                m.spool.coerce_head(head)
        m.spool.write(meta)

    def _refusal(self, context_id: int, command: dimse_command.Command) -> tuple[int, str] | None:
        """Why this operation is refused on this presentation context (status, comment), or None.
        PS3.7 9.1.1.1.2/9.1.5.1.2: the operation belongs to the context's abstract syntax, and the
        Affected SOP Class UID is that abstract syntax. A C-STORE on the Verification context is
        an operation Verification does not have (0211), as is a C-ECHO on a storage context; a
        C-STORE of another class than the context's is 0122."""
        abstract = self.contexts[context_id][0]
        field = command.command_field
        # The fast path accepts only Verification and storage classes: any other context is storage.
        if field == dimse_command.C_STORE_RQ and abstract != VERIFICATION:
            if not command.has_data_set:
                return status.CANNOT_UNDERSTAND, "C-STORE-RQ without a data set"
            if command.affected_sop_class != abstract:
                why = f"SOP class {command.affected_sop_class} sent on the context of {abstract}"
                log.warning("refused C-STORE %s from %s (0x0122): %s", command.affected_sop_instance,
                            self.calling_ae, why)
                return status.SOP_CLASS_NOT_SUPPORTED, why[:64]
            return None
        if field == dimse_command.C_ECHO_RQ and abstract == VERIFICATION and not command.has_data_set:
            if command.affected_sop_class != abstract:
                return status.SOP_CLASS_NOT_SUPPORTED, "C-ECHO-RQ for another SOP class"
            return None
        log.warning("refused DIMSE command 0x%04X from %s on presentation context %d (%s): 0x0211",
                    field, self.calling_ae, context_id, abstract)
        return UNRECOGNIZED_OPERATION, "operation not supported on this context"

    def _data_set_complete(self, m: _Message) -> None:
        command = m.command
        self._message = None
        if m.discard is not None:
            self._respond(m.context_id, command, *m.discard)
            return
        if m.spool_error is not None:
            exc = m.spool_error
            log.error("cannot create a spool file for %s from %s: %s", command.affected_sop_instance,
                      self.calling_ae, exc)
            code = status.OUT_OF_RESOURCES if receive_spool.is_disk_full(exc) else status.OUT_OF_RESOURCES_DIRECTORY
            self._respond(m.context_id, command, code, f"cannot write to buffer: {exc.strerror or exc}")
            return
        with self._lock:
            if self._cut:
                # Aborted at the drain deadline: not acknowledged, so not kept; the sender has it.
                m.drop()
                raise ConnectionClosed()
            self._storing = True
        try:
            m.spool.end_head()
            code, comment = self.store(Path(m.spool.name), self.calling_ae, command.affected_sop_class,
                                       command.affected_sop_instance, m.spool.start_finish)
        except Exception:
            log.exception("storing %s from %s failed", command.affected_sop_instance, self.calling_ae)
            code, comment = status.PROCESSING_FAILURE, "internal error"
        finally:
            m.drop()
        try:
            self._respond(m.context_id, command, code, comment)
        finally:
            with self._lock:
                self._storing = False
                stopping = self._stopping
        if stopping:
            return  # run() aborts now that the object in hand is answered
        try:
            self._spare = receive_spool.SpoolFile()
        except OSError:
            pass  # the next C-STORE tries again and answers the error

    def _drop_spare(self) -> None:
        if self._spare is not None:
            _Message.drop_spool(self._spare)
            self._spare = None

    def _respond(self, context_id: int, command: dimse_command.Command, code: int, comment: str = "") -> None:
        self._send(command_pdus(context_id, dimse_command.response(command, code, comment), self.peer_max_pdu))

    # -- transport (sends and the close: PduConnection) ------------------------------------------
    def _abort(self, reason: int = 0) -> None:
        try:
            self._send(abort_pdu(0x02, reason))
        except (OSError, ConnectionClosed):
            pass
