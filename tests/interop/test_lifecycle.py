"""Start and stop of the real service, with real second processes and real peers.

- Two instances on one buffer: the second exits with one line naming the first's PID and touches
  nothing: the `.part` file of a C-STORE in progress survives and the modality gets Success; on
  another port it re-queues and re-sends nothing (counted at the PACS).
- SIGTERM finishes the object in hand within timers.stop_drain_s: an incoming C-STORE is stored and
  answered Success, a forward in progress completes. Past the deadline: A-ABORT, a WARNING naming
  the association, nothing stored; a forward cut by the stop does not use up an attempt.
- A full disk under the buffer: one ERROR line and one recovery line, no traceback loop.

The slow modality is the gateway's own storage requestor driven PDU by PDU, so the test decides
where the transfer pauses (a 400 MB object would only make the same moment last longer).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct, make_series
from dicom_bytes import file_dataset_bytes, indexed, jobs
from peers import ROOT, free_port, require, storescu, wait_port, wait_until

from gateway.dicom.net import dimse_command
from gateway.dicom.net.pdu_socket import P_DATA_TF, PDV_HEADER, ConnectionClosed, command_pdus, pdu
from gateway.dicom.net.storage_requestor import C_STORE_RSP, StorageRequestor

pytestmark = pytest.mark.interop

STOP_WAIT_S = 60  # the unit's TimeoutStopSec


class SlowModality:
    """One C-STORE, its data set sent in the pieces the test asks for."""

    def __init__(self, port: int, path: Path, calling: str = "STORESCU", called: str = "EDGE"):
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        self.sop_class = str(meta.MediaStorageSOPClassUID)
        self.sop_uid = str(meta.MediaStorageSOPInstanceUID)
        self.data = file_dataset_bytes(path)
        self.assoc = StorageRequestor.connect("127.0.0.1", port, calling, called,
                                              [(self.sop_class, [str(meta.TransferSyntaxUID)])], 16384, 10, 120)
        self.cx = self.assoc.accepted_contexts[0].context_id
        self.sent = 0
        self.assoc._message_id = 1
        self.assoc._send(command_pdus(self.cx, dimse_command.store_request(1, self.sop_class, self.sop_uid),
                                      self.assoc.peer_max_pdu))

    def send(self, upto: int | None = None, step: int = 16000) -> None:
        """Data set bytes up to `upto` (None: the rest, with the last-fragment bit)."""
        end = len(self.data) if upto is None else upto
        while self.sent < end:
            piece = self.data[self.sent:min(end, self.sent + step)]
            self.sent += len(piece)
            last = upto is None and self.sent == len(self.data)
            self.assoc._send(pdu(P_DATA_TF, PDV_HEADER.pack(len(piece) + 2, self.cx, 0x02 if last else 0x00) + piece))

    def response(self) -> int | str:
        """The C-STORE-RSP status, or "aborted" when an A-ABORT (or a close) came instead."""
        try:
            return self.assoc._read_response(self.cx, C_STORE_RSP).status
        except (ConnectionClosed, OSError):
            return "aborted"

    def close(self) -> None:
        self.assoc.abort()


@pytest.fixture
def big_ct(tmp_path) -> Path:
    path = tmp_path / "big.dcm"
    make_ct(path, rows=1024, cols=1024)  # 2 MB of pixel data: ~130 PDUs, paused half-way
    return path


@pytest.fixture
def modalities():
    opened: list[SlowModality] = []
    yield opened
    for m in opened:
        m.close()


def _second_instance(gw, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config", str(gw.config_path), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def _incoming(gw) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_size) for p in (gw.buffer / "incoming").iterdir()}


def _pause_mid_transfer(gw, m: "SlowModality") -> None:
    """Send three quarters of the data set and wait until the gateway has written part of it
    (the spool file writes through a 1 MB buffer)."""
    m.send(len(m.data) * 3 // 4)
    wait_until(lambda: any(size >= 512 * 1024 for _, size in _incoming(gw).values()), 30, 0.05,
               "the partial data set in incoming/")


def _storescp(tmp_path: Path, sleep_during: int = 0):
    """DCMTK storescp as the PACS, its -v log counting every C-STORE it is sent."""
    exe = require("storescp", "dcmtk")
    out = tmp_path / "pacs"
    out.mkdir(exist_ok=True)
    port = free_port()
    log = open(tmp_path / "storescp.log", "ab")
    args = [exe, "-v", "-aet", "PACS", "-od", str(out)]
    if sleep_during:
        args += ["--sleep-during", str(sleep_during)]
    proc = subprocess.Popen([*args, str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    wait_port(port, 10, proc)
    return proc, port, tmp_path / "storescp.log"


def _received(log: Path) -> int:
    return log.read_text(errors="replace").count("Received Store Request")


@pytest.fixture
def pacs_factory(tmp_path):
    procs = []

    def make(sleep_during: int = 0):
        proc, port, log = _storescp(tmp_path, sleep_during)
        procs.append(proc)
        return port, log

    yield make
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


# --- two instances, one buffer -------------------------------------------------------------------

def test_second_instance_touches_nothing_during_a_c_store(gateway_factory, big_ct, modalities):
    gw = gateway_factory()
    m = SlowModality(gw.port, big_ct)
    modalities.append(m)
    _pause_mid_transfer(gw, m)
    before = _incoming(gw)

    for extra in ([], ["--set", f"ae.port={free_port()}"]):  # the same port, and another one
        second = _second_instance(gw, *extra)
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 3, second.stderr
        assert len(lines) == 1 and f"process {gw.proc.pid}" in lines[0], second.stderr
        assert "Traceback" not in second.stderr
        after = _incoming(gw)
        assert all(after.get(name, (None,))[0] == ino for name, (ino, _size) in before.items()), (
            f"the second instance removed files of the C-STORE in progress: {before} -> {after}")

    m.send()
    assert m.response() == 0x0000
    assert gw.stop(STOP_WAIT_S) == 0, gw.log[-3000:]
    stored = indexed(gw.buffer)
    assert m.sop_uid in stored and file_dataset_bytes(stored[m.sop_uid]) == m.data


def test_second_instance_on_another_port_sends_nothing_again(tmp_path, gateway_factory, pacs_factory):
    pacs_port, pacs_log = pacs_factory(sleep_during=1)
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": "PACS", "port": pacs_port,
                                                    "retry_initial_s": 1.0, "batch_size": 2}},
                          "routes": [{"to": ["pacs"]}]})
    files = make_series(tmp_path / "series", 4)
    r = storescu(gw.port, files)
    assert r.returncode == 0 and r.stderr.count("(Success)") == 4, r.stderr
    # The second instance starts while the first has jobs in flight (the PACS takes a second each).
    wait_until(lambda: _received(pacs_log) >= 1, 30, 0.05, "the first forward under way")
    other = free_port()
    second = _second_instance(gw, "--set", f"ae.port={other}")
    assert second.returncode == 3 and f"process {gw.proc.pid}" in second.stderr, second.stderr
    with pytest.raises(OSError):
        wait_port(other, 0.5)
    wait_until(lambda: all(j[2] == "done" for j in jobs(gw.buffer)) and len(jobs(gw.buffer)) == 4, 60, 0.2,
               "all four forwarded")
    assert gw.stop(STOP_WAIT_S) == 0
    assert _received(pacs_log) == 4, pacs_log.read_text()[-3000:]
    assert "interrupted jobs queued again" in gw.log and "0 interrupted jobs queued again" in gw.log


# --- SIGTERM: the object in hand ------------------------------------------------------------------

def _sigterm_when_paused(gw, m: SlowModality) -> None:
    _pause_mid_transfer(gw, m)
    gw.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping: no new associations" in gw.log, 30, 0.05, "the stop to begin")


def test_sigterm_finishes_the_incoming_c_store_in_hand(gateway_factory, big_ct, modalities):
    gw = gateway_factory()
    m = SlowModality(gw.port, big_ct)
    modalities.append(m)
    _sigterm_when_paused(gw, m)
    assert gw.proc.poll() is None, "exited with a C-STORE in hand"
    m.send()
    assert m.response() == 0x0000, gw.log[-3000:]
    assert gw.proc.wait(STOP_WAIT_S) == 0, gw.log[-3000:]
    stored = indexed(gw.buffer)
    assert m.sop_uid in stored and file_dataset_bytes(stored[m.sop_uid]) == m.data
    assert " ERROR " not in gw.log, gw.log[-3000:]


def test_sigterm_past_the_drain_deadline_aborts_and_stores_nothing(gateway_factory, big_ct, modalities):
    gw = gateway_factory({"timers": {"stop_drain_s": 1.0}})
    m = SlowModality(gw.port, big_ct)
    modalities.append(m)
    _sigterm_when_paused(gw, m)
    assert m.response() == "aborted"  # the sender stays silent; the gateway must not wait for ever
    assert gw.proc.wait(STOP_WAIT_S) == 0, gw.log[-3000:]
    warnings = [line for line in gw.log.splitlines() if " WARNING " in line and "drain deadline" in line]
    assert len(warnings) == 1 and "association from STORESCU (127.0.0.1)" in warnings[0], gw.log[-3000:]
    assert m.sop_uid in warnings[0]
    assert indexed(gw.buffer) == {}
    assert not list((gw.buffer / "incoming").iterdir()), "the partial data set was left behind"
    assert not [p for p in (gw.buffer / "objects").rglob("*") if p.is_file()]


def test_sigterm_lets_the_forward_in_progress_complete(tmp_path, gateway_factory, pacs_factory):
    pacs_port, pacs_log = pacs_factory(sleep_during=3)
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": "PACS", "port": pacs_port}},
                          "routes": [{"to": ["pacs"]}]})
    r = storescu(gw.port, make_series(tmp_path / "one", 1))
    assert "(Success)" in r.stderr, r.stderr
    wait_until(lambda: _received(pacs_log) == 1, 30, 0.05, "the forward under way at the PACS")
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(STOP_WAIT_S) == 0, gw.log[-3000:]
    [(_id, target, state, attempts, error)] = jobs(gw.buffer)
    assert (target, state, attempts) == ("pacs", "done", 1), (state, attempts, error)
    assert len(list((tmp_path / "pacs").iterdir())) == 1


def test_forward_cut_at_the_drain_deadline_uses_no_attempt(tmp_path, gateway_factory, pacs_factory):
    pacs_port, pacs_log = pacs_factory(sleep_during=10)
    gw = gateway_factory({"timers": {"stop_drain_s": 1.0},
                          "destinations": {"pacs": {"ae_title": "PACS", "port": pacs_port}},
                          "routes": [{"to": ["pacs"]}]})
    r = storescu(gw.port, make_series(tmp_path / "one", 1))
    assert "(Success)" in r.stderr, r.stderr
    wait_until(lambda: _received(pacs_log) == 1, 30, 0.05, "the forward under way at the PACS")
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(STOP_WAIT_S) == 0, gw.log[-3000:]
    [(_id, _target, state, attempts, error)] = jobs(gw.buffer)
    assert (state, attempts) == ("queued", 0), (state, attempts, error)
    assert re.search(r"WARNING .*aborting the association to pacs .*drain deadline", gw.log), gw.log[-3000:]


# --- a full disk under the buffer -----------------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MB tmpfs (needs root; skipped elsewhere)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_is_one_error_line_and_one_recovery_line(tmp_path, gateway_factory, small_tmpfs):
    # The PACS is down: the forwarder claims and releases the job every second, writing the index.
    gw = gateway_factory({"buffer": {"path": str(small_tmpfs / "buffer")},
                          "destinations": {"pacs": {"ae_title": "PACS", "port": free_port(),
                                                    "retry_initial_s": 0.5, "retry_max_s": 1.0}},
                          "routes": [{"to": ["pacs"]}]})
    r = storescu(gw.port, make_series(tmp_path / "one", 1))
    assert "(Success)" in r.stderr, r.stderr
    filler = small_tmpfs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (65536, 4096, 512):  # to the last block
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    wait_until(lambda: "the buffer cannot be used" in gw.log, 60, 0.2, "the forwarder to meet the full disk")
    time.sleep(12)  # two more rounds of its 5 s retry: still only the one line
    filler.unlink()
    wait_until(lambda: "the buffer is usable again" in gw.log, 30, 0.2, "the recovery line")
    assert gw.stop(STOP_WAIT_S) == 0
    errors = [line for line in gw.log.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "forwarder pacs: the buffer cannot be used" in errors[0], errors
    assert "Traceback" not in gw.log, gw.log[-3000:]


def test_a_destination_that_stays_down_is_reminded_in_the_log(tmp_path, gateway_factory):
    gw = gateway_factory({"logging": {"down_reminder_s": 1.0},
                          "destinations": {"pacs": {"ae_title": "PACS", "port": free_port(),
                                                    "retry_initial_s": 0.2, "retry_max_s": 0.5}},
                          "routes": [{"to": ["pacs"]}]})
    r = storescu(gw.port, make_series(tmp_path / "one", 1))
    assert "(Success)" in r.stderr, r.stderr
    wait_until(lambda: gw.log.count("pacs still unreachable after") >= 2, 30, 0.1, "two reminders")
    first = [line for line in gw.log.splitlines() if "pacs unreachable:" in line]
    assert len(first) == 1 and " WARNING " in first[0], first
    assert gw.stop(STOP_WAIT_S) == 0
