"""The listening socket: accepts connections and decides who handles each association.

Every connection gets `timers.handshake_s` to deliver its A-ASSOCIATE-RQ. The request is read
with MSG_PEEK, so it is still in the socket when a decision is made:
- only Storage and Verification proposed (a modality, a media importer, a PACS pushing back):
  negotiated here and served by StorageAssociation on this thread, the fast path;
- anything else (print, storage commitment reports, a request this code does not parse):
  handed, untouched, to pynetdicom's server, which reads the request itself.
Both paths share AssociationPolicy: the same calling/called AE rules and one association cap.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import negotiate_as_acceptor

from gateway.config import Config
from gateway.dicom.association_policy import AssociationPolicy, tune_socket
from gateway.dicom.identity import APPLICATION_CONTEXT_NAME, user_information
from gateway.dicom.pdu_socket import (
    A_ASSOCIATE_RQ as RQ_TYPE,
    PDU_HEADER,
    SocketReader,
    reject_pdu,
)
from gateway.dicom.pynetdicom_tuning import pdu_limit
from gateway.dicom.storage_association import Store, StorageAssociation

log = logging.getLogger("gateway.dicom.acceptor")

# An A-ASSOCIATE-RQ larger than this (128 contexts with long UIDs stay under 20 KB) is left to
# pynetdicom; peeking needs it to fit the socket's receive buffer.
_PEEK_LIMIT = 64 * 1024
# Connections still negotiating, on top of ae.max_associations: room for real senders while
# stalled sockets wait out their handshake timer.
_HANDSHAKE_HEADROOM = 64
# After the drain deadline, an aborted association's thread gets this long to wind down.
_CUT_GRACE_S = 5.0


def _peek(sock: socket.socket, n: int) -> bytes:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, n)
    data = sock.recv(n, socket.MSG_PEEK)
    if len(data) < n:
        raise ConnectionResetError("connection closed inside an association request")
    return data


def _drain(sock: socket.socket) -> None:
    """Read what the peer left unread, so that closing sends a FIN rather than a reset."""
    try:
        sock.setblocking(False)
        while sock.recv(65536):
            pass
    except OSError:
        pass


class Acceptor:
    """`fast_abstracts`: abstract syntaxes the fast path serves (storage classes, verification).
    `supported`: the listener's supported presentation contexts (negotiation input).
    `hand_off(sock, address)`: gives a connection to pynetdicom."""

    def __init__(self, config: Config, policy: AssociationPolicy, supported: list, fast_abstracts: frozenset,
                 store: Store, hand_off):
        self.config = config
        self.policy = policy
        self.supported = supported
        self.fast_abstracts = fast_abstracts
        self.store = store
        self.hand_off = hand_off
        self._listen: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, StorageAssociation | None] = {}
        self._threads: set[threading.Thread] = set()
        self._stopping = False

    @property
    def address(self) -> tuple:
        return self._listen.getsockname()

    def start(self, accept: bool = True) -> None:
        """Bind and listen; accept connections only when `accept` (else accept() does it). Until
        then connecting peers wait in the listen backlog. Raises OSError (port in use, address not
        of this host) with nothing left open."""
        c = self.config.ae
        family, kind, proto, _, addr = socket.getaddrinfo(c.bind, c.port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        self._listen = sock
        if accept:
            self.accept()

    def accept(self) -> None:
        """Start serving connections on the bound port (after start(accept=False))."""
        self._accept_thread = threading.Thread(target=self._accept_loop, name="dicom-acceptor", daemon=True)
        self._accept_thread.start()

    def stop(self, timeout: float) -> None:
        """Close the port, then drain: an idle association is aborted at once; one receiving a
        C-STORE finishes it (stored, answered) and is aborted after the response. Past `timeout`
        seconds what is left is aborted with a WARNING naming it (StorageAssociation.cut).
        pynetdicom's associations are the listener's to stop."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping = True
            connections = dict(self._connections)
        if self._listen is not None:
            try:
                self._listen.shutdown(socket.SHUT_RDWR)  # wakes accept()
            except OSError:
                pass
            self._listen.close()
        if self._accept_thread is not None:
            self._accept_thread.join(5.0)
        for sock, assoc in connections.items():
            if assoc is not None:
                assoc.stop()
            else:  # still negotiating
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = [a for a in self._connections.values() if a is not None]
        for assoc in left:
            assoc.cut(timeout)
        for t in threads:
            t.join(_CUT_GRACE_S)

    # -- connections ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        limit = self.config.ae.max_associations + _HANDSHAKE_HEADROOM
        while True:
            try:
                sock, address = self._listen.accept()
            except OSError:
                if self._stopping:
                    return
                log.exception("accept() failed")
                continue
            with self._lock:
                if self._stopping or len(self._connections) >= limit:
                    full = not self._stopping
                    sock.close()
                    if full:
                        log.warning("refused connection from %s: %d connections open", address[0], limit)
                    continue
                self._connections[sock] = None
                t = threading.Thread(target=self._serve, args=(sock, address), name="dicom-association",
                                     daemon=True)
                self._threads.add(t)
            t.start()

    def _serve(self, sock: socket.socket, address: tuple) -> None:
        handed_off = False
        try:
            tune_socket(sock, self.config.ae.tcp_nodelay, self.config.timers.handshake_s)
            request = self._peek_request(sock)
            if request is None or not self._is_fast(request):
                handed_off = True
                self.hand_off(sock, address)
                return
            self._negotiate_and_serve(sock, address, request)
        except socket.timeout:
            log.warning("dropped connection from %s: no association request within %.0f s",
                        address[0], self.config.timers.handshake_s)
            _drain(sock)
        except OSError as exc:
            log.info("connection from %s ended during association set-up: %s", address[0], exc)
        except Exception:
            log.exception("connection from %s failed", address[0])
        finally:
            with self._lock:
                self._connections.pop(sock, None)
                self._threads.discard(threading.current_thread())
            if not handed_off:
                sock.close()

    @staticmethod
    def _peek_request(sock: socket.socket) -> A_ASSOCIATE | None:
        """The A-ASSOCIATE-RQ waiting in the socket, decoded, or None when it is something else
        (pynetdicom then answers the protocol error). Raises socket.timeout, OSError."""
        # MSG_WAITALL does not wait with MSG_PEEK; a receive low-water mark does (Linux), and
        # the socket's timeout still bounds the wait.
        try:
            header = _peek(sock, PDU_HEADER.size)
            pdu_type, length = PDU_HEADER.unpack(header)
            if pdu_type != RQ_TYPE or length > _PEEK_LIMIT:
                return None
            data = _peek(sock, PDU_HEADER.size + length)
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        try:
            rq = A_ASSOCIATE_RQ()
            rq.decode(data)
            return rq.to_primitive()
        except Exception:  # pynetdicom's decoder raises many kinds on a malformed request
            return None

    def _is_fast(self, request: A_ASSOCIATE) -> bool:
        proposed = request.presentation_context_definition_list
        return bool(proposed) and all(str(cx.abstract_syntax) in self.fast_abstracts for cx in proposed)

    def _negotiate_and_serve(self, sock: socket.socket, address: tuple, request: A_ASSOCIATE) -> None:
        reader = SocketReader(sock)
        # The request was only peeked at: consume it now.
        reader.skip(PDU_HEADER.unpack(reader.exact(PDU_HEADER.size))[1])
        calling = str(request.calling_ae_title).strip()
        called = str(request.called_ae_title).strip()
        host = address[0]
        key = object()
        reason = self.policy.try_admit(key, calling, called, host)
        if reason is not None:
            sock.sendall(reject_pdu(*reason))
            return
        try:
            contexts = self._accept(sock, request)
            log.info("association from %s (%s) accepted: %d of %d presentation contexts", calling, host,
                     len(contexts), len(request.presentation_context_definition_list))
            # Past negotiation the socket may idle as long as the inactivity timer allows.
            sock.settimeout(self.config.timers.inactivity_s)
            assoc = StorageAssociation(sock, reader, calling, host, contexts, request.maximum_length_received or 0,
                                       pdu_limit(self.config.ae.max_pdu), self.config.timers.session_s, self.store)
            with self._lock:
                if self._stopping:
                    return
                self._connections[sock] = assoc
            assoc.run()
        finally:
            self.policy.release(key)

    def _accept(self, sock: socket.socket, request: A_ASSOCIATE) -> dict[int, tuple[str, str]]:
        """Negotiate the presentation contexts, send the A-ASSOCIATE-AC, return the accepted
        contexts as ID -> (abstract syntax, transfer syntax)."""
        roles = {str(item.sop_class_uid): (item.scu_role, item.scp_role)
                 for item in request.user_information if isinstance(item, SCP_SCU_RoleSelectionNegotiation)}
        result, ac_roles = negotiate_as_acceptor(request.presentation_context_definition_list, self.supported,
                                                 roles or None)
        ac = A_ASSOCIATE()
        ac.application_context_name = APPLICATION_CONTEXT_NAME
        ac.calling_ae_title = request.calling_ae_title
        ac.called_ae_title = request.called_ae_title
        ac.result = 0x00
        ac.result_source = 0x01
        ac.presentation_context_definition_results_list = result
        ac.user_information = [*user_information(self.config.ae.max_pdu), *ac_roles]
        pdu = A_ASSOCIATE_AC()
        pdu.from_primitive(ac)
        sock.sendall(pdu.encode())
        return {cx.context_id: (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                for cx in result if cx.result == 0x00}
