"""Issue 10 end to end on the running service: `dicom-gateway run` with [capture] on hw-sim's frame
grabber (320x240 at 10 fps: little CPU), DCMTK's wlmscpfs as the RIS's worklist, a pynetdicom MPPS
SCP started here (DCMTK has none), Orthanc as the PACS, dciodvfy on what Orthanc holds.

The operator's side is the real command line (`dicom-gateway worklist --select N`, `capture`,
`capture --clip 2`, `capture --end`, `hw-sim grabber signal-off`), each answer read as the operator
reads it. Every peer listens on 127.0.0.1 on a free port and is stopped even when a test fails;
waits are bounded and poll for outcomes, no duration is asserted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from dicom_bytes import indexed
from peers import ROOT, free_port, require, wait_until
from test_mpps_scu import MppsSCP
from test_worklist_wlmscpfs import (JP87_BYTES, JP87_NAME, LATIN_BYTES, LATIN_NAME, SCP_AE, TODAY, Wlmscpfs,
                                    _item)

from gateway.buffer.mpps import CREATE, SET
from gateway.state import read_snapshot

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

# Patient ID: (Specific Character Set, name bytes, modality, decoded name, item number: its
# accession ACC00n and Study Instance UID ...10.1.n, as _item writes them).
ITEMS = {
    "PID001": (b"ISO_IR 100", LATIN_BYTES, "US", LATIN_NAME, 1),
    # ES: the still is a VL Endoscopic Image (capture.still_sop = "auto").
    "PIDJP87": (b"\\ISO 2022 IR 87", JP87_BYTES, "ES", JP87_NAME, 2),
}
SIZE = (320, 240)
STORED = re.compile(r"\b(still|clip) ([0-9.]+) stored for patient ([^\s,]+)")
# dciodvfy's one warning that stays (tests/interop/test_capture_dciodvfy.py says why).
ALLOWED_WARNINGS = ("attribute <Laterality>",)


@pytest.fixture(scope="module")
def wl_db(tmp_path_factory) -> Path:
    """A wlmscpfs database: ITEMS for station EDGE today, made with dump2dcm."""
    require("dump2dcm", "dcmtk")
    root = tmp_path_factory.mktemp("wl")
    db = root / "db"
    (db / SCP_AE).mkdir(parents=True)
    (db / SCP_AE / "lockfile").write_bytes(b"")
    for pid, (charset, name, modality, _, n) in ITEMS.items():
        dump = root / f"{pid}.dump"
        dump.write_bytes(_item(charset, name, pid, "EDGE", TODAY, modality, n))
        subprocess.run(["dump2dcm", "-q", "-g", str(dump), str(db / SCP_AE / f"{pid}.wl")], check=True,
                       capture_output=True, timeout=60)
    return db


@pytest.fixture
def ris(wl_db):
    scp = Wlmscpfs(wl_db).start()
    try:
        yield scp
    finally:
        scp.stop()


@pytest.fixture
def mpps_scp():
    scp = MppsSCP(free_port()).start()
    try:
        yield scp
    finally:
        scp.stop()


def _config(tmp_path: Path, *, worklist: int | None = None, mpps: int | None = None, pacs: int | None = None,
            buffer: dict | None = None, **capture) -> dict:
    cfg: dict = {"capture": {"enabled": True, "clip_max_s": 30.0, **capture,
                             "grabber": {"kind": "sim", "sim_dir": str(tmp_path / "grab"), "width": SIZE[0],
                                         "height": SIZE[1], "fps": 10.0}}}
    if worklist:
        # auto_select_minutes 0: the operator chooses, whatever the clock says.
        cfg["worklist"] = {"enabled": True, "ae_title": SCP_AE, "port": worklist, "timeout_s": 10.0,
                           "auto_select_minutes": 0}
    if mpps:
        cfg["mpps"] = {"enabled": True, "ae_title": "RIS", "port": mpps, "retry_initial_s": 0.2, "retry_max_s": 1.0}
    if pacs:
        cfg["destinations"] = {"pacs": {"ae_title": "TESTPACS", "port": pacs, "retry_initial_s": 0.2,
                                        "retry_max_s": 1.0}}
    if buffer:
        cfg["buffer"] = buffer
    return cfg


def _hw_sim(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'hw-sim'}"}
    return subprocess.run([sys.executable, "-m", "hwsim.cli", "grabber", "--grabber-dir", str(tmp_path / "grab"),
                           *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)


def _frames_sent(tmp_path: Path) -> int:
    m = re.search(r"frames sent (\d+)", _hw_sim(tmp_path, "status").stdout)
    return int(m.group(1)) if m else -1


def _signal_up(gw) -> None:
    wait_until(lambda: f"signal {SIZE[0]}x{SIZE[1]}" in gw.log, 60, what="the service's grabber reading frames")


def _worklist_loaded(gw) -> str:
    """The `worklist` listing once the service has every item from the SCP."""
    def fetched() -> str:
        out = gw.cli("worklist").stdout
        return out if f"{len(ITEMS)} items" in out and "FROM THE CACHE" not in out else ""

    return wait_until(fetched, 60, interval=0.5, what="the worklist fetched from the SCP")


def _position(listing: str, patient_id: str) -> int:
    m = re.search(rf"^\s*(\d+) [ *] {re.escape(patient_id)}\b", listing, re.M)
    assert m, listing
    return int(m.group(1))


def _select(gw, patient_id: str) -> None:
    n = _position(_worklist_loaded(gw), patient_id)
    out = gw.cli("worklist", "--select", str(n))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Patient ID {patient_id}" in out.stdout, out.stdout


def _capture(gw, *args: str) -> tuple[str, str]:
    """`dicom-gateway capture ARGS` that must store: (what, SOP Instance UID)."""
    out = gw.cli("capture", *args, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    m = STORED.search(out.stdout)
    assert m, out.stdout
    return m.group(1), m.group(2)


def _stored(gw, sop_uid: str) -> pydicom.Dataset:
    path = wait_until(lambda: indexed(gw.buffer).get(sop_uid), 30, what=f"{sop_uid} in the buffer's index")
    return pydicom.dcmread(path)


def _dciodvfy(path: Path) -> None:
    exe = require("dciodvfy", "dicom3tools")
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    lines = (out.stdout + out.stderr).splitlines()
    errors = [ln for ln in lines if "Error" in ln]
    warnings = [ln for ln in lines if "Warning" in ln and not any(a in ln for a in ALLOWED_WARNINGS)]
    assert errors == [] and warnings == [], "\n".join(errors + warnings)


def _status_says(gw, *texts: str) -> str:
    """`dicom-gateway status` once it says every one of texts (it reads the service's snapshot,
    written a moment after the event)."""
    def says() -> str:
        out = gw.cli("status")
        return out.stdout if out.returncode == 0 and all(t in out.stdout for t in texts) else ""

    return wait_until(says, 30, interval=0.5, what=f"status saying {texts}")


def _no_traceback(gw) -> None:
    assert "Traceback" not in gw.log, gw.log[-4000:]


# -- (1) worklist item -> still and clip -> Orthanc, Latin-1 and Japanese ----------------------------------
def test_worklist_items_captured_reach_orthanc_with_their_identity(gateway_factory, orthanc_factory, ris, tmp_path):
    port = free_port()
    orthanc = orthanc_factory(port)
    gw = gateway_factory(_config(tmp_path, worklist=ris.port, pacs=orthanc.dicom), port=port)
    _signal_up(gw)
    for pid, (_, raw, modality, name, n) in ITEMS.items():
        _select(gw, pid)
        made = [_capture(gw), _capture(gw, "--clip", "2")]
        assert [what for what, _ in made] == ["still", "clip"]
        for what, uid in made:
            oid = wait_until(lambda: orthanc.lookup(uid), 60, what=f"the {what} of {pid} at Orthanc")
            tags = orthanc.get(f"/instances/{oid}/simplified-tags")
            assert tags["PatientID"] == pid
            assert tags["PatientName"] == name  # Orthanc decoded the object's character set right
            assert tags["StudyInstanceUID"] == f"1.2.826.0.1.3680043.10.1.{n}"
            assert tags["AccessionNumber"] == f"ACC{n:03d}"
            blob = orthanc.instance_file(uid)
            # The name as the RIS encoded it, byte for byte (ISO 2022 escapes and all).
            assert raw in blob
            path = tmp_path / f"{pid}-{what}.dcm"
            path.write_bytes(blob)
            ds = pydicom.dcmread(path)
            assert str(ds.PatientName) == name and ds.PatientID == pid
            if what == "clip":
                assert int(ds.NumberOfFrames) >= 2
            elif modality == "ES":
                assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.1"  # VL Endoscopic Image
            _dciodvfy(path)
    _no_traceback(gw)


# -- (2) MPPS: IN PROGRESS at the first capture, COMPLETED with exactly what was captured ------------------
def test_mpps_in_progress_at_the_first_capture_completed_with_the_captured_instances(
        gateway_factory, ris, mpps_scp, tmp_path):
    gw = gateway_factory(_config(tmp_path, worklist=ris.port, mpps=mpps_scp.port))
    _signal_up(gw)
    _select(gw, "PID001")
    assert mpps_scp.steps() == []
    _, still = _capture(gw)
    wait_until(lambda: mpps_scp.steps(CREATE), 60, what="the N-CREATE")
    ((_, mpps_uid, created),) = mpps_scp.steps(CREATE)
    assert created.PerformedProcedureStepStatus == "IN PROGRESS"
    assert created.PatientID == "PID001" and str(created.PatientName) == LATIN_NAME
    (item,) = created.ScheduledStepAttributesSequence
    assert (item.StudyInstanceUID, item.AccessionNumber) == ("1.2.826.0.1.3680043.10.1.1", "ACC001")
    _, clip = _capture(gw, "--clip", "2")
    assert mpps_scp.steps(SET) == []  # nothing completed before the operator says so
    out = gw.cli("capture", "--end")
    assert out.returncode == 0 and "ended: 2 objects; its MPPS is queued as COMPLETED; choose the next one" in out.stdout, \
        out.stdout + out.stderr
    wait_until(lambda: mpps_scp.steps(SET), 60, what="the N-SET")
    ((_, set_uid, mod),) = mpps_scp.steps(SET)
    assert set_uid == mpps_uid and mod.PerformedProcedureStepStatus == "COMPLETED"
    referenced = {(r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID, s.SeriesInstanceUID)
                  for s in mod.PerformedSeriesSequence for r in s.ReferencedImageSequence}
    objects = {uid: _stored(gw, uid) for uid in (still, clip)}
    assert referenced == {(ds.SOPClassUID, uid, ds.SeriesInstanceUID) for uid, ds in objects.items()}
    assert len(mpps_scp.steps()) == 2  # one N-CREATE, one N-SET
    _no_traceback(gw)


# -- (3) the RIS down: the cached worklist stays usable --------------------------------------------------
def test_ris_down_the_cached_worklist_still_captures(gateway_factory, ris, tmp_path):
    gw = gateway_factory(_config(tmp_path, worklist=ris.port))
    _signal_up(gw)
    _select(gw, "PIDJP87")
    ris.stop()
    out = gw.cli("worklist", "--refresh")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "worklist refresh failed: " in out.stdout and "FROM THE CACHE" in out.stdout, out.stdout
    assert "connection refused" in out.stdout
    listing = gw.cli("worklist").stdout
    assert "FROM THE CACHE" in listing and f"{len(ITEMS)} items" in listing
    chosen = re.search(r"current procedure: item (\d+)", listing)  # the operator's choice stands
    assert chosen and int(chosen.group(1)) == _position(listing, "PIDJP87"), listing
    _status_says(gw, "procedure: Patient ID PIDJP87; worklist SCP failing since", "using the worklist of")
    _, uid = _capture(gw)
    ds = _stored(gw, uid)
    assert ds.PatientID == "PIDJP87" and str(ds.PatientName) == JP87_NAME
    assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.10.1.2" and ds.AccessionNumber == "ACC002"
    _no_traceback(gw)


# -- (4) no worklist at all: an unscheduled, flagged capture ---------------------------------------------
def test_no_worklist_captures_unscheduled_and_flags_it(gateway_factory, tmp_path):
    gw = gateway_factory(_config(tmp_path))
    _signal_up(gw)
    out = gw.cli("capture")
    assert out.returncode == 0, out.stdout + out.stderr
    m = STORED.search(out.stdout)
    assert m and out.stdout.rstrip().endswith("(unscheduled)"), out.stdout
    uid, patient_id = m.group(2), m.group(3)
    _, again = _capture(gw)  # a second still: the same identity and study
    ds = _stored(gw, uid)
    assert ds.PatientID == patient_id
    assert re.fullmatch(rf"UNSCHED{TODAY}-\d{{3}}", ds.PatientID), ds.PatientID
    assert ds.get("IssuerOfPatientID") == "UNSCHEDULED"
    assert str(ds.get("PatientComments", "")).startswith("UNSCHEDULED capture"), ds.get("PatientComments")
    assert "RequestAttributesSequence" not in ds
    second = _stored(gw, again)
    assert (second.PatientID, second.StudyInstanceUID) == (ds.PatientID, ds.StudyInstanceUID)
    path = tmp_path / "unscheduled.dcm"
    path.write_bytes(indexed(gw.buffer)[uid].read_bytes())
    _dciodvfy(path)
    _no_traceback(gw)


# -- (5) the signal lost mid-clip: kept with the frames captured, or discarded ------------------------------
def _incoming_left(gw) -> list[Path]:
    return [p for p in (gw.buffer / "incoming").rglob("*") if p.is_file()]


def _snapshot_capture(gw) -> dict:
    return (read_snapshot(gw.buffer) or {}).get("capture") or {}


@pytest.mark.parametrize("on_signal_lost", ["keep", "discard"])
def test_signal_lost_mid_clip(gateway_factory, tmp_path, on_signal_lost):
    gw = gateway_factory(_config(tmp_path, on_signal_lost=on_signal_lost))
    _signal_up(gw)
    started = gw.cli("capture", "--clip", "20", "--no-wait")
    assert started.returncode == 0 and "recording 20 s" in started.stdout, started.stdout + started.stderr
    # Some frames into the clip (the source's own count: about a second's worth), then dark.
    sent = _frames_sent(tmp_path)
    wait_until(lambda: _frames_sent(tmp_path) >= sent + 10, 60, interval=0.2, what="frames into the clip")
    off = _hw_sim(tmp_path, "signal-off")
    assert off.returncode == 0 and "signal off" in off.stdout, off.stdout + off.stderr
    if on_signal_lost == "keep":
        line = wait_until(lambda: re.search(r"clip stored: ([0-9.]+) for \S+ \((the signal was lost after [^)]*)\)",
                                            gw.log), 60, what="the clip stored")
        ds = _stored(gw, line.group(1))
        # Stored with the frames it has: some, not the 200 of 20 s at 10 fps.
        assert 1 <= int(ds.NumberOfFrames) < 200
        assert ds.ImageComments.startswith("the signal was lost after")
        _dciodvfy(indexed(gw.buffer)[line.group(1)])  # a cut clip is a whole, valid object
        # The capture-stored event's note, as the service's snapshot (state.json) folded it.
        last = wait_until(lambda: _snapshot_capture(gw).get("last"), 30, what="capture-stored in the snapshot")
        assert last["sop_uid"] == line.group(1) and last["note"] == line.group(2)
        _status_says(gw, "capture (sim): NO SIGNAL since", "frames at ", f"; {line.group(2)}")
    else:
        wait_until(lambda: "clip not captured: discarded: the signal was lost" in gw.log, 60,
                   what="the clip discarded")
        assert indexed(gw.buffer) == {}
        failed = wait_until(lambda: _snapshot_capture(gw).get("last_failed"), 30, what="capture-failed in the snapshot")
        assert failed["what"] == "clip" and failed["reason"].startswith("discarded: the signal was lost")
        _status_says(gw, "capture (sim): NO SIGNAL since", "last failed: clip at ", ": discarded: the signal was lost")
    assert "grabber: no signal" in gw.log
    assert _incoming_left(gw) == []
    # The signal back: captures go on.
    assert _hw_sim(tmp_path, "signal-on").returncode == 0
    wait_until(lambda: gw.log.count(f"signal {SIZE[0]}x{SIZE[1]}") >= 2, 60, what="the signal back")
    _capture(gw)
    _no_traceback(gw)


# -- (6) no signal at all: refused in one line --------------------------------------------------------
def test_no_signal_refuses_in_one_line(gateway_factory, tmp_path):
    gw = gateway_factory(_config(tmp_path))
    _signal_up(gw)
    assert _hw_sim(tmp_path, "signal-off").returncode == 0
    wait_until(lambda: "grabber: no signal" in gw.log, 60, what="the service seeing the signal lost")
    for args, verb in (((), "captured"), (("--clip", "2"), "recorded")):
        out = gw.cli("capture", *args)
        assert out.returncode == 1, out.stdout + out.stderr
        assert out.stdout == "" and out.stderr.strip() == f"capture: no signal on grabber: nothing {verb}", out.stderr
        assert out.stderr.count("\n") == 1
    assert indexed(gw.buffer) == {} and _incoming_left(gw) == []
    _status_says(gw, "capture (sim): NO SIGNAL since", "0 objects captured since start")
    _no_traceback(gw)


# -- (7) the buffer's disk under its reserve: refused in one line, the service runs on ----------------------
def test_buffer_under_its_reserve_refuses_the_capture_and_runs_on(gateway_factory, tmp_path):
    st = os.statvfs(tmp_path)
    free_mb = st.f_bavail * st.f_frsize // (1024 * 1024)
    gw = gateway_factory(_config(tmp_path, buffer={"reserve_mb": free_mb + 1024}))
    _signal_up(gw)
    # A still is refused by the intake; a clip at its start, before a second is recorded.
    for args, refusal in (((), "capture: the buffer refused the still: buffer full: "),
                          (("--clip", "2"), "capture: the buffer is full: ")):
        out = gw.cli("capture", *args, timeout=120)
        assert out.returncode == 1 and out.stdout == "", out.stdout + out.stderr
        assert out.stderr.startswith(refusal) and out.stderr.count("\n") == 1, out.stderr
        assert "free space" in out.stderr and "is below the reserve" in out.stderr, out.stderr
    assert indexed(gw.buffer) == {} and _incoming_left(gw) == []
    assert gw.proc.poll() is None
    _status_says(gw, "running", "last failed: clip at ", ": the buffer is full: ")
    _no_traceback(gw)


def test_a_real_full_disk_mid_clip_leaves_nothing_half_written(gateway_factory, tmp_path):
    """A 4 MB tmpfs as the buffer and uncompressed frames (230 KB each at 320x240): the clip's
    encoder meets ENOSPC a few frames in. The clip fails in one line, nothing is left in incoming/,
    and once its temporaries are gone a still fits again."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("needs root to mount a small tmpfs")
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True, timeout=30)
    gw = None
    try:
        gw = gateway_factory(_config(tmp_path, encoding="uncompressed", buffer={"path": str(mnt / "buffer")}))
        gw.buffer = mnt / "buffer"
        _signal_up(gw)
        out = gw.cli("capture", "--clip", "20", timeout=120)
        assert out.returncode == 1, out.stdout + out.stderr
        text = (out.stdout + out.stderr).strip()
        assert text.count("\n") == 0 and text == "clip: the clip could not be written: the buffer's disk is full", text
        assert indexed(gw.buffer) == {} and _incoming_left(gw) == []
        _capture(gw)
        assert gw.proc.poll() is None
        _no_traceback(gw)
    finally:
        if gw is not None:
            gw.stop()  # before the unmount; gateway_factory stops it too, harmlessly
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)


# -- the operator chooses another patient while a clip records ------------------------------------------
def test_another_patient_chosen_mid_clip_the_clip_stays_with_its_own(gateway_factory, ris, tmp_path):
    gw = gateway_factory(_config(tmp_path, worklist=ris.port))
    _signal_up(gw)
    _select(gw, "PID001")
    started = gw.cli("capture", "--clip", "20", "--no-wait")
    assert started.returncode == 0 and "for patient PID001" in started.stdout, started.stdout + started.stderr
    _select(gw, "PIDJP87")
    # Neither a still for the new patient nor ending the procedure while the clip records.
    for args, refusal in (((), "a clip is being recorded for another procedure"),
                          (("--end",), "a clip is being recorded: the procedure ends when it is stored")):
        out = gw.cli("capture", *args)
        assert out.returncode == 1 and out.stderr == f"capture{'-end' if args else ''}: {refusal}\n", out.stderr
    # The clip ends (the source goes dark) and is stored for the patient it was recorded for.
    assert _hw_sim(tmp_path, "signal-off").returncode == 0
    clip = wait_until(lambda: re.search(r"clip stored: ([0-9.]+) ", gw.log), 60, what="the clip stored")
    ds = _stored(gw, clip.group(1))
    assert ds.PatientID == "PID001" and ds.AccessionNumber == "ACC001"
    assert _hw_sim(tmp_path, "signal-on").returncode == 0
    wait_until(lambda: gw.log.count(f"signal {SIZE[0]}x{SIZE[1]}") >= 2, 60, what="the signal back")
    _, still = _capture(gw)
    ds = _stored(gw, still)
    assert ds.PatientID == "PIDJP87" and str(ds.PatientName) == JP87_NAME
    _no_traceback(gw)
