"""The engineer's tools on the box: echo and send, against DCMTK peers."""

from __future__ import annotations

import subprocess

import pytest
from datasets import make_series
from peers import free_port, require, wait_port

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
