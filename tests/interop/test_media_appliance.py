"""The running appliance acts on inserted media (issue 8 items 2, 4 and 6): the real service
(`dicom-gateway run`) with hw-sim's optical drive and USB port, driven by `hw-sim media` from
another process, as an operator does beside `make run`.

- a study stored with DCMTK storescu, then `hw-sim media insert cd --blank`: the default export
  rule queues it, the exporter writes and verifies the disc; the disc image is read back with
  xorriso and its DICOMDIR with DCMTK dcdirdmp;
- `hw-sim media insert usb --from DIR`: the files are imported as MEDIA:usb and forwarded to the
  PACS (Orthanc)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pydicom
from datasets import make_ct
from peers import ROOT, TEST_FILES, free_port, require, storescu, wait_until


CT = TEST_FILES / "CT_small.dcm"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "hw-sim"), os.environ.get("PYTHONPATH", "")])}


def hwsim(sim_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwsim.cli", "--sim-dir", str(sim_dir), "media", *args],
                          capture_output=True, text=True, timeout=60, env=ENV, cwd=ROOT)


def query(gw, sql: str, params: tuple = ()) -> list[tuple]:
    db = sqlite3.connect(f"file:{gw.buffer / 'index.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def media_config(sim_dir: Path, **rule) -> dict:
    return {"media": {"drives": {"cd": {"kind": "optical-sim", "sim_dir": str(sim_dir)},
                                 "usb": {"kind": "usb-sim", "sim_dir": str(sim_dir), "sim_usb_mb": 40}},
                      "export_rules": [{"name": "new-studies", "stable_s": 0, **rule}]}}


def test_a_blank_disc_inserted_beside_the_running_service_is_written_and_verified(gateway_factory, tmp_path):
    require("xorriso", "xorriso")
    dcdirdmp = require("dcdirdmp", "dcmtk")
    sim = tmp_path / "sim"
    # stable_s: the study just stored is still arriving when the disc goes in; the rules are tried
    # again once it is stable, the disc still in (and meanwhile the test keeps a link to the
    # disc's image: the exporter ejects a verified disc, and the simulator's eject deletes it).
    gw = gateway_factory(media_config(sim, stable_s=4))
    r = storescu(gw.port, [CT])
    assert r.returncode == 0 and "Received Store Response (Success)" in r.stderr + r.stdout, r.stderr
    head = pydicom.dcmread(CT, stop_before_pixels=True)
    study_uid, sop_uid = str(head.StudyInstanceUID), str(head.SOPInstanceUID)

    r = hwsim(sim, "insert", "cd", "--blank")
    assert r.returncode == 0, r.stderr
    disc = sim / "cd" / "disc.iso"
    kept = tmp_path / "kept.iso"
    os.link(disc, kept)
    wait_until(lambda: "still arriving (stable in" in gw.log, 30, what="the rule to wait for the study")

    wait_until(lambda: query(gw, "SELECT state FROM jobs WHERE kind = 'export'") == [("done",)], 120,
               what="the export job to be done (written and verified)")
    assert query(gw, "SELECT e.study_uid, e.marks FROM media_exports e") == [(study_uid, 1)]
    assert "drive cd: blank cd: rule new-studies queued 1 studies x 1 copies" in gw.log
    wait_until(lambda: "drive cd: medium removed" in gw.log, 30, what="the verified disc to be ejected")
    status = gw.cli("status")
    assert status.returncode == 0, status.stderr
    wait_until(lambda: "drive cd (optical-sim): empty; last: export job 1 verified as" in gw.cli("status").stdout, 30,
               what="`status` to show the drive")
    assert "backlog 0 exports" in gw.cli("status").stdout

    out = tmp_path / "read-back"
    x = subprocess.run(["xorriso", "-osirrox", "on", "-indev", f"stdio:{kept}", "-extract", "/", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert x.returncode == 0, x.stderr
    d = subprocess.run([dcdirdmp, str(out / "DICOMDIR")], capture_output=True, text=True, timeout=60)
    assert d.returncode == 0 and "IMAGE" in d.stdout + d.stderr, d.stdout + d.stderr
    images = [r for r in pydicom.dcmread(out / "DICOMDIR").DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    assert [r.ReferencedSOPInstanceUIDInFile for r in images] == [sop_uid]
    on_disc = out.joinpath(*images[0].ReferencedFileID)
    assert pydicom.dcmread(on_disc).SOPInstanceUID == sop_uid

    # Marked exported: the next blank medium gets nothing, and the log says why.
    r = hwsim(sim, "insert", "usb", "--blank")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: "drive usb: blank medium, nothing exported: rule new-studies: no study matches" in gw.log,
               60, what="the rule's refusal in the log")
    assert "Test^Patient" not in gw.log and str(head.PatientName) not in gw.log
    assert "Traceback" not in gw.log
    assert gw.stop() == 0


def test_a_stick_with_dicom_is_imported_and_forwarded(gateway_factory, orthanc_factory, tmp_path):
    require("mkfs.vfat", "dosfstools")
    require("mcopy", "mtools")
    sim = tmp_path / "sim"
    port = free_port()
    orthanc = orthanc_factory(port)
    gw = gateway_factory({**media_config(sim),
                          "destinations": {"pacs": {"ae_title": orthanc.aet, "port": orthanc.dicom}}}, port=port)
    content = tmp_path / "stick" / "SCANS"
    content.mkdir(parents=True)
    sops = [str(make_ct(content / f"IM{i}", study_uid="1.2.826.0.1.3680043.2.1143.77", number=i).SOPInstanceUID)
            for i in (1, 2, 3)]

    r = hwsim(sim, "insert", "usb", "--from", str(tmp_path / "stick"))
    assert r.returncode == 0, r.stderr

    wait_until(lambda: query(gw, "SELECT count(*) FROM instances WHERE calling_ae = 'MEDIA:usb'") == [(3,)], 120,
               what="the stick's three files in the buffer")
    assert query(gw, "SELECT imported, skipped, failed FROM imports") == [(3, 0, 0)]
    wait_until(lambda: orthanc.count() == 3, 120, what="the PACS to receive the imported images")
    assert all(orthanc.lookup(uid) for uid in sops)
    assert not any((gw.buffer / "media-staging").iterdir())
    # A stick with data is not offered to the export rules.
    assert "nothing exported" not in gw.log and not query(gw, "SELECT * FROM jobs WHERE kind = 'export'")
    assert "Traceback" not in gw.log
    assert gw.stop() == 0
