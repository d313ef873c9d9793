"""Attribute coercion and routing on indexed attributes (issue 11 item 3) through the real service:
DCMTK storescu sends pydicom's test files to `dicom-gateway run`, two Orthancs are the PACS (CT routed
to one, MR to the other by Modality), and what they received is the coerced instance: the rule's
values, the Original Attributes Sequence with the values it came with, the pixel data unchanged and
dciodvfy finding no error the original did not have. The worklist cache fills a missing Patient's
Name by Accession Number; a rule that cannot apply is refused with 0x0110 and the service goes on;
a destination's rule changes only what that destination receives."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct
from peers import TEST_FILES, free_port, require, storescu, wait_until
from pydicom.dataset import Dataset

from gateway.buffer.procedure import Procedure, encode_identifier
from gateway.buffer.worklist import CachedWorklist, WorklistStore

ORIGINAL_ATTRIBUTES = 0x04000561


def _dciodvfy_errors(path: Path) -> set[str]:
    exe = require("dciodvfy", "dicom3tools")
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    # Messages only, without the element's value dump that some lines end with.
    return {re.sub(r"\s+", " ", line).strip() for line in (out.stdout + out.stderr).splitlines() if "Error" in line}


def _config(ct_pacs, mr_pacs) -> dict:
    return {
        "destinations": {"ctpacs": {"ae_title": ct_pacs.aet, "port": ct_pacs.dicom, "retry_initial_s": 0.5},
                         "mrpacs": {"ae_title": mr_pacs.aet, "port": mr_pacs.dicom, "retry_initial_s": 0.5}},
        "routes": [{"to": ["ctpacs"], "match": {"Modality": ["CT"]}},
                   {"to": ["mrpacs"], "match": {"Modality": ["MR"]}}],
        # fill_from_worklist needs [worklist]: no SCP answers on this port, so the service keeps the
        # cache the test writes (gateway/dicom/worklist_service.py: a failed refresh never replaces it).
        "worklist": {"enabled": True, "ae_title": "RIS", "port": free_port(), "timeout_s": 2.0},
        "peers": {"badcs": {"ae_title": "BADCS", "may_store": True},
                  "warnme": {"ae_title": "WARNME", "may_store": True}},
        "coercion": [
            {"name": "legacy", "calling_ae": ["STORESCU"],
             "map": {"InstitutionName": {"GH01": "General Hospital"}},
             "set": {"StationName": "LEGACY1"},
             "issuer_of_patient_id": "HOSP-A",
             "fill_from_worklist": ["PatientName"]},
            {"name": "accented", "calling_ae": ["BADCS"], "set": {"InstitutionName": "Hôpital"}},
            {"name": "warn", "calling_ae": ["WARNME"], "set": {"StationName": "WARNED"},
             "store_status": "warning"},
            {"name": "mr-only", "destination": ["mrpacs"], "set": {"InstitutionalDepartmentName": "MR DEPT"}},
        ],
    }


@pytest.fixture
def setup(gateway_factory, orthanc_factory, tmp_path):
    ct_pacs = orthanc_factory(free_port(), name="ct-pacs", aet="CTPACS")
    mr_pacs = orthanc_factory(free_port(), name="mr-pacs", aet="MRPACS")
    gw = gateway_factory(_config(ct_pacs, mr_pacs), start=False)
    return gw, ct_pacs, mr_pacs


def _prepared(tmp_path: Path, name: str) -> Path:
    """A test file with the institution code the map knows."""
    ds = pydicom.dcmread(TEST_FILES / name)
    ds.InstitutionName = "GH01"
    out = tmp_path / f"in-{name}"
    ds.save_as(out)
    return out


def test_coerced_instances_reach_the_pacs_routed_by_modality(setup, tmp_path):
    gw, ct_pacs, mr_pacs = setup
    gw.start()
    ct, mr = _prepared(tmp_path, "CT_small.dcm"), _prepared(tmp_path, "MR_small.dcm")
    out = storescu(gw.port, [ct, mr])
    assert out.returncode == 0, out.stderr
    ct_uid, mr_uid = (pydicom.dcmread(p).SOPInstanceUID for p in (ct, mr))
    wait_until(lambda: ct_pacs.lookup(ct_uid) and mr_pacs.lookup(mr_uid), 60, what="both instances at their PACS")
    assert ct_pacs.count() == 1 and mr_pacs.count() == 1  # CT to one, MR to the other
    for src, pacs, uid in ((ct, ct_pacs, ct_uid), (mr, mr_pacs, mr_uid)):
        got = tmp_path / f"got-{uid}.dcm"
        got.write_bytes(pacs.instance_file(uid))
        before, after = pydicom.dcmread(src), pydicom.dcmread(got)
        assert after.InstitutionName == "General Hospital" and after.StationName == "LEGACY1"
        assert after.IssuerOfPatientID == "HOSP-A"
        assert after.PixelData == before.PixelData
        assert after.StudyInstanceUID == before.StudyInstanceUID and after.PatientID == before.PatientID
        item = after.OriginalAttributesSequence[0]
        assert item.ModifyingSystem == "EDGE" and item.ReasonForTheAttributeModification == "COERCE"
        assert item.SourceOfPreviousValues == "STORESCU"
        assert item.ModifiedAttributesSequence[0].InstitutionName == "GH01"
        new_errors = _dciodvfy_errors(got) - _dciodvfy_errors(src)
        assert new_errors == set(), "\n".join(sorted(new_errors))
    # The destination rule: only mrpacs got the department; the stored MR keeps the ingest's values.
    mr_got = pydicom.dcmread(tmp_path / f"got-{mr_uid}.dcm")
    assert mr_got.InstitutionalDepartmentName == "MR DEPT"
    assert len(mr_got.OriginalAttributesSequence) == 2
    assert "InstitutionalDepartmentName" not in pydicom.dcmread(tmp_path / f"got-{ct_uid}.dcm")
    stored = [pydicom.dcmread(p, stop_before_pixels=True) for p in (gw.buffer / "objects").rglob("*.dcm")]
    (stored_mr,) = [d for d in stored if d.SOPInstanceUID == mr_uid]
    assert "InstitutionalDepartmentName" not in stored_mr and stored_mr.StationName == "LEGACY1"
    assert "coerced " + ct_uid in gw.log and "General Hospital" not in gw.log
    # storescu's association carries storage only: the fast path coerced each header while the
    # object arrived (one write), not after it (gateway/buffer/head_coercion.py).
    coerced = [line for line in gw.log.splitlines() if "coerced " + ct_uid in line]
    assert len(coerced) == 1 and coerced[0].endswith("(in the receive stream)"), coerced


def _worklist(buffer_dir: Path) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Worklist^Zoë"
    ds.PatientID = "WL-1"
    ds.AccessionNumber = "ACC-E2E"
    proc = Procedure(key="SPS1|ACC-E2E|", identifier=encode_identifier(ds), patient_id="WL-1",
                     patient_name="Worklist^Zoë", accession_number="ACC-E2E")
    buffer_dir.mkdir(parents=True, exist_ok=True)
    WorklistStore(buffer_dir).save(CachedWorklist((proc,), 1.0, "RIS@127.0.0.1:104"))


def test_a_missing_name_is_filled_from_the_worklist_cache(setup, tmp_path):
    gw, ct_pacs, _ = setup
    _worklist(gw.buffer)
    gw.start()
    make_ct(tmp_path / "ct.dcm")
    ds = pydicom.dcmread(tmp_path / "ct.dcm")
    ds.AccessionNumber = "ACC-E2E"
    ds.PatientName = ""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.save_as(tmp_path / "ct.dcm")
    out = storescu(gw.port, [tmp_path / "ct.dcm"])
    assert out.returncode == 0, out.stderr
    wait_until(lambda: ct_pacs.lookup(ds.SOPInstanceUID), 60, what="the instance at the PACS")
    got = pydicom.dcmread(pydicom.filebase.DicomBytesIO(ct_pacs.instance_file(ds.SOPInstanceUID)))
    assert str(got.PatientName) == "Worklist^Zoë"
    assert str(got.OriginalAttributesSequence[0].ModifiedAttributesSequence[0].PatientName) == ""


def test_a_rule_that_cannot_apply_refuses_the_object_and_the_service_goes_on(setup, tmp_path):
    gw, ct_pacs, _ = setup
    gw.start()
    make_ct(tmp_path / "ct.dcm")
    ds = pydicom.dcmread(tmp_path / "ct.dcm")
    if "SpecificCharacterSet" in ds:
        del ds.SpecificCharacterSet
    ds.save_as(tmp_path / "ct.dcm")
    out = storescu(gw.port, [tmp_path / "ct.dcm"], aet="BADCS")
    assert re.search(r"Store Response \(.*0x0?110\)", out.stdout + out.stderr), out.stderr
    wait_until(lambda: "coercion of " + ds.SOPInstanceUID in gw.log, 20, what="the refusal's log line")
    assert "Traceback" not in gw.log
    # The service goes on: the same object from a peer with a warning rule is stored, answered B000.
    out = storescu(gw.port, [tmp_path / "ct.dcm"], aet="WARNME")
    text = out.stdout + out.stderr
    assert re.search(r"Store Response \(.*(0xb000|Warning)", text, re.I), text
    wait_until(lambda: ct_pacs.lookup(ds.SOPInstanceUID), 60, what="the instance at the PACS")
