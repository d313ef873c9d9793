"""pynetdicom_patches: one version-pinned test per change (P1-P13) and per read of an internal (R1-R11).

Each test checks that the pynetdicom code the entry relies on is still there and shaped as expected
(a signature, an attribute, the line a patch replaces), then that the entry has its effect. A
failure names the installed pynetdicom version: read the entry's docstring in
gateway/dicom/net/pynetdicom_patches.py against that version before changing the pin (<3.1).

Also: the replacement recv keeps pynetdicom's contract (all bytes asked for, or what came before
EOF), refuses an oversized PDU, and the context copy deep-copies anything but contexts.
"""

from __future__ import annotations

import inspect
import logging
import queue
import socket
import threading
import warnings

import pynetdicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config, _handlers, dimse_messages, dsutils, evt, fsm, transport
from pynetdicom.acse import ACSE
from pynetdicom.association import Association, ServiceUser
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_STORE, N_EVENT_REPORT, N_SET
from pynetdicom.dul import DULServiceProvider
from pynetdicom.fsm import TRANSITION_TABLE, InvalidEventError, StateMachine
from pynetdicom.pdu_primitives import A_ASSOCIATE, A_RELEASE, P_DATA
from pynetdicom.presentation import build_context
from pynetdicom.transport import AddressInformation, AssociationServer, AssociationSocket, ThreadedAssociationServer

from gateway.dicom.net import pynetdicom_patches, receive_spool
from gateway.dicom.net.pdu_flow import BoundedPDataQueue
from gateway.dicom.net.pynetdicom_patches import _recv
from gateway.identity import lenient_ae_validator

VERSION = pynetdicom.__version__


def pin(what: str) -> str:
    return f"pynetdicom {VERSION}: {what} (see gateway/dicom/net/pynetdicom_patches.py; pinned <3.1)"


def source(obj) -> str:
    return inspect.getsource(obj)


def params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


@pytest.fixture
def applied(tmp_path):
    """apply() on a clean slate; every process-wide change undone afterwards, so that the other
    tests in this process see pynetdicom as shipped."""
    saved = (transport.AssociationSocket.recv, transport.deepcopy, dimse_messages.NamedTemporaryFile,
             _config.STORE_RECV_CHUNKED_DATASET, _config.STORE_SEND_CHUNKED_DATASET,
             _config.ENFORCE_UID_CONFORMANCE, _config.VALIDATORS["AE"], pynetdicom_patches._limit,
             receive_spool._incoming, receive_spool._reserve_check)
    receive_spool.configure(tmp_path, None)
    pynetdicom_patches.apply(131072)
    yield
    (transport.AssociationSocket.recv, transport.deepcopy, dimse_messages.NamedTemporaryFile,
     _config.STORE_RECV_CHUNKED_DATASET, _config.STORE_SEND_CHUNKED_DATASET,
     _config.ENFORCE_UID_CONFORMANCE, _config.VALIDATORS["AE"], pynetdicom_patches._limit,
     receive_spool._incoming, receive_spool._reserve_check) = saved


def _association() -> Association:
    """An acceptor-side Association as the server builds one, threads not started."""
    assoc = Association(AE(), "acceptor")
    assoc.requestor.address_info = AddressInformation("127.0.0.1", 11112)
    assoc.requestor.ae_title = "MODALITY"
    return assoc


class _Sock:
    def __init__(self, s):
        self.socket = s


# -- behaviour of the replacement recv and copy ---------------------------------------------------------

def test_reads_exactly_across_many_small_sends_and_stops_short_at_eof():
    a, b = socket.socketpair()
    payload = bytes(range(256)) * 1000

    def writer():
        for i in range(0, len(payload), 777):  # arrives in odd-sized pieces
            a.sendall(payload[i:i + 777])
        a.close()

    t = threading.Thread(target=writer)
    t.start()
    first = _recv(_Sock(b), 100_000)
    rest = _recv(_Sock(b), 1_000_000)
    t.join()
    assert bytes(first) == payload[:100_000]
    assert bytes(rest) == payload[100_000:]  # short: the peer closed
    assert _recv(_Sock(b), 10) == bytearray()
    b.close()


def test_a_pdu_longer_than_the_limit_reads_as_a_closed_connection(applied):
    a, b = socket.socketpair()
    try:
        assert _recv(_Sock(b), 0x7FFFFFF0) == bytearray()  # nothing allocated, nothing read
        a.sendall(b"x" * 10)
        assert _recv(_Sock(b), 10) == bytearray(b"x" * 10)
    finally:
        a.close()
        b.close()


def test_supported_contexts_are_list_copied_other_values_deep_copied(applied):
    contexts = [build_context("1.2.840.10008.1.1")]
    copied = transport.deepcopy(contexts)
    assert copied == contexts and copied is not contexts and copied[0] is contexts[0]
    nested = {"a": [1, 2]}
    other = transport.deepcopy(nested)
    assert other == nested and other["a"] is not nested["a"]


# -- P1-P4: apply() ------------------------------------------------------------------------------------

def test_p1_association_socket_recv(applied):
    # apply() has replaced the method: read the one pynetdicom shipped from its module's source.
    module = source(transport)
    assert "def recv(self, nr_bytes: int) -> bytearray:" in module, pin("AssociationSocket.recv(nr_bytes) changed")
    for line in ("bytes_read = self.socket.recv(bufsize)", "if not bytes_read:\n                return bytestream"):
        assert line in module, pin(f"AssociationSocket.recv no longer has {line!r} (its contract: what was "
                                   "read, short or empty on a closed connection)")
    dul_read = source(DULServiceProvider._read_pdu_data)
    assert "self.socket.recv(6)" in dul_read and "self.socket.recv(pdu_length)" in dul_read, \
        pin("the DUL no longer reads a PDU as header (6) then body through AssociationSocket.recv")
    assert AssociationSocket.recv is _recv, pin("apply() did not replace AssociationSocket.recv")


def test_p2_transport_deepcopy(applied):
    module = source(transport)
    assert module.count("deepcopy(") == 1 and "deepcopy(self.server.contexts)" in module, \
        pin("transport.py no longer uses deepcopy exactly once, for the server's supported contexts")
    assert transport.deepcopy is pynetdicom_patches._copy_contexts, pin("apply() did not replace transport.deepcopy")
    contexts = [build_context("1.2.840.10008.1.1")]
    assert transport.deepcopy(contexts)[0] is contexts[0], pin("contexts are still deep-copied")


def test_p3_received_data_sets_go_to_the_spool_file(applied, tmp_path):
    module = source(dimse_messages)
    assert 'NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")' in module, \
        pin("DIMSEMessage.decode_msg no longer opens its chunked data set file with "
            "NamedTemporaryFile(delete=False, mode='wb', suffix='.dcm')")
    decode = source(DIMSEMessage.decode_msg)
    for use in ("self._data_set_file.write(", "self._data_set_file.file.flush()", "self._data_set_file.name"):
        assert use in decode, pin(f"decode_msg no longer uses {use!r} of its spool file: check SpoolFile's subset")
    assert dimse_messages.NamedTemporaryFile is receive_spool.SpoolFile, pin("apply() did not install SpoolFile")
    spool = dimse_messages.NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")
    try:
        spool.write(b"\x00" * 128 + b"DICM")
        spool.file.flush()
        spool.finish()
        assert spool.name.startswith(str(tmp_path)), pin("the spool file is not in receive_spool's folder")
    finally:
        spool.close()


def test_p4_config_settings(applied):
    for name in ("STORE_RECV_CHUNKED_DATASET", "STORE_SEND_CHUNKED_DATASET", "ENFORCE_UID_CONFORMANCE"):
        assert isinstance(getattr(_config, name, None), bool), pin(f"_config.{name} is gone or not a bool")
    assert isinstance(_config.VALIDATORS, dict) and "AE" in _config.VALIDATORS, pin("_config.VALIDATORS['AE'] is gone")
    assert (_config.STORE_RECV_CHUNKED_DATASET, _config.STORE_SEND_CHUNKED_DATASET,
            _config.ENFORCE_UID_CONFORMANCE) == (True, True, False), pin("apply() did not set the _config flags")
    assert _config.VALIDATORS["AE"] is lenient_ae_validator, pin("apply() did not install the AE validator")


# -- P5-P12: per association ------------------------------------------------------------------------------

def test_p5_unreadable_command_set_aborts_instead_of_killing_the_dul(caplog):
    assert params(DIMSEServiceProvider.receive_primitive) == ["self", "primitive"], \
        pin("DIMSEServiceProvider.receive_primitive(primitive) changed")
    body = source(DIMSEServiceProvider.receive_primitive)
    assert "self.message.decode_msg(primitive, self.assoc)" in body and 'self.dul.event_queue.put("Evt19")' in body, \
        pin("receive_primitive no longer decodes into self.message or signals Evt19 on its queue")
    # A command set with an element cut short: (0000,0100) says 2 bytes, 1 follows.
    pdata = P_DATA()
    pdata.presentation_data_value_list = [[1, b"\x03" + b"\x00\x00\x00\x01\x02\x00\x00\x00\x01"]]
    plain = _association()
    try:
        plain.dimse.receive_primitive(pdata)  # what the guard is for: this killed the DUL thread
    except Exception:
        pass
    else:
        pytest.fail(pin("an unreadable command set no longer raises in receive_primitive (guard unneeded?)"))
    guarded = _association()
    pynetdicom_patches.guard_association(guarded)
    with caplog.at_level(logging.WARNING, "gateway.dicom.association"):
        guarded.dimse.receive_primitive(pdata)
    assert guarded.dul.event_queue.get_nowait() == "Evt19", pin("the guard did not turn the error into Evt19")
    assert guarded.dimse.message is None and "unreadable DIMSE message" in caplog.text, pin("guard did not log/reset")


def test_p6_local_primitive_after_the_abort_is_dropped():
    assert params(StateMachine.do_action) == ["self", "event"], pin("StateMachine.do_action(event) changed")
    assert "not in TRANSITION_TABLE" in source(StateMachine.do_action), \
        pin("do_action no longer checks (event, state) against TRANSITION_TABLE")
    assert ("Evt9", "Sta13") not in TRANSITION_TABLE and ("Evt9", "Sta6") in TRANSITION_TABLE, \
        pin("the state table now lists a local P-DATA in Sta13 (the guard may be unneeded)")
    plain = _association().dul.state_machine
    plain.current_state = "Sta13"
    try:
        plain.do_action("Evt9")
    except InvalidEventError:
        pass
    else:
        pytest.fail(pin("a local P-DATA in Sta13 no longer raises InvalidEventError (guard unneeded?)"))
    assoc = _association()
    pynetdicom_patches.guard_association(assoc)
    machine = assoc.dul.state_machine
    machine.current_state = "Sta13"
    machine.do_action("Evt9")  # dropped, no exception
    assert machine.current_state == "Sta13", pin("the guarded state machine changed state")


def test_p7_bounded_pdata_queue():
    assoc = _association()
    assert isinstance(assoc.dul.to_provider_queue, queue.Queue), pin("DULServiceProvider.to_provider_queue changed")
    assert "self.to_provider_queue.put(" in source(DULServiceProvider.send_pdu), \
        pin("DULServiceProvider.send_pdu no longer puts on to_provider_queue")
    assert "self.dul.send_pdu(" in source(DIMSEServiceProvider.send_msg), \
        pin("DIMSEServiceProvider.send_msg no longer sends through the DUL's send_pdu")
    waiting = A_ASSOCIATE()
    assoc.dul.to_provider_queue.put(waiting)
    pynetdicom_patches.limit_pending_pdata(assoc, limit=3)
    q = assoc.dul.to_provider_queue
    assert isinstance(q, BoundedPDataQueue) and q.limit == 3, pin("the DUL's queue was not swapped")
    assert q.get_nowait() is waiting, pin("a primitive queued before the swap was lost")


def test_p8_hand_off_server_serves_a_connection_it_did_not_accept():
    assert params(AssociationServer.__init__)[:7] == ["self", "ae", "address", "ae_title", "contexts",
                                                      "ssl_context", "evt_handlers"], \
        pin("AssociationServer.__init__ changed")
    assert "self.finish_request(request, client_address)" in source(ThreadedAssociationServer.process_request_thread), \
        pin("ThreadedAssociationServer no longer serves a connection through finish_request")
    ae = AE()
    ae.add_supported_context("1.2.840.10008.1.1")
    # The peer closes before any A-ASSOCIATE-RQ: pynetdicom ends such an association at its ACSE
    # timeout, not at the close; short here, and the join below waits well past it (a loaded CI
    # core once took longer than a join of exactly the timeout).
    ae.acse_timeout = 1
    server = pynetdicom_patches.HandOffServer(ae, ("127.0.0.1", 0), "ANY", ae.supported_contexts, evt_handlers=[])
    listening = socket.create_server(("127.0.0.1", 0))
    try:
        assert server.socket.getsockname()[1] == 0, pin("HandOffServer bound a port of its own")
        peer = socket.create_connection(listening.getsockname())
        conn, address = listening.accept()
        server.hand_off(conn, address)
        assert len(server.active_associations) == 1, pin("hand_off did not start an Association")
        peer.close()
        for assoc in server.active_associations:
            assoc.join(15)
        assert not server.active_associations, pin("the handed-off association did not end after its peer left")
    finally:
        server.server_close()
        listening.close()


def _n_set(message_id=7) -> N_SET:
    req = N_SET()
    req.MessageID = message_id
    req.RequestedSOPClassUID = "1.2.840.10008.5.1.1.1"
    req.RequestedSOPInstanceUID = "1.2.3.4"
    return req


def test_p9_requests_shown_to_a_check_before_pynetdicom_serves_them():
    assert params(Association._serve_request) == ["self", "msg", "context_id"], \
        pin("Association._serve_request(msg, context_id) changed")
    assert "self._serve_request(msg, cast(int, context_id))" in source(Association._run_reactor), \
        pin("the reactor no longer dispatches each DIMSE message through self._serve_request")
    assert "if not msg.is_valid_request:" in source(Association._serve_request), \
        pin("_serve_request no longer drops an invalid request unanswered (the guard may be unneeded)")
    assoc = _association()
    served, seen, sent, aborted = [], [], [], []
    assoc._serve_request = lambda msg, cx: served.append((msg, cx))  # stands in for pynetdicom's
    assoc.dimse.send_msg = lambda primitive, cx: sent.append((primitive, cx))
    assoc.abort = lambda: aborted.append(True)
    answers = {1: None, 2: pynetdicom_patches.ABORT}
    rsp = N_SET()

    def check(msg):
        seen.append(msg.MessageID)
        return answers.get(msg.MessageID, rsp)

    pynetdicom_patches.guard_requests(assoc, check)
    echo, n_rsp = C_ECHO(), N_SET()
    echo.MessageID, n_rsp.MessageIDBeingRespondedTo = 5, 9
    for msg in (echo, n_rsp, _n_set(1), _n_set(2), _n_set(3)):
        assoc._serve_request(msg, 1)
    assert seen == [1, 2, 3], pin("the check did not see exactly the DIMSE-N requests")
    assert [m for m, _ in served] == [echo, n_rsp, served[2][0]] and served[2][0].MessageID == 1, \
        pin("pynetdicom did not serve what the check passed (and only that)")
    assert aborted == [True], pin("ABORT did not abort the association")
    assert sent == [(rsp, 1)], pin("the check's response was not sent on the request's context")


def test_p10_message_dumps_only_when_their_log_is_wanted(caplog, monkeypatch):
    assert "self.bind(evt.EVT_DIMSE_RECV, standard_dimse_recv_handler)" in source(Association._bind_defaults) \
        and "self.bind(evt.EVT_DIMSE_SENT, standard_dimse_sent_handler)" in source(Association._bind_defaults), \
        pin("Association no longer binds pynetdicom._handlers.standard_dimse_recv/sent_handler by default")
    assert params(_handlers.standard_dimse_recv_handler) == ["event"], pin("standard_dimse_recv_handler(event) changed")
    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", "standard")
    assoc = _association()
    handlers = assoc.get_handlers(evt.EVT_DIMSE_RECV)
    assert any(bound[0] is _handlers.standard_dimse_recv_handler for bound in handlers), \
        pin("get_handlers(EVT_DIMSE_RECV) no longer lists (handler, args) with the standard handler")
    failures = logging.getLogger("test.p10")
    pynetdicom_patches.quiet_message_dumps(assoc, failures)
    bound = [b[0] for event in (evt.EVT_DIMSE_RECV, evt.EVT_DIMSE_SENT) for b in assoc.get_handlers(event)]
    assert _handlers.standard_dimse_recv_handler not in bound and _handlers.standard_dimse_sent_handler not in bound, \
        pin("the standard DIMSE dump handlers are still bound")
    dump = assoc.get_handlers(evt.EVT_DIMSE_RECV)[0][0]
    broken = type("Event", (), {"message": None})()  # standard_dimse_recv_handler fails on it
    with caplog.at_level(logging.INFO, "pynetdicom"):
        dump(broken)  # pynetdicom's debug log off: not even formatted
    assert not caplog.records, pin("a dump ran with pynetdicom's debug log off")
    # pynetdicom's own logger too: an earlier test in the same process (the service's logging
    # set-up) may have given it a level of its own, which the root's level does not override.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, "pynetdicom"):
        dump(broken)
    assert [r.name for r in caplog.records] == ["test.p10"] and "message not dumped" in caplog.text \
        and not any(r.exc_info for r in caplog.records), pin("a failing dump was not one debug line on `failures`")


def test_p11_responses_taken_out_of_the_dimse_queue():
    assoc = _association()
    assert isinstance(assoc.dimse.msg_queue, queue.Queue), pin("DIMSEServiceProvider.msg_queue is not a queue.Queue")
    assert "self.msg_queue.put((context_id, cast(DimseServiceType, d_primitive)))" in \
        source(DIMSEServiceProvider.receive_primitive), pin("receive_primitive no longer queues (cx ID, primitive)")
    assert "self.msg_queue.get(" in source(DIMSEServiceProvider.get_msg), pin("get_msg no longer reads msg_queue")
    assert source(fsm).count("assoc.dimse.msg_queue.put((None, None))") == 3, \
        pin("the state machine no longer wakes the DIMSE queue with (None, None) on close/abort (AA-2/3/4)")
    early = (1, _n_set(1))
    assoc.dimse.msg_queue.put(early)
    responses, closed = [], []
    pynetdicom_patches.demultiplex_responses(assoc, responses.append, lambda: closed.append(True))
    rsp = N_EVENT_REPORT()
    rsp.MessageIDBeingRespondedTo = 4
    request = (1, _n_set(2))
    for item in ((1, rsp), request, (None, None)):
        assoc.dimse.msg_queue.put(item)
    assert responses == [rsp], pin("a response was not handed to on_response")
    assert closed == [True], pin("the (None, None) wake-up did not call on_closed")
    assert [assoc.dimse.get_msg() for _ in range(3)] == [early, request, (None, None)], \
        pin("requests and the wake-up no longer reach the reactor through get_msg (or the swap lost one)")


def test_p12_each_message_sent_whole():
    assert params(DIMSEServiceProvider.send_msg) == ["self", "primitive", "context_id"], \
        pin("DIMSEServiceProvider.send_msg(primitive, context_id) changed")
    body = source(DIMSEServiceProvider.send_msg)
    assert "for pdata in dimse_msg.encode_msg(" in body and "self.dul.send_pdu(pdata)" in body, \
        pin("send_msg no longer puts a message's P-DATA on the DUL one fragment at a time")
    assoc = _association()
    inside, overlaps = [], []

    def slow_send(primitive, context_id):
        if inside:
            overlaps.append(primitive)
        inside.append(primitive)
        threading.Event().wait(0.05)
        inside.pop()

    assoc.dimse.send_msg = slow_send  # what P12 wraps: the instance's send_msg
    pynetdicom_patches.whole_messages(assoc)
    threads = [threading.Thread(target=pynetdicom_patches.send_message, args=(assoc, n, 1)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert overlaps == [], pin("two messages were sent at once")


# -- R1-R10: reads of internals ---------------------------------------------------------------------------

def test_r1_raw_socket():
    assoc = _association()
    assert pynetdicom_patches.raw_socket(assoc) is None, pin("an association without a socket has one")
    assert "client_socket" in params(AssociationSocket.__init__), pin("AssociationSocket(assoc, client_socket=) changed")
    a, b = socket.socketpair()
    try:
        assoc.set_socket(AssociationSocket(assoc, client_socket=a))
        assert assoc.dul.socket.socket is a, pin("Association.dul.socket.socket is not the TCP socket")
        assert pynetdicom_patches.raw_socket(assoc) is a, pin("raw_socket did not find the TCP socket")
    finally:
        a.close()
        b.close()


def test_r2_request_primitive_is_set_before_evt_requested():
    run = source(Association.run_reactor)
    set_at = run.find("self.requestor.primitive = ")
    trigger_at = run.find("evt.trigger(self, evt.EVT_REQUESTED")
    assert 0 <= set_at < trigger_at, pin("requestor.primitive is no longer set before EVT_REQUESTED")
    assert "self.requestor.primitive" in source(ACSE._negotiate_as_acceptor), \
        pin("negotiation no longer reads the request from requestor.primitive (rewritten titles would be lost)")
    assoc = _association()
    primitive = A_ASSOCIATE()
    assoc.requestor.primitive = primitive
    assert pynetdicom_patches.request_primitive(assoc) is primitive, pin("request_primitive read another object")


def test_r3_reject_from_evt_requested():
    assert params(ACSE.send_reject) == ["self", "result", "source", "diagnostic"], pin("ACSE.send_reject changed")
    assert callable(getattr(Association, "kill", None)), pin("Association.kill is gone")
    assert "if not self.is_aborted and not self.is_rejected" in source(Association.run_reactor), \
        pin("the acceptor no longer skips negotiation after a rejection from EVT_REQUESTED")
    assoc = _association()
    assoc.requestor.primitive = A_ASSOCIATE()
    pynetdicom_patches.reject_in_handler(assoc, (0x01, 0x01, 0x03))
    sent = assoc.dul.to_provider_queue.get_nowait()
    assert (sent.result, sent.result_source, sent.diagnostic) == (0x01, 0x01, 0x03), pin("no A-ASSOCIATE-RJ queued")
    assert assoc.is_rejected and not assoc.is_established, pin("send_reject did not mark the association rejected")


def test_r4_receiving_file():
    assoc = _association()
    assert hasattr(assoc.dimse, "message") and assoc.dimse.message is None, \
        pin("DIMSEServiceProvider.message (the message under assembly) is gone")
    message = DIMSEMessage()
    assert hasattr(message, "_data_set_file"), pin("DIMSEMessage._data_set_file is gone")
    assert pynetdicom_patches.receiving_file(assoc) is None, pin("a file with no message under assembly")
    assoc.dimse.message = message
    marker = object()
    message._data_set_file = marker
    assert pynetdicom_patches.receiving_file(assoc) is marker, pin("receiving_file read another attribute")


def test_r5_dataset_file():
    request = C_STORE()
    assert hasattr(request, "_dataset_file") and request._dataset_file is None, pin("C_STORE._dataset_file is gone")
    assert "_dataset_file" in source(DIMSEMessage.message_to_primitive), \
        pin("message_to_primitive no longer hands the spool file to the C-STORE primitive")
    marker = object()
    request._dataset_file = marker
    assert pynetdicom_patches.dataset_file(request) is marker, pin("dataset_file read another attribute")


def test_r6_rejection():
    assert "self.acceptor.primitive = rsp" in source(ACSE._negotiate_as_requestor), \
        pin("the requestor no longer keeps the peer's answer on acceptor.primitive")
    assert "primitive" in ServiceUser.__init__.__code__.co_names or hasattr(ServiceUser, "primitive"), \
        pin("ServiceUser.primitive is gone")
    assoc = Association(AE(), "requestor")
    assert pynetdicom_patches.rejection(assoc) == (None, None, None), pin("a rejection without an answer")
    rj = A_ASSOCIATE()
    rj.result, rj.result_source, rj.diagnostic = 0x01, 0x01, 0x03
    assoc.acceptor.primitive = rj
    assert pynetdicom_patches.rejection(assoc) == (0x01, 0x01, 0x03), pin("rejection read other attributes")


def test_r7_send_message():
    assoc = _association()
    assoc.acceptor.maximum_length = 16384  # the peer's, as negotiated
    rsp = _n_set()
    rsp.MessageID, rsp.MessageIDBeingRespondedTo, rsp.Status = None, 7, 0x0000
    rsp.RequestedSOPClassUID = rsp.RequestedSOPInstanceUID = None
    pynetdicom_patches.send_message(assoc, rsp, 3)
    assert not assoc.dul.to_provider_queue.empty(), pin("send_message queued nothing for the DUL")
    pdata = assoc.dul.to_provider_queue.get_nowait()
    assert isinstance(pdata, P_DATA) and pdata.presentation_data_value_list[0][0] == 3, \
        pin("send_msg did not queue P-DATA for the DUL on the given context")


def test_r8_accepted_context():
    assert params(Association._get_valid_context)[:4] == ["self", "ab_syntax", "tr_syntax", "role"], \
        pin("Association._get_valid_context(ab_syntax, tr_syntax, role) changed")
    assert '_get_valid_context(meta_uid or class_uid, "", None)' in source(Association.send_n_event_report), \
        pin("send_n_event_report no longer picks its context this way")
    assoc = _association()
    cx = build_context("1.2.840.10008.5.1.1.9", [ImplicitVRLittleEndian])
    cx.context_id, cx.result = 5, 0x00
    cx._as_scu, cx._as_scp = True, True
    assoc._accepted_cx = {5: cx}
    try:
        found = pynetdicom_patches.accepted_context(assoc, "1.2.840.10008.5.1.1.9")
    except ValueError as exc:
        pytest.fail(pin(f"accepted_context found no context for an accepted abstract syntax ({exc})"))
    assert found is cx, pin("accepted_context found another context")
    with pytest.raises(ValueError):  # what send_event_report reports for a class not accepted
        pynetdicom_patches.accepted_context(assoc, "1.2.840.10008.5.1.1.18")  # color: not accepted


def test_r9_release_requested():
    assert "self.to_user_queue.queue[0]" in source(DULServiceProvider.peek_next_pdu), \
        pin("DULServiceProvider.peek_next_pdu no longer looks at to_user_queue without taking")
    assert "isinstance(primitive, A_RELEASE) and primitive.result is None" in source(ACSE.is_release_requested), \
        pin("pynetdicom no longer tells a release request by A_RELEASE with result None")
    assoc = _association()
    assert not pynetdicom_patches.release_requested(assoc), pin("a release request in an empty queue")
    rq = A_RELEASE()
    assoc.dul.to_user_queue.put(rq)
    assert pynetdicom_patches.release_requested(assoc), pin("the queued A-RELEASE-RQ was not seen")
    assert assoc.dul.to_user_queue.get_nowait() is rq, pin("release_requested took the A-RELEASE-RQ")
    rp = A_RELEASE()
    rp.result = "affirmative"
    assoc.dul.to_user_queue.put(rp)
    assert not pynetdicom_patches.release_requested(assoc), pin("an A-RELEASE-RP read as a request")


def test_r10_encode_dataset():
    assert params(dsutils.encode)[:4] == ["ds", "is_implicit_vr", "is_little_endian", "deflated"], \
        pin("pynetdicom.dsutils.encode(ds, is_implicit_vr, is_little_endian, deflated) changed")
    ds = Dataset()
    ds.PrinterStatus = "NORMAL"
    implicit = pynetdicom_patches.encode_dataset(ds, build_context("1.2.840.10008.5.1.1.16", [ImplicitVRLittleEndian]))
    assert implicit == b"\x10\x21\x10\x00\x06\x00\x00\x00NORMAL", pin("not encoded in Implicit VR Little Endian")
    big = pynetdicom_patches.encode_dataset(ds, build_context("1.2.840.10008.5.1.1.16", [ExplicitVRBigEndian]))
    assert big == b"\x21\x10\x00\x10CS\x00\x06NORMAL", pin("not encoded in the context's transfer syntax")
    bad = Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of the value it will then fail to write
        bad.add_new(0x00281010, "US", 70000)  # more than 16 bits
    assert pynetdicom_patches.encode_dataset(bad, build_context("1.2.840.10008.5.1.1.16")) is None, \
        pin("an unencodable data set no longer gives None")


# -- P13 / R11 (the retrieve SCP) ---------------------------------------------------------

def _c_move(message_id=7, identifier=True):
    from io import BytesIO

    from pynetdicom.dimse_primitives import C_MOVE
    req = C_MOVE()
    req.MessageID = message_id
    req.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2"
    req.Priority = 0
    req.MoveDestination = "WS"
    if identifier:
        req.Identifier = BytesIO(b"")
    return req


def test_p13_c_move_and_c_get_requests_taken_from_pynetdicom():
    from pynetdicom.dimse_primitives import C_CANCEL, C_GET, C_MOVE
    serve_src = source(Association._serve_request)
    for line in ("self.dimse.cancel_req = {}", "self._is_paused = True", "service_class.SCP(msg, context)",
                 "context = self._accepted_cx[context_id]"):
        assert line in serve_src, pin(f"_serve_request no longer does {line!r} around the service class")
    assoc = _association()
    assert isinstance(assoc._accepted_cx, dict), pin("Association._accepted_cx is not a dict of contexts")
    context = build_context("1.2.840.10008.5.1.4.1.2.2.2")
    context.context_id = 1
    assoc._accepted_cx = {1: context}
    passed, taken = [], []
    assoc._serve_request = lambda msg, cx: passed.append((msg, cx))  # stands in for pynetdicom's

    def serve(msg, cx):
        taken.append((msg, cx, assoc._is_paused, dict(assoc.dimse.cancel_req)))
        assoc.dimse.cancel_req[msg.MessageID] = C_CANCEL()  # arrives while served

    pynetdicom_patches.take_requests(assoc, (C_MOVE, C_GET), serve)
    assoc.dimse.cancel_req = {3: C_CANCEL()}  # left over from an earlier request
    echo, move, other_cx, invalid = C_ECHO(), _c_move(), _c_move(8), _c_move(9, identifier=False)
    echo.MessageID = 5
    move_rsp = C_MOVE()
    move_rsp.MessageIDBeingRespondedTo = 7
    assoc._serve_request(echo, 1)
    assoc._serve_request(move, 1)
    assoc._serve_request(other_cx, 3)  # no such accepted context: pynetdicom's path (it aborts)
    assoc._serve_request(invalid, 1)
    assoc._serve_request(move_rsp, 1)
    assert [(m, c) for m, c, _p, _q in taken] == [(move, context)], pin("the valid C-MOVE was not taken")
    assert taken[0][2] is True and taken[0][3] == {}, pin("not paused, or old C-CANCELs not cleared")
    assert assoc._is_paused is False and assoc.dimse.cancel_req == {}, pin("state not restored after serve")
    assert [m for m, _ in passed] == [echo, other_cx, invalid, move_rsp], pin("others not passed on")


def test_r11_cancel_requested():
    from pynetdicom.dimse_primitives import C_CANCEL
    assert "self.cancel_req[msg_id] = d_primitive" in source(DIMSEServiceProvider.receive_primitive), \
        pin("the DIMSE provider no longer files C-CANCELs in cancel_req by Message ID")
    assoc = _association()
    assoc.dimse.cancel_req = {7: C_CANCEL()}
    assert pynetdicom_patches.cancel_requested(assoc, 7) is True
    assert pynetdicom_patches.cancel_requested(assoc, 8) is False


# -- P13 `wants` / R12 / R13 (the C-FIND SCP's pendings) ------------------------------------

def _c_find_rsp(status=0xFF00, identifier=b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY "):
    from io import BytesIO

    from pynetdicom.dimse_primitives import C_FIND
    rsp = C_FIND()
    rsp.MessageID = rsp.MessageIDBeingRespondedTo = 7
    rsp.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    rsp.Status = status
    if identifier is not None:
        rsp.Identifier = BytesIO(identifier)
    return rsp


def test_p13_wants_declines_a_request_to_pynetdicom():
    from pynetdicom.dimse_primitives import C_MOVE
    assoc = _association()
    context = build_context("1.2.840.10008.5.1.4.1.2.2.2")
    context.context_id = 1
    assoc._accepted_cx = {1: context}
    passed, taken = [], []
    assoc._serve_request = lambda msg, cx: passed.append(msg)
    pynetdicom_patches.take_requests(assoc, (C_MOVE,), lambda msg, cx: taken.append(msg),
                                     wants=lambda msg, cx: msg.MessageID != 8)
    wanted, declined = _c_move(7), _c_move(8)
    assoc._serve_request(wanted, 1)
    assoc._serve_request(declined, 1)
    assert taken == [wanted] and passed == [declined], pin("`wants` did not decide who serves the request")


def test_r12_send_whole_message_is_one_pdata_through_the_dul_queue():
    assert "self.to_provider_queue.put(primitive)" in source(DULServiceProvider.send_pdu), \
        pin("DULServiceProvider.send_pdu no longer queues the primitive for the DUL thread")
    assert "self.assoc.requestor.maximum_length" in source(DIMSEServiceProvider.maximum_pdu_size.fget), \
        pin("DIMSEServiceProvider.maximum_pdu_size is no longer the requestor's Maximum Length (acceptor)")
    assoc = _association()
    assoc.requestor.maximum_length = 6 + 10 + 6 + 20
    assert pynetdicom_patches.send_whole_message(assoc, 3, b"C" * 10, b"D" * 20) is True
    pdata = assoc.dul.to_provider_queue.get_nowait()
    assert assoc.dul.to_provider_queue.empty(), pin("more than one primitive for one message")
    assert pdata.presentation_data_value_list == [(3, b"\x03" + b"C" * 10), (3, b"\x02" + b"D" * 20)], \
        pin("not one PDV of the last command fragment then one of the last data set fragment")
    # What goes on the wire: one P-DATA-TF PDU, its variable field exactly the Maximum Length.
    from pynetdicom.pdu import P_DATA_TF
    pdu = P_DATA_TF()
    pdu.from_primitive(pdata)
    encoded = pdu.encode()
    assert encoded[:2] == b"\x04\x00" and int.from_bytes(encoded[2:6], "big") == 42 == len(encoded) - 6, \
        pin("the P-DATA-TF PDU is not as PS3.8 9.3.5 lays it out")
    assert encoded[6:12] == b"\x00\x00\x00\x0c\x03\x03", pin("first PDV item: length 12 (context, header, 10), context 3, header 03")
    # One byte too long for the peer: nothing sent, the caller uses R7.
    assoc.requestor.maximum_length = 41
    assert pynetdicom_patches.send_whole_message(assoc, 3, b"C" * 10, b"D" * 20) is False
    assert assoc.dul.to_provider_queue.empty()
    assoc.requestor.maximum_length = 0  # unlimited
    assert pynetdicom_patches.send_whole_message(assoc, 3, b"C" * 10, None) is True
    assert assoc.dul.to_provider_queue.get_nowait().presentation_data_value_list == [(3, b"\x03" + b"C" * 10)]


def test_r13_encode_command_set_is_what_send_msg_sends():
    for rsp in (_c_find_rsp(), _c_find_rsp(0xFF01), _c_find_rsp(0x0000, None)):
        assoc = _association()
        assoc.requestor.maximum_length = 0
        command = pynetdicom_patches.encode_command_set(rsp)
        pynetdicom_patches.send_message(assoc, rsp, 1)
        first = assoc.dul.to_provider_queue.get_nowait().presentation_data_value_list[0][1]
        assert first == b"\x03" + command, pin("encode_command_set differs from send_msg's command set")
        assert command[12:] and b"\x00\x00\x00\x08" in command, pin("no Command Data Set Type")


def _rejecting_server(result=0x01, source=0x01, diagnostic=0x07, pdu_type=0x03):
    """A peer that reads one A-ASSOCIATE-RQ, answers A-ASSOCIATE-RJ (PS3.8 9.3.4; pdu_type 0x07:
    an A-ABORT, 9.3.8, its source and reason in the last two bytes) and closes at once."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = srv.accept()
        with conn:
            head = conn.recv(6, socket.MSG_WAITALL)
            left = int.from_bytes(head[2:6], "big")
            while left:
                left -= len(conn.recv(left))
            conn.sendall(bytes([pdu_type, 0x00, 0, 0, 0, 4, 0x00, result, source, diagnostic]))
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


@pytest.fixture
def slow_requestor(monkeypatch):
    """The requesting thread of a loaded machine: it looks at the socket only after the DUL thread
    has read the peer's answer and closed the connection (the race of R15 and R17, made certain)."""
    import time

    send_request = ACSE.send_request

    def slow(self):
        send_request(self)
        self.socket._ready.wait(10)
        deadline = time.monotonic() + 10
        while self.socket._is_connected and time.monotonic() < deadline:
            time.sleep(0.01)

    monkeypatch.setattr(ACSE, "send_request", slow)


def test_r15_unread_rejection(slow_requestor):
    from gateway.dicom.net.association_failure import rejected, why_no_association

    assert "if not socket._is_connected:" in source(ACSE._negotiate_as_requestor), \
        pin("the requestor no longer checks the connection before reading the answer (the race R15 covers)")
    ae = AE(ae_title="EDGE")
    ae.add_requested_context("1.2.840.10008.1.1")
    port = _rejecting_server()
    assoc = ae.associate("127.0.0.1", port, ae_title="NOSUCHAE")
    assert not assoc.is_established and not assoc.is_rejected, pin("the race no longer loses the rejection")
    assert pynetdicom_patches.unread_rejection(assoc) == (0x01, 0x01, 0x07), pin("the RJ is not in to_user_queue")
    assert rejected(assoc) == (0x01, 0x01, 0x07)
    line = why_no_association(assoc, f"NOSUCHAE@127.0.0.1:{port}", "127.0.0.1", port, 5)
    assert line.startswith(f"association rejected by NOSUCHAE@127.0.0.1:{port}: ") and "called AE title" in line, line


def test_r16_end_association_wait():
    assert "receive_pdu(wait=True, timeout=self.acse_timeout)" in source(ACSE._negotiate_as_requestor), \
        pin("the requestor no longer waits for the A-ASSOCIATE answer on the DUL's queue")
    assert "elif rsp is None:" in source(ACSE._negotiate_as_requestor), pin("None is no longer the ACSE timeout")
    assoc = _association()
    pynetdicom_patches.end_association_wait(assoc)
    assert assoc.dul.receive_pdu(wait=True, timeout=30) is None, pin("the waiter did not get None at once")


def test_r17_unread_abort(slow_requestor):
    from gateway.dicom.net.association_failure import aborted_by_peer, rejected, why_no_association

    ae = AE(ae_title="FOO")
    ae.add_requested_context("1.2.840.10008.1.1")
    port = _rejecting_server(result=0x00, source=0x00, diagnostic=0x00, pdu_type=0x07)  # A-ABORT, service user
    assoc = ae.associate("127.0.0.1", port, ae_title="SHY")
    assert not assoc.is_established and not assoc.is_rejected
    assert pynetdicom_patches.unread_abort(assoc), pin("the peer's A-ABORT is not in to_user_queue")
    assert aborted_by_peer(assoc) and rejected(assoc) is None
    line = why_no_association(assoc, f"SHY@127.0.0.1:{port}", "127.0.0.1", port, 5)
    assert line == f"no association with SHY@127.0.0.1:{port}: it aborted the association request (A-ABORT)", line
