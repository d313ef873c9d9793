"""bench/sync_shim.c, the LD_PRELOAD sync counter of bench_sync.py (issue 13): compiled here with the
bench's own command line, run under Python subprocesses whose sync calls are known, its JSON read.

No C compiler: skipped naming the Debian package gcc (a failure in CI, where it is installed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from peers import require

ROOT = Path(__file__).resolve().parents[2]

# 3 fsyncs and 2 fdatasyncs through Python's os module (libc's fsync/fdatasync), a sync_file_range
# and an msync(MS_SYNC) through libc's global symbols, as a program linked against libc calls them,
# and one fsync in a child process, which must not be counted (the shim is for one process only).
_CALLS = r"""
import ctypes, mmap, os, subprocess, sys
path = sys.argv[1]
fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
for _ in range(3):
    os.write(fd, b"x" * 4096); os.fsync(fd)
for _ in range(2):
    os.fdatasync(fd)
libc = ctypes.CDLL(None, use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
assert libc.sync_file_range(fd, 0, 0, 2) == 0, ctypes.get_errno()  # SYNC_FILE_RANGE_WRITE
m = mmap.mmap(fd, 4096)
m[0:1] = b"y"; m.flush(); m.close()  # msync(MS_SYNC)
os.close(fd)
child = "import os; fd = os.open(%r, os.O_RDONLY); os.fsync(fd); print(os.environ.get('LD_PRELOAD'))" % path
print("child LD_PRELOAD:", subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                                           check=True).stdout.strip())
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    cc = require("cc", "gcc")
    lib = tmp_path_factory.mktemp("shim") / "libsyncshim.so"
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(ROOT / "bench" / "sync_shim.c"), "-ldl"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return lib


def _env(lib: Path, out: Path, delay_us: int = 0) -> dict:
    return {**os.environ, "LD_PRELOAD": str(lib), "SYNC_SHIM_OUT": str(out), "SYNC_SHIM_DELAY_US": str(delay_us)}


def test_counts_each_call_of_this_process_only(shim, tmp_path):
    out = tmp_path / "counts.json"
    r = subprocess.run([sys.executable, "-c", _CALLS, str(tmp_path / "f")], env=_env(shim, out),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "child LD_PRELOAD: None" in r.stdout  # the child did not inherit the shim
    c = json.loads(out.read_text())
    assert c["written_at"] == "exit"
    assert (c["fsync"], c["fdatasync"], c["msync"], c["sync_file_range"]) == (3, 2, 1, 1)
    assert (c["syncfs"], c["sync"], c["msync_async"]) == (0, 0, 0)
    # sync_file_range is a write-behind hint, not a durability sync: not in "syncs"
    assert c["syncs"] == 3 + 2 + 1
    assert c["delay_ns"] == 0


def test_counts_written_when_sigterm_ends_the_process(shim, tmp_path):
    """A program that leaves SIGTERM at its default action still leaves its counts; it still dies
    of SIGTERM."""
    out = tmp_path / "counts.json"
    code = ("import os, signal, sys, time; fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o600); "
            "os.fsync(fd); os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f")], env=_env(shim, out), timeout=60)
    assert r.returncode == -signal.SIGTERM
    c = json.loads(out.read_text())
    assert (c["written_at"], c["fsync"], c["syncs"]) == ("sigterm", 1, 1)


def test_counts_written_after_a_handled_sigterm(shim, tmp_path):
    """The gateway's way: its own SIGTERM handler, then a normal exit; the destructor writes."""
    out = tmp_path / "counts.json"
    code = ("import os, signal, sys, threading; stop = threading.Event(); "
            "signal.signal(signal.SIGTERM, lambda *_: stop.set()); "
            "fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o600); os.fdatasync(fd); "
            "os.kill(os.getpid(), signal.SIGTERM); stop.wait(30); sys.exit(0 if stop.is_set() else 3)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f")], env=_env(shim, out), timeout=60)
    assert r.returncode == 0
    c = json.loads(out.read_text())
    assert (c["written_at"], c["fdatasync"], c["syncs"]) == ("exit", 1, 1)


def test_delay_is_added_after_each_fsync_and_fdatasync(shim, tmp_path):
    """SYNC_SHIM_DELAY_US sleeps after every fsync and fdatasync; the sleep the shim reports is at
    least what was asked (nanosleep does not return early), a bound that does not depend on the
    machine's speed."""
    out = tmp_path / "counts.json"
    code = ("import os, sys; fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o600); "
            "os.fsync(fd); os.fdatasync(fd); os.close(fd)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f")], env=_env(shim, out, delay_us=2000),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    c = json.loads(out.read_text())
    assert (c["delay_us"], c["syncs"]) == (2000, 2)
    assert c["delay_ns"] >= 2 * 2000 * 1000
