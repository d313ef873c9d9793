"""The file-set planner and writer: File IDs, patients, filled keys, what is left out and why, the
mapping that lets a drive write each byte once, and the size estimate."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct
from pydicom.uid import generate_uid

from gateway.media import fileset as fileset_module
from gateway.media.file_ids import check_file_id
from gateway.media.fileset import FilesetError, materialize, plan_fileset, write_fileset

_FILES = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"


def _cts(folder: Path, n: int, **kw) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"src{i}.dcm"
        make_ct(path, number=i + 1, **kw)
        out.append(path)
    return out


def test_file_ids_follow_patients_studies_and_series(tmp_path):
    study = generate_uid()
    files = (_cts(tmp_path / "a", 2, study_uid=study, series_uid=generate_uid())
             + _cts(tmp_path / "b", 1, study_uid=study, series_uid=generate_uid())
             + _cts(tmp_path / "c", 1, patient_id="PID-2"))
    plan = plan_fileset(files, "STD-GEN-CD")
    assert not plan.left_out
    assert [f.path for f in plan.files] == [
        "DICOM/P0000001/S0000001/S0000001/I0000001",
        "DICOM/P0000001/S0000001/S0000001/I0000002",
        "DICOM/P0000001/S0000001/S0000002/I0000001",
        "DICOM/P0000002/S0000001/S0000001/I0000001",
    ]
    for f in plan.files:
        check_file_id(f.file_id)


def test_one_patient_id_one_patient_the_second_name_is_left_out(tmp_path):
    first = _cts(tmp_path / "a", 1)
    other = tmp_path / "b.dcm"
    ds = make_ct(other, patient_id="PID-1")
    ds.PatientName = "Other^Person"
    ds.save_as(other, enforce_file_format=True)
    plan = plan_fileset(first + [other], "STD-GEN-CD")
    assert [f.source for f in plan.files] == first
    [gone] = plan.left_out
    assert gone.source == other and "PID-1" in gone.reason and "not merged" in gone.reason
    assert "Other" not in gone.reason  # names stay out of reasons (they are logged)


def test_missing_keys_are_filled(tmp_path):
    path = tmp_path / "x.dcm"
    ds = make_ct(path)
    for kw in ("PatientID", "StudyID", "SeriesNumber", "InstanceNumber", "Modality"):
        delattr(ds, kw)
    ds.AccessionNumber = "ACC-77"
    ds.save_as(path, enforce_file_format=True)
    plan = plan_fileset([path], "STD-GEN-CD")
    assert not plan.left_out
    [patient] = plan.record_tree()
    study = patient.children[0]
    series = study.children[0]
    image = series.children[0]
    assert patient.record.PatientID == "NOID0001"
    assert study.record.StudyID == "ACC-77"
    assert series.record.SeriesNumber == 1 and series.record.Modality == "OT"
    assert image.record.InstanceNumber == 1


def test_unreadable_duplicate_and_unconvertible_instances_are_left_out_with_reasons(tmp_path):
    good = _cts(tmp_path / "a", 1)
    junk = tmp_path / "junk"
    junk.write_bytes(b"not dicom")
    plan = plan_fileset(good + [good[0], junk, _FILES / "ExplVR_BigEnd.dcm"], "STD-GEN-CD")
    reasons = {p.source.name: p.reason for p in plan.left_out}
    assert "already on the file-set" in reasons["src0.dcm"]
    assert "not a readable DICOM file" in reasons["junk"]
    assert all("\n" not in r for r in reasons.values())
    # Explicit VR Big Endian is not left out: it is converted (gateway/media/profiles.py).
    assert len(plan.files) == 2 and [f.convert for f in plan.files] == [False, True]


def test_the_plan_reads_headers_only(tmp_path, monkeypatch):
    # Images are read by the structure walk, which seeks over values and collects only the
    # record keys; anything else by pydicom, stopping before the pixels. Either way no pixel data.
    seen, walked = [], []
    real = pydicom.dcmread
    monkeypatch.setattr(fileset_module.pydicom, "dcmread",
                        lambda *a, **kw: seen.append(kw.get("stop_before_pixels")) or real(*a, **kw))
    real_walk = fileset_module.walk_file
    monkeypatch.setattr(fileset_module, "walk_file",
                        lambda path, syntax=None, wanted=frozenset(): walked.append(wanted)
                        or real_walk(path, syntax, wanted))
    plan = plan_fileset(_cts(tmp_path, 3) + [_FILES / "test-SR.dcm"], "STD-GEN-CD")
    assert len(plan.files) == 4
    assert seen == [True]
    assert len(walked) == 4 and not any(0x7FE00010 in w for w in walked)


def test_mapping_writes_each_byte_once_and_materialize_lays_it_out(tmp_path):
    files = _cts(tmp_path / "src", 2) + [_FILES / "SC_rgb_jpeg_dcmtk.dcm"]
    plan = plan_fileset(files, "STD-GEN-CD", "EXPORT 1")
    assert [f.convert for f in plan.files] == [False, False, True]
    staging = tmp_path / "staging"
    mapping = write_fileset(plan, staging)
    assert mapping[0] == ("DICOMDIR", staging / "DICOMDIR")
    assert mapping[1][1] == files[0] and mapping[2][1] == files[1]  # straight from the buffer
    assert mapping[3][1] == staging / mapping[3][0]                  # converted in staging
    staged = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    assert staged == sorted(["DICOMDIR", mapping[3][0]])             # nothing else staged

    out = tmp_path / "medium"
    plan2 = plan_fileset(files, "STD-GEN-CD", "EXPORT 1")
    materialize(plan2, out)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(rel for rel, _ in mapping)
    for rel, src in mapping[1:3]:
        assert (out / rel).read_bytes() == src.read_bytes()
    actual = sum((out / rel).stat().st_size for rel, _ in mapping)
    assert plan2.estimated_size >= actual
    with pytest.raises(FilesetError, match="not empty"):
        materialize(plan_fileset(files, "STD-GEN-CD"), out)


def test_a_plan_with_nothing_left_is_refused(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"x")
    with pytest.raises(FilesetError, match="nothing to put"):
        write_fileset(plan_fileset([junk], "STD-GEN-USB-JPEG"), tmp_path / "s")


@pytest.mark.parametrize("fsid", ["lower", "TOO LONG FILESET ID", "A.B"])
def test_a_bad_fileset_id_is_refused(tmp_path, fsid):
    from gateway.media.file_ids import FileIdError
    with pytest.raises(FileIdError, match="File-set ID"):
        plan_fileset([], "STD-GEN-CD", fsid)
