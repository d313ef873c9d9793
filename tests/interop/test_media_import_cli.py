"""`dicom-gateway import PATH` and `imports`: without a service (the CLI holds the buffer), and
beside the running service, which it wakes so that Orthanc, the PACS, receives the imported images
at once. The media are made with DCMTK's dcmmkdir from pydicom's shipped files."""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess

import pydicom
import pytest
from peers import TEST_FILES, free_port, require, wait_until

pytestmark = pytest.mark.interop

CT = TEST_FILES / "CT_small.dcm"
MR = TEST_FILES / "MR_small.dcm"
CT_UID = str(pydicom.dcmread(CT, stop_before_pixels=True).SOPInstanceUID)
MR_UID = str(pydicom.dcmread(MR, stop_before_pixels=True).SOPInstanceUID)


def _medium(root, missing: bool = False):
    exe = require("dcmmkdir", "dcmtk")
    (root / "IMAGES").mkdir(parents=True)
    shutil.copyfile(CT, root / "IMAGES" / "IM0001")
    shutil.copyfile(MR, root / "IMAGES" / "IM0002")
    r = subprocess.run([exe, "+r", "+D", "DICOMDIR", "IMAGES"], cwd=root, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    if missing:
        (root / "IMAGES" / "IM0002").unlink()
    return root


def _instances(gw) -> dict[str, str]:
    db = sqlite3.connect(gw.buffer / "index.sqlite")
    try:
        return dict(db.execute("SELECT sop_uid, calling_ae FROM instances").fetchall())
    finally:
        db.close()


def test_import_without_a_service_reports_and_exits_1_for_a_missing_file(gateway_factory, tmp_path):
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": "PACS", "port": free_port()}}}, start=False)
    medium = _medium(tmp_path / "disc", missing=True)
    r = gw.cli("import", str(medium), "--label", "DISC-7")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"import 1 of {medium} as MEDIA:DISC-7: followed its DICOMDIR"
    assert "skipped: IMAGES/IM0002: the DICOMDIR references this file; it is not on the medium" in lines
    assert "2 files: 1 imported, 0 duplicate, 1 skipped, 0 failed; 0 flagged" in lines
    assert "no service is running on this buffer: the imported objects are forwarded at its next start" in lines
    assert lines[-1] == "some files were not imported (above); the report: dicom-gateway imports 1"
    assert r.stderr == ""
    assert _instances(gw) == {CT_UID: "MEDIA:DISC-7"}
    # The reports, listed and one in full.
    r = gw.cli("imports")
    assert r.returncode == 0 and "DISC-7" in r.stdout and "dicomdir" in r.stdout, r.stdout + r.stderr
    r = gw.cli("imports", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if "[missing-file]" in ln]
    assert line.split()[:4] == ["1", "skipped", "IMAGES\\IM0002", MR_UID], r.stdout
    assert line.endswith("[missing-file]: the DICOMDIR references this file; it is not on the medium")
    assert "2 files: 1 imported, 0 duplicate, 1 skipped, 0 failed; 0 flagged" in r.stdout
    assert gw.cli("imports", "9").returncode == 1

    # The same medium made whole again: the CT is a duplicate, the MR new, exit 0.
    shutil.copyfile(MR, medium / "IMAGES" / "IM0002")
    r = gw.cli("import", str(medium), "--label", "DISC-7")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 files: 1 imported, 1 duplicate, 0 skipped, 0 failed; 0 flagged" in r.stdout
    assert set(_instances(gw)) == {CT_UID, MR_UID}


def test_usage_errors_exit_2_in_one_line(gateway_factory, tmp_path):
    gw = gateway_factory(start=False)
    for args, words in ((["import", str(tmp_path / "none")], "no such folder"),
                        (["import", str(CT)], "not a folder"),
                        (["import", str(tmp_path), "--label", "bad label/x"], "label 'bad label/x'"),
                        (["imports", "x"], "is not an import's number")):
        r = gw.cli(*args)
        assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_import_beside_the_running_service_wakes_it_and_the_pacs_receives(gateway_factory, orthanc_factory,
                                                                            tmp_path):
    port = free_port()
    orthanc = orthanc_factory(port)
    # A long backoff: only the wake-up makes the forwarder look at the queue within the test's wait.
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": orthanc.aet, "port": orthanc.dicom,
                                                    "retry_initial_s": 600, "retry_max_s": 600}}}, port=port)
    medium = _medium(tmp_path / "stick")
    r = gw.cli("import", str(medium), "--label", "USB-1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 files: 2 imported, 0 duplicate, 0 skipped, 0 failed; 0 flagged" in r.stdout
    assert "was told to act on it now" in r.stdout
    wait_until(lambda: orthanc.count() == 2, 60, what="the PACS to receive the imported images")
    got = pydicom.dcmread(io.BytesIO(orthanc.instance_file(CT_UID)))
    assert got.PixelData == pydicom.dcmread(CT).PixelData
    assert _instances(gw) == {CT_UID: "MEDIA:USB-1", MR_UID: "MEDIA:USB-1"}
    assert "media import 1 from MEDIA:USB-1" not in gw.log  # the CLI's own process logged it, not the service
