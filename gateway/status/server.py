"""The status endpoint: an aiohttp server in a thread of its own, with its own event loop.

One loop in one thread serves every client (a Prometheus scrape, a browser's status page holding a
Server-Sent Events stream, a monitoring probe), so the DICOM threads never wait on a web client;
what a handler reads from the index runs in the loop's executor, so a slow read does not stall the
other clients either. Read-only by construction: only GET routes exist (aiohttp answers any other
method 405), and none changes anything -- with one exception, the simulated box below.

  GET /healthz      200 "ok" when health() says so; else 503 with the reason (one line)
  GET /status.json  the status document (gateway/status/view.py)
  GET /metrics      the private registry in the Prometheus text format (gateway/status/metrics.py)
  GET /             the status page (page.py); it follows /events
  GET /events       text/event-stream: an "status" event with the status document at once, then
                    whenever it changed, looked at every SSE_EVERY_S seconds (at most ~2 a second),
                    a comment line every KEEPALIVE_S so that proxies keep the stream open;
                    at most sse_max_clients streams at once (one more: 503)

The simulated box (hw-sim you can see; views.py): when status_http.bind is loopback and at least
one device the app handed over offers a view (only hw-sim's simulators do), these exist too; on any
other bind, or with no view, they answer 404, so a real box never exposes a control action:

  GET  /sim/                       the simulated box's page (sim_page.py); it follows /sim/events
  GET  /sim/state                  views.page_state: every view's state, the queue, the printer
  GET  /sim/events                 text/event-stream: a "sim" event with /sim/state at once, then
                                   whenever a simulator reported a change (or the queue's counts
                                   changed); shares sse_max_clients with /events
  GET  /sim/film/<view>            the view's last printed film, image/png (404: none yet)
  POST /sim/act/<view>/<action>    Content-Type application/json, body {} or {"arg": value}: the
                                   view's action; 200 its one-line outcome, 400 refused (one line),
                                   404 no such view, 415 another content type

A configured token (status_http.token) is required on every route as `Authorization: Bearer
<token>` (401 without it). The config refuses a bind address other than loopback without one.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
from typing import Any, Awaitable, Callable, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.buffer.index import Index
from gateway.config.status_http import StatusHttpSection, is_loopback
from gateway.status import view
from gateway.status.metrics import exposition
from gateway.status.page import PAGE
from gateway.status.qr_activity import QrActivity
from gateway.status.sim_page import SIM_PAGE
from gateway.status.views import SimViews, page_state

log = logging.getLogger("gateway.status")

# generate_latest() writes the text format 0.0.4, which every Prometheus reads; newer
# prometheus-client releases name another version CONTENT_TYPE_LATEST, so the type is spelled here.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SSE_EVERY_S = 0.5
KEEPALIVE_S = 15.0
# A start that has not bound within this long is reported as failed (seconds).
_START_TIMEOUT_S = 10.0
# Keys of the status document that change with the clock alone: not a reason to send an event.
_CLOCK_KEYS = ("at", "uptime_s", "oldest_age_s")


def _without_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_clock(v) for k, v in value.items() if k not in _CLOCK_KEYS}
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


class StatusServer:
    """section: [status_http]. snapshot: StateObserver.get_status. registry: the metrics'
    CollectorRegistry. qr: the Query/Retrieve activity the metrics observer folds (MetricsObserver.qr,
    gateway/status/qr_activity.py), None: the document has none.
    health: None when healthy, else the reason (gateway/status/health.py).
    index: the buffer's index, read only (None: the document's index parts stay empty).
    devices: the device objects the app built (asked at each look; views.py finds their views),
    None: no /sim/ pages.

    start() binds and serves from its own thread, returns the URL; raises OSError when the address
    cannot be bound (in use, not of this host). stop() ends within `timeout` seconds."""

    def __init__(self, section: StatusHttpSection, snapshot: Callable[[], dict[str, Any]],
                 registry: CollectorRegistry, health: Callable[[], str | None], index: Index | None = None,
                 devices: Callable[[], Iterable[Any]] | None = None, qr: QrActivity | None = None):
        self.section = section
        self._qr = qr
        self._snapshot = snapshot
        self._registry = registry
        self._health = health
        self._index = index
        self._token = section.token
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._clients = 0
        self._shared: tuple[float, dict[str, Any], str] | None = None  # (monotonic, doc, stable key)
        self.port: int | None = None
        # Control actions exist on loopback only: whoever reaches them could jam the printer.
        self.sim = SimViews(devices) if devices is not None and is_loopback(section.bind) else None
        self._sim_changed: asyncio.Event | None = None

    def sim_url(self) -> str | None:
        """The simulated box's page, when it is served (loopback, a device with a view); else None."""
        if self.sim is None or self.port is None or not self.sim.current():
            return None
        return self.url + "sim/"

    @property
    def url(self) -> str:
        host = self.section.bind
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    # -- running ------------------------------------------------------------------------------------
    def start(self) -> str:
        """Bind and serve; returns the URL. OSError when the address cannot be bound."""
        self._thread = threading.Thread(target=self._run, name="status-http", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise OSError(f"status_http: the server did not start within {_START_TIMEOUT_S:.0f} s")
        if self._failed is not None:
            raise self._failed
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        """Close the streams and the socket; returns within about `timeout` seconds."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # the loop already ended
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("status page: the server thread did not end within %.0f s; left behind", timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it
            self._failed = exc
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        self._sim_changed = asyncio.Event()
        if self.sim is not None:
            loop, changed = asyncio.get_running_loop(), self._sim_changed
            self.sim.add_listener(lambda: loop.is_closed() or loop.call_soon_threadsafe(changed.set))
        app = web.Application(middlewares=[self._auth], client_max_size=64 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/status.json", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/events", self._events)
        app.router.add_get("/sim/", self._sim_page)
        app.router.add_get("/sim/state", self._sim_state)
        app.router.add_get("/sim/events", self._sim_events)
        app.router.add_get("/sim/film/{view}", self._sim_film)
        app.router.add_post("/sim/act/{view}/{action}", self._sim_act)
        # No access log: a scrape every 15 s is not news, and the journal on an SD card is not a log store.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.section.bind, self.section.port)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    # -- handlers -----------------------------------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler):
        if self._token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
                return web.Response(status=401, text="401: send 'Authorization: Bearer <status_http.token>'\n",
                                    headers={"WWW-Authenticate": 'Bearer realm="dicom-gateway"'})
        return await handler(request)

    async def _off_loop(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _healthz(self, request: web.Request) -> web.Response:
        problem = await self._off_loop(self._health)
        if problem is None:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=problem + "\n")

    def _document(self) -> dict[str, Any]:
        now = time.time()
        return view.build(self._snapshot(), self._index, self._health(), now=now,
                          qr=None if self._qr is None else self._qr.summary(now))

    async def _status(self, request: web.Request) -> web.Response:
        doc = await self._off_loop(self._document)
        return web.json_response(doc, dumps=lambda d: json.dumps(d, indent=1))

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await self._off_loop(exposition, self._registry)
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html", charset="utf-8")

    async def _shared_document(self) -> tuple[dict[str, Any], str]:
        """One document for every open stream, built at most once per SSE_EVERY_S."""
        now = time.monotonic()
        if self._shared is None or now - self._shared[0] >= SSE_EVERY_S:
            doc = await self._off_loop(self._document)
            self._shared = (time.monotonic(), doc, json.dumps(_without_clock(doc), sort_keys=True))
        return self._shared[1], self._shared[2]

    async def _events(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, "status", self._shared_document)

    async def _stream(self, request: web.Request, event: str,
                      document: Callable[[], Awaitable[tuple[dict[str, Any], str]]],
                      wake: asyncio.Event | None = None) -> web.StreamResponse:
        """Server-Sent Events named `event`: document()'s (doc, key) sent whenever its key changed,
        looked at every SSE_EVERY_S (or at once when `wake` is set), a comment line every
        KEEPALIVE_S; at most sse_max_clients streams of any kind at once (one more: 503)."""
        if self._clients >= self.section.sse_max_clients:
            return web.Response(status=503, text=f"503: {self._clients} status pages are open already "
                                                 "(status_http.sse_max_clients)\n")
        self._clients += 1
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await resp.prepare(request)
            last_key, quiet = None, 0.0
            while not self._stopping.is_set():
                # A closed tab frees its slot at once, not at the next write: a browser's EventSource
                # does not retry after a 503, so a page reloaded a few times must still get in.
                if request.transport is None or request.transport.is_closing():
                    break
                if wake is not None:
                    wake.clear()
                doc, key = await document()
                if key != last_key:
                    await resp.write(f"event: {event}\ndata: {json.dumps(doc)}\n\n".encode())
                    last_key, quiet = key, 0.0
                elif quiet >= KEEPALIVE_S:
                    await resp.write(b": keepalive\n\n")
                    quiet = 0.0
                try:
                    await asyncio.wait_for((wake or self._stopping).wait(), SSE_EVERY_S)
                except asyncio.TimeoutError:
                    quiet += SSE_EVERY_S
            return resp
        except ConnectionError:
            return resp  # the page was closed: nothing to tell anyone
        finally:
            self._clients -= 1

    # -- the simulated box (views.py) ---------------------------------------------------------------
    async def _sim_views(self) -> bool:
        return self.sim is not None and bool(await self._off_loop(self.sim.current))

    @staticmethod
    def _no_sim() -> web.Response:
        return web.Response(status=404, text="404: no simulated device here (the /sim/ pages exist on a "
                                             "loopback status_http.bind with hw-sim devices only)\n")

    async def _sim_page(self, request: web.Request) -> web.Response:
        if not await self._sim_views():
            return self._no_sim()
        return web.Response(text=SIM_PAGE, content_type="text/html", charset="utf-8")

    async def _sim_document(self) -> dict[str, Any]:
        doc, _ = await self._shared_document()
        return await self._off_loop(page_state, self.sim, doc)

    async def _sim_state(self, request: web.Request) -> web.Response:
        if not await self._sim_views():
            return self._no_sim()
        return web.json_response(await self._sim_document(), dumps=lambda d: json.dumps(d, indent=1))

    async def _sim_film(self, request: web.Request) -> web.Response:
        if not await self._sim_views():
            return self._no_sim()
        try:
            png = await self._off_loop(self.sim.film, request.match_info["view"])
        except LookupError as exc:
            return web.Response(status=404, text=f"404: {exc}\n")
        if png is None:
            return web.Response(status=404, text="404: no film printed yet\n")
        return web.Response(body=png, headers={"Content-Type": "image/png", "Cache-Control": "no-store"})

    async def _sim_act(self, request: web.Request) -> web.Response:
        if not await self._sim_views():
            return self._no_sim()
        # A page of any web site may POST a form to 127.0.0.1; it cannot send application/json
        # without a CORS preflight, which nothing here answers.
        if request.content_type != "application/json":
            return web.Response(status=415, text="415: send Content-Type: application/json\n")
        try:
            args = await request.json() if request.can_read_body else {}
        except ValueError:
            return web.Response(status=400, text="400: the body is not JSON\n")
        if not isinstance(args, dict):
            return web.Response(status=400, text="400: the body must be a JSON object of arguments\n")
        view, action = request.match_info["view"], request.match_info["action"]
        try:
            outcome = await self._off_loop(self.sim.act, view, action, args)
        except LookupError as exc:
            return web.Response(status=404, text=f"404: {exc}\n")
        except ValueError as exc:
            return web.Response(status=400, text=f"400: {exc}\n")
        log.info("sim page: %s %s: %s", view, action, outcome)
        return web.Response(text=outcome + "\n")

    async def _sim_events(self, request: web.Request) -> web.StreamResponse:
        if not await self._sim_views():
            return self._no_sim()
        # A simulator's change wakes the stream at once; the queue's counts (from the status
        # document) are looked at every SSE_EVERY_S, as /events does.
        return await self._stream(request, "sim", self._sim_keyed, self._sim_changed)

    async def _sim_keyed(self) -> tuple[dict[str, Any], str]:
        state = await self._sim_document()
        return state, json.dumps(state, sort_keys=True)  # no clock in it: a view changes when it did
