"""The File-set Reader on badly made media: each problem reported precisely, the good files imported
and routed, nothing already stored touched. The media are folders built from pydicom's shipped test
files; the good file-set's DICOMDIR is made by DCMTK's dcmmkdir (the real peer), then damaged."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct
from peers import TEST_FILES, require

from gateway.buffer.imports import ImportStore
from gateway.buffer.ingest import FORWARD, Buffer
from gateway.buffer.intake import Intake
from gateway.buffer.source import Source
from gateway.config import Config
from gateway.dicom.sop_classes import storage_sop_classes
from gateway.event_kinds import MediaImportFinished, MediaImportStarted, Received
from gateway.events import EventBus
from gateway.media.importer import PATIENT_ID_CONFLICT, Reason, Status, import_tree, normalise_name
from gateway.part10.attributes import configure_pydicom
from gateway.routing import Router

CT = TEST_FILES / "CT_small.dcm"
MR = TEST_FILES / "MR_small.dcm"
CT_UID = str(pydicom.dcmread(CT, stop_before_pixels=True).SOPInstanceUID)
MR_UID = str(pydicom.dcmread(MR, stop_before_pixels=True).SOPInstanceUID)
LABEL = "DISC1"


class Gateway:
    """A buffer with its intake, routing every medium to 'archive' and CT from anyone to 'pacs'."""

    def __init__(self, root: Path, policy: str = "replace"):
        self.config = Config.model_validate({
            "destinations": {"pacs": {"ae_title": "PACS", "port": 11122},
                             "archive": {"ae_title": "ARCHIVE", "port": 11123}},
            "routes": [{"to": ["archive"], "source": ["MEDIA:*"]}, {"to": ["pacs"], "modality": ["CT"]}],
            "buffer": {"duplicate_policy": policy},
        })
        configure_pydicom()
        self.buffer = Buffer(root, 0, policy, Router(self.config))
        self.events = EventBus()
        self.seen = self.events.subscribe()
        self.intake = Intake(self.config, self.buffer, self.events, storage_sop_classes())

    def run(self, medium: Path, label: str = LABEL):
        return import_tree(medium, label, self.intake, self.buffer.files.new_incoming_path)

    def instances(self) -> dict[str, dict]:
        return {r["sop_uid"]: dict(r) for r in self.buffer.index.query("SELECT * FROM instances")}

    def jobs(self) -> set[tuple[str, str, str]]:
        return {(r["sop_uid"], r["kind"], r["target"]) for r in self.buffer.index.query(
            "SELECT i.sop_uid, j.kind, j.target FROM jobs j JOIN instances i ON i.id = j.instance_fk"
            " WHERE j.state = 'queued'")}

    def published(self):
        out = []
        while not self.seen.empty():
            out.append(self.seen.get_nowait().payload)
        return out


@pytest.fixture
def gw(tmp_path):
    g = Gateway(tmp_path / "buffer")
    yield g
    g.buffer.close()


def fileset(root: Path, files: dict[str, Path]) -> Path:
    """A medium folder holding `files` (File ID "IMAGES/IM0001" -> source) and a DICOMDIR that
    dcmmkdir (STD-GEN-CD, the default profile) made over them."""
    exe = require("dcmmkdir", "dcmtk")
    root.mkdir(parents=True, exist_ok=True)
    for fid, src in files.items():
        (root / fid).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / fid)
    r = subprocess.run([exe, "+r", "+D", "DICOMDIR", *files], cwd=root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and (root / "DICOMDIR").is_file(), r.stderr
    return root


def two_file_set(tmp_path: Path) -> Path:
    return fileset(tmp_path / "medium", {"IMAGES/IM0001": CT, "IMAGES/IM0002": MR})


def by_path(report) -> dict[str, object]:
    return {i.path: i for i in report.items}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- a good file-set --------------------------------------------------------------------------------
def test_a_dcmmkdir_fileset_is_imported_routed_and_reported(gw, tmp_path):
    medium = two_file_set(tmp_path)
    before = tree_bytes(medium)
    report = gw.run(medium)

    assert report.method == "dicomdir" and report.note == "" and report.ok
    assert {(i.path, i.status, i.outcome, i.file_id) for i in report.items} == {
        ("IMAGES/IM0001", Status.IMPORTED, "stored", "IMAGES\\IM0001"),
        ("IMAGES/IM0002", Status.IMPORTED, "stored", "IMAGES\\IM0002")}
    # In the buffer, from MEDIA:DISC1, routed as a C-STORE from that source would be.
    held = gw.instances()
    assert set(held) == {CT_UID, MR_UID}
    assert {r["calling_ae"] for r in held.values()} == {"MEDIA:DISC1"}
    assert gw.jobs() == {(CT_UID, FORWARD, "archive"), (CT_UID, FORWARD, "pacs"), (MR_UID, FORWARD, "archive")}
    # The medium is read, never moved or changed.
    assert tree_bytes(medium) == before
    assert not any(gw.buffer.files.incoming.iterdir())
    # Events: started, one "received" per file (the intake's, source MEDIA:DISC1), finished with counts.
    events = gw.published()
    assert isinstance(events[0], MediaImportStarted) and events[0].method == "dicomdir"
    assert [e.source for e in events if isinstance(e, Received)] == ["MEDIA:DISC1"] * 2
    assert events[-1] == MediaImportFinished(import_id=report.import_id, label=LABEL, imported=2, duplicates=0,
                                             skipped=0, failed=0, flagged=0)
    # The report in the buffer.
    store = ImportStore(gw.buffer.index)
    row = store.get(report.import_id)
    assert (row.state, row.method, row.files, row.imported, row.skipped) == ("finished", "dicomdir", 2, 2, 0)
    assert [(i.status, i.sop_uid, i.file_id) for i in store.items(report.import_id)] == [
        (i.status.value, i.sop_uid, i.file_id) for i in report.items]


def test_importing_the_same_medium_again_is_all_duplicates_and_queues_nothing_twice(gw, tmp_path):
    medium = two_file_set(tmp_path)
    gw.run(medium)
    jobs = gw.jobs()
    again = gw.run(medium)
    assert [(i.status, i.outcome) for i in again.items] == [(Status.DUPLICATE, "identical")] * 2
    assert again.ok and gw.jobs() == jobs


# -- badly made media --------------------------------------------------------------------------------
def test_no_dicomdir_scans_every_file_and_names_the_non_dicom_one(gw, tmp_path):
    medium = tmp_path / "stick"
    (medium / "study" / "a").mkdir(parents=True)
    shutil.copyfile(CT, medium / "study" / "a" / "ct.dcm")
    shutil.copyfile(MR, medium / "study" / "mr")
    (medium / "README.TXT").write_text("Viewer inside. Not DICOM.\n")
    report = gw.run(medium)
    assert report.method == "scan" and report.note == "no DICOMDIR: every file was read"
    items = by_path(report)
    assert items["study/a/ct.dcm"].status is Status.IMPORTED and items["study/mr"].status is Status.IMPORTED
    readme = items["README.TXT"]
    assert (readme.status, readme.reason) == (Status.SKIPPED, Reason.NOT_DICOM)
    assert readme.line() == ('skipped: README.TXT: not a DICOM file (no "DICM" after the 128-byte preamble, '
                             'PS3.10 7.1)')
    assert not report.ok and report.summary() == "3 files: 2 imported, 0 duplicate, 1 skipped, 0 failed; 0 flagged"
    # Scanned files have no File ID in the stored report: their folder names may be anything.
    assert {i.file_id for i in ImportStore(gw.buffer.index).items(report.import_id)} == {""}


def test_lower_case_names_version_suffixes_and_dcm_extensions_match_the_file_ids(gw, tmp_path):
    """What Linux shows of a plain ISO 9660 disc (map=normal: lower case), of one mounted with
    map=off (";1"), and of a writer that added ".dcm" to the names its DICOMDIR spells without."""
    medium = fileset(tmp_path / "medium", {"IMAGES/IM0001": CT, "IMAGES/SUB/IM0002": MR})
    (medium / "IMAGES" / "IM0001").rename(medium / "IMAGES" / "IM0001;1")
    (medium / "IMAGES" / "SUB" / "IM0002").rename(medium / "IMAGES" / "SUB" / "im0002.dcm")
    (medium / "IMAGES" / "SUB").rename(medium / "IMAGES" / "sub")
    (medium / "IMAGES").rename(medium / "images")
    (medium / "DICOMDIR").rename(medium / "dicomdir")
    report = gw.run(medium)
    assert report.method == "dicomdir" and report.ok, [i.line() for i in report.items]
    assert {i.path: i.sop_uid for i in report.items} == {"images/IM0001;1": CT_UID, "images/sub/im0002.dcm": MR_UID}
    assert set(gw.instances()) == {CT_UID, MR_UID}


def test_normalise_name():
    assert [normalise_name(n) for n in ("im0001", "IM0001;1", "IM0001.", "IM0001.;1", "a.dcm")] == [
        "IM0001", "IM0001", "IM0001", "IM0001", "A.DCM"]


def _patch_first_record_offset(dicomdir: Path, delta: int) -> None:
    """Move the root entity's first-record offset (0004,1200), UL, explicit VR little endian."""
    data = bytearray(dicomdir.read_bytes())
    tag = b"\x04\x00\x00\x12UL\x04\x00"
    at = data.index(tag) + len(tag)
    value = int.from_bytes(data[at:at + 4], "little")
    data[at:at + 4] = (value + delta).to_bytes(4, "little")
    dicomdir.write_bytes(bytes(data))


def _dcdirdmp(dicomdir: Path) -> str:
    exe = require("dcdirdmp", "dcmtk")
    r = subprocess.run([exe, str(dicomdir)], capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


def test_a_stale_offset_is_reported_and_the_tree_scanned(gw, tmp_path):
    medium = two_file_set(tmp_path)
    assert "Error" not in _dcdirdmp(medium / "DICOMDIR")
    _patch_first_record_offset(medium / "DICOMDIR", 8)
    # The test bed, checked by a real reader: DCMTK finds the patched DICOMDIR broken too.
    assert "Directory record offset invalid" in _dcdirdmp(medium / "DICOMDIR")
    report = gw.run(medium)
    assert report.method == "scan"
    assert report.note.startswith("stale offset in the DICOMDIR: the root directory entity's first record "
                                  "(0004,1200) points at byte "), report.note
    assert report.note.endswith("where no directory record starts; every file was read instead")
    # The scan imports both images; the DICOMDIR itself is not taken for a file to import.
    assert {i.path: i.status for i in report.items} == {"IMAGES/IM0001": Status.IMPORTED,
                                                         "IMAGES/IM0002": Status.IMPORTED}
    assert report.ok and set(gw.instances()) == {CT_UID, MR_UID}
    assert ImportStore(gw.buffer.index).get(report.import_id).note == report.note


def test_records_no_chain_reaches_are_stale_offsets_too(gw, tmp_path):
    """An offset that lands on a record, but skips the first PATIENT: its files are unreachable."""
    medium = fileset(tmp_path / "medium", {"IMAGES/IM0001": CT, "IMAGES/IM0002": MR})
    ds = pydicom.dcmread(medium / "DICOMDIR")
    # The second root record (the other patient) as the first: the first patient's chain is lost.
    roots = [r for r in ds.DirectoryRecordSequence if r.DirectoryRecordType == "PATIENT"]
    assert len(roots) == 2
    _patch_first_record_offset(medium / "DICOMDIR", roots[1].seq_item_tell - roots[0].seq_item_tell)
    report = gw.run(medium)
    assert report.method == "scan"
    assert "directory records are reached by no chain from the root" in report.note
    assert report.ok and len(report.items) == 2


def test_an_unreadable_dicomdir_is_said_and_the_tree_scanned(gw, tmp_path):
    medium = two_file_set(tmp_path)
    (medium / "DICOMDIR").write_bytes(b"\0" * 100)
    report = gw.run(medium)
    assert report.method == "scan" and report.note.startswith("DICOMDIR cannot be read (")
    assert report.ok and len(report.items) == 2


def test_a_missing_referenced_file_is_named_and_the_rest_imported(gw, tmp_path):
    medium = two_file_set(tmp_path)
    (medium / "IMAGES" / "IM0002").unlink()
    report = gw.run(medium)
    assert report.method == "dicomdir"
    missing = by_path(report)["IMAGES/IM0002"]
    assert (missing.status, missing.reason, missing.file_id, missing.sop_uid) == (
        Status.SKIPPED, Reason.MISSING_FILE, "IMAGES\\IM0002", MR_UID)
    assert missing.line() == "skipped: IMAGES/IM0002: the DICOMDIR references this file; it is not on the medium"
    assert by_path(report)["IMAGES/IM0001"].status is Status.IMPORTED
    assert not report.ok and set(gw.instances()) == {CT_UID}


def test_a_record_naming_another_instance_than_its_file_holds_is_skipped(gw, tmp_path):
    medium = two_file_set(tmp_path)
    other = TEST_FILES / "rtplan.dcm"
    other_uid = str(pydicom.dcmread(other, stop_before_pixels=True).SOPInstanceUID)
    shutil.copyfile(other, medium / "IMAGES" / "IM0002")
    report = gw.run(medium)
    bad = by_path(report)["IMAGES/IM0002"]
    assert (bad.status, bad.reason) == (Status.SKIPPED, Reason.RECORD_MISMATCH)
    assert bad.detail == f"the DICOMDIR record says SOP Instance UID {MR_UID}, the file holds {other_uid}"
    assert set(gw.instances()) == {CT_UID}


def _with(src: Path, dst: Path, **values) -> Path:
    ds = pydicom.dcmread(src)
    for k, v in values.items():
        setattr(ds, k, v)
    if "SOPInstanceUID" in values:
        ds.file_meta.MediaStorageSOPInstanceUID = values["SOPInstanceUID"]
    if "SOPClassUID" in values:
        ds.file_meta.MediaStorageSOPClassUID = values["SOPClassUID"]
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)
    return dst


def test_two_patients_under_one_patient_id_are_imported_and_flagged(gw, tmp_path):
    src = tmp_path / "src"
    ct = _with(CT, src / "ct", PatientID="SAME-ID", PatientName="Alpha^Anna", PatientBirthDate="19500101")
    mr = _with(MR, src / "mr", PatientID="SAME-ID", PatientName="Beta^Bert", PatientBirthDate="19600202")
    ok = _with(MR, src / "ok", PatientID="OTHER", PatientName="Gamma^Gus",
               SOPInstanceUID=pydicom.uid.generate_uid())
    medium = fileset(tmp_path / "medium", {"A/IM1": ct, "B/IM2": mr, "C/IM3": ok})
    report = gw.run(medium)
    items = by_path(report)
    assert all(i.status is Status.IMPORTED for i in report.items)
    assert (items["A/IM1"].flag, items["B/IM2"].flag, items["C/IM3"].flag) == (PATIENT_ID_CONFLICT,) * 2 + ("",)
    assert report.ok and report.flagged == 2 and report.problems() == [items["A/IM1"], items["B/IM2"]]
    assert "one Patient ID names 2 different patients" in items["A/IM1"].line()
    # Flagged in the stored report and the event, with no patient data anywhere in them.
    store = ImportStore(gw.buffer.index)
    stored = store.items(report.import_id)
    assert [i.flag for i in stored] == [PATIENT_ID_CONFLICT, PATIENT_ID_CONFLICT, ""]
    assert store.get(report.import_id).flagged == 2
    assert gw.published()[-1].flagged == 2
    text = repr(stored) + repr(store.get(report.import_id))
    for secret in ("Alpha", "Beta", "Gamma", "SAME-ID", "OTHER", "19500101"):
        assert secret not in text


def test_unsupported_class_unreadable_and_truncated_files_are_skipped_with_reasons(gw, tmp_path):
    src = tmp_path / "src"
    private = _with(CT, src / "private", SOPClassUID="1.2.826.0.1.3680043.2.1125.99.1",
                    SOPInstanceUID=pydicom.uid.generate_uid())
    medium = tmp_path / "stick"
    medium.mkdir()
    shutil.copyfile(private, medium / "PRIVATE")
    shutil.copyfile(TEST_FILES / "MR_truncated.dcm", medium / "TRUNC")
    head = CT.read_bytes()[:400]  # the preamble and the file meta, then nothing
    (medium / "HEADONLY").write_bytes(head)
    report = gw.run(medium)
    items = by_path(report)
    assert (items["PRIVATE"].reason, items["PRIVATE"].detail) == (
        Reason.UNSUPPORTED_SOP_CLASS,
        "SOP class 1.2.826.0.1.3680043.2.1125.99.1 is not a storage class the gateway keeps")
    assert items["TRUNC"].reason is Reason.UNREADABLE and items["TRUNC"].detail.startswith("cannot parse data set")
    assert items["HEADONLY"].reason is Reason.UNREADABLE
    assert all(i.status is Status.SKIPPED for i in report.items)
    assert gw.instances() == {} and not any(gw.buffer.files.incoming.iterdir())


def test_nothing_already_stored_is_touched_by_a_bad_medium(gw, tmp_path):
    """The buffer holds CT (from a modality); a medium brings the same CT, a truncated file and a
    record that names CT's UID for another file. The stored CT, its row and its jobs stay as they were."""
    tmp = gw.buffer.files.new_incoming_path()
    shutil.copyfile(CT, tmp)
    assert gw.intake.take(tmp, Source.ae("CT1"), "1.2.840.10008.5.1.4.1.1.2", CT_UID).ok
    row = gw.instances()[CT_UID]
    stored = (gw.buffer.files.absolute(row["path"])).read_bytes()
    jobs = gw.jobs()

    third = _with(MR, tmp_path / "src" / "mr2", SOPInstanceUID=pydicom.uid.generate_uid())
    medium = fileset(tmp_path / "medium", {"IMAGES/IM0001": CT, "IMAGES/IM0002": MR, "IMAGES/IM0003": third})
    # CT's UID, cut short: unreadable. A record that names another MR for a file holding CT: mismatch.
    (medium / "IMAGES" / "IM0002").write_bytes(CT.read_bytes()[:-1000])
    shutil.copyfile(CT, medium / "IMAGES" / "IM0003")
    report = gw.run(medium)
    statuses = sorted((i.status.value, i.outcome, i.reason.value if i.reason else "") for i in report.items)
    assert statuses == [("duplicate", "identical", ""), ("skipped", "", "record-mismatch"),
                        ("skipped", "", "unreadable")], statuses
    assert gw.instances()[CT_UID] == row
    assert gw.buffer.files.absolute(row["path"]).read_bytes() == stored
    # The stored CT's job stays; the identical copy from the medium adds the one route a medium has
    # and the modality had not (the buffer's rule for an identical re-send from another source).
    assert gw.jobs() == jobs | {(CT_UID, FORWARD, "archive")}


def test_keep_first_keeps_the_stored_version_and_says_so(tmp_path):
    g = Gateway(tmp_path / "buffer", policy="keep-first")
    try:
        src = tmp_path / "ct.dcm"
        make_ct(src, sop_uid="1.2.3.4.5", seed=1)
        tmp = g.buffer.files.new_incoming_path()
        shutil.copyfile(src, tmp)
        assert g.intake.take(tmp, Source.ae("CT1"), "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5").ok
        medium = tmp_path / "m"
        medium.mkdir()
        make_ct(medium / "CT", sop_uid="1.2.3.4.5", seed=2)
        (item,) = g.run(medium).items
        assert (item.status, item.outcome) == (Status.DUPLICATE, "kept-first")
        assert item.line() == "duplicate (kept-first): CT"
    finally:
        g.buffer.close()


def test_a_root_that_is_not_a_folder_is_refused(gw, tmp_path):
    with pytest.raises(NotADirectoryError):
        gw.run(tmp_path / "nothing")


def test_a_file_whose_data_set_carries_file_meta_elements_is_imported_as_the_intake_fixes_it(gw, tmp_path):
    """Group 0002 elements at the start of the data set (PS3.10 7.1 forbids them): the header walk
    refuses the file, pydicom still names its UIDs, and the intake drops the stray elements."""
    from test_structure import _with_stray_meta

    path, _start, _end = _with_stray_meta(tmp_path)
    medium = tmp_path / "m"
    medium.mkdir()
    shutil.copyfile(path, medium / "STRAY")
    (item,) = gw.run(medium).items
    assert (item.status, item.sop_uid) == (Status.IMPORTED, CT_UID), item.line()
    assert set(gw.instances()) == {CT_UID}
