"""Export to a folder: the gateway's file-set creator (plan_fileset + materialize, STD-GEN-CD) against
`cp` + DCMTK `dcmmkdir` of the same files, in the same run.

    python bench/bench_export.py            # 500, 1000, 2000, 4000 instances (x BENCH_SCALE)

The instances are small CTs (128x128, 16-bit, Explicit VR LE, ~33 KB) spread over 10 studies, so
the figure is the per-instance cost of the file-set work (headers, records, DICOMDIR, copying),
not disk bandwidth. Each size runs in a child process so that its peak RSS (VmHWM) is its own.

Durability, side by side: the peer copies exactly the same files (`cp --parents`) and then runs
`sync -f` on the target (one syncfs(2)); the gateway's materialize does the same with one syncfs
where the kernel reports write-back errors through it (Linux >= 5.8). The "fsync per file" column
is the gateway with that call taken away (the path of older kernels): an fsync of every file and
folder. The breakdown says where the gateway's time goes: plan (headers, records), DICOMDIR
(encode, write, fsync), copy (in the kernel), sync.
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
from common import CACHE, PY, REPEAT, median, need, rmtree, scaled, scratch, table, write_summary  # noqa: E402

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


def one_gateway(src: Path, count: int, dest: Path, per_file_fsync: bool = False) -> dict:
    """In a child: plan and materialize count instances into dest; wall seconds by step and peak RSS."""
    from gateway.media import fileset

    files = _make(src, count)
    spent = {"write_s": 0.0, "sync_s": 0.0}

    def timed(name, fn):
        def run(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t
        return run

    # Bench-only instrumentation of the child: the steps inside materialize, timed where they are.
    fileset.write_fileset = timed("write_s", fileset.write_fileset)
    if hasattr(fileset, "_sync_written"):  # absent before the syncfs change: run on older trees too
        fileset._sync_written = timed("sync_s", fileset._sync_written)
    if per_file_fsync:
        fileset._SYNCFS = None
    t0 = time.perf_counter()
    plan = fileset.plan_fileset(files, "STD-GEN-CD", "BENCH")
    t1 = time.perf_counter()
    fileset.materialize(plan, dest)
    t2 = time.perf_counter()
    assert not plan.left_out, plan.left_out[:3]
    return {"plan_s": t1 - t0, "dicomdir_s": spent["write_s"], "sync_s": spent["sync_s"],
            "copy_s": t2 - t1 - spent["write_s"] - spent["sync_s"], "total_s": t2 - t0,
            "peak_mb": _peak_mb()}


def one_dcmtk(src: Path, count: int, dest: Path) -> dict:
    """cp of the same files, sync -f, then dcmmkdir -Pgp over them; wall seconds."""
    exe, cp = need("dcmmkdir"), need("cp")
    files = _make(src, count)
    rel = [str(p.relative_to(src)) for p in files]
    dest.mkdir(parents=True)
    t0 = time.perf_counter()
    subprocess.run([cp, "--parents", *rel, str(dest)], check=True, cwd=src)
    subprocess.run(["sync", "-f", str(dest)], check=True)
    t1 = time.perf_counter()
    subprocess.run([exe, "-q", "-Pgp", "+F", "BENCH", "+D", str(dest / "DICOMDIR"), "+id", str(dest),
                    *rel], check=True, cwd=dest)
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
        if kind == "dcmtk":
            result = one_dcmtk(src, count, work / "out")
        else:
            result = one_gateway(src, count, work / "out", per_file_fsync=(kind == "gateway-fsync"))
        print(json.dumps(result))
        return 0

    need("dcmmkdir")
    sizes = sorted({scaled(n) for n in SIZES})
    _make(CACHE / "data" / "export", max(sizes))
    results, rows, steps = {}, [], []
    for n in sizes:
        runs: dict[str, list[dict]] = {"gateway": [], "gateway-fsync": [], "dcmtk": []}
        for _ in range(REPEAT):  # interleaved, so that a busy moment of the machine hits all three
            for kind in runs:
                runs[kind].append(_child(kind, n))
        g, f, d = runs["gateway"], runs["gateway-fsync"], runs["dcmtk"]
        gs, fs, ds = (median([r["total_s"] for r in x]) for x in (g, f, d))
        results[n] = {"gateway": g, "gateway_fsync": f, "dcmtk": d, "gateway_s": gs, "gateway_fsync_s": fs,
                      "dcmtk_s": ds,
                      # run_all's summary reads "ratio" as a throughput ratio (peer time / gateway time)
                      "ratio": ds / gs, "time_ratio": gs / ds, "time_ratio_fsync": fs / ds,
                      "gateway_peak_mb": max(r["peak_mb"] for r in g + f)}
        rows.append([n, f"{gs:.2f} s ({1000 * gs / n:.2f} ms/inst)",
                     f"{fs:.2f} s ({1000 * fs / n:.2f} ms/inst)",
                     f"{ds:.2f} s ({1000 * ds / n:.2f} ms/inst)",
                     f"{gs / ds:.2f}x / {fs / ds:.2f}x", f"{results[n]['gateway_peak_mb']:.0f} MB"])
        step = lambda runs_, key: 1000 * median([r[key] for r in runs_]) / n  # noqa: E731
        steps.append([n, *(f"{step(g, k):.3f}" for k in ("plan_s", "dicomdir_s", "copy_s", "sync_s")),
                      f"{step(f, 'sync_s'):.3f}", f"{step(d, 'copy_s'):.3f}", f"{step(d, 'dicomdir_s'):.3f}"])
    print(table(["instances", "gateway (syncfs)", "gateway (fsync per file)", "cp + sync -f + dcmmkdir",
                 "gateway/peer time (target <= 1.5x)", "gateway peak RSS"], rows,
                "Export to a folder, STD-GEN-CD"))
    print(table(["instances", "plan", "DICOMDIR", "copy", "syncfs", "fsync per file", "peer cp+sync",
                 "peer dcmmkdir"], steps, "Where the time goes, ms per instance (medians)"))
    for label, key in (("syncfs", "gateway_s"), ("fsync per file", "gateway_fsync_s")):
        per = [results[n][key] / n for n in sizes]
        spread = max(per) / min(per)
        print(f"gateway ({label}) time per instance, largest/smallest over the sizes: {spread:.2f} "
              f"({'within' if spread <= 1.2 else 'NOT within'} 20 %); at {sizes[-1]}: "
              f"{results[sizes[-1]][key] / results[sizes[-1]]['dcmtk_s']:.2f}x the peer")
    peaks = ", ".join(f"{results[n]['gateway_peak_mb']:.0f}" for n in sizes)
    print(f"gateway peak RSS at {', '.join(map(str, sizes))}: {peaks} MB (target: flat, <= 120 MB at 4000)")
    write_summary("export", {"sizes": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
