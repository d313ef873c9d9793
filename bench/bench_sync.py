"""Sync cost: sync calls per acknowledged C-STORE, and CT ingest on a simulated SD card (issue 13).

The baseline the ingest redesign of issue 13 is judged against. The gateway runs as `dicom-gateway
run` under bench/sync_shim.c, an LD_PRELOAD library compiled here (`cc -shared -fPIC -O2 -o
$BENCH_CACHE/libsyncshim.so bench/sync_shim.c -ldl`) and applied to the gateway process only (it
takes itself out of the environment, so neither storescu nor anything the gateway starts is
counted). The shim counts fsync, fdatasync, syncfs, sync and msync(MS_SYNC) ("syncs": each a wait
for the medium) and, apart, sync_file_range (a write-behind hint, no durability) and
msync(MS_ASYNC); it writes the counts as JSON when the gateway exits after SIGTERM. Python's
os.fsync and SQLite both call libc, so it sees both: a self-check at the start runs a Python
process doing os.fsync x3 + os.fdatasync x2 and one doing an SQLite WAL commit with
synchronous=FULL, both under the shim; the bench stops if either count is wrong.

The data: the CT set of bench_ingest.py (500 x 0.53 MB, x BENCH_SCALE), read into the page cache
first; tuned storescu (as everywhere in bench/). Each run starts a fresh gateway on an empty buffer
(`sync` before it), sends the set, stops the gateway and reads the shim's counts. "Acknowledged"
objects = rows in the buffer's index after the run (the files in objects/ are counted too and must
agree). Four configurations, runs interleaved, medians of BENCH_REPEAT runs each:

  disk, 1 / 4 associations   the VM's own disk, the shim only counting
  sd,   1 / 4 associations   SYNC_SHIM_DELAY_US=5000: 5 ms slept after every real fsync,
                             fdatasync and syncfs, a simulated SD card (2-20 ms per flush)
"4 associations" = 4 storescu processes started together, each sending a quarter of the set.

Figures and targets (issue 13, "How it must be shown"):
  syncs per acknowledged object   all syncs of the gateway process from start to stop / objects
                                  acknowledged; "net" subtracts an idle start/stop's syncs.
                                  Target <= 1.0 on 1 association, <= 0.5 on 4 (group commit).
  sd images/s, ratio              acknowledged objects / storescu wall time with 5 ms per sync, over
                                  the one-sync bound 1 / 5 ms = 200 img/s. Target >= 0.9 on 1
                                  association, >= 2.0 on 4.
  sync ms per object              wall time inside the real sync calls (before the added delay):
                                  what this VM's disk charges; an SD card charges 2-20 ms per call.
  peak RSS receiving 1 GB         not measured here: bench_memory.py measures it (receive_peak_mb in
                                  $BENCH_CACHE/memory.json); its latest figure is quoted, with its
                                  date. Target <= 120 MB.

Today (the baseline: commit 67337ed, 2 cores, shared VM, load ~2.5; medians of 3 interleaved runs):
  BENCH_SCALE=1 (500 CT)    3.06 syncs per acknowledged object on 1 and on 4 associations (3.03 net of
                            the idle start/stop's 15): 1.00 fsync (the day's objects/ directory after
                            the rename) + 2.06 fdatasync (1 the received spool file, ~1.06 SQLite's WAL
                            commit and its checkpoints); 1-3 ms spent in them per object on this disk.
                            Targets 1.0 and 0.5: 3.1x and 6.1x over. Nothing is shared between
                            associations: 4 senders cost exactly as many syncs per object as one.
                            SD card: 44.5 img/s on 1 association = 0.22x the bound (target 0.9): three
                            waits in series, 15.3 ms of the ~22.5 ms per object; 135 img/s on 4 = 0.67x
                            (target 2.0): the waits of different associations overlap, none is saved.
                            VM disk, same runs: 276 img/s (1) and 362 img/s (4).
  BENCH_SCALE=0.2 (100 CT)  3.19 syncs/object (3.04 net: the start-up's syncs over fewer objects);
                            SD card 43.2 img/s = 0.22x (1), 104 img/s = 0.52x (4).
  peak RSS, 1 GB object     80 MB receiving the 1049 MB object (bench_memory.py, 2026-11-29, commit
                            7671524, full scale): within the 120 MB target.

No C compiler: one line naming the Debian package (gcc) and the sync figures are skipped; the
memory reference is still printed. Measurements only: nothing here asserts a figure.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import (BENCH, CACHE, GATEWAY_AE, GB, MB, PY, REPEAT, SCALE, cpu_seconds, drop_dirty,  # noqa: E402
                    free_port, gateway_config, median, ratio, rmtree, scratch, start_gateway, storescu,
                    storescu_concurrent, table, warm, write_summary)

SHIM_SRC = BENCH / "sync_shim.c"
SHIM_LIB = CACHE / "libsyncshim.so"
SD_DELAY_US = 5000
BOUND_IMG_S = 1e6 / SD_DELAY_US  # one sync per object, nothing else: 200 img/s
ASSOCIATIONS = (1, 4)
MEDIA = ("disk", "sd")
TARGET_SYNCS = {1: 1.0, 4: 0.5}  # at most, per acknowledged object
TARGET_SD = {1: 0.9, 4: 2.0}  # at least, x the one-sync bound
TARGET_RSS_MB = 120


class ShimError(RuntimeError):
    """The shim could not be built, or it did not count what it must."""


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def build_shim(cc: str) -> Path:
    """Compile bench/sync_shim.c into $BENCH_CACHE/libsyncshim.so (again only when the source is
    newer). Raises ShimError with the compiler's first error line."""
    if SHIM_LIB.exists() and SHIM_LIB.stat().st_mtime >= SHIM_SRC.stat().st_mtime:
        return SHIM_LIB
    SHIM_LIB.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(SHIM_LIB), str(SHIM_SRC), "-ldl"],
                       capture_output=True, text=True)
    if r.returncode:
        first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:200])
        raise ShimError(f"{cc} could not build {SHIM_SRC.name}: {first}")
    return SHIM_LIB


def shim_env(lib: Path, out: Path, delay_us: int = 0) -> dict[str, str]:
    return {"LD_PRELOAD": str(lib), "SYNC_SHIM_OUT": str(out), "SYNC_SHIM_DELAY_US": str(delay_us)}


def read_counts(path: Path) -> dict:
    """The shim's JSON; raises ShimError when the process exited without writing it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShimError(f"the shim wrote no counts to {path} ({exc.__class__.__name__})") from None


# Run under the shim by self_check(): Python's os.fsync / os.fdatasync, then SQLite's own syncs.
_PY_SYNCS = """
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o600)
for _ in range(3):
    os.write(fd, b"x"); os.fsync(fd)
for _ in range(2):
    os.fdatasync(fd)
os.close(fd)
"""
_SQLITE_COMMIT = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA journal_mode=WAL"); con.execute("PRAGMA synchronous=FULL")
con.execute("CREATE TABLE t (x)")
con.execute("BEGIN IMMEDIATE"); con.execute("INSERT INTO t VALUES (1)"); con.execute("COMMIT")
con.close()
"""


def self_check(lib: Path) -> dict:
    """Does the shim see what the gateway's syncs go through? Python's os.fsync x3 + os.fdatasync
    x2 must count exactly 3 + 2; an SQLite WAL commit with synchronous=FULL must count > 0 syncs.
    Returns both counts; raises ShimError when either is wrong."""
    work = scratch("sync-selfcheck-")
    try:
        out: dict[str, dict] = {}
        for name, code, target in (("python", _PY_SYNCS, "f"), ("sqlite", _SQLITE_COMMIT, "db.sqlite")):
            counts = work / f"{name}.json"
            r = subprocess.run([PY, "-c", code, str(work / target)], capture_output=True, text=True,
                               env={**os.environ, **shim_env(lib, counts)}, timeout=60)
            if r.returncode:
                raise ShimError(f"self-check {name} exited {r.returncode}: {r.stderr.strip()[-200:]}")
            out[name] = read_counts(counts)
        py, sq = out["python"], out["sqlite"]
        if (py["fsync"], py["fdatasync"]) != (3, 2):
            raise ShimError(f"self-check: os.fsync x3 + os.fdatasync x2 counted as {py['fsync']} fsync + "
                            f"{py['fdatasync']} fdatasync")
        if sq["syncs"] <= 0:
            raise ShimError("self-check: an SQLite commit with synchronous=FULL counted no sync")
        return out
    finally:
        rmtree(work)


def acknowledged(buffer: Path) -> tuple[int, int]:
    """(instance rows in the index, .dcm files under objects/) of a stopped gateway's buffer."""
    con = sqlite3.connect(f"file:{buffer / 'index.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT count(*) FROM instances").fetchone()[0]
    finally:
        con.close()
    return rows, sum(1 for _ in (buffer / "objects").rglob("*.dcm"))


def gateway_run(lib: Path, files: list[Path], associations: int, delay_us: int) -> dict:
    """One fresh gateway under the shim; `files` sent over `associations` concurrent storescu
    processes (none: an idle start and stop). Returns counts, acknowledged objects, timings."""
    drop_dirty()
    work = scratch(f"sync-{associations}-{delay_us}-")
    counts_path = work / "sync-counts.json"
    port = free_port()
    try:
        gw = start_gateway(work, gateway_config(work, port), env=shim_env(lib, counts_path, delay_us))
        try:
            time.sleep(0.2)  # let the service settle (threads, imports) before the CPU reading
            cpu0 = cpu_seconds(gw.pid)
            if not files:
                r = {"wall_s": 0.0, "rc": 0, "errors": []}
            elif associations == 1:
                r = storescu(port, files, aec=GATEWAY_AE, log=work / "storescu.log")
            else:
                n = len(files)
                groups = [files[k * n // associations:(k + 1) * n // associations] for k in range(associations)]
                r = storescu_concurrent(port, groups, aec=GATEWAY_AE,
                                        logs=[work / f"storescu-{k + 1}.log" for k in range(associations)])
            cpu1 = cpu_seconds(gw.pid)
        finally:
            rc = gw.stop()
        if rc != 0:
            raise RuntimeError(f"the gateway exited {rc} on SIGTERM; log:\n{gw.log_tail(1500)}")
        counts = read_counts(counts_path)
        rows, dcm = acknowledged(work / "buffer")
    finally:
        rmtree(work)
    nbytes = datasets.total_bytes(files) if files else 0
    out = {"associations": associations, "delay_us": delay_us, "objects": len(files), "acked": rows,
           "files_in_buffer": dcm, "rc": r["rc"], "errors": r["errors"], "wall_s": r["wall_s"],
           "counts": counts, "gw_cpu_s": cpu1 - cpu0}
    if files:
        out.update(img_s=rows / r["wall_s"], mb_s=nbytes / MB / r["wall_s"],
                   gw_cpu_s_per_gb=(cpu1 - cpu0) / (nbytes / GB),
                   syncs_per_ack=ratio(counts["syncs"], rows), fsync_per_ack=ratio(counts["fsync"], rows),
                   fdatasync_per_ack=ratio(counts["fdatasync"], rows),
                   sync_file_range_per_ack=ratio(counts["sync_file_range"], rows),
                   sync_ms_per_ack=ratio(sum(counts[f"{k}_ns"] for k in ("fsync", "fdatasync", "syncfs", "sync", "msync"))
                                         / 1e6, rows))
        if rows != len(files) or dcm != rows or r["rc"] != 0:
            print(f"    WARNING: {rows} acknowledged (index rows), {dcm} files, of {len(files)} sent "
                  f"(storescu rc {r['rc']}) {r['errors']}", flush=True)
    if counts.get("written_at") != "exit":
        print(f"    WARNING: counts written at {counts.get('written_at')!r}, not at a normal exit", flush=True)
    return out


def memory_reference() -> dict | None:
    """bench_memory.py's latest receive figure (it measures peak RSS receiving the ~1 GB object)."""
    try:
        m = json.loads((CACHE / "memory.json").read_text())
        s = m["summary"]
        return {"source": str(CACHE / "memory.json"), "time": m["time"], "scale": m["scale"],
                "commit": m.get("code", {}).get("commit", ""), "object_mb": s["object_mb"],
                "receive_peak_mb": s["receive_peak_mb"], "idle_mb": s["idle_mb"], "target_mb": TARGET_RSS_MB}
    except (OSError, ValueError, KeyError):
        return None


def print_memory(mem: dict | None) -> None:
    if mem is None:
        print(f"peak RSS receiving the 1 GB object: not measured yet (bench_memory.py writes it to "
              f"{CACHE / 'memory.json'}; target <= {TARGET_RSS_MB} MB)")
        return
    verdict = "meets" if mem["receive_peak_mb"] <= TARGET_RSS_MB else "ABOVE"
    print(f"peak RSS receiving a {mem['object_mb']:.0f} MB object: {mem['receive_peak_mb']:.0f} MB "
          f"({verdict} the target <= {TARGET_RSS_MB} MB), measured by bench_memory.py at {mem['time']} "
          f"(BENCH_SCALE={mem['scale']}, commit {mem['commit'][:8]})")


def main() -> int:
    print(f"== sync (BENCH_SCALE={SCALE}, {REPEAT} interleaved runs per configuration)", flush=True)
    mem = memory_reference()
    cc = compiler()
    if cc is None:
        print("bench_sync: no C compiler (cc) for the sync shim: install the Debian package gcc (apt-get install gcc); "
              "sync counts and the SD card simulation skipped")
        print_memory(mem)
        write_summary("sync", {"skipped": "no C compiler (Debian package gcc)", "memory": mem})
        return 0
    try:
        lib = build_shim(cc)
        check = self_check(lib)
    except ShimError as exc:
        print(f"bench_sync: {exc}", file=sys.stderr)
        return 1
    py, sq = check["python"], check["sqlite"]
    print(f"  self-check: Python os.fsync x3 + os.fdatasync x2 counted {py['fsync']} + {py['fdatasync']}; "
          f"an SQLite WAL commit (synchronous=FULL) counted {sq['syncs']} syncs "
          f"({sq['fsync']} fsync, {sq['fdatasync']} fdatasync, creating the database included)", flush=True)

    files = datasets.files("ct")
    nbytes = datasets.total_bytes(files)
    warm(files)
    print(f"  CT: {len(files)} objects, {nbytes / MB:.0f} MB", flush=True)
    idle = gateway_run(lib, [], 1, 0)
    print(f"  idle start + stop: {idle['counts']['syncs']} syncs ({idle['counts']['fsync']} fsync, "
          f"{idle['counts']['fdatasync']} fdatasync)", flush=True)

    configs = [(m, a) for m in MEDIA for a in ASSOCIATIONS]
    runs: dict[str, list[dict]] = {f"{m} {a}": [] for m, a in configs}
    try:
        for i in range(REPEAT):
            for m, a in (configs if i % 2 == 0 else configs[::-1]):
                r = gateway_run(lib, files, a, SD_DELAY_US if m == "sd" else 0)
                runs[f"{m} {a}"].append(r)
                print(f"    {m:4} {a} assoc run {i + 1}/{REPEAT}: {r['wall_s']:.2f} s, {r['img_s']:.1f} img/s, "
                      f"{r['acked']} acked, {r['syncs_per_ack']:.2f} syncs/object ({r['fsync_per_ack']:.2f} fsync "
                      f"+ {r['fdatasync_per_ack']:.2f} fdatasync), {r['sync_ms_per_ack']:.2f} ms in syncs/object",
                      flush=True)
    except (ShimError, RuntimeError) as exc:
        print(f"bench_sync: {exc}", file=sys.stderr)
        return 1

    keys = ("wall_s", "img_s", "mb_s", "gw_cpu_s_per_gb", "acked", "syncs_per_ack", "fsync_per_ack",
            "fdatasync_per_ack", "sync_file_range_per_ack", "sync_ms_per_ack")
    summary: dict[str, dict[str, dict]] = {m: {} for m in MEDIA}
    for m, a in configs:
        rs = runs[f"{m} {a}"]
        s = {k: median([r[k] for r in rs]) for k in keys}
        s["net_syncs_per_ack"] = median([ratio(r["counts"]["syncs"] - idle["counts"]["syncs"], r["acked"]) for r in rs])
        summary[m][str(a)] = s
    sd_ratio = {str(a): summary["sd"][str(a)]["img_s"] / BOUND_IMG_S for a in ASSOCIATIONS}

    print()
    rows = []
    for a in ASSOCIATIONS:
        s = summary["disk"][str(a)]
        rows.append([f"{a} association{'s' if a > 1 else ''}", s["syncs_per_ack"], s["net_syncs_per_ack"],
                     s["fsync_per_ack"], s["fdatasync_per_ack"], s["sync_file_range_per_ack"], s["sync_ms_per_ack"],
                     s["img_s"], f"<= {TARGET_SYNCS[a]}"])
    print(table(["CT into the gateway, VM disk", "syncs/object", "net of idle", "fsync", "fdatasync",
                 "sync_file_range", "ms in syncs/object", "img/s", "target"], rows,
                f"Sync calls per acknowledged object (gateway process, start to stop), median of {REPEAT}:"))
    print()
    rows = []
    for a in ASSOCIATIONS:
        s, d = summary["sd"][str(a)], summary["disk"][str(a)]
        rows.append([f"{a} association{'s' if a > 1 else ''}", s["img_s"], d["img_s"], BOUND_IMG_S,
                     sd_ratio[str(a)], f">= {TARGET_SD[a]}"])
    print(table(["CT, simulated SD card", "img/s", "img/s, VM disk", "one-sync bound", "ratio to bound",
                 "target"], rows, f"Ingest with {SD_DELAY_US / 1000:g} ms added to every fsync/fdatasync/syncfs, "
                f"median of {REPEAT}:"))
    print()
    for a in ASSOCIATIONS:
        n = summary["disk"][str(a)]["syncs_per_ack"]
        verdict = "meets" if n <= TARGET_SYNCS[a] else "ABOVE"
        print(f"syncs per acknowledged object, {a} assoc: {n:.2f} ({verdict} the target <= {TARGET_SYNCS[a]})")
    for a in ASSOCIATIONS:
        q = sd_ratio[str(a)]
        verdict = "meets" if q >= TARGET_SD[a] else "BELOW"
        print(f"SD card CT ingest, {a} assoc: {summary['sd'][str(a)]['img_s']:.1f} img/s = {q:.2f}x the one-sync "
              f"bound {BOUND_IMG_S:.0f} img/s ({verdict} the target >= {TARGET_SD[a]})")
    print_memory(mem)
    print(f"load average at the end (the machine is shared): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

    result = {
        "objects": len(files), "bytes": nbytes, "delay_us": SD_DELAY_US, "bound_img_s": BOUND_IMG_S,
        "targets": {"syncs_per_ack": TARGET_SYNCS, "sd_ratio": TARGET_SD, "receive_peak_mb": TARGET_RSS_MB},
        "self_check": check, "idle": idle, "summary": summary, "sd_ratio": sd_ratio, "memory": mem,
        "load": os.getloadavg(), "runs": runs,
    }
    path = write_summary("sync", result)
    print(f"\nsummary: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
