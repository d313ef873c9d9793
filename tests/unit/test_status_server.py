"""The status server on its own (no DICOM): routes, the token, read-only, the SSE bound, a bounded
stop. The whole service with real peers is tests/interop/test_status_http.py."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from gateway.config.status_http import StatusHttpSection
from gateway.events import EventBus
from gateway.status.health import Health, index_problem
from gateway.status.metrics import new_registry
from gateway.status.server import StatusServer

TOKEN = "s3cret-token-of-24-chars"


def _snapshot():
    return {"pid": 1, "started": 1.0, "queues": None, "destinations": {}, "printer": None, "media": {},
            "disk": {}, "counts": {"received": 0, "refused": 0, "forwarded": 0, "dead_lettered": 0},
            "last_received": {"at": None, "source": ""}, "last_forwarded": {"at": None, "target": ""}}


@pytest.fixture
def serve():
    servers = []

    def make(health=lambda: None, **section):
        # port 0 (a free port) is for tests only: the config bounds status_http.port to 1-65535.
        sec = StatusHttpSection.model_construct(**{"enabled": True, "bind": "127.0.0.1", "port": 0, "token": "",
                                                   "sse_max_clients": 4, **section})
        registry, _ = new_registry(EventBus(), _snapshot)
        server = StatusServer(sec, _snapshot, registry, health)
        server.start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop()


def _get(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as rsp:
            return rsp.status, rsp.read().decode(), rsp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def test_routes_and_healthz(serve):
    problem = [None]
    s = serve(health=lambda: problem[0])
    assert _get(s.url + "healthz")[:2] == (200, "ok\n")
    problem[0] = "index: cannot open /x/index.sqlite: unable to open database file"
    assert _get(s.url + "healthz")[:2] == (503, problem[0] + "\n")
    status, body, _ = _get(s.url + "status.json")
    doc = json.loads(body)
    assert status == 200 and doc["service"] == {"pid": 1, "started": 1.0, "uptime_s": doc["service"]["uptime_s"],
                                                "healthy": False, "problem": problem[0]}
    status, body, headers = _get(s.url + "metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "gateway_metrics_events_dropped_total 0.0" in body
    status, body, headers = _get(s.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html") and 'EventSource("events")' in body


def test_read_only_every_other_method_is_refused(serve):
    s = serve()
    for path in ("", "healthz", "status.json", "metrics", "events"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert _get(s.url + path, method=method)[0] == 405, (method, path)
    assert _get(s.url + "queue/retry")[0] == 404


def test_a_token_is_required_on_every_route(serve):
    s = serve(token=TOKEN)
    for path in ("", "healthz", "status.json", "metrics", "events"):
        status, _, headers = _get(s.url + path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
        assert _get(s.url + path, {"Authorization": "Bearer wrong-token-of-24-chars!"})[0] == 401
    assert _get(s.url + "healthz", {"Authorization": f"Bearer {TOKEN}"})[:2] == (200, "ok\n")


def test_sse_sends_the_document_at_once_and_bounds_its_clients(serve):
    s = serve(sse_max_clients=1)
    first = urllib.request.urlopen(s.url + "events", timeout=10)
    try:
        assert first.headers["Content-Type"] == "text/event-stream"
        assert first.readline() == b"event: status\n"
        data = first.readline()
        assert data.startswith(b"data: ") and json.loads(data[6:])["counts"]["received"] == 0
        status, body, _ = _get(s.url + "events")
        assert status == 503 and "status_http.sse_max_clients" in body
    finally:
        first.close()


def test_a_closed_page_frees_its_stream_slot(serve):
    from peers import wait_until

    s = serve(sse_max_clients=1)
    first = urllib.request.urlopen(s.url + "events", timeout=10)
    assert first.readline() == b"event: status\n"
    first.close()  # the tab is closed; nothing changes, so no write would notice it

    def second_gets_in():
        status, _, _ = _peek(s.url + "events")
        return status == 200

    wait_until(second_gets_in, 10, what="the closed stream's slot to be free")


def _peek(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as rsp:
            rsp.readline()
            return rsp.status, "", rsp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def test_stop_ends_the_thread_with_a_stream_open(serve):
    s = serve()
    stream = urllib.request.urlopen(s.url + "events", timeout=10)
    try:
        assert stream.readline() == b"event: status\n"
        s.stop(timeout=10)
        assert not s._thread.is_alive()
    finally:
        stream.close()


def test_a_taken_port_is_one_oserror(serve):
    s = serve()
    with pytest.raises(OSError):
        serve(port=s.port)


def test_health_probes_the_index_read_only(tmp_path):
    from gateway.buffer.index import Index

    path = tmp_path / "index.sqlite"
    assert index_problem(path).startswith(f"index: cannot open {path}")
    assert not path.exists()  # the probe never creates an index
    Index(path).close()
    assert index_problem(path) is None
    assert Health(lambda: True, path)() is None
    assert Health(lambda: False, path)().startswith("a worker thread stopped")
    path.rename(tmp_path / "away.sqlite")
    assert Health(lambda: True, path)().startswith("index: cannot open")
