"""Forwarding when the PACS is down, refuses, or fails commitment: retry, dead-letter, resend."""

from __future__ import annotations

import subprocess

import pydicom
import pytest
from datasets import make_ct, make_series
from dicom_bytes import jobs
from fake_pacs import FakePACS
from peers import TEST_FILES, free_port, require, storescu, wait_port, wait_until

pytestmark = pytest.mark.interop

FAST_RETRY = {"retry_initial_s": 0.2, "retry_max_s": 0.5}


@pytest.fixture
def fake_pacs():
    made: list[FakePACS] = []

    def make(**kw) -> FakePACS:
        p = FakePACS(**kw).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def _states(gw) -> list[str]:
    return [state for _, _, state, _, _ in jobs(gw.buffer)]


def _send(gw, files) -> None:
    r = storescu(gw.port, files)
    assert r.returncode == 0 and "E:" not in r.stderr, r.stderr


def test_pacs_down_then_up_drains_the_queue_without_using_up_attempts(gateway_factory, tmp_path):
    exe = require("storescp", "dcmtk")
    pacs_port = free_port()
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": "PACS", "port": pacs_port,
                                                    "max_attempts": 2, **FAST_RETRY}}})
    files = make_series(tmp_path / "in", 5)
    _send(gw, files)
    wait_until(lambda: "pacs unreachable" in gw.log, 20, what="the forwarder to notice the PACS is down")
    wait_until(lambda: "no association with PACS" in str(jobs(gw.buffer)), 20, what="the reason on the jobs")
    assert set(_states(gw)) <= {"queued", "in_flight"}
    out = tmp_path / "pacs"
    out.mkdir()
    pacs = subprocess.Popen([exe, "-aet", "PACS", "-od", str(out), str(pacs_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(pacs_port, 10, pacs)
        wait_until(lambda: _states(gw) == ["done"] * 5, 60, what="queue drained")
        assert len(list(out.iterdir())) == 5
        assert "reachable again" in gw.log
    finally:
        pacs.terminate()
        pacs.wait(10)


def test_transient_refusal_is_retried_until_accepted(gateway_factory, fake_pacs, tmp_path):
    pacs = fake_pacs(statuses=[0xA700, 0xA700])
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": pacs.aet, "port": pacs.port, **FAST_RETRY}}})
    src = tmp_path / "a.dcm"
    ds = make_ct(src)
    _send(gw, [src])
    wait_until(lambda: _states(gw) == ["done"], 30, what="job done")
    assert [c for _, c in pacs.calls] == [0xA700, 0xA700, 0x0000]
    assert pacs.received == [ds.SOPInstanceUID]
    (_, _, _, attempts, _), = jobs(gw.buffer)
    assert attempts == 3


def test_permanent_failure_is_dead_lettered_and_operator_retry_sends_it(gateway_factory, fake_pacs, tmp_path):
    pacs = fake_pacs(statuses=[0xA900])
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": pacs.aet, "port": pacs.port, **FAST_RETRY}}})
    src = tmp_path / "a.dcm"
    ds = make_ct(src)
    _send(gw, [src])
    wait_until(lambda: _states(gw) == ["dead"], 30, what="dead letter")
    (job_id, _, _, attempts, error), = jobs(gw.buffer)
    assert attempts == 1 and "0xA900" in error
    listing = gw.cli("queue", "list")
    assert listing.returncode == 0 and "dead" in listing.stdout and "0xA900" in listing.stdout
    # The PACS admin fixed the problem: the operator sends it again.
    r = gw.cli("queue", "retry", str(job_id))
    assert r.returncode == 0 and "1 jobs queued again" in r.stdout
    wait_until(lambda: _states(gw) == ["done"], 30, what="retried job done")
    assert pacs.received == [ds.SOPInstanceUID]


def test_transient_failures_give_up_after_max_attempts(gateway_factory, fake_pacs, tmp_path):
    pacs = fake_pacs(default=0xA700)
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": pacs.aet, "port": pacs.port,
                                                    "max_attempts": 3, **FAST_RETRY}}})
    src = tmp_path / "a.dcm"
    make_ct(src)
    _send(gw, [src])
    wait_until(lambda: _states(gw) == ["dead"], 30, what="dead letter")
    (_, _, _, attempts, error), = jobs(gw.buffer)
    assert attempts == 3 and "gave up after 3 attempts" in error
    assert len(pacs.calls) == 3


def test_routes_choose_destinations_by_modality(gateway_factory, fake_pacs, tmp_path):
    ct_pacs, mr_pacs = fake_pacs(aet="CTPACS"), fake_pacs(aet="MRPACS")
    gw = gateway_factory({
        "destinations": {"ct": {"ae_title": "CTPACS", "port": ct_pacs.port, **FAST_RETRY},
                         "mr": {"ae_title": "MRPACS", "port": mr_pacs.port, **FAST_RETRY}},
        "routes": [{"to": ["ct"], "modality": ["CT"]}, {"to": ["mr"], "modality": ["MR"]},
                   {"to": ["ct", "mr"], "calling_ae": ["STORESCU"], "sop_class": ["1.2.840.10008.5.1.4.1.1.7"]}],
    })
    ct, mr = TEST_FILES / "CT_small.dcm", TEST_FILES / "MR_small.dcm"
    _send(gw, [ct, mr])
    wait_until(lambda: _states(gw) == ["done", "done"], 30, what="both forwarded")
    assert ct_pacs.received == [pydicom.dcmread(ct, stop_before_pixels=True).SOPInstanceUID]
    assert mr_pacs.received == [pydicom.dcmread(mr, stop_before_pixels=True).SOPInstanceUID]


def test_commitment_failure_resends_only_the_failed_instance(gateway_factory, fake_pacs, tmp_path):
    pacs = fake_pacs()
    gw = gateway_factory({
        "peers": {"fake": {"ae_title": pacs.aet, "may_store": False}},
        "destinations": {"pacs": {"ae_title": pacs.aet, "port": pacs.port, "storage_commitment": True,
                                  "commitment_timeout_s": 120, **FAST_RETRY}}})
    files = make_series(tmp_path / "in", 3)
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]
    pacs.report_to = (gw.port, "EDGE", {uids[1]})
    _send(gw, files)
    # uids[1] fails (0x0112) in its first transaction and is sent again; the next one commits it.
    wait_until(lambda: _states(gw) == ["done"] * 3, 60, what="all committed")
    assert [pacs.received.count(u) for u in uids] == [1, 2, 1]
    requested = [u for _, txn_uids in pacs.commit_requests for u in txn_uids]
    assert [requested.count(u) for u in uids] == [1, 2, 1]
    assert "0x0112 no such object instance" in str(jobs(gw.buffer)) or "no such object instance" in gw.log


def test_an_instance_never_committed_is_dead_lettered_after_max_attempts(gateway_factory, fake_pacs, tmp_path):
    pacs = fake_pacs()
    gw = gateway_factory({
        "peers": {"fake": {"ae_title": pacs.aet, "may_store": False}},
        "destinations": {"pacs": {"ae_title": pacs.aet, "port": pacs.port, "storage_commitment": True,
                                  "max_attempts": 2, **FAST_RETRY}}})
    src = tmp_path / "a.dcm"
    ds = make_ct(src)
    pacs.never_commit = {ds.SOPInstanceUID}
    pacs.report_to = (gw.port, "EDGE", set())
    _send(gw, [src])
    wait_until(lambda: _states(gw) == ["dead"], 60, what="dead letter")
    (_, _, _, attempts, error), = jobs(gw.buffer)
    assert attempts == 2 and "0x0112" in error and "gave up after 2 attempts" in error
    assert pacs.received.count(ds.SOPInstanceUID) == 2


def test_commitment_timeout_resends(gateway_factory, fake_pacs, tmp_path):
    pacs = fake_pacs()  # accepts N-ACTION but never reports
    gw = gateway_factory({"destinations": {"pacs": {
        "ae_title": pacs.aet, "port": pacs.port, "storage_commitment": True, "commitment_timeout_s": 2,
        **FAST_RETRY}}})
    src = tmp_path / "a.dcm"
    ds = make_ct(src)
    _send(gw, [src])
    wait_until(lambda: pacs.received.count(ds.SOPInstanceUID) >= 2, 60, what="a resend after the timeout")
    assert "timed out" in gw.log


def test_storage_commitment_with_orthanc(gateway_factory, orthanc_factory, tmp_path):
    port = free_port()
    orthanc = orthanc_factory(port)
    gw = gateway_factory({"destinations": {"pacs": {
        "ae_title": "TESTPACS", "port": orthanc.dicom, "storage_commitment": True, **FAST_RETRY}}}, port=port)
    files = make_series(tmp_path / "in", 4)
    _send(gw, files)
    wait_until(lambda: _states(gw) == ["done"] * 4, 60, what="all committed by Orthanc")
    assert orthanc.count() == 4
    # Jobs become done only through a commitment report when commitment is on.
    committed = sum(int(line.split(": ")[-1].split()[0]) for line in gw.log.splitlines()
                    if "committed, " in line)
    assert committed == 4
