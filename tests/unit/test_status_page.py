"""The status page (gateway/status/page.py) and the document it draws (gateway/status/view.py):
the listener's associations and the run-time config problems, in a real headless Chromium over
the status server on its own (no DICOM). The whole service is tests/interop/test_status_http.py."""

from __future__ import annotations

import pytest

from gateway.config.status_http import StatusHttpSection
from gateway.event_kinds import QRRetrieve, QrQuery
from gateway.events import EventBus
from gateway.status import view
from gateway.status.metrics import new_registry
from gateway.status.server import StatusServer
from tests.peers import wait_until

REFUSAL = {"at": 1_700_000_100.0, "calling_ae": "WHO", "called_ae": "EDGE", "peer": "10.0.0.9",
           "reason": "calling AE title not recognised", "result": 1, "source": 1, "diagnostic": 3}
PROBLEMS = [{"key": "panel", "detail": "no display at 0x27", "at": 1_700_000_000.0},
            {"key": "status_http.port", "detail": "cannot listen on 127.0.0.1:8080", "at": 1_700_000_050.0}]


def _snapshot(**changes):
    snap = {"pid": 1, "started": 1_700_000_000.0, "queues": None, "destinations": {}, "printer": None,
            "media": {}, "disk": {}, "counts": {"received": 0, "refused": 0, "forwarded": 0, "dead_lettered": 0},
            "last_received": {"at": None, "source": ""}, "last_forwarded": {"at": None, "target": ""},
            "associations": {"open": 2, "accepted": 7, "refused": 1, "last_refused": REFUSAL},
            "config_problems": PROBLEMS}
    snap.update(changes)
    return snap


def test_config_problems_are_in_the_document_and_its_errors():
    doc = view.build(_snapshot(), None, None, now=1_700_000_060.0)
    assert doc["config_problems"] == PROBLEMS
    assert [e["what"] for e in doc["errors"]] == [
        "config problem status_http.port: cannot listen on 127.0.0.1:8080",  # newest first
        "config problem panel: no display at 0x27"]
    assert doc["associations"]["last_refused"]["reason"] == "calling AE title not recognised"
    # A snapshot written before config problems were kept (state.json of an older service).
    old = _snapshot()
    del old["config_problems"], old["associations"]
    doc = view.build(old, None, None, now=1_700_000_060.0)
    assert doc["config_problems"] == [] and doc["errors"] == [] and doc["associations"] is None


@pytest.fixture
def serve():
    servers = []

    def make(snapshot, registry=None, qr=None):
        # port 0 (a free port) is for tests only: the config bounds status_http.port to 1-65535.
        sec = StatusHttpSection.model_construct(enabled=True, bind="127.0.0.1", port=0, token="", sse_max_clients=4)
        if registry is None:
            registry, _ = new_registry(EventBus(), snapshot)
        server = StatusServer(sec, snapshot, registry, lambda: None, qr=qr)
        server.start()
        servers.append(server)
        return server.url

    yield make
    for s in servers:
        s.stop()


def _text(browser, element_id):
    return browser.find_element("id", element_id).text


@pytest.mark.timeout(120)
def test_the_page_shows_the_associations_and_the_config_problems(serve, browser, tmp_path):
    snap = _snapshot()
    browser.get(serve(lambda: snap))
    wait_until(lambda: _text(browser, "stream") == "live", 20, what="the stream to be live")
    assert (_text(browser, "assoc-open"), _text(browser, "assoc-accepted"), _text(browser, "assoc-refused")) \
        == ("2", "7", "1")
    last = _text(browser, "last-refused")
    assert "WHO -> EDGE from 10.0.0.9: calling AE title not recognised (result 1, source 1, diagnostic 3)" in last
    rows = [r.text for r in browser.find_elements("css selector", "#config-problems tr")[1:]]
    assert len(rows) == 2
    assert "status_http.port cannot listen on 127.0.0.1:8080" in rows[0]  # newest first
    assert "panel no display at 0x27" in rows[1]
    assert "config problem panel: no display at 0x27" in _text(browser, "errors")
    browser.save_screenshot(str(tmp_path / "status-page.png"))

    # The next document (the page is not reloaded): a quiet listener, nothing refused, no problem.
    snap.update(associations={"open": 0, "accepted": 0, "refused": 0, "last_refused": None}, config_problems=[])
    wait_until(lambda: _text(browser, "assoc-accepted") == "0", 20, what="the page to redraw")
    assert _text(browser, "last-refused") == "none"
    assert _text(browser, "config-problems") == "when key problem\nnone"


@pytest.mark.timeout(120)
def test_a_snapshot_without_associations_still_draws(serve, browser):
    old = _snapshot()
    del old["associations"], old["config_problems"]
    browser.get(serve(lambda: old))
    wait_until(lambda: _text(browser, "stream") == "live", 20, what="the stream to be live")
    wait_until(lambda: _text(browser, "health") == "healthy", 20, what="the page to draw")
    assert _text(browser, "assoc-open") == "-" and _text(browser, "last-refused") == "none"


@pytest.mark.timeout(120)
def test_the_page_shows_the_grabber_and_the_procedure(serve, browser):
    capture = {"signal": "up", "width": 640, "height": 480, "fps": 30.0, "since": 1_700_000_000.0,
               "recording": {"since": 1_700_000_010.0, "seconds": 10.0, "procedure": "K1"}, "stored": 3,
               "last": None, "last_failed": None}
    worklist = {"items": 4, "source": "scp", "refreshed": 1_700_000_000.0, "failed": None,
                "current": {"key": "K1", "patient_id": "PID7", "scheduled": True, "how": "auto", "at": 0}}
    snap = _snapshot(capture=capture, worklist=worklist)
    browser.get(serve(lambda: snap))
    wait_until(lambda: _text(browser, "stream") == "live", 20, what="the stream to be live")
    assert _text(browser, "capture") == "signal 640x480 at 30 fps; 3 captured; RECORDING a 10 s clip"
    assert _text(browser, "procedure") == "procedure: Patient ID PID7; worklist of 4 items (scp)"
    # Signal lost, the RIS failing, an unscheduled patient: the page and the document's errors say so.
    snap.update(capture={**capture, "signal": "lost", "recording": None},
                worklist={**worklist, "failed": {"at": 1_700_000_020.0, "reason": "association rejected",
                                                 "using_cache_from": 1_700_000_000.0},
                          "current": {**worklist["current"], "scheduled": False, "patient_id": "UNSCHED-1"}})
    wait_until(lambda: _text(browser, "capture").startswith("NO SIGNAL since"), 20, what="the page to redraw")
    assert _text(browser, "procedure") == ("procedure: Patient ID UNSCHED-1 (UNSCHEDULED); worklist SCP failing: "
                                           "association rejected")
    errors = [e["what"] for e in view.build(snap, None, None, now=1_700_000_060.0)["errors"]]
    assert "capture: no signal from the grabber" in errors and "worklist: association rejected" in errors


@pytest.mark.timeout(120)
def test_the_page_shows_query_retrieve_today_and_the_last_failure(serve, browser):
    bus = EventBus()
    snap = _snapshot()
    registry, obs = new_registry(bus, lambda: snap)
    browser.get(serve(lambda: snap, registry, obs.qr))
    wait_until(lambda: _text(browser, "stream") == "live", 20, what="the stream to be live")
    # the fold was made just now: its counts began when "the service" started, and the page says so
    assert _text(browser, "qr").startswith("0 queries; 0 retrieves: 0 sent, 0 failed, 0 with warnings (counted since ")
    assert _text(browser, "qr").endswith(", when the service started)")
    assert _text(browser, "qr-failure") == "none"
    bus.publish(QrQuery(calling_ae="WS1", model="STUDY", level="SERIES", matches=4, status=0x0000))
    bus.publish(QRRetrieve(operation="C-MOVE", calling_ae="WS2", destination="NOWHERE", status=0xA801,
                           completed=0, failed=0, warning=0, remaining=0))
    bus.publish(QRRetrieve(operation="C-GET", calling_ae="WS1", destination="WS1", status=0xB000, completed=5,
                           failed=1, warning=2, remaining=0))
    obs.sync()  # not started: folded here, as the service's thread would
    wait_until(lambda: _text(browser, "qr").startswith("1 query"), 20, what="the page to redraw")
    qr = _text(browser, "qr")
    assert " from WS1, SERIES, 4 matches); 2 retrieves: 5 sent, 1 failed, 2 with warnings" in qr, qr
    failure = _text(browser, "qr-failure")
    assert failure.endswith(": C-GET from WS1: 0xB000 (warning), 5 sent, 1 failed, 0 not attempted"), failure
    assert browser.find_element("id", "qr-failure").get_attribute("class") == "bad"
    assert "Q/R: C-GET from WS1 warning: 0xB000" in _text(browser, "errors")
