"""Forward: the gateway sending a preloaded buffer to DCMTK storescp, vs storescu sending the same
files to the same kind of storescp.

Gateway run: the gateway starts with one destination (`pacs`, storescp's port, retry_initial_s 0.2,
retry_max_s 0.5) while storescp is NOT running, the set is ingested with tuned storescu (one forward
job per object, the forwarder backing off), then tuned storescp starts and the clock runs until
every job is `done` in the gateway's index (read-only SQLite reads; jobs.updated of the last done
job is the end time). Reported: `active` = first file appearing in storescp's folder -> last job
done (the throughput figure), and `from start` = storescp listening -> last job done (adds up to
retry_max_s of backoff sleep and the first association).

storescu run: tuned storescu (-xe, 128 KB PDU, TCP_NODELAY=1), one association, the same files,
into a fresh tuned storescp (--max-pdu 131072 +B, TCP_NODELAY=1). The gateway's forwarder opens
one association per destinations.pacs.batch_size (200) jobs.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import (GATEWAY_AE, GB, MB, REPEAT, SCALE, STORESCP_AE, cpu_seconds, drop_dirty, free_port,  # noqa: E402
                    gateway_config, median, ratio, rmtree, scratch, start_gateway, start_storescp, storescu,
                    table, warm, write_summary)


def job_counts(index: Path) -> tuple[dict[str, int], float | None]:
    """Forward job counts by state, and the `updated` time of the last done job."""
    con = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=5)
    try:
        counts = dict(con.execute("SELECT state, count(*) FROM jobs WHERE kind = 'forward' GROUP BY state"))
        last = con.execute("SELECT max(updated) FROM jobs WHERE kind = 'forward' AND state = 'done'").fetchone()[0]
    finally:
        con.close()
    return counts, last


def destination(port: int) -> dict:
    return {"pacs": {"ae_title": STORESCP_AE, "host": "127.0.0.1", "port": port,
                     "retry_initial_s": 0.2, "retry_max_s": 0.5}}


def gateway_forward(files: list[Path], nbytes: int, timeout: float = 1800, nodelay: bool = True) -> dict:
    drop_dirty()
    work = scratch("forward-gw-")
    port, scp_port = free_port(), free_port()
    gw = start_gateway(work, gateway_config(work, port, destinations=destination(scp_port), nodelay=nodelay))
    scp = None
    try:
        r = storescu(port, files, aec=GATEWAY_AE, tuned=True, log=work / "storescu.log")
        index = work / "buffer" / "index.sqlite"
        counts, _ = job_counts(index)
        queued = counts.get("queued", 0) + counts.get("in_flight", 0)
        if queued != len(files) or r["rc"]:
            print(f"    WARNING: {queued} jobs waiting after ingest of {len(files)} (storescu rc {r['rc']})",
                  flush=True)
        drop_dirty()  # the ingest's write-back is not the forwarder's cost
        (work / "scp").mkdir()
        out = work / "scp" / "out"
        cpu_gw0 = cpu_seconds(gw.pid)
        t_start = time.time()
        scp = start_storescp(work / "scp", scp_port, tuned=True)
        t_first = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if t_first is None:
                with os.scandir(out) as it:
                    if any(True for _ in it):
                        t_first = time.time()
                time.sleep(0.002)
                continue
            counts, last = job_counts(index)
            if counts.get("done", 0) + counts.get("dead", 0) >= len(files):
                break
            time.sleep(0.05)
        cpu_gw1 = cpu_seconds(gw.pid)
        counts, last = job_counts(index)
        scp_cpu = cpu_seconds(scp.pid)
        written = sum(1 for p in out.iterdir() if p.is_file())
    finally:
        if scp is not None:
            scp.stop()
        gw.stop()
        rmtree(work)
    done = counts.get("done", 0)
    if done != len(files) or written != len(files):
        print(f"    WARNING: {done}/{len(files)} jobs done, storescp wrote {written} ({counts})", flush=True)
    active = (last - t_first) if (last and t_first) else float("nan")
    return {"objects": len(files), "bytes": nbytes, "done": done, "written": written, "states": counts,
            "active_s": active, "from_start_s": (last - t_start) if last else float("nan"),
            "mb_s": nbytes / MB / active, "img_s": len(files) / active,
            "sender_cpu_s_per_gb": (cpu_gw1 - cpu_gw0) / (nbytes / GB),
            "storescp_cpu_s_per_gb": scp_cpu / (nbytes / GB)}


def storescu_forward(files: list[Path], nbytes: int) -> dict:
    drop_dirty()
    work = scratch("forward-scu-")
    port = free_port()
    scp = start_storescp(work, port, tuned=True)
    try:
        r = storescu(port, files, aec=STORESCP_AE, tuned=True, log=work / "storescu.log")
        scp_cpu = cpu_seconds(scp.pid)
        written = sum(1 for p in (work / "out").iterdir() if p.is_file())
    finally:
        scp.stop()
        rmtree(work)
    if written != len(files) or r["rc"]:
        print(f"    WARNING: storescp wrote {written}/{len(files)} (storescu rc {r['rc']})", flush=True)
    wall = r["wall_s"]
    return {"objects": len(files), "bytes": nbytes, "written": written, "wall_s": wall,
            "mb_s": nbytes / MB / wall, "img_s": len(files) / wall,
            "sender_cpu_s_per_gb": r["sender_cpu_s"] / (nbytes / GB),
            "storescp_cpu_s_per_gb": scp_cpu / (nbytes / GB)}


def main() -> int:
    print(f"== forward (BENCH_SCALE={SCALE}, median of {REPEAT})", flush=True)
    results = {}
    for name in ("ct", "dx"):
        files = datasets.files(name)
        nbytes = datasets.total_bytes(files)
        warm(files)
        print(f"  {name.upper()}: {len(files)} objects, {nbytes / MB:.0f} MB", flush=True)
        gws, scus = [], []
        for i in range(REPEAT):
            gws.append(gateway_forward(files, nbytes))
            print(f"    gateway  run {i + 1}/{REPEAT}: active {gws[-1]['active_s']:.2f} s "
                  f"(from storescp start {gws[-1]['from_start_s']:.2f} s), {gws[-1]['mb_s']:.1f} MB/s, "
                  f"{gws[-1]['img_s']:.1f} img/s", flush=True)
            scus.append(storescu_forward(files, nbytes))
            print(f"    storescu run {i + 1}/{REPEAT}: {scus[-1]['wall_s']:.2f} s, {scus[-1]['mb_s']:.1f} MB/s, "
                  f"{scus[-1]['img_s']:.1f} img/s", flush=True)
        gw = {k: median([g[k] for g in gws]) for k in ("active_s", "from_start_s", "mb_s", "img_s",
                                                       "sender_cpu_s_per_gb", "storescp_cpu_s_per_gb")}
        scu = {k: median([s[k] for s in scus]) for k in ("wall_s", "mb_s", "img_s", "sender_cpu_s_per_gb",
                                                         "storescp_cpu_s_per_gb")}
        results[name] = {"objects": len(files), "bytes": nbytes, "gateway": {**gw, "runs": gws},
                         "storescu": {**scu, "runs": scus}, "throughput_ratio": ratio(gw["mb_s"], scu["mb_s"])}
    # The forwarder is a sender: what does its TCP_NODELAY (ae.tcp_nodelay, also used by the SCU) buy?
    ct = datasets.files("ct")
    print("  CT, gateway with ae.tcp_nodelay = false (1 run)", flush=True)
    off = gateway_forward(ct, datasets.total_bytes(ct), nodelay=False)
    results["ct_nodelay_off"] = off
    rows = []
    for name, r in results.items():
        if name == "ct_nodelay_off":
            continue
        g, s = r["gateway"], r["storescu"]
        rows.append([f"{name.upper()} gateway forwarder", r["objects"], r["bytes"] / MB, g["active_s"],
                     g["from_start_s"], g["mb_s"], g["img_s"], g["sender_cpu_s_per_gb"]])
        rows.append([f"{name.upper()} storescu", r["objects"], r["bytes"] / MB, s["wall_s"], s["wall_s"],
                     s["mb_s"], s["img_s"], s["sender_cpu_s_per_gb"]])
    print()
    print(table(["set / sender", "objects", "MB", "active s", "from start s", "MB/s", "img/s", "sender CPU s/GB"],
                rows, f"Forward to tuned storescp, median of {REPEAT} (MB/s and img/s from `active s`):"))
    print()
    print(table(["set", "throughput gateway/storescu"],
                [[n.upper(), r["throughput_ratio"]] for n, r in results.items() if n != "ct_nodelay_off"],
                "Ratio (> 1: the gateway's forwarder is faster):"))
    print()
    on = results["ct"]["gateway"]
    print(table(["CT forward", "img/s", "MB/s"], [["ae.tcp_nodelay = true", on["img_s"], on["mb_s"]],
                                                 ["ae.tcp_nodelay = false", off["img_s"], off["mb_s"]]],
                f"Forwarder TCP_NODELAY on/off: {ratio(on['img_s'], off['img_s']):.1f}x"))
    path = write_summary("forward", results)
    print(f"\nsummary: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
