"""Issue 14 item 8: SCP-initiated N-EVENT-REPORTs crossing the client's own requests.

PS3.4 H.4 lets the Print SCP report Printer and Print Job events at any time; PS3.7's default
operations window lets the client have its own request in flight meanwhile.  The gateway must
serve that request and still match the report's response, send a printer state only when it
changed, and print the copies a film still owes once the printer is ready again -- never more.

- the field case, with DCMTK dcmpsprt + dcmprscu and the simulated serial imager holding one film
  for a two-copy job (the imager runs out part-way, the report goes out as dcmprscu deletes);
- the crossing made certain with a pynetdicom client that, on every report, first sends an N-GET
  and answers the report only after its own response came back.
"""

from __future__ import annotations

import itertools
import queue
import re
import threading
import time

import pytest
from pynetdicom.dimse_primitives import N_GET

from hwsim.serial_imager import SerialFilmImager
from peers import wait_until
from test_print import CT, DcmtkPrintClient, errors, print_config
from test_print_pynetdicom import GRAY_META, PRINT_JOB, PRINTER, PRINTER_INSTANCE, gradient, gray_film
from test_print_pynetdicom import Client as PrintClient

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

STATUS_LINE = re.compile(r"printer status (\w+) \(([^)]*)\), was")


@pytest.fixture
def one_film_imager(tmp_path):
    im = SerialFilmImager(out_dir=tmp_path / "films", films=1)
    im.url = im.start_tcp()
    yield im
    im.stop()


def _states(log: str) -> list[tuple[str, str]]:
    return STATUS_LINE.findall(log)


def test_dcmtk_two_copies_on_one_film_no_abort_and_exactly_two_films(gateway_factory, one_film_imager,
                                                                        tmp_path):
    im = one_film_imager
    # Backoff of an hour: the owed copy can only come out because loading film wakes the spooler.
    gw = gateway_factory(print_config(im.url, retry_initial_s=3600, retry_max_s=3600))
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    _, out = client.print([CT], [], ["--copies", "2", "-d"])
    # dcmprscu exits 0 whatever happened: its output is the verdict.
    assert not errors(out), out
    assert "Abort" not in out and "invalid" not in gw.log.lower(), out
    assert "Aborting Association" not in gw.log, gw.log
    # One sheet out, then the imager is empty: it says so (not CHECK PRINTER), and waits.
    wait_until(lambda: ("FAILURE", "SUPPLY EMPTY") in _states(gw.log), 30, what="SUPPLY EMPTY")
    assert im.sheets == 1 and im.films == 0
    time.sleep(3.0)  # several status polls and spooler retries while it waits for film
    states = _states(gw.log)
    assert states[-1] == ("FAILURE", "SUPPLY EMPTY"), states
    assert ("FAILURE", "CHECK PRINTER") not in states, states
    # Only changes: no state follows itself, and no flip-flop back and forth while waiting.
    assert all(a != b for a, b in zip(states, states[1:])), states
    assert len(states) == len(set(states)), states
    assert im.sheets == 1
    im.load(50)
    wait_until(lambda: im.sheets >= 2, 30, what="the owed copy after loading film")
    wait_until(lambda: "film 1 printed" in gw.log, 30, what="the film marked printed")
    time.sleep(2.0)
    assert im.sheets == 2, "printed more copies than the job asked for"
    assert [f.copies for f in im.printed] == [1, 1]
    assert len(list((tmp_path / "films").glob("film-*.png"))) == 2
    # The client answered every report it got; each one was a different state.
    reports = re.findall(r"Message Type\s*: N-EVENT-REPORT RQ", out)
    sent = re.findall(r"N-EVENT-REPORT Printer type (\d) to PRINTSCU: 0x0000", gw.log)
    assert len(sent) <= len(reports)
    assert all(a != b for a, b in zip(sent, sent[1:])), sent


class _Responses(queue.Queue):
    """The client association's DIMSE queue, handing the N-GET responses the report handler waits
    for straight to it: pynetdicom's requestor reactor is not reliably paused inside an
    N-EVENT-REPORT handler and would take them ("unexpected N-GET service message")."""

    def __init__(self):
        super().__init__()
        self.waiting: dict[int, list] = {}

    def put(self, item, block=True, timeout=None):
        msg = item[1]
        slot = self.waiting.get(getattr(msg, "MessageIDBeingRespondedTo", None))
        if slot is not None:
            slot[1] = msg
            slot[0].set()
            return
        super().put(item, block, timeout)


class CrossingClient(PrintClient):
    """Answers each N-EVENT-REPORT only after an N-GET of its own went out and came back: the
    report's response then reaches the SCP after the SCP received (and must serve) a request."""

    def __init__(self, port: int):
        self.crossings: list[tuple[str, int, int | None]] = []  # (class, event type, N-GET status)
        self.lock = threading.Lock()
        self.ids = itertools.count(1000)
        super().__init__(port)
        self.queue = _Responses()
        self.assoc.dimse.msg_queue = self.queue

    def _n_get(self, assoc, cls: str, uid: str, tag: int, context_of: str):
        req = N_GET()
        req.MessageID = msg_id = next(self.ids)
        req.RequestedSOPClassUID = cls
        req.RequestedSOPInstanceUID = uid
        req.AttributeIdentifierList = [tag]
        slot = [threading.Event(), None]
        self.queue.waiting[msg_id] = slot
        cx = next(c for c in assoc.accepted_contexts if c.abstract_syntax == context_of)
        assoc.dimse.send_msg(req, cx.context_id)
        slot[0].wait(15)
        return slot[1].Status if slot[1] is not None else None

    def _report(self, event):
        req = event.request
        cls, etype = str(req.AffectedSOPClassUID), int(req.EventTypeID)
        if cls == PRINTER:
            status = self._n_get(event.assoc, PRINTER, PRINTER_INSTANCE, 0x21100010, GRAY_META)
        else:
            status = self._n_get(event.assoc, PRINT_JOB, str(req.AffectedSOPInstanceUID), 0x21000020,
                                 PRINT_JOB)
        with self.lock:
            self.crossings.append((cls, etype, status))
        return super()._report(event)


def test_reports_crossing_client_requests_are_matched_and_the_requests_served(gateway_factory, tmp_path):
    im = SerialFilmImager(out_dir=tmp_path / "films")
    im.url = im.start_tcp()
    try:
        gw = gateway_factory(print_config(im.url))
        c = CrossingClient(gw.port)
        try:
            assert c.printer_status()[1].PrinterStatus == "NORMAL"
            im.offline = True
            wait_until(lambda: len(c.reports) >= 1, 30, what="FAILURE report")
            im.offline = False
            wait_until(lambda: len(c.reports) >= 2, 30, what="NORMAL report")
            time.sleep(2.0)  # polls go on: the state does not change, so nothing more is sent
            assert [(r[0], r[1]) for r in c.reports] == [(PRINTER, 3), (PRINTER, 1)]
            assert c.reports[0][2].PrinterStatusInfo == "PRINTER OFFLINE"
            # Print Job reports cross the client's requests the same way.
            fb = gray_film(c, gradient())
            assert c.print_film_box(fb)[0].Status == 0
            wait_until(lambda: any(r[0] == PRINT_JOB and r[1] == 3 for r in c.reports), 30,
                       what="Print Job DONE report")
            assert c.assoc.is_established
            with c.lock:
                crossings = list(c.crossings)
            # Every request sent while a report waited for its response got its own response.
            assert crossings and all(status == 0 for _, _, status in crossings), crossings
            assert c.printer_status()[0].Status == 0  # and the association goes on
        finally:
            c.close()
        assert "Aborting Association" not in gw.log and "invalid" not in gw.log.lower(), gw.log
        answered = re.findall(r"N-EVENT-REPORT (Printer|Print Job) type \d to PRINTSCU: 0x0000", gw.log)
        assert len(answered) == len(c.reports), gw.log
    finally:
        im.stop()
    assert im.sheets == 1
