"""MemoryDenyWriteExecute=yes in the unit: the service works without writable-and-executable memory.

There is no systemd (PID 1) here to apply the unit, so the test applies the same seccomp filter
systemd installs for MemoryDenyWriteExecute= (src/shared/seccomp-util.c,
seccomp_memory_deny_write_execute: mmap with PROT_WRITE|PROT_EXEC, mprotect/pkey_mprotect adding
PROT_EXEC and shmat with SHM_EXEC fail with EPERM) through libseccomp's Python binding, then execs
the venv's Python under it (a seccomp filter survives execve):
- the filter is really on (a W+X mmap fails);
- the imports and the decoders the gateway uses (numpy, pydicom with Pillow, pylibjpeg's libjpeg
  and openjpeg) run;
- the real `dicom-gateway run` accepts, stores and answers an echo under it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from peers import ROOT, require, wait_port

pytestmark = [pytest.mark.interop]

SYSTEM_PYTHON = "/usr/bin/python3"

# Runs under Debian's python3 (python3-seccomp is built for it, not for the venv's Python).
MDWE_EXEC = textwrap.dedent("""\
    import errno, mmap, os, sys
    import seccomp

    EPERM = seccomp.ERRNO(errno.EPERM)
    WX = mmap.PROT_WRITE | mmap.PROT_EXEC
    SHM_EXEC = 0o100000
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    f.add_rule(EPERM, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, WX, WX))
    for name in ("mprotect", "pkey_mprotect"):
        f.add_rule(EPERM, name, seccomp.Arg(2, seccomp.MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC))
    f.add_rule(EPERM, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
    f.load()
    os.execv(sys.argv[1], sys.argv[1:])
""")

WORKLOAD = textwrap.dedent("""\
    import mmap, pathlib
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        print("W+X mmap allowed")
    except PermissionError:
        print("W+X mmap refused")
    import numpy, pydicom
    import gateway.app, gateway.cli, drivers.registry  # the service's import graph
    files = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"
    for name in ("CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "GDCMJ2K_TextGBR.dcm"):
        px = pydicom.dcmread(files / name).pixel_array
        print(name, px.shape, int(px.astype(numpy.int64).sum()))
    print("matmul", float((numpy.ones((256, 256)) @ numpy.ones((256, 256))).sum()))
    print("done")
""")


def _mdwe_prefix(tmp_path: Path) -> list[str]:
    if not Path(SYSTEM_PYTHON).exists() or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True, timeout=30).returncode != 0:
        msg = ("needs libseccomp's Python binding for /usr/bin/python3 from the Debian package "
               "python3-seccomp (apt-get install python3-seccomp)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    script = tmp_path / "mdwe_exec.py"
    script.write_text(MDWE_EXEC)
    return [SYSTEM_PYTHON, str(script)]


def test_decoders_and_imports_work_without_writable_executable_memory(tmp_path):
    proc = subprocess.run([*_mdwe_prefix(tmp_path), sys.executable, "-c", WORKLOAD], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'hw-sim'}"),
                          capture_output=True, text=True, timeout=300)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "W+X mmap refused", "the filter is not on: this test would prove nothing"
    assert lines[-1] == "done"


def test_the_service_stores_under_memory_deny_write_execute(tmp_path, gateway_factory):
    storescu = require("storescu", "dcmtk")
    echoscu = require("echoscu", "dcmtk")
    import pydicom

    gw = gateway_factory({"logging": {"journald": "off"}}, name="gw", start=False)
    log = open(gw.log_path, "ab")
    gw.proc = subprocess.Popen([*_mdwe_prefix(tmp_path), sys.executable, "-m", "gateway.cli", "run",
                                "--config", str(gw.config_path)],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    wait_port(gw.port, 60, gw.proc)
    ct = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    r = subprocess.run([storescu, "-v", "-aet", "STORESCU", "-aec", "EDGE", "127.0.0.1", str(gw.port), str(ct)],
                       capture_output=True, text=True, timeout=60)
    assert "(Success)" in r.stderr + r.stdout, r.stderr[-2000:]
    r = subprocess.run([echoscu, "-aet", "ECHOSCU", "-aec", "EDGE", "127.0.0.1", str(gw.port)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    stored = list((gw.buffer / "objects").rglob("*.dcm"))
    assert len(stored) == 1
    assert pydicom.dcmread(stored[0]).SOPInstanceUID == pydicom.dcmread(ct).SOPInstanceUID
    assert gw.stop(60) == 0, gw.log[-3000:]
    assert "Traceback" not in gw.log, gw.log[-3000:]
