"""Media the export job writes, read back from the simulated drive and checked by real peers:
dicom3tools' dciodvfy and DCMTK's dcdirdmp / dcmmkdir (the profile's check: -Pgp CD, -Pdv DVD,
-Pfl USB) on the DICOMDIR of the medium, not of a staging folder; every instance copied to the
medium byte-identical to the buffer's file; Japanese and Latin-1 names in the records and in
INDEX.HTM. And kill -9 in the middle of an export: the job is written again after the restart."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pydicom
import pytest
from peers import ROOT, TEST_FILES, require, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_media_export import Box, check_fileset, extract_iso  # noqa: E402

from gateway.media.export import ExportRequest, enqueue_export  # noqa: E402

CHARSETS = TEST_FILES.parent / "charset_files"
FILES = [TEST_FILES / "CT_small.dcm", TEST_FILES / "MR_small.dcm", TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm",
         TEST_FILES / "test-SR.dcm", CHARSETS / "chrH31.dcm", CHARSETS / "chrFren.dcm"]
DCMMKDIR_PROFILE = {"cd": "-Pgp", "dvd": "-Pdv", "usb": "-Pfl"}
# As in test_media_fileset.py: dcmmkdir also reads the instances, and some of pydicom's lack Type 1
# keys the records fill in (PS3.3 F.5); that line names the instance, not a fault of the file-set.
_INSTANCE_GAP = re.compile(r"^E: required attribute \w+ \([0-9A-F,]+\) missing in file: ")


def exported(box: Box, medium: str, out: Path) -> Path:
    """Export every held study to a `medium` in the simulated drive; the medium's tree in `out`."""
    studies = list(dict.fromkeys(str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID)
                                 for f in FILES))
    if medium == "usb":
        box.usb()
    else:
        box.optical()
    box.drive.eject = lambda: None  # the medium stays in to be read back
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest(tuple(studies), box.drive.name))
    box.insert(medium)
    box.run_once()
    assert box.job(job_id).state == "done", box.job(job_id).last_error
    if medium == "usb":
        out.mkdir()
        r = subprocess.run([require("mcopy", "mtools"), "-s", "-n", "-i", str(box.sim.image), "::/*", f"{out}/"],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
        assert r.returncode == 0, r.stderr
        return out
    return extract_iso(box.sim.image, out)


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    b.hold(FILES)
    yield b
    b.close()


@pytest.mark.parametrize("medium", ["cd", "dvd", "usb"])
def test_the_medium_passes_dciodvfy_dcdirdmp_and_the_dcmmkdir_profile_check(box, tmp_path, medium):
    require("xorriso" if medium != "usb" else "mcopy", "xorriso" if medium != "usb" else "mtools")
    dciodvfy = require("dciodvfy", "dicom3tools")
    dcmmkdir = require("dcmmkdir", "dcmtk")
    root = exported(box, medium, tmp_path / "medium")
    fs = check_fileset(root, len(FILES))

    out = subprocess.run([dciodvfy, "DICOMDIR"], cwd=root, capture_output=True, text=True, errors="replace",
                         timeout=120)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
    assert not errors, errors[:5]

    copy = tmp_path / "dcmmkdir"
    copy.mkdir()
    shutil.copy(root / "DICOMDIR", copy / "DICOMDIR")
    out = subprocess.run([dcmmkdir, "+U", "-nb", "+D", str(copy / "DICOMDIR"), DCMMKDIR_PROFILE[medium],
                          "+I", "+r", "+id", str(root), "DICOM"],
                         capture_output=True, text=True, errors="replace", timeout=300)
    errors = [line for line in (out.stdout + out.stderr).splitlines()
              if line.startswith(("E:", "F:")) and not _INSTANCE_GAP.match(line)]
    assert out.returncode == 0 and not errors, errors[:5]

    # What was copied (not converted) is byte-identical to what the buffer holds.
    held = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p.read_bytes()
            for p in (box.root / "buffer" / "objects").rglob("*.dcm")}
    same = [inst for inst in fs if Path(inst.path).read_bytes() == held[inst.SOPInstanceUID]]
    assert len(same) >= (len(FILES) - 1 if medium == "cd" else len(FILES))  # the CD decompresses the JPEG


def test_japanese_and_latin1_names_survive_into_the_records_and_the_pages(box, tmp_path):
    require("xorriso", "xorriso")
    root = exported(box, "cd", tmp_path / "medium")
    check_fileset(root, len(FILES))
    names = {str(pydicom.dcmread(f, stop_before_pixels=True).PatientName) for f in FILES[4:]}
    dicomdir = pydicom.dcmread(root / "DICOMDIR")
    records = {str(r.PatientName) for r in dicomdir.DirectoryRecordSequence
               if r.DirectoryRecordType == "PATIENT"}
    for name in names:
        assert name in records
    page = (root / "IHE_PDI" / "INDEX.HTM").read_text(encoding="utf-8")
    assert "YAMADA, Tarou / 山田 太郎 / やまだ たろう" in page  # chrH31, ISO 2022 IR 87
    assert "BUC, Jérôme" in page  # chrFren, ISO_IR 100


CHILD = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    from test_media_export import Box
    box = Box(Path(sys.argv[1]))
    box.optical()
    real_hook = box.sim.hook
    def hook(phase, mapping):
        if phase == "writing":
            (Path(sys.argv[1]) / "writing").write_text("x")
            time.sleep(120)
        real_hook(phase, mapping)
    box.drive.hook = hook
    box.insert("cd")
    box.run_once()
''')


def test_kill_9_during_an_export_writes_it_again_after_the_restart(tmp_path):
    require("xorriso", "xorriso")
    box = Box(tmp_path)
    box.hold([TEST_FILES / "CT_small.dcm"])
    study = str(pydicom.dcmread(TEST_FILES / "CT_small.dcm", stop_before_pixels=True).StudyInstanceUID)
    (job_id,) = enqueue_export(box.buffer.queue, ExportRequest((study,), "cd"))
    box.close()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(Path(__file__).parents[1] / "unit"),
                              str(Path(__file__).parents[1])], cwd=ROOT, start_new_session=True,
                             env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'hw-sim'}"})
    try:
        wait_until(lambda: (tmp_path / "writing").exists() or child.poll() is not None, 60, what="the write")
        assert child.poll() is None, "the child ended before writing"
        assert (tmp_path / "staging" / f"job-{job_id}" / "DICOMDIR").is_file()
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
    box = Box(tmp_path)
    try:
        assert box.job(job_id).state == "in_flight"
        assert box.buffer.recover()["requeued_jobs"] == 1
        box.optical()
        box.exporter.on_start()
        assert not (tmp_path / "staging" / f"job-{job_id}").exists()
        box.sim.pull()  # the disc of the killed burn
        box.insert("cd")
        box.run_once()
        assert box.job(job_id).state == "done"
        assert box.job(job_id).attempts == 2
    finally:
        box.close()
