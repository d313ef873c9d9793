"""`fill_from_worklist` against a real Modality Worklist SCP (issue 11: "fill a missing attribute from
the worklist by Accession Number"): DCMTK wlmscpfs serves one item scheduled for the modality CT1,
`dicom-gateway run` has `[worklist]` enabled and no capture (the worklist is asked for the rule
alone), and storescu sends as CT1 an object with the item's Accession Number and none of the
patient's attributes. The stored object has the worklist's values, its Original Attributes Sequence
records them as absent (or empty) before, and its pixel data is byte for byte what was sent; an
object whose Accession Number has no item is stored as it came.

The worklist item is made as in test_worklist_wlmscpfs.py (dump2dcm from a dump with a Latin-1
name); the gateway's query matches it by Scheduled Station AE Title = CT1 (`station_ae`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct
from peers import require, storescu, wait_until
from test_worklist_wlmscpfs import LATIN_BYTES, LATIN_NAME, SCP_AE, TODAY, Wlmscpfs, _item

from gateway.buffer.worklist import WorklistStore

# _item(..., n=7) gives Accession Number ACC007, Birth Date 19600101, Sex O, Referring Physician
# Referrer^Rita.
ACCESSION = "ACC007"
FILLED = ["PatientName", "PatientBirthDate", "PatientSex", "ReferringPhysicianName"]


@pytest.fixture
def wl_scp(tmp_path):
    require("dump2dcm", "dcmtk")
    db = tmp_path / "wl-db"
    (db / SCP_AE).mkdir(parents=True)
    (db / SCP_AE / "lockfile").write_bytes(b"")
    dump = tmp_path / "item.dump"
    dump.write_bytes(_item(b"ISO_IR 100", LATIN_BYTES, "PIDWL7", "CT1", TODAY, "CT", 7))
    subprocess.run(["dump2dcm", "-q", "-g", str(dump), str(db / SCP_AE / "item.wl")], check=True,
                   capture_output=True, timeout=60)
    scp = Wlmscpfs(db).start()
    try:
        yield scp
    finally:
        scp.stop()


def _sent(path: Path, accession: str, missing: list[str]) -> pydicom.Dataset:
    make_ct(path)
    ds = pydicom.dcmread(path)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.AccessionNumber = accession
    for keyword in missing:
        delattr(ds, keyword)
    ds.save_as(path)
    return ds


def _stored(buffer: Path, sop_uid: str) -> Path | None:
    for p in (buffer / "objects").rglob("*.dcm"):
        if pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID == sop_uid:
            return p
    return None


def _pixel_tail(path: Path) -> bytes:
    """The file from the Pixel Data element's tag to its end."""
    with open(path, "rb") as f:
        pydicom.dcmread(f, stop_before_pixels=True)
        return path.read_bytes()[f.tell():]


def _data_set_bytes(path: Path) -> bytes:
    """The file after its preamble and file meta (whose group length says where they end)."""
    meta = pydicom.filereader.read_file_meta_info(path)
    return path.read_bytes()[128 + 4 + 12 + meta.FileMetaInformationGroupLength:]


def test_missing_attributes_are_filled_from_the_worklist_scp_by_accession_number(wl_scp, gateway_factory, tmp_path):
    gw = gateway_factory({
        "worklist": {"enabled": True, "ae_title": SCP_AE, "port": wl_scp.port, "station_ae": "CT1",
                     "timeout_s": 10.0},
        "peers": {"ct1": {"ae_title": "CT1", "may_store": True}},
        "coercion": [{"name": "ct1-wl", "calling_ae": ["CT1"], "fill_from_worklist": FILLED}],
    })
    # No capture is configured: the service asks the SCP for the rule's sake and keeps the answer.
    def fetched():
        cached = WorklistStore(gw.buffer).load()
        return cached is not None and cached.source.startswith(SCP_AE + "@") and cached.items
    wait_until(fetched, 60, what="the worklist fetched from wlmscpfs into the buffer")

    known = tmp_path / "known.dcm"
    sent = _sent(known, ACCESSION, ["PatientName", "PatientBirthDate", "PatientSex"])
    assert sent.ReferringPhysicianName == ""  # present and empty: filled too
    unknown = tmp_path / "unknown.dcm"
    other = _sent(unknown, "NO-ITEM", ["PatientName"])
    out = storescu(gw.port, [known, unknown], aet="CT1")
    assert out.returncode == 0, out.stderr

    wait_until(lambda: _stored(gw.buffer, sent.SOPInstanceUID) and _stored(gw.buffer, other.SOPInstanceUID),
               30, what="both objects in the buffer")
    path = _stored(gw.buffer, sent.SOPInstanceUID)
    got = pydicom.dcmread(path)
    assert (str(got.PatientName), got.PatientBirthDate, got.PatientSex, str(got.ReferringPhysicianName)) == (
        LATIN_NAME, "19600101", "O", "Referrer^Rita")
    # What the rule does not name stays the modality's, though the worklist has another Patient ID.
    assert got.PatientID == sent.PatientID and got.AccessionNumber == ACCESSION
    (item,) = got.OriginalAttributesSequence
    assert (item.ModifyingSystem, item.ReasonForTheAttributeModification, item.SourceOfPreviousValues) == (
        "EDGE", "COERCE", "CT1")
    (before,) = item.ModifiedAttributesSequence
    # PS3.3 C.12.1.1.9: an attribute that was absent is recorded with a zero length value.
    assert sorted(e.keyword for e in before) == sorted(FILLED)
    assert all(e.is_empty for e in before)
    assert _pixel_tail(path) == _pixel_tail(known)
    assert "coerced " + sent.SOPInstanceUID in gw.log

    # No worklist item has this Accession Number: nothing filled, the object stored as it came.
    unchanged = _stored(gw.buffer, other.SOPInstanceUID)
    assert _data_set_bytes(unchanged) == _data_set_bytes(unknown)
    assert "no worklist item with Accession Number NO-ITEM" in gw.log
    assert "Müller" not in gw.log and "Jürgen" not in gw.log  # no patient names in the log
