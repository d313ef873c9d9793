"""The export job against the real media drivers on hw-sim's simulators: a buffer in tmp holding
pydicom's shipped test files, an Exporter on a simulated CD/DVD drive or USB port, and the medium
read back by real peers (xorriso -check_md5_r, isoinfo, dcdirdmp, mtools, pydicom's FileSet).
Each fault of the simulators ends in export-failed, the job queued again, nothing verified, the
buffer untouched, and the next good medium written."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pydicom
import pytest
from datasets import make_series
from peers import TEST_FILES, require
from pydicom.fileset import FileSet

from drivers.media.interface import MediumKind, WriteFailed
from gateway.buffer.ingest import Buffer
from gateway.buffer.intake import Intake
from gateway.config import Config
from gateway.dicom.sop_classes import storage_sop_classes
from gateway.event_kinds import (
    ExportFailed, ExportProgress, ExportQueued, ExportStarted, ExportVerified, ExportWritten)
from gateway.events import EventBus
from gateway.media.export import (
    EXPORT, EXPORT_JOB_KIND, ExportPayload, ExportRefused, ExportRequest, Exporter, enqueue_export, volume_id)
from gateway.media.importer import import_tree
from gateway.part10.attributes import configure_pydicom
from gateway.routing import Router
from hwsim.media import SimulatedOpticalDrive, SimulatedUsbPort

FILES = ["CT_small.dcm", "MR_small.dcm", "SC_rgb_jpeg_dcmtk.dcm"]


def study_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


class Box:
    """A buffer with its intake, the events, and an Exporter on one simulated drive."""

    def __init__(self, root: Path, config: dict | None = None):
        configure_pydicom()
        self.root = root
        self.config = Config.model_validate(config or {})
        self.buffer = Buffer(root / "buffer", 0, "replace", Router(self.config))
        self.events = EventBus()
        self.seen = self.events.subscribe()
        self.intake = Intake(self.config, self.buffer, self.events, storage_sop_classes())
        self.sim = None
        self.exporter = None

    def hold(self, files: list[Path]) -> None:
        medium = self.root / "in"
        medium.mkdir(exist_ok=True)
        for i, f in enumerate(files):
            shutil.copyfile(f, medium / f"F{i:04d}")
        report = import_tree(medium, "TEST", self.intake, self.buffer.files.new_incoming_path)
        assert report.ok, [i.line() for i in report.problems()]
        shutil.rmtree(medium)
        self.published()  # the import's own events

    def optical(self, cd_bytes: int = 700_000_000) -> None:
        self.sim = SimulatedOpticalDrive("cd", self.root / "sim" / "cd", cd_bytes=cd_bytes)
        self._drive(self.sim.drive(timeout_s=120))

    def usb(self) -> None:
        self.sim = SimulatedUsbPort("stick", self.root / "sim" / "stick", stick_bytes=40_000_000)
        self._drive(self.sim.drive(timeout_s=120))

    def _drive(self, drive) -> None:
        self.drive = drive
        self.sim.start()
        self.exporter = Exporter(self.buffer, drive, self.events, staging_dir=self.root / "staging",
                                 retry_initial_s=0.01, retry_max_s=0.01, max_attempts=3)

    def insert(self, medium: str) -> None:
        self.sim.insert(medium, None)
        self.exporter.medium_changed()

    def run_once(self) -> None:
        """One claim and its work, in this thread (the worker's loop body)."""
        self.exporter._round()

    def job(self, job_id: int):
        return self.buffer.queue.get(job_id)

    def published(self) -> list:
        out = []
        while not self.seen.empty():
            out.append(self.seen.get_nowait().payload)
        return out

    def objects(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in (self.root / "buffer" / "objects").rglob("*") if p.is_file()}

    def close(self) -> None:
        if self.sim is not None:
            self.sim.stop()
        self.buffer.close()


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    yield b
    b.close()


def held_box(box: Box, names=FILES) -> list[str]:
    files = [TEST_FILES / n for n in names]
    box.hold(files)
    return list(dict.fromkeys(study_of(f) for f in files))


def extract_iso(iso: Path, dest: Path) -> Path:
    exe = require("xorriso", "xorriso")
    r = subprocess.run([exe, "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(dest)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def check_fileset(root: Path, n_instances: int) -> FileSet:
    """The DICOMDIR read by DCMTK's dcdirdmp and by pydicom with warnings as errors; every
    referenced file exists; the PDI files are beside it."""
    dump = require("dcdirdmp", "dcmtk")
    r = subprocess.run([dump, str(root / "DICOMDIR")], capture_output=True, text=True, errors="replace",
                       timeout=60)
    assert r.returncode == 0 and "E:" not in r.stderr, r.stdout[-2000:] + r.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fs = FileSet(root / "DICOMDIR")
    assert len(fs) == n_instances
    for inst in fs:
        assert Path(inst.path).is_file()
    assert {"DICOMDIR", "DICOM", "README.TXT", "INDEX.HTM", "IHE_PDI"} == {p.name for p in root.iterdir()}
    return fs


# -- enqueue ------------------------------------------------------------------------------------------

def test_enqueue_links_every_instance_and_refuses_what_is_not_held(box):
    studies = held_box(box)
    box.exporter = None
    ids = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd", copies=2), events=box.events)
    assert len(ids) == 2
    for job_id in ids:
        job = box.job(job_id)
        assert (job.kind, job.target, job.state) == (EXPORT, "cd", "queued")
        linked = box.buffer.index.query("SELECT COUNT(*) AS n FROM job_items WHERE job_id = ?", (job_id,))[0]["n"]
        assert linked == len(FILES)
    assert [ExportPayload.from_job(box.job(i)).copy for i in ids] == [1, 2]
    queued = [e for e in box.published() if isinstance(e, ExportQueued)]
    assert [(e.job_id, e.instances, e.studies, e.part, e.of) for e in queued] == [
        (ids[0], 3, 3, 1, 1), (ids[1], 3, 3, 1, 1)]
    with pytest.raises(ExportRefused, match="1.2.3.4 has no instance held"):
        enqueue_export(box.buffer.queue, ExportRequest((studies[0], "1.2.3.4"), "cd"))
    with pytest.raises(ExportRefused, match="copies"):
        enqueue_export(box.buffer.queue, ExportRequest((studies[0],), "cd", copies=0))
    with pytest.raises(ExportRefused, match="no study"):
        enqueue_export(box.buffer.queue, ExportRequest((), "cd"))
    # Nothing was queued by the refusals.
    assert len(box.buffer.queue.list()) == 2


def test_the_queue_names_an_export_job_without_patient_data(box):
    studies = held_box(box, ["CT_small.dcm"])
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
    box.buffer.queue.register_kind(EXPORT_JOB_KIND)
    assert box.buffer.queue.describe(box.job(job_id)) == "export of 1 study to cd"


def test_volume_ids_fit_iso_and_fat_and_carry_the_part():
    assert volume_id(12, 1, 2, MediumKind.CD) == "DICOM_J12_1OF2"
    assert volume_id(12, 1, 1, MediumKind.DVD) == "DICOM_J12"
    assert volume_id(12, 2, 2, MediumKind.USB) == "DICOM2OF2"
    assert len(volume_id(123456, 10, 12, MediumKind.USB)) <= 11


# -- a good CD, DVD, stick ------------------------------------------------------------------------------

def test_a_cd_is_written_verified_and_readable_by_real_peers(box, tmp_path):
    require("xorriso", "xorriso")
    studies = held_box(box)
    before = box.objects()
    box.optical()
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
    # No disc: the job waits, no attempt used, nothing published as failed.
    box.run_once()
    job = box.job(job_id)
    assert (job.state, job.attempts) == ("queued", 0) and "waiting for a blank medium" in job.last_error
    box.insert("cd")
    box.run_once()
    assert box.job(job_id).state == "done"
    events = box.published()
    progress = [e for e in events if isinstance(e, ExportProgress)]
    events = [e for e in events if not isinstance(e, ExportProgress)]
    assert [type(e) for e in events] == [ExportStarted, ExportWritten, ExportVerified]
    assert events[0].profile == "STD-GEN-CD" and events[2].volume_id == "DICOM_J%d" % job_id
    # Throttled progress: the first block's, then the end of the write (done == total == bytes).
    assert 2 <= len(progress) <= 4, progress
    assert [p.done_bytes for p in progress] == sorted(p.done_bytes for p in progress)
    assert progress[-1].done_bytes == progress[-1].total_bytes >= events[1].bytes
    # The disc was ejected after verification (its read-back by peers: the next test).
    assert not box.sim.image.exists()
    assert box.objects() == before, "the buffer changed"
    assert not any((box.root / "staging").iterdir())


def test_cd_readback_by_xorriso_isoinfo_dcdirdmp_and_pydicom(box, tmp_path):
    require("xorriso", "xorriso")
    isoinfo = require("isoinfo", "genisoimage")
    studies = held_box(box)
    box.optical()
    box.drive.eject = lambda: None  # keep the disc in the tray to read it back
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
    box.insert("cd")
    box.run_once()
    assert box.job(job_id).state == "done"
    iso = box.sim.image
    r = subprocess.run(["xorriso", "-md5", "on", "-indev", str(iso), "-check_md5_r", "SORRY", "/", "--"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "File contents and their MD5 checksums match" in r.stdout + r.stderr
    r = subprocess.run([isoinfo, "-d", "-i", str(iso)], capture_output=True, text=True, timeout=60)
    assert f"Volume id: DICOM_J{job_id}" in r.stdout
    listing = subprocess.run([isoinfo, "-f", "-i", str(iso)], capture_output=True, text=True, timeout=60).stdout
    assert "/DICOMDIR.;1" in listing and "/README.TXT;1" in listing
    root = extract_iso(iso, tmp_path / "disc")
    fs = check_fileset(root, len(FILES))
    # STD-GEN-CD: Explicit VR Little Endian only (the JPEG was decompressed).
    assert {str(pydicom.dcmread(Path(i.path), stop_before_pixels=True).file_meta.TransferSyntaxUID)
            for i in fs} == {"1.2.840.10008.1.2.1"}


def test_a_dvd_keeps_jpeg(box, tmp_path):
    require("xorriso", "xorriso")
    studies = held_box(box, ["SC_rgb_jpeg_dcmtk.dcm"])
    box.optical()
    box.drive.eject = lambda: None
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
    box.insert("dvd")
    box.run_once()
    assert box.job(job_id).state == "done"
    assert [e.profile for e in box.published() if isinstance(e, ExportStarted)] == ["STD-GEN-DVD-JPEG"]
    fs = check_fileset(extract_iso(box.sim.image, tmp_path / "disc"), 1)
    (inst,) = list(fs)
    assert str(pydicom.dcmread(Path(inst.path), stop_before_pixels=True).file_meta.TransferSyntaxUID) \
        == "1.2.840.10008.1.2.4.50"


def test_a_usb_stick_is_written_and_read_back_with_mtools(box, tmp_path):
    mcopy = require("mcopy", "mtools")
    studies = held_box(box)
    box.usb()
    box.drive.eject = lambda: None
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "stick"))
    box.insert("usb")
    box.run_once()
    assert box.job(job_id).state == "done", box.job(job_id).last_error
    assert [e.profile for e in box.published() if isinstance(e, ExportStarted)] == ["STD-GEN-USB-JPEG"]
    out = tmp_path / "stick"
    out.mkdir()
    r = subprocess.run([mcopy, "-s", "-n", "-i", str(box.sim.image), "::/*", str(out) + "/"],
                       capture_output=True, text=True, timeout=120, env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    check_fileset(out, len(FILES))
    label = subprocess.run(["mlabel", "-s", "-i", str(box.sim.image), "::"], capture_output=True, text=True,
                           env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}).stdout
    assert "DICOM" in label


def test_a_written_disc_or_a_stick_with_files_is_never_written(box, tmp_path):
    require("xorriso", "xorriso")
    studies = held_box(box, ["CT_small.dcm"])
    box.optical()
    src = tmp_path / "old"
    src.mkdir()
    (src / "OLD.TXT").write_text("old")
    box.sim.insert("cd", src)
    box.exporter.medium_changed()
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
    box.run_once()
    job = box.job(job_id)
    assert (job.state, job.attempts) == ("queued", 0) and "not blank" in job.last_error
    assert not [e for e in box.published() if isinstance(e, (ExportStarted, ExportFailed))]


# -- faults ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("medium,fault,why", [
    ("cd", "pull", "removed"),
    ("cd", "full", "does not fit"),
    ("cd", "write-error", "writing failed"),
    ("cd", "bad-sector", "read-back does not match"),
    ("usb", "pull", "removed"),
    ("usb", "full", "does not fit"),
    ("usb", "bad-sector", "read-back does not match"),
])
def test_a_fault_fails_the_attempt_and_the_next_medium_succeeds(box, medium, fault, why):
    require("xorriso" if medium == "cd" else "mcopy", "xorriso" if medium == "cd" else "mtools")
    studies = held_box(box)
    before = box.objects()
    box.optical() if medium == "cd" else box.usb()
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), box.drive.name))
    box.insert(medium)
    box.sim.fault(fault)
    box.run_once()
    job = box.job(job_id)
    events = box.published()
    assert job.state == "queued" and job.attempts == 1 and why in job.last_error, job.last_error
    failed = [e for e in events if isinstance(e, ExportFailed)]
    assert len(failed) == 1 and failed[0].state == "queued" and why in failed[0].reason
    assert not [e for e in events if isinstance(e, ExportVerified)]
    assert box.objects() == before, "the buffer changed"
    # Waiting for the next medium, the job still says why the last one failed (export --wait).
    box.buffer.queue.make_due(EXPORT, box.drive.name)
    box.run_once()
    job = box.job(job_id)
    assert (job.state, job.attempts) == ("queued", 1) and job.last_error.startswith("waiting for")
    assert why in job.last_error, job.last_error
    from gateway.operator_views import export_state
    assert why in export_state(job)[1].split("; the job waits")[0], export_state(job)
    # The medium it failed on is not written again: the job waits for the next one.
    if box.sim.image.exists():
        box.sim.fault("clear")
        box.buffer.queue.make_due(EXPORT, box.drive.name)
        box.run_once()
        assert box.job(job_id).state == "queued" and box.job(job_id).attempts == 1
        box.sim.pull()
    box.sim.fault("clear")  # read-only stays armed for every stick plugged in
    box.insert(medium)
    box.run_once()
    assert box.job(job_id).state == "done", box.job(job_id).last_error
    assert [type(e) for e in box.published() if not isinstance(e, ExportProgress)] == [
        ExportStarted, ExportWritten, ExportVerified]


def test_attempts_used_up_dead_letter_the_job(box):
    require("xorriso", "xorriso")
    studies = held_box(box, ["CT_small.dcm"])
    box.optical()
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
    for attempt in range(1, 4):
        box.insert("cd")
        box.sim.fault("write-error")
        box.run_once()
        if box.sim.image.exists():
            box.sim.pull()
    job = box.job(job_id)
    assert (job.state, job.attempts) == ("dead", 3) and "writing failed" in job.last_error
    assert [e.state for e in box.published() if isinstance(e, ExportFailed)] == ["queued", "queued", "dead"]


def test_an_interrupted_export_is_queued_again_at_start_and_written_on_the_next_medium(box):
    require("xorriso", "xorriso")
    studies = held_box(box, ["CT_small.dcm"])
    box.optical()
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
    # As kill -9 leaves it: the job in flight, a staging folder half made.
    (claimed,) = box.buffer.queue.claim(EXPORT, "cd", 1)
    stale = box.root / "staging" / f"job-{job_id}"
    (stale / "DICOM").mkdir(parents=True)
    assert box.buffer.recover()["requeued_jobs"] == 1
    box.exporter.on_start()
    assert not stale.exists()
    box.insert("cd")
    box.run_once()
    assert box.job(job_id).state == "done"


# -- splitting ------------------------------------------------------------------------------------------

def test_a_study_too_large_for_one_disc_is_split_at_series_boundaries(box, tmp_path):
    require("xorriso", "xorriso")
    study = pydicom.uid.generate_uid()
    a = make_series(tmp_path / "a", 8, study_uid=study, rows=256, cols=256)
    b = make_series(tmp_path / "b", 8, study_uid=study, rows=256, cols=256)
    box.hold(a + b)
    cd = 2_600_000
    box.optical(cd_bytes=cd)
    box.drive.eject = lambda: None
    ids = enqueue_export(box.buffer.queue, ExportRequest((study,), "cd"), capacity=(MediumKind.CD, cd))
    assert len(ids) == 2
    assert [(p.part, p.of) for p in (ExportPayload.from_job(box.job(i)) for i in ids)] == [(1, 2), (2, 2)]
    series_on = []
    for n, job_id in enumerate(ids, 1):
        box.insert("cd")
        box.run_once()
        assert box.job(job_id).state == "done", box.job(job_id).last_error
        root = extract_iso(box.sim.image, tmp_path / f"disc{n}")
        fs = check_fileset(root, 8)
        series_on.append({i.SeriesInstanceUID for i in fs})
        assert f"Part:     {n} of 2." in (root / "README.TXT").read_text()
        assert f"part {n} of 2" in (root / "INDEX.HTM").read_text()
        box.sim.pull()
    assert all(len(s) == 1 for s in series_on) and series_on[0] != series_on[1]
    verified = [e for e in box.published() if isinstance(e, ExportVerified)]
    assert [(e.part, e.of, e.volume_id) for e in verified] == [
        (1, 2, f"DICOM_J{ids[0]}_1OF2"), (2, 2, f"DICOM_J{ids[1]}_2OF2")]


def test_a_series_larger_than_one_medium_is_refused(box, tmp_path):
    study = pydicom.uid.generate_uid()
    box.hold(make_series(tmp_path / "a", 8, study_uid=study, rows=256, cols=256))
    with pytest.raises(ExportRefused, match="split only at series boundaries"):
        enqueue_export(box.buffer.queue, ExportRequest((study,), "cd"), capacity=(MediumKind.CD, 1_000_000))
    assert box.buffer.queue.list() == []


def test_the_medium_an_export_failed_on_is_not_written_again_until_a_medium_change(box):
    require("mcopy", "mtools")
    studies = held_box(box, ["CT_small.dcm"])
    box.usb()
    box.drive.eject = lambda: None  # a stick powered down stays in the port
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "stick"))
    box.insert("usb")
    real_write = box.drive.write

    def refused(mapping, volume_id, progress=None):  # a write error before the first byte:
        raise WriteFailed("stick", "mcopy exit 1: I/O error")  # the stick stays empty, looks usable

    box.drive.write = refused
    box.run_once()
    assert box.job(job_id).attempts == 1
    box.drive.write = real_write
    box.buffer.queue.make_due(EXPORT, "stick")
    box.run_once()
    job = box.job(job_id)
    assert (job.state, job.attempts) == ("queued", 1) and "an export failed on this one" in job.last_error
    box.exporter.medium_changed()  # the stick taken out and put back
    box.run_once()
    assert box.job(job_id).state == "done"


def test_a_write_protected_stick_is_waited_out_without_using_an_attempt(box):
    require("mcopy", "mtools")
    studies = held_box(box, ["CT_small.dcm"])
    box.usb()
    box.drive.eject = lambda: None
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "stick"))
    box.insert("usb")
    box.sim.fault("read-only")
    box.run_once()
    job = box.job(job_id)
    assert (job.state, job.attempts) == ("queued", 0), job
    assert job.last_error == "waiting for a writable medium in drive stick (the stick is write-protected)"
    assert not [e for e in box.published() if isinstance(e, (ExportStarted, ExportFailed))]
    box.sim.fault("clear")  # the lock switch flipped back,
    box.exporter.medium_changed()  # the stick taken out and put back
    box.run_once()
    assert box.job(job_id).state == "done", box.job(job_id).last_error


def test_the_worker_thread_waits_for_a_medium_and_medium_changed_wakes_it(box):
    require("xorriso", "xorriso")
    from peers import wait_until

    studies = held_box(box, ["CT_small.dcm"])
    box.optical()
    box.exporter.idle_s = 60  # only medium_changed() may end the wait in time
    box.exporter.medium_poll_s = 60
    box.exporter.start()
    try:
        (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
        wait_until(lambda: "waiting" in box.job(job_id).last_error, 10, what="the job to wait")
        box.insert("cd")
        wait_until(lambda: box.job(job_id).state == "done", 30, what="the export")
    finally:
        box.exporter.stop(10)
    assert not box.exporter.is_alive()


def test_an_unexpected_error_fails_the_attempt_instead_of_leaving_the_job_in_flight(box):
    require("xorriso", "xorriso")
    studies = held_box(box, ["CT_small.dcm"])
    box.optical()

    def broken(*args, **kw):
        raise RuntimeError("a bug")

    box.drive.verify = broken
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
    box.insert("cd")
    box.run_once()
    job = box.job(job_id)
    assert (job.state, job.attempts, job.last_error) == ("queued", 1, "internal error: RuntimeError: a bug")
    assert not [e for e in box.published() if isinstance(e, ExportVerified)]


def test_a_staging_folder_that_cannot_be_written_fails_the_attempt_not_the_job(box):
    require("xorriso", "xorriso")
    studies = held_box(box, ["SC_rgb_jpeg_dcmtk.dcm"])
    box.optical()
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
    box.insert("cd")
    import gateway.media.fileset as fileset

    real = fileset.write_dicomdir

    def full(*args, **kw):
        raise OSError(28, "No space left on device")

    fileset.write_dicomdir = full
    try:
        box.run_once()
    finally:
        fileset.write_dicomdir = real
    job = box.job(job_id)
    assert (job.state, job.attempts) == ("queued", 1) and "No space left" in job.last_error
    box.buffer.queue.make_due(EXPORT, "cd")
    box.run_once()
    assert box.job(job_id).state == "done"


def test_nothing_exportable_dead_letters_the_job_at_once(box, tmp_path):
    require("xorriso", "xorriso")
    studies = held_box(box, ["CT_small.dcm"])
    box.optical()
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
    for p in (box.root / "buffer" / "objects").rglob("*.dcm"):
        p.write_bytes(b"not DICOM any more")  # a damaged buffer file: left out, nothing remains
    box.insert("cd")
    box.run_once()
    job = box.job(job_id)
    assert job.state == "dead" and "nothing to put on the file-set" in job.last_error
    (failed,) = [e for e in box.published() if isinstance(e, ExportFailed)]
    assert failed.state == "dead"


def test_an_open_export_job_keeps_delivered_instances_from_eviction(tmp_path):
    # Routed to a PACS and delivered there: without the export's link they could go at once.
    box = Box(tmp_path, {"destinations": {"pacs": {"ae_title": "PACS", "port": 11122}},
                         "routes": [{"to": ["pacs"]}]})
    try:
        studies = held_box(box, ["CT_small.dcm", "MR_small.dcm"])
        forwards = [j.id for j in box.buffer.queue.list() if j.kind == "forward"]
        assert len(forwards) == 2
        box.buffer.queue.complete(forwards)
        before = box.objects()
        (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), "cd"))
        ids = [r["id"] for r in box.buffer.index.query("SELECT id FROM instances")]
        assert box.buffer.release_if_done(ids) == 0
        box.buffer.queue.dead_letter([job_id], "given up")
        assert box.buffer.release_if_done(ids) == 0
        assert box.objects() == before
    finally:
        box.close()
