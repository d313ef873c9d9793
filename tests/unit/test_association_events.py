"""What the listener tells the bus about associations (issue 9 item 1): one event when an
association opens or is refused, one when it ends, with how it ended and how long it lasted."""

from __future__ import annotations

from gateway.dicom.net.association_events import AssociationEvents, reject_reason
from gateway.dicom.net.association_policy import REJECT_CALLED_AE, REJECT_CALLING_AE, REJECT_LOCAL_LIMIT
from gateway.event_kinds import ASSOCIATION_CLOSED, ASSOCIATION_OPENED, ASSOCIATION_REFUSED
from gateway.events import EventBus


def _drain(sub) -> list:
    out = []
    while not sub.empty():
        out.append(sub.get_nowait())
    return out


def test_opened_then_closed_carries_titles_path_and_how():
    bus = EventBus()
    sub = bus.subscribe(kinds=(ASSOCIATION_OPENED, ASSOCIATION_CLOSED, ASSOCIATION_REFUSED))
    observed = AssociationEvents(bus)
    key_a, key_b = object(), object()
    observed.opened(key_a, "CT1", "EDGE", "10.0.0.5", "storage")
    observed.opened(key_b, "PRN", "EDGE", "10.0.0.6", "pynetdicom")
    assert observed.open_count == 2
    observed.closed(key_a, "released")
    observed.closed(key_b, "aborted")
    opened_a, opened_b, closed_a, closed_b = _drain(sub)
    assert opened_a.kind == ASSOCIATION_OPENED and opened_a.data == {
        "calling_ae": "CT1", "called_ae": "EDGE", "peer": "10.0.0.5", "path": "storage"}
    assert closed_a.kind == ASSOCIATION_CLOSED
    assert {k: closed_a.data[k] for k in ("calling_ae", "peer", "path", "how")} == {
        "calling_ae": "CT1", "peer": "10.0.0.5", "path": "storage", "how": "released"}
    assert closed_a.data["seconds"] >= 0.0
    assert (closed_b.data["calling_ae"], closed_b.data["path"], closed_b.data["how"]) == ("PRN", "pynetdicom",
                                                                                          "aborted")
    assert observed.open_count == 0


def test_a_close_without_an_opening_publishes_nothing():
    """The fast path reports its end even when it failed before its A-ASSOCIATE-AC; and a second
    close of one association (pynetdicom's close after an abort) is not a second end."""
    bus = EventBus()
    sub = bus.subscribe()
    observed = AssociationEvents(bus)
    observed.closed(object(), "aborted")
    key = object()
    observed.opened(key, "CT1", "EDGE", "10.0.0.5", "storage")
    observed.closed(key, "aborted")
    observed.closed(key, "aborted")
    assert [ev.kind for ev in _drain(sub)] == [ASSOCIATION_OPENED, ASSOCIATION_CLOSED]


def test_refusals_carry_the_ps38_codes_and_their_words():
    bus = EventBus()
    sub = bus.subscribe()
    observed = AssociationEvents(bus)
    observed.refused("WHO", "EDGE", "10.0.0.9", REJECT_CALLING_AE)
    observed.refused("CT1", "NOTME", "10.0.0.5", REJECT_CALLED_AE)
    observed.refused("CT1", "EDGE", "10.0.0.5", REJECT_LOCAL_LIMIT)
    reasons = [(ev.data["result"], ev.data["source"], ev.data["diagnostic"], ev.data["reason"]) for ev in _drain(sub)]
    assert reasons == [(1, 1, 3, "calling AE title not recognised"), (1, 1, 7, "called AE title not recognised"),
                       (2, 3, 2, "local limit exceeded")]
    assert reject_reason(2, 9) == "source 2 reason 9"


def test_without_a_bus_nothing_is_published_and_nothing_fails():
    observed = AssociationEvents(None)
    key = object()
    observed.opened(key, "CT1", "EDGE", "10.0.0.5", "storage")
    observed.refused("WHO", "EDGE", "10.0.0.9", REJECT_CALLING_AE)
    observed.closed(key, "released")
    assert observed.open_count == 0
