"""The event bus and its catalogue (issue 7 item 3): typed payloads, filtering by kind, drops."""

from __future__ import annotations

import dataclasses
import queue

import pytest

from gateway import event_kinds as K
from gateway.events import EventBus


def _all(sub):
    out = []
    while True:
        try:
            out.append(sub.get_nowait())
        except queue.Empty:
            return out


def test_every_kind_has_one_frozen_payload_type_of_plain_fields():
    kinds = {v for k, v in vars(K).items() if k.isupper() and isinstance(v, str) and k != "KIND"}
    assert kinds == set(K.CATALOGUE)
    for kind, cls in K.CATALOGUE.items():
        assert cls.KIND == kind and dataclasses.is_dataclass(cls)
        assert cls.__dataclass_params__.frozen, cls
        assert cls.__doc__, f"{cls.__name__} has no docstring naming its fields"
        for f in dataclasses.fields(cls):
            # bool and tuples of int: plain values too (the module docstring's list).
            assert f.type in ("str", "int", "float", "bool", "int | None", "tuple[str, ...]", "tuple[int, ...]",
                              "tuple[tuple[str, str, str, int], ...]"), (cls, f.name, f.type)


def test_a_typed_payload_arrives_as_kind_data_and_payload():
    bus = EventBus()
    sub = bus.subscribe()
    p = K.Forwarded(target="pacs", count=3)
    bus.publish(p)
    (ev,) = _all(sub)
    assert (ev.kind, ev.data, ev.payload) == ("forwarded", {"target": "pacs", "count": 3}, p)
    with pytest.raises(TypeError):
        bus.publish(p, count=4)


def test_subscribe_by_kind_receives_only_those_kinds():
    bus = EventBus()
    every, some = bus.subscribe(), bus.subscribe(kinds=(K.DESTINATION_DOWN, K.Forwarded))
    bus.publish(K.Received(sop_uid="1.2", calling_ae="CT", source="AE:CT", outcome="stored"))
    bus.publish(K.Forwarded(target="pacs", count=1))
    bus.publish(K.DestinationDown(target="pacs", reason="refused", retry_in=1.0))
    assert [e.kind for e in _all(every)] == ["received", "forwarded", "destination-down"]
    assert [e.kind for e in _all(some)] == ["forwarded", "destination-down"]
    with pytest.raises(ValueError):
        bus.subscribe(kinds=("recieved",))


def test_a_slow_observer_loses_its_oldest_events_and_counts_them():
    bus = EventBus()
    sub = bus.subscribe(maxsize=2)
    for n in range(5):
        bus.publish(K.Forwarded(target="pacs", count=n))
    assert [e.data["count"] for e in _all(sub)] == [3, 4] and sub.dropped == 3


def test_only_catalogued_payloads_are_published():
    bus = EventBus()
    sub = bus.subscribe()
    with pytest.raises(TypeError):
        bus.publish("printer-status-changed")  # a bare kind name: no payload, no catalogue check
    bus.publish(K.PrinterStatusChanged(status="FAILURE", info="FILM JAM"))
    (changed,) = _all(sub)
    assert changed.payload == K.PrinterStatusChanged(status="FAILURE", info="FILM JAM")
    assert changed.data == {"status": "FAILURE", "info": "FILM JAM"}
