"""The Q/R retrieve SCP (gateway/dicom/qr_retrieve_scp.py) against real peers: DCMTK movescu to a
storescp started here, getscu, and pynetdicom as a C-MOVE SCU where the exact response fields are
checked (pending counts, Failed SOP Instance UID List, C-CANCEL)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom
import pytest
from datasets import make_series
from dicom_bytes import file_dataset_bytes, indexed
from peers import TEST_FILES, free_port, kill_group, require, storescu, wait_port, wait_until
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

pytestmark = pytest.mark.interop

# Both stored as received in Explicit VR Little Endian by storescu's default proposal.
FILES = ["CT_small.dcm", "MR_small.dcm"]


@pytest.fixture
def move_target(tmp_path):
    """DCMTK storescp as the workstation "WS" (bit-preserving, every syntax accepted), started
    with `extra` options; returns (start, folder). Every one started is killed at the end."""
    exe = require("storescp", "dcmtk")
    procs = []
    out = tmp_path / "ws"
    out.mkdir()
    port = free_port()

    def start(*extra: str):
        log = open(tmp_path / "storescp.log", "ab")
        proc = subprocess.Popen([exe, "-v", "+B", "+xa", "-aet", "WS", *extra, "-od", str(out), str(port)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        procs.append(proc)
        wait_port(port, 10, proc)
        return proc

    yield start, out, port
    for p in procs:
        kill_group(p)


def _gateway(gateway_factory, ws_port: int, archive_port: int | None = None):
    return gateway_factory({"peers": {
        # may_query: it may retrieve too (may_retrieve left out follows it)
        "ws": {"ae_title": "WS", "host": "127.0.0.1", "port": ws_port, "may_store": False, "may_query": True},
        "noret": {"ae_title": "NORET", "host": "127.0.0.1", "port": ws_port, "may_store": False},
        # May query, retrieving taken away.
        "nomove": {"ae_title": "NOMOVE", "host": "127.0.0.1", "port": ws_port, "may_store": False,
                   "may_query": True, "may_retrieve": False},
        # May retrieve, but no address in the config: not a Move Destination.
        "noaddr": {"ae_title": "NOADDR", "may_store": False, "may_query": True},
    }, "destinations": {
        # A configured destination is a Move Destination too (not forwarded to: disabled).
        "archive": {"ae_title": "ARCHIVE", "port": archive_port or free_port(), "enabled": False},
    }})


def _store(gw, files: list[Path], *flags: str) -> dict[str, Path]:
    r = storescu(gw.port, files, extra=list(flags))
    assert r.returncode == 0 and "E:" not in r.stderr + r.stdout, r.stderr
    return indexed(gw.buffer)


def _ts(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


def _study(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def _received(folder: Path) -> dict[str, Path]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in folder.iterdir()}


def _dcmtk(tool: str, gw, *args: str, aet: str = "WS") -> str:
    exe = require(tool, "dcmtk")
    r = subprocess.run([exe, "-v", "-aet", aet, "-aec", "EDGE", *args, "127.0.0.1", str(gw.port)],
                       capture_output=True, text=True, timeout=120)
    return r.stdout + r.stderr


def _new_study(tmp_path: Path, names: list[str]) -> tuple[str, list[Path]]:
    """Copies of pydicom's files (several share their UIDs) as one new study, each its own series."""
    study = generate_uid()
    out = []
    for n in names:
        ds = pydicom.dcmread(TEST_FILES / n)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID = "QR-1"
        p = tmp_path / n
        ds.save_as(p, enforce_file_format=True)
        out.append(p)
    return study, out


def test_movescu_files_arrive_as_stored(gateway_factory, move_target, tmp_path):
    start, out, port = move_target
    start()
    gw = _gateway(gateway_factory, port)
    # Explicit VR Little Endian, Big Endian, JPEG Baseline: each stored as it came.
    study, files = _new_study(tmp_path, ["CT_small.dcm", "MR_small_bigendian.dcm", "SC_rgb_jpeg_dcmtk.dcm"])
    for f, flag in zip(files, ["-xe", "-xb", "-xy"]):
        _store(gw, [f], flag)
    stored = indexed(gw.buffer)
    text = _dcmtk("movescu", gw, "-S", "-aem", "WS", "-k", "QueryRetrieveLevel=STUDY", "-k",
                  f"StudyInstanceUID={study}")
    assert "Received Final Move Response (Success)" in text, text
    uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    got = wait_until(lambda: (r := _received(out)) and len(r) == 3 and r, 10, what="the moved files at storescp")
    assert set(got) == uids
    for uid in uids:
        # Sent as stored: the data set storescp wrote (bit-preserving) is the buffer's, byte for
        # byte, in the syntax it was stored in (a decode and re-encode changes both).
        assert file_dataset_bytes(got[uid]) == file_dataset_bytes(stored[uid]), uid
        assert _ts(got[uid]) == _ts(stored[uid])
    assert "C-MOVE from WS to WS: 3 completed, 0 failed" in gw.log


def test_destination_without_the_stored_syntax_gets_it_uncompressed(gateway_factory, move_target, tmp_path):
    """A [destinations.*] AE is a Move Destination too; one that takes no JPEG gets the forward
    path's fallback (decoded, same SOP Instance UID), Patient Root at patient level."""
    _start, _out, ws_port = move_target
    exe = require("storescp", "dcmtk")
    archive = tmp_path / "archive"
    archive.mkdir()
    port = free_port()
    proc = subprocess.Popen([exe, "-aet", "ARCHIVE", "-od", str(archive), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, 10, proc)
        gw = _gateway(gateway_factory, ws_port, archive_port=port)
        _study_uid, (jpeg,) = _new_study(tmp_path, ["SC_rgb_jpeg_dcmtk.dcm"])
        _store(gw, [jpeg], "-xy")
        text = _dcmtk("movescu", gw, "-P", "-aem", "ARCHIVE", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=QR-1")
        assert "Received Final Move Response (Success)" in text, text
        got = wait_until(lambda: _received(archive) or None, 10, what="the moved file at ARCHIVE")
        (uid, path), = got.items()
        assert uid == str(pydicom.dcmread(jpeg, stop_before_pixels=True).SOPInstanceUID)
        assert _ts(path) in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
        assert "C-MOVE from WS to ARCHIVE: 1 completed" in gw.log
    finally:
        kill_group(proc)


def test_getscu_files_arrive_over_the_same_association(gateway_factory, move_target, tmp_path):
    _start, _out, port = move_target
    gw = _gateway(gateway_factory, port)
    stored = _store(gw, [TEST_FILES / n for n in FILES])
    got_dir = tmp_path / "got"
    got_dir.mkdir()
    study = _study(TEST_FILES / "MR_small.dcm")
    text = _dcmtk("getscu", gw, "-S", "-od", str(got_dir), "-k", "QueryRetrieveLevel=STUDY", "-k",
                  f"StudyInstanceUID={study}")
    assert "Received C-GET Response (Success)" in text, text
    assert "Number of Completed Suboperations : 1" in text and "Number of Failed Suboperations    : 0" in text, text
    assert "C-GET from WS over its own association: 1 completed" in gw.log  # a C-GET has no destination
    got = _received(got_dir)
    mr_uid = str(pydicom.dcmread(TEST_FILES / "MR_small.dcm", stop_before_pixels=True).SOPInstanceUID)
    assert set(got) == {mr_uid}, text
    # getscu writes what it decoded; the pixel data is what the buffer holds.
    assert pydicom.dcmread(got[mr_uid]).PixelData == pydicom.dcmread(stored[mr_uid]).PixelData


def test_unknown_destination_unauthorised_peer_bad_identifier_and_no_match(gateway_factory, move_target):
    _start, out, port = move_target
    gw = _gateway(gateway_factory, port)
    _store(gw, [TEST_FILES / "CT_small.dcm"])
    study = _study(TEST_FILES / "CT_small.dcm")
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    text = _dcmtk("movescu", gw, "-S", "-aem", "NOBODY", *keys)
    assert "Received Final Move Response (Refused: MoveDestinationUnknown)" in text, text
    assert "Move Destination NOBODY is not a configured AE" in gw.log
    text = _dcmtk("movescu", gw, "-S", "-aem", "NOADDR", *keys)
    assert "Received Final Move Response (Refused: MoveDestinationUnknown)" in text, text
    assert "Move Destination NOADDR: a peer with no host/port set" in gw.log
    text = _dcmtk("movescu", gw, "-S", "-aem", "NOMOVE", *keys)
    assert "Received Final Move Response (Refused: MoveDestinationUnknown)" in text, text
    assert "Move Destination NOMOVE: a peer that may not retrieve" in gw.log
    text = _dcmtk("movescu", gw, "-S", "-aem", "WS", *keys, aet="NORET")
    # 0x0124 Refused: Not Authorized (PS3.7 C.5); DCMTK 3.6.7 names it only for N-services.
    assert "Received Final Move Response (Unknown Status: 0x124)" in text, text
    assert "NORET may not retrieve (not a peer with may_query)" in gw.log
    text = _dcmtk("movescu", gw, "-S", "-aem", "WS", *keys, aet="NOMOVE")
    assert "Received Final Move Response (Unknown Status: 0x124)" in text, text
    assert "NOMOVE may not retrieve (may_retrieve = false)" in gw.log
    text = _dcmtk("movescu", gw, "-S", "-aem", "WS", "-k", "QueryRetrieveLevel=STUDY")
    assert "Received Final Move Response (Error: DataSetDoesNotMatchSOPClass)" in text, text  # 0xA900
    # ARCHIVE is configured but nothing listens there: every sub-operation fails, A702 with the list.
    text = _dcmtk("movescu", gw, "-S", "-aem", "ARCHIVE", *keys)
    assert "Received Final Move Response (Refused: OutOfResourcesSubOperations)" in text, text  # 0xA702
    # No instance matches: Success with zero sub-operations (PS3.4 C.4.2.3.1).
    text = _dcmtk("movescu", gw, "-S", "-aem", "WS", "-k", "QueryRetrieveLevel=STUDY", "-k",
                  "StudyInstanceUID=1.2.3.4.5.6.7")
    assert "Received Final Move Response (Success)" in text, text
    assert list(out.iterdir()) == []
    assert "StudyInstanceUID missing or empty" in gw.log
    assert gw.proc.poll() is None


def _move(gw, study: str, cancel_after: int | None = None):
    """pynetdicom as the C-MOVE SCU "WS": every (status, identifier) response."""
    ae = AE(ae_title="WS")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", gw.port, ae_title="EDGE")
    assert assoc.is_established
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = study
    out = []
    try:
        for n, (st, ds) in enumerate(assoc.send_c_move(ident, "WS", StudyRootQueryRetrieveInformationModelMove,
                                                       msg_id=7), start=1):
            out.append((st, ds))
            if cancel_after is not None and n == cancel_after:
                cx = assoc._get_valid_context(StudyRootQueryRetrieveInformationModelMove, "", "scu")
                assoc.send_c_cancel(7, cx.context_id)
    finally:
        assoc.release()
    return out


def test_pending_counts_and_an_evicted_file_counted_as_failed(gateway_factory, move_target, tmp_path):
    start, out, port = move_target
    start()
    gw = _gateway(gateway_factory, port)
    files = make_series(tmp_path / "series", 4, rows=8, cols=8)
    stored = _store(gw, files)
    gone = str(pydicom.dcmread(files[1], stop_before_pixels=True).SOPInstanceUID)
    stored[gone].unlink()  # the file left the buffer after the index was read (eviction's order)
    responses = _move(gw, _study(files[0]))
    pending = [st for st, _ds in responses if st.Status == 0xFF00]
    assert [p.NumberOfRemainingSuboperations for p in pending] == [3, 2, 1, 0]
    assert [p.NumberOfFailedSuboperations for p in pending] == [0, 1, 1, 1]
    final_status, final_ident = responses[-1]
    assert final_status.Status == 0xB000
    assert (final_status.NumberOfCompletedSuboperations, final_status.NumberOfFailedSuboperations) == (3, 1)
    assert final_ident.FailedSOPInstanceUIDList == gone
    assert len(list(out.iterdir())) == 3
    assert gw.proc.poll() is None


def test_cancel_mid_move_stops_at_the_next_sub_operation(gateway_factory, move_target, tmp_path):
    start, out, port = move_target
    start("--sleep-during", "1")  # each C-STORE takes a second at the destination
    gw = _gateway(gateway_factory, port)
    files = make_series(tmp_path / "series", 6, rows=8, cols=8)
    _store(gw, files)
    responses = _move(gw, _study(files[0]), cancel_after=1)
    final_status, final_ident = responses[-1]
    assert final_status.Status == 0xFE00, [r[0].Status for r in responses]
    assert final_status.NumberOfRemainingSuboperations > 0
    done = final_status.NumberOfCompletedSuboperations
    assert done + final_status.NumberOfRemainingSuboperations == 6
    assert len(list(out.iterdir())) == done < 6
    # movescu's own cancel option gets the same answer.
    text = _dcmtk("movescu", gw, "-S", "-aem", "WS", "--cancel", "1", "-k", "QueryRetrieveLevel=STUDY", "-k",
                  f"StudyInstanceUID={_study(files[0])}")
    assert "Cancel" in text, text
    assert gw.proc.poll() is None


def test_move_sub_operations_carry_the_originator_and_the_priority(gateway_factory, move_target, tmp_path):
    """Each C-STORE of a C-MOVE names the C-MOVE's AE title and Message ID (Move Originator,
    PS3.7 9.3.1.1) and has its Priority (PS3.4 C.4.2.1.2); a pynetdicom SCP as "WS" records them."""
    from pynetdicom import evt
    from pynetdicom.presentation import StoragePresentationContexts

    _start, _out, port = move_target
    seen = []

    def on_store(event):
        r = event.request
        seen.append((r.MoveOriginatorApplicationEntityTitle, r.MoveOriginatorMessageID, r.Priority,
                     str(r.AffectedSOPInstanceUID)))
        return 0x0000

    scp = AE(ae_title="WS")
    scp.supported_contexts = StoragePresentationContexts
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        gw = _gateway(gateway_factory, port)
        files = make_series(tmp_path / "series", 2, rows=8, cols=8)
        _store(gw, files)
        responses = _move(gw, _study(files[0]))  # Message ID 7, pynetdicom's default priority LOW (2)
        assert responses[-1][0].Status == 0x0000
    finally:
        server.shutdown()
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    assert sorted(s[3] for s in seen) == sorted(uids)
    assert {s[:3] for s in seen} == {("WS", 7, 2)}


def test_move_to_orthanc_as_a_configured_destination(gateway_factory, orthanc_factory, tmp_path):
    """The PACS of `[destinations.pacs]` (Orthanc, not forwarded to: disabled) as Move Destination:
    it receives the instance with the data set the buffer holds, byte for byte."""
    from dicom_bytes import dataset_bytes

    port = free_port()
    orthanc = orthanc_factory(port)
    gw = gateway_factory({"peers": {"ws": {"ae_title": "WS", "may_store": False, "may_query": True}},
                          "destinations": {"pacs": {"ae_title": "TESTPACS", "port": orthanc.dicom,
                                                    "enabled": False}}}, port=port)
    study, (mr,) = _new_study(tmp_path, ["MR_small_bigendian.dcm"])
    stored = _store(gw, [mr], "-xb")
    uid = str(pydicom.dcmread(mr, stop_before_pixels=True).SOPInstanceUID)
    text = _dcmtk("movescu", gw, "-S", "-aem", "TESTPACS", "-k", "QueryRetrieveLevel=STUDY", "-k",
                  f"StudyInstanceUID={study}")
    assert "Received Final Move Response (Success)" in text, text
    got = wait_until(lambda: orthanc.instance_file(uid), 10, what="the instance in Orthanc")
    assert dataset_bytes(got) == file_dataset_bytes(stored[uid])


def test_service_stop_mid_move_ends_cleanly(gateway_factory, move_target, tmp_path):
    """SIGTERM while a C-MOVE is sending: the service stops within its drain, exit 0, no traceback;
    the C-MOVE requestor gets no final Success."""
    start, out, port = move_target
    start("--sleep-during", "1")
    gw = _gateway(gateway_factory, port)
    files = make_series(tmp_path / "series", 5, rows=8, cols=8)
    _store(gw, files)
    exe = require("movescu", "dcmtk")
    mover = subprocess.Popen([exe, "-v", "-aet", "WS", "-aec", "EDGE", "-S", "-aem", "WS", "-k",
                              "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={_study(files[0])}",
                              "127.0.0.1", str(gw.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    try:
        wait_until(lambda: list(out.iterdir()) or None, 30, what="a first sub-operation at storescp")
        assert gw.stop(timeout=40) == 0
        text = mover.communicate(timeout=60)[0]
    finally:
        kill_group(mover)
    assert "Received Final Move Response (Success)" not in text, text
    assert "Traceback" not in gw.log, gw.log
    assert "C-MOVE from WS to WS" in gw.log


def test_destination_that_aborts_after_one_object_gets_every_one(gateway_factory, move_target, tmp_path):
    """A destination that aborts each association at its second C-STORE (some PACS end an
    association after a number of objects): the sub-operation lost with it is sent again on a new
    association, once, and every instance arrives."""
    from pynetdicom import evt
    from pynetdicom.presentation import StoragePresentationContexts

    _start, _out, port = move_target
    per_assoc: dict[int, int] = {}
    stored = []

    def on_store(event):
        n = per_assoc[id(event.assoc)] = per_assoc.get(id(event.assoc), 0) + 1
        if n == 2:
            event.assoc.abort()
            return 0xA700
        stored.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    scp = AE(ae_title="WS")
    scp.supported_contexts = StoragePresentationContexts
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        gw = _gateway(gateway_factory, port)
        files = make_series(tmp_path / "series", 4, rows=8, cols=8)
        _store(gw, files)
        responses = _move(gw, _study(files[0]))
    finally:
        server.shutdown()
    final = responses[-1][0]
    assert (final.Status, final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (0, 4, 0)
    assert sorted(stored) == sorted(str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files)
    assert len(per_assoc) == 4


def _get(gw, study: str, got: dict, cancel_after: int | None = None, slow: float = 0.0, sc: bool = True):
    """pynetdicom as the C-GET SCU "WS" (SCP role for CT Image Storage): every (status, identifier)
    response; the data sets it receives, as their bytes on the wire, into `got` by SOP UID."""
    import time

    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import (CTImageStorage, SecondaryCaptureImageStorage,
                                      StudyRootQueryRetrieveInformationModelGet)

    def on_store(event):
        got[str(event.request.AffectedSOPInstanceUID)] = event.request.DataSet.getvalue()
        time.sleep(slow)  # a slow receiver, so that a cancel finds sub-operations left
        return 0x0000

    ae = AE(ae_title="WS")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, ["1.2.840.10008.1.2.1"])
    ae.add_requested_context(CTImageStorage, ["1.2.840.10008.1.2.2"])
    roles = [build_role(CTImageStorage, scp_role=True)]
    if sc:
        ae.add_requested_context(SecondaryCaptureImageStorage, ["1.2.840.10008.1.2.4.50"])
        roles.append(build_role(SecondaryCaptureImageStorage, scp_role=True))
    assoc = ae.associate("127.0.0.1", gw.port, ae_title="EDGE", ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = study
    out = []
    try:
        for n, (st, ds) in enumerate(assoc.send_c_get(ident, StudyRootQueryRetrieveInformationModelGet, msg_id=9),
                                     start=1):
            out.append((st, ds))
            if cancel_after is not None and n == cancel_after:
                cx = assoc._get_valid_context(StudyRootQueryRetrieveInformationModelGet, "", "scu")
                assoc.send_c_cancel(9, cx.context_id)
    finally:
        assoc.release()
    return out


def test_c_get_sends_the_stored_bytes_and_honours_cancel(gateway_factory, move_target, tmp_path):
    _start, _out, port = move_target
    gw = _gateway(gateway_factory, port)
    files = make_series(tmp_path / "series", 4, rows=8, cols=8)
    # One in Explicit VR Big Endian and one in JPEG Baseline, each sent in its own syntax.
    subprocess.run([require("dcmconv", "dcmtk"), "+tb", str(files[0]), str(files[0])], check=True, timeout=30)
    ds = pydicom.dcmread(TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _study(files[1]), pydicom.uid.generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.PatientID = "PID-1"  # the series' patient (datasets.make_ct)
    files.append(tmp_path / "sc.dcm")
    ds.save_as(files[-1], enforce_file_format=True)
    _store(gw, files[:1], "-xb")
    _store(gw, files[-1:], "-xy")
    stored = _store(gw, files[1:-1])
    assert _ts(stored[str(pydicom.dcmread(files[0], stop_before_pixels=True).SOPInstanceUID)]) == "1.2.840.10008.1.2.2"
    got: dict[str, bytes] = {}
    responses = _get(gw, _study(files[0]), got)
    assert responses[-1][0].Status == 0x0000 and responses[-1][0].NumberOfCompletedSuboperations == 5
    assert [st.NumberOfRemainingSuboperations for st, _ in responses[:-1]] == [4, 3, 2, 1, 0]
    assert set(got) == set(stored)
    for uid, data in got.items():
        assert data == file_dataset_bytes(stored[uid]), uid  # as stored, byte for byte
    got.clear()
    responses = _get(gw, _study(files[0]), got, cancel_after=1, slow=0.5)
    final = responses[-1][0]
    assert final.Status == 0xFE00, [st.Status for st, _ in responses]
    assert final.NumberOfRemainingSuboperations > 0
    assert final.NumberOfCompletedSuboperations + final.NumberOfRemainingSuboperations == 5
    assert len(got) == final.NumberOfCompletedSuboperations
    # A requestor that offers no context for the Secondary Capture: that sub-operation fails,
    # the others complete (PS3.4 C.4.3.3), B000 with its UID.
    got.clear()
    responses = _get(gw, _study(files[0]), got, sc=False)
    final, ident = responses[-1]
    assert (final.Status, final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (0xB000, 4, 1)
    assert ident.FailedSOPInstanceUIDList == str(ds.SOPInstanceUID)
