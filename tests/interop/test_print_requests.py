"""Issue 14 item 16: every DIMSE-N request on a print association gets a response with a status
(PS3.7 10.1.3), whatever its command set lacks -- and the association stays usable.

The requests are built by hand (pynetdicom primitives with their UIDs set past its checks, so a
command element can be absent or empty) and sent on a real print association; the response must
come back, answer the request's Message ID, and carry the status that fits:
  0118 No such SOP Class       -- Requested/Affected SOP Class UID absent, empty, or not a print class
  0117 Invalid object instance -- Requested SOP Instance UID absent, empty or not a UID
  0112 No such SOP Instance    -- a well-formed UID of nothing this association created
  0123 No such action type     -- N-ACTION without an Action Type ID
  0113 No such event type      -- N-EVENT-REPORT without an Event Type ID
"""

from __future__ import annotations

import time
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE
from pynetdicom.dsutils import encode
from pynetdicom.dimse_primitives import N_ACTION, N_CREATE, N_DELETE, N_EVENT_REPORT, N_GET, N_SET

from test_print import imager, print_config  # noqa: F401 - the imager fixture
from test_print_pynetdicom import FILM_BOX, FILM_SESSION, GRAY_BOX, GRAY_META, PRINTER, PRINTER_INSTANCE

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

ABSENT = object()
UNKNOWN_INSTANCE = "1.2.826.0.1.3680043.8.498.1"


class RawClient:
    """A print SCU that sends hand-built DIMSE-N primitives and waits for the one response."""

    def __init__(self, port: int):
        ae = AE(ae_title="PRINTSCU")
        ae.acse_timeout = ae.network_timeout = 30
        ae.dimse_timeout = 10  # bounds each wait: an unanswered request fails its case
        ae.add_requested_context(GRAY_META)
        self.assoc = ae.associate("127.0.0.1", port, ae_title="EDGE")
        assert self.assoc.is_established
        self.cx = self.assoc.accepted_contexts[0].context_id
        self.msg_id = 100

    def send(self, primitive):
        """(response primitive or None, the request's Message ID)."""
        self.msg_id += 1
        primitive.MessageID = self.msg_id
        a = self.assoc
        a._reactor_checkpoint.clear()  # as pynetdicom's own send_* methods do
        while not a._is_paused:
            time.sleep(0.0001)
        try:
            a.dimse.send_msg(primitive, self.cx)
            _, rsp = a.dimse.get_msg(block=True)
        finally:
            a._reactor_checkpoint.set()
        return rsp, self.msg_id

    def close(self):
        if self.assoc.is_established:
            self.assoc.release()


def _uid(value):
    return None if value is ABSENT else UID(value)


def n_set(cls, inst):
    p = N_SET()
    p._requested_sop_class_uid, p._requested_sop_instance_uid = _uid(cls), _uid(inst)
    ds = Dataset()
    ds.FilmSessionLabel = "X"
    p.ModificationList = BytesIO(encode(ds, True, True))
    return p


def n_get(cls, inst):
    p = N_GET()
    p._requested_sop_class_uid, p._requested_sop_instance_uid = _uid(cls), _uid(inst)
    return p


def n_delete(cls, inst):
    p = N_DELETE()
    p._requested_sop_class_uid, p._requested_sop_instance_uid = _uid(cls), _uid(inst)
    return p


def n_action(cls, inst, action=1):
    p = N_ACTION()
    p._requested_sop_class_uid, p._requested_sop_instance_uid = _uid(cls), _uid(inst)
    p._action_type_id = None if action is ABSENT else action
    return p


def n_create(cls, inst=ABSENT):
    p = N_CREATE()
    p._affected_sop_class_uid, p._affected_sop_instance_uid = _uid(cls), _uid(inst)
    return p


def n_event_report(cls, inst, event_type=1):
    p = N_EVENT_REPORT()
    p._affected_sop_class_uid, p._affected_sop_instance_uid = _uid(cls), _uid(inst)
    p._event_type_id = None if event_type is ABSENT else event_type
    return p


CASES = [
    # the two inputs of the issue
    ("N-SET without Requested SOP Class UID", n_set(ABSENT, UNKNOWN_INSTANCE), 0x0118),
    ("N-SET with an empty Requested SOP Instance UID", n_set(GRAY_BOX, ""), 0x0117),
    # the rest of the kind
    ("N-SET with an empty Requested SOP Class UID", n_set("", UNKNOWN_INSTANCE), 0x0118),
    ("N-SET without Requested SOP Instance UID", n_set(GRAY_BOX, ABSENT), 0x0117),
    ("N-SET of a class that is no print class", n_set("1.2.3.4.5", UNKNOWN_INSTANCE), 0x0118),
    ("N-SET of an instance UID that is no UID", n_set(FILM_SESSION, "not-a-uid"), 0x0117),
    ("N-SET of an instance nobody created", n_set(FILM_SESSION, UNKNOWN_INSTANCE), 0x0112),
    ("N-GET without Requested SOP Class UID", n_get(ABSENT, PRINTER_INSTANCE), 0x0118),
    ("N-GET with an empty Requested SOP Instance UID", n_get(PRINTER, ""), 0x0117),
    ("N-GET of a class that is no print class", n_get("1.2.840.10008.1.20.1", PRINTER_INSTANCE), 0x0118),
    ("N-GET of an unknown Printer instance", n_get(PRINTER, UNKNOWN_INSTANCE), 0x0112),
    ("N-ACTION without Requested SOP Class UID", n_action(ABSENT, UNKNOWN_INSTANCE), 0x0118),
    ("N-ACTION with an empty Requested SOP Instance UID", n_action(FILM_BOX, ""), 0x0117),
    ("N-ACTION without Action Type ID", n_action(FILM_BOX, UNKNOWN_INSTANCE, ABSENT), 0x0123),
    ("N-ACTION on an instance nobody created", n_action(FILM_BOX, UNKNOWN_INSTANCE), 0x0112),
    ("N-DELETE without Requested SOP Class UID", n_delete(ABSENT, UNKNOWN_INSTANCE), 0x0118),
    ("N-DELETE with an empty Requested SOP Instance UID", n_delete(FILM_SESSION, ""), 0x0117),
    ("N-DELETE of an instance nobody created", n_delete(FILM_SESSION, UNKNOWN_INSTANCE), 0x0112),
    ("N-CREATE without Affected SOP Class UID", n_create(ABSENT), 0x0118),
    ("N-CREATE with an empty Affected SOP Class UID", n_create(""), 0x0118),
    ("N-CREATE of a class that is no print class", n_create("1.2.3.4.5"), 0x0118),
    ("N-CREATE with an Affected SOP Instance UID that is no UID", n_create(FILM_SESSION, "x.y"), 0x0117),
    # a client has no events to report to a Print SCP, but gets an answer all the same
    ("N-EVENT-REPORT without Affected SOP Class UID", n_event_report(ABSENT, PRINTER_INSTANCE), 0x0118),
    ("N-EVENT-REPORT with an empty Affected SOP Instance UID", n_event_report(PRINTER, ""), 0x0117),
    ("N-EVENT-REPORT without Event Type ID", n_event_report(PRINTER, PRINTER_INSTANCE, ABSENT), 0x0113),
]


def test_every_malformed_n_request_gets_a_status_and_the_association_goes_on(gateway_factory, imager):  # noqa: F811
    gw = gateway_factory(print_config(imager.url))
    c = RawClient(gw.port)
    got = {}
    try:
        for name, primitive, want in CASES:
            rsp, msg_id = c.send(primitive)
            assert rsp is not None, f"{name}: no response (the association hangs)"
            assert type(rsp) is type(primitive), name
            assert rsp.MessageIDBeingRespondedTo == msg_id, name
            got[name] = rsp.Status
            assert c.assoc.is_established, f"{name}: association ended"
        assert got == {name: want for name, _, want in CASES}, {
            n: (hex(got[n]), hex(w)) for n, _, w in CASES if got.get(n) != w}
        # Still usable: a well-formed request is served as ever.
        status, ds = c.assoc.send_n_get([0x21100010], PRINTER, PRINTER_INSTANCE, meta_uid=GRAY_META)
        assert status.Status == 0 and ds.PrinterStatus == "NORMAL"
    finally:
        c.close()
    assert "Traceback" not in gw.log, gw.log
