"""The receive fast path at the DICOM upper layer: raw sockets against the real service.

The requestor here is hand-driven (A-ASSOCIATE-RQ encoded with pynetdicom's PDU classes, every
other PDU built and parsed byte by byte), because the cases under test are the ones a well-behaved
library never produces: P-DATA on a context that was not accepted, a release in the middle of a
data set, an unknown PDU type, a tiny maximum PDU length. The gateway must answer each as PS3.8
says and keep no half-received object.
"""

from __future__ import annotations

import select
import shutil
import socket
import sqlite3
import struct
import subprocess
import time
from io import BytesIO
from pathlib import Path

import pdu_bytes
import pydicom
import pytest
from datasets import make_ct
from dicom_bytes import dataset_bytes, file_dataset_bytes, indexed
from peers import free_port, require, wait_until
from test_print import imager, print_config  # noqa: F401 - the imager fixture
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless, MRImageStorage
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

    def associate_raw(self, request: bytes) -> tuple[int, bytes]:
        """Send a hand-built A-ASSOCIATE-RQ; the answer's (PDU type, body). An A-ASSOCIATE-AC is
        parsed into accepted/results."""
        self.send(request)
        got = self.read_pdu()
        assert got is not None, "connection closed without an answer to the A-ASSOCIATE-RQ"
        if got[0] == ASSOCIATE_AC:
            self._parse_ac(got[1])
        return got

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


# -- (j) both receive paths: what is refused, and how -------------------------------------------

# Proposing Storage Commitment besides storage sends the association to pynetdicom's path.
PATHS = {"fast": [], "pynetdicom": [(5, STORAGE_COMMITMENT_PUSH, [ImplicitVRLittleEndian])]}


def _contexts(path: str, contexts=CT_CONTEXTS):
    return list(contexts) + PATHS[path]


def _check_path(gw, path: str, calling: str = "STORESCU") -> None:
    # Without this a test meant for pynetdicom's path could pass on the fast path (and back).
    assert _served_by_fast_path(gw, calling) == (path == "fast"), path


def _no_dead_threads(gw) -> None:
    assert " died: " not in gw.log and "Traceback" not in gw.log, gw.log[-3000:]


@pytest.mark.parametrize("path", PATHS)
def test_nul_padded_ae_titles_are_read_up_to_the_first_nul(gateway_factory, requestors, tmp_path, path):
    """Issue 14 item 6: called EDGE+12 NUL, calling STORESCU+NULs, as a widely installed viewer
    sends them; DCMTK and Orthanc read up to the first NUL and store."""
    gw = gateway_factory()
    ds, body = _ct(tmp_path)
    r = requestors(gw.port)
    pdu_type, _ = r.associate_raw(pdu_bytes.associate_rq(b"EDGE" + b"\x00" * 12, b"STORESCU" + b"\x00" * 8,
                                                         pdu_bytes.standard_items(_contexts(path))))
    assert pdu_type == ASSOCIATE_AC
    assert r.accepted[3] == ExplicitVRLittleEndian
    r.send_command(3, store_rq(1, ds.SOPInstanceUID))
    r.send_data(3, body)
    assert r.read_response()[0].Status == 0x0000
    r.release()
    _check_path(gw, path)
    assert ds.SOPInstanceUID in indexed(gw.buffer)
    db = sqlite3.connect(f"file:{gw.buffer / 'index.sqlite'}?mode=ro", uri=True)
    try:
        (calling,) = db.execute("SELECT calling_ae FROM instances WHERE sop_uid = ?", (ds.SOPInstanceUID,)).fetchone()
    finally:
        db.close()
    assert calling == "STORESCU"
    _no_dead_threads(gw)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("called,calling,reason,logged", [
    (b"EDGE" + b"\x00" * 12, b"NOBODY\x00\x01" + b"\x00" * 8, 3, r"'NOBODY\x00\x01"),
    (b"ELSEWHERE\x00" + b" " * 6, b"STORESCU" + b" " * 8, 7, r"'ELSEWHERE\x00"),
    (b"\x00" * 16, b"STORESCU" + b" " * 8, 7, r"'\x00\x00"),
], ids=["calling-unknown", "called-unknown", "called-all-nul"])
def test_policy_refusal_is_an_associate_rj_with_its_reason(gateway_factory, requestors, path, called, calling,
                                                         reason, logged):
    """Item 6: a refusal by policy is A-ASSOCIATE-RJ rejected-permanent, service-user, with the
    PS3.8 9.3.4 reason (3 calling AE, 7 called AE), never a bare abort; the log shows the title
    as received, NULs and control bytes visible."""
    gw = gateway_factory()
    r = requestors(gw.port)
    pdu_type, body = r.associate_raw(pdu_bytes.associate_rq(called, calling, pdu_bytes.standard_items(_contexts(path))))
    assert pdu_type == ASSOCIATE_RJ, f"PDU type 0x{pdu_type:02X}"
    assert tuple(body[1:4]) == (1, 1, reason)
    r.expect_eof()
    wait_until(lambda: logged in gw.log, 10, what="the refusal logged with the escaped title")
    _still_serving(gw, requestors)
    _no_dead_threads(gw)


@pytest.mark.parametrize("path", PATHS)
def test_peer_host_is_enforced_when_given(gateway_factory, requestors, tmp_path, path):
    """Item 11: peers.*.host, when the config gives it, is checked; a known title from another
    address is rejected as a calling AE not recognised (1/1/3), with a log line saying why."""
    gw = gateway_factory({"peers": {"storescu": {"ae_title": "STORESCU", "host": "127.0.0.2"}}})
    request = pdu_bytes.associate_rq(pdu_bytes.title("EDGE"), pdu_bytes.title("STORESCU"),
                                     pdu_bytes.standard_items(_contexts(path)))
    r = requestors(gw.port)  # from 127.0.0.1
    pdu_type, body = r.associate_raw(request)
    assert (pdu_type, tuple(body[1:4])) == (ASSOCIATE_RJ, (1, 1, 3))
    assert "is configured for host 127.0.0.2 only" in gw.log
    # From the configured address the same request is accepted.
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=IO_TIMEOUT, source_address=("127.0.0.2", 0))
    try:
        sock.sendall(request)
        assert sock.recv(1)[0] == ASSOCIATE_AC
    finally:
        sock.close()


def _malformed_requests():
    ct = (CTImageStorage, [ExplicitVRLittleEndian])
    app = pdu_bytes.item(0x10, pdu_bytes.APPLICATION_CONTEXT.encode())
    ui = pdu_bytes.user_information()
    good_cx = pdu_bytes.presentation_context(1, VERIFICATION, [ImplicitVRLittleEndian])
    lying_cx = pdu_bytes.presentation_context(3, *ct)
    lying_cx = lying_cx[:2] + struct.pack(">H", len(lying_cx) + 40) + lying_cx[4:]
    return {
        "even-context-id": app + good_cx + pdu_bytes.presentation_context(2, *ct) + ui,
        "zero-context-id": app + pdu_bytes.presentation_context(0, *ct) + ui,
        "no-transfer-syntax": app + good_cx + pdu_bytes.presentation_context(3, CTImageStorage, []) + ui,
        "no-abstract-syntax": app + pdu_bytes.presentation_context(3, None, [ExplicitVRLittleEndian]) + ui,
        "user-identity-larger-than-its-pdu": app + good_cx + pdu_bytes.user_information(
            extra=pdu_bytes.user_identity(b"user", primary_length=4000)),
        "item-length-lies": app + good_cx + lying_cx + ui,
        "duplicate-context-id": app + good_cx + good_cx + ui,
    }


MALFORMED = _malformed_requests()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_associate_rq_is_aborted_at_once(gateway_factory, requestors, path, case):
    """Item 14: PS3.8 9.2 (Sta2, invalid PDU: AA-1): an A-ABORT at once, not silence until the
    handshake timer (here 60 s, far above this side's 10 s read bound); no thread dies."""
    gw = gateway_factory({"timers": {"handshake_s": 60.0}})
    items = MALFORMED[case]
    if path == "pynetdicom":
        # A commitment context right after the application context item: pynetdicom's request.
        app = len(pdu_bytes.item(0x10, pdu_bytes.APPLICATION_CONTEXT.encode()))
        items = items[:app] + pdu_bytes.presentation_context(5, STORAGE_COMMITMENT_PUSH, [ImplicitVRLittleEndian]) \
            + items[app:]
    r = requestors(gw.port)
    r.sock.settimeout(10.0)
    pdu_type, body = r.associate_raw(pdu_bytes.associate_rq(pdu_bytes.title("EDGE"), pdu_bytes.title("STORESCU"),
                                                            items))
    assert pdu_type == ABORT, f"PDU type 0x{pdu_type:02X}"
    assert body[2] == 2  # service provider
    wait_until(lambda: "malformed A-ASSOCIATE-RQ" in gw.log, 10, what="the abort logged")
    _still_serving(gw, requestors)
    _no_dead_threads(gw)


@pytest.mark.parametrize("path", PATHS)
def test_c_store_on_the_verification_context_is_refused_and_not_kept(gateway_factory, requestors, tmp_path,
                                                                     path):
    """Item 15 (PS3.7 9.1.1.1.2): the Affected SOP Class of an operation is its context's
    abstract syntax. A C-STORE of a CT on the Verification context: 0211 (Verification has no
    C-STORE); a CT on an MR context: 0122. Nothing is kept; the association goes on."""
    gw = gateway_factory()
    ds, body = _ct(tmp_path)
    r = requestors(gw.port)
    r.associate(_contexts(path, CT_CONTEXTS + [(7, MRImageStorage, [ExplicitVRLittleEndian])]))
    assert set(r.accepted) >= {1, 3, 7}
    r.send_command(1, store_rq(1, ds.SOPInstanceUID))
    r.send_data(1, body)
    rsp, _ = r.read_response()
    assert (rsp.CommandField, rsp.Status) == (0x8001, 0x0211)
    r.send_command(7, store_rq(2, ds.SOPInstanceUID))
    r.send_data(7, body)
    rsp, _ = r.read_response()
    assert (rsp.CommandField, rsp.Status) == (0x8001, 0x0122)
    r.send_command(3, echo_rq(3))  # and an echo on a storage context
    rsp, _ = r.read_response()
    assert (rsp.CommandField, rsp.Status) == (0x8030, 0x0211)
    assert indexed(gw.buffer) == {}
    # The right context still stores.
    r.send_command(3, store_rq(4, ds.SOPInstanceUID))
    r.send_data(3, body)
    assert r.read_response()[0].Status == 0x0000
    r.release()
    _check_path(gw, path)
    assert set(indexed(gw.buffer)) == {ds.SOPInstanceUID}
    assert not list((gw.buffer / "incoming").iterdir())


def _stray_meta_prefix() -> bytes:
    """(0002,0000) and (0002,0010) = JPEG-LS Lossless, Explicit VR LE, as the field saw them."""
    ts = pdu_bytes.uid_bytes(JPEGLSLossless)
    tsu = struct.pack("<HH2sH", 0x0002, 0x0010, b"UI", len(ts)) + ts
    return struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(tsu)) + tsu


@pytest.mark.parametrize("path", PATHS)
def test_group_0002_inside_the_data_set_is_dropped_and_the_meta_is_the_associations(
        gateway_factory, requestors, tmp_path, path):
    """Item 4: a data set that begins with (0002,0000) and (0002,0010) = JPEG-LS Lossless,
    followed by an ordinary CT, on an Explicit VR LE context: stored as Explicit VR LE (as DCMTK
    storescp and Orthanc do), pixel data intact, the dropped tags logged with the SOP Instance UID."""
    gw = gateway_factory()
    ds, body = _ct(tmp_path)
    r = requestors(gw.port)
    r.associate(_contexts(path))
    assert r.accepted[3] == ExplicitVRLittleEndian
    r.send_command(3, store_rq(1, ds.SOPInstanceUID))
    r.send_data(3, _stray_meta_prefix() + body)
    assert r.read_response()[0].Status == 0x0000
    r.release()
    _check_path(gw, path)
    stored = indexed(gw.buffer)[ds.SOPInstanceUID]
    assert dataset_bytes(stored.read_bytes()) == body  # the CT exactly as sent, nothing before it
    back = pydicom.dcmread(stored)
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert back.PixelData == ds.PixelData
    assert all(el.tag.group != 0x0002 for el in back)
    db = sqlite3.connect(f"file:{gw.buffer / 'index.sqlite'}?mode=ro", uri=True)
    try:
        (ts,) = db.execute("SELECT transfer_syntax FROM instances WHERE sop_uid = ?", (ds.SOPInstanceUID,)).fetchone()
    finally:
        db.close()
    assert ts == ExplicitVRLittleEndian
    assert f"C-STORE {ds.SOPInstanceUID} from STORESCU: data set began with file meta element(s) " \
           "(0002,0000), (0002,0010); dropped" in gw.log
    dcmdump = shutil.which("dcmdump")
    if dcmdump:  # DCMTK reads it back the same way
        out = subprocess.run([dcmdump, "-M", str(stored)], capture_output=True, text=True, timeout=30).stdout
        assert "=LittleEndianExplicit" in out and "JPEGLS" not in out
    assert not list((gw.buffer / "incoming").iterdir())


RETIRED_US = ["1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.3"]
PRIVATE_CLASS = "1.2.826.0.1.3680043.9.3811.99.1"


def test_retired_and_configured_private_storage_classes_are_stored(gateway_factory, tmp_path):
    """Item 7: Ultrasound Image Storage (Retired) and Ultrasound Multi-frame Image Storage
    (Retired), as ultrasound machines in service propose them, and a private class named in
    [storage] extra_sop_classes: accepted, Success, stored."""
    gw = gateway_factory({"storage": {"extra_sop_classes": [PRIVATE_CLASS]}})
    files = []
    for i, sop_class in enumerate(RETIRED_US + [PRIVATE_CLASS]):
        path = tmp_path / f"{i}.dcm"
        ds = make_ct(path, seed=i)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.save_as(path, enforce_file_format=True)
        files.append((path, ds))
    # DCMTK's storescu as the ultrasound machine, proposing exactly the files' classes (-R); it
    # knows no private class, so that one goes with pynetdicom.
    storescu = require("storescu", "dcmtk")
    out = subprocess.run([storescu, "-v", "-R", "-aet", "STORESCU", "-aec", "EDGE", "127.0.0.1", str(gw.port),
                          *[str(p) for p, _ in files[:2]]], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert text.count("Received Store Response (Success)") == 2, text
    ae = AE(ae_title="STORESCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = IO_TIMEOUT
    ae.add_requested_context(PRIVATE_CLASS, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", gw.port, ae_title="EDGE")
    try:
        assert assoc.is_established
        assert assoc.send_c_store(files[2][0]).Status == 0x0000
    finally:
        assoc.release()
    stored = indexed(gw.buffer)
    for path, ds in files:
        assert file_dataset_bytes(stored[ds.SOPInstanceUID]) == file_dataset_bytes(path)


@pytest.mark.parametrize("path", PATHS)
def test_a_private_class_not_configured_is_rejected_at_negotiation(gateway_factory, requestors, path):
    gw = gateway_factory()
    r = requestors(gw.port)
    r.associate(_contexts(path, CT_CONTEXTS + [(7, PRIVATE_CLASS, [ExplicitVRLittleEndian]),
                                               (9, RETIRED_US[0], [ExplicitVRLittleEndian])]))
    assert r.results[7] == 3 and r.results[9] == 0  # abstract syntax not supported; retired accepted
    r.release()


def test_group_0002_inside_the_data_set_reaches_the_pacs_as_explicit_vr_le(gateway_factory, orthanc_factory,
                                                                          requestors, tmp_path):
    """Item 4 with the real forward: the object acknowledged is the object Orthanc receives and
    parses, Explicit VR LE with its pixel data, not a dead letter announced as JPEG-LS."""
    port = free_port()
    orthanc = orthanc_factory(port)
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": "TESTPACS", "port": orthanc.dicom,
                                                    "retry_initial_s": 0.2, "retry_max_s": 1.0}}}, port=port)
    ds, body = _ct(tmp_path)
    r = requestors(gw.port)
    r.associate(CT_CONTEXTS)
    r.send_command(3, store_rq(1, ds.SOPInstanceUID))
    r.send_data(3, _stray_meta_prefix() + body)
    assert r.read_response()[0].Status == 0x0000
    r.release()
    wait_until(lambda: orthanc.lookup(ds.SOPInstanceUID), 60, what="the object at the PACS")
    received = pydicom.dcmread(BytesIO(orthanc.instance_file(ds.SOPInstanceUID)))
    assert received.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert received.PixelData == ds.PixelData


GRAYSCALE_PRINT_META = "1.2.840.10008.5.1.1.9"


def test_print_association_with_nul_padded_titles_malformed_and_refused(gateway_factory, imager, requestors):
    """Items 6 and 14 on a print association (pynetdicom's path, as a print client opens it):
    NUL-padded titles are accepted and served; an unknown caller gets A-ASSOCIATE-RJ 1/1/3; a
    print context without a transfer syntax (held for 25 s and more in the field) an A-ABORT at once."""
    gw = gateway_factory(dict(print_config(imager.url), timers={"handshake_s": 60.0}))
    print_cx = [(1, VERIFICATION, [ImplicitVRLittleEndian]), (3, GRAYSCALE_PRINT_META, [ImplicitVRLittleEndian])]
    r = requestors(gw.port)
    pdu_type, _ = r.associate_raw(pdu_bytes.associate_rq(b"EDGE" + b"\x00" * 12, b"PRINTSCU" + b"\x00" * 8,
                                                         pdu_bytes.standard_items(print_cx)))
    assert pdu_type == ASSOCIATE_AC and set(r.accepted) == {1, 3}
    assert r.echo(1, 1).Status == 0x0000
    r.release()

    r = requestors(gw.port)
    pdu_type, body = r.associate_raw(pdu_bytes.associate_rq(b"EDGE" + b"\x00" * 12, b"NOBODY" + b"\x00" * 10,
                                                            pdu_bytes.standard_items(print_cx)))
    assert (pdu_type, tuple(body[1:4])) == (ASSOCIATE_RJ, (1, 1, 3))

    r = requestors(gw.port)
    r.sock.settimeout(10.0)  # far below the 60 s handshake timer
    items = (pdu_bytes.item(0x10, pdu_bytes.APPLICATION_CONTEXT.encode())
             + pdu_bytes.presentation_context(1, GRAYSCALE_PRINT_META, []) + pdu_bytes.user_information())
    pdu_type, body = r.associate_raw(pdu_bytes.associate_rq(pdu_bytes.title("EDGE"), pdu_bytes.title("PRINTSCU"),
                                                            items))
    assert pdu_type == ABORT and body[2] == 2
    _still_serving(gw, requestors)
    _no_dead_threads(gw)
