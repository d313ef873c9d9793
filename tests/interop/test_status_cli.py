"""What the box holds, for an operator (issue 14 item 11): `status`, `studies`, grouped `queue list`,
and the reminder of a destination that stays down (item 9)."""

from __future__ import annotations

import re

import pydicom
import pytest
from datasets import make_series
from dicom_bytes import jobs
from peers import free_port, storescu, wait_until
from test_print import imager, print_config  # noqa: F401 - the imager fixture

pytestmark = pytest.mark.interop


def _out(gw, *args) -> str:
    r = gw.cli(*args)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    return r.stdout


def test_status_studies_and_queue_list_through_an_outage(gateway_factory, late_orthanc, tmp_path):
    port = free_port()
    orthanc = late_orthanc(port)
    gw = gateway_factory({
        "logging": {"down_reminder_s": 1},
        "destinations": {"pacs": {"ae_title": orthanc.aet, "port": orthanc.dicom,
                                  "retry_initial_s": 0.3, "retry_max_s": 0.6}}}, port=port)
    out = _out(gw, "status")
    assert f"service: running, PID {gw.proc.pid}" in out
    assert "destination pacs (TESTPACS@127.0.0.1" in out and "backlog 0 jobs" in out

    files = make_series(tmp_path / "in", 3, patient_id="PID-STATUS")
    r = storescu(gw.port, files)
    assert r.returncode == 0 and "E:" not in r.stderr, r.stderr
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)

    out = wait_until(lambda: (o := _out(gw, "status")) and "UNREACHABLE since" in o and o, 30,
                     what="status to show the PACS down")
    assert "buffer: " in out and "3 instances" in out and "reserve 0 MB" in out
    assert re.search(r"backlog 3 jobs \(oldest waiting since [0-9:]+, \d+ s\)", out), out
    assert "next retry" in out and "dead letters 0" in out
    # The snapshot's counts (folded from "received" events, written at the housekeeping tick).
    out = wait_until(lambda: (o := _out(gw, "status")) and "since start: 3 received" in o and o, 30,
                     what="status to count the three received")
    assert re.search(r"since start: 3 received \(last [0-9:]+ from AE:\S+\), 0 refused, 0 forwarded", out), out

    # A destination that stays down is reminded in the log, not only once.
    wait_until(lambda: gw.log.count("pacs still unreachable after") >= 2, 30, what="two reminders")
    assert gw.log.count("pacs unreachable:") == 1

    listing = _out(gw, "queue", "list")
    assert "pacs: " in listing and "queued" in listing
    error = jobs(gw.buffer)[0][4]
    assert error and listing.count(error) == 1, listing  # three jobs, their error shown once
    assert listing.count("[1]") == 4 and "TRIES" in listing and "NEXT TRY" in listing

    studies = _out(gw, "studies")
    assert "PID-STATUS" in studies and study in studies and "Test^Patient" not in studies
    assert re.search(r"20261123\s+PID-STATUS\s+CT\s+3", studies), studies
    assert "pacs: 3 waiting" in studies or "sending" in studies

    orthanc.start()
    wait_until(lambda: [s for _, _, s, _, _ in jobs(gw.buffer)] == ["done"] * 3, 60, what="delivered")
    wait_until(lambda: "destination pacs (TESTPACS@127.0.0.1:%d): reachable" % orthanc.dicom
               in _out(gw, "status"), 30, what="status to show the PACS reachable")
    assert "pacs: 3 delivered" in _out(gw, "studies")
    assert "Test^Patient" not in gw.log  # no patient names in the log

    gw.stop()
    out = _out(gw, "status")
    assert "service: not running" in out and "unknown (service not running)" in out
    assert "backlog 0 jobs" in out


def test_status_shows_the_printer_state(gateway_factory, imager):  # noqa: F811
    gw = gateway_factory(print_config(imager.url))
    wait_until(lambda: "printer film: NORMAL" in _out(gw, "status"), 30, what="printer NORMAL")
    imager.load(0)
    out = wait_until(lambda: (o := _out(gw, "status")) and "printer film: FAILURE" in o and o, 30,
                     what="status to show the printer out of film")
    assert "backlog 0 films" in out


def test_status_without_a_buffer_is_one_line(gateway_factory):
    gw = gateway_factory(start=False)
    r = gw.cli("status")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "no buffer at" in r.stderr


def test_reminder_comes_during_a_long_backoff(gateway_factory, tmp_path):
    # One attempt, then ten minutes of backoff: the reminder keeps its own interval.
    gw = gateway_factory({"logging": {"down_reminder_s": 1},
                          "destinations": {"pacs": {"ae_title": "NOPACS", "port": free_port(),
                                                    "retry_initial_s": 600, "retry_max_s": 600}}})
    r = storescu(gw.port, make_series(tmp_path / "in", 1))
    assert r.returncode == 0, r.stderr
    wait_until(lambda: gw.log.count("pacs still unreachable after") >= 2, 30, what="two reminders")
    line = [ln for ln in gw.log.splitlines() if "still unreachable" in ln][-1]
    assert "WARNING" in line and "1 jobs wait" in line
