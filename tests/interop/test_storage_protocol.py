"""The receive fast path at the DICOM upper layer: raw sockets against the real service.

The requestor here is hand-driven (A-ASSOCIATE-RQ encoded with pynetdicom's PDU classes, every
other PDU built and parsed byte by byte), because the cases under test are the ones a well-behaved
library never produces: P-DATA on a context that was not accepted, a release in the middle of a
data set, an unknown PDU type, a tiny maximum PDU length. The gateway must answer each as PS3.8
says and keep no half-received object.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct
from dicom_bytes import dataset_bytes, file_dataset_bytes, indexed
from peers import wait_until
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dimse_messages import C_ECHO_RQ, C_FIND_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, ImplementationClassUIDNotification, MaximumLengthNotification
from pynetdicom.presentation import PresentationContext

pytestmark = pytest.mark.interop

VERIFICATION = "1.2.840.10008.1.1"
STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"

ASSOCIATE_AC, ASSOCIATE_RJ, P_DATA, RELEASE_RQ, RELEASE_RP, ABORT = 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
COMMAND, LAST = 0x01, 0x02

# Every blocking read on the test's side is bounded by this: a gateway that never answers fails
# the test instead of hanging it.
IO_TIMEOUT = 20.0


# -- the hand-driven requestor -----------------------------------------------------------------

def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BxI", pdu_type, len(body)) + body


def _pdv(context_id: int, control: int, data: bytes) -> bytes:
    return struct.pack(">IBB", len(data) + 2, context_id, control) + data


def _command(message, primitive) -> bytes:
    message.primitive_to_message(primitive)
    return encode(message.command_set, True, True)


def echo_rq(message_id: int) -> bytes:
    p = C_ECHO()
    p.MessageID = message_id
    p.AffectedSOPClassUID = VERIFICATION
    return _command(C_ECHO_RQ(), p)


def store_rq(message_id: int, sop_uid: str, sop_class: str = CTImageStorage) -> bytes:
    p = C_STORE()
    p.MessageID = message_id
    p.AffectedSOPClassUID = sop_class
    p.AffectedSOPInstanceUID = sop_uid
    p.Priority = 0
    p.DataSet = BytesIO(b"")  # only makes the command say "a data set follows"
    return _command(C_STORE_RQ(), p)


def find_rq(message_id: int) -> bytes:
    p = C_FIND()
    p.MessageID = message_id
    p.AffectedSOPClassUID = STUDY_ROOT_FIND
    p.Priority = 0
    p.Identifier = BytesIO(b"")
    return _command(C_FIND_RQ(), p)


class Requestor:
    """One raw connection to the gateway, speaking the upper layer by hand."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.accepted: dict[int, str] = {}  # context ID -> transfer syntax
        self.results: dict[int, int] = {}  # context ID -> A-ASSOCIATE-AC result

    def close(self) -> None:
        self.sock.close()

    # framing
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _exact(self, n: int) -> bytes | None:
        out = b""
        while len(out) < n:
            got = self.sock.recv(n - len(out))
            if not got:
                if out:
                    raise AssertionError(f"connection closed inside a PDU ({len(out)} of {n} bytes)")
                return None
            out += got
        return out

    def read_pdu(self) -> tuple[int, bytes] | None:
        """(type, body) of the next PDU, or None at EOF."""
        header = self._exact(6)
        if header is None:
            return None
        pdu_type, length = struct.unpack(">BxI", header)
        body = self._exact(length) if length else b""
        assert body is not None, "connection closed after a PDU header"
        return pdu_type, body

    def expect_abort(self) -> tuple[int, int]:
        """The next PDU is an A-ABORT and the gateway then closes: its (source, reason)."""
        got = self.read_pdu()
        assert got is not None, "connection closed without an A-ABORT"
        pdu_type, body = got
        assert pdu_type == ABORT, f"expected A-ABORT, got PDU type 0x{pdu_type:02X}"
        assert len(body) == 4 and body[:2] == b"\x00\x00"
        self.expect_eof()
        return body[2], body[3]

    def expect_eof(self) -> None:
        try:
            rest = self.sock.recv(65536)
        except ConnectionResetError:
            rest = b""
        assert rest == b"", f"expected the connection closed, got {rest[:32]!r}"

    # association
    def associate(self, contexts: list[tuple[int, str, list[str]]], calling: str = "STORESCU",
                  called: str = "EDGE", max_pdu: int = 16384) -> None:
        primitive = A_ASSOCIATE()
        primitive.application_context_name = "1.2.840.10008.3.1.1.1"
        primitive.calling_ae_title = calling
        primitive.called_ae_title = called
        proposed = []
        for context_id, abstract, syntaxes in contexts:
            cx = PresentationContext()
            cx.context_id = context_id
            cx.abstract_syntax = abstract
            cx.transfer_syntax = syntaxes
            proposed.append(cx)
        primitive.presentation_context_definition_list = proposed
        max_length = MaximumLengthNotification()
        max_length.maximum_length_received = max_pdu
        class_uid = ImplementationClassUIDNotification()
        class_uid.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.1"
        primitive.user_information = [max_length, class_uid]
        rq = A_ASSOCIATE_RQ()
        rq.from_primitive(primitive)
        self.send(rq.encode())
        got = self.read_pdu()
        assert got is not None, "connection closed instead of an A-ASSOCIATE-AC"
        pdu_type, body = got
        assert pdu_type == ASSOCIATE_AC, f"expected A-ASSOCIATE-AC, got PDU type 0x{pdu_type:02X}"
        self._parse_ac(body)

    def _parse_ac(self, body: bytes) -> None:
        # PS3.8 9.3.3: version, reserved, 2 x 16 bytes of AE titles, 32 reserved, then items.
        assert body[:2] == b"\x00\x01"
        pos = 68
        while pos < len(body):
            item_type, item_length = body[pos], struct.unpack_from(">H", body, pos + 2)[0]
            item = body[pos + 4:pos + 4 + item_length]
            if item_type == 0x21:  # presentation context (AC)
                context_id, result = item[0], item[2]
                self.results[context_id] = result
                if result == 0:
                    assert item[4] == 0x40  # transfer syntax sub-item
                    ts_length = struct.unpack_from(">H", item, 6)[0]
                    self.accepted[context_id] = item[8:8 + ts_length].rstrip(b"\x00 ").decode()
            pos += 4 + item_length

    def release(self) -> None:
        self.send(_pdu(RELEASE_RQ, b"\x00\x00\x00\x00"))
        got = self.read_pdu()
        assert got is not None and got[0] == RELEASE_RP, f"expected A-RELEASE-RP, got {got!r}"
        self.expect_eof()

    # DIMSE
    def send_command(self, context_id: int, command: bytes, fragment: int = 0) -> None:
        fragment = fragment or len(command)
        for pos in range(0, len(command), fragment):
            last = pos + fragment >= len(command)
            self.send(_pdu(P_DATA, _pdv(context_id, COMMAND | (LAST if last else 0),
                                        command[pos:pos + fragment])))

    def send_data(self, context_id: int, data: bytes, fragment: int = 16384, last: bool = True) -> None:
        for pos in range(0, len(data), fragment):
            is_last = last and pos + fragment >= len(data)
            self.send(_pdu(P_DATA, _pdv(context_id, LAST if is_last else 0, data[pos:pos + fragment])))

    def read_response(self) -> tuple[Dataset, list[int]]:
        """The next response command set, decoded by pydicom, and the body lengths of the P-DATA
        PDUs it came in."""
        command, lengths = b"", []
        while True:
            got = self.read_pdu()
            assert got is not None, "connection closed while waiting for a response"
            pdu_type, body = got
            assert pdu_type == P_DATA, f"expected P-DATA-TF, got PDU type 0x{pdu_type:02X} {body!r}"
            lengths.append(len(body))
            pos = 0
            while pos < len(body):
                item_length, _context_id, control = struct.unpack_from(">IBB", body, pos)
                assert control & COMMAND, "a data set fragment in a response without a data set"
                command += body[pos + 6:pos + 4 + item_length]
                pos += 4 + item_length
                if control & LAST:
                    assert pos == len(body), "bytes after the last fragment of the response"
                    return read_dataset(BytesIO(command), is_implicit_VR=True, is_little_endian=True), lengths

    def echo(self, context_id: int, message_id: int) -> Dataset:
        self.send_command(context_id, echo_rq(message_id))
        rsp, _ = self.read_response()
        assert rsp.CommandField == 0x8030 and rsp.MessageIDBeingRespondedTo == message_id
        return rsp


@pytest.fixture
def requestors():
    """Open Requestor connections; every one is closed at the end of the test."""
    opened: list[Requestor] = []

    def make(port: int) -> Requestor:
        r = Requestor(port)
        opened.append(r)
        return r

    yield make
    for r in opened:
        r.close()


def _ct(tmp_path: Path, name: str = "ct.dcm", **kw) -> tuple[Dataset, bytes]:
    """A valid CT instance and its encoded data set (the bytes after its file meta)."""
    path = tmp_path / name
    ds = make_ct(path, **kw)
    return ds, file_dataset_bytes(path)


def _leftovers(gw) -> list[Path]:
    return list((gw.buffer / "incoming").iterdir()) + [p for p in (gw.buffer / "objects").rglob("*") if p.is_file()]


def _served_by_fast_path(gw, calling: str) -> bool:
    # Only the fast path's acceptor logs this line; pynetdicom's path does not.
    return f"association from {calling} (127.0.0.1) accepted:" in gw.log


def _still_serving(gw, requestors) -> None:
    r = requestors(gw.port)
    r.associate([(1, VERIFICATION, [ImplicitVRLittleEndian])], calling="ECHOSCU")
    assert r.echo(1, 1).Status == 0x0000
    r.release()
    assert gw.proc.poll() is None, "the service died"


CT_CONTEXTS = [(1, VERIFICATION, [ImplicitVRLittleEndian]),
               (3, CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])]


# -- (a) the normal exchange -------------------------------------------------------------------

@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_echo_store_release_by_hand(gateway_factory, requestors, tmp_path, implicit):
    gw = gateway_factory()
    ts = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds, body = _ct(tmp_path, implicit=implicit)
    r = requestors(gw.port)
    r.associate([(1, VERIFICATION, [ImplicitVRLittleEndian]), (3, CTImageStorage, [ts])])
    assert r.accepted == {1: ImplicitVRLittleEndian, 3: ts}

    echo = r.echo(1, 1)
    assert echo.Status == 0x0000
    assert echo.CommandDataSetType == 0x0101
    assert echo.AffectedSOPClassUID == VERIFICATION

    r.send_command(3, store_rq(2, ds.SOPInstanceUID))
    r.send_data(3, body)
    rsp, _ = r.read_response()
    assert rsp.CommandField == 0x8001
    assert rsp.MessageIDBeingRespondedTo == 2
    assert rsp.CommandDataSetType == 0x0101
    assert rsp.Status == 0x0000, rsp
    assert rsp.AffectedSOPClassUID == CTImageStorage
    assert rsp.AffectedSOPInstanceUID == ds.SOPInstanceUID
    assert "ErrorComment" not in rsp

    assert r.echo(1, 3).Status == 0x0000  # the association is still usable after a store
    r.release()

    assert _served_by_fast_path(gw, "STORESCU")
    stored = indexed(gw.buffer)[ds.SOPInstanceUID]
    blob = stored.read_bytes()
    assert dataset_bytes(blob) == body  # stored exactly as received
    meta = pydicom.dcmread(stored, stop_before_pixels=True).file_meta
    assert meta.SourceApplicationEntityTitle == "STORESCU"
    assert meta.TransferSyntaxUID == ts
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert meta.MediaStorageSOPClassUID == CTImageStorage
    assert not list((gw.buffer / "incoming").iterdir())


def test_fragmented_command_and_several_pdvs_per_pdu(gateway_factory, requestors, tmp_path):
    """Fragmentation is the sender's choice (PS3.8 E.2): a command in 7-byte pieces, and command and
    data set fragments sharing one P-DATA-TF."""
    gw = gateway_factory()
    first, first_body = _ct(tmp_path, "a.dcm", seed=1)
    second, second_body = _ct(tmp_path, "b.dcm", seed=2)
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS)
    r.send_command(3, store_rq(1, first.SOPInstanceUID), fragment=7)
    r.send_data(3, first_body, fragment=1000)
    assert r.read_response()[0].Status == 0x0000
    # Whole message in one PDU: last command fragment, then two data set fragments.
    half = len(second_body) // 2
    r.send(_pdu(P_DATA, _pdv(3, COMMAND | LAST, store_rq(2, second.SOPInstanceUID))
                + _pdv(3, 0, second_body[:half]) + _pdv(3, LAST, second_body[half:])))
    rsp, _ = r.read_response()
    assert (rsp.MessageIDBeingRespondedTo, rsp.Status) == (2, 0x0000)
    r.release()
    stored = indexed(gw.buffer)
    assert file_dataset_bytes(stored[first.SOPInstanceUID]) == first_body
    assert file_dataset_bytes(stored[second.SOPInstanceUID]) == second_body


def test_peer_without_store_permission_gets_0124_on_the_fast_path(gateway_factory, requestors, tmp_path):
    gw = gateway_factory()
    ds, body = _ct(tmp_path)
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS, calling="READONLY")
    r.send_command(3, store_rq(1, ds.SOPInstanceUID))
    r.send_data(3, body)
    rsp, _ = r.read_response()
    assert rsp.Status == 0x0124
    assert rsp.ErrorComment == "READONLY may not store"
    r.release()
    assert indexed(gw.buffer) == {}
    assert _leftovers(gw) == []


# -- (b)-(d) protocol errors: A-ABORT, close, nothing kept -------------------------------------

@pytest.mark.parametrize("context_id", [3, 5], ids=["proposed-but-rejected", "never-proposed"])
def test_p_data_on_a_context_not_accepted_is_aborted(gateway_factory, requestors, context_id):
    gw = gateway_factory()
    r = requestors(gw.port)
    # Context 3 proposes CT with a transfer syntax the gateway does not accept: rejected (4).
    r.associate([(1, VERIFICATION, [ImplicitVRLittleEndian]), (3, CTImageStorage, ["1.2.3.4.5.6"])])
    assert r.results == {1: 0, 3: 4}
    assert r.echo(1, 1).Status == 0x0000  # the association works on the accepted context
    r.send_command(context_id, echo_rq(2))
    source, _reason = r.expect_abort()
    assert source == 2  # service provider
    assert "which was not accepted" in gw.log
    _still_serving(gw, requestors)


@pytest.mark.parametrize("how", ["release-rq", "abort", "close"])
def test_association_ending_mid_data_set_keeps_nothing(gateway_factory, requestors, tmp_path, how):
    gw = gateway_factory()
    ds, body = _ct(tmp_path, rows=256, cols=256)  # 128 KB
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS)
    r.send_command(3, store_rq(1, ds.SOPInstanceUID))
    r.send_data(3, body[:len(body) // 2], last=False)
    # The spool file exists: without this the "nothing left" checks below could not fail.
    wait_until(lambda: list((gw.buffer / "incoming").iterdir()), 20, interval=0.02,
               what="the data set being spooled")
    if how == "release-rq":
        r.send(_pdu(RELEASE_RQ, b"\x00\x00\x00\x00"))
        # A release is valid only between messages (PS3.8 9.2 state table): unexpected PDU.
        assert r.expect_abort() == (2, 0x02)
        # The gateway deletes the spool file before it closes the connection.
        assert _leftovers(gw) == []
    else:
        if how == "abort":
            r.send(_pdu(ABORT, b"\x00\x00\x00\x00"))
        r.close()
        wait_until(lambda: not _leftovers(gw), 20, what="the partial data set deleted")
    assert indexed(gw.buffer) == {}
    assert _leftovers(gw) == []
    _still_serving(gw, requestors)


@pytest.mark.parametrize("pdu_type", [0x09, 0x00, 0xFF], ids=lambda t: f"0x{t:02X}")
def test_unknown_pdu_type_is_aborted_as_unrecognised(gateway_factory, requestors, pdu_type):
    gw = gateway_factory()
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS)
    r.send(_pdu(pdu_type, b"\x00\x01\x02\x03"))
    assert r.expect_abort() == (2, 0x01)  # service provider, unrecognised PDU
    _still_serving(gw, requestors)


def test_a_second_associate_rq_is_aborted_as_unexpected(gateway_factory, requestors):
    gw = gateway_factory()
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS)
    r.send(_pdu(0x01, b"\x00\x01\x00\x00" + b" " * 64))
    assert r.expect_abort() == (2, 0x02)  # a known PDU type in the wrong state
    _still_serving(gw, requestors)


def _peak_rss_kb(gw) -> int:
    with open(f"/proc/{gw.proc.pid}/status") as fh:
        return int(next(line.split()[1] for line in fh if line.startswith("VmHWM")))


def test_endless_command_set_does_not_grow_memory(gateway_factory, requestors):
    """A command set is a few hundred bytes. A peer that keeps sending command fragments, each PDU
    within the negotiated maximum, must not be able to make the box swap (the same threat as the
    hostile PDU length in test_store_faults)."""
    gw = gateway_factory()
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS)
    before = _peak_rss_kb(gw)
    fragment = _pdu(P_DATA, _pdv(3, COMMAND, b"\x00" * (131072 - 6)))  # the gateway's ae.max_pdu
    try:
        for _ in range(1024):  # 128 MB of "command", never the last fragment
            r.send(fragment)
        r.send(_pdu(RELEASE_RQ, b"\x00\x00\x00\x00"))
        while r.read_pdu() is not None:
            pass
    except (BrokenPipeError, ConnectionResetError):
        pass  # the gateway gave up on the connection early: what should happen
    growth_mb = (_peak_rss_kb(gw) - before) / 1024
    assert growth_mb < 64, f"peak RSS grew by {growth_mb:.0f} MB"
    _still_serving(gw, requestors)


# -- (e) operations the fast path does not offer -----------------------------------------------

def test_c_find_on_a_storage_context_is_refused_and_the_association_survives(gateway_factory, requestors,
                                                                             tmp_path):
    gw = gateway_factory()
    ds, body = _ct(tmp_path)
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS)
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = ""
    r.send_command(3, find_rq(7))
    r.send_data(3, encode(identifier, False, True))  # the context's Explicit VR LE
    rsp, _ = r.read_response()
    assert rsp.CommandField == 0x8020  # C-FIND-RSP
    assert rsp.MessageIDBeingRespondedTo == 7
    assert rsp.Status == 0x0211  # unrecognised operation
    assert rsp.CommandDataSetType == 0x0101
    # Still usable, for both services.
    assert r.echo(1, 8).Status == 0x0000
    r.send_command(3, store_rq(9, ds.SOPInstanceUID))
    r.send_data(3, body)
    assert r.read_response()[0].Status == 0x0000
    r.release()
    assert set(indexed(gw.buffer)) == {ds.SOPInstanceUID}


# -- (f) a requestor with a tiny maximum PDU length --------------------------------------------

def test_tiny_peer_maximum_pdu_gets_responses_in_several_pdus(gateway_factory, requestors, tmp_path):
    gw = gateway_factory()
    ds, body = _ct(tmp_path)
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS, max_pdu=64)
    r.send_command(3, store_rq(1, ds.SOPInstanceUID))
    r.send_data(3, body)
    rsp, lengths = r.read_response()
    assert rsp.Status == 0x0000 and rsp.AffectedSOPInstanceUID == ds.SOPInstanceUID
    assert len(lengths) > 1, "the response was not split"
    assert max(lengths) <= 64, lengths
    r.send_command(1, echo_rq(2))
    echo, lengths = r.read_response()
    assert echo.Status == 0x0000 and max(lengths) <= 64
    r.release()
    assert ds.SOPInstanceUID in indexed(gw.buffer)


# -- (g), (h) timers ---------------------------------------------------------------------------

def test_inactivity_timer_aborts_an_idle_association(gateway_factory, requestors):
    gw = gateway_factory({"timers": {"inactivity_s": 1.0}})
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS)
    assert r.echo(1, 1).Status == 0x0000
    # Now idle: the gateway, not this side, must end it (reads here are bounded by IO_TIMEOUT).
    source, _reason = r.expect_abort()
    assert source == 2
    assert "nothing received for the inactivity timer" in gw.log
    _still_serving(gw, requestors)


def test_session_timer_aborts_a_busy_association(gateway_factory, requestors):
    """An association kept busy never trips the inactivity timer; the session timer (10 s, the
    smallest the config allows) still ends it."""
    gw = gateway_factory({"timers": {"session_s": 10.0}})
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS)
    deadline = time.monotonic() + 90  # liveness bound, far beyond the session time
    echoes = 0
    while True:
        assert time.monotonic() < deadline, f"no A-ABORT after {echoes} echoes"
        # Between echoes, wait for the gateway to speak first: it aborts right after a response,
        # so an echo is never sent into a connection it is closing.
        readable, _, _ = select.select([r.sock], [], [], 0.3)
        if readable:
            break
        r.send_command(1, echo_rq(echoes + 1))
        rsp, _ = r.read_response()
        assert rsp.Status == 0x0000
        echoes += 1
    assert echoes > 0
    source, _reason = r.expect_abort()
    assert source == 2
    assert "session timer (10 s) expired" in gw.log
    _still_serving(gw, requestors)


# -- (i) mixed associations go to pynetdicom ---------------------------------------------------

def test_storage_with_commitment_context_is_served_by_pynetdicom(gateway_factory, tmp_path):
    gw = gateway_factory()
    path = tmp_path / "ct.dcm"
    ds = make_ct(path)
    ae = AE(ae_title="STORESCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = IO_TIMEOUT
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(STORAGE_COMMITMENT_PUSH)
    assoc = ae.associate("127.0.0.1", gw.port, ae_title="EDGE")
    try:
        assert assoc.is_established
        accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
        assert accepted == {CTImageStorage, STORAGE_COMMITMENT_PUSH}
        rsp = assoc.send_c_store(path)
        assert rsp is not None and rsp.Status == 0x0000
    finally:
        assoc.release()
    assert not _served_by_fast_path(gw, "STORESCU")
    stored = indexed(gw.buffer)[ds.SOPInstanceUID]
    assert file_dataset_bytes(stored) == file_dataset_bytes(path)
