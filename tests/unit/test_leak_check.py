"""The run's last check fails a run that leaves a process behind, and kills the process.

A nested pytest run (its own token, not this run's) whose only test starts `sleep` in a new session
and forgets it: the nested run must exit non-zero, name the process, and the sleep must be gone.
The same run without the leak passes, so the check is not failing everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent

LEAKY = """
import subprocess
from pathlib import Path

def test_forgets_a_peer(tmp_path):
    p = subprocess.Popen(["sleep", "300"], start_new_session=True)
    Path({pidfile!r}).write_text(str(p.pid))
"""

TIDY = """
import subprocess

def test_stops_its_peer():
    p = subprocess.Popen(["sleep", "300"], start_new_session=True)
    p.kill()
    p.wait()
"""


def _nested_run(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from leak_check import pytest_configure, pytest_sessionfinish  # noqa: F401
    """))
    (tmp_path / "test_nested.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "DICOM_GATEWAY_TEST_RUN"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.timeout(150)
def test_a_leaked_process_fails_the_run_and_is_killed(tmp_path):
    pidfile = tmp_path / "leaked.pid"
    r = _nested_run(tmp_path, LEAKY.format(pidfile=str(pidfile)))
    out = r.stdout + r.stderr
    pid = int(pidfile.read_text())
    try:
        assert r.returncode != 0, out
        assert "outlived them" in out and f"pid {pid}" in out and "sleep 300" in out, out
        assert not _alive(pid), "the leaked process is still running"
    finally:
        if _alive(pid):
            os.kill(pid, 9)


@pytest.mark.timeout(150)
def test_a_tidy_run_passes(tmp_path):
    r = _nested_run(tmp_path, TIDY)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "outlived" not in r.stdout
