"""Observers: what the status page, metrics and the front panel cost a C-STORE (issue 9, `make bench`).

The CT set of bench_ingest.py, 2,500 objects of it (× 0.53 MB: a run of about 6 s, where the 500
of bench_ingest.py took about 1.2 s, too short for a 3 % effect: the pairs spread from 0.88 to
1.11), sent by the same tuned storescu over one association, into the gateway in two
configurations, runs interleaved in one process of this script (bare, observed, observed, bare, ...: a drift of the shared machine falls on both):

  observed  status_http enabled (aiohttp server, the metrics observer folding every event, the
            state snapshot it reads), the front panel running ([panel] kind "sim": the panel logic,
            the real LED, display and button drivers on hw-sim's simulated panel), and a client process
            (bench/observer_client.py) holding the status page's Server-Sent Events stream open on
            /events and scraping /metrics every second, connected before the first C-STORE.
  bare      status_http.enabled = false, panel.enabled = false, no client. The state snapshot runs in both: it
            is the service's own (STATUS=, `dicom-gateway status`), not an observer one can turn off.

Both are `dicom-gateway run`, started the same way. The client is an http.client SSE reader, not headless Chromium: the browser's
own CPU on this 2-core box would be charged to the gateway's figure, while on the appliance the
browser runs on another machine; what the gateway pays for a connected page is the stream, which
the reader holds like EventSource does.

Per run: wall time of the storescu run, images/s, the gateway's CPU seconds (utime+stime) per GB
and its peak RSS (VmHWM, read after the last C-STORE, before the stop); for observed runs the
client's SSE events and scrapes (a run whose client got nothing is flagged). Medians of
BENCH_REPEAT runs per configuration; ratio = observed images/s / bare images/s (target >= 0.97),
and the same ratio for each interleaved pair, to show the spread. Beside it, cpu_ratio = bare CPU
s/GB / observed CPU s/GB: the share of the gateway's own CPU the observers take, which other
processes on a shared machine disturb far less than wall time (they take cores and the disk away
from both configurations, but do not add to the gateway's utime+stime); 10 ms ticks over ~1 s of
CPU per run: +-1 %.

Last, in this process and on no network: the observers' direct CPU per event and per refresh
(time.process_time over thousands of calls): publish to the three subscribers, the metrics, state
and panel folds of one "received", a panel render (tick, LEDs, lines), a /metrics exposition and a
status document. These do not depend on the machine's other load and bound what a C-STORE can pay
directly; the interleaved runs show what it pays with threads, wake-ups and the GIL included.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import (BENCH, GATEWAY_AE, GB, MB, PY, REPEAT, ROOT, SCALE, Proc, cpu_seconds, drop_dirty,  # noqa: E402
                    free_port, gateway_config, interleaved_runs, median, ratio, rmtree, scratch, status_kb, storescu,
                    table, wait_port, warm, write_summary, write_toml)

MODES = ("bare", "observed")
TARGET = 0.97
SCRAPE_S = 1.0
OBJECTS = 2500


def start(work: Path, mode: str) -> tuple[Proc, Proc | None, int]:
    """The gateway (and, observed, its client), ready: the DICOM port listening, the client's
    stream open. Returns (gateway, client or None, DICOM port)."""
    port, http = free_port(), free_port()
    cfg = gateway_config(work, port)
    observed = mode == "observed"
    cfg["status_http"] = {"enabled": True, "port": http} if observed else {"enabled": False}
    cfg["panel"] = {"enabled": True, "kind": "sim", "sim_dir": str(work / "panel")} if observed else {"enabled": False}
    write_toml(work / "gateway.toml", cfg)
    gw = Proc([PY, "-m", "gateway.cli", "run", "--config", str(work / "gateway.toml")],
              work / "gateway.log", cwd=ROOT)
    client = None
    try:
        wait_port(port, 60, gw.proc)
        if mode == "observed":
            wait_port(http, 30, gw.proc)
            client = Proc([PY, str(BENCH / "observer_client.py"), f"http://127.0.0.1:{http}/",
                           "--scrape-s", str(SCRAPE_S)], work / "client.log")
            time.sleep(1.5)  # the stream open, its first event and the first scrape done
    except BaseException:
        if client is not None:
            client.stop()
        gw.stop()
        raise RuntimeError(f"the gateway did not start; log:\n{gw.log_tail(2000)}") from None
    return gw, client, port


def run_once(mode: str, files: list[Path], nbytes: int) -> dict:
    drop_dirty()
    work = scratch(f"observers-{mode}-")
    gw, client, port = start(work, mode)
    try:
        time.sleep(0.2)  # let the service settle (threads, imports) before the CPU reading
        cpu0 = cpu_seconds(gw.pid)
        r = storescu(port, files, aec=GATEWAY_AE, log=work / "storescu.log")
        cpu1 = cpu_seconds(gw.pid)
        peak_kb = status_kb(gw.pid, "VmHWM")
        received = sum(1 for _ in (work / "buffer" / "objects").rglob("*.dcm"))
    finally:
        seen: dict = {}
        if client is not None:
            client.stop()
            try:
                seen = json.loads(client.log_tail().strip().splitlines()[-1])
            except (IndexError, ValueError):
                seen = {"error": client.log_tail(500)}
        gw.stop()
        panel_line = next((ln for ln in gw.log_tail(20000).splitlines() if "front panel not started" in ln), "")
        if gw.proc.returncode not in (0, None):
            print(gw.log_tail(), file=sys.stderr)
        rmtree(work)
    wall = r["wall_s"]
    out = {"mode": mode, "objects": len(files), "bytes": nbytes, "received": received, "rc": r["rc"],
           "errors": r["errors"], "wall_s": wall, "img_s": len(files) / wall, "mb_s": nbytes / MB / wall,
           "gw_cpu_s": cpu1 - cpu0, "gw_cpu_s_per_gb": (cpu1 - cpu0) / (nbytes / GB), "peak_rss_mb": peak_kb / 1024,
           "client": seen, "panel": panel_line}
    if received != len(files) or r["rc"] != 0:
        print(f"    WARNING: {mode} received {received}/{len(files)} (storescu rc {r['rc']}) {r['errors']}", flush=True)
    if mode == "observed" and (not seen.get("sse_events") or not seen.get("scrapes")):
        print(f"    WARNING: the observer client saw nothing: {seen}", flush=True)
    return out


class _Commands:
    """The panel's operator verbs, never called here (no button is pressed)."""

    def export(self, *args, **kw):
        raise AssertionError("no button is pressed in the bench")

    eject = export


def fold_costs(n: int = 5000) -> dict[str, float]:
    """Microseconds of this process's CPU per call, for the observers' own work (see the module
    docstring)."""
    import tempfile

    from gateway.event_kinds import Received
    from gateway.events import EventBus
    from gateway.panel import Panel
    from gateway.panel.display import encode_a00
    from gateway.state import StateObserver
    from gateway.status import view
    from gateway.status.metrics import exposition, new_registry

    def per_call(fn, count: int) -> float:
        t0 = time.process_time()
        for _ in range(count):
            fn()
        return (time.process_time() - t0) / count * 1e6

    with tempfile.TemporaryDirectory() as tmp:
        bus = EventBus()
        state = StateObserver(bus, Path(tmp), ["pacs"])
        registry, metrics = new_registry(bus, state.get_status)
        panel = Panel(_Commands())
        sub = bus.subscribe(maxsize=n + 10)  # where the panel's loop would read
        payload = Received(sop_uid="1.2.3", calling_ae="BENCHSCU", source="AE:BENCHSCU", outcome="stored",
                           routes=("pacs",), bytes=526_000, seconds=0.004)
        out = {"publish (state, metrics, panel subscribed)": per_call(lambda: bus.publish(payload), n)}
        ev = sub.get_nowait()
        out["metrics fold"] = per_call(lambda: metrics.apply(ev), n)
        out["state fold"] = per_call(lambda: state.apply(ev), n)
        out["panel fold"] = per_call(lambda: panel.apply(ev), n)

        def render():
            panel.tick()
            panel.leds()
            for line in panel.lines():
                encode_a00(line)
        out["panel render (10 a second)"] = per_call(render, n // 10)
        out["/metrics exposition (1 a second)"] = per_call(lambda: exposition(registry), 200)
        out["status document (SSE, <= 2 a second)"] = per_call(lambda: view.build(state.get_status(), None, None), 200)
        metrics.stop()
        state.events.unsubscribe(state._sub)
    return out


def main() -> int:
    print(f"== observers (BENCH_SCALE={SCALE}, {REPEAT} interleaved runs per configuration)", flush=True)
    files = datasets.files("ct", datasets.scaled(OBJECTS))
    nbytes = datasets.total_bytes(files)
    warm(files)
    print(f"  CT: {len(files)} objects, {nbytes / MB:.0f} MB", flush=True)
    def describe(mode: str, r: dict) -> str:
        if mode != "observed":
            return ""
        c = r["client"]
        return (f", client: {c.get('sse_events', 0)} SSE events, {c.get('scrapes', 0)} scrapes"
                f" ({c.get('scrapes_failed', 0)} failed); {r['panel'] or 'panel: no report'}")

    runs = interleaved_runs(MODES, REPEAT, lambda mode: run_once(mode, files, nbytes), describe)
    keys = ("wall_s", "img_s", "mb_s", "gw_cpu_s", "gw_cpu_s_per_gb", "peak_rss_mb")
    summary = {m: {k: median([r[k] for r in runs[m]]) for k in keys} for m in MODES}
    pairs = [ratio(o["img_s"], b["img_s"]) for o, b in zip(runs["observed"], runs["bare"])]
    cpu_pairs = [ratio(b["gw_cpu_s_per_gb"], o["gw_cpu_s_per_gb"]) for o, b in zip(runs["observed"], runs["bare"])]
    result = {
        "objects": len(files), "bytes": nbytes, "target": TARGET, "scrape_s": SCRAPE_S,
        "client": "http.client SSE reader + /metrics scraper (bench/observer_client.py), not a browser",
        "panel": "[panel] kind sim: the service's panel runner, logic and real drivers on hw-sim's panel",
        "load": os.getloadavg(),
        "summary": summary,
        "ratio": ratio(summary["observed"]["img_s"], summary["bare"]["img_s"]),
        "pair_ratios": pairs,
        "cpu_ratio": ratio(summary["bare"]["gw_cpu_s_per_gb"], summary["observed"]["gw_cpu_s_per_gb"]),
        "cpu_pair_ratios": cpu_pairs,
        "runs": runs,
    }
    rows = [[m, summary[m]["wall_s"], summary[m]["img_s"], summary[m]["mb_s"], summary[m]["gw_cpu_s_per_gb"],
             summary[m]["peak_rss_mb"]] for m in MODES]
    print()
    print(table(["CT into the gateway", "wall s", "img/s", "MB/s", "gateway CPU s/GB", "peak RSS MB"], rows,
                f"Observers on vs off, tuned storescu, median of {REPEAT} interleaved runs:"))
    print()
    verdict = "meets" if result["ratio"] >= TARGET else "BELOW"
    print(f"ratio observed/bare images/s = {result['ratio']:.3f} ({verdict} the target >= {TARGET}); "
          f"per pair: {', '.join(f'{p:.3f}' for p in pairs)}")
    print(f"cpu_ratio bare/observed gateway CPU s per GB = {result['cpu_ratio']:.3f}; "
          f"per pair: {', '.join(f'{p:.3f}' for p in cpu_pairs)}")
    print(f"load average at the end (the machine is shared): {', '.join(f'{x:.2f}' for x in result['load'])}")
    result["fold_costs_us"] = costs = fold_costs()
    per_cstore = sum(v for k, v in costs.items() if "fold" in k or "publish" in k)
    print()
    print(table(["observers' own work", "CPU us per call"], [[k, v] for k, v in costs.items()],
                "Direct CPU cost, in this process (independent of the machine's other load):"))
    print(f"per C-STORE (publish + three folds): {per_cstore:.0f} us, "
          f"{100 * per_cstore / 1e6 / (summary['bare']['gw_cpu_s'] / len(files)):.1f} % of a bare C-STORE's "
          f"gateway CPU ({1e6 * summary['bare']['gw_cpu_s'] / len(files):.0f} us)")
    path = write_summary("observers", result)
    print(f"\nsummary: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
