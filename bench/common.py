"""Shared plumbing for the benchmarks: sizes, cache folder, peers (DCMTK, the gateway), /proc readings.

Everything binds to 127.0.0.1. Nothing here asserts: the benchmarks measure and print.

Environment:
  BENCH_SCALE   multiplies object counts and the memory object's size (default 1.0 = full sizes)
  BENCH_REPEAT  runs per measurement; the median is reported (default 3; stock/Nagle runs: 1)
  BENCH_CACHE   cache folder (default bench/.cache): generated data, JSON summaries, scratch dirs
  BENCH_KEEP    keep scratch folders and logs of the last run (default: removed)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = ROOT / ".venv" / "bin"
PY = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
GATEWAY_EXE = str(VENV_BIN / "dicom-gateway")
CACHE = Path(os.environ.get("BENCH_CACHE", BENCH / ".cache")).resolve()
SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
KEEP = bool(os.environ.get("BENCH_KEEP"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1_000_000  # throughput in decimal MB/s and CPU s per decimal GB
GB = 1_000_000_000

# The AE titles the benchmarks use.
SENDER_AE = "BENCHSCU"
GATEWAY_AE = "EDGE"
STORESCP_AE = "STORESCP"

# DCMTK 3.6.7 reads TCP_NODELAY from the environment (Debian builds it with that switch but
# leaves Nagle on unless the variable is set): "tuned" peers get it, "stock" peers do not.
TUNED_ENV = {"TCP_NODELAY": "1"}
STOCK_ENV: dict[str, str] = {}
PDU = 131072


def _env(tuned: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TCP_NODELAY", None)  # stock means stock, whatever the caller's shell exports
    return {**env, **(TUNED_ENV if tuned else STOCK_ENV)}


def scaled(n: int) -> int:
    return max(1, round(n * SCALE))


def scratch(prefix: str) -> Path:
    (CACHE / "scratch").mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=CACHE / "scratch"))


def rmtree(path: Path) -> None:
    if not KEEP:
        shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Is something listening on 127.0.0.1:port? Read from /proc/net/tcp, without connecting: a
    probe connection would leave the gateway an association thread (and a DUL thread polling every
    1 ms) waiting handshake_s for an A-ASSOCIATE-RQ, in the middle of the measurement."""
    # 127.0.0.1 or 0.0.0.0 (DCMTK 3.6.7's storescp has no bind option: it listens on every
    # address; the benchmarks only ever connect to 127.0.0.1).
    want = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    for table_ in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table_) as fh:
                next(fh)
                for line in fh:
                    f = line.split()
                    if f[3] == "0A" and (f[1] in want or f[1].endswith(f":{port:04X}")):  # 0A: LISTEN
                        return True
        except (OSError, StopIteration):
            pass
    return False


def wait_port(port: int, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before opening port {port}")
        if listening(port):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise SystemExit(f"bench needs {tool} (Debian package dcmtk: apt-get install dcmtk)")
    return path


# -- /proc readings ------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # after the ")": state is field 3; utime and stime are fields 14 and 15 (1-based in proc(5))
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    """A kB figure from /proc/<pid>/status (VmHWM, VmRSS...)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs). False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# -- peers ---------------------------------------------------------------------------------------

class Proc:
    """A peer process in its own session, stopped with SIGTERM (then SIGKILL) by its pid."""

    def __init__(self, argv: list[str], log: Path, env: dict | None = None, cwd: Path | None = None,
                 replace_env: bool = False):
        self.argv, self.log_path = argv, log
        fh = open(log, "ab")
        self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=env if replace_env else {**os.environ, **(env or {})}, cwd=cwd)
        fh.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def start_storescp(workdir: Path, port: int, tuned: bool = True, extra: list[str] | None = None) -> Proc:
    """DCMTK storescp, one process (no --fork), writing into workdir/out.

    tuned: 128 KB max PDU, bit-preserving (received bytes streamed straight to the file, no
    re-encoding), TCP_NODELAY=1. stock: `storescp -od DIR PORT` exactly as packaged."""
    out = workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    argv = [need("storescp"), "-aet", STORESCP_AE, "-od", str(out)]
    if tuned:
        argv += ["--max-pdu", str(PDU), "+B"]
    argv += (extra or []) + [str(port)]
    p = Proc(argv, workdir / "storescp.log", env=_env(tuned), replace_env=True)
    try:
        wait_port(port, 30, p.proc)
    except (RuntimeError, TimeoutError):
        p.stop()  # never leave a listener behind
        raise
    return p


def write_toml(path: Path, data: dict) -> None:
    with open(path, "wb") as fh:
        tomli_w.dump(data, fh)


def gateway_config(workdir: Path, port: int, *, destinations: dict | None = None, nodelay: bool = True,
                   max_pdu: int = PDU, level: str = "WARNING") -> dict:
    cfg = {
        "ae": {"title": GATEWAY_AE, "bind": "127.0.0.1", "port": port, "max_pdu": max_pdu,
               "tcp_nodelay": nodelay},
        "buffer": {"path": str(workdir / "buffer"), "reserve_mb": 0},
        "logging": {"level": level, "journald": "off"},
        "peers": {"bench": {"ae_title": SENDER_AE, "may_store": True}},
    }
    if destinations:
        cfg["destinations"] = destinations
    return cfg


def start_gateway(workdir: Path, config: dict, profile: str | None = None,
                  env: dict | None = None) -> Proc:
    """The real service, `dicom-gateway run --config FILE`, on config['ae']['port'].

    profile: None, or a mode of bench/profile_gateway.py ('cprofile' or 'sample') to run the same
    service under a profiler that dumps its stats into workdir on SIGTERM."""
    cfg_path = workdir / "gateway.toml"
    write_toml(cfg_path, config)
    if profile:
        argv = [PY, str(BENCH / "profile_gateway.py"), "--mode", profile, "--out", str(workdir / "profile"),
                "--", "run", "--config", str(cfg_path)]
    else:
        argv = [GATEWAY_EXE, "run", "--config", str(cfg_path)]
    p = Proc(argv, workdir / "gateway.log", env=env, cwd=ROOT)
    try:
        wait_port(config["ae"]["port"], 60, p.proc)
    except (RuntimeError, TimeoutError) as exc:
        p.stop()
        raise RuntimeError(f"{exc}; gateway log:\n{p.log_tail(2000)}") from None
    return p


def storescu(port: int, files: list[Path], *, aec: str, tuned: bool = True, timeout: float = 3600,
             log: Path | None = None) -> dict:
    """One storescu run, one association, all files. Returns wall seconds and the sender's CPU."""
    argv = [need("storescu"), "-aet", SENDER_AE, "-aec", aec]
    if tuned:
        argv += ["-xe", "--max-pdu", str(PDU), "--max-send-pdu", str(PDU)]
    argv += ["127.0.0.1", str(port)] + [str(f) for f in files]
    env = _env(tuned)
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if log is not None:
        log.write_text(r.stdout + r.stderr)
    errors = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith(("E:", "F:"))]
    return {"wall_s": wall, "rc": r.returncode, "errors": errors[:5],
            "sender_cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def storescu_concurrent(port: int, groups: list[list[Path]], *, aec: str, tuned: bool = True,
                        timeout: float = 3600, logs: list[Path] | None = None) -> dict:
    """len(groups) storescu processes started together, one association each, group i's files on
    association i (storescu's own options as in storescu()). wall_s runs from before the first start
    to the last exit; rc is the first non-zero exit status (0: all 0), errors the first E:/F: lines of each."""
    argv0 = [need("storescu"), "-aet", SENDER_AE, "-aec", aec]
    if tuned:
        argv0 += ["-xe", "--max-pdu", str(PDU), "--max-send-pdu", str(PDU)]
    env = _env(tuned)
    procs: list[subprocess.Popen] = []
    # Output to files, not pipes: a pipe read only after another sender exits could fill and stall it.
    sinks = [tempfile.TemporaryFile() for _ in groups]
    t0 = time.perf_counter()
    try:
        for files, sink in zip(groups, sinks):
            procs.append(subprocess.Popen(argv0 + ["127.0.0.1", str(port)] + [str(f) for f in files],
                                          stdout=sink, stderr=subprocess.STDOUT, env=env))
        deadline = time.monotonic() + timeout
        for p in procs:
            p.wait(max(0.0, deadline - time.monotonic()))
        wall = time.perf_counter() - t0
    finally:
        for p in procs:  # never leave a sender behind (a timeout, ^C)
            if p.poll() is None:
                p.kill()
                p.wait(10)
    outs = []
    for sink in sinks:
        sink.seek(0)
        outs.append(sink.read().decode(errors="replace"))
        sink.close()
    errors: list[str] = []
    for i, out in enumerate(outs):
        if logs is not None:
            logs[i].write_text(out)
        errors += [f"association {i + 1}: {ln}" for ln in out.splitlines() if ln.startswith(("E:", "F:"))][:3]
    return {"wall_s": wall, "rc": next((p.returncode for p in procs if p.returncode), 0), "errors": errors}


def warm(files: list[Path]) -> None:
    """Read the files once so every run starts with them in the page cache."""
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(8 << 20):
                pass


def drop_dirty() -> None:
    """Flush dirty pages so one run's write-back does not land in the next run's timing."""
    os.sync()


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def interleaved_runs(modes: tuple[str, str], pairs: int, run, describe=None) -> dict[str, list[dict]]:
    """Runs of two configurations, interleaved (a, b, b, a, a, b, ...: a drift of the shared machine
    falls on both), `pairs` of each. run(mode) -> a dict with at least wall_s, img_s,
    gw_cpu_s_per_gb and peak_rss_mb; describe(mode, r) -> extra text for its progress line."""
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    width = max(len(m) for m in modes)
    for i in range(pairs):
        for mode in (modes if i % 2 == 0 else modes[::-1]):
            r = run(mode)
            runs[mode].append(r)
            extra = describe(mode, r) if describe else ""
            print(f"    {mode:{width}} run {i + 1}/{pairs}: {r['wall_s']:.2f} s, {r['img_s']:.1f} img/s, "
                  f"{r['gw_cpu_s_per_gb']:.1f} CPU s/GB, peak RSS {r['peak_rss_mb']:.0f} MB{extra}", flush=True)
    return runs


# -- output --------------------------------------------------------------------------------------

def table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    out = []
    if title:
        out.append(title)
    out.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    out.append("  ".join("-" * w for w in widths))
    for r in cells:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "n/a"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    return str(v)


def git_state() -> dict:
    """Which code was measured: other people edit gateway/ while benchmarks run."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD"),
            "dirty": [ln for ln in git("status", "--porcelain", "--", "gateway").splitlines()]}


def write_summary(name: str, data: dict) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}.json"
    data = {"bench": name, "scale": SCALE, "repeat": REPEAT, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "host": {"cpus": os.cpu_count(), "kernel": os.uname().release}, "code": git_state(), **data}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
