"""The media fault matrix (issue 8, "Faults"): every profile x every simulated fault -> one
expected outcome, through the real export job, the real drivers and hw-sim's drives under them.

    profile (medium)            fault                           outcome
    STD-GEN-CD        (cd)      none                            verified: the medium is a valid file-set
    STD-GEN-DVD-JPEG  (dvd)     pull (mid-write)                failed "the medium was removed ...", retried
    STD-GEN-USB-JPEG  (usb)     full                            failed "... does not fit on the medium", retried
                                write-error (mid-write)         failed "writing failed", retried
                                read-only                       never written, no attempt used: the job
                                                                waits (usb: a write-protected stick;
                                                                disc: a written disc)
                                bad-sector (read-back)          failed "read-back does not match", retried
                                kill -9 mid-write               the job is queued again at restart, the
                                                                half-written medium never written over,
                                                                the next blank medium written

"verified": the medium the exporter ejected is read back (xorriso / mcopy, not the drivers); its
DICOMDIR passes dcdirdmp, dciodvfy (0 errors) and a pydicom FileSet load with warnings as errors,
and every referenced file is read by dcmdump and matches its record (SOP Instance UID, SOP Class,
Transfer Syntax; byte-identical to the buffer's file unless the profile converted it).  dciodvfy
runs on those cells only, it is the slow one.

"failed ..., retried": one attempt used, the job queued again with the named reason in its last
error and one export-failed event, nothing reported verified, the half-written medium (pull,
write-error) holds part of the file-set and not all of it; then the next blank medium is written
and verified (its DICOMDIR read by dcdirdmp and pydicom).  In every cell the buffer is untouched:
the instance files' bytes and the index rows are as before the export.

The kill -9 cells kill a child process running the export job (the harness of
test_media_export_peers.py) where the burn stalls halfway / after the stick's first mcopy; one more
test arms `hw-sim media fault usb pull` beside the running `dicom-gateway run`.

Data: two of pydicom's files, a CT (Explicit VR Little Endian) and an RGB JPEG baseline
secondary capture (decompressed for the CD, kept on DVD and USB).  Where a mid-write fault strikes
is drawn from a seeded random generator (the cell's seed), see hwsim/media.py.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from peers import ROOT, TEST_FILES, require, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_media_export import Box, check_fileset, extract_iso  # noqa: E402

from gateway.event_kinds import ExportFailed, ExportProgress, ExportStarted, ExportVerified, ExportWritten  # noqa: E402
from gateway.media.export import ExportRequest, enqueue_export  # noqa: E402

FILES = [TEST_FILES / "CT_small.dcm", TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm"]
PROFILE = {"cd": "STD-GEN-CD", "dvd": "STD-GEN-DVD-JPEG", "usb": "STD-GEN-USB-JPEG"}
EXPLICIT_LE = "1.2.840.10008.1.2.1"
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


@dataclass(frozen=True)
class Verified:
    """The medium is written, read back and a valid file-set."""


@dataclass(frozen=True)
class Failed:
    """The attempt failed with ``reason`` in the job's error; retried on the next blank medium.
    ``half_written``: the failed medium holds part of the file-set (mid-write faults)."""
    reason: str
    half_written: bool = False


@dataclass(frozen=True)
class Waits:
    """The medium is never written: the job waits (no attempt used) with ``reason``."""
    reason: str


@dataclass(frozen=True)
class Restarted:
    """kill -9 during the export: the job is queued again at restart and written on a blank medium."""


REMOVED = Failed("the medium was removed during the operation", half_written=True)
FULL = Failed("the file-set does not fit on the medium")
WRITE_ERROR = Failed("writing failed", half_written=True)
MISMATCH = Failed("read-back does not match")

MATRIX = {
    # medium: {fault: outcome}
    "cd": {"none": Verified(), "pull": REMOVED, "full": FULL, "write-error": WRITE_ERROR,
           "read-only": Waits("the disc is not blank"), "bad-sector": MISMATCH, "kill-9": Restarted()},
    "dvd": {"none": Verified(), "pull": REMOVED, "full": FULL, "write-error": WRITE_ERROR,
            "read-only": Waits("the disc is not blank"), "bad-sector": MISMATCH, "kill-9": Restarted()},
    "usb": {"none": Verified(), "pull": REMOVED, "full": FULL, "write-error": WRITE_ERROR,
            "read-only": Waits("the stick is write-protected"), "bad-sector": MISMATCH,
            "kill-9": Restarted()},
}
CELLS = [(medium, fault, outcome) for medium, row in MATRIX.items() for fault, outcome in row.items()]


# -- the box and what it holds ----------------------------------------------------------------------

def tools(medium: str) -> None:
    if medium == "usb":
        require("mkfs.vfat", "dosfstools")
        require("mcopy", "mtools")
    else:
        require("xorriso", "xorriso")
    require("dcdirdmp", "dcmtk")


def held_state(box: Box) -> tuple[dict[str, bytes], list[tuple]]:
    """The buffer as the export must leave it: every file's bytes, every instance row."""
    objects = box.root / "buffer" / "objects"
    files = {str(p.relative_to(objects)): p.read_bytes() for p in objects.rglob("*") if p.is_file()}
    rows = [tuple(r) for r in box.buffer.index.query("SELECT * FROM instances ORDER BY id")]
    return files, rows


def attach(box: Box, medium: str) -> None:
    box.usb() if medium == "usb" else box.optical()


def enqueue(box: Box) -> int:
    studies = tuple(dict.fromkeys(str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID) for f in FILES))
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(studies, box.drive.name))
    return job_id


# -- reading a medium back with tools the drivers do not use ------------------------------------------

def kept(box: Box, folder: str) -> list[Path]:
    where = box.sim.folder / folder
    return sorted(where.iterdir()) if where.is_dir() else []


def read_back(image: Path, medium: str, dest: Path) -> Path:
    if medium == "usb":
        dest.mkdir(parents=True)
        r = subprocess.run(["mcopy", "-s", "-n", "-i", str(image), "::/*", f"{dest}/"], capture_output=True,
                           text=True, timeout=120, env=MTOOLS_ENV)
        assert r.returncode == 0, r.stderr
        return dest
    return extract_iso(image, dest)


def check_medium(root: Path, medium: str, held: dict[str, bytes], *, dciodvfy: bool) -> None:
    """A valid file-set whose every referenced file matches its record (and the buffer's bytes,
    unless the profile converted it)."""
    check_fileset(root, len(FILES))
    by_sop = {str(pydicom.dcmread(_bytes_file(b), stop_before_pixels=True).SOPInstanceUID): b for b in held.values()}
    dicomdir = pydicom.dcmread(root / "DICOMDIR")
    referenced = []
    for rec in dicomdir.DirectoryRecordSequence:
        if "ReferencedFileID" not in rec:
            continue
        path = root.joinpath(*rec.ReferencedFileID)
        referenced.append(path)
        inst = pydicom.dcmread(path, stop_before_pixels=True)
        assert (inst.SOPInstanceUID, inst.SOPClassUID, inst.file_meta.TransferSyntaxUID) == (
            rec.ReferencedSOPInstanceUIDInFile, rec.ReferencedSOPClassUIDInFile,
            rec.ReferencedTransferSyntaxUIDInFile), path
        original = by_sop[str(inst.SOPInstanceUID)]
        if medium == "cd":
            assert inst.file_meta.TransferSyntaxUID == EXPLICIT_LE  # STD-GEN-CD: PS3.11 D.2
        if medium != "cd" or pydicom.dcmread(_bytes_file(original), stop_before_pixels=True) \
                .file_meta.TransferSyntaxUID == EXPLICIT_LE:
            assert path.read_bytes() == original, f"{path} differs from the buffer's file"
    assert len(referenced) == len(FILES)
    dump = subprocess.run([require("dcmdump", "dcmtk"), "-q", *map(str, referenced)], capture_output=True, text=True,
                          errors="replace", timeout=120)
    assert dump.returncode == 0 and "E:" not in dump.stderr, dump.stderr
    if dciodvfy:
        out = subprocess.run([require("dciodvfy", "dicom3tools"), "DICOMDIR"], cwd=root, capture_output=True,
                             text=True, errors="replace", timeout=120)
        errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
        assert not errors, errors[:5]


def _bytes_file(data: bytes) -> BytesIO:
    return BytesIO(data)


def holds_part_of_the_fileset(image: Path, medium: str, good: Path) -> None:
    """The half-written medium has some of the good medium's bytes and not all of them."""
    if medium == "usb":
        listing = subprocess.run(["mdir", "-/", "-b", "-i", str(image), "::/"], capture_output=True, text=True,
                                 timeout=60, env=MTOOLS_ENV)
        good_listing = subprocess.run(["mdir", "-/", "-b", "-i", str(good), "::/"], capture_output=True, text=True,
                                      timeout=60, env=MTOOLS_ENV)
        files = {p for p in listing.stdout.split() if not p.endswith("/")}
        all_files = {p for p in good_listing.stdout.split() if not p.endswith("/")}
        assert files and files < all_files, (files, all_files)
    else:
        size, full = image.stat().st_size, good.stat().st_size
        assert 32 * 1024 < size < full, (size, full)
        assert image.read_bytes()[32768 + 1:32768 + 6] == b"CD001"  # ECMA-119 8.4: the burn began


# -- the matrix --------------------------------------------------------------------------------------

@pytest.mark.parametrize("medium, fault, outcome", CELLS, ids=[f"{m}-{f}" for m, f, _ in CELLS])
def test_media_fault_matrix(tmp_path, medium, fault, outcome):
    tools(medium)
    if isinstance(outcome, Restarted):
        return kill_9_cell(tmp_path, medium)
    box = Box(tmp_path)
    try:
        box.hold(FILES)
        held = held_state(box)
        attach(box, medium)
        job_id = enqueue(box)
        arm(box, medium, fault, seed=zlib.crc32(f"{medium}-{fault}".encode()))
        box.run_once()
        job = box.job(job_id)
        events = box.published()
        assert held_state(box) == held, "the buffer changed"

        if isinstance(outcome, Verified):
            assert job.state == "done", job.last_error
            assert [type(e) for e in events if not isinstance(e, ExportProgress)] == [
                ExportStarted, ExportWritten, ExportVerified]
            assert events[0].profile == PROFILE[medium]
            (disc,) = kept(box, "ejected")
            check_medium(read_back(disc, medium, tmp_path / "medium"), medium, held[0], dciodvfy=True)
            return

        if isinstance(outcome, Waits):
            assert (job.state, job.attempts) == ("queued", 0) and outcome.reason in job.last_error, job.last_error
            assert not [e for e in events if isinstance(e, (ExportStarted, ExportFailed, ExportVerified))]
        else:
            assert (job.state, job.attempts) == ("queued", 1), (job.state, job.attempts, job.last_error)
            assert outcome.reason in job.last_error and "\n" not in job.last_error, job.last_error
            failed = [e for e in events if isinstance(e, ExportFailed)]
            assert len(failed) == 1 and failed[0].state == "queued" and outcome.reason in failed[0].reason
            assert not [e for e in events if isinstance(e, ExportVerified)]
        # The failed medium: pulled by the user, or ejected by the exporter after the failure.
        bad = kept(box, "pulled" if fault == "pull" else "ejected")

        # The next blank medium: written and verified.
        box.sim.fault("clear")
        if box.sim.image.exists():
            box.sim.pull()
        box.insert(medium)
        box.run_once()
        job = box.job(job_id)
        assert job.state == "done", job.last_error
        assert [type(e) for e in box.published() if not isinstance(e, ExportProgress)] == [
            ExportStarted, ExportWritten, ExportVerified]
        assert held_state(box) == held, "the buffer changed"
        good = kept(box, "ejected")[-1]
        check_medium(read_back(good, medium, tmp_path / "retried"), medium, held[0], dciodvfy=False)
        if isinstance(outcome, Failed) and outcome.half_written:
            assert len(bad) == 1 and bad[0] != good, bad
            holds_part_of_the_fileset(bad[0], medium, good)
    finally:
        box.close()


def arm(box: Box, medium: str, fault: str, seed: int) -> None:
    """Put the cell's medium in the drive with the cell's fault armed."""
    if fault == "read-only" and medium != "usb":
        # A disc cannot be locked: a written one is what a writer cannot write.
        written = box.root / "written"
        written.mkdir()
        (written / "OLD.TXT").write_text("a disc written before")
        box.sim.insert(medium, written)
        box.exporter.medium_changed()
        return
    box.insert(medium)
    if fault in ("pull", "write-error"):
        box.sim.fault(fault, at=random.Random(seed).uniform(0.1, 0.9))
    elif fault != "none":
        box.sim.fault(fault)


# -- kill -9 during the export ------------------------------------------------------------------------

CHILD = textwrap.dedent('''
    import os, select, sys, time
    from pathlib import Path
    root, medium = Path(sys.argv[1]), sys.argv[2]
    import hwsim.media
    from test_media_export import Box

    def killed_here(what):
        (root / "killed-here").write_text(what)
        time.sleep(120)

    class StallingBurn(hwsim.media._Relay):
        # The disc takes the first half of the burn, then stops answering: xorriso blocks
        # mid-stream with part of the image on the disc, and the process is killed there.
        def run(self):
            with open(self.disc, "wb") as out:
                while self.received < self.cut_bytes:
                    if select.select([self._fd], [], [], 0.05)[0]:
                        chunk = os.read(self._fd, self.cut_bytes - self.received)
                        out.write(chunk)
                        self.received += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            killed_here("burning")

    box = Box(root)
    box.usb() if medium == "usb" else box.optical()
    box.insert(medium)
    if medium == "usb":
        # After the first mcopy: files on the stick, the file-set unfinished.
        real_hook = box.sim.hook
        def hook(phase, mapping):
            real_hook(phase, mapping)
            if phase == "copied":
                killed_here("copied")
        box.drive.hook = hook
    else:
        hwsim.media._Relay = StallingBurn
        box.sim.fault("write-error", at=0.5)  # only to put the FIFO under the burn: it stalls, never cuts
    box.run_once()
''')


def kill_9_cell(tmp_path: Path, medium: str) -> None:
    box = Box(tmp_path)
    box.hold(FILES)
    held = held_state(box)
    attach(box, medium)
    job_id = enqueue(box)
    box.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "hw-sim"), str(ROOT / "tests" / "unit"), str(ROOT / "tests")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), medium], cwd=ROOT, env=env,
                             start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (tmp_path / "killed-here").exists() or child.poll() is not None, 60,
                   what="the export to reach the write")
        assert child.poll() is None, child.stdout.read().decode(errors="replace")[-2000:]
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    box = Box(tmp_path)
    try:
        assert box.job(job_id).state == "in_flight"
        assert box.buffer.recover()["requeued_jobs"] == 1
        assert held_state(box) == held, "the buffer changed"
        attach(box, medium)
        box.exporter.on_start()
        assert not (tmp_path / "staging" / f"job-{job_id}").exists()
        # The half-written medium is back in the drive (the disc as the burn left it, settled by
        # the simulator's start): not blank, so never written over and never called good.
        assert box.sim.image.is_file() and box.sim.image.stat().st_size > 0
        box.exporter.medium_changed()
        box.run_once()
        job = box.job(job_id)
        assert job.state == "queued" and "waiting for a blank medium" in job.last_error, job.last_error
        if medium != "usb":
            size = box.sim.image.stat().st_size
            assert box.sim.image.read_bytes()[32768 + 1:32768 + 6] == b"CD001" and size > 32 * 1024
        box.sim.pull()
        box.insert(medium)
        box.run_once()
        job = box.job(job_id)
        assert (job.state, job.attempts) == ("done", 2), (job.state, job.attempts, job.last_error)
        assert held_state(box) == held, "the buffer changed"
        (good,) = kept(box, "ejected")
        check_medium(read_back(good, medium, tmp_path / "retried"), medium, held[0], dciodvfy=False)
    finally:
        box.close()


# -- the same fault in the running service, armed from another process ---------------------------------

def test_a_stick_pulled_mid_copy_in_the_running_service_is_failed_and_the_next_stick_written(
        gateway_factory, tmp_path):
    """`dicom-gateway run` with hw-sim's USB port, driven by `hw-sim media` as an operator does:
    `fault usb pull`, then a blank stick: the export rule's job fails with the medium removed
    (the hotplug removal reaching the driver mid-copy), the pulled stick holds part of the
    file-set; the next blank stick is written and verified; the buffer is untouched."""
    require("mkfs.vfat", "dosfstools")
    require("mcopy", "mtools")
    from peers import storescu
    from test_media_appliance import hwsim, media_config, query

    sim = tmp_path / "sim"
    gw = gateway_factory(media_config(sim))
    r = storescu(gw.port, [FILES[0]])
    assert r.returncode == 0 and "Received Store Response (Success)" in r.stderr + r.stdout, r.stderr
    objects = gw.buffer / "objects"
    before = {p: p.read_bytes() for p in objects.rglob("*") if p.is_file()}

    assert hwsim(sim, "fault", "usb", "pull").returncode == 0
    r = hwsim(sim, "insert", "usb", "--blank")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: "retried on the next medium: drive usb: the medium was removed during the operation"
               in gw.log, 120, what="the export to fail with the stick removed")
    (pulled,) = (sim / "usb" / "pulled").iterdir()
    assert query(gw, "SELECT state, attempts FROM jobs WHERE kind = 'export'") == [("queued", 1)]

    r = hwsim(sim, "insert", "usb", "--blank")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: query(gw, "SELECT state FROM jobs WHERE kind = 'export'") == [("done",)], 120,
               what="the export job to be done on the second stick")
    assert {p: p.read_bytes() for p in objects.rglob("*") if p.is_file()} == before, "the buffer changed"
    wait_until(lambda: (sim / "usb" / "ejected").is_dir(), 30, what="the verified stick to be ejected")
    (good,) = (sim / "usb" / "ejected").iterdir()
    holds_part_of_the_fileset(pulled, "usb", good)
    assert "Traceback" not in gw.log
    assert gw.stop() == 0
