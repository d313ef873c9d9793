"""The status endpoint of the real service (issue 9 item 5) under hw-sim, with real peers: DCMTK
storescu sends, a pynetdicom PACS refuses the first K (0xA900: dead-lettered at once) and takes the
rest; /status.json and /metrics (read back with prometheus-client's parser) must agree with the
buffer's index; /healthz follows the index; headless Chromium sees the page update through SSE."""

from __future__ import annotations

import json
import socket
import sqlite3
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from datasets import make_ct, make_series
from fake_pacs import FakePACS
from browser_support import text
from peers import free_port, storescu, wait_until

pytestmark = pytest.mark.interop

N, K = 8, 3  # stored, of which dead-lettered; M = N - K forwarded
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


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as rsp:
            return rsp.status, rsp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _index(gw) -> dict:
    """What the buffer's index says, read by its own read-only connection."""
    db = sqlite3.connect(f"file:{gw.buffer / 'index.sqlite'}?mode=ro", uri=True)
    try:
        states = dict(db.execute("SELECT state, COUNT(*) FROM jobs WHERE target = 'pacs' GROUP BY state").fetchall())
        n, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM instances").fetchone()
        dead = {uid: err for uid, err in db.execute(
            "SELECT i.sop_uid, j.last_error FROM jobs j JOIN instances i ON i.id = j.instance_fk WHERE j.state = 'dead'")}
    finally:
        db.close()
    return {"states": states, "instances": n, "bytes": size, "dead": dead}


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    status, text = _get(url + "metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def workload(gateway_factory, fake_pacs, tmp_path):
    """A running service whose PACS refused the first K instances (dead) and took the other M."""
    pacs = fake_pacs(statuses=[0xA900] * K)
    port = free_port()
    gw = gateway_factory({"destinations": {"pacs": {"ae_title": pacs.aet, "port": pacs.port, "batch_size": 1,
                                                    **FAST_RETRY}},
                          "status_http": {"port": port}})
    url = f"http://127.0.0.1:{port}/"
    wait_until(lambda: f"status page {url}" in gw.log, 20, what="the status page's URL in the log")
    files = make_series(tmp_path / "in", N)
    r = storescu(gw.port, files)
    assert r.returncode == 0 and "E:" not in r.stderr, r.stderr
    wait_until(lambda: _index(gw)["states"] == {"dead": K, "done": N - K}, 60, what="K dead, M done in the index")
    return gw, url, pacs


def test_status_json_and_metrics_agree_with_the_index(workload):
    gw, url, _ = workload
    idx = _index(gw)
    assert idx["instances"] == N

    def status():
        code, body = _get(url + "status.json")
        assert code == 200
        return json.loads(body)

    # The queue depths are counted by the housekeeping tick (every 5 s): wait for a count after the work.
    doc = wait_until(lambda: (s := status())["destinations"]["pacs"]["dead"] == K and s, 30,
                     what="the tick to count the dead letters")
    pacs = doc["destinations"]["pacs"]
    assert (pacs["queued"], pacs["in_flight"], pacs["committing"], pacs["dead"]) == (0, 0, 0, K)
    assert pacs["reachable"] is True and pacs["oldest_waiting"] is None
    assert doc["counts"] == {"received": N, "refused": 0, "forwarded": N - K, "dead_lettered": K}
    assert {d["sop_uid"]: d["reason"] for d in doc["dead_letters"]} == idx["dead"]
    assert all("0xA900" in d["reason"] for d in doc["dead_letters"])
    assert doc["service"]["healthy"] is True and doc["disk"]["free_bytes"] > 0
    assert "Test^Patient" not in json.dumps(doc) and "PID-1" not in json.dumps(doc)  # no patient data

    m = _metrics(url)
    assert m[("gateway_instances_received_total", (("outcome", "stored"), ("source", "AE:STORESCU")))] == N
    assert m[("gateway_received_bytes_total", (("source", "AE:STORESCU"),))] == idx["bytes"]
    assert m[("gateway_store_seconds_count", ())] == N
    assert m[("gateway_instances_forwarded_total", (("destination", "pacs"),))] == N - K
    assert m.get(("gateway_forward_failures_total", (("destination", "pacs"),)), 0) == 0  # 0xA900: no retry
    assert m[("gateway_dead_letters_total", (("kind", "forward"), ("target", "pacs")))] == K
    assert m[("gateway_queue_jobs", (("kind", "forward"), ("state", "dead"), ("target", "pacs")))] == K
    assert m[("gateway_queue_jobs", (("kind", "forward"), ("state", "queued"), ("target", "pacs")))] == 0
    assert m[("gateway_destination_reachable", (("destination", "pacs"),))] == 1
    assert m[("gateway_disk_free_bytes", ())] > 0
    assert m[("gateway_metrics_events_dropped_total", ())] == 0


def test_healthz_follows_the_index(workload):
    gw, url, _ = workload
    assert _get(url + "healthz") == (200, "ok\n")
    index = gw.buffer / "index.sqlite"
    away = gw.buffer / "index.sqlite.away"
    # The index file gone from its place (the service's open connection still holds it, so this is
    # undone below without harm): what a restart would find.
    index.rename(away)
    try:
        code, body = _get(url + "healthz")
        assert code == 503 and body.startswith(f"index: cannot open {index}"), body
        assert json.loads(_get(url + "status.json")[1])["service"]["healthy"] is False
    finally:
        away.rename(index)
    assert _get(url + "healthz") == (200, "ok\n")
    # The server ends with the service, and the service ends cleanly with it.
    assert gw.stop() == 0 and "stopped" in gw.log and "Traceback" not in gw.log, gw.log[-3000:]
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "healthz", timeout=5)


def test_the_page_updates_itself_in_a_real_browser(workload, tmp_path, browser):
    """Headless Chromium loads the page once; a C-STORE later changes the count it shows, with no
    reload (Server-Sent Events)."""
    gw, url, _ = workload
    browser.get(url)
    wait_until(lambda: text(browser, "received") == str(N), 20, what="the page to show N")
    wait_until(lambda: text(browser, "stream") == "live", 20, what="the stream to be live")
    marker = browser.execute_script("window.notReloaded = 42; return window.notReloaded")
    extra = make_ct(tmp_path / "one-more.dcm", number=99)
    r = storescu(gw.port, [tmp_path / "one-more.dcm"])
    assert r.returncode == 0 and "E:" not in r.stderr, r.stderr
    wait_until(lambda: text(browser, "received") == str(N + 1), 20, what="the page to show one more, by itself")
    assert browser.execute_script("return window.notReloaded") == marker  # the same page, not reloaded
    wait_until(lambda: text(browser, "dead-lettered") is not None, 20, what="the dead-lettered count")
    assert text(browser, "dead-lettered") == str(K)
    assert str(extra.PatientName) not in browser.page_source
    browser.save_screenshot(str(tmp_path / "status-page.png"))
    assert (tmp_path / "status-page.png").stat().st_size > 0


def test_check_config_refuses_a_non_loopback_bind_without_a_token(gateway_factory):
    gw = gateway_factory(start=False)
    r = gw.cli("check-config", "--set", 'status_http.bind="0.0.0.0"')
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "status_http.bind: 0.0.0.0 is not loopback: set status_http.token" in r.stderr


def test_a_taken_status_port_leaves_the_dicom_service_running(gateway_factory, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        gw = gateway_factory({"status_http": {"port": port}})
        wait_until(lambda: "status page: cannot listen on" in gw.log, 20, what="the warning")
        src = tmp_path / "a.dcm"
        make_ct(src)
        r = storescu(gw.port, [src])
        assert r.returncode == 0 and "E:" not in r.stderr, r.stderr
