"""C-FIND at study level over a full buffer: the gateway's C-FIND SCP (gateway/dicom/qr_find_scp.py)
vs Orthanc's C-FIND SCP on the same data, in the same run (issue 11).

Data: 10,000 studies of 10 instances (2 series of 5; 1,000 patients; names with Latin-1 letters,
dates over a year), 100,000 small CT objects (8x8 pixels: the query never reads pixels), made
once into bench/.cache/data/qrfind-N and sent with one `storescu +sd` run to each SCP (the
gateway through its real ingest; Orthanc with SyncStorageArea off: only its answers are timed).

Measured: DCMTK findscu -S, one association, QueryRetrieveLevel=STUDY with universal matching of
StudyInstanceUID, PatientID, PatientName, StudyDate (BENCH_REPEAT runs, median). Reported:
responses per second (pending responses counted in findscu's log / wall time of the run) for
each, the ratio gateway/Orthanc (target >= 1.0), and each server's peak RSS during the queries.
BENCH_SCALE scales the number of studies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (CACHE, GATEWAY_AE, REPEAT, SENDER_AE, Proc, _env, free_port, gateway_config,  # noqa: E402
                    median, need, ratio, reset_hwm, rmtree, scaled, scratch, start_gateway, status_kb,
                    table, wait_port, write_summary)

STUDIES = scaled(10_000)
SERIES_PER_STUDY, INSTANCES_PER_SERIES = 2, 5
PATIENTS = max(1, STUDIES // 10)
ORTHANC_AE = "ORTHANC"
KEYS = ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientID", "PatientName", "StudyDate"]


def make_data() -> Path:
    """The objects, made once per size (a folder per study); returns the folder."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder = CACHE / "data" / f"qrfind-{STUDIES}"
    done = folder.parent / f"{folder.name}.complete"  # beside it: storescu +sd reads every file inside
    if done.exists():
        return folder
    t0 = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    pixels = bytes(8 * 8 * 2)
    for s in range(STUDIES):
        study_dir = folder / f"s{s:05d}"
        study_dir.mkdir(exist_ok=True)
        study_uid = generate_uid(entropy_srcs=["qrfind", str(s)])
        p = s % PATIENTS
        for se in range(SERIES_PER_STUDY):
            series_uid = generate_uid(entropy_srcs=["qrfind", str(s), str(se)])
            for i in range(INSTANCES_PER_SERIES):
                ds = Dataset()
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds.SpecificCharacterSet = "ISO_IR 100"
                ds.SOPClassUID = CTImageStorage
                ds.SOPInstanceUID = generate_uid(entropy_srcs=["qrfind", str(s), str(se), str(i)])
                ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
                ds.PatientName = f"Müller{p:04d}^Jérôme"
                ds.PatientID = f"QR{p:05d}"
                ds.PatientBirthDate = "19700101"
                ds.PatientSex = "O"
                ds.StudyDate = f"2026{s % 12 + 1:02d}{s % 28 + 1:02d}"
                ds.StudyTime = f"{s % 24:02d}0000"
                ds.AccessionNumber = f"A{s:06d}"
                ds.StudyID = str(s)
                ds.ReferringPhysicianName = ""
                ds.Modality = "CT" if se == 0 else "SR"
                ds.SeriesNumber = se + 1
                ds.InstanceNumber = i + 1
                ds.Rows = ds.Columns = 8
                ds.SamplesPerPixel = 1
                ds.PhotometricInterpretation = "MONOCHROME2"
                ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
                ds.PixelData = pixels
                ds.save_as(study_dir / f"{se}-{i}.dcm", enforce_file_format=True)
    done.write_text("")
    print(f"  made {STUDIES * SERIES_PER_STUDY * INSTANCES_PER_SERIES} objects in {folder} "
          f"({time.monotonic() - t0:.0f} s)", flush=True)
    return folder


def send(folder: Path, port: int, aec: str, log: Path) -> dict:
    """One storescu run over the folder (+sd: the command line would not hold 100,000 names)."""
    argv = [need("storescu"), "-aet", SENDER_AE, "-aec", aec, "-xe", "+sd", "+r", "127.0.0.1", str(port), str(folder)]
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=_env(True), timeout=24 * 3600)
    log.write_text(r.stdout + r.stderr)
    return {"rc": r.returncode, "wall_s": time.perf_counter() - t0}


def findscu(port: int, aec: str) -> tuple[int, float, str]:
    """One findscu run: (pending responses, wall seconds, final status line)."""
    argv = [need("findscu"), "-v", "-S", "-aet", SENDER_AE, "-aec", aec]
    for k in KEYS:
        argv += ["-k", k]
    t0 = time.perf_counter()
    r = subprocess.run([*argv, "127.0.0.1", str(port)], capture_output=True, text=True, errors="replace",
                       env=_env(True), timeout=3600)
    wall = time.perf_counter() - t0
    lines = (r.stdout + r.stderr).splitlines()
    # -v logs "Find Response: N (Pending)" and the identifier for each match (the same client work
    # for both servers).
    pending = sum(1 for ln in lines if "Find Response" in ln and "(Pending)" in ln)
    final = next((ln for ln in reversed(lines) if "Final Find Response" in ln), f"rc {r.returncode}")
    return pending, wall, final


def start_orthanc(work: Path) -> tuple[Proc, int, int]:
    """Orthanc with its index and storage on tmpfs when there is one: only its answers are timed
    here, and filling it should not take longer than the measurement needs."""
    http, dicom = free_port(), free_port()
    store = work / "storage"
    shm = Path("/dev/shm")
    if shm.is_dir():
        store = Path(tempfile.mkdtemp(prefix="qrfind-orthanc-", dir=shm))
    cfg = {"Name": "BENCH", "StorageDirectory": str(store), "IndexDirectory": str(store),
           "HttpPort": http, "DicomPort": dicom, "DicomAet": ORTHANC_AE, "RemoteAccessAllowed": False,
           "AuthenticationEnabled": False, "SyncStorageArea": False, "HttpServerEnabled": True,
           "DicomAlwaysAllowFind": True, "LimitFindResults": 0, "LimitFindInstances": 0,
           "DicomModalities": {"bench": {"AET": SENDER_AE, "Host": "127.0.0.1", "Port": 1, "AllowFind": True}},
           "Plugins": []}
    work.mkdir(parents=True, exist_ok=True)
    (work / "orthanc.json").write_text(json.dumps(cfg))
    # Debian's DCMTK (inside Orthanc too) sets TCP_NODELAY only when the environment asks; the
    # gateway runs with ae.tcp_nodelay on, so Orthanc gets it too (without: ~20 C-STOREs/s, Nagle).
    p = Proc([need("Orthanc"), str(work / "orthanc.json")], work / "orthanc.log", env={"TCP_NODELAY": "1"})
    p.store = store
    wait_port(dicom, 60, p.proc)
    return p, http, dicom


def orthanc_studies(http: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/statistics", timeout=30) as rsp:
        return int(json.loads(rsp.read())["CountStudies"])


def measure(name: str, pid: int, port: int, aec: str) -> dict:
    findscu(port, aec)  # warm: page cache, the server's own caches
    reset_hwm(pid)
    runs = []
    for _ in range(REPEAT):
        n, wall, final = findscu(port, aec)
        runs.append({"responses": n, "wall_s": wall, "final": final})
        print(f"    {name}: {n} responses in {wall:.2f} s ({n / wall:.0f}/s), {final.strip()}", flush=True)
    rates = [r["responses"] / r["wall_s"] for r in runs]
    return {"runs": runs, "responses": runs[-1]["responses"], "rsp_s": median(rates),
            "peak_rss_mb": status_kb(pid, "VmHWM") / 1024}


def main() -> int:
    need("findscu"), need("storescu"), need("Orthanc")
    folder = make_data()
    instances = STUDIES * SERIES_PER_STUDY * INSTANCES_PER_SERIES
    print(f"  {STUDIES} studies, {instances} instances; findscu -S at STUDY level, keys {KEYS[1:]}", flush=True)
    results = {}

    work = scratch("qrfind-gw-")
    port = free_port()
    cfg = gateway_config(work, port)
    cfg["peers"]["bench"]["may_query"] = True
    gw = start_gateway(work, cfg)
    try:
        sent = send(folder, port, GATEWAY_AE, work / "storescu.log")
        print(f"  gateway: stored in {sent['wall_s']:.0f} s (storescu rc {sent['rc']})", flush=True)
        results["gateway"] = measure("gateway", gw.pid, port, GATEWAY_AE)
    finally:
        gw.stop()
        rmtree(work)

    work = scratch("qrfind-orthanc-")
    orthanc, http, dicom = start_orthanc(work)
    try:
        sent = send(folder, dicom, ORTHANC_AE, work / "storescu.log")
        print(f"  Orthanc: stored in {sent['wall_s']:.0f} s (storescu rc {sent['rc']}), "
              f"{orthanc_studies(http)} studies", flush=True)
        results["orthanc"] = measure("Orthanc", orthanc.pid, dicom, ORTHANC_AE)
    finally:
        orthanc.stop()
        rmtree(work)
        shutil.rmtree(orthanc.store, ignore_errors=True)

    g, o = results["gateway"], results["orthanc"]
    r = ratio(g["rsp_s"], o["rsp_s"])
    if g["responses"] != STUDIES or o["responses"] != STUDIES:
        print(f"  WARNING: {g['responses']} / {o['responses']} responses for {STUDIES} studies", flush=True)
    print(table(["C-FIND STUDY level", "responses/s", "responses", "peak RSS MB"],
                [["gateway", g["rsp_s"], g["responses"], g["peak_rss_mb"]],
                 ["Orthanc", o["rsp_s"], o["responses"], o["peak_rss_mb"]]],
                f"qrfind: {STUDIES} studies, {instances} instances"))
    print(f"  ratio gateway/Orthanc: {r:.2f}x (target >= 1.0); peak RSS gateway {g['peak_rss_mb']:.0f} MB, "
          f"Orthanc {o['peak_rss_mb']:.0f} MB", flush=True)
    write_summary("qrfind", {"studies": STUDIES, "instances": instances, "keys": KEYS, **results, "ratio": r,
                             "target": 1.0})
    return 0


if __name__ == "__main__":
    sys.exit(main())
