"""The engineer's tools on the box: echo and send, against DCMTK peers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import make_series
from peers import ROOT, free_port, require, wait_port

pytestmark = pytest.mark.interop


@pytest.fixture
def storescp(tmp_path):
    exe = require("storescp", "dcmtk")
    out = tmp_path / "pacs"
    out.mkdir()
    port = free_port()
    proc = subprocess.Popen([exe, "-aet", "PACS", "-od", str(out), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, 10, proc)
    yield port, out
    proc.terminate()
    proc.wait(10)


def test_echoscu_to_the_gateway(gateway_factory):
    exe = require("echoscu", "dcmtk")
    gw = gateway_factory()
    ok = subprocess.run([exe, "-aet", "ECHOSCU", "-aec", "EDGE", "127.0.0.1", str(gw.port)],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run([exe, "-aet", "INTRUDER", "-aec", "EDGE", "127.0.0.1", str(gw.port)],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "Calling AE Title Not Recognized" in refused.stderr


def test_echo_and_send_commands(gateway_factory, storescp, tmp_path):
    port, out = storescp
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": "PACS", "port": port, "enabled": False}}})
    r = gw.cli("echo", "pacs")
    assert r.returncode == 0 and "status 0x0000" in r.stdout
    r = gw.cli("echo", f"PACS@127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "no association" in r.stdout
    r = gw.cli("echo", "nosuchpeer")
    assert r.returncode != 0 and "unknown destination 'nosuchpeer'" in r.stderr
    files = make_series(tmp_path / "series", 3)
    (tmp_path / "series" / "notes.txt").write_text("not DICOM")
    r = gw.cli("send", str(tmp_path / "series"), "--to", "pacs")
    assert r.returncode == 1  # the text file is reported, the images still go
    assert r.stdout.count(": ok (0x0000)") == 3 and "notes.txt: skipped" in r.stdout
    assert len(list(out.iterdir())) == len(files)


# --- calling AE title, refusals in words ----------------------------------------------------------

def test_echo_takes_aet_and_says_why_a_peer_refused(gateway_factory):
    gw = gateway_factory()
    me = f"EDGE@127.0.0.1:{gw.port}"
    r = gw.cli("echo", me, "--aet", "ECHOSCU")
    assert r.returncode == 0 and "status 0x0000" in r.stdout, r.stdout + r.stderr
    r = gw.cli("echo", me, "--aet", "INTRUDER")
    assert r.returncode == 1 and "calling AE title not recognised" in r.stdout, r.stdout
    r = gw.cli("echo", f"NOTEDGE@127.0.0.1:{gw.port}", "--aet", "ECHOSCU")
    assert r.returncode == 1 and "called AE title not recognised" in r.stdout, r.stdout
    r = gw.cli("echo", f"EDGE@127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "connection refused" in r.stdout, r.stdout
    r = gw.cli("echo", me, "--aet", "WAYTOOLONGAETITLE17")
    assert r.returncode == 2 and "longer than 16 characters" in r.stderr and "Traceback" not in r.stderr


def test_send_takes_aet(gateway_factory, tmp_path):
    gw = gateway_factory()
    files = make_series(tmp_path / "s", 1)
    r = gw.cli("send", str(files[0]), "--to", f"EDGE@127.0.0.1:{gw.port}", "--aet", "INTRUDER")
    assert r.returncode == 1 and "calling AE title not recognised" in r.stdout, r.stdout + r.stderr
    r = gw.cli("send", str(files[0]), "--to", f"EDGE@127.0.0.1:{gw.port}", "--aet", "STORESCU")
    assert r.returncode == 0 and ": ok (0x0000)" in r.stdout, r.stdout + r.stderr


# --- finding the config -----------------------------------------------------------------------------

def _cli(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DICOM_GATEWAY_CONFIG", "STATE_DIRECTORY")}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "hw-sim"), os.environ.get("PYTHONPATH", "")])
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=full_env)


def test_the_cli_finds_the_config_without_config_option(tmp_path, gateway_factory):
    gw = gateway_factory()
    # A checkout: ./config/gateway.toml in the current folder, as `make run` uses it.
    checkout = tmp_path / "checkout"
    (checkout / "config").mkdir(parents=True)
    (checkout / "config" / "gateway.toml").write_text(gw.config_path.read_text())
    r = _cli(checkout, "echo", "--aet", "ECHOSCU", f"EDGE@127.0.0.1:{gw.port}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"(config {checkout / 'config' / 'gateway.toml'}, from the search path)" in r.stderr
    # $DICOM_GATEWAY_CONFIG comes first.
    other = tmp_path / "other.toml"
    other.write_text('[ae]\ntitle = "OTHER"\n')
    r = _cli(checkout, "check-config", "--set", f"ae.port={free_port()}", env={"DICOM_GATEWAY_CONFIG": str(other)})
    assert r.returncode == 0 and r.stdout.startswith(f"ok: {other}"), r.stdout + r.stderr
    # Nothing anywhere (unless this machine has an installed config).
    if not Path("/etc/dicom-gateway/gateway.toml").exists():
        r = _cli(tmp_path, "check-config")
        assert r.returncode == 2 and r.stderr.strip().startswith("config: no config file: none of config/gateway.toml")


# --- one line, a documented exit code ---------------------------------------------------------------

def _run(gw, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config", str(gw.config_path), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def _line(r: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_run_refusals_are_one_line_with_their_exit_code(gateway_factory, tmp_path):
    gw = gateway_factory(start=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = _run(gw, "--set", f"ae.port={port}")
    assert r.returncode == 4 and _line(r) == (
        f"dicom-gateway: not started: ae.port: 127.0.0.1:{port} is in use by another program")
    assert not (gw.buffer / "incoming").exists() or not list((gw.buffer / "incoming").iterdir())

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    r = _run(gw, "--set", f'buffer.path="{a_file}"')
    assert r.returncode == 2 and _line(r) == f"dicom-gateway: not started: buffer.path: {a_file} is a file, not a folder"
    r = _run(gw, "--set", 'buffer.path="/proc/gw-buffer"')
    assert r.returncode == 2 and "buffer.path: cannot create /proc/gw-buffer" in _line(r)
    r = _run(gw, "--set", 'ae.bind="192.0.2.1"')
    assert r.returncode == 2 and _line(r) == "dicom-gateway: not started: ae.bind: 192.0.2.1 is not an address of this host"
    r = _run(gw, "--set", 'ae.bind="999.1.1.1"')
    assert r.returncode == 2 and _line(r) == "config: ae.bind: '999.1.1.1' is not a valid IPv4 address"
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and _line(r) == f"config: {tmp_path}: is a folder, not a config file"
    r = gw.cli("queue", "retry", "abc")
    assert r.returncode == 2 and "'abc' is not a job ID" in _line(r)
    # Every bad command line is exit 2, whether argparse or the command itself finds it.
    for args, says in ((("queue", "retry", "0"), "'0' is not a job ID"),
                       (("queue", "dead-letter"), "give the IDs"),
                       (("queue", "list", "--state", "bogus"), "unknown state 'bogus'"),
                       (("re-forward", "--to", "nowhere", "1"), "unknown destination 'nowhere'"),
                       (("echo", "nosuchpeer"), "unknown destination 'nosuchpeer'")):
        r = gw.cli(*args)
        assert r.returncode == 2 and says in _line(r), (args, r.returncode, r.stderr)
