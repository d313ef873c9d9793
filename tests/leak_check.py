"""The run's last check: no process that the suite started outlives it.

Fixtures stop what they start, but a worker killed by a timeout, an interrupted run or a test that
forgot a Popen leaves peers behind (an Orthanc from a crash test was once found running an hour
after `make test`). So the controller marks its environment with a per-run token before any worker
or peer is started; every process of the run inherits it. When the session ends, any process still
carrying the token — other than pytest itself and its xdist workers — is a leak: it is killed, named
in the report, and the run fails.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

TOKEN_VAR = "DICOM_GATEWAY_TEST_RUN"


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone, or not ours to read
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _is_pytest_itself(pid: int) -> bool:
    cmd = _cmdline(pid)
    # The controller and xdist's workers (execnet bootstraps them with `-c "...exec(eval(...))"`).
    return "pytest" in cmd or "exec(eval(" in cmd or "execnet" in cmd


def leftover_processes(token: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes that carry the run's token, pytest itself excluded."""
    needle = f"{TOKEN_VAR}={token}".encode()
    me = os.getpid()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me or not _environ_has(pid, needle) or _is_pytest_itself(pid):
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state == "Z":  # exited, waiting to be reaped by a parent that is itself going away
            continue
        out.append((pid, _cmdline(pid)))
    return out


def pytest_configure(config) -> None:
    # Only the controller makes the token; workers inherit it with the environment.
    if TOKEN_VAR not in os.environ:
        os.environ[TOKEN_VAR] = uuid.uuid4().hex


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller checks once everything has ended
    token = os.environ.get(TOKEN_VAR)
    if not token:
        return
    deadline = time.monotonic() + 10  # finalizers of the last tests may still be stopping peers
    left = leftover_processes(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = leftover_processes(token)
    if not left:
        return
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(left)} process(es) started by the tests outlived them (now killed):"]
    lines += [f"  pid {pid}: {cmd[:200]}" for pid, cmd in left]
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line, red=True)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
