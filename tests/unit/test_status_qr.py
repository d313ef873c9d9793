"""Query/Retrieve served from the buffer, seen by an administrator: the Q/R SCP's qr-query and
qr-retrieve events folded into the gateway_qr_* counters (gateway/status/metrics.py) and into the
status document's "qr" (gateway/status/qr_activity.py, gateway/status/view.py), read back through
/metrics and /status.json of a real status server. The whole service with DCMTK's findscu is
tests/interop/test_qr_find_scp.py."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from gateway.config.status_http import StatusHttpSection
from gateway.event_kinds import QRRetrieve, QrQuery
from gateway.events import Event, EventBus
from gateway.status import view
from gateway.status.metrics import new_registry
from gateway.status.qr_activity import QrActivity, outcome
from gateway.status.server import StatusServer
from test_status_metrics import samples

# Local noon of two days in a row: "today" is the box's local day, whatever the test machine's zone.
DAY1 = time.mktime((2026, 11, 30, 12, 0, 0, 0, 0, -1))
DAY2 = time.mktime((2026, 12, 1, 12, 0, 0, 0, 0, -1))


def _snapshot(**over):
    snap = {"pid": 1, "started": 1.0, "queues": None, "destinations": {}, "printer": None, "media": {},
            "disk": {}, "counts": {"received": 0, "refused": 0, "forwarded": 0, "dead_lettered": 0},
            "last_received": {"at": None, "source": ""}, "last_forwarded": {"at": None, "target": ""}}
    snap.update(over)
    return snap


def _query(status, calling="WS1", matches=0, level="STUDY"):
    return QrQuery(calling_ae=calling, model="STUDY", level=level, matches=matches, status=status)


def _retrieve(status, operation="C-MOVE", calling="WS1", destination="WS1", completed=0, failed=0, warning=0,
              remaining=0):
    return QRRetrieve(operation=operation, calling_ae=calling, destination=destination, status=status,
                      completed=completed, failed=failed, warning=warning, remaining=remaining)


def _at(payload, at):
    """The event the bus would deliver, published at `at` (the bus stamps time.time())."""
    return Event(payload.KIND, payload.as_dict(), at=at, payload=payload)


@pytest.mark.parametrize("status,expected", [
    (0x0000, "success"), (0xFE00, "cancel"), (0xB000, "warning"), (0xA700, "refused"), (0xA701, "refused"),
    (0xA702, "refused"), (0xA801, "refused"), (0x0122, "refused"), (0x0124, "refused"), (0xA900, "failed"),
    (0xC000, "failed"), (0xC511, "failed"), (-1, "aborted")])
def test_status_classes(status, expected):
    assert outcome(status) == expected


def test_queries_and_retrieves_in_counters_out():
    bus = EventBus()
    registry, obs = new_registry(bus, _snapshot)
    for status in (0x0000, 0x0000, 0xFE00, 0x0124, 0xA700, 0xA900, 0xC001):
        bus.publish(_query(status))
    bus.publish(_retrieve(0x0000, completed=3))
    bus.publish(_retrieve(0xB000, completed=2, failed=1, warning=1))
    bus.publish(_retrieve(0xA801, destination="NOWHERE"))
    bus.publish(_retrieve(0xFE00, operation="C-GET", completed=1, remaining=4))
    bus.publish(_retrieve(-1, operation="C-GET", completed=2, remaining=1))
    assert obs.sync()
    s = samples(registry)
    q = {dict(k[1])["outcome"]: v for k, v in s.items() if k[0] == "gateway_qr_queries_total"}
    assert q == {"success": 2, "cancel": 1, "refused": 2, "failed": 2}
    r = {tuple(v for _, v in k[1]): n for k, n in s.items() if k[0] == "gateway_qr_retrieves_total"}
    assert r == {("C-MOVE", "success"): 1, ("C-MOVE", "warning"): 1, ("C-MOVE", "refused"): 1,
                 ("C-GET", "cancel"): 1, ("C-GET", "aborted"): 1}
    sub = {tuple(v for _, v in k[1]): n for k, n in s.items() if k[0] == "gateway_qr_suboperations_total"}
    assert sub == {("C-MOVE", "completed"): 5, ("C-MOVE", "failed"): 1, ("C-MOVE", "warning"): 1,
                   ("C-GET", "completed"): 3, ("C-GET", "failed"): 0, ("C-GET", "warning"): 0}
    assert s[("gateway_metrics_events_dropped_total", ())] == 0


def test_the_document_shows_today_the_last_query_and_the_last_failure():
    bus = EventBus()
    registry, obs = new_registry(bus, _snapshot)
    qr = obs.qr  # what the app hands the status server (gateway/app.py)
    obs.apply(_at(_query(0x0000, "WS1", matches=4), DAY1))
    obs.apply(_at(_retrieve(0xB000, calling="WS1", destination="WS1", completed=3, failed=1), DAY1 + 10))
    obs.apply(_at(_retrieve(0xA801, calling="WS2", destination="NOWHERE"), DAY1 + 20))
    obs.apply(_at(_query(0x0000, "WS3", matches=2, level="SERIES"), DAY1 + 30))
    doc = view.build(_snapshot(), None, None, now=DAY1 + 60, qr=qr.summary(DAY1 + 60))
    d = doc["qr"]
    assert d["today"] == {"day": "2026-11-30", "queries": 2, "retrieves": 2, "completed": 3, "failed": 1,
                          "warning": 0}
    assert d["last_query"] == {"at": DAY1 + 30, "calling_ae": "WS3", "model": "STUDY", "level": "SERIES",
                               "matches": 2, "status": 0, "outcome": "success"}
    assert d["last_retrieve"]["calling_ae"] == "WS2" and d["last_retrieve"]["outcome"] == "refused"
    assert d["last_failure"] == {"at": DAY1 + 20, "operation": "C-MOVE", "calling_ae": "WS2", "status": 0xA801,
                                 "outcome": "refused", "destination": "NOWHERE", "completed": 0, "failed": 0,
                                 "warning": 0, "remaining": 0}
    assert d["failing"] is True
    assert [e["what"] for e in doc["errors"]] == ["Q/R: C-MOVE from WS2 to NOWHERE refused: 0xA801"]
    # Another peer getting through does not hide WS2's trouble; WS2 getting through does.
    obs.apply(_at(_query(0x0000, "WS2"), DAY1 + 40))
    doc = view.build(_snapshot(), None, None, now=DAY1 + 60, qr=qr.summary(DAY1 + 60))
    assert doc["qr"]["failing"] is False and doc["errors"] == []
    assert doc["qr"]["last_failure"]["calling_ae"] == "WS2"  # still shown as the last failure
    # A refused query is a failure too, without a destination or counts.
    obs.apply(_at(_query(0x0124, "STRANGER"), DAY1 + 50))
    doc = view.build(_snapshot(), None, None, now=DAY1 + 60, qr=qr.summary(DAY1 + 60))
    assert doc["qr"]["last_failure"] == {"at": DAY1 + 50, "operation": "C-FIND", "calling_ae": "STRANGER",
                                         "status": 0x0124, "outcome": "refused"}
    assert [e["what"] for e in doc["errors"]] == ["Q/R: C-FIND from STRANGER refused: 0x0124"]


def test_today_starts_again_at_local_midnight():
    qr = QrActivity()
    qr.apply(_at(_query(0x0000, "WS1"), DAY1))
    qr.apply(_at(_retrieve(0x0000, completed=5), DAY1 + 1))
    assert qr.summary(DAY1 + 2)["today"]["queries"] == 1
    later = qr.summary(DAY2)
    assert later["today"] == {"day": "2026-12-01", "queries": 0, "retrieves": 0, "completed": 0, "failed": 0,
                              "warning": 0}
    assert later["last_query"]["at"] == DAY1  # the last query is kept, with its date
    qr.apply(_at(_retrieve(0x0000, operation="C-GET", completed=2), DAY2))
    assert qr.summary(DAY2 + 1)["today"] == {"day": "2026-12-01", "queries": 0, "retrieves": 1, "completed": 2,
                                             "failed": 0, "warning": 0}


def test_a_document_without_qr_still_builds():
    doc = view.build(_snapshot(), None, None, now=DAY1)
    assert doc["qr"] is None and doc["errors"] == []


def test_status_json_and_metrics_of_a_running_server_show_the_activity():
    """The wiring the service uses (gateway/app.py): the observer's Q/R activity handed to the status
    server beside new_registry's registry, and the running observer thread folds the events."""
    bus = EventBus()
    registry, obs = new_registry(bus, _snapshot)
    sec = StatusHttpSection.model_construct(enabled=True, bind="127.0.0.1", port=0, token="", sse_max_clients=4)
    server = StatusServer(sec, _snapshot, registry, lambda: None, qr=obs.qr)
    obs.start()
    url = server.start()
    try:
        bus.publish(_query(0x0000, "WS1", matches=3))
        bus.publish(_retrieve(0xA702, operation="C-GET", calling="WS1", destination="WS1", failed=2))
        assert obs.sync()
        with urllib.request.urlopen(url + "status.json", timeout=10) as rsp:
            doc = json.loads(rsp.read())
        assert doc["qr"]["today"]["queries"] == 1 and doc["qr"]["today"]["failed"] == 2
        assert doc["qr"]["last_failure"]["operation"] == "C-GET" and doc["qr"]["last_failure"]["status"] == 0xA702
        with urllib.request.urlopen(url + "metrics", timeout=10) as rsp:
            text = rsp.read().decode()
        assert 'gateway_qr_queries_total{outcome="success"} 1.0' in text
        assert 'gateway_qr_retrieves_total{operation="C-GET",outcome="refused"} 1.0' in text
        assert 'gateway_qr_suboperations_total{operation="C-GET",result="failed"} 2.0' in text
    finally:
        server.stop()
        obs.stop()


def test_today_says_since_when_it_counts_after_a_restart():
    # The fold lives in memory: started today, its "today" begins at the start, not at midnight.
    import time

    from gateway.status.qr_activity import QrActivity

    qr = QrActivity()
    now = time.time()
    assert qr.summary(now)["since"] == pytest.approx(now, abs=60)
    assert qr.summary(now + 2 * 86400)["since"] is None  # another day: counted from its midnight
