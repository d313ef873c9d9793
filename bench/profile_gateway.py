"""Run `dicom-gateway` (gateway.cli.main) under a profiler; dump the results when the service exits.

    python bench/profile_gateway.py --mode cprofile --out DIR -- run --config FILE
    python bench/profile_gateway.py --mode sample   --out DIR -- run --config FILE

The service stops on SIGTERM as usual (its own handler); the stats are written after main() returns.

cprofile: one cProfile.Profile per thread (timer: that thread's CPU time, --clock cpu; or wall time) (pynetdicom does its work in an Association thread and a
  DUL thread per association, not in the main thread), enabled in Thread._bootstrap_inner and
  collected when the thread ends; merged into DIR/cprofile.pstats plus a text report. Deterministic,
  CPU-heavy code is inflated by the profiler's per-call overhead.
sample: a wall-clock sampler that reads sys._current_frames() every --interval seconds (default
  2 ms) and counts, per thread kind, the leaf Python frame (file:line function) and the inclusive
  functions; shows where threads *wait* (the 1 ms polling sleeps) as well as where they compute.
  DIR/sample.json and DIR/sample.txt.

Experiments (bench-only monkeypatches, env BENCH_PATCH, comma-separated; the gateway's code is not
touched): `nofsync` (os.fsync and os.fdatasync are no-ops: the cost of durability, SQLite's own fsync aside), `sleep=F` (multiply the sleeps
inside pynetdicom's association/DUL/DIMSE modules by F, e.g. 0 or 0.1: the cost of its polling;
`sleep_assoc=F` / `sleep_dul=F`: only the association reactor's / only the DUL reactor's),
`recvbuf` (AssociationSocket.recv with recv_into a preallocated buffer instead of
pynetdicom's 4096-byte recv() calls appended to a bytearray).
"""

from __future__ import annotations

import argparse
import cProfile
import collections
import json
import os
import pstats
import signal
import sys
import threading
import time
import types
from pathlib import Path

# Not SIGUSR1: that is the service's operator wake-up (a queue verb), which it installs itself.
WINDOW_OPEN, WINDOW_CLOSE = signal.SIGRTMIN + 1, signal.SIGRTMIN + 2


def apply_patches(spec: str) -> list[str]:
    applied = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        if item == "nofsync":
            os.fsync = os.fdatasync = lambda fd: None
            applied.append(item)
        elif item.split("=", 1)[0] in ("sleep", "sleep_assoc", "sleep_dul"):
            which, factor = item.split("=", 1)
            factor = float(factor)
            real_sleep = time.sleep

            def sleep(s, _f=factor, _r=real_sleep):
                if s * _f > 0:
                    _r(s * _f)
                else:
                    _r(0)  # still yield the GIL

            shim = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("__")})
            shim.sleep = sleep
            import pynetdicom.association
            import pynetdicom.dimse
            import pynetdicom.dul
            mods = {"sleep": (pynetdicom.association, pynetdicom.dul, pynetdicom.dimse),
                    "sleep_assoc": (pynetdicom.association,), "sleep_dul": (pynetdicom.dul,)}[which]
            for mod in mods:
                if hasattr(mod, "time"):
                    mod.time = shim
            applied.append(item)
        elif item == "recvbuf":
            from pynetdicom.transport import AssociationSocket

            def recv(self, nr_bytes: int) -> bytearray:
                buf = bytearray(nr_bytes)
                view = memoryview(buf)
                got = 0
                while got < nr_bytes:
                    n = self.socket.recv_into(view[got:], nr_bytes - got)
                    if not n:  # closed: like pynetdicom, return what was read
                        return buf[:got]
                    got += n
                return buf

            AssociationSocket.recv = recv
            applied.append(item)
        else:
            raise SystemExit(f"unknown BENCH_PATCH item {item!r}")
    return applied


def _thread_kind(frame) -> str:
    """What the thread runs: the outermost function under Thread._bootstrap_inner / Thread.run
    (Association.run_reactor, DULServiceProvider.run_reactor, ...), or 'main'."""
    chain = []
    f = frame
    while f is not None:
        chain.append(getattr(f.f_code, "co_qualname", f.f_code.co_name))
        f = f.f_back
    chain.reverse()  # root first
    if "Thread._bootstrap_inner" not in chain:
        return "main"
    rest = chain[chain.index("Thread._bootstrap_inner") + 1:]
    rest = [n for n in rest if n not in ("Thread.run", "Association.run", "DULServiceProvider.run")] or rest
    return rest[0] if rest else "thread"


def _label(code, lineno: int | None = None) -> str:
    name = getattr(code, "co_qualname", code.co_name)
    path = code.co_filename
    for marker in ("site-packages/", "/work/main/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path}{':' + str(lineno) if lineno else ''})"


class Sampler(threading.Thread):
    def __init__(self, interval: float, window: threading.Event):
        super().__init__(name="bench-sampler", daemon=True)
        self.interval = interval
        self.leaf: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.incl: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.totals: collections.Counter = collections.Counter()
        self.halt = threading.Event()
        self.window = window
        # Unbiased CPU per thread, from /proc/self/task/<tid>/stat (first and last reading in the
        # window): the stack samples are biased towards points where threads release the GIL.
        self.cpu_first: dict[str, float] = {}
        self.cpu_last: dict[str, float] = {}

    def run(self) -> None:
        me = threading.get_ident()
        names: dict[int, str] = {}
        per_kind: collections.Counter = collections.Counter()
        tick = os.sysconf("SC_CLK_TCK")
        n = 0
        while not self.halt.is_set():
            if not self.window.wait(0.1):
                continue
            frames = sys._current_frames()
            n += 1
            if n % 10 == 1:
                for t in threading.enumerate():
                    name = names.get(t.ident)
                    if name is None or t.native_id is None:
                        continue
                    try:
                        with open(f"/proc/self/task/{t.native_id}/stat") as fh:
                            f = fh.read().rsplit(")", 1)[1].split()
                        cpu = (int(f[11]) + int(f[12])) / tick
                    except (OSError, IndexError, ValueError):
                        continue
                    self.cpu_first.setdefault(name, cpu)
                    self.cpu_last[name] = cpu
            for tid in [t for t in names if t not in frames]:
                del names[tid]  # thread ended: its ident may be reused by a new thread
            for tid, frame in frames.items():
                if tid == me:
                    continue
                if tid not in names:  # one line per thread: Association.run_reactor#1, #2...
                    base = _thread_kind(frame)
                    per_kind[base] += 1
                    names[tid] = f"{base}#{per_kind[base]}"
                kind = names[tid]
                self.totals[kind] += 1
                self.leaf[kind][_label(frame.f_code, frame.f_lineno)] += 1
                seen = set()
                f = frame
                while f is not None:
                    lab = _label(f.f_code)
                    if lab not in seen:
                        seen.add(lab)
                        self.incl[kind][lab] += 1
                    f = f.f_back
            time.sleep(self.interval)

    def dump(self, out: Path) -> None:
        cpu = {k: round(self.cpu_last[k] - self.cpu_first.get(k, 0.0), 3) for k in self.cpu_last}
        data = {"interval_s": self.interval, "totals": dict(self.totals), "cpu_s_by_thread": cpu,
                "leaf": {k: dict(v.most_common(60)) for k, v in self.leaf.items()},
                "inclusive": {k: dict(v.most_common(80)) for k, v in self.incl.items()}}
        (out / "sample.json").write_text(json.dumps(data, indent=1))
        lines = ["CPU seconds by thread (from /proc, window only): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))]
        for kind, n in self.totals.most_common():
            lines.append(f"== thread kind {kind}: {n} samples (wall time share within this kind)")
            lines.append("  leaf frames:")
            for lab, c in self.leaf[kind].most_common(15):
                lines.append(f"    {100 * c / n:5.1f}%  {lab}")
            lines.append("  inclusive:")
            for lab, c in self.incl[kind].most_common(25):
                lines.append(f"    {100 * c / n:5.1f}%  {lab}")
        (out / "sample.txt").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["cprofile", "sample", "none"], default="cprofile")
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.002)
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="cprofile timer: per-thread CPU time (time.thread_time) or wall time")
    ap.add_argument("--always", action="store_true", help="profile from start, not SIGRTMIN+1..SIGRTMIN+2")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    applied = apply_patches(os.environ.get("BENCH_PATCH", ""))
    (out / "patches.json").write_text(json.dumps(applied))

    from gateway import cli

    # Profile only between SIGRTMIN+1 and SIGRTMIN+2 (the bench sends them around the storescu run), so
    # start-up imports and idle time do not dilute the figures. --always: from start to exit.
    window = threading.Event()
    if args.always:
        window.set()
    signal.signal(WINDOW_OPEN, lambda *_: window.set())
    signal.signal(WINDOW_CLOSE, lambda *_: window.clear())

    profiles: list[tuple[str, cProfile.Profile]] = []
    lock = threading.Lock()
    sampler = None
    if args.mode == "cprofile":
        original = threading.Thread._bootstrap_inner
        timer = time.thread_time if args.clock == "cpu" else time.perf_counter

        def bootstrap_inner(self):
            # Threads started inside the window (the association's) are profiled from start to end.
            if not window.is_set():
                return original(self)
            p = cProfile.Profile(timer)
            p.enable()
            try:
                original(self)
            finally:
                p.disable()
                with lock:
                    profiles.append((type(self).__name__, p))

        threading.Thread._bootstrap_inner = bootstrap_inner
        main_prof = cProfile.Profile(timer)  # the main thread only waits; profiled with --always
        if args.always:
            main_prof.enable()
    elif args.mode == "sample":
        sampler = Sampler(args.interval, window)
        sampler.start()
    rc = 1
    try:
        rc = cli.main(rest)
    finally:
        if args.mode == "cprofile":
            main_prof.disable()
            with lock:
                done = list(profiles)
            kinds = collections.Counter(k for k, _ in done)
            profs = ([main_prof] if args.always else []) + [p for _, p in done]
            if not profs:
                (out / "cprofile.txt").write_text("no thread was profiled (no SIGRTMIN+1 window?)\n")
            else:
                stats = pstats.Stats(profs[0])
                for p in profs[1:]:
                    stats.add(p)
                stats.dump_stats(str(out / "cprofile.pstats"))
                with open(out / "cprofile.txt", "w") as fh:
                    fh.write(f"threads profiled (finished): {dict(kinds)}\n")
                    s = pstats.Stats(str(out / "cprofile.pstats"), stream=fh)
                    s.sort_stats("tottime").print_stats(40)
                    s.sort_stats("cumulative").print_stats(60)
        elif sampler is not None:
            sampler.halt.set()
            sampler.join(2)
            sampler.dump(out)
    return rc


if __name__ == "__main__":
    sys.exit(main())
