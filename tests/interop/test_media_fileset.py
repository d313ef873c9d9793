"""File-sets the gateway writes, checked by real readers: dicom3tools' dciodvfy, DCMTK's dcdirdmp
and dcmmkdir (the profile check), pydicom's FileSet; every referenced file is there and is what its
record says. Built from pydicom's shipped test and charset files for the three profiles."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pydicom
import pytest
from peers import require
from pydicom.fileset import FileSet

from gateway.media.fileset import FilesetError, materialize, plan_fileset

_DATA = Path(os.path.dirname(pydicom.__file__)) / "data"
_INPUTS = sorted((_DATA / "test_files").glob("*.dcm")) + sorted((_DATA / "charset_files").glob("*.dcm"))
PROFILES = {"STD-GEN-CD": "-Pgp", "STD-GEN-DVD-JPEG": "-Pdv", "STD-GEN-USB-JPEG": "-Pfl"}
# dcmmkdir reads the instances as well as the DICOMDIR: some of pydicom's test instances lack
# Type 1 keys themselves (Modality, Patient's Name); the records fill them (PS3.3 F.5), and DCMTK
# still names the instance. That line, and only that line, is not a failure of the file-set.
_INSTANCE_GAP = re.compile(r"^E: required attribute \w+ \([0-9A-F,]+\) missing in file: ")


def _sop_uid(path: Path) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(pydicom.dcmread(path, stop_before_pixels=True).get("SOPInstanceUID", "")) or None
    except Exception:  # noqa: BLE001 - unreadable inputs go in the first group; the plan reports them
        return None


def _groups() -> list[list[Path]]:
    """The inputs split so that no SOP Instance UID repeats in a group (pydicom ships one image in
    many transfer syntaxes under one UID, and a file-set holds an instance once)."""
    groups: list[list[Path]] = []
    seen: list[set[str]] = []
    for path in _INPUTS:
        uid = _sop_uid(path)
        for group, uids in zip(groups, seen):
            if uid is None or uid not in uids:
                group.append(path)
                uids.add(uid or "")
                break
        else:
            groups.append([path])
            seen.append({uid or ""})
    return groups


@pytest.fixture(scope="module")
def filesets(tmp_path_factory):
    """{profile: [(plan, root folder)]}, one file-set per group."""
    built = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about its deliberately odd test files
        for profile in PROFILES:
            built[profile] = []
            for i, group in enumerate(_groups()):
                root = tmp_path_factory.mktemp(f"{profile}-{i}")
                plan = plan_fileset(group, profile, f"GROUP {i}")
                try:
                    materialize(plan, root / "medium")
                except FilesetError:
                    assert not plan.files  # a group of which the profile takes nothing
                    built[profile].append((plan, None))
                    continue
                built[profile].append((plan, root / "medium"))
    return built


def _written(filesets, profile):
    return [(plan, root) for plan, root in filesets[profile] if root is not None]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_input_is_on_a_file_set_or_left_out_with_a_reason(filesets, profile):
    placed = [f.source for plan, _ in filesets[profile] for f in plan.files]
    left = {p.source: p.reason for plan, _ in filesets[profile] for p in plan.left_out}
    assert sorted(placed + list(left)) == sorted(_INPUTS)
    assert all(reason and "\n" not in reason for reason in left.values())
    syntaxes = {f.source_syntax for plan, _ in filesets[profile] for f in plan.files}
    # The shipped files cover uncompressed, RLE, JPEG, JPEG-LS and JPEG 2000: each either went on
    # the medium (converted where the profile said so) or is left out with the reason.
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5",
            "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90"} <= syntaxes
    allowed = {"STD-GEN-CD": {"1.2.840.10008.1.2.1"}}.get(
        profile, {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                  "1.2.840.10008.1.2.4.70"})
    assert {f.syntax for plan, _ in filesets[profile] for f in plan.files} <= allowed


@pytest.mark.parametrize("profile", PROFILES)
def test_dciodvfy_finds_no_error(filesets, profile):
    exe = require("dciodvfy", "dicom3tools")
    for _, root in _written(filesets, profile):
        out = subprocess.run([exe, "DICOMDIR"], cwd=root, capture_output=True, text=True, errors="replace", timeout=120)
        errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{root}: {errors[:5]}"


@pytest.mark.parametrize("profile", PROFILES)
def test_dcdirdmp_reads_every_record(filesets, profile):
    exe = require("dcdirdmp", "dcmtk")
    for plan, root in _written(filesets, profile):
        out = subprocess.run([exe, "DICOMDIR"], cwd=root, capture_output=True, text=True, errors="replace", timeout=120)
        assert out.returncode == 0, out.stderr[-500:]
        text = out.stdout + out.stderr
        for f in plan.files:
            assert "\\".join(f.file_id) in text


@pytest.mark.parametrize("profile", PROFILES)
def test_dcmmkdir_profile_check_in_update_mode(filesets, profile, tmp_path):
    exe = require("dcmmkdir", "dcmtk")
    for i, (_, root) in enumerate(_written(filesets, profile)):
        # dcmmkdir renames an existing DICOMDIR to DICOMDIR.BAK even with -w: it checks a copy,
        # updating it (+U, reading our records and matching them to the files), never the medium.
        copy = tmp_path / str(i)
        copy.mkdir()
        shutil.copy(root / "DICOMDIR", copy / "DICOMDIR")
        out = subprocess.run([exe, "+U", "-nb", "+D", str(copy / "DICOMDIR"), PROFILES[profile],
                              "+I", "+r", "+id", str(root), "DICOM"],
                             capture_output=True, text=True, errors="replace", timeout=300)
        lines = (out.stdout + out.stderr).splitlines()
        errors = [line for line in lines if line.startswith(("E:", "F:")) and not _INSTANCE_GAP.match(line)]
        assert out.returncode == 0 and not errors, f"{root}: {errors[:5]}"
        assert sorted(os.listdir(root)) == ["DICOM", "DICOMDIR"]


@pytest.mark.parametrize("profile", PROFILES)
def test_pydicom_loads_it_and_every_record_matches_its_file(filesets, profile):
    for plan, root in _written(filesets, profile):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fs = FileSet(root / "DICOMDIR")
            instances = list(fs)
        # FileSet makes a staging folder even to read; it is not closed by anything public.
        fs._stage["t"].cleanup()
        assert len(instances) == len(plan.files)
        for inst in instances:
            path = Path(inst.path)
            assert path.is_file()
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            assert ds.SOPInstanceUID == inst.ReferencedSOPInstanceUIDInFile
            assert ds.SOPClassUID == inst.ReferencedSOPClassUIDInFile
            assert ds.file_meta.TransferSyntaxUID == inst.ReferencedTransferSyntaxUIDInFile
        assert sorted(os.listdir(root)) == ["DICOM", "DICOMDIR"]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name, charset", [("chrH31.dcm", "ISO 2022 IR 87"), ("chrFren.dcm", "ISO_IR 100")])
def test_japanese_and_latin1_names_survive_into_the_records(tmp_path, profile, name, charset):
    source = pydicom.dcmread(_DATA / "charset_files" / name, stop_before_pixels=True)
    plan = plan_fileset([_DATA / "charset_files" / name], profile)
    materialize(plan, tmp_path / "m")
    ds = pydicom.dcmread(tmp_path / "m" / "DICOMDIR")
    patients = [r for r in ds.DirectoryRecordSequence if r.DirectoryRecordType == "PATIENT"]
    [patient] = patients
    assert charset in list(pydicom.multival.MultiValue(str, patient.SpecificCharacterSet)) \
        or patient.SpecificCharacterSet == charset
    assert str(patient.PatientName) == str(source.PatientName)
    assert patient["PatientName"].value.original_string == source["PatientName"].value.original_string
    exe = require("dcdirdmp", "dcmtk")
    assert subprocess.run([exe, "DICOMDIR"], cwd=tmp_path / "m", capture_output=True,
                          timeout=60).returncode == 0


def _dciodvfy_errors(exe: str, path: Path) -> set[str]:
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, errors="replace", timeout=120)
    return {line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")}


def test_a_converted_instance_has_no_dciodvfy_error_its_source_lacks(filesets):
    """The gateway creates the converted files: pydicom's test instances bring errors of their own,
    and the conversion must add none (dciodvfy cannot read a deflated source, so those are not
    compared)."""
    exe = require("dciodvfy", "dicom3tools")
    compared = 0
    for plan, root in _written(filesets, "STD-GEN-CD"):
        for f in plan.files:
            if not f.convert or f.source_syntax == "1.2.840.10008.1.2.1.99":
                continue
            added = _dciodvfy_errors(exe, root / f.path) - _dciodvfy_errors(exe, f.source)
            assert not added, f"{f.source.name}: {sorted(added)[:3]}"
            compared += 1
    assert compared >= 15
