"""The listening socket: accepts connections and decides who handles each association.

Every connection gets `timers.handshake_s` to deliver its A-ASSOCIATE-RQ. The request is read
with MSG_PEEK, so it is still in the socket when a decision is made:
- only Storage and Verification proposed (a modality, a media importer, a PACS pushing back):
  negotiated here and served by StorageAcceptor on this thread, the fast path;
- anything else (print, storage commitment reports): handed, untouched, to pynetdicom's server,
  which reads the request itself.
Before either, the request is checked to its last byte (association_request, PS3.8 9.3.2) and
the AE titles and host are checked (AssociationPolicy.refusal): a malformed request gets an
A-ABORT at once, a refused one an A-ASSOCIATE-RJ with its reason; pynetdicom only ever sees
requests that hold together. Both paths share AssociationPolicy: the same calling/called AE
rules and one association cap.
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
from gateway.dicom.net import association_request
from gateway.dicom.net.association_events import STORAGE_PATH
from gateway.dicom.net.association_policy import AssociationPolicy, tune_socket
from gateway.dicom.net.pdu_socket import (
    ABORT_INVALID_PARAMETER,
    ABORT_UNEXPECTED_PDU,
    ABORT_UNRECOGNIZED_PDU,
    A_ABORT as A_ABORT_TYPE,
    A_ASSOCIATE_AC as A_ASSOCIATE_AC_TYPE,
    A_ASSOCIATE_RQ as RQ_TYPE,
    PDU_HEADER,
    SocketReader,
    abort_pdu,
    reject_pdu,
)
from gateway.dicom.net.pynetdicom_patches import pdu_limit
from gateway.dicom.net.storage_acceptor import HeadCoercionHook, Store, StorageAcceptor
from gateway.identity import APPLICATION_CONTEXT_NAME, escaped_ae, user_information

log = logging.getLogger("gateway.dicom.acceptor")

# An A-ASSOCIATE-RQ larger than this (128 contexts with long UIDs stay under 20 KB) is left to
# pynetdicom; peeking needs it to fit the socket's receive buffer.
_PEEK_LIMIT = 64 * 1024
# A-ASSOCIATE-RJ for a request too large to check: rejected-permanent, ACSE, no reason given (PS3.8 9.3.4).
REJECT_TOO_LARGE = (0x01, 0x02, 0x01)
# How long a refused peer may take to close after its answer (it should at once, PS3.8 9.2 AR-3).
_LINGER_S = 2.0
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


def _answer(sock: socket.socket, pdu: bytes) -> None:
    """Send the answer to a request that is refused here, then let the peer close first: the
    request is still unread in the socket, and closing over unread data would send a reset that
    can overtake the answer."""
    deadline = time.monotonic() + _LINGER_S
    try:
        sock.sendall(pdu)
        sock.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                break
    except OSError:
        pass


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
    `hand_off(sock, address)`: gives a connection to pynetdicom.
    `head_coercion(path, calling_ae, sop_uid)`: the fast path's hook for coercion in the receive
    stream (StoreSCP.head_coercion; None: objects are coerced, if at all, after receiving)."""

    def __init__(self, config: Config, policy: AssociationPolicy, supported: list, fast_abstracts: frozenset,
                 store: Store, hand_off, head_coercion: HeadCoercionHook | None = None):
        self.config = config
        self.policy = policy
        self.supported = supported
        self.fast_abstracts = fast_abstracts
        self.store = store
        self.hand_off = hand_off
        self.head_coercion = head_coercion
        self._listen: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, StorageAcceptor | None] = {}
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
        seconds what is left is aborted with a WARNING naming it (StorageAcceptor.cut).
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
            request = self._read_request(sock, address)
            if request is None:
                return  # answered (A-ABORT or A-ASSOCIATE-RJ) and logged
            checked, primitive = request
            if not self._is_fast(primitive):
                handed_off = True
                self.hand_off(sock, address)
                return
            self._negotiate_and_serve(sock, address, checked, primitive)
        except socket.timeout:
            log.warning("dropped connection from %s: no association request within %.0f s",
                        address[0], self.config.timers.handshake_s)
            _drain(sock)
        except OSError as exc:
            log.info("connection from %s ended during association set-up: %s", address[0], exc)
        except Exception:
            # A fault of this code, not of the input (the request was checked): still answer the
            # peer, so it does not wait for a timer.
            log.exception("connection from %s failed", address[0])
            _answer(sock, abort_pdu())
        finally:
            with self._lock:
                self._connections.pop(sock, None)
                self._threads.discard(threading.current_thread())
            if not handed_off:
                sock.close()

    def _read_request(self, sock: socket.socket, address: tuple):
        """Peek at the first PDU and check it fully (PS3.8 9.3.2). Returns (checked request,
        pynetdicom's primitive) with the PDU still in the socket, or None when the connection was
        answered here: A-ABORT for anything malformed or not an A-ASSOCIATE-RQ (PS3.8 9.2, Sta2),
        A-ASSOCIATE-RJ for a PS3.8 9.3.4 reason (protocol version, application context, AE titles,
        host). Raises socket.timeout, OSError."""
        host = address[0]
        # MSG_WAITALL does not wait with MSG_PEEK; a receive low-water mark does (Linux), and
        # the socket's timeout still bounds the wait.
        try:
            header = _peek(sock, PDU_HEADER.size)
            pdu_type, length = PDU_HEADER.unpack(header)
            if pdu_type == A_ABORT_TYPE:
                log.info("connection from %s aborted before an association request", host)
                return None
            if pdu_type != RQ_TYPE:
                known = A_ASSOCIATE_AC_TYPE <= pdu_type <= A_ABORT_TYPE
                log.warning("aborted connection from %s: PDU type 0x%02X before an A-ASSOCIATE-RQ", host, pdu_type)
                _answer(sock, abort_pdu(0x02, ABORT_UNEXPECTED_PDU if known else ABORT_UNRECOGNIZED_PDU))
                return None
            if length > pdu_limit(self.config.ae.max_pdu):
                # A hostile length: hang up without reading it (as pynetdicom_patches does for
                # pynetdicom's associations), memory must not follow the header.
                log.warning("closing connection with %s: it announced a PDU of %d bytes, more than the %d "
                            "this AE accepts", host, length, pdu_limit(self.config.ae.max_pdu))
                _drain(sock)  # what already arrived, so that the close is a FIN, not a reset
                return None
            if length > _PEEK_LIMIT:
                # Far beyond 128 contexts; and a request must fit the receive buffer to be peeked.
                log.warning("rejected association from %s: A-ASSOCIATE-RQ of %d bytes (more than %d)",
                            host, length, _PEEK_LIMIT)
                self.policy.observed.refused("", "", host, REJECT_TOO_LARGE)
                _answer(sock, reject_pdu(*REJECT_TOO_LARGE))
                return None
            data = _peek(sock, PDU_HEADER.size + length)
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        try:
            checked = association_request.parse(data)
        except association_request.MalformedRequest as exc:
            log.warning("aborted association request from %s: malformed A-ASSOCIATE-RQ (%s)", host, exc)
            _answer(sock, abort_pdu(0x02, ABORT_INVALID_PARAMETER))
            return None
        if checked.reject is not None:
            log.warning("rejected association from %s (%s): %s", escaped_ae(checked.calling_raw), host,
                        "protocol version not supported" if checked.reject == association_request.REJECT_PROTOCOL_VERSION
                        else "application context name not supported")
            self.policy.observed.refused(checked.calling, checked.called, host, checked.reject)
            _answer(sock, reject_pdu(*checked.reject))
            return None
        # The titles and the host are checked here for both paths, with the titles as received.
        reason = self.policy.refusal(checked.calling, checked.called, host, checked.calling_raw, checked.called_raw)
        if reason is not None:
            # Told before the answer, which lingers until the peer closes (_LINGER_S).
            self.policy.observed.refused(checked.calling, checked.called, host, reason)
            _answer(sock, reject_pdu(*reason))
            return None
        try:
            # pynetdicom decodes it again (both paths negotiate with its primitive); a request that
            # passed the check and still fails there is not handed to it.
            rq = A_ASSOCIATE_RQ()
            rq.decode(data)
            primitive = rq.to_primitive()
        except Exception as exc:  # its decoder raises many kinds
            log.warning("aborted association request from %s: A-ASSOCIATE-RQ not decodable (%s: %s)", host,
                        type(exc).__name__, exc)
            _answer(sock, abort_pdu(0x02, ABORT_INVALID_PARAMETER))
            return None
        return checked, primitive

    def _is_fast(self, request: A_ASSOCIATE) -> bool:
        proposed = request.presentation_context_definition_list
        return bool(proposed) and all(str(cx.abstract_syntax) in self.fast_abstracts for cx in proposed)

    def _negotiate_and_serve(self, sock: socket.socket, address: tuple, checked, request: A_ASSOCIATE) -> None:
        reader = SocketReader(sock)
        # The request was only peeked at: consume it now.
        reader.skip(PDU_HEADER.unpack(reader.exact(PDU_HEADER.size))[1])
        calling, called = checked.calling, checked.called
        host = address[0]
        key = object()
        reason = self.policy.try_admit(key, calling, called, host, checked.calling_raw, checked.called_raw)
        if reason is not None:
            self.policy.observed.refused(calling, called, host, reason)
            sock.sendall(reject_pdu(*reason))
            return
        assoc = None
        try:
            contexts = self._accept(sock, request)
            self.policy.observed.opened(key, calling, called, host, STORAGE_PATH)
            log.info("association from %s (%s) accepted: %d of %d presentation contexts", calling, host,
                     len(contexts), len(request.presentation_context_definition_list))
            # Past negotiation the socket may idle as long as the inactivity timer allows.
            sock.settimeout(self.config.timers.inactivity_s)
            assoc = StorageAcceptor(sock, reader, calling, host, contexts, request.maximum_length_received or 0,
                                       pdu_limit(self.config.ae.max_pdu), self.config.timers.session_s, self.store,
                                       self.head_coercion)
            with self._lock:
                if self._stopping:
                    return
                self._connections[sock] = assoc
            assoc.run()
        finally:
            self.policy.release(key)
            # Anything but an answered A-RELEASE-RQ ends it as an abort (ours, the peer's, a timer,
            # the stop, a dropped connection); nothing is published when no AC was sent.
            self.policy.observed.closed(key, "released" if assoc is not None and assoc.released else "aborted")

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
