"""Where the gateway's time goes on the CT ingest (tuned storescu, one association).

1. Experiments: the same CT ingest into the gateway started through bench/profile_gateway.py
   (no profiler) with a bench-only monkeypatch (BENCH_PATCH, see profile_gateway.py): baseline and
   no fsync. Images/s and receiver CPU s/GB against the baseline: what durability costs. (The
   pynetdicom polling/recv experiments of earlier versions are gone with pynetdicom from the
   storage path: gateway/dicom/net/storage_acceptor.py.)
2. cProfile (per-thread CPU time) of one CT ingest: top functions by own time, % of all profiled CPU.
3. Wall-clock sampling of one CT ingest: per thread kind, the leaf frames (where the threads are,
   including waiting for the socket and the disk).
Reports and raw stats in the cache folder (profile/...).
"""

from __future__ import annotations

import json
import os
import pstats
import signal
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import (CACHE, GATEWAY_AE, GB, MB, REPEAT, SCALE, cpu_seconds, drop_dirty, free_port,  # noqa: E402
                    gateway_config, median, ratio, rmtree, scratch, start_gateway, storescu, table, warm,
                    write_summary)

EXPERIMENTS = [
    ("baseline", ""),
    ("no fsync", "nofsync"),
]
OUT = CACHE / "profile"


def ingest(files: list[Path], nbytes: int, mode: str, patch: str, keep: Path | None = None) -> dict:
    drop_dirty()
    work = scratch("profile-")
    port = free_port()
    gw = start_gateway(work, gateway_config(work, port), profile=mode, env={"BENCH_PATCH": patch})
    try:
        time.sleep(0.2)
        if mode != "none":
            os.kill(gw.pid, signal.SIGRTMIN + 1)  # profile window opens (see profile_gateway.py)
            time.sleep(0.2)
        cpu0 = cpu_seconds(gw.pid)
        r = storescu(port, files, aec=GATEWAY_AE, tuned=True, log=work / "storescu.log")
        cpu1 = cpu_seconds(gw.pid)
        if mode != "none":
            time.sleep(0.3)  # let the association's threads end inside the window
            os.kill(gw.pid, signal.SIGRTMIN + 2)
        received = sum(1 for _ in (work / "buffer" / "objects").rglob("*.dcm"))
    finally:
        gw.stop(120)
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(work / "profile", keep)
        rmtree(work)
    if received != len(files) or r["rc"]:
        print(f"    WARNING: received {received}/{len(files)} (storescu rc {r['rc']}): {r['errors']}", flush=True)
    wall = r["wall_s"]
    return {"wall_s": wall, "img_s": len(files) / wall, "mb_s": nbytes / MB / wall,
            "recv_cpu_s_per_gb": (cpu1 - cpu0) / (nbytes / GB), "received": received}


def idle_cost(patch: str, seconds: float = 4.0) -> dict:
    """Gateway CPU (% of one core) with nothing connected, with one established idle association,
    and with one half-open connection (TCP connected, no A-ASSOCIATE-RQ yet)."""
    import socket

    from pynetdicom import AE

    work = scratch("idle-")
    port = free_port()
    gw = start_gateway(work, gateway_config(work, port), profile="none", env={"BENCH_PATCH": patch})
    out = {}

    def cpu_pct() -> float:
        c0, t0 = cpu_seconds(gw.pid), time.monotonic()
        time.sleep(seconds)
        return 100 * (cpu_seconds(gw.pid) - c0) / (time.monotonic() - t0)

    try:
        time.sleep(1.0)
        out["nothing connected"] = cpu_pct()
        ae = AE(ae_title="BENCHSCU")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", port, ae_title=GATEWAY_AE)
        time.sleep(0.3)
        out["1 established idle association"] = cpu_pct() if assoc.is_established else float("nan")
        if assoc.is_established:
            assoc.release()
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port)):
            time.sleep(0.3)
            out["1 half-open connection (no A-ASSOCIATE-RQ)"] = cpu_pct()
    finally:
        gw.stop()
        rmtree(work)
    return out


def association_setup(files: list[Path], n: int = 15) -> dict:
    """Median wall time of a storescu run that sends ONE CT object (one association each), into the
    gateway and into tuned storescp: the per-association cost for modalities that associate per image."""
    from common import STORESCP_AE, start_storescp

    out = {}
    for receiver in ("storescp", "gateway"):
        work = scratch("assoc-")
        port = free_port()
        peer = (start_gateway(work, gateway_config(work, port)) if receiver == "gateway"
                else start_storescp(work, port, tuned=True))
        aec = GATEWAY_AE if receiver == "gateway" else STORESCP_AE
        try:
            time.sleep(0.3)
            walls = [storescu(port, [files[i % len(files)]], aec=aec, tuned=True)["wall_s"] for i in range(n)]
        finally:
            peer.stop()
            rmtree(work)
        out[receiver] = {"median_s": median(walls), "runs": walls}
    return out


def top_cprofile(path: Path, n: int = 25) -> tuple[list[dict], float]:
    st = pstats.Stats(str(path))
    total = sum(v[2] for v in st.stats.values())
    rows = []
    for (fn, line, func), (cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append({"function": func, "where": f"{_short(fn)}:{line}", "calls": nc, "own_s": tt, "cum_s": ct,
                     "own_pct": 100 * tt / total if total else 0.0, "cum_pct": 100 * ct / total if total else 0.0})
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return rows[:n], total


def top_cumulative(path: Path, n: int = 25) -> list[dict]:
    st = pstats.Stats(str(path))
    total = sum(v[2] for v in st.stats.values())
    rows = [{"function": func, "where": f"{_short(fn)}:{line}", "cum_pct": 100 * ct / total if total else 0.0}
            for (fn, line, func), (cc, nc, tt, ct, _c) in st.stats.items()]
    rows.sort(key=lambda r: r["cum_pct"], reverse=True)
    return rows[:n]


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def main() -> int:
    files = datasets.files("ct")
    nbytes = datasets.total_bytes(files)
    warm(files)
    print(f"== profile: CT ingest into the gateway, {len(files)} objects, {nbytes / MB:.0f} MB "
          f"(BENCH_SCALE={SCALE}, median of {REPEAT})", flush=True)
    results: dict = {"experiments": {}}
    for label, patch in EXPERIMENTS:
        runs = [ingest(files, nbytes, "none", patch) for _ in range(REPEAT)]
        m = {k: median([r[k] for r in runs]) for k in ("wall_s", "img_s", "mb_s", "recv_cpu_s_per_gb")}
        results["experiments"][label] = {"patch": patch, **m, "runs": runs}
        print(f"    {label:32} {m['img_s']:7.1f} img/s  {m['recv_cpu_s_per_gb']:5.1f} CPU s/GB", flush=True)

    OUT.mkdir(parents=True, exist_ok=True)
    print("  cProfile run (per-thread CPU time)...", flush=True)
    results["cprofile_run"] = ingest(files, nbytes, "cprofile", "", keep=OUT / "cprofile")
    top, total = top_cprofile(OUT / "cprofile" / "cprofile.pstats")
    results["cprofile_top_own"] = top
    results["cprofile_top_cumulative"] = top_cumulative(OUT / "cprofile" / "cprofile.pstats")
    results["cprofile_total_cpu_s"] = total
    print("  wall-clock sampling run...", flush=True)
    results["sample_run"] = ingest(files, nbytes, "sample", "", keep=OUT / "sample")
    sample = json.loads((OUT / "sample" / "sample.json").read_text())
    results["sample"] = sample

    print("  idle cost and association set-up...", flush=True)
    results["idle_cpu_pct"] = {}
    for label, patch in (("as shipped", ""),):
        for attempt in range(2):  # others edit gateway/ while this runs: one retry on a failed start
            try:
                results["idle_cpu_pct"][label] = idle_cost(patch)
                break
            except RuntimeError as exc:
                print(f"    idle cost ({label}) failed: {exc}", flush=True)
                results["idle_cpu_pct"][label] = {}
    results["association_setup"] = association_setup(files)

    base = results["experiments"]["baseline"]
    print()
    print(table(["experiment (bench-only patch)", "img/s", "MB/s", "recv CPU s/GB", "img/s vs baseline"],
                [[k, v["img_s"], v["mb_s"], v["recv_cpu_s_per_gb"], ratio(v["img_s"], base["img_s"])]
                 for k, v in results["experiments"].items()],
                "CT ingest into the gateway with one cost removed at a time:"))
    print()
    print(table(["function", "where", "calls", "own CPU s", "own %", "cum %"],
                [[r["function"][:40], r["where"][-48:], r["calls"], r["own_s"], r["own_pct"], r["cum_pct"]]
                 for r in top[:20]],
                f"cProfile, top own time (per-thread CPU, all threads: {total:.1f} s; the profiled run took "
                f"{results['cprofile_run']['wall_s']:.1f} s vs {base['wall_s']:.1f} s unprofiled):"))
    print()
    print(table(["function", "where", "cum %"],
                [[r["function"][:40], r["where"][-48:], r["cum_pct"]] for r in results["cprofile_top_cumulative"][:20]],
                "cProfile, top cumulative:"))
    print()
    cpu = sample.get("cpu_s_by_thread", {})
    lines = ["CPU seconds per thread during the sampled ingest (/proc/self/task; threads that ran):"]
    lines += [f"  {k:40} {v:6.2f} s" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v > 0]
    lines.append("Wall-clock samples (every 2 ms) per thread kind, top leaf frames (biased towards points")
    lines.append("where a thread releases the GIL: sleeps, I/O; use the CPU split above for CPU):")
    for kind, n in sorted(sample["totals"].items(), key=lambda kv: -kv[1]):
        if n < 10:
            continue
        lines.append(f"  {kind} ({n} samples)")
        for lab, c in list(sample["leaf"][kind].items())[:6]:
            lines.append(f"    {100 * c / n:5.1f}%  {lab}")
    print("\n".join(lines))
    print()
    idle = results["idle_cpu_pct"]
    print(table(["gateway state", "CPU % of one core"],
                [[k, v] for k, v in idle["as shipped"].items()],
                "Idle cost (gateway process CPU while nothing is sent):"))
    print()
    a = results["association_setup"]
    print(table(["storescu run with 1 CT object into", "median wall ms"],
                [[k, 1000 * v["median_s"]] for k, v in a.items()],
                "Per-association cost (process start + association + 1 C-STORE + release; "
                f"gateway - storescp = {1000 * (a['gateway']['median_s'] - a['storescp']['median_s']):.0f} ms):"))
    path = write_summary("profile", results)
    print(f"\nsummary: {path}; full reports: {OUT}/cprofile/cprofile.txt, {OUT}/sample/sample.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
