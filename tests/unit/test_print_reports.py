"""The print control path (gateway.print.reports): Print Job and Printer status changes reach the
waiting Print SCU as N-EVENT-REPORTs (PS3.4 H.4.2.1.4, H.4.2.2.4) whatever happens on the event bus,
and a slow client never holds up the spooler.

No network: the association is a stand-in and the ReportChannel a fake that records what would
have been sent; the PrintSCP is entered where pynetdicom would enter it (EVT_REQUESTED put the
channel in place, the N-ACTION registered the job).
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from gateway import config
from gateway.dicom.print_scp import PrintSCP
from gateway.event_kinds import Received
from gateway.events import EventBus
from gateway.print import session as S
from gateway.print.printer_status import PrinterStatusMonitor
from gateway.print.reports import PrintReports
from gateway.print.spooler import Spooler

JOB = "1.2.826.0.1.3680043.2.1143.7"
BUS_QUEUE = 1000  # EventBus.subscribe's default maxsize: what a slow subscriber keeps


class FakeStore:
    """What the spooler's status report reads: the Print Job row as the index has it now."""

    queue = None
    printer = "film"

    def __init__(self):
        self.now = ("PENDING", "QUEUED")

    def print_job(self, uid):
        return {"uid": uid, "status": self.now[0], "info": self.now[1], "calling_ae": "SCU"}


class FakeChannel:
    """ReportChannel's sending side; `gate` (when set) makes the client slow to answer."""

    def __init__(self, gate: threading.Event | None = None):
        self.sent: list[tuple[str, int]] = []
        self.gate = gate

    def send_event_report(self, info, event_type, class_uid, instance_uid, meta_uid=None, timeout=None):
        if self.gate is not None:
            self.gate.wait(10)
        self.sent.append((str(class_uid), event_type))
        return SimpleNamespace(Status=0)


class FakeService:
    def __init__(self, cfg, store, events):
        self.profile, self.store, self.events = cfg.print, store, events
        self.monitor = SimpleNamespace(current=("NORMAL", "NORMAL"))


def scp_with_client(events: EventBus, store: FakeStore, channel: FakeChannel):
    cfg = config.load(None, ["print.enabled=true"]).config
    scp = PrintSCP(FakeService(cfg, store, events), cfg)
    assoc = SimpleNamespace(requestor=SimpleNamespace(ae_title="SCU "), is_established=True,
                            accepted_contexts=[SimpleNamespace(abstract_syntax=u)
                                               for u in (S.GRAYSCALE_META, S.PRINT_JOB)])
    scp._channels[id(assoc)] = channel          # EVT_REQUESTED: ReportChannel.install
    client = scp._client(assoc)                 # EVT_ACCEPTED
    client.jobs[JOB] = "PENDING"                # N-ACTION: the job is this client's, PENDING told
    return scp, assoc


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.01)
    return pred()


def test_a_burst_of_bus_events_between_job_status_changes_loses_no_report():
    """The old design sent these reports from a bus subscription (maxsize 1000, oldest dropped):
    with more than 1000 unrelated events between PRINTING and DONE, PRINTING never reached the
    client.  Now the spooler tells the SCP directly."""
    events, store, channel = EventBus(), FakeStore(), FakeChannel()
    reports = PrintReports()
    spooler = Spooler(config.load(None, ["print.enabled=true"]).config.print, store, None, events,
                      reports=reports)
    scp, assoc = scp_with_client(events, store, channel)
    reports.add(scp)
    observer = events.subscribe()  # an observer that is not reading: the bus drops for it

    store.now = ("PRINTING", "NORMAL")
    spooler._event(JOB)
    for n in range(BUS_QUEUE + 500):
        events.publish(Received(sop_uid=f"1.2.{n}", calling_ae="CT", source="AE:CT", outcome="stored", routes=()))
    store.now = ("DONE", "NORMAL")
    spooler._event(JOB)

    assert wait_for(lambda: len(channel.sent) == 2), channel.sent
    assert channel.sent == [(S.PRINT_JOB, 2), (S.PRINT_JOB, 3)]  # PRINTING, DONE (PS3.4 H.4.2.1.4)
    # The observers still see the job's changes on the bus (what they keep of it is their business).
    assert any(observer.get_nowait().kind == "print-job" for _ in range(observer.qsize()))
    scp._closed(SimpleNamespace(assoc=assoc))


def test_a_printer_change_reaches_the_client_through_a_bus_burst():
    events, store, channel = EventBus(), FakeStore(), FakeChannel()
    reports = PrintReports()
    scp, assoc = scp_with_client(events, store, channel)
    reports.add(scp)
    device = SimpleNamespace(status=lambda: None, try_status=lambda: (False, None))
    monitor = PrinterStatusMonitor(device, events, 60.0, reports=reports)
    monitor.update(("NORMAL", "NORMAL"))  # what the client was told when it connected
    for n in range(BUS_QUEUE + 500):
        events.publish(Received(sop_uid=f"1.2.{n}", calling_ae="CT", source="AE:CT", outcome="stored", routes=()))
    monitor.update(("FAILURE", "SUPPLY EMPTY"))
    assert wait_for(lambda: channel.sent == [(S.PRINTER, 3)]), channel.sent
    scp._closed(SimpleNamespace(assoc=assoc))


def test_a_slow_client_does_not_hold_up_the_spooler_and_loses_nothing():
    gate = threading.Event()
    events, store, channel = EventBus(), FakeStore(), FakeChannel(gate)
    reports = PrintReports()
    spooler = Spooler(config.load(None, ["print.enabled=true"]).config.print, store, None, events,
                      reports=reports)
    scp, assoc = scp_with_client(events, store, channel)
    reports.add(scp)
    started = time.monotonic()
    for status in ("PRINTING", "PENDING", "PRINTING", "FAILURE", "PRINTING", "DONE"):
        store.now = (status, "NORMAL")
        spooler._event(JOB)
    assert time.monotonic() - started < 1.0  # the spooler never waited for the client
    gate.set()
    assert wait_for(lambda: len(channel.sent) == 6), channel.sent
    assert [t for _, t in channel.sent] == [2, 1, 2, 4, 2, 3]  # in order, none dropped
    scp._closed(SimpleNamespace(assoc=assoc))


def test_a_broken_listener_does_not_stop_the_others():
    told = []

    class Broken:
        def on_job_status(self, *a):
            raise RuntimeError("bug")

        def on_printer_status(self, *a):
            raise RuntimeError("bug")

    class Good:
        def on_job_status(self, *a):
            told.append(("job", *a))

        def on_printer_status(self, *a):
            told.append(("printer", *a))

    reports = PrintReports()
    reports.add(Broken())
    reports.add(Good())
    reports.on_job_status(JOB, "DONE", "NORMAL")
    reports.on_printer_status("WARNING", "SUPPLY LOW")
    assert told == [("job", JOB, "DONE", "NORMAL"), ("printer", "WARNING", "SUPPLY LOW")]
