"""Ingest: DCMTK storescu sends each set over one association into (a) DCMTK storescp and (b) the
gateway; then the stock-DCMTK comparison on CT (Nagle left on) and a TCP_NODELAY matrix.

Measured per run: wall time of the storescu run, MB/s and images/s, and the receiver's CPU seconds
per GB received (utime+stime of the receiver process from /proc/<pid>/stat, before and after).
Each receiver is a fresh process with an empty output folder / buffer. Median of BENCH_REPEAT runs.

Tuned: storescu -xe --max-pdu 131072 --max-send-pdu 131072, storescp --max-pdu 131072 +B (writes
the received bytes as they come, no re-encoding), both with TCP_NODELAY=1 (DCMTK 3.6.7 reads it
from the environment). The gateway: ae.max_pdu = 131072, buffer.reserve_mb = 0, tcp_nodelay on
(its default), no destinations. Note what each receiver does per object: storescp writes the file
(no fsync); the gateway streams to incoming/, parses the header, fsyncs the file, renames it,
fsyncs the directory and commits an SQLite WAL transaction (synchronous=FULL) before Success.

Stock: `storescu -aet A -aec B host port files` and `storescp -od DIR port` exactly as packaged
(16 KB PDU, Nagle on), vs the same stock storescu into the gateway.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import (GATEWAY_AE, GB, MB, REPEAT, SCALE, STORESCP_AE, cpu_seconds, drop_dirty, free_port,  # noqa: E402
                    gateway_config, median, ratio, rmtree, scratch, start_gateway, start_storescp, storescu, table,
                    warm, write_summary)


def count_received(receiver: str, workdir: Path) -> int:
    if receiver == "gateway":
        return sum(1 for _ in (workdir / "buffer" / "objects").rglob("*.dcm"))
    return sum(1 for p in (workdir / "out").iterdir() if p.is_file())


def run_once(receiver: str, files: list[Path], nbytes: int, *, tuned: bool = True,
             gateway_nodelay: bool = True) -> dict:
    """One storescu run into a fresh receiver. receiver: 'storescp' or 'gateway'."""
    drop_dirty()
    work = scratch(f"ingest-{receiver}-")
    port = free_port()
    if receiver == "gateway":
        peer = start_gateway(work, gateway_config(work, port, nodelay=gateway_nodelay))
        aec = GATEWAY_AE
    else:
        peer = start_storescp(work, port, tuned=tuned)
        aec = STORESCP_AE
    try:
        time.sleep(0.2)  # let the receiver settle (imports, threads) before the CPU reading
        cpu0 = cpu_seconds(peer.pid)
        r = storescu(port, files, aec=aec, tuned=tuned, log=work / "storescu.log")
        cpu1 = cpu_seconds(peer.pid)
        received = count_received(receiver, work)
    finally:
        peer.stop()
        if receiver == "gateway" and peer.proc.returncode not in (0, None):
            print(peer.log_tail(), file=sys.stderr)
        rmtree(work)
    wall = r["wall_s"]
    out = {
        "receiver": receiver, "tuned": tuned, "gateway_nodelay": gateway_nodelay if receiver == "gateway" else None,
        "objects": len(files), "bytes": nbytes, "received": received, "rc": r["rc"], "errors": r["errors"],
        "wall_s": wall, "mb_s": nbytes / MB / wall, "img_s": len(files) / wall,
        "recv_cpu_s": cpu1 - cpu0, "recv_cpu_s_per_gb": (cpu1 - cpu0) / (nbytes / GB),
        "sender_cpu_s": r["sender_cpu_s"],
    }
    if received != len(files) or r["rc"] != 0:
        print(f"    WARNING: {receiver} received {received}/{len(files)} (storescu rc {r['rc']}) {r['errors']}",
              flush=True)
    return out


def measure(receiver: str, files: list[Path], nbytes: int, repeat: int, **kw) -> dict:
    runs = []
    for i in range(repeat):
        runs.append(run_once(receiver, files, nbytes, **kw))
        print(f"    {receiver:8} run {i + 1}/{repeat}: {runs[-1]['wall_s']:.2f} s, "
              f"{runs[-1]['mb_s']:.1f} MB/s, {runs[-1]['img_s']:.1f} img/s, "
              f"{runs[-1]['recv_cpu_s_per_gb']:.1f} CPU s/GB", flush=True)
    keys = ("wall_s", "mb_s", "img_s", "recv_cpu_s", "recv_cpu_s_per_gb", "sender_cpu_s")
    summary = {k: median([r[k] for r in runs]) for k in keys}
    summary.update(objects=len(files), bytes=nbytes, received_min=min(r["received"] for r in runs), runs=runs)
    return summary


def main() -> int:
    print(f"== ingest (BENCH_SCALE={SCALE}, median of {REPEAT})", flush=True)
    results: dict = {"sets": {}, "stock": {}, "nodelay": {}}
    for name in ("ct", "dx", "us"):
        files = datasets.files(name)
        nbytes = datasets.total_bytes(files)
        warm(files)
        print(f"  {name.upper()}: {len(files)} objects, {nbytes / MB:.0f} MB", flush=True)
        scp = measure("storescp", files, nbytes, REPEAT)
        gw = measure("gateway", files, nbytes, REPEAT)
        results["sets"][name] = {"storescp": scp, "gateway": gw,
                                 "throughput_ratio": ratio(scp["wall_s"], gw["wall_s"]),
                                 "cpu_per_gb_ratio": ratio(gw["recv_cpu_s_per_gb"], scp["recv_cpu_s_per_gb"])}

    # Stock DCMTK on both ends (Nagle on, 16 KB PDU) vs stock storescu into the gateway.
    ct = datasets.files("ct")
    ct_bytes = datasets.total_bytes(ct)
    print(f"  stock storescu, CT: {len(ct)} objects (1 run each)", flush=True)
    stock_scp = measure("storescp", ct, ct_bytes, 1, tuned=False)
    stock_gw = measure("gateway", ct, ct_bytes, 1, tuned=False)
    results["stock"] = {"storescp": stock_scp, "gateway": stock_gw,
                        "img_s_ratio": ratio(stock_gw["img_s"], stock_scp["img_s"])}

    # What the gateway's TCP_NODELAY buys: the same CT runs with ae.tcp_nodelay = false.
    print("  TCP_NODELAY off on the gateway (ae.tcp_nodelay = false), CT", flush=True)
    off_stock = measure("gateway", ct, ct_bytes, 1, tuned=False, gateway_nodelay=False)
    off_tuned = measure("gateway", ct, ct_bytes, 1, tuned=True, gateway_nodelay=False)
    results["nodelay"] = {
        "stock_sender": {"on": stock_gw, "off": off_stock},
        "tuned_sender": {"on": results["sets"]["ct"]["gateway"], "off": off_tuned},
    }

    rows = []
    for name, r in results["sets"].items():
        for rcv in ("storescp", "gateway"):
            m = r[rcv]
            rows.append([f"{name.upper()} {rcv}", m["objects"], m["bytes"] / MB, m["wall_s"], m["mb_s"], m["img_s"],
                         m["recv_cpu_s_per_gb"], f"{m['received_min']}/{m['objects']}"])
    print()
    print(table(["set / receiver", "objects", "MB", "wall s", "MB/s", "img/s", "recv CPU s/GB", "received"], rows,
                "Ingest, tuned storescu (1 association, 128 KB PDU, TCP_NODELAY=1), median of "
                f"{REPEAT}:"))
    print()
    print(table(["set", "throughput gateway/storescp", "CPU per GB gateway/storescp"],
                [[n.upper(), r["throughput_ratio"], r["cpu_per_gb_ratio"]] for n, r in results["sets"].items()],
                "Ratios (throughput > 1: the gateway is faster; CPU > 1: the gateway burns more per GB):"))
    print()
    s = results["stock"]
    print(table(["CT, stock storescu into", "wall s", "img/s", "MB/s", "recv CPU s/GB"],
                [["stock storescp (Nagle on, 16 KB PDU)", s["storescp"]["wall_s"], s["storescp"]["img_s"],
                  s["storescp"]["mb_s"], s["storescp"]["recv_cpu_s_per_gb"]],
                 ["gateway", s["gateway"]["wall_s"], s["gateway"]["img_s"], s["gateway"]["mb_s"],
                  s["gateway"]["recv_cpu_s_per_gb"]]],
                f"Stock DCMTK: images/s ratio gateway/stock storescp = {s['img_s_ratio']:.1f}x (target >= 10x)"))
    print()
    nd = results["nodelay"]
    print(table(["CT into the gateway", "TCP_NODELAY on: img/s", "off: img/s", "on/off"],
                [[f"{k.replace('_', ' ')}", v["on"]["img_s"], v["off"]["img_s"], ratio(v["on"]["img_s"], v["off"]["img_s"])]
                 for k, v in nd.items()],
                "Gateway ae.tcp_nodelay on vs off:"))
    path = write_summary("ingest", results)
    print(f"\nsummary: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
