"""The observers' clients for bench_observers.py, in a process of their own: a status page's
Server-Sent Events stream and a Prometheus-style scraper.

    python bench/observer_client.py http://127.0.0.1:PORT/ [--scrape-s 1.0]

One thread holds GET /events open and reads what the server pushes (what a browser's EventSource
does, without the page's DOM work: a browser's CPU is not the gateway's); the main thread GETs
/metrics every --scrape-s seconds (Prometheus' default is 15 s or more; 1 s is a harsh scraper).
Stdlib only (http.client). Runs until SIGTERM or SIGINT, then prints one JSON line: SSE events and
bytes received, scrapes done and failed, the last scrape's size.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
import time
from urllib.parse import urlsplit


class SseReader(threading.Thread):
    def __init__(self, host: str, port: int):
        super().__init__(name="sse", daemon=True)
        self.host, self.port = host, port
        self.events = 0
        self.bytes = 0
        self.error = ""

    def run(self) -> None:
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=None)
            conn.request("GET", "/events", headers={"Accept": "text/event-stream"})
            rsp = conn.getresponse()
            if rsp.status != 200:
                self.error = f"/events answered {rsp.status}"
                return
            while True:
                line = rsp.fp.readline()
                if not line:
                    self.error = self.error or "/events stream ended"
                    return
                self.bytes += len(line)
                if line.startswith(b"event:"):
                    self.events += 1
        except OSError as exc:
            self.error = f"/events: {exc}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--scrape-s", type=float, default=1.0)
    args = ap.parse_args(argv)
    u = urlsplit(args.url)
    halt = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: halt.set())
    sse = SseReader(u.hostname, u.port)
    sse.start()
    scrapes = failed = last_size = 0
    while not halt.is_set():
        t0 = time.monotonic()
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            conn.request("GET", "/metrics")
            rsp = conn.getresponse()
            body = rsp.read()
            conn.close()
            if rsp.status == 200:
                scrapes, last_size = scrapes + 1, len(body)
            else:
                failed += 1
        except OSError:
            failed += 1
        halt.wait(max(0.0, args.scrape_s - (time.monotonic() - t0)))
    print(json.dumps({"sse_events": sse.events, "sse_bytes": sse.bytes, "sse_error": sse.error,
                      "scrapes": scrapes, "scrapes_failed": failed, "metrics_bytes": last_size}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
