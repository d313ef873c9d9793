"""Export to a folder: the gateway's file-set creator (plan_fileset + materialize, STD-GEN-CD) against
`cp -r` + DCMTK `dcmmkdir` of the same files, in the same run.

    python bench/bench_export.py            # 500, 1000, 2000, 4000 instances (x BENCH_SCALE)

The instances are small CTs (128x128, 16-bit, Explicit VR LE, ~33 KB) spread over 10 studies, so
the figure is the per-instance cost of the file-set work (headers, records, DICOMDIR, copying),
not disk bandwidth. Each size runs in a child process so that its peak RSS (VmHWM) is its own.
The gateway fsyncs every file it writes; the peer's copy is followed by `sync -f` on the target.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import CACHE, PY, REPEAT, median, need, ratio, rmtree, scaled, scratch, table, write_summary  # noqa: E402

SIZES = [500, 1000, 2000, 4000]
STUDIES = 10
ROWS = COLS = 128


def _make(folder: Path, count: int) -> list[Path]:
    """count CT instances, File-ID-conformant names (dcmmkdir takes the names as they are)."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    out = []
    pixels = np.random.default_rng(8).integers(0, 4096, ROWS * COLS, dtype=np.uint16).tobytes()
    studies = [generate_uid(entropy_srcs=["bench-export", str(s)]) for s in range(STUDIES)]
    for i in range(count):
        s = i % STUDIES
        path = folder / "DICOM" / f"ST{s:06d}" / f"IM{i:06d}"
        out.append(path)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["bench-export-i", str(i)])
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = studies[s]
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["bench-export-s", str(s)])
        ds.PatientName, ds.PatientID = f"Bench^Export{s}", f"BENCH{s:02d}"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20261123", "120000", str(s), ""
        ds.ReferringPhysicianName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "", "CT", 1, i + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = ROWS, COLS, 16, 12, 11
        ds.PixelRepresentation, ds.RescaleIntercept, ds.RescaleSlope = 0, -1024, 1
        ds.PixelData = pixels
        ds.save_as(path, enforce_file_format=True)
    return out


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_gateway(src: Path, count: int, dest: Path) -> dict:
    """In a child: plan and materialize count instances into dest; wall seconds and peak RSS."""
    from gateway.media.fileset import materialize, plan_fileset

    files = _make(src, count)
    t0 = time.perf_counter()
    plan = plan_fileset(files, "STD-GEN-CD", "BENCH")
    t1 = time.perf_counter()
    materialize(plan, dest)
    t2 = time.perf_counter()
    assert not plan.left_out, plan.left_out[:3]
    return {"plan_s": t1 - t0, "write_s": t2 - t1, "total_s": t2 - t0, "peak_mb": _peak_mb()}


def one_dcmtk(src: Path, count: int, dest: Path) -> dict:
    """cp -r of the same files, then dcmmkdir -Pgp over them; wall seconds."""
    exe, cp = need("dcmmkdir"), need("cp")
    files = _make(src, count)
    dest.mkdir(parents=True)
    t0 = time.perf_counter()
    subprocess.run([cp, "-r", str(src / "DICOM"), str(dest / "DICOM")], check=True)
    subprocess.run(["sync", "-f", str(dest)], check=True)
    t1 = time.perf_counter()
    subprocess.run([exe, "-q", "-Pgp", "+F", "BENCH", "+D", str(dest / "DICOMDIR"), "+id", str(dest),
                    *[str(p.relative_to(src)) for p in files]], check=True, cwd=dest)
    t2 = time.perf_counter()
    return {"copy_s": t1 - t0, "dicomdir_s": t2 - t1, "total_s": t2 - t0}


def _child(kind: str, count: int) -> dict:
    work = scratch(f"export-{kind}-{count}-")
    try:
        out = subprocess.run([PY, __file__, "--child", kind, str(count), str(work)], capture_output=True,
                             text=True, timeout=3600)
        if out.returncode:
            raise RuntimeError(f"{kind} {count}: {out.stderr.strip().splitlines()[-1:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        rmtree(work)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        kind, count, work = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
        # The generated source stays in the cache between runs; only the export target is scratch.
        src = CACHE / "data" / "export"
        result = (one_gateway if kind == "gateway" else one_dcmtk)(src, count, work / "out")
        print(json.dumps(result))
        return 0

    need("dcmmkdir")
    sizes = sorted({scaled(n) for n in SIZES})
    _make(CACHE / "data" / "export", max(sizes))
    results, rows = {}, []
    for n in sizes:
        g = [_child("gateway", n) for _ in range(REPEAT)]
        d = [_child("dcmtk", n) for _ in range(REPEAT)]
        gs, ds = median([r["total_s"] for r in g]), median([r["total_s"] for r in d])
        results[n] = {"gateway": g, "dcmtk": d, "gateway_s": gs, "dcmtk_s": ds, "ratio": ratio(ds, gs),
                      "gateway_peak_mb": max(r["peak_mb"] for r in g)}
        rows.append([n, f"{gs:.2f} s ({1000 * gs / n:.2f} ms/inst; plan "
                        f"{median([r['plan_s'] for r in g]):.2f} s)",
                     f"{ds:.2f} s ({1000 * ds / n:.2f} ms/inst; dcmmkdir "
                     f"{median([r['dicomdir_s'] for r in d]):.2f} s)",
                     f"{ratio(ds, gs):.2f}x", f"{results[n]['gateway_peak_mb']:.0f} MB"])
    print(table(["instances", "gateway plan+materialize", "cp -r + dcmmkdir", "ratio (peer/gateway time)",
                 "gateway peak RSS"], rows, "Export to a folder, STD-GEN-CD"))
    per = [results[n]["gateway_s"] / n for n in sizes]
    print(f"gateway per-instance time, largest/smallest size: {per[-1] / per[0]:.2f} (1.0 = linear)")
    write_summary("export", {"sizes": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
