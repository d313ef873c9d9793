"""`dicom-gateway query` / `retrieve` against PACSes that go wrong before answering anything: one
that accepts TCP and never answers the A-ASSOCIATE-RQ (Ctrl-C must not wait for the association
timer, nor print a traceback however often it comes), and ones that abort the association (the
usual cause is a calling AE title the PACS does not know: the line says so)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from fake_pacs import SilentListener, aborting_qr_pacs

from tests.peers import ROOT, GatewayProcess

SETUP_VERBS = {
    "query": (["query"], "query: interrupted before the association with MUTE@127.0.0.1:{port} was established; "
                         "nothing was asked"),
    "retrieve": (["retrieve", "--study", "1.2.3"], "retrieve: interrupted while looking up the study; "
                                                   "nothing retrieved"),
}


@pytest.mark.parametrize("verb", sorted(SETUP_VERBS))
def test_ctrl_c_while_the_association_is_set_up(tmp_path, verb):
    """The A-ASSOCIATE-RQ is on the wire, unanswered; the association timer is 600 s, so a
    command that waits for it fails the bounded wait below. Two Ctrl-Cs: one line, exit 130."""
    argv, expected = SETUP_VERBS[verb]
    listener = SilentListener("mute")
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {"qr_scu": {"association_s": 600}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", *argv, "--config", str(gw.config_path),
         "--destination", f"MUTE@127.0.0.1:{listener.port}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listener.requested.wait(60), "no A-ASSOCIATE-RQ came"
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)  # not a measurement: the second Ctrl-C a moment after the first
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        listener.stop()
    assert proc.returncode == 130, out + err
    assert err == expected.format(port=listener.port) + "\n", err
    assert "C-CANCEL" not in err and "Traceback" not in err and "Exception ignored" not in err, err
    # The association was aborted (A-ABORT, or the socket closed), not left open.
    assert listener.closed.wait(10)


def test_pacs_aborting_the_association_request_says_why(tmp_path):
    listener = SilentListener("abort")
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {"qr_scu": {"calling_ae": "FOO"}})
    try:
        r = gw.cli("query", "--destination", f"SHY@127.0.0.1:{listener.port}")
    finally:
        listener.stop()
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr == (f"query: SHY@127.0.0.1:{listener.port}: the PACS aborted the association (it may not accept "
                        "calling AE title FOO: check the PACS's list of known modalities)\n"), r.stderr


@pytest.mark.parametrize("argv", [["query"], ["retrieve", "--study", "1.2.3"], ["retrieve", "--get", "--study", "1.2.3"]])
def test_pacs_aborting_at_the_first_request_says_why(tmp_path, argv):
    """Accepted, then aborted at the first request (as Orthanc does for an unknown calling AE):
    not 'no response within 90 s'."""
    server, port = aborting_qr_pacs()
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {"qr_scu": {"calling_ae": "FOO"}})
    try:
        r = gw.cli(*argv, "--destination", f"ABORTPACS@127.0.0.1:{port}")
    finally:
        server.shutdown()
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr == (f"{argv[0]}: ABORTPACS@127.0.0.1:{port}: the PACS aborted the association (it may not "
                        "accept calling AE title FOO: check the PACS's list of known modalities)\n"), r.stderr


def test_ctrl_c_while_the_moves_own_association_is_set_up(tmp_path):
    """The look-up C-FIND is answered; the C-MOVE's association request then goes unanswered (a
    PACS that holds its second A-ASSOCIATE-RQ): Ctrl-C names that step, exit 130, not exit 1."""
    import threading

    import pydicom
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import (StudyRootQueryRetrieveInformationModelFind,
                                      StudyRootQueryRetrieveInformationModelMove)

    released, second = threading.Event(), threading.Event()
    count = []

    def on_requested(event):
        count.append(1)
        if len(count) >= 2:  # hold the RQ unanswered (pynetdicom answers after this handler)
            second.set()
            released.wait(60)

    def on_find(event):
        ds = pydicom.Dataset()
        ds.QueryRetrieveLevel, ds.StudyInstanceUID = "STUDY", "1.2.3"
        yield 0xFF00, ds

    ae = AE(ae_title="HOLDPACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    from tests.peers import free_port

    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_REQUESTED, on_requested), (evt.EVT_C_FIND, on_find)])
    (tmp_path / "gw").mkdir()
    gw = GatewayProcess(tmp_path / "gw", {"qr_scu": {"association_s": 600},
                                          "peers": {"hold": {"ae_title": "HOLDPACS", "may_store": True}}})
    proc = None
    try:
        gw.start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "retrieve", "--study", "1.2.3", "--config", str(gw.config_path),
             "--destination", f"HOLDPACS@127.0.0.1:{port}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert second.wait(60), "no second association request came"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        released.set()
        server.shutdown()
        gw.stop()
    assert proc.returncode == 130, out + err
    assert err == (f"retrieve: interrupted before the association with HOLDPACS@127.0.0.1:{port} was established; "
                   "nothing retrieved\n"), err
