"""STORE SCP and forwarding against real peers: DCMTK storescu/storescp and Orthanc."""

from __future__ import annotations

import subprocess
import zlib

import pydicom
import pytest
from pydicom.uid import generate_uid
from dicom_bytes import dataset_bytes, file_dataset_bytes, indexed, jobs
from peers import STORESCU_TS_FLAG, TEST_FILES, free_port, require, storescu, wait_port, wait_until

pytestmark = pytest.mark.interop

# One pydicom test file per transfer syntax the issue names.
TS_FILES = {
    "1.2.840.10008.1.2": "MR_small_implicit.dcm",
    "1.2.840.10008.1.2.1": "CT_small.dcm",
    "1.2.840.10008.1.2.2": "MR_small_bigendian.dcm",
    "1.2.840.10008.1.2.1.99": "image_dfl.dcm",
    "1.2.840.10008.1.2.4.50": "SC_rgb_jpeg_dcmtk.dcm",
    "1.2.840.10008.1.2.4.51": "JPGExtended.dcm",
    "1.2.840.10008.1.2.4.70": "SC_rgb_jpeg_gdcm.dcm",
    "1.2.840.10008.1.2.4.80": "MR_small_jpeg_ls_lossless.dcm",
    "1.2.840.10008.1.2.4.81": "JPEGLSNearLossless_08.dcm",
    "1.2.840.10008.1.2.4.90": "MR_small_jp2klossless.dcm",
    "1.2.840.10008.1.2.4.91": "JPEG2000.dcm",
    "1.2.840.10008.1.2.5": "MR_small_RLE.dcm",
}

# Distinct SOP Instance UIDs (several pydicom samples share one) in several syntaxes, lossless
# ones where pixels are compared after decompression.
FORWARD_FILES = ["CT_small.dcm", "MR_small_jp2klossless.dcm", "SC_rgb_rle.dcm", "JPGExtended.dcm",
                 "image_dfl.dcm"]


def _ts(path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


def test_test_files_have_the_transfer_syntaxes_they_are_used_for():
    # Guards the table above: a test file that changed syntax would test the wrong thing silently.
    for ts, name in TS_FILES.items():
        assert _ts(TEST_FILES / name) == ts, name


def _with_uids(src, tmp_path):
    """pydicom's JPEG-LS near-lossless samples lack Study/Series Instance UID, which the gateway
    rightly refuses (A900): add them; the encoded pixel data is copied untouched."""
    ds = pydicom.dcmread(src)
    if ds.get("StudyInstanceUID") and ds.get("SeriesInstanceUID"):
        return src
    ds.StudyInstanceUID = ds.get("StudyInstanceUID") or generate_uid()
    ds.SeriesInstanceUID = ds.get("SeriesInstanceUID") or generate_uid()
    out = tmp_path / src.name
    ds.save_as(out, enforce_file_format=True)
    return out


def _as_sent_by_storescu(src, flag, tmp_path):
    """What storescu puts on the wire for `src` (DCMTK re-encodes what it reads), captured by a
    bit-preserving storescp: the oracle for "stored exactly as received"."""
    exe = require("storescp", "dcmtk")
    out = tmp_path / "oracle"
    out.mkdir(exist_ok=True)
    port = free_port()
    proc = subprocess.Popen([exe, "+B", "+xa", "-aet", "EDGE", "-od", str(out), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 10, proc)
        r = storescu(port, [src], extra=[flag])
        assert "E:" not in r.stderr, r.stderr
        (received,) = list(out.iterdir())
        return file_dataset_bytes(received)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("ts", sorted(TS_FILES))
def test_each_transfer_syntax_is_stored_as_received(gateway_factory, ts, tmp_path):
    gw = gateway_factory()
    src = _with_uids(TEST_FILES / TS_FILES[ts], tmp_path)
    r = storescu(gw.port, [src], extra=[STORESCU_TS_FLAG[ts]])
    assert r.returncode == 0 and "E:" not in r.stderr + r.stdout, r.stderr
    sop_uid = str(pydicom.dcmread(src, stop_before_pixels=True).SOPInstanceUID)
    stored = indexed(gw.buffer)[sop_uid]
    assert _ts(stored) == ts
    # Never decoded and re-encoded: the data set is byte for byte what the modality sent.
    assert file_dataset_bytes(stored) == _as_sent_by_storescu(src, STORESCU_TS_FLAG[ts], tmp_path)


def test_forward_to_orthanc_arrives_byte_identical(gateway_factory, orthanc_factory):
    port = free_port()
    orthanc = orthanc_factory(port)
    gw = gateway_factory({"destinations": {"pacs": {
        "ae_title": "TESTPACS", "port": orthanc.dicom, "retry_initial_s": 0.2, "retry_max_s": 1.0}}}, port=port)
    files = [TEST_FILES / n for n in FORWARD_FILES + ["JPEG2000.dcm"]]
    for f in files:
        r = storescu(gw.port, [f], extra=[STORESCU_TS_FLAG[_ts(f)]])
        assert "E:" not in r.stderr, r.stderr
    stored = indexed(gw.buffer)
    for f in files:
        uid = str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
        blob = wait_until(lambda: orthanc.instance_file(uid), 60, what=f"{f.name} at Orthanc")
        # What Orthanc got is byte for byte what the gateway stored (which is what storescu sent).
        # Orthanc re-deflates deflated data sets with its own zlib settings: compare them inflated.
        got, sent = dataset_bytes(blob), file_dataset_bytes(stored[uid])
        if _ts(f) == "1.2.840.10008.1.2.1.99":
            got, sent = zlib.decompress(got, -15), zlib.decompress(sent, -15)
        assert got == sent, f.name
    wait_until(lambda: all(state == "done" for _, _, state, _, _ in jobs(gw.buffer)), 30, what="jobs done")
    assert orthanc.count() == len(files)


def test_forward_to_implicit_only_pacs_decompresses(gateway_factory, tmp_path):
    exe = require("storescp", "dcmtk")

    out = tmp_path / "received"
    out.mkdir()
    pacs_port = free_port()
    pacs = subprocess.Popen([exe, "+xi", "-aet", "PACS", "-od", str(out), str(pacs_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        gw = gateway_factory({"destinations": {"pacs": {
            "ae_title": "PACS", "port": pacs_port, "retry_initial_s": 0.2, "retry_max_s": 1.0}}})
        sources = [TEST_FILES / n for n in FORWARD_FILES]
        for f in sources:
            r = storescu(gw.port, [f], extra=[STORESCU_TS_FLAG[_ts(f)]])
            assert "E:" not in r.stderr, r.stderr
        wait_until(lambda: len(list(out.iterdir())) == len(sources), 60, what="all files at the PACS")
        for f in sources:
            orig = pydicom.dcmread(f)
            uid = str(orig.SOPInstanceUID)
            got = [pydicom.dcmread(p) for p in out.iterdir() if uid in p.name]
            assert len(got) == 1, uid
            assert got[0].file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
            assert got[0].SOPInstanceUID == uid  # same instance, other transfer syntax
            assert (got[0].pixel_array == orig.pixel_array).all()
    finally:
        pacs.terminate()
        pacs.wait(10)
