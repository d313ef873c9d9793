"""`dicom-gateway query` / `retrieve` against a real PACS (Orthanc, its C-FIND / C-MOVE / C-GET
SCP), with the real service running: query at each level as a table and JSON (a Latin-1 name from
pydicom's charset files), a C-MOVE landing in the running service's buffer, a C-GET stored by the
command, neither forwarded back to the PACS; PACS down, rejected, unknown study, unknown move
destination; and Ctrl-C during a slow move (a pynetdicom Q/R SCP that sends one instance a second)
ending with C-CANCEL and the counts."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
import pytest

from tests.peers import ROOT, GatewayProcess, Orthanc, free_port, wait_until

DATA = Path(pydicom.__file__).parent / "data"
CT = DATA / "test_files" / "CT_small.dcm"  # CompressedSamples^CT1, 1CT1
MR = DATA / "test_files" / "MR_small.dcm"  # CompressedSamples^MR1, 4MR1
FREN = DATA / "charset_files" / "chrFren.dcm"  # ISO_IR 100, Buc^Jérôme
RLE = DATA / "test_files" / "SC_rgb_rle.dcm"  # RLE Lossless, ISO_IR 192


def _uids(path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


class Box:
    def __init__(self, orthanc: Orthanc, gw: GatewayProcess):
        self.orthanc, self.gw = orthanc, gw

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.gw.cli(*args, timeout=timeout)

    def index_rows(self, sql: str, params=()) -> list[sqlite3.Row]:
        con = sqlite3.connect(f"file:{self.gw.buffer / 'index.sqlite'}?mode=ro", uri=True, timeout=10)
        con.row_factory = sqlite3.Row
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def held(self, sop_uid: str):
        rows = self.index_rows("SELECT id, calling_ae, path FROM instances WHERE sop_uid = ?", (sop_uid,))
        return rows[0] if rows else None

    def forward_jobs(self, instance_id: int) -> int:
        return self.index_rows("SELECT COUNT(*) AS n FROM jobs WHERE instance_fk = ?", (instance_id,))[0]["n"]


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """Orthanc holding four pydicom files, and the gateway (running) with Orthanc as its only
    destination: every received instance would be forwarded there, unless it came from there."""
    tmp = tmp_path_factory.mktemp("qr")
    gw_port = free_port()
    orthanc = Orthanc(tmp / "orthanc", gw_port)
    gw = None
    try:
        orthanc.start()
        for f in (CT, MR, FREN, RLE):
            orthanc._req("/instances", f.read_bytes())
        (tmp / "gw").mkdir()
        gw = GatewayProcess(tmp / "gw", {"destinations": {"pacs": {"ae_title": "TESTPACS",
                                                                    "port": orthanc.dicom}}}, port=gw_port)
        gw.start()
        yield Box(orthanc, gw)
    finally:
        if gw is not None:
            gw.stop()
        orthanc.stop()


def test_query_study_level_table_and_json(box):
    r = box.cli("query")
    assert r.returncode == 0, r.stderr
    ct_study = _uids(CT)[0]
    line = next(ln for ln in r.stdout.splitlines() if ct_study in ln)
    assert "1CT1" in line and "20040119" in line and "CT" in line
    assert "4 studies on TESTPACS" in r.stdout
    r = box.cli("query", "--json", "--patient-id", "1CT1")
    assert r.returncode == 0, r.stderr
    (study,) = json.loads(r.stdout)
    assert study["StudyInstanceUID"] == ct_study and study["PatientName"] == "CompressedSamples^CT1"
    assert study["ModalitiesInStudy"] == "CT"


def test_query_latin1_name_and_date_range(box):
    r = box.cli("query", "--json", "--name", "Buc*")
    assert r.returncode == 0, r.stderr
    (study,) = json.loads(r.stdout)
    assert study["PatientName"] == "Buc^Jérôme" and study["PatientID"] == "SCSFREN"
    r = box.cli("query", "--name", "Buc*")
    assert "Buc^Jérôme" in r.stdout, r.stdout
    # A matching key outside ASCII goes out with Specific Character Set ISO_IR 100.
    r = box.cli("query", "--json", "--name", "Buc^Jérôme")
    assert r.returncode == 0, r.stderr
    assert [s["PatientID"] for s in json.loads(r.stdout)] == ["SCSFREN"]
    r = box.cli("query", "--json", "--date", "20040101-20041231")
    assert sorted(s["PatientID"] for s in json.loads(r.stdout)) == ["1CT1", "4MR1"]


def test_query_patient_series_image_levels(box):
    r = box.cli("query", "--level", "patient", "--json", "--patient-id", "4MR1")
    assert r.returncode == 0, r.stderr
    (patient,) = json.loads(r.stdout)
    assert patient["PatientName"] == "CompressedSamples^MR1"
    study, series, sop = _uids(MR)
    r = box.cli("query", "--level", "series", "--study", study)
    assert r.returncode == 0, r.stderr
    assert series in r.stdout and "MR" in r.stdout and "1 series on TESTPACS" in r.stdout
    r = box.cli("query", "--level", "image", "--study", study, "--series", series, "--json")
    (image,) = json.loads(r.stdout)
    assert image["SOPInstanceUID"] == sop and image["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.4"
    # The table: the SOP class by name, every UID whole (the study's is 42 characters).
    r = box.cli("query", "--level", "image", "--study", study, "--series", series)
    assert r.returncode == 0, r.stderr
    row = r.stdout.splitlines()[1]
    assert "MR Image Storage" in row and "1.2.840.10008.5.1.4.1.1.4" not in row, r.stdout
    assert sop in row and study in row and series in row and "~" not in row, r.stdout
    # Hierarchical: an IMAGE query without its series is refused before any association, by name.
    r = box.cli("query", "--level", "image", "--study", study)
    assert r.returncode == 2 and "SeriesInstanceUID" in r.stderr and len(r.stderr.splitlines()) == 1


def test_retrieve_by_move_lands_in_the_service_and_is_not_sent_back(box):
    study, _, sop = _uids(CT)
    r = box.cli("retrieve", "--study", study)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "C-MOVE from TESTPACS to EDGE" in r.stdout
    assert "retrieved 1 of 1 instance (0 failed, 0 warning) into the buffer\n" in r.stdout
    assert r.stdout.splitlines()[-1] == "the buffer holds 1 instance of this study", r.stdout
    row = box.held(sop)
    assert row is not None and row["calling_ae"] == "TESTPACS"
    # The only destination is the PACS it came from: no forward job (routing.py, never back).
    assert box.forward_jobs(row["id"]) == 0
    r = box.cli("studies")
    # retrieved from the PACS: never forwarded back, and `studies` says so (not "no route matched")
    assert study in r.stdout and r.stdout.split(study, 1)[1].splitlines()[1].strip() == "a copy from TESTPACS: not forwarded"


def test_retrieve_by_get_is_stored_by_the_command(box):
    for path in (MR, RLE):
        study, _, sop = _uids(path)
        r = box.cli("retrieve", "--get", "--study", study)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "C-GET from TESTPACS, over the same association" in r.stdout and "destination" not in r.stdout
        # The same summary as a C-MOVE's (test_retrieve_by_move_lands_in_the_service_and_is_not_sent_back).
        assert "retrieved 1 of 1 instance (0 failed, 0 warning) into the buffer\n" in r.stdout
        # And it ends as a C-MOVE's does.
        assert r.stdout.splitlines()[-1] == "the buffer holds 1 instance of this study", r.stdout
        row = box.held(sop)
        assert row is not None and row["calling_ae"] == "TESTPACS"
        assert box.forward_jobs(row["id"]) == 0
        stored = pydicom.dcmread(box.gw.buffer / row["path"])
        original = pydicom.dcmread(path)
        assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert stored.PixelData == original.PixelData and stored.PatientName == original.PatientName


def test_retrieve_a_series_and_a_patient(box):
    study, series, sop = _uids(FREN)
    r = box.cli("retrieve", "--series", series)
    assert r.returncode == 2 and "--in-study" in r.stderr, r.stderr
    r = box.cli("retrieve", "--series", series, "--in-study", study)
    assert r.returncode == 0 and "retrieved 1 of 1 instance" in r.stdout, r.stdout + r.stderr
    assert box.held(sop) is not None
    # Every study of the patient: found by Patient ID first, then moved study by study.
    r = box.cli("retrieve", "--patient", "SCSFREN")
    assert r.returncode == 0 and "retrieved 1 of 1 instance" in r.stdout, r.stdout + r.stderr
    r = box.cli("retrieve", "--patient", "NOSUCHPATIENT")
    assert r.returncode == 1 and r.stderr.strip() == "retrieve: patient 'NOSUCHPATIENT': no studies on TESTPACS"


def test_pacs_down_rejected_unknown_study_one_line(box):
    down = f"DOWN@127.0.0.1:{free_port()}"
    r = box.cli("query", "--destination", down)
    assert r.returncode == 1 and "connection refused" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    r = box.cli("query", "--destination", f"WRONG@127.0.0.1:{box.orthanc.dicom}")
    assert r.returncode == 1 and "called AE title not recognised" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1
    r = box.cli("retrieve", "--study", "1.2.3.4.5.6.7")
    assert r.returncode == 1 and r.stderr.strip() == "retrieve: study 1.2.3.4.5.6.7: not found on TESTPACS"
    # Orthanc answers a move to an AE title it does not know with C000 and no sub-operation (a
    # PACS may choose A801: test_move_destination_unknown_in_words); either way one line with the
    # status in words and what to do.
    study = _uids(CT)[0]
    r = box.cli("retrieve", "--study", study, "--to", "NOWHERE")
    assert r.returncode == 1 and r.stderr == (
        f"retrieve: TESTPACS@127.0.0.1:{box.orthanc.dicom}: C-MOVE failed, status 0xC000 (unable to process); "
        "the PACS may not know NOWHERE as a move destination (or could not connect to it): add it to the "
        "PACS's modality list, with its host and port\n"), r.stderr
    # This box under a title Orthanc's DicomModalities lack: a C-GET needs no entry there.
    r = box.cli("retrieve", "--study", study, "--set", "ae.title=STRANGER", "--set", "qr_scu.calling_ae=EDGE")
    assert r.returncode == 1 and r.stderr.endswith(
        "the PACS may not know STRANGER as a move destination (or could not connect to it): add it to the "
        "PACS's modality list, with its host and port, or use --get\n"), r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_unknown_calling_ae_is_named(box):
    """Orthanc accepts the association of a calling AE title missing from its DicomModalities and
    aborts it at the first request: the line names the title, for query and retrieve alike."""
    study = _uids(CT)[0]
    for argv in (["query"], ["retrieve", "--study", study]):
        r = box.cli(*argv, "--set", "qr_scu.calling_ae=FOO")
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stderr == (f"{argv[0]}: TESTPACS@127.0.0.1:{box.orthanc.dicom}: the PACS aborted the association "
                            "(it may not accept calling AE title FOO: check the PACS's list of known modalities)\n"
                            ), r.stderr


# -- cancel during a slow move -------------------------------------------------------------------

def _slow_pacs(gw_port: int, sub_ops: int, calling: str, honours_cancel: bool = True,
               hold: threading.Event | None = None):
    """A pynetdicom Study Root FIND/MOVE SCP whose C-MOVE sends one instance (CT_small, a new SOP
    Instance UID each) a second to the gateway, answering a C-CANCEL with FE00 and the counts
    (`honours_cancel`), or going on as if none came. `seen["moving"]` is set when a C-MOVE
    arrives; with `hold`, its first sub-operation waits for it (up to 60 s)."""
    from pydicom.uid import generate_uid
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import (StudyRootQueryRetrieveInformationModelFind,
                                      StudyRootQueryRetrieveInformationModelMove, CTImageStorage)

    base = pydicom.dcmread(CT)
    seen = {"cancelled": False, "moving": threading.Event()}

    def on_find(event):
        ds = pydicom.Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = base.StudyInstanceUID
        yield 0xFF00, ds

    def on_move(event):
        dest = event.move_destination
        if (dest.decode() if isinstance(dest, bytes) else dest).strip() != "EDGE":
            yield None, None  # pynetdicom answers 0xA801, move destination unknown
            return
        yield "127.0.0.1", gw_port
        seen["moving"].set()
        if hold is not None:
            hold.wait(60)
        yield sub_ops
        for _ in range(sub_ops):
            for _ in range(20):
                if event.is_cancelled and honours_cancel:
                    seen["cancelled"] = True
                    yield 0xFE00, None
                    return
                time.sleep(0.05)
            ds = base.copy()
            ds.SOPInstanceUID = generate_uid()
            yield 0xFF00, ds

    ae = AE(ae_title=calling)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    ae.add_requested_context(CTImageStorage, base.file_meta.TransferSyntaxUID)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_FIND, on_find), (evt.EVT_C_MOVE, on_move)])
    return server, port, seen


def _interrupted_retrieve(gw, port: int, interrupts) -> tuple[int, str, str]:
    """`dicom-gateway retrieve --study 1.2.3` from the slow PACS on `port`; each of `interrupts`
    is the progress line to wait for before one SIGINT. Returns (exit code, stdout, stderr); the
    command must end within 60 s of the last SIGINT (else the test fails, the process killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "retrieve", "--study", "1.2.3", "--config", str(gw.config_path),
         "--destination", f"SLOWPACS@127.0.0.1:{port}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        for progress in interrupts:
            wait_until(lambda: any(progress in ln for ln in lines), 60, what=progress)
            proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    reader.join(10)
    return rc, "".join(lines), err


def _final_line(out: str) -> str:
    assert "C-MOVE from SLOWPACS to EDGE" in out, out
    return next(ln for ln in out.splitlines() if ln.startswith("retrieved "))


def test_ctrl_c_during_a_slow_move_cancels_with_the_counts(tmp_path):
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {"peers": {"slow": {"ae_title": "SLOWPACS", "may_store": True}}})
    server = None
    try:
        gw.start()
        server, port, seen = _slow_pacs(gw.port, 20, "SLOWPACS")
        rc, out, err = _interrupted_retrieve(gw, port, ["pending: 2 completed"])
        assert rc == 130, out + err
        assert seen["cancelled"]
        assert "C-CANCEL sent" in err and "Traceback" not in err
        final = _final_line(out)
        completed = int(final.split()[1])
        assert 2 <= completed < 20, final
        assert final == (f"retrieved {completed} of 20 instances (0 failed, 0 warning) into the buffer: "
                         f"cancelled, {20 - completed} not retrieved"), final
        wait_until(lambda: gw.cli("studies").stdout.count("\n") >= 2, 30, what="the moved instances indexed")
    finally:
        if server is not None:
            server.shutdown()
        gw.stop()


def test_a_second_ctrl_c_aborts_a_move_the_pacs_does_not_cancel(tmp_path):
    """The PACS goes on after the C-CANCEL; a second Ctrl-C aborts the association and the command
    ends with the counts so far, not after the inactivity timer (here 600 s: a hang fails the
    bounded wait)."""
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {"peers": {"slow": {"ae_title": "SLOWPACS", "may_store": True}},
                                          "qr_scu": {"inactivity_s": 600}})
    server = None
    try:
        gw.start()
        server, port, seen = _slow_pacs(gw.port, 200, "SLOWPACS", honours_cancel=False)
        # The second SIGINT once the PACS has gone on after the first (the C-CANCEL).
        rc, out, err = _interrupted_retrieve(gw, port, ["pending: 2 completed", "pending: 4 completed"])
        assert rc == 130, out + err
        assert not seen["cancelled"]
        assert "C-CANCEL sent" in err and "aborting the association" in err and "Traceback" not in err, err
        assert ": cancelled, " in _final_line(out) and _final_line(out).endswith(" not retrieved"), out
    finally:
        if server is not None:
            server.shutdown()
        gw.stop()


def test_double_ctrl_c_before_any_progress_says_the_counts_are_unknown(tmp_path):
    """Both Ctrl-Cs before the first pending response (the slow PACS sends its first instance a
    second in): no counts came, so none are claimed ("0 of 0" was wrong: the PACS may have sent
    one already)."""
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {"peers": {"slow": {"ae_title": "SLOWPACS", "may_store": True}}})
    server = None
    try:
        gw.start()
        hold = threading.Event()
        server, port, seen = _slow_pacs(gw.port, 20, "SLOWPACS", honours_cancel=False, hold=hold)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "retrieve", "--study", "1.2.3", "--config", str(gw.config_path),
             "--destination", f"SLOWPACS@127.0.0.1:{port}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        errs: list[str] = []
        reader = threading.Thread(target=lambda: errs.extend(proc.stderr), daemon=True)
        reader.start()
        try:
            assert seen["moving"].wait(60), "no C-MOVE came"
            proc.send_signal(signal.SIGINT)
            # The second Ctrl-C once the first was taken (two signals at once may arrive as one).
            wait_until(lambda: any("C-CANCEL sent" in ln for ln in errs), 60, what="the C-CANCEL")
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
            out = proc.stdout.read()
        finally:
            hold.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        reader.join(10)
        rc, err = proc.returncode, "".join(errs)
        assert rc == 130, out + err
        assert "aborting the association" in err, out + err
        assert "pending:" not in out, out + err  # else the counts were reported: not this case
        assert "cancelled before the PACS reported progress; what it had sent into the buffer is not known" in out, out
        assert "retrieved 0 of 0" not in out and "Traceback" not in err, out + err
    finally:
        if server is not None:
            server.shutdown()
        gw.stop()


def test_ctrl_c_during_the_lookup_names_the_step(tmp_path):
    """The association is up and the C-FIND that looks the study up unanswered: Ctrl-C aborts it
    and the line says which step it stopped (the inactivity timer is 600 s: a wait fails the
    bounded wait of _interrupted_retrieve)."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    answered = threading.Event()
    asked = threading.Event()

    def on_find(event):
        asked.set()
        answered.wait(60)
        yield 0x0000, None

    ae = AE(ae_title="SLOWPACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, on_find)])
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {"qr_scu": {"inactivity_s": 600}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "retrieve", "--study", "1.2.3", "--config", str(gw.config_path),
         "--destination", f"SLOWPACS@127.0.0.1:{port}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert asked.wait(60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        answered.set()
        server.shutdown()
    assert proc.returncode == 130, out + err
    assert err == "retrieve: interrupted while looking up the study; nothing retrieved\n", err


def test_move_destination_unknown_in_words(tmp_path):
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {"peers": {"slow": {"ae_title": "SLOWPACS", "may_store": True}}})
    server, port, _ = _slow_pacs(gw.port, 1, "SLOWPACS")
    try:
        r = gw.cli("retrieve", "--study", "1.2.3", "--to", "NOWHERE", "--destination", f"SLOWPACS@127.0.0.1:{port}")
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stderr.strip() == (f"retrieve: SLOWPACS@127.0.0.1:{port}: C-MOVE failed, status 0xA801 "
                                    "(refused: move destination unknown); the PACS does not know NOWHERE as a "
                                    "move destination: add it to the PACS's modality list")
    finally:
        server.shutdown()


def test_inactivity_timer_is_one_line(tmp_path):
    """A PACS that accepts the query and then says nothing for longer than qr_scu.inactivity_s."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    answered = threading.Event()

    def on_find(event):
        answered.wait(10)  # released when the test ends; the command must not wait this long
        ds = pydicom.Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = "1.2"
        yield 0xFF00, ds

    ae = AE(ae_title="MUTE")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, on_find)])
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw")
    try:
        r = gw.cli("query", "--set", "qr_scu.inactivity_s=1", "--destination", f"MUTE@127.0.0.1:{port}", timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stderr == (f"query: MUTE@127.0.0.1:{port}: no C-FIND response within 1 s (association lost or "
                            "the inactivity timer expired)\n")
    finally:
        answered.set()
        server.shutdown()


# -- priors on the same medium ---------------------------------------------------------------------

def _study_copy(out: Path, date: str, birth: str) -> tuple[Path, str]:
    """CT_small as another study of patient 1CT1 (new UIDs), on `date`, born `birth`."""
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(CT)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyDate, ds.PatientBirthDate = date, birth
    ds.save_as(out, enforce_file_format=True)
    return out, str(ds.StudyInstanceUID)


def test_retrieve_priors_then_export_them_on_one_medium(tmp_path):
    from tests.peers import storescu

    gw_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", gw_port)
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {
        "destinations": {"pacs": {"ae_title": "TESTPACS", "port": 1}},  # replaced below
        "media": {"drives": {"cd": {"kind": "optical-sim", "sim_dir": str(tmp_path / "sim")}}}}, port=gw_port)
    try:
        orthanc.start()
        gw.config["destinations"]["pacs"]["port"] = orthanc.dicom
        from tests.peers import write_toml
        write_toml(gw.config_path, gw.config)
        current, current_uid = _study_copy(tmp_path / "current.dcm", "20240301", "19500101")
        prior1, prior1_uid = _study_copy(tmp_path / "p1.dcm", "20230301", "19500101")
        prior2, prior2_uid = _study_copy(tmp_path / "p2.dcm", "20220301", "")
        other, other_uid = _study_copy(tmp_path / "other.dcm", "20210301", "19990909")
        for f in (prior1, prior2, other):
            orthanc._req("/instances", f.read_bytes())
        gw.start()
        r = storescu(gw.port, [current])
        assert r.returncode == 0, r.stderr
        r = gw.cli("retrieve", "--priors-of", current_uid, "--export")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"left out: study {other_uid}: Patient's Birth Date differs" in r.stdout
        assert f"2 prior studies of Patient ID 1CT1 on TESTPACS: 20230301 {prior1_uid}, 20220301 {prior2_uid}" in r.stdout
        assert "media queued for drive cd" in r.stdout
        con = sqlite3.connect(gw.buffer / "index.sqlite", timeout=10)
        try:
            on_medium = {row[0] for row in con.execute(
                "SELECT DISTINCT st.study_uid FROM job_items ji JOIN jobs j ON j.id = ji.job_id"
                " JOIN instances i ON i.id = ji.instance_fk JOIN series se ON se.id = i.series_fk"
                " JOIN studies st ON st.id = se.study_fk WHERE j.kind = 'export'")}
        finally:
            con.close()
        assert on_medium == {current_uid, prior1_uid, prior2_uid}
        # Asked again: the priors are held whole now, nothing is retrieved.
        r = gw.cli("retrieve", "--priors-of", current_uid)
        assert r.returncode == 0 and f"{prior1_uid}: already in the buffer" in r.stdout, r.stdout + r.stderr
    finally:
        gw.stop()
        orthanc.stop()


def _get_pacs(asked: list[str]):
    """A pynetdicom Study Root FIND/GET SCP holding CT_small, whose study-level answer lacks SOP
    Classes in Study; `asked` collects the levels of the C-FINDs it answers."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import (StudyRootQueryRetrieveInformationModelFind,
                                      StudyRootQueryRetrieveInformationModelGet)

    base = pydicom.dcmread(CT)

    def on_find(event):
        level = event.identifier.QueryRetrieveLevel
        asked.append(level)
        ds = pydicom.Dataset()
        ds.QueryRetrieveLevel = level
        ds.StudyInstanceUID = base.StudyInstanceUID
        if level in ("SERIES", "IMAGE"):
            ds.SeriesInstanceUID = base.SeriesInstanceUID
        if level == "IMAGE":
            ds.SOPClassUID, ds.SOPInstanceUID = base.SOPClassUID, base.SOPInstanceUID
        yield 0xFF00, ds

    def on_get(event):
        yield 1
        yield 0xFF00, base

    ae = AE(ae_title="GETPACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
    # The requestor's storage context, accepted with its SCP role (PS3.7 D.3.3.4).
    ae.add_supported_context(base.SOPClassUID, base.file_meta.TransferSyntaxUID, scu_role=True, scp_role=True)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_FIND, on_find), (evt.EVT_C_GET, on_get)])
    return server, port, base


def test_get_from_a_pacs_that_lists_no_sop_classes_in_study(tmp_path):
    """The command finds the classes series by series at the IMAGE level, and the instance still
    arrives."""
    asked: list[str] = []
    server, port, base = _get_pacs(asked)
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw")
    try:
        r = gw.cli("retrieve", "--get", "--study", str(base.StudyInstanceUID),
                   "--destination", f"GETPACS@127.0.0.1:{port}")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "retrieved 1 of 1 instance (0 failed, 0 warning) into the buffer" in r.stdout
        assert asked == ["STUDY", "STUDY", "SERIES", "IMAGE"]  # the lookup, SOP classes, then the fallback
        r = gw.cli("studies")
        assert str(base.StudyInstanceUID) in r.stdout
    finally:
        server.shutdown()


def test_get_sub_operations_pass_the_intake_checks(tmp_path):
    """A C-GET's C-STOREs meet the same checks as received ones: a PACS that is a peer without
    may_store gets its sub-operation refused (0x0124), nothing is stored, exit 1."""
    server, port, base = _get_pacs([])
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {"peers": {"getpacs": {"ae_title": "GETPACS", "may_store": False}}})
    try:
        r = gw.cli("retrieve", "--get", "--study", str(base.StudyInstanceUID),
                   "--destination", f"GETPACS@127.0.0.1:{port}")
        assert r.returncode == 1, r.stdout + r.stderr
        assert ("retrieved 0 of 1 instance (1 failed, 0 warning) into the buffer: final status 0xA702 (refused: "
                "out of resources, unable to perform sub-operations)") in r.stdout
        assert f"  failed: {base.SOPInstanceUID}" in r.stdout
        assert "refused by this box's intake checks: 1" in r.stdout
        assert not (gw.buffer / "index.sqlite").exists() or "no studies" in gw.cli("studies").stdout
    finally:
        server.shutdown()


def test_session_timer_aborts_a_long_association():
    """The session timer (bounded to >= 60 s in [qr_scu]; 1 s through the API here) aborts an
    association whose responses keep the inactivity timer alive no longer than it allows."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    from gateway.dicom.qr_scu import QrError, QrPeer, find, identifier

    released = threading.Event()

    def on_find(event):
        for n in range(100):  # a match every 0.2 s: never idle for the inactivity timer
            if released.is_set() or event.is_cancelled:
                return
            ds = pydicom.Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.StudyInstanceUID = f"1.2.{n}"
            yield 0xFF00, ds
            time.sleep(0.2)

    ae = AE(ae_title="CHATTY")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, on_find)])
    try:
        peer = QrPeer("CHATTY", "127.0.0.1", port, "EDGE", association_s=10, inactivity_s=5, session_s=1)
        with pytest.raises(QrError) as exc:
            find(peer, identifier("STUDY", {}), max_results=1000)
        assert str(exc.value) == (f"CHATTY@127.0.0.1:{port}: C-FIND stopped: the session timer (1 s) expired "
                                  "and the association was aborted")
    finally:
        released.set()
        server.shutdown()
