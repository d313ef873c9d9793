"""The metrics of issue 9 item 5: counters folded from events by an observer of their own, gauges
read from the snapshot and the index at scrape time, read back with prometheus-client's parser."""

from __future__ import annotations

import threading

from prometheus_client.parser import text_string_to_metric_families

from gateway.buffer.index import Index
from gateway.buffer.queue import JobQueue
from gateway.event_kinds import (AssociationClosed, AssociationOpened, AssociationRefused, DeadLettered,
                                 ExportFailed, ExportVerified, ForwardFailed, Forwarded, PrintJobStatus, Received,
                                 StoreRefused)
from gateway.events import EventBus
from gateway.status import view
from gateway.status.metrics import (MAX_AE_LABELS, OTHER_AE, MetricsObserver, SnapshotCollector, exposition,
                                    new_registry)
from peers import wait_until


def samples(registry) -> dict[tuple[str, tuple], float]:
    """Every sample of the exposition, parsed back by prometheus-client's own text parser:
    (sample name, sorted labels) -> value."""
    text = exposition(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _snapshot(**over):
    snap = {"queues": None, "disk": {}, "destinations": {}, "printer": None}
    snap.update(over)
    return snap


def test_events_in_counters_out():
    bus = EventBus()
    registry, obs = new_registry(bus, _snapshot)
    for n in range(3):
        bus.publish(Received(sop_uid=f"1.2.{n}", calling_ae="CT1", source="AE:CT1", outcome="stored",
                             routes=("pacs",), bytes=1000, seconds=0.02))
    bus.publish(Received(sop_uid="1.2.0", calling_ae="CT1", source="AE:CT1", outcome="identical", bytes=1000,
                         seconds=0.3))
    # An import's instance: counted as received, not as a C-STORE's latency.
    bus.publish(Received(sop_uid="1.3", calling_ae="USB", source="MEDIA:usb", outcome="stored", bytes=7, seconds=9.0))
    bus.publish(StoreRefused(sop_uid="1.4", calling_ae="CT1", source="AE:CT1", reason="full", refusal="disk-full"))
    bus.publish(StoreRefused(sop_uid="1.5", calling_ae="X", source="AE:X", reason="no", status=0xA700))
    bus.publish(Forwarded(target="pacs", count=3))
    bus.publish(Forwarded(target="pacs", count=2))
    bus.publish(ForwardFailed(target="pacs", sop_uid="1.2.1", reason="0xA700"))
    bus.publish(DeadLettered(target="pacs", sop_uid="1.2.1", reason="refused 5 times"))
    bus.publish(PrintJobStatus(uid="9.1", status="PRINTING", info="", calling_ae="PRINTSCU"))  # not an end
    bus.publish(PrintJobStatus(uid="9.1", status="DONE", info="", calling_ae="PRINTSCU"))
    bus.publish(PrintJobStatus(uid="9.2", status="FAILURE", info="FILM JAM", calling_ae="PRINTSCU"))
    bus.publish(ExportVerified(job_id=4, drive="cd", volume_id="V", studies=1, instances=3))
    bus.publish(ExportFailed(job_id=5, drive="cd", reason="r", state="queued", attempt=1, studies=1, instances=3))
    bus.publish(ExportFailed(job_id=5, drive="cd", reason="r", state="dead", attempt=3, studies=1, instances=3))
    assert obs.sync()
    s = samples(registry)
    assert s[("gateway_instances_received_total", (("outcome", "stored"), ("source", "AE:CT1")))] == 3
    assert s[("gateway_instances_received_total", (("outcome", "identical"), ("source", "AE:CT1")))] == 1
    assert s[("gateway_instances_received_total", (("outcome", "stored"), ("source", "MEDIA:usb")))] == 1
    assert s[("gateway_received_bytes_total", (("source", "AE:CT1"),))] == 4000
    assert s[("gateway_instances_refused_total", (("refusal", "disk-full"), ("source", "AE:CT1")))] == 1
    assert s[("gateway_instances_refused_total", (("refusal", "0xA700"), ("source", "AE:X")))] == 1
    assert s[("gateway_store_seconds_count", ())] == 4  # AE sources only
    assert s[("gateway_store_seconds_bucket", (("le", "0.025"),))] == 3
    assert s[("gateway_store_seconds_bucket", (("le", "0.5"),))] == 4
    assert s[("gateway_instances_forwarded_total", (("destination", "pacs"),))] == 5
    assert s[("gateway_forward_failures_total", (("destination", "pacs"),))] == 1
    assert s[("gateway_dead_letters_total", (("kind", "forward"), ("target", "pacs")))] == 1
    assert s[("gateway_dead_letters_total", (("kind", "export"), ("target", "cd")))] == 1
    assert s[("gateway_print_jobs_total", (("status", "DONE"),))] == 1
    assert s[("gateway_print_jobs_total", (("status", "FAILURE"),))] == 1
    assert ("gateway_print_jobs_total", (("status", "PRINTING"),)) not in s
    assert s[("gateway_media_exports_total", (("drive", "cd"), ("outcome", "verified")))] == 1
    assert s[("gateway_media_exports_total", (("drive", "cd"), ("outcome", "failed")))] == 1
    assert s[("gateway_media_exports_total", (("drive", "cd"), ("outcome", "dead")))] == 1
    assert s[("gateway_metrics_events_dropped_total", ())] == 0


class _GatedObserver(MetricsObserver):
    """An observer as slow as one can be: it blocks in apply() until the test opens the gate."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def apply(self, ev):
        self.entered.set()
        self.gate.wait()
        super().apply(ev)


def test_a_stuck_observer_never_blocks_publish():
    """The C-STORE path publishes "received"; the metrics observer is stuck. Every publish returns
    while it is (its queue overflows: the oldest events are dropped and counted), and once it
    moves again it counts what it kept."""
    from prometheus_client import CollectorRegistry

    bus = EventBus()
    registry = CollectorRegistry(auto_describe=False)
    obs = _GatedObserver(bus, registry, queue_size=50)
    obs.start()
    try:
        bus.publish(Received(sop_uid="1.0", calling_ae="CT", source="AE:CT", outcome="stored"))
        assert obs.entered.wait(10), "the observer thread never took the first event"
        burst = 500
        publisher = threading.Thread(target=lambda: [
            bus.publish(Received(sop_uid=f"1.{n}", calling_ae="CT", source="AE:CT", outcome="stored"))
            for n in range(1, burst + 1)])
        publisher.start()
        publisher.join(30)  # a bound on the wait, not a measured duration
        assert not publisher.is_alive(), "publish blocked behind a stuck observer"
        assert not obs.gate.is_set()  # all of it happened while the observer was stuck
        obs.gate.set()
        assert obs.sync()
    finally:
        obs.gate.set()
        obs.stop()
    s = samples(registry)
    received = s[("gateway_instances_received_total", (("outcome", "stored"), ("source", "AE:CT")))]
    dropped = s[("gateway_metrics_events_dropped_total", ())]
    assert dropped == burst - 50 and received == 1 + 50


def test_gauges_come_from_the_snapshot_and_the_index(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    try:
        q = JobQueue(index)
        first = q.enqueue("forward", "pacs", "")
        q.enqueue("forward", "pacs", "")
        dead = q.enqueue("forward", "archive", "")
        assert q.dead_letter_jobs([dead], "given up by the test")[0].ok
        created = index.query("SELECT created FROM jobs WHERE id = ?", (first,))[0]["created"]
        snap = _snapshot(
            queues={"forward": {"pacs": {"queued": 2, "in_flight": 0, "committing": 0, "dead": 0},
                                "archive": {"queued": 0, "in_flight": 0, "committing": 0, "dead": 1}}},
            disk={"free_bytes": 5 << 30, "total_bytes": 8 << 30, "reserve_bytes": 256 << 20},
            destinations={"pacs": {"reachable": True}, "archive": {"reachable": False}, "new": {"reachable": None}},
            printer={"name": "film", "status": "WARNING", "info": "SUPPLY LOW"})
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(lambda: snap, index, clock=lambda: created + 42.0))
        s = samples(registry)
        assert s[("gateway_queue_jobs", (("kind", "forward"), ("state", "queued"), ("target", "pacs")))] == 2
        assert s[("gateway_queue_jobs", (("kind", "forward"), ("state", "dead"), ("target", "archive")))] == 1
        assert s[("gateway_queue_oldest_job_age_seconds", (("kind", "forward"), ("target", "pacs")))] == 42.0
        # A dead job is not waiting: no age for a target whose only job is dead.
        assert ("gateway_queue_oldest_job_age_seconds", (("kind", "forward"), ("target", "archive"))) not in s
        assert s[("gateway_disk_free_bytes", ())] == 5 << 30
        assert s[("gateway_disk_reserve_bytes", ())] == 256 << 20
        assert s[("gateway_destination_reachable", (("destination", "pacs"),))] == 1
        assert s[("gateway_destination_reachable", (("destination", "archive"),))] == 0
        assert ("gateway_destination_reachable", (("destination", "new"),)) not in s  # not tried yet
        assert s[("gateway_printer_status", (("printer", "film"), ("status", "WARNING")))] == 1

        doc = view.build(snap, index, None, now=created + 42.0)
        assert doc["destinations"]["pacs"]["queued"] == 2 and doc["destinations"]["pacs"]["oldest_age_s"] == 42.0
        assert doc["destinations"]["archive"]["dead"] == 1
        (letter,) = doc["dead_letters"]
        assert letter["id"] == dead and letter["target"] == "archive" and letter["reason"] == "given up by the test"
        whats = [e["what"] for e in doc["errors"]]
        assert any("destination archive unreachable" in w for w in whats)
        assert any("printer film: WARNING SUPPLY LOW" in w for w in whats)
        assert doc["service"]["healthy"] is True
    finally:
        index.close()


def test_the_running_observer_counts_what_is_published():
    bus = EventBus()
    registry, obs = new_registry(bus, _snapshot)
    obs.start()
    try:
        bus.publish(Forwarded(target="pacs", count=7))
        wait_until(lambda: samples(registry).get(("gateway_instances_forwarded_total", (("destination", "pacs"),))) == 7,
                   10, what="the observer thread to count the forward")
    finally:
        obs.stop()


def test_the_backlog_queries_read_the_open_jobs_only(tmp_path):
    """A status page open in a browser asks twice a second: the queries must not walk the done jobs
    (years of them on a box), so each must use the partial index of the open ones (jobs_open)."""
    from gateway.status.backlog import DEAD_SQL, OLDEST_SQL

    index = Index(tmp_path / "index.sqlite")
    try:
        with index.tx() as cur:
            cur.executemany("INSERT INTO jobs(kind, target, state, created, updated) VALUES ('forward', 'pacs', ?, 1, 1)",
                            [("done",)] * 2000 + [("queued",)] * 5 + [("dead",)] * 2)
            cur.execute("ANALYZE")
        for sql, params in ((OLDEST_SQL, ()), (DEAD_SQL, (20,))):
            plan = " | ".join(r["detail"] for r in index.query("EXPLAIN QUERY PLAN " + sql, params))
            assert "jobs_open" in plan, plan
    finally:
        index.close()


def _opened(calling, path="storage"):
    return AssociationOpened(calling_ae=calling, called_ae="EDGE", peer="127.0.0.1", path=path)


def _closed(calling, how, path="storage"):
    return AssociationClosed(calling_ae=calling, called_ae="EDGE", peer="127.0.0.1", path=path, how=how,
                             seconds=1.5)


def _refused(calling, reject=(1, 1, 3), reason="calling AE title not recognised"):
    return AssociationRefused(calling_ae=calling, called_ae="EDGE", peer="10.0.0.9", result=reject[0],
                              source=reject[1], diagnostic=reject[2], reason=reason)


def test_associations_are_counted_by_calling_ae_and_outcome():
    bus = EventBus()
    registry, obs = new_registry(bus, _snapshot)
    for calling, path in (("CT1", "storage"), ("CT1", "storage"), ("PRINTSCU", "pynetdicom")):
        bus.publish(_opened(calling, path))
    bus.publish(_refused("STRANGER"))
    bus.publish(_refused("CT1", (2, 3, 2), "local limit exceeded"))
    bus.publish(_closed("CT1", "released"))
    bus.publish(_closed("PRINTSCU", "aborted", "pynetdicom"))
    assert obs.sync()
    s = samples(registry)
    assert s[("gateway_associations_total", (("calling_ae", "CT1"), ("outcome", "accepted")))] == 2
    assert s[("gateway_associations_total", (("calling_ae", "CT1"), ("outcome", "refused")))] == 1
    assert s[("gateway_associations_total", (("calling_ae", "PRINTSCU"), ("outcome", "accepted")))] == 1
    assert s[("gateway_associations_total", (("calling_ae", "STRANGER"), ("outcome", "refused")))] == 1
    assert s[("gateway_associations_closed_total", (("how", "released"),))] == 1
    assert s[("gateway_associations_closed_total", (("how", "aborted"),))] == 1
    assert s[("gateway_associations_open", ())] == 1  # one CT1 association still open


def test_association_labels_are_bounded_and_the_open_gauge_never_goes_negative():
    """A scanner trying titles must not grow the registry without bound; a close whose opening
    was dropped (the observer fell behind) must not drive the gauge below zero."""
    bus = EventBus()
    registry, obs = new_registry(bus, _snapshot)
    for n in range(MAX_AE_LABELS + 10):
        bus.publish(_refused(f"GUESS{n}"))
    bus.publish(_closed("LOST", "aborted"))
    assert obs.sync()
    s = samples(registry)
    labelled = {dict(k[1])["calling_ae"] for k in s if k[0] == "gateway_associations_total"}
    assert len(labelled) == MAX_AE_LABELS + 1 and OTHER_AE in labelled
    assert s[("gateway_associations_total", (("calling_ae", OTHER_AE), ("outcome", "refused")))] == 10
    assert s[("gateway_associations_open", ())] == 0
