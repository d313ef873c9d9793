"""`dicom-gateway import DRIVE` and `dicom-gateway eject DRIVE` against the real service
(`dicom-gateway run`) on hw-sim's drives: the command line asks the running service over
`<buffer>/control.sock` (gateway/control.py), the drive's own worker does the work.

A stick is put into the simulated USB port by writing its FAT image directly (hwsim.media
make_fat_image), without the uevent `hw-sim media insert` sends: the service does not import it by
itself (gateway/media/service.py imports on an "inserted" event only), as with a medium whose
import must be repeated, so that `import usb` is what reads it."""

from __future__ import annotations

import os
import time

import pydicom
from datasets import make_ct
from peers import require, wait_until
from test_media_appliance import hwsim, media_config, query

from gateway import control
from hwsim.media import make_fat_image

STUDY = "1.2.826.0.1.3680043.2.1143.88"


def _one_line(r) -> str:
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    return r.stderr.strip()


def _stick(folder) -> set[str]:
    (folder / "SCANS").mkdir(parents=True)
    return {str(make_ct(folder / "SCANS" / f"IM{i}", study_uid=STUDY, number=i).SOPInstanceUID) for i in (1, 2)}


def test_import_and_eject_of_a_drive_ask_the_running_service(gateway_factory, tmp_path):
    for tool, pkg in (("xorriso", "xorriso"), ("mkfs.vfat", "dosfstools"), ("mcopy", "mtools")):
        require(tool, pkg)
    sim = tmp_path / "sim"
    gw = gateway_factory(media_config(sim))
    sock = gw.buffer / "control.sock"
    wait_until(lambda: sock.exists(), 30, what="the control socket")
    assert oct(os.stat(sock).st_mode & 0o777) == "0o600"

    uids = _stick(tmp_path / "stick")
    make_fat_image(sim / "usb" / "stick.img", 40 * 1024 * 1024, tmp_path / "stick")  # in, without a uevent
    time.sleep(1)
    assert "importing as MEDIA:usb" not in gw.log  # the service did not import it by itself

    r = gw.cli("import", "usb")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "import 1 of drive usb as MEDIA:usb: 2 files: 2 imported, 0 duplicate, 0 skipped, 0 failed; 0 flagged",
        "the report: dicom-gateway imports 1"]
    assert set(uid for uid, in query(gw, "SELECT sop_uid FROM instances WHERE calling_ae = 'MEDIA:usb'")) == uids
    r = gw.cli("imports")
    rows = [ln.split()[2:5] for ln in r.stdout.splitlines()[1:]]
    assert r.returncode == 0 and rows == [["usb", "scan", "finished"]], r.stdout
    assert "drive usb: usb with data: importing as MEDIA:usb" in gw.log  # the worker's own line, as on insertion

    r = gw.cli("import", "cd")
    assert r.returncode == 1 and _one_line(r) == "import: drive cd has no medium"
    r = gw.cli("import", "usb", "--label", "X")
    assert r.returncode == 2 and "--label is for a folder" in _one_line(r)

    # A blank disc: the rule queues the imported study and the exporter writes it. While the job
    # is in flight an eject is refused with the reason (asked through the CLI's own client,
    # which answers in milliseconds, so it lands inside the write).
    r = hwsim(sim, "insert", "cd", "--blank")
    assert r.returncode == 0, r.stderr
    _poll_in_flight(gw)
    answer = control.request(gw.buffer, "eject", 10, drive="cd")
    assert answer["refused"] == ("eject: drive cd is writing or verifying its medium; it ejects it by itself"
                                 " when done"), answer
    assert not answer["usage"] and not answer["ok"]
    wait_until(lambda: query(gw, "SELECT state FROM jobs WHERE kind = 'export'") == [("done",)], 120,
               what="the export verified")
    wait_until(lambda: "drive cd: medium removed" in gw.log, 30, what="the verified disc ejected by the exporter")

    # Idle: a blank disc nothing is for (the study is marked exported) is given back on request.
    r = hwsim(sim, "insert", "cd", "--blank")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: gw.log.count("drive cd: blank medium, nothing exported") == 1, 30, what="the rules' refusal")
    assert (sim / "cd" / "disc.iso").exists()
    r = gw.cli("eject", "cd")
    assert r.returncode == 0 and r.stdout.strip() == "drive cd: medium released", r.stdout + r.stderr
    assert not (sim / "cd" / "disc.iso").exists()
    r = gw.cli("eject", "nowhere")
    assert r.returncode == 2 and _one_line(r) == "dicom-gateway: eject: unknown drive 'nowhere' (configured: cd, usb)"

    head = pydicom.dcmread(next((tmp_path / "stick" / "SCANS").iterdir()), stop_before_pixels=True)
    assert str(head.PatientName) not in gw.log and "Traceback" not in gw.log
    assert gw.stop() == 0
    assert not sock.exists()


def _poll_in_flight(gw) -> None:
    # Every 5 ms: the write lasts far longer (xorriso masters, writes and reads the disc back).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if query(gw, "SELECT state FROM jobs WHERE kind = 'export'") == [("in_flight",)]:
            return
        time.sleep(0.005)
    raise AssertionError("the export job was never seen in flight")


def test_without_a_service_the_drive_verbs_refuse_and_a_folder_is_reached_with_a_slash(gateway_factory, tmp_path):
    sim = tmp_path / "sim"
    gw = gateway_factory(media_config(sim), start=False)
    r = gw.cli("import", "usb")
    assert r.returncode == 1 and _one_line(r) == (
        "import: drive usb is read by the running service, and no service runs on this buffer (start it:"
        " dicom-gateway run); to import a medium mounted or copied at a folder: dicom-gateway import PATH")
    r = gw.cli("eject", "cd")
    assert r.returncode == 1 and _one_line(r).startswith("eject: drive cd is driven by the running service, and no")
    r = gw.cli("eject", "nowhere")
    assert r.returncode == 2 and "unknown drive 'nowhere'" in _one_line(r)
    # A folder named like a drive: with a slash it is the folder (imported as the default label).
    folder = tmp_path / "usb"
    uids = _stick(folder)
    r = gw.cli("import", f"{folder}/")
    assert r.returncode == 0 and "as MEDIA:IMPORT" in r.stdout, r.stdout + r.stderr
    assert set(uid for uid, in query(gw, "SELECT sop_uid FROM instances WHERE calling_ae = 'MEDIA:IMPORT'")) == uids
