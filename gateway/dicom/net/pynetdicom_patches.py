"""Every change this gateway makes to pynetdicom, and every read of its internals, in one place.

pynetdicom is pinned (>=3.0.4,<3.1) in pyproject.toml because of what is listed here. Each entry
names the pynetdicom 3.0 code it relies on; tests/unit/test_pynetdicom_patches.py has one test per
entry that checks that code is still there, shaped as expected, and that the change has its effect
(each failure names the installed pynetdicom version). Before raising the pin, run those tests
against the new version and read the lines named below again.

Process-wide, applied once by apply() (the listener's configure_pynetdicom, the CLI's echo):
  P1  transport.AssociationSocket.recv  -> _recv: large reads, refuses a PDU longer than this AE
      accepts.
  P2  transport.deepcopy                -> _copy_contexts: the acceptor's supported contexts are
      list-copied, not deep-copied, per association.
  P3  dimse_messages.NamedTemporaryFile -> receive_spool.SpoolFile: a received data set goes to a
      spool file that survives a full disk.
  P4  _config settings (public, documented options): STORE_RECV_CHUNKED_DATASET and
      STORE_SEND_CHUNKED_DATASET on, ENFORCE_UID_CONFORMANCE off, VALIDATORS["AE"] lenient.

Per association, called by the code that owns the association:
  P5  guard_association(assoc): its DIMSEServiceProvider and StateMachine swapped (__class__) for
      subclasses that turn an unreadable command set into an A-ABORT and drop a local primitive
      after the DUL already aborted (AssociationPolicy, EVT_CONN_OPEN; issue 14).
  P6  guard_association(assoc): the state machine half of P5 (_GuardedStateMachine).
  P7  limit_pending_pdata(assoc): the DUL's to_provider_queue swapped for a bounded one (StoreSCU,
      pynetdicom's sender; see pdu_flow).
  P8  HandOffServer: ThreadedAssociationServer without a socket of its own; the Acceptor hands it
      connections (socketserver's finish_request, as process_request_thread does).
  P9  guard_requests(assoc, check): a per-instance wrapper around Association._serve_request that
      shows each DIMSE-N request to `check` first and sends the answer it returns (or aborts)
      instead of pynetdicom's dispatch (the Print SCP's RequestGuard, print_dimse_guard.py).
  P10 quiet_message_dumps(assoc, failures): pynetdicom._handlers' standard EVT_DIMSE_RECV/SENT
      debug handlers rebound so that they run only when pynetdicom's debug log is on and never
      log a traceback (print associations).
  P11 demultiplex_responses(assoc, on_response, on_closed): DIMSEServiceProvider.msg_queue
      swapped for a queue that hands responses to the caller and reports the DUL's (None, None)
      wake-up on close (report_channel.ReportChannel: N-EVENT-REPORTs from the SCP side).
  P12 whole_messages(assoc): DIMSEServiceProvider.send_msg wrapped (per instance) under a lock,
      so that two threads' messages never interleave their P-DATA fragments (ReportChannel).
  P13 take_requests(assoc, kinds, serve): a per-instance wrapper around Association._serve_request
      that hands valid requests of the given DIMSE-C kinds (C-MOVE, C-GET) to `serve` instead of
      pynetdicom's service class, with the reactor paused and C-CANCELs collected as pynetdicom's
      own dispatch does (the retrieve SCP, qr_retrieve_scp.py: sub-operations sent from the
      stored files, never decoded). Optional `wants(msg, context)`: a request it declines goes to
      pynetdicom as before (the C-FIND SCP's fast path, qr_find_scp.py, takes only Little Endian
      contexts).

Reads of internals (no change; a named function so that callers do not reach in themselves):
  R1  raw_socket(assoc): Association.dul.socket.socket, the TCP socket (socket options, timers).
  R2  request_primitive(assoc): Association.requestor.primitive, the A-ASSOCIATE request as
      decoded, whose titles an EVT_REQUESTED handler may rewrite before negotiation reads them.
  R3  reject_in_handler(assoc, reason): ACSE.send_reject + Association.kill from EVT_REQUESTED.
  R4  receiving_file(assoc): DIMSEServiceProvider.message._data_set_file, the spool of a data set
      still arriving (deleted when the connection closes mid-object).
  R5  dataset_file(request): C_STORE._dataset_file, the spool a received data set was written to.
  R6  rejection(assoc): Association.acceptor.primitive's result/result_source/diagnostic after
      an A-ASSOCIATE-RJ (pynetdicom keeps only is_rejected on the Association).
  R7  send_message(assoc, primitive, context_id): DIMSEServiceProvider.send_msg, a DIMSE message
      sent from outside pynetdicom's service classes (an answer of P9, a report of ReportChannel).
  R8  accepted_context(assoc, sop_class_uid): Association._get_valid_context, the accepted
      presentation context a request of that abstract syntax goes out on.
  R9  release_requested(assoc): the A-RELEASE-RQ waiting at the head of the DUL's to_user_queue
      (DULServiceProvider.peek_next_pdu), looked at, not taken.
  R10 encode_dataset(ds, context): pynetdicom.dsutils.encode in the context's transfer syntax.
  R11 cancel_requested(assoc, message_id): DIMSEServiceProvider.cancel_req, the C-CANCELs the DUL
      thread collected for a request being served (P13).
  R12 send_whole_message(assoc, context_id, command, data_set): a DIMSE message already encoded,
      put on the DUL's queue as ONE P-DATA primitive (command and data set as two PDVs of one
      P-DATA-TF PDU), when it fits the peer's maximum PDU length (the C-FIND SCP's pendings).
  R13 encode_command_set(primitive): pynetdicom's own encoding of a DIMSE primitive's command set
      (DIMSEMessage.primitive_to_message + dsutils.encode), the template the C-FIND SCP patches.
  R14 wake_response_waiter(assoc): (None, None) on DIMSEServiceProvider.msg_queue, as the state
      machine puts it when the peer aborts: wakes a send_c_* waiting for a response after our own
      A-ABORT (dicom-gateway retrieve's second Ctrl-C).
  R15 unread_rejection(assoc): an A-ASSOCIATE-RJ the DUL queued but pynetdicom's requestor never
      read: in 3.0's ACSE._negotiate_as_requestor, when the peer closes right after its RJ and the
      DUL thread has closed the socket before the requesting thread looks at it, the request is
      taken for a failed connection (is_aborted, not is_rejected), and the answer stays in the
      DUL's to_user_queue (a loaded machine hit it: "aborted or no answer" for a wrong AE title).
  R17 unread_abort(assoc): the same race with an A-ABORT answering the A-ASSOCIATE-RQ (a PACS
      that does not know our calling AE title): the A_ABORT primitive stays unread in the queue.
  R16 end_association_wait(assoc): None on the DUL's to_user_queue while the requesting thread
      waits for the A-ASSOCIATE-AC/RJ (acse.py:460 receive_pdu(wait=True, timeout=acse_timeout)):
      it reads that as its ACSE timeout and aborts the association itself at once (dicom-gateway
      query/retrieve: Ctrl-C while a silent PACS holds the request).

Why each change exists:

P1. AssociationSocket.recv reads a PDU body in 4 KB recv() calls (32 system calls and copies for a
128 KB PDU); here it reads in chunks of up to 256 KB (bench/bench_profile.py measured ~10% less
CPU per GB received with large reads). Memory still grows only with what actually arrived. It also
refuses a PDU longer than this AE ever accepts. pynetdicom reads whatever length a PDU header
announces into memory before looking at it, so one hostile header (4 GB of "P-DATA") makes a
Pi-sized box swap or die. Our maximum PDU length is negotiated; a peer that exceeds it breaks PS3.8
9.3.1, and is treated as a broken connection (the DUL closes the association).

P2. Every new association deep-copied the listener's supported presentation contexts (170 storage
classes x 13 transfer syntaxes, plus print): 10.6 ms of CPU before negotiation starts, the largest
part of the 15 ms an association set-up cost over DCMTK's storescp, paid per image by modalities
that open one association per image. Negotiation only reads them (presentation.
negotiate_as_acceptor builds new context objects for its answer), so a list copy suffices.

Tried and not kept: shortening or adapting pynetdicom's 1 ms idle polls (DUL loop and association
reactor). Throughput did not improve beyond run-to-run noise, shorter polls cost idle CPU on every
open association (0.1 ms: 18.7% of a core per idle association instead of 3.5%), and the extra
wake-ups competed for the GIL with the C-STORE handler.
"""

from __future__ import annotations

import copy
import logging
import queue
import socket
import threading
from collections.abc import Callable

from pynetdicom import _config, _handlers, dimse_messages, evt, transport
from pynetdicom import dimse as pynetdicom_dimse
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import N_ACTION, N_CREATE, N_DELETE, N_EVENT_REPORT, N_GET, N_SET
from pynetdicom.dsutils import encode
from pynetdicom.fsm import TRANSITION_TABLE, StateMachine
from pynetdicom.pdu_primitives import A_ABORT, A_ASSOCIATE, A_RELEASE, P_DATA
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import ThreadedAssociationServer

from gateway.dicom.net import receive_spool
from gateway.dicom.net.pdu_flow import BoundedPDataQueue
from gateway.identity import escaped_ae, lenient_ae_validator

log = logging.getLogger("gateway.dicom.pdu_limit")
# The guards log as the association policy did when they lived there.
_assoc_log = logging.getLogger("gateway.dicom.association")

_CHUNK = 256 * 1024
# A-ASSOCIATE-RQ/AC with many contexts and user identity stay far below this.
_MIN_LIMIT = 1024 * 1024
_limit = _MIN_LIMIT


def pdu_limit(max_pdu: int) -> int:
    """The longest PDU body accepted from a peer when this AE negotiates `max_pdu`."""
    return max(_MIN_LIMIT, max_pdu + 6)


# -- P1: AssociationSocket.recv --------------------------------------------------------------------

def _recv(self, nr_bytes: int) -> bytearray:
    """Stands in for pynetdicom 3.0 transport.AssociationSocket.recv (transport.py:570-615: a loop
    of self.socket.recv(4096) until `nr_bytes` arrived, returning what was read, short or empty
    when the connection closed). The DUL (dul.py:245-302, _read_pdu_data) reads the 6-byte header
    with it, then the body; an empty or short result ends the association."""
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


# -- P2: transport.deepcopy ------------------------------------------------------------------------

def _copy_contexts(value, memo=None):
    """Stands in for copy.deepcopy inside pynetdicom 3.0 transport.py, whose one use is
    RequestHandler.handle (transport.py:765: assoc.acceptor.supported_contexts =
    deepcopy(self.server.contexts)). Anything but a list of contexts is deep-copied as before."""
    if isinstance(value, list) and all(isinstance(c, PresentationContext) for c in value):
        return list(value)
    return copy.deepcopy(value, memo)


# -- P5/P6: guards against input that killed pynetdicom's threads (issue 14) -------------------------

class _GuardedDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider, for associations served by pynetdicom: a command set it
    cannot read (Command Field missing, an element cut short) raised inside its DUL thread and
    killed it, leaving the peer without an answer. Here it is treated as pynetdicom treats a PDU
    it cannot decode: Evt19, invalid PDU, so its state machine sends the A-ABORT (PS3.8 9.2, AA-8).

    Relies on pynetdicom 3.0 dimse.py:248-304 (receive_primitive(primitive), self.message being
    the message under assembly, self.dul.event_queue taking FSM event names) and on
    Association.requestor.ae_title/address."""

    def receive_primitive(self, primitive) -> None:
        try:
            super().receive_primitive(primitive)
        except Exception as exc:
            _assoc_log.warning("aborting association from %s (%s): unreadable DIMSE message (%s: %s)",
                               escaped_ae(self.assoc.requestor.ae_title or "?"), self.assoc.requestor.address,
                               type(exc).__name__, exc)
            self.message = None
            self.dul.event_queue.put("Evt19")


# Events a local primitive raises (PS3.8 9.2.1: A-ASSOCIATE/P-DATA/A-RELEASE/A-ABORT requests and
# responses of the service user).
_LOCAL_EVENTS = frozenset({"Evt1", "Evt7", "Evt8", "Evt9", "Evt11", "Evt14", "Evt15"})


class _GuardedStateMachine(StateMachine):
    """pynetdicom's upper-layer state machine, for associations served by pynetdicom: a response
    the service sends after the peer's invalid PDU already made the DUL abort (Sta13, awaiting
    the close) is an event the state table does not list, and pynetdicom raised it in its DUL
    thread, which died. The association is over: the primitive is dropped.

    Relies on pynetdicom 3.0 fsm.py:65-81 (do_action(event) raising InvalidEventError when
    (event, current_state) is not in TRANSITION_TABLE) and self.dul.assoc."""

    def do_action(self, event: str) -> None:
        if (event, self.current_state) not in TRANSITION_TABLE and event in _LOCAL_EVENTS \
                and self.current_state in ("Sta1", "Sta13"):
            _assoc_log.info("association from %s ended before a local %s could be sent; dropped",
                            escaped_ae(self.dul.assoc.requestor.ae_title or "?"), event)
            return
        super().do_action(event)


def guard_association(assoc) -> None:
    """P5 + P6, on an association pynetdicom serves (from EVT_CONN_OPEN, before any PDU is read):
    input must never kill a pynetdicom thread. The classes are swapped on the instances
    (Association.dimse, Association.dul.state_machine), so nothing else of pynetdicom changes."""
    assoc.dimse.__class__ = _GuardedDIMSE
    assoc.dul.state_machine.__class__ = _GuardedStateMachine


# -- P7: bounded outgoing P-DATA ---------------------------------------------------------------------

def limit_pending_pdata(assoc, limit: int = 8) -> None:
    """Swap the DUL's to_provider_queue (pynetdicom 3.0 dul.py:89, a plain queue.Queue that
    DIMSEServiceProvider.send_msg fills and the DUL thread drains, dul.py:207) for a
    BoundedPDataQueue. Apply to an established association: its queue is empty then, so nothing
    is lost in the swap."""
    dul = assoc.dul
    old = dul.to_provider_queue
    new = BoundedPDataQueue(limit, lambda: dul.is_alive() and not assoc.is_aborted)
    while True:
        try:
            new.put(old.get_nowait())
        except queue.Empty:
            break
    dul.to_provider_queue = new


# -- P8: pynetdicom's server without a port ---------------------------------------------------------

class HandOffServer(ThreadedAssociationServer):
    """pynetdicom's server without a socket of its own: the Acceptor passes it connections.

    Relies on pynetdicom 3.0 transport.py: AssociationServer.__init__(ae, address, ae_title,
    contexts, ssl_context=None, evt_handlers=None) binding through socketserver's server_bind /
    server_activate (transport.py:984), and ThreadedAssociationServer.process_request_thread
    (transport.py:1078) serving a connection with finish_request(request, client_address), which
    builds the RequestHandler that starts the Association thread."""

    def server_bind(self) -> None:
        pass

    def server_activate(self) -> None:
        pass

    def hand_off(self, sock, address) -> None:
        # As ThreadedAssociationServer.process_request_thread: starts the Association thread.
        self.finish_request(sock, address)


# -- P9: requests shown to the service before pynetdicom dispatches them ------------------------------

N_REQUESTS = (N_CREATE, N_SET, N_GET, N_ACTION, N_DELETE, N_EVENT_REPORT)
# What a P9 `check` returns to have the association aborted (the request neither served nor answered).
ABORT = object()


def guard_requests(assoc, check: Callable) -> None:
    """P9: show every DIMSE-N request (N-CREATE/SET/GET/ACTION/DELETE/EVENT-REPORT without Message
    ID Being Responded To) that arrives on `assoc` to `check(msg)` before pynetdicom dispatches it.
    `check` returns None (pynetdicom serves the request as usual), a response primitive (sent on
    the request's presentation context, through R7; pynetdicom never sees the request) or ABORT
    (the association is aborted). Other messages go to pynetdicom untouched. Call before the peer
    can send P-DATA (EVT_REQUESTED).

    Why: pynetdicom 3.0 drops an N-* request that lacks a mandatory command element without an
    answer (Association._serve_request: "Received unexpected N-SET service message", the
    is_valid_request check) and aborts on a SOP class it has no service for; a DIMSE-N request
    must get a response with a status (PS3.7 10.1.3), which only the service knows how to word.

    Relies on pynetdicom 3.0 association.py:3490, Association._serve_request(msg, context_id):
    what the reactor (_run_reactor, association.py:731) calls, through the instance, for each
    complete DIMSE message it takes off the DIMSE queue. The wrapper is a per-instance attribute:
    it runs on the reactor thread, in the order the requests came; no class is changed."""
    serve = assoc._serve_request

    def guarded(msg, context_id) -> None:
        if not isinstance(msg, N_REQUESTS) or msg.MessageIDBeingRespondedTo is not None:
            serve(msg, context_id)
            return
        answer = check(msg)
        if answer is None:
            serve(msg, context_id)
        elif answer is ABORT:
            assoc.abort()
        else:
            send_message(assoc, answer, context_id)

    assoc._serve_request = guarded


# -- P10: pynetdicom's DIMSE message dumps, only when wanted ------------------------------------------

def quiet_message_dumps(assoc, failures: logging.Logger) -> None:
    """P10: pynetdicom's default EVT_DIMSE_RECV/SENT handlers format every message for its debug
    log, even when that log is off, and fail on a command set that lacks a mandatory element (an
    ERROR and a traceback per malformed request, though P9 lets the service answer it). Rebound on
    `assoc` to run only when the "pynetdicom" logger is enabled for DEBUG; a failure becomes one
    debug line on `failures`. Nothing happens when they are not bound (LOG_HANDLER_LEVEL is not
    "standard").

    Relies on pynetdicom 3.0 internals: pynetdicom._handlers.standard_dimse_recv_handler /
    standard_dimse_sent_handler, bound by Association._bind_defaults when _config.LOG_HANDLER_LEVEL
    is "standard" (association.py:317-319), found with Association.get_handlers(event) (a list of
    (handler, args) pairs) and swapped with unbind / bind."""
    dump_log = logging.getLogger("pynetdicom")
    for event, standard in ((evt.EVT_DIMSE_RECV, _handlers.standard_dimse_recv_handler),
                            (evt.EVT_DIMSE_SENT, _handlers.standard_dimse_sent_handler)):
        if not any(bound[0] is standard for bound in assoc.get_handlers(event)):
            continue  # LOG_HANDLER_LEVEL is not "standard"

        def dump(ev, standard=standard):
            if not dump_log.isEnabledFor(logging.DEBUG):
                return
            try:
                standard(ev)
            except Exception as exc:  # noqa: BLE001 - a log dump must not log a traceback
                failures.debug("message not dumped (%s: %s)", type(exc).__name__, exc)

        assoc.unbind(event, standard)
        assoc.bind(event, dump)


# -- P11/P12: the SCP side sending requests on an association it accepted ------------------------------

class _ResponseDemux(queue.Queue):
    """The association's DIMSE message queue (DIMSEServiceProvider.msg_queue), with responses
    taken out (P11)."""

    def __init__(self, on_response: Callable, on_closed: Callable):
        super().__init__()
        self._on_response, self._on_closed = on_response, on_closed

    def put(self, item, block=True, timeout=None):
        _, msg = item
        if msg is not None and getattr(msg, "MessageIDBeingRespondedTo", None) is not None:
            self._on_response(msg)
            return
        if msg is None:  # the connection closed or aborted: no response will come
            self._on_closed()
        super().put(item, block, timeout)


def demultiplex_responses(assoc, on_response: Callable, on_closed: Callable) -> None:
    """P11: swap `assoc`'s DIMSE message queue for one that hands every complete *response*
    primitive (it carries Message ID Being Responded To) to `on_response(msg)` instead of queueing
    it, and calls `on_closed()` when the DUL puts its (None, None) wake-up (connection closed or
    aborted), which still goes on to the reactor. Requests go to the reactor as before. Both
    callbacks run on the DUL's thread. Call before the peer can send P-DATA (EVT_REQUESTED).

    Why: pynetdicom 3.0's Association.send_n_event_report (and every send_*) pauses the reactor
    and takes the *next* message off this one queue as its response (dimse.get_msg(block=True),
    association.py:2981-2989); on an association whose peer keeps sending requests that next message
    may be a request, which pynetdicom reads as an invalid response and aborts.

    Relies on pynetdicom 3.0: DIMSEServiceProvider.msg_queue, a queue.Queue of (context ID,
    primitive) (dimse.py:184) filled by receive_primitive (dimse.py:300) and read by get_msg /
    peek_msg (dimse.py:201-244); the state machine's AA-2/AA-3/AA-4 put (None, None) on it
    (fsm.py:815, 858, 894). Anything queued before the swap is moved over."""
    dimse = assoc.dimse
    demux = _ResponseDemux(on_response, on_closed)
    old = dimse.msg_queue
    dimse.msg_queue = demux
    while True:
        try:
            demux.put(old.get_nowait())
        except queue.Empty:
            break


def whole_messages(assoc) -> None:
    """P12: DIMSEServiceProvider.send_msg of `assoc` wrapped (per instance) under a lock, so that
    each outgoing DIMSE message is queued for the DUL whole: a message sent from another thread
    (a report) never lands between the P-DATA fragments of one the reactor is sending, and a
    receiver builds each message from consecutive fragments (PS3.8 9.3.5.1).

    Relies on pynetdicom 3.0 dimse.py:310, DIMSEServiceProvider.send_msg(primitive, context_id):
    encodes the message and puts its P-DATA primitives on the DUL's queue one by one
    (self.dul.send_pdu); every sender (the service classes' responses, R7) calls it through the
    instance."""
    dimse = assoc.dimse
    original = dimse.send_msg
    lock = threading.Lock()

    def send_msg(primitive, context_id):
        with lock:
            original(primitive, context_id)

    dimse.send_msg = send_msg


# -- reads of internals -------------------------------------------------------------------------------

def raw_socket(assoc) -> socket.socket | None:
    """R1: the TCP socket under a pynetdicom association (pynetdicom 3.0: Association.dul.socket
    is the AssociationSocket, dul.py:79; its .socket the socket.socket, transport.py), or None
    before it is set or after it is closed."""
    wrapper = getattr(assoc.dul, "socket", None)
    return getattr(wrapper, "socket", None) if wrapper is not None else None


def request_primitive(assoc):
    """R2: the A-ASSOCIATE request primitive as decoded (Association.requestor.primitive). In
    pynetdicom 3.0 it is set just before EVT_REQUESTED (association.py:666-667), and the titles
    the association reports (requestor.ae_title) and answers with are read from it afterwards
    (acse.py:678-681, negotiate_association), so a handler may normalise them here."""
    return assoc.requestor.primitive


def reject_in_handler(assoc, reason: tuple[int, int, int]) -> None:
    """R3: A-ASSOCIATE-RJ (result, source, reason) from an EVT_REQUESTED handler. pynetdicom 3.0
    offers rejection only through its own checks; Association.run_reactor skips negotiation
    when the handler left the association rejected (association.py:669-671). As pynetdicom does for
    its own rejections (acse.py, negotiate_association), wait until the DUL has sent the RJ and gone
    idle (Association.kill), otherwise the socket is closed under it and the peer sees an abort."""
    assoc.acse.send_reject(*reason)
    assoc.kill()


def receiving_file(assoc):
    """R4: the file a data set still arriving is streamed into, or None. pynetdicom 3.0 keeps the
    message under assembly on DIMSEServiceProvider.message (dimse.py:183) and, with
    STORE_RECV_CHUNKED_DATASET, its open file on DIMSEMessage._data_set_file
    (dimse_messages.py:357, 463)."""
    message = getattr(getattr(assoc, "dimse", None), "message", None)
    return getattr(message, "_data_set_file", None)


def dataset_file(request):
    """R5: the file object a received C-STORE data set was streamed into (C_STORE._dataset_file,
    pynetdicom 3.0 dimse_primitives.py:95, set by DIMSEMessage.message_to_primitive), or None when
    the data set was received in memory."""
    return getattr(request, "_dataset_file", None)


def rejection(assoc) -> tuple[int | None, int | None, int | None]:
    """R6: (result, source, diagnostic) of the A-ASSOCIATE-RJ that answered `assoc`'s request: in
    pynetdicom 3.0 the ACSE stores the peer's answer as Association.acceptor.primitive (acse.py,
    _negotiate_as_requestor, acse.py:464); any part missing is None."""
    rsp = assoc.acceptor.primitive
    return (getattr(rsp, "result", None), getattr(rsp, "result_source", None),
            getattr(rsp, "diagnostic", None))


def send_message(assoc, primitive, context_id: int) -> None:
    """R7: send one DIMSE message (request or response primitive) on `assoc`, outside pynetdicom's
    service classes: DIMSEServiceProvider.send_msg(primitive, context_id) (pynetdicom 3.0
    dimse.py:310; a request when MessageIDBeingRespondedTo is None, else a response). Goes
    through P12's lock when it is installed."""
    assoc.dimse.send_msg(primitive, context_id)


def accepted_context(assoc, sop_class_uid: str):
    """R8: the accepted presentation context a request for `sop_class_uid` goes out on, any
    transfer syntax, as pynetdicom's send_n_event_report picks it (association.py:2937):
    Association._get_valid_context(uid, "", None) (pynetdicom 3.0 association.py:396; raises
    ValueError when none was accepted)."""
    return assoc._get_valid_context(sop_class_uid, "", None)


def unread_rejection(assoc) -> tuple[int, int, int] | None:
    """R15: (result, source, diagnostic) of an A-ASSOCIATE-RJ waiting in the DUL's to_user_queue
    that the requestor never read (see the list above), or None; looked at, not taken (pynetdicom
    3.0: DULServiceProvider.to_user_queue, a queue.Queue; the RJ primitive is an A_ASSOCIATE with
    result 1 or 2, acse.py:528)."""
    q = assoc.dul.to_user_queue
    with q.mutex:
        waiting = list(q.queue)
    for pdu in waiting:
        if isinstance(pdu, A_ASSOCIATE) and getattr(pdu, "result", None) in (0x01, 0x02):
            return pdu.result, pdu.result_source, pdu.diagnostic
    return None


def unread_abort(assoc) -> bool:
    """R17: an A-ABORT from the peer (an A_ABORT primitive, pdu_primitives.py; not A_P_ABORT, the
    provider's own for a dropped connection) waits unread in the DUL's to_user_queue (R15's race
    with an A-ABORT for an answer); looked at, not taken."""
    q = assoc.dul.to_user_queue
    with q.mutex:
        return any(type(pdu) is A_ABORT for pdu in q.queue)


def end_association_wait(assoc) -> None:
    """R16: wake the thread waiting in pynetdicom 3.0's ACSE._negotiate_as_requestor for the
    answer to `assoc`'s A-ASSOCIATE-RQ (DULServiceProvider.receive_pdu on to_user_queue, dul.py:336):
    it takes None for its ACSE timeout and aborts the association (A-ABORT, socket closed)."""
    assoc.dul.to_user_queue.put(None)


def release_requested(assoc) -> bool:
    """R9: the peer's A-RELEASE-RQ waits at the head of the DUL's to_user_queue, looked at, not
    taken (pynetdicom 3.0: DULServiceProvider.peek_next_pdu, dul.py:195; an A_RELEASE with result
    None is a request, as ACSE.is_release_requested tests, acse.py:301, which also takes it)."""
    pdu = assoc.dul.peek_next_pdu()
    return isinstance(pdu, A_RELEASE) and pdu.result is None


def encode_dataset(ds, context) -> bytes | None:
    """R10: `ds` encoded in the first transfer syntax of the presentation context `context` (an
    accepted context has one), or None when it cannot be encoded: pynetdicom.dsutils.encode
    (pynetdicom 3.0 dsutils.py:123, encode(ds, is_implicit_vr, is_little_endian, deflated)), as
    its send_* encode a data set they send."""
    ts = context.transfer_syntax[0]
    return encode(ds, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)


# -- P13 / R11: DIMSE-C requests served outside pynetdicom's service classes ---------------

def take_requests(assoc, kinds: tuple, serve: Callable, wants: Callable | None = None) -> None:
    """P13: every valid request of `kinds` (DIMSE-C primitive classes, e.g. C_MOVE, C_GET) that
    arrives on `assoc` goes to `serve(msg, context)` (context: the accepted PresentationContext of
    the request) instead of pynetdicom's service class; everything else goes on to the previous
    _serve_request (pynetdicom's, or another wrapper such as P9's) untouched. Call before the
    peer can send P-DATA (EVT_REQUESTED). `wants(msg, context) -> bool`, when given, declines a
    request (False): it goes to the previous _serve_request as if not of `kinds`.

    Why: pynetdicom's C-MOVE and C-GET SCPs (service_class.py QueryRetrieveServiceClass._move_scp
    / _get_scp) take only decoded pydicom Datasets from the handler, re-encode them, and open the
    Move Destination association with the listener's requested contexts; the gateway sends the
    stored files as they are (the fast storage requestor for C-MOVE, send_c_store(path) for C-GET)
    and needs its own sub-operation accounting. `serve` sends every response itself (R7).

    Relies on pynetdicom 3.0 association.py:3490, Association._serve_request(msg, context_id) (as
    P9), and on what it does around service_class.SCP(msg, context) (association.py:3547-3556):
    dimse.cancel_req cleared before and after, _is_paused True meanwhile, so that send_c_store
    called from the reactor thread (C-GET sub-operations) does not wait for the reactor to pause
    itself; _accepted_cx[context_id] is the request's context (an unknown one: pynetdicom's
    path, which aborts)."""
    previous = assoc._serve_request

    def taken(msg, context_id) -> None:
        context = assoc._accepted_cx.get(context_id)
        if (not isinstance(msg, kinds) or msg.MessageIDBeingRespondedTo is not None
                or not msg.is_valid_request or context is None
                or (wants is not None and not wants(msg, context))):
            previous(msg, context_id)
            return
        assoc.dimse.cancel_req = {}
        assoc._is_paused = True
        try:
            serve(msg, context)
        finally:
            assoc._is_paused = False
            assoc.dimse.cancel_req = {}

    assoc._serve_request = taken


def wake_response_waiter(assoc) -> None:
    """R14: wake the thread waiting in a send_c_* for the next response, as pynetdicom's state
    machine does when the PEER aborts or the connection drops: (None, None) on the DIMSE message
    queue (pynetdicom 3.0 fsm.py:815, 858, 894; dimse.py:201 get_msg returns it, and send_c_find /
    send_c_move / send_c_get treat it as "no response", association.py:2012, 2136). An abort we
    send ourselves (Association.abort) puts nothing there: the waiter would sleep out the DIMSE
    timeout."""
    assoc.dimse.msg_queue.put((None, None))


def cancel_requested(assoc, message_id: int) -> bool:
    """R11: a C-CANCEL naming `message_id` arrived on `assoc` while the request is served
    (pynetdicom 3.0 dimse.py:286: the DUL thread files each C-CANCEL in
    DIMSEServiceProvider.cancel_req by its Message ID Being Responded To, at most 10; P13 clears
    it around each request; ServiceClass.is_cancelled reads it the same way)."""
    return message_id in assoc.dimse.cancel_req


# -- R12 / R13: DIMSE messages encoded by the service, sent through the DUL (C-FIND) ---------

def send_whole_message(assoc, context_id: int, command: bytes, data_set: bytes | None) -> bool:
    """R12: send one DIMSE message whose command set (`command`, Implicit VR Little Endian, PS3.7
    6.3.1) and data set (`data_set`, in the context's transfer syntax, or None) are already
    encoded, as ONE P-DATA primitive on the DUL's to_provider_queue: one P-DATA-TF PDU with the
    command as one PDV (Message Control Header 0x03: command, last fragment) and the data set as a
    second PDV (0x02: data set, last fragment), PS3.8 9.3.5 and Annex E.2. A PDU may carry several
    PDVs (PS3.8 9.3.5: its variable field "shall contain one or more Presentation Data Value
    Items"); both PDVs here belong to the same message (never PDVs of two messages in one PDU:
    pynetdicom's DIMSEMessage.decode_msg, dimse_messages.py:407, stops reading a PDU's PDVs at the
    end of a message), so a receiver that reads a PDU's PDVs in order assembles it as one: DCMTK
    findscu and pynetdicom do (tests/interop/test_qr_find_scp.py, test_qr_find_fast_wire.py).
    Returns False, and sends nothing, when the PDU would exceed the peer's Maximum Length
    (DIMSEServiceProvider.maximum_pdu_size, 0 = unlimited; PS3.8 D.1: the length of the PDU's
    variable field, 6 + fragment per PDV): the caller then sends through R7, which fragments.

    Why not through R7: pynetdicom's send_msg builds a pydicom Dataset of the command set and
    encodes it, then puts command and data set on the queue as two P-DATA primitives, each one a
    loop of the DUL thread (dul.py:run_reactor), for every pending C-FIND response; that, not the
    matching, bounded the responses per second (the C-FIND bench: 690/s vs Orthanc's 2,652/s).

    Why it cannot interleave: nothing here writes to the socket. The primitive goes on the same
    queue, in the same order, as every other message and ACSE primitive (DULServiceProvider.
    send_pdu, dul.py:468-487: P_DATA is put on to_provider_queue; the DUL thread alone sends, one
    primitive per loop, through its state machine's DT-1). The message is one put, so no fragment
    of another thread's message can land inside it (what P12's lock guards for send_msg); a
    bounded queue (P7) applies to it as to any P-DATA. EVT_DIMSE_SENT is not triggered for it (its
    only use here is P10's debug dumps).

    Relies on pynetdicom 3.0: pdu_primitives.P_DATA.presentation_data_value_list (a list of
    (context ID, bytes: control header + fragment)), DULServiceProvider.send_pdu (dul.py:468),
    DIMSEServiceProvider.maximum_pdu_size (dimse.py)."""
    limit = assoc.dimse.maximum_pdu_size
    size = 6 + len(command) + (6 + len(data_set) if data_set is not None else 0)
    if limit and size > limit:
        return False
    pdata = P_DATA()
    pdata.presentation_data_value_list.append((context_id, b"\x03" + command))
    if data_set is not None:
        pdata.presentation_data_value_list.append((context_id, b"\x02" + data_set))
    assoc.dul.send_pdu(pdata)
    return True


def encode_command_set(primitive) -> bytes:
    """R13: the command set of a DIMSE response or request primitive (e.g. a C_FIND with Status and
    an Identifier) as pynetdicom's send_msg encodes it: the message class of
    dimse._RSP_TO_MESSAGE / _RQ_TO_MESSAGE (dimse.py:68-95), primitive_to_message(primitive), and
    dsutils.encode(command_set, True, True) (pynetdicom 3.0 dimse.py:321-327,
    dimse_messages.py:550). The C-FIND SCP encodes its pending command set once per request with
    it and patches nothing but what it must, so the bytes are pynetdicom's."""
    if primitive.MessageIDBeingRespondedTo is None:
        msg = pynetdicom_dimse._RQ_TO_MESSAGE[primitive.__class__]()
    else:
        msg = pynetdicom_dimse._RSP_TO_MESSAGE[primitive.__class__]()
    msg.primitive_to_message(primitive)
    return bytes(encode(msg.command_set, True, True))


# -- apply -------------------------------------------------------------------------------------------

def apply(max_pdu: int = 0) -> None:
    """P1-P4, process-wide. `max_pdu`: the largest PDU this process negotiates to receive (plus the
    6-byte header). Received data sets go to receive_spool (configure it first)."""
    global _limit
    _limit = pdu_limit(max_pdu)
    transport.AssociationSocket.recv = _recv
    # transport.py uses deepcopy only for the acceptor's supported contexts.
    transport.deepcopy = _copy_contexts
    # See receive_spool: survive a full disk with a status instead of an aborted association.
    dimse_messages.NamedTemporaryFile = receive_spool.SpoolFile
    # Received data sets stream to a spool file in the buffer's incoming/ folder (same file system
    # as the store, so ingest is a rename), and stored files are sent from disk as they are.
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.STORE_SEND_CHUNKED_DATASET = True
    # The buffer keeps every byte as received; a sender's odd-but-parsable UID is the receiver's
    # business to report (A900 from the attribute check), not pynetdicom's to drop the association.
    _config.ENFORCE_UID_CONFORMANCE = False
    # NUL-padded and other odd AE titles reach AssociationPolicy (normalised or rejected with a
    # reason) instead of failing pynetdicom's decoder.
    _config.VALIDATORS["AE"] = lenient_ae_validator
