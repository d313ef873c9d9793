"""Prometheus metrics for the running service, in a CollectorRegistry of its own.

Two sources, two mechanisms:

- **Counters and the C-STORE histogram** are folded from the event stream (gateway/events.py) by
  `MetricsObserver`: its own bounded subscription, drained by its own thread, so publishing never
  waits for it (a C-STORE handler's publish only offers to the queue; when the observer falls
  behind it loses its oldest events, counted in gateway_metrics_events_dropped_total, rather than
  slowing the sender). They count since the service started, as Prometheus counters do.
- **Gauges** (queue depth per kind/target/state, oldest waiting job, disk, destination reachable,
  printer) are read at scrape time from the state snapshot (gateway/state.py) and the index
  (backlog.py) by `SnapshotCollector`: no second bookkeeping that could drift from the index.

The registry is not prometheus_client's global REGISTRY: the gateway's figures only, no process
collector of a library's choosing, and two services in one test process do not collide.

Metric names and labels (counters end in _total in the text format):

  gateway_instances_received_total{source, outcome}   source "AE:<title>" / "MEDIA:<label>" / ...,
                                                      outcome the buffer's (stored, identical, ...)
  gateway_received_bytes_total{source}
  gateway_instances_refused_total{source, refusal}    refusal: the intake's name (disk-full, ...) or
                                                      the Store SCP's DIMSE status ("0xA700")
  gateway_store_seconds{le}  histogram                intake of one C-STORE: received -> durable and
                                                      indexed (Received.seconds), AE sources only
  gateway_instances_forwarded_total{destination}
  gateway_forward_failures_total{destination}         one instance refused or failed, to be retried
  gateway_dead_letters_total{kind, target}            jobs given up (dead-lettered, export dead)
  gateway_print_jobs_total{status}                    print jobs ending DONE or FAILURE (PS3.3 C.13.8.1)
  gateway_media_exports_total{drive, outcome}         verified, failed (waits for the next medium),
                                                      dead (given up)
  gateway_associations_total{calling_ae, outcome}     association requests answered by the listener:
                                                      outcome "accepted" or "refused" (A-ASSOCIATE-RJ);
                                                      calling_ae as compared (normalised); the first
                                                      MAX_AE_LABELS titles get their own label, later
                                                      ones count as "(other)" (a scanner trying titles
                                                      must not grow the registry without bound)
  gateway_associations_closed_total{how}              accepted associations that ended: "released"
                                                      or "aborted"
  gateway_associations_open                           accepted and not yet ended (folded from the
                                                      same events: low by what the observer dropped)
  gateway_qr_queries_total{outcome}                   C-FIND requests on the buffer ended (the Q/R SCP's
                                                      qr-query), by the final status's class: success,
                                                      cancel, refused (0x0124, 0xA700...) or failed (0xA900,
                                                      0xCxxx) (gateway/status/qr_activity.py outcome())
  gateway_qr_retrieves_total{operation, outcome}      C-MOVE / C-GET requests served ended (qr-retrieve):
                                                      outcome success, warning (0xB000: some sub-operations
                                                      failed or warned), cancel, refused (0xA701, 0xA702,
                                                      0xA801, 0x0124), failed, or aborted (the requestor
                                                      left before the final response)
  gateway_qr_suboperations_total{operation, result}   their C-STORE sub-operations: completed, failed,
                                                      warning (PS3.4 C.4.2.1.5)
  gateway_metrics_events_dropped_total                events this observer lost (it fell behind)
  gateway_queue_jobs{kind, target, state}             jobs not done, per state (state="dead": dead
                                                      letters waiting for an operator)
  gateway_queue_oldest_job_age_seconds{kind, target}  age of the oldest waiting job
  gateway_disk_free_bytes / _total_bytes / _reserve_bytes   the buffer's file system
  gateway_destination_reachable{destination}          1 / 0; absent until first tried
  gateway_printer_status{printer, status}             1 for the printer's current DICOM status
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.buffer.index import Index
from gateway.event_kinds import (ASSOCIATION_CLOSED, ASSOCIATION_OPENED, ASSOCIATION_REFUSED, DEAD_LETTERED,
                                 EXPORT_FAILED, EXPORT_VERIFIED, FORWARD_FAILED, FORWARDED, PRINT_JOB, QR_QUERY,
                                 QR_RETRIEVE, RECEIVED, STORE_REFUSED)
from gateway.events import Event, EventBus
from gateway.status.backlog import oldest_waiting
from gateway.status.qr_activity import QrActivity, outcome

log = logging.getLogger("gateway.status.metrics")

COUNTED = (RECEIVED, STORE_REFUSED, FORWARDED, FORWARD_FAILED, DEAD_LETTERED, PRINT_JOB, EXPORT_VERIFIED,
           EXPORT_FAILED, ASSOCIATION_OPENED, ASSOCIATION_REFUSED, ASSOCIATION_CLOSED, QR_QUERY, QR_RETRIEVE)
# Distinct calling AE titles labelled in gateway_associations_total; the rest count as OTHER_AE.
# Configured peers are a handful; refused titles are whatever a peer sends.
MAX_AE_LABELS = 64
OTHER_AE = "(other)"
# Seconds; a C-STORE's intake is an fsync and a commit: milliseconds on an SSD, up to seconds on a
# tired SD card.
STORE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The print job statuses that end a job (PS3.3 C.13.8.1 Execution Status).
_FINAL_PRINT = ("DONE", "FAILURE")


# The observer folds a burst of events at once, this long after the first (seconds): one wake-up of
# its thread per burst, not per C-STORE (gateway/events.py Subscription.take).
LINGER_S = 0.1


class MetricsObserver:
    """Folds the counted kinds (COUNTED) into counters of `registry`, and the Q/R kinds also into
    `qr` (QrActivity: today's counts and the last failure, for the status page).

    events: the service's bus. queue_size: the subscription's bound (events beyond it while the
    thread is behind are dropped oldest first and counted). Thread-safe; start() / stop() run the
    folding thread; without start(), sync() folds in the caller's thread (tests)."""

    def __init__(self, events: EventBus, registry: CollectorRegistry, queue_size: int = 10000):
        self.events = events
        r = registry
        self.received = Counter("gateway_instances_received", "Instances taken into the buffer",
                                ["source", "outcome"], registry=r)
        self.received_bytes = Counter("gateway_received_bytes", "Bytes of the instances taken in",
                                      ["source"], registry=r)
        self.refused = Counter("gateway_instances_refused", "Objects refused and not stored",
                               ["source", "refusal"], registry=r)
        self.store_seconds = Histogram("gateway_store_seconds", "C-STORE intake: received to durable and indexed",
                                       buckets=STORE_BUCKETS, registry=r)
        self.forwarded = Counter("gateway_instances_forwarded", "Instances delivered to a destination",
                                 ["destination"], registry=r)
        self.forward_failures = Counter("gateway_forward_failures", "Instance sends refused or failed (retried)",
                                        ["destination"], registry=r)
        self.dead = Counter("gateway_dead_letters", "Jobs given up (dead-lettered)", ["kind", "target"], registry=r)
        self.print_jobs = Counter("gateway_print_jobs", "Print jobs ended, by Execution Status", ["status"],
                                  registry=r)
        self.exports = Counter("gateway_media_exports", "Media export attempts ended", ["drive", "outcome"],
                               registry=r)
        self.associations = Counter("gateway_associations", "Association requests answered, by calling AE title "
                                    "and outcome (accepted, refused)", ["calling_ae", "outcome"], registry=r)
        self.associations_closed = Counter("gateway_associations_closed", "Accepted associations ended "
                                           "(released, aborted)", ["how"], registry=r)
        self.associations_open = Gauge("gateway_associations_open", "Associations accepted and not yet ended",
                                       registry=r)
        self.qr_queries = Counter("gateway_qr_queries", "C-FIND requests on the buffer ended, by the final "
                                  "status's class (success, cancel, refused, failed)", ["outcome"], registry=r)
        self.qr_retrieves = Counter("gateway_qr_retrieves", "C-MOVE / C-GET requests served ended, by the final "
                                    "status's class (success, warning, cancel, refused, failed, aborted)",
                                    ["operation", "outcome"], registry=r)
        self.qr_suboperations = Counter("gateway_qr_suboperations", "C-STORE sub-operations of C-MOVE / C-GET "
                                        "(completed, failed, warning)", ["operation", "result"], registry=r)
        self.qr = QrActivity()
        # Only the folding thread (or sync()'s caller) touches these two.
        self._ae_labels: set[str] = set()
        self._open = 0
        self._sub = events.subscribe(maxsize=queue_size, kinds=COUNTED)
        r.register(_DroppedCollector(self._sub))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-metrics", daemon=True)

    def start(self) -> None:
        """Fold events in its own thread from now on."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop folding (within `timeout` seconds) and leave the bus."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.events.unsubscribe(self._sub)

    def sync(self, timeout: float = 5.0) -> bool:
        """Fold every event published before this call. False when the thread did not catch up
        within `timeout` seconds."""
        if not self._thread.is_alive():
            self._drain()
            return True
        barrier = threading.Event()
        try:
            self._sub.put(barrier, timeout=timeout)  # FIFO: set once all before it are folded
        except queue.Full:
            return False
        return barrier.wait(timeout)

    def apply(self, ev: Event) -> None:
        """Fold one event into the counters."""
        d, kind = ev.data, ev.kind
        if kind == RECEIVED:
            source = d.get("source", "")
            self.received.labels(source, d.get("outcome", "")).inc()
            self.received_bytes.labels(source).inc(d.get("bytes", 0))
            if source.startswith("AE:") and d.get("seconds"):
                self.store_seconds.observe(d["seconds"])
        elif kind == STORE_REFUSED:
            status = d.get("status")
            refusal = d.get("refusal") or (f"0x{status:04X}" if status is not None else "unknown")
            self.refused.labels(d.get("source", ""), refusal).inc()
        elif kind == FORWARDED:
            self.forwarded.labels(d["target"]).inc(d.get("count", 0))
        elif kind == FORWARD_FAILED:
            self.forward_failures.labels(d["target"]).inc()
        elif kind == DEAD_LETTERED:
            self.dead.labels("forward", d["target"]).inc()
        elif kind == PRINT_JOB and d.get("status") in _FINAL_PRINT:
            self.print_jobs.labels(d["status"]).inc()
        elif kind == EXPORT_VERIFIED:
            self.exports.labels(d["drive"], "verified").inc()
        elif kind == EXPORT_FAILED:
            dead = d.get("state") == "dead"
            self.exports.labels(d["drive"], "dead" if dead else "failed").inc()
            if dead:
                self.dead.labels("export", d["drive"]).inc()
        elif kind == ASSOCIATION_OPENED:
            self.associations.labels(self._ae_label(d["calling_ae"]), "accepted").inc()
            self._open += 1
            self.associations_open.set(self._open)
        elif kind == ASSOCIATION_REFUSED:
            self.associations.labels(self._ae_label(d["calling_ae"]), "refused").inc()
        elif kind == ASSOCIATION_CLOSED:
            self.associations_closed.labels(d["how"]).inc()
            # An opening lost to a full queue must not drive the gauge below zero.
            self._open = max(0, self._open - 1)
            self.associations_open.set(self._open)
        elif kind == QR_QUERY:
            self.qr_queries.labels(outcome(d["status"])).inc()
            self.qr.apply(ev)
        elif kind == QR_RETRIEVE:
            operation = d["operation"]
            self.qr_retrieves.labels(operation, outcome(d["status"])).inc()
            for result in ("completed", "failed", "warning"):
                self.qr_suboperations.labels(operation, result).inc(d[result])
            self.qr.apply(ev)

    def _ae_label(self, title: str) -> str:
        if title in self._ae_labels:
            return title
        if len(self._ae_labels) >= MAX_AE_LABELS:
            return OTHER_AE
        self._ae_labels.add(title)
        return title

    def _fold(self, item: Any) -> None:
        if isinstance(item, threading.Event):
            item.set()
            return
        try:
            self.apply(item)
        except (KeyError, TypeError, ValueError) as exc:
            # A payload this code misreads costs one count, never the observer thread.
            log.warning("metrics: cannot count a %s event: %s", item.kind, exc)

    def _drain(self) -> None:
        while True:
            try:
                self._fold(self._sub.get_nowait())
            except queue.Empty:
                return

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for ev in self._sub.take(0.5, LINGER_S):
                    self._fold(ev)
            except queue.Empty:
                continue


class _DroppedCollector:
    """gateway_metrics_events_dropped_total, read from the subscription at scrape time."""

    def __init__(self, sub):
        self._sub = sub

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        c = CounterMetricFamily("gateway_metrics_events_dropped",
                                "Events the metrics observer lost because it fell behind (its counters are low by as many)")
        c.add_metric([], self._sub.dropped)
        yield c


class SnapshotCollector:
    """The gauges, read at scrape time: from `snapshot()` (StateObserver.get_status: queues, disk,
    destinations, printer) and, when `index` is given, the oldest waiting job per kind/target from
    the index. An unreadable index leaves the age gauge out (logged), never fails the scrape."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]], index: Index | None = None,
                 clock: Callable[[], float] = time.time):
        self._snapshot = snapshot
        self._index = index
        self._clock = clock

    def describe(self) -> list[Metric]:
        return []  # collect() is cheap enough to name its metrics at registration; none are fixed

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        depth = GaugeMetricFamily("gateway_queue_jobs", "Jobs not done, by kind, target and state "
                                  "(counted from the index by the housekeeping tick)",
                                  labels=["kind", "target", "state"])
        for kind, targets in sorted((s.get("queues") or {}).items()):
            for target, states in sorted(targets.items()):
                for state, n in sorted(states.items()):
                    depth.add_metric([kind, target, state], n)
        yield depth
        if self._index is not None:
            age = GaugeMetricFamily("gateway_queue_oldest_job_age_seconds",
                                    "Age of the oldest job still waiting (queued, in flight, committing)",
                                    labels=["kind", "target"])
            try:
                now = self._clock()
                for (kind, target), created in sorted(oldest_waiting(self._index).items()):
                    age.add_metric([kind, target], max(0.0, now - created))
            except sqlite3.Error as exc:
                log.warning("metrics: cannot read the oldest jobs from the index: %s", exc)
            yield age
        disk = s.get("disk") or {}
        for key, help_text in (("free_bytes", "Free space on the buffer's file system"),
                               ("total_bytes", "Size of the buffer's file system"),
                               ("reserve_bytes", "Free space the buffer keeps: a C-STORE that would cross it is refused")):
            if disk.get(key) is not None:
                yield GaugeMetricFamily(f"gateway_disk_{key}", help_text, value=disk[key])
        reach = GaugeMetricFamily("gateway_destination_reachable", "1: the last association worked; 0: it failed",
                                  labels=["destination"])
        for name, d in sorted((s.get("destinations") or {}).items()):
            if d.get("reachable") is not None:
                reach.add_metric([name], 1.0 if d["reachable"] else 0.0)
        yield reach
        printer = s.get("printer")
        if printer and printer.get("status"):
            p = GaugeMetricFamily("gateway_printer_status", "The printer's DICOM status (PS3.3 C.13.9.1)",
                                  labels=["printer", "status"])
            p.add_metric([printer["name"], printer["status"]], 1.0)
            yield p


def new_registry(events: EventBus, snapshot: Callable[[], dict[str, Any]], index: Index | None = None,
                 queue_size: int = 10000) -> tuple[CollectorRegistry, MetricsObserver]:
    """A private registry (auto_describe off) with the event-fed counters (the observer, not
    started; its `qr` is the Q/R activity the status page shows) and the scrape-time gauges."""
    registry = CollectorRegistry(auto_describe=False)
    observer = MetricsObserver(events, registry, queue_size)
    registry.register(SnapshotCollector(snapshot, index))
    return registry, observer


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (version 0.0.4), as /metrics serves it."""
    return generate_latest(registry)
