"""`make bench`: every benchmark in turn (one at a time: the box has 2 cores), then one summary.

    python bench/run_all.py                 # all, full sizes
    BENCH_SCALE=0.1 python bench/run_all.py # quick
    python bench/run_all.py ingest memory   # only these (names: datasets ingest forward memory
                                            #   profile film_render export observers capture coercion qrfind
                                            #   sync)

Measurements only: a benchmark that fails is reported and the next one runs; the exit status is
non-zero only when a benchmark crashed. bench_film_render.py is run when it exists.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, CACHE, MB, PY, REPEAT, SCALE, table  # noqa: E402

ORDER = ["datasets", "ingest", "forward", "memory", "profile", "film_render", "export", "observers", "capture"]
ORDER += ["coercion"]  # ingest with [[coercion]] rules on vs off (bench_coercion.py)
ORDER += ["qrfind"]  # C-FIND over the buffer vs Orthanc (bench_qrfind.py)
ORDER += ["sync"]  # sync calls per acknowledged object, CT ingest on a simulated SD card (bench_sync.py)


def script(name: str) -> Path:
    return BENCH / ("datasets.py" if name == "datasets" else f"bench_{name}.py")


def load(name: str) -> dict | None:
    p = CACHE / f"{name}.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def summary_rows(started: float) -> list[list]:
    """One line per headline figure, from the JSON summaries written during this run."""
    rows: list[list] = []

    def fresh(d: dict | None) -> bool:
        return bool(d) and time.mktime(time.strptime(d["time"], "%Y-%m-%dT%H:%M:%S")) >= started - 1

    ing = load("ingest")
    if fresh(ing):
        for name, r in ing["sets"].items():
            g, s = r["gateway"], r["storescp"]
            rows.append([f"ingest {name.upper()}", f"{g['mb_s']:.0f} MB/s, {g['img_s']:.1f} img/s, "
                         f"{g['recv_cpu_s_per_gb']:.1f} CPU s/GB",
                         f"storescp {s['mb_s']:.0f} MB/s, {s['img_s']:.1f} img/s, {s['recv_cpu_s_per_gb']:.1f} CPU s/GB",
                         f"{r['throughput_ratio']:.2f}x"])
        st = ing["stock"]
        rows.append(["ingest CT, stock storescu", f"{st['gateway']['img_s']:.1f} img/s",
                     f"stock storescp {st['storescp']['img_s']:.1f} img/s", f"{st['img_s_ratio']:.1f}x (target >= 10x)"])
        for k, v in ing["nodelay"].items():
            rows.append([f"ingest CT, gateway TCP_NODELAY off, {k.replace('_', ' ')}",
                         f"{v['off']['img_s']:.1f} img/s", f"on: {v['on']['img_s']:.1f} img/s",
                         f"{v['off']['img_s'] / v['on']['img_s']:.2f}x"])
    fwd = load("forward")
    if fresh(fwd):
        for name, r in fwd.items():
            if name == "ct_nodelay_off" and isinstance(r, dict):
                on = fwd["ct"]["gateway"]["img_s"]
                rows.append(["forward CT, gateway TCP_NODELAY off", f"{r['img_s']:.1f} img/s", f"on: {on:.1f} img/s",
                             f"{r['img_s'] / on:.2f}x"])
                continue
            if not isinstance(r, dict) or "gateway" not in r:
                continue
            g, s = r["gateway"], r["storescu"]
            rows.append([f"forward {name.upper()}", f"{g['mb_s']:.0f} MB/s, {g['img_s']:.1f} img/s",
                         f"storescu {s['mb_s']:.0f} MB/s, {s['img_s']:.1f} img/s", f"{r['throughput_ratio']:.2f}x"])
    mem = load("memory")
    if fresh(mem):
        m = mem["summary"]
        rows.append([f"memory, {m['object_mb']:.0f} MB object",
                     f"peak RSS receive {m['receive_peak_mb']:.0f} MB, forward {m['forward_peak_mb']:.0f} MB "
                     f"(idle {m['idle_mb']:.0f} MB)", f"storescp {m['storescp_peak_mb']:.0f} MB",
                     f"growth over idle: {(max(m['receive_peak_mb'], m['forward_peak_mb']) - m['idle_mb']) / m['object_mb']:.2f}"
                     " x object"])
    prof = load("profile")
    if fresh(prof):
        base = prof["experiments"]["baseline"]["img_s"]
        for k, v in prof["experiments"].items():
            if k != "baseline":
                rows.append([f"profile: CT ingest, {k}", f"{v['img_s']:.1f} img/s", f"baseline {base:.1f} img/s",
                             f"{v['img_s'] / base:.2f}x"])
        a = prof.get("association_setup")
        if a:
            rows.append(["1-object storescu run (association cost)", f"{1000 * a['gateway']['median_s']:.0f} ms",
                         f"storescp {1000 * a['storescp']['median_s']:.0f} ms",
                         f"{a['storescp']['median_s'] / a['gateway']['median_s']:.2f}x"])
        for k, v in (prof.get("idle_cpu_pct") or {}).get("as shipped", {}).items():
            rows.append([f"gateway idle CPU, {k}", f"{v:.1f} % of a core", "", ""])
    exp = load("export")
    if fresh(exp):
        for n, r in exp["sizes"].items():
            rows.append([f"export {n} CT to a folder (STD-GEN-CD)",
                         f"{r['gateway_s']:.2f} s, {1000 * r['gateway_s'] / int(n):.2f} ms/inst, "
                         f"peak RSS {r['gateway_peak_mb']:.0f} MB",
                         f"cp -r + dcmmkdir {r['dcmtk_s']:.2f} s", f"{r['ratio']:.2f}x"])
    obs = load("observers")
    if fresh(obs):
        on, off = obs["summary"]["observed"], obs["summary"]["bare"]
        rows.append(["observers: CT ingest, status page + metrics + panel + SSE client",
                     f"{on['img_s']:.1f} img/s, peak RSS {on['peak_rss_mb']:.0f} MB",
                     f"all off: {off['img_s']:.1f} img/s, peak RSS {off['peak_rss_mb']:.0f} MB",
                     f"{obs['ratio']:.3f}x (target >= {obs['target']}); CPU/GB {obs['cpu_ratio']:.3f}x"])
    cap = load("capture")
    if fresh(cap):
        for key, r in cap["results"].items():
            if "error" in r:
                rows.append([f"capture {key}", "failed", "", ""])
                continue
            a, b = r["real"], r["encoder"]
            rows.append([f"capture {key}, {cap['clip_s']:g} s clip at {cap['fps']:g} fps (hw-sim)",
                         f"{a['fps']:.1f} fps stored durable, {a['missing']:.0f} missing (dropped enc/drv/src "
                         f"{a['dropped_encoder_queue']:.0f}/{a['dropped_driver_queue']:.0f}/{a['late_source_slots']:.0f}), "
                         f"peak RSS {a['peak_rss_mb']:.0f} MB",
                         f"ClipWriter alone {b['fps']:.1f} fps",
                         f"{r['ratio']:.2f}x of min({cap['fps']:g}, encoder) (target >= {cap['target']}); "
                         f"raw {r['raw_ratio']:.2f}x"])
    # coercion rules on vs off
    coe = load("coercion")
    if fresh(coe):
        on, off = coe["summary"]["on"], coe["summary"]["off"]
        rows.append(["coercion: CT ingest, one rule changing every object",
                     f"{on['img_s']:.1f} img/s, peak RSS {on['peak_rss_mb']:.0f} MB",
                     f"rules off: {off['img_s']:.1f} img/s, peak RSS {off['peak_rss_mb']:.0f} MB",
                     f"{coe['ratio']:.3f}x (target >= {coe['target']}); CPU/GB {coe.get('cpu_ratio', 0):.3f}x"])
    # C-FIND at study level, the gateway vs Orthanc's C-FIND SCP (bench_qrfind.py)
    qr = load("qrfind")
    if fresh(qr):
        g, o = qr["gateway"], qr["orthanc"]
        rows.append([f"C-FIND STUDY level, {qr['studies']} studies / {qr['instances']} instances",
                     f"{g['rsp_s']:.0f} responses/s, peak RSS {g['peak_rss_mb']:.0f} MB",
                     f"Orthanc {o['rsp_s']:.0f} responses/s, peak RSS {o['peak_rss_mb']:.0f} MB",
                     f"{qr['ratio']:.2f}x (target >= {qr['target']})"])
    # sync calls per acknowledged object and CT ingest under a simulated SD card (bench_sync.py)
    syn = load("sync")
    if fresh(syn) and "summary" in syn:
        t = syn["targets"]
        for a, s in syn["summary"]["disk"].items():
            rows.append([f"sync calls per acknowledged CT object, {a} assoc",
                         f"{s['syncs_per_ack']:.2f} ({s['fsync_per_ack']:.2f} fsync + {s['fdatasync_per_ack']:.2f} "
                         f"fdatasync)", "", f"{s['syncs_per_ack']:.2f} (target <= {t['syncs_per_ack'][a]})"])
        for a, s in syn["summary"]["sd"].items():
            rows.append([f"CT ingest, {syn['delay_us'] / 1000:g} ms per sync (simulated SD card), {a} assoc",
                         f"{s['img_s']:.1f} img/s", f"one-sync bound {syn['bound_img_s']:.0f} img/s",
                         f"{syn['sd_ratio'][a]:.2f}x (target >= {t['sd_ratio'][a]})"])
        m = syn.get("memory")
        if m and not fresh(mem):  # the memory row above already shows it when bench_memory ran now
            rows.append([f"memory, {m['object_mb']:.0f} MB object (bench_memory.py of {m['time']})",
                         f"peak RSS receive {m['receive_peak_mb']:.0f} MB", "",
                         f"target <= {m['target_mb']} MB"])
    elif fresh(syn):
        rows.append(["sync", f"skipped: {syn.get('skipped', '?')}", "", ""])
    return rows


def main(argv: list[str]) -> int:
    wanted = argv or ORDER
    unknown = [w for w in wanted if w not in ORDER]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {ORDER}", file=sys.stderr)
        return 2
    print(f"bench: BENCH_SCALE={SCALE}, BENCH_REPEAT={REPEAT}, cache {CACHE}", flush=True)
    started = time.time()
    status = []
    outputs: dict[str, list[str]] = {}
    crashed = False
    for name in wanted:
        path = script(name)
        if not path.exists():
            if name != "film_render":
                print(f"\n### {path.name}: missing", flush=True)
                crashed = True
            status.append([name, "not present", ""])
            continue
        print(f"\n### {path.name}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.Popen([PY, str(path)], cwd=BENCH.parent, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        lines = []
        for line in proc.stdout:  # tee: show progress live, keep the text for the summary
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line.rstrip("\n"))
        rc = proc.wait()
        outputs[name] = lines
        dt = time.monotonic() - t0
        status.append([name, "ok" if rc == 0 else f"FAILED (exit {rc})", f"{dt:.0f} s"])
        crashed |= rc != 0
    print()
    print(table(["benchmark", "result", "took"], status, "Benchmarks run:"))
    rows = summary_rows(started)
    # bench_film_render.py (another engineer's) prints its figures; show its ratio lines here.
    for line in outputs.get("film_render", []):
        if "ratio" in line.lower() or "peak rss" in line.lower():
            rows.append(["film_render", line.strip(), "", ""])
    if rows:
        print()
        print(table(["measurement", "gateway", "peer (same run)", "ratio gateway/peer"], rows,
                    "Summary (throughput ratios > 1: the gateway is faster):"))
    print(f"\nJSON summaries in {CACHE}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
