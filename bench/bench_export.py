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

Every run, gateway or peer, starts the same way (_settle): the previous run's scratch folder is
gone, `sync` has written back everything dirty (so no run pays for the one before it), and the
source files are in the page cache (read once; BENCH_DROP_CACHES=1, as root: dropped instead,
cold for both). Figures per size: the median of BENCH_REPEAT runs, ms per instance with the
spread of the runs (min-max), the peak RSS of each run and the RSS it had before the export
(imports, the list of paths), so that what the export itself holds is visible. A line
t = fixed + n x per-instance fitted over the sizes (least squares) gives the fixed per-run cost
apart from the per-instance one, for the gateway and the peer alike; the linearity target is
judged on the whole time per instance, fixed cost included.
"""

from __future__ import annotations

import json
import os
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


DROP_CACHES = os.environ.get("BENCH_DROP_CACHES", "") == "1"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def _settle(files: list[Path]) -> None:
    """The same start for every run: nothing dirty left from the last one, sources warm (or cold)."""
    subprocess.run(["sync"], check=True)
    if DROP_CACHES:
        with open("/proc/sys/vm/drop_caches", "w") as fh:  # root only: main() checks first
            fh.write("3\n")
        return
    for path in files:
        with open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass


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
    before_mb = _rss_mb()
    t0 = time.perf_counter()
    plan = fileset.plan_fileset(files, "STD-GEN-CD", "BENCH")
    t1 = time.perf_counter()
    fileset.materialize(plan, dest)
    t2 = time.perf_counter()
    assert not plan.left_out, plan.left_out[:3]
    return {"plan_s": t1 - t0, "dicomdir_s": spent["write_s"], "sync_s": spent["sync_s"],
            "copy_s": t2 - t1 - spent["write_s"] - spent["sync_s"], "total_s": t2 - t0,
            "peak_mb": _peak_mb(), "before_mb": before_mb}


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
    return {"copy_s": t1 - t0, "dicomdir_s": t2 - t1, "total_s": t2 - t0,
            # the largest of cp, sync and dcmmkdir: dcmmkdir's, which holds the records
            "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def _child(kind: str, count: int, files: list[Path]) -> dict:
    _settle(files)
    work = scratch(f"export-{kind}-{count}-")
    try:
        out = subprocess.run([PY, __file__, "--child", kind, str(count), str(work)], capture_output=True,
                             text=True, timeout=3600)
        if out.returncode:
            raise RuntimeError(f"{kind} {count}: {out.stderr.strip().splitlines()[-1:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        rmtree(work)


def _line(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """Least-squares t = a + b n over the sizes -> (a seconds per run, b seconds per instance)."""
    if len(xs) < 2:
        return 0.0, ys[0] / xs[0]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


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
    if DROP_CACHES and os.geteuid() != 0:
        print("BENCH_DROP_CACHES=1 needs root (it writes /proc/sys/vm/drop_caches)", file=sys.stderr)
        return 2
    sizes = sorted({scaled(n) for n in SIZES})
    everything = _make(CACHE / "data" / "export", max(sizes))
    results, rows, steps = {}, [], []
    for n in sizes:
        runs: dict[str, list[dict]] = {"gateway": [], "gateway-fsync": [], "dcmtk": []}
        for _ in range(REPEAT):  # interleaved, so that a busy moment of the machine hits all three
            for kind in runs:
                runs[kind].append(_child(kind, n, everything[:n]))
        g, f, d = runs["gateway"], runs["gateway-fsync"], runs["dcmtk"]
        gs, fs, ds = (median([r["total_s"] for r in x]) for x in (g, f, d))
        results[n] = {"gateway": g, "gateway_fsync": f, "dcmtk": d, "gateway_s": gs, "gateway_fsync_s": fs,
                      "dcmtk_s": ds,
                      # run_all's summary reads "ratio" as a throughput ratio (peer time / gateway time)
                      "ratio": ds / gs, "time_ratio": gs / ds, "time_ratio_fsync": fs / ds,
                      "gateway_peak_mb": max(r["peak_mb"] for r in g + f),
                      "gateway_before_mb": median([r["before_mb"] for r in g + f]),
                      "dcmtk_peak_mb": max(r.get("peak_mb", 0.0) for r in d)}

        def per(runs_, key="total_s"):
            """median ms/instance and the spread of the runs, "0.52 (0.49-0.61)"."""
            ms = sorted(1000 * r[key] / n for r in runs_)
            return f"{median(ms):.3f} ({ms[0]:.3f}-{ms[-1]:.3f})"

        r = results[n]
        rows.append([n, f"{gs:.2f} s, {per(g)}", f"{fs:.2f} s, {per(f)}", f"{ds:.2f} s, {per(d)}",
                     f"{gs / ds:.2f}x / {fs / ds:.2f}x",
                     f"{r['gateway_peak_mb']:.0f} MB (before {r['gateway_before_mb']:.0f})",
                     f"{r['dcmtk_peak_mb']:.0f} MB"])
        steps.append([n, *(per(g, k) for k in ("plan_s", "dicomdir_s", "copy_s", "sync_s")),
                      per(f, "sync_s"), per(d, "copy_s"), per(d, "dicomdir_s")])
    print(f"finished {time.strftime('%Y-%m-%d %H:%M:%S')}, {REPEAT} run(s) per figure, load average at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs, sources "
          f"{'cold (caches dropped)' if DROP_CACHES else 'warm'} before every run")
    print(table(["instances", "gateway (syncfs): s, ms/inst (runs)", "gateway (fsync per file)",
                 "cp + sync -f + dcmmkdir", "gateway/peer time (target <= 1.5x)", "gateway peak RSS",
                 "peer peak RSS"], rows, "Export to a folder, STD-GEN-CD (medians; ms per instance: median (min-max))"))
    print(table(["instances", "plan", "DICOMDIR", "copy", "syncfs", "fsync per file", "peer cp+sync",
                 "peer dcmmkdir"], steps, "Where the time goes, ms per instance: median (min-max of the runs)"))
    fits = {}
    for label, key in (("gateway (syncfs)", "gateway_s"), ("gateway (fsync per file)", "gateway_fsync_s"),
                       ("peer", "dcmtk_s")):
        per_inst = [results[n][key] / n for n in sizes]
        spread = max(per_inst) / min(per_inst)
        fixed, slope = _line(sizes, [results[n][key] for n in sizes])
        fits[key] = {"fixed_s": fixed, "per_instance_s": slope, "spread": spread}
        # A negative fixed cost is no fixed cost: the time per instance grows with the size.
        print(f"{label}: time per instance largest/smallest over the sizes {spread:.2f} "
              f"({'within' if spread <= 1.2 else 'NOT within'} 20 %); fitted line "
              f"{1000 * fixed:.0f} ms per run + {1000 * slope:.3f} ms per instance"
              + (" (negative: the cost per instance grows with the size)" if fixed < 0 else "")
              + (f"; at {sizes[-1]}: {results[sizes[-1]][key] / results[sizes[-1]]['dcmtk_s']:.2f}x the peer"
                 if key != "dcmtk_s" else ""))
    peaks = ", ".join(f"{results[n]['gateway_peak_mb']:.0f}" for n in sizes)
    growth = results[sizes[-1]]["gateway_peak_mb"] - results[sizes[0]]["gateway_peak_mb"]
    print(f"gateway peak RSS at {', '.join(map(str, sizes))}: {peaks} MB ({growth:+.1f} MB from "
          f"{sizes[0]} to {sizes[-1]}; target: flat, <= 120 MB at {sizes[-1]})")
    write_summary("export", {"sizes": results, "fits": fits, "drop_caches": DROP_CACHES,
                             "load_average": os.getloadavg()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
