"""The read-only status endpoint of issue 9 item 5: what a biomedical engineer's browser and a
Prometheus server read from the box.

  metrics.py   counters folded from the event stream (its own subscription and thread), and the
               gauges read from the state snapshot and the index at scrape time, in a
               prometheus-client CollectorRegistry of its own
  qr_activity.py  Query/Retrieve served from the buffer (qr-query, qr-retrieve events), folded by
               the metrics observer for the status document: today's counts, the last failure
  backlog.py   the read-only index queries: per target the oldest waiting job, the last dead letters
  view.py      the status document (/status.json, the page's Server-Sent Events): snapshot + backlog
  server.py    the aiohttp server in its own thread and event loop: /healthz, /status.json,
               /metrics, / (the page) and /events (SSE); no control action, except the
               simulated box's /sim/act/ (loopback, hw-sim devices only: a real device offers no view)
  page.html    the status page (plain HTML/CSS/JS, no build step)
  views.py     the simulated box: the DeviceView protocol hw-sim's simulators implement, and the
               /sim/ page's state (every view, the queue summary)
  sim_page.py  the simulated box's page (/sim/; served on loopback with a device view only)

Floor: "domains" (tests/unit/test_layers.py). It imports the leaves (events), the config floor
(gateway.config, gateway.state) and the buffer (index reads only); never gateway.dicom or
gateway.app: the app wires it and hands it what it needs (the snapshot, the index, healthy()).
"""
