"""Real peers for the tests, started on 127.0.0.1 with free ports and always stopped.

A peer that is not installed skips the test with the Debian package to install, except in CI
(`CI` set), where it is a failure: CI installs everything, so a missing peer there is a broken
install step, not a reason to pass.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pydicom
import pytest
import tomli_w

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
ROOT = Path(__file__).resolve().parent.parent


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path:
        return path
    msg = f"needs {tool} from the Debian package {package} (apt-get install {package})"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before opening port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a peer started with start_new_session=True and everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


def write_toml(path: Path, data: dict) -> None:
    with open(path, "wb") as fh:
        tomli_w.dump(data, fh)


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class GatewayProcess:
    """The real service, as `dicom-gateway run`, in its own process."""

    def __init__(self, workdir: Path, config: dict | None = None, port: int | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.buffer = workdir / "buffer"
        base = {
            "ae": {"title": "EDGE", "bind": "127.0.0.1", "port": self.port},
            "timers": {"handshake_s": 3.0},
            # The status endpoint runs in every test gateway (its observers are part of the service),
            # each on a port of its own: parallel gateways on the default 8080 would clash.
            "status_http": {"port": free_port()},
            # No eviction by free-space percentage: a nearly full CI disk must not evict what tests count.
            "buffer": {"path": str(self.buffer), "reserve_mb": 0, "retention_free_percent": 0},
            "logging": {"level": "INFO"},
            "peers": {
                "storescu": {"ae_title": "STORESCU", "may_store": True},
                "echoscu": {"ae_title": "ECHOSCU", "may_store": False},
                "pacs": {"ae_title": "TESTPACS", "may_store": True},
                "readonly": {"ae_title": "READONLY", "may_store": False},
            },
        }
        self.config = deep_merge(base, config or {})
        self.config_path = workdir / "gateway.toml"
        write_toml(self.config_path, self.config)
        self.log_path = workdir / "gateway.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "GatewayProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config_path)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        wait_port(self.port, timeout, self.proc)
        return self

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_group(self.proc)
        return self.proc.returncode if self.proc else None

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args, "--config", str(self.config_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        )


# storescu proposes only uncompressed syntaxes unless told; each file needs its syntax proposed.
STORESCU_TS_FLAG = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.57": "-xs",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
}


def storescu(port: int, files: list[Path], aet: str = "STORESCU", aec: str = "EDGE",
             extra: list[str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = require("storescu", "dcmtk")
    return subprocess.run([exe, "-v", "-aet", aet, "-aec", aec, *(extra or []), "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, timeout=timeout)


class Orthanc:
    """Orthanc as the PACS, configured as in ../shared/PEERS.md, on free ports."""

    def __init__(self, workdir: Path, gateway_port: int, aet: str = "TESTPACS", extra: dict | None = None):
        self.exe = require("Orthanc", "orthanc")
        self.workdir = workdir
        self.http = free_port()
        self.dicom = free_port()
        self.aet = aet
        cfg = {
            "Name": "TEST-PACS", "StorageDirectory": str(workdir / "storage"),
            "IndexDirectory": str(workdir / "storage"), "HttpPort": self.http, "DicomPort": self.dicom,
            "DicomAet": aet, "DicomCheckCalledAet": True, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "SyncStorageArea": True, "HttpServerEnabled": True,
            "DicomModalities": {"edge": {"AET": "EDGE", "Host": "127.0.0.1", "Port": gateway_port,
                                         "AllowStorageCommitment": True}},
            "Plugins": [],
        }
        cfg.update(extra or {})
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "orthanc.json").write_text(json.dumps(cfg))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Orthanc":
        log = open(self.workdir / "orthanc.log", "ab")
        self.proc = subprocess.Popen([self.exe, str(self.workdir / "orthanc.json")], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("Orthanc exited: " + (self.workdir / "orthanc.log").read_text()[-2000:])
            try:
                self.get("/system")
                wait_port(self.dicom, 5)
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise TimeoutError("Orthanc did not come up")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                kill_group(self.proc)

    def _req(self, path: str, data: bytes | None = None) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", data=data)
        with urllib.request.urlopen(req, timeout=30) as rsp:
            return rsp.read()

    def get(self, path: str):
        return json.loads(self._req(path))

    def lookup(self, sop_uid: str) -> str | None:
        found = json.loads(self._req("/tools/lookup", sop_uid.encode()))
        found = [f for f in found if f["Type"] == "Instance"]
        return found[0]["ID"] if found else None

    def instance_file(self, sop_uid: str) -> bytes | None:
        oid = self.lookup(sop_uid)
        return self._req(f"/instances/{oid}/file") if oid else None

    def count(self) -> int:
        return int(self.get("/statistics")["CountInstances"])


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll for an outcome (not a duration: tests never assert on time, they bound the wait)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
