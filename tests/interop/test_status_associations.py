"""Associations in the running service's /metrics and /status.json (issue 9 item 1): DCMTK's
storescu and echoscu on the fast path (one refused for its unknown calling AE title), pynetdicom on
pynetdicom's path (Storage Commitment Push is served there), released and aborted; the counts read
back with prometheus-client's parser."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pynetdicom import AE

from datasets import make_series
from peers import require, storescu, wait_until

pytestmark = pytest.mark.interop

STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as rsp:
        return rsp.read().decode()


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(_get(url + "metrics")) for s in family.samples}


def test_accepted_refused_released_and_aborted_associations_are_counted(gateway_factory, tmp_path):
    gw = gateway_factory()
    url = f"http://127.0.0.1:{gw.config['status_http']['port']}/"
    wait_until(lambda: f"status page {url}" in gw.log, 20, what="the status page's URL in the log")
    files = make_series(tmp_path / "in", 2)

    # Fast path: accepted and released.
    r = storescu(gw.port, files)
    assert r.returncode == 0 and "E:" not in r.stderr, r.stderr
    echo = subprocess.run([require("echoscu", "dcmtk"), "-aet", "ECHOSCU", "-aec", "EDGE", "127.0.0.1",
                           str(gw.port)], capture_output=True, text=True, timeout=60)
    assert echo.returncode == 0, echo.stderr
    # Refused at the acceptor: a calling AE title no peer has (A-ASSOCIATE-RJ 1/1/3).
    r = storescu(gw.port, files[:1], aet="STRANGER")
    assert r.returncode != 0 and "Association Rejected" in r.stderr, r.stderr
    # pynetdicom's path, ended by an A-ABORT.
    ae = AE(ae_title="TESTPACS")
    ae.add_requested_context(STORAGE_COMMITMENT_PUSH)
    assoc = ae.associate("127.0.0.1", gw.port, ae_title="EDGE")
    assert assoc.is_established
    try:
        wait_until(lambda: _metrics(url).get(("gateway_associations_open", ())) == 1, 20,
                   what="the open association in /metrics")
    finally:
        assoc.abort()

    def counted():
        m = _metrics(url)
        return m if m.get(("gateway_associations_closed_total", (("how", "aborted"),))) == 1 else None

    m = wait_until(counted, 20, what="the aborted association in /metrics")
    assert m[("gateway_associations_total", (("calling_ae", "STORESCU"), ("outcome", "accepted")))] == 1
    assert m[("gateway_associations_total", (("calling_ae", "ECHOSCU"), ("outcome", "accepted")))] == 1
    assert m[("gateway_associations_total", (("calling_ae", "TESTPACS"), ("outcome", "accepted")))] == 1
    assert m[("gateway_associations_total", (("calling_ae", "STRANGER"), ("outcome", "refused")))] == 1
    assert ("gateway_associations_total", (("calling_ae", "STRANGER"), ("outcome", "accepted"))) not in m
    assert m[("gateway_associations_closed_total", (("how", "released"),))] == 2
    assert m[("gateway_associations_open", ())] == 0

    doc = json.loads(_get(url + "status.json"))
    a = doc["associations"]
    assert (a["open"], a["accepted"], a["refused"]) == (0, 3, 1)
    last = a["last_refused"]
    assert (last["calling_ae"], last["called_ae"], last["peer"]) == ("STRANGER", "EDGE", "127.0.0.1")
    assert (last["result"], last["source"], last["diagnostic"], last["reason"]) == (
        1, 1, 3, "calling AE title not recognised")


def test_refusals_at_the_association_cap_are_counted_on_both_paths(gateway_factory):
    """ae.max_associations = 1 and one association held open: a second one proposing only
    Verification is refused by the fast path's admission, one proposing Storage Commitment by
    AssociationPolicy on pynetdicom's path; both A-ASSOCIATE-RJ 2/3/2 (local limit exceeded)."""
    gw = gateway_factory({"ae": {"max_associations": 1}})
    url = f"http://127.0.0.1:{gw.config['status_http']['port']}/"
    wait_until(lambda: f"status page {url}" in gw.log, 20, what="the status page's URL in the log")
    held_ae = AE(ae_title="ECHOSCU")
    held_ae.add_requested_context("1.2.840.10008.1.1")
    held = held_ae.associate("127.0.0.1", gw.port, ae_title="EDGE")
    assert held.is_established
    try:
        fast_ae = AE(ae_title="STORESCU")
        fast_ae.add_requested_context("1.2.840.10008.1.1")
        fast = fast_ae.associate("127.0.0.1", gw.port, ae_title="EDGE")
        assert fast.is_rejected
        slow_ae = AE(ae_title="TESTPACS")
        slow_ae.add_requested_context(STORAGE_COMMITMENT_PUSH)
        slow = slow_ae.associate("127.0.0.1", gw.port, ae_title="EDGE")
        assert slow.is_rejected
    finally:
        held.release()

    def counted():
        m = _metrics(url)
        return m if m.get(("gateway_associations_closed_total", (("how", "released"),))) == 1 else None

    m = wait_until(counted, 20, what="the held association's release in /metrics")
    assert m[("gateway_associations_total", (("calling_ae", "ECHOSCU"), ("outcome", "accepted")))] == 1
    assert m[("gateway_associations_total", (("calling_ae", "STORESCU"), ("outcome", "refused")))] == 1
    assert m[("gateway_associations_total", (("calling_ae", "TESTPACS"), ("outcome", "refused")))] == 1
    assert m[("gateway_associations_open", ())] == 0
    last = json.loads(_get(url + "status.json"))["associations"]["last_refused"]
    assert (last["calling_ae"], last["result"], last["source"], last["diagnostic"], last["reason"]) == (
        "TESTPACS", 2, 3, 2, "local limit exceeded")
