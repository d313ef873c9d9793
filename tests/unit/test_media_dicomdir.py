"""The DICOMDIR records (PS3.3 F.5) and the linear writer: offsets that lead to the right records,
each record encoded once, names in their character sets."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from gateway.media import dicomdir
from gateway.media.dicomdir import (
    RecordError,
    RecordNode,
    encode_dicomdir,
    encode_keys,
    leaf_record,
    leaf_record_type,
    patient_record,
    series_record,
    study_record,
    write_dicomdir,
)

_CHARSETS = Path(os.path.dirname(pydicom.__file__)) / "data" / "charset_files"
_FID = ("DICOM", "P0000001", "S0000001", "S0000001", "I0000001")


def _instance(sop_class: str, **extra) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "PID-1"
    ds.PatientName = "Test^Patient"
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize("sop_class, extra, record_type", [
    ("1.2.840.10008.5.1.4.1.1.2", {}, "IMAGE"),
    ("1.2.840.10008.5.1.4.1.1.88.11", {"CompletionFlag": "COMPLETE", "VerificationFlag": "UNVERIFIED",
                                       "ConceptNameCodeSequence": [Dataset()]}, "SR DOCUMENT"),
    ("1.2.840.10008.5.1.4.1.1.88.59", {"ConceptNameCodeSequence": [Dataset()]}, "KEY OBJECT DOC"),
    ("1.2.840.10008.5.1.4.1.1.11.1", {"PresentationCreationDate": "20260101",
                                      "PresentationCreationTime": "1200", "ContentLabel": "L"},
     "PRESENTATION"),
    ("1.2.840.10008.5.1.4.1.1.9.1.1", {}, "WAVEFORM"),
    ("1.2.840.10008.5.1.4.1.1.104.1", {"EncapsulatedDocument": b"%PDF",
                                       "MIMETypeOfEncapsulatedDocument": "application/pdf"},
     "ENCAP DOC"),
    ("1.2.840.10008.5.1.4.1.1.481.2", {"DoseSummationType": "PLAN"}, "RT DOSE"),
    ("1.2.840.10008.5.1.4.1.1.481.5", {"RTPlanLabel": "P"}, "RT PLAN"),
    ("1.2.840.10008.5.1.4.1.1.66", {}, "RAW DATA"),
    ("1.2.840.10008.5.1.4.1.1.66.1", {"ContentLabel": "R"}, "REGISTRATION"),
    ("1.2.840.10008.5.1.4.1.1.66.2", {"ContentLabel": "F"}, "FIDUCIAL"),
])
def test_leaf_record_type_and_references_by_sop_class(sop_class, extra, record_type):
    ds = _instance(sop_class, StudyDate="20260102", StudyTime="101010", **extra)
    kind, record = leaf_record(ds, _FID, "1.2.840.10008.1.2.1", 7)
    assert kind == record_type == leaf_record_type(ds)
    assert list(record.ReferencedFileID) == list(_FID)
    assert record.ReferencedSOPClassUIDInFile == sop_class
    assert record.ReferencedSOPInstanceUIDInFile == ds.SOPInstanceUID
    assert record.ReferencedTransferSyntaxUIDInFile == "1.2.840.10008.1.2.1"
    if "InstanceNumber" in record:
        assert record.InstanceNumber == 7  # the instance had none: the planner's counter
    if kind in ("WAVEFORM", "RAW DATA", "REGISTRATION", "FIDUCIAL"):
        assert (record.ContentDate, record.ContentTime) == ("20260102", "101010")


def test_sr_record_keeps_only_concept_modifiers_and_the_verification_time():
    mod, contained = Dataset(), Dataset()
    mod.RelationshipType, contained.RelationshipType = "HAS CONCEPT MOD", "CONTAINS"
    observer = Dataset()
    observer.VerificationDateTime = "20260101120000"
    ds = _instance("1.2.840.10008.5.1.4.1.1.88.11", CompletionFlag="COMPLETE",
                   VerificationFlag="VERIFIED", ConceptNameCodeSequence=[Dataset()],
                   ContentDate="20260101", ContentTime="1200", ContentSequence=[mod, contained],
                   VerifyingObserverSequence=[observer])
    _, record = leaf_record(ds, _FID, "1.2.840.10008.1.2.1", 1)
    assert [i.RelationshipType for i in record.ContentSequence] == ["HAS CONCEPT MOD"]
    assert record.VerificationDateTime == "20260101120000"
    del ds.VerifyingObserverSequence
    with pytest.raises(RecordError, match="Verification DateTime"):
        leaf_record(ds, _FID, "1.2.840.10008.1.2.1", 1)


def test_study_and_series_records_fill_type_1_keys_the_instance_lacks():
    ds = _instance("1.2.840.10008.5.1.4.1.1.7", SeriesDate="20250505", SeriesTime="0909")
    study = study_record(ds, "ACC9")
    assert (study.StudyDate, study.StudyTime, study.StudyID) == ("20250505", "0909", "ACC9")
    assert study.AccessionNumber == "" and study.StudyDescription == ""
    series = series_record(ds, 3)
    assert (series.Modality, series.SeriesNumber) == ("OT", 3)
    del ds.StudyInstanceUID
    with pytest.raises(RecordError, match="Study Instance UID"):
        study_record(ds, "1")


@pytest.mark.parametrize("date, time, expect", [
    ("1997.04.24", "14:04:38", ("19970424", "140438")),       # ACR-NEMA, in pydicom's Big Endian file
    ("19970424", "140438.125", ("19970424", "140438.125")),
    ("24/04/1997", "2pm", ("20250505", "0909")),             # invalid: the series' values are taken
])
def test_a_study_record_never_copies_a_date_or_time_invalid_for_its_vr(date, time, expect):
    # dciodvfy rejects "1997.04.24" in a DA (PS3.5 6.2); the record carries a valid value instead.
    ds = _instance("1.2.840.10008.5.1.4.1.1.7", StudyDate=date, StudyTime=time, SeriesDate="20250505",
                   SeriesTime="0909")
    study = study_record(ds, "1")
    assert (study.StudyDate, study.StudyTime) == expect


def _tree(n_patients: int, n_images: int) -> list[RecordNode]:
    roots = []
    for p in range(n_patients):
        ds = _instance("1.2.840.10008.5.1.4.1.1.2", PatientID=f"P{p}", StudyDate="20260101",
                       StudyTime="1200", Modality="CT", SeriesNumber=1)
        patient = RecordNode("PATIENT", patient_record(ds, f"P{p}"))
        study = RecordNode("STUDY", study_record(ds, "1"))
        series = RecordNode("SERIES", series_record(ds, 1))
        patient.children.append(study)
        study.children.append(series)
        for i in range(n_images):
            ds.SOPInstanceUID = generate_uid()
            fid = ("DICOM", f"P{p + 1:07d}", "S0000001", "S0000001", f"I{i + 1:07d}")
            series.children.append(RecordNode(*leaf_record(ds, fid, "1.2.840.10008.1.2.1", i + 1)))
        roots.append(patient)
    return roots


def _walk_offsets(path: Path) -> list[tuple[int, str, str]]:
    """Follow the offsets as a reader does: (depth, record type, key) in traversal order."""
    ds = pydicom.dcmread(path)
    at = {item.seq_item_tell: item for item in ds.DirectoryRecordSequence}
    out = []

    def visit(offset: int, depth: int) -> None:
        while offset:
            rec = at[offset]
            key = rec.get("PatientID") or rec.get("StudyID") or str(rec.get("SeriesNumber", "")) \
                or "/".join(rec.get("ReferencedFileID", []))
            out.append((depth, rec.DirectoryRecordType, str(key)))
            visit(rec.OffsetOfReferencedLowerLevelDirectoryEntity, depth + 1)
            offset = rec.OffsetOfTheNextDirectoryRecord

    visit(ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity, 0)
    last = ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity
    assert at[last].DirectoryRecordType == "PATIENT" and at[last].OffsetOfTheNextDirectoryRecord == 0
    return out


def _expected(roots: list[RecordNode]) -> list[tuple[int, str, str]]:
    out = []

    def visit(nodes, depth):
        for n in nodes:
            r = n.record
            key = r.get("PatientID") or r.get("StudyID") or str(r.get("SeriesNumber", "")) \
                or "/".join(r.get("ReferencedFileID", []))
            out.append((depth, n.record_type, str(key)))
            visit(n.children, depth + 1)

    visit(roots, 0)
    return out


def test_offsets_lead_a_reader_through_the_whole_tree(tmp_path):
    roots = _tree(3, 4)
    stats = write_dicomdir(tmp_path / "DICOMDIR", roots, "TEST SET")
    assert stats.records == 3 * (3 + 4)
    assert _walk_offsets(tmp_path / "DICOMDIR") == _expected(roots)
    ds = pydicom.dcmread(tmp_path / "DICOMDIR")
    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert ds.FileSetID == "TEST SET" and ds.FileSetConsistencyFlag == 0


def test_each_record_is_encoded_once_whatever_the_size(monkeypatch):
    calls = []
    real = dicomdir.write_dataset
    monkeypatch.setattr(dicomdir, "write_dataset", lambda fp, ds: calls.append(1) or real(fp, ds))
    for n_images in (10, 1000):
        calls.clear()
        roots = _tree(2, n_images)
        data, stats = encode_dicomdir(roots)
        assert len(calls) == stats.encodings == stats.records == 2 * (3 + n_images)
        assert len(data) == stats.size


@pytest.mark.parametrize("name", ["chrH31.dcm", "chrJapMulti.dcm", "chrFren.dcm", "chrGerm.dcm"])
def test_names_survive_in_their_character_set(tmp_path, name):
    src = pydicom.dcmread(_CHARSETS / name, stop_before_pixels=True)
    record = patient_record(src, "PID")
    write_dicomdir(tmp_path / "DICOMDIR", [RecordNode("PATIENT", record)])
    back = pydicom.dcmread(tmp_path / "DICOMDIR").DirectoryRecordSequence[0]
    assert back.SpecificCharacterSet == src.SpecificCharacterSet
    assert str(back.PatientName) == str(src.PatientName)
    assert back["PatientName"].value.original_string == src["PatientName"].value.original_string


def test_every_record_starts_in_use_with_its_type_padded_to_even_length():
    # PS3.3 F.3.2.2: (0004,1410) FFFFH is "in use" (0000H would hide the record from a reader);
    # PS3.5 7.1.1: every value has even length (IMAGE is padded with a space).
    data, stats = encode_dicomdir(_tree(1, 2))
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    records = ds.DirectoryRecordSequence
    assert len(records) == stats.records == 5
    assert [r.RecordInUseFlag for r in records] == [0xFFFF] * 5
    assert [r.DirectoryRecordType for r in records] == ["PATIENT", "STUDY", "SERIES", "IMAGE", "IMAGE"]
    at = data.index(b"\x04\x00\x30\x14CS\x06\x00IMAGE ")
    assert at > 0


def _as_keys(nodes: list[RecordNode]) -> list[RecordNode]:
    """The same tree with every record given as its encoded keys, as the planner keeps them."""
    return [RecordNode(n.record_type, children=_as_keys(n.children), keys=encode_keys(n.record_type, n.record))
            for n in nodes]


def test_records_given_as_encoded_keys_write_the_same_file_as_datasets(tmp_path, monkeypatch):
    monkeypatch.setattr(dicomdir, "generate_uid", lambda: "1.2.3.4")
    roots = _tree(2, 3)
    from_datasets, stats = encode_dicomdir(roots, "SAME")
    from_keys, key_stats = encode_dicomdir(_as_keys(roots), "SAME")
    assert from_keys == from_datasets and key_stats == stats
    # write_dicomdir streams the records to the file: the file is encode_dicomdir's bytes.
    assert write_dicomdir(tmp_path / "DICOMDIR", _as_keys(roots), "SAME") == stats
    assert (tmp_path / "DICOMDIR").read_bytes() == from_datasets
    assert _walk_offsets(tmp_path / "DICOMDIR") == _expected(roots)


def test_a_keys_record_read_and_changed_is_written_as_changed():
    roots = _as_keys(_tree(1, 1))
    patient = roots[0]
    assert patient.record.PatientID == "P0"  # decoded from the keys on first read
    patient.record.PatientID = "CHANGED"
    data, _ = encode_dicomdir(roots)
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    assert ds.DirectoryRecordSequence[0].PatientID == "CHANGED"
    with pytest.raises(TypeError, match="keys"):
        RecordNode("PATIENT")
