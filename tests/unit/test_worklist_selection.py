"""The current procedure (gateway/capture/procedure.py): the automatic choice of the one item
scheduled now, next / previous wrapping, select by position or key, an operator's choice standing
across refreshes, unscheduled identities generated and flagged, and the events each change sends."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from pydicom.dataset import Dataset

from gateway import event_kinds as K
from gateway.buffer.procedure import Procedure, encode_identifier
from gateway.buffer.worklist import WorklistStore
from gateway.capture.procedure import CurrentProcedure, SelectionError, start_time
from gateway.config.worklist import WorklistSection
from gateway.events import EventBus

NOW = datetime(2026, 11, 29, 10, 0).timestamp()


def _proc(n: int, start: str) -> Procedure:
    ds = Dataset()
    ds.PatientID = f"PID{n}"
    return Procedure(key=f"SPS{n}|ACC{n}|1.2.{n}", identifier=encode_identifier(ds), patient_id=f"PID{n}",
                     patient_name=f"Name{n}^Given", start=start, accession_number=f"ACC{n}")


def _events(sub) -> list:
    out = []
    while not sub.empty():
        out.append(sub.get_nowait().payload)
    return out


@pytest.fixture
def bus():
    return EventBus()


def _current(bus, tmp_path=None, **cfg) -> CurrentProcedure:
    store = WorklistStore(tmp_path) if tmp_path is not None else None
    return CurrentProcedure(WorklistSection(**cfg), bus, store, clock=lambda: NOW)


def test_start_time_needs_a_date_and_a_time():
    assert start_time(_proc(1, "202611291015")) == datetime(2026, 11, 29, 10, 15).timestamp()
    assert start_time(_proc(1, "20261129101500.000")) == datetime(2026, 11, 29, 10, 15).timestamp()
    assert start_time(_proc(1, "20261129")) is None and start_time(_proc(1, "")) is None


def test_exactly_one_item_scheduled_now_is_chosen_by_itself(bus):
    sub = bus.subscribe(kinds=(K.PROCEDURE_SELECTED,))
    cur = _current(bus, auto_select_minutes=30)
    items = [_proc(1, "202611290800"), _proc(2, "202611291015"), _proc(3, "202611291300"), _proc(4, "20261129")]
    cur.set_worklist(items)
    assert cur.current() == items[1] and cur.position() == 2
    assert _events(sub) == [K.ProcedureSelected(key=items[1].key, patient_id="PID2", scheduled=True, how="auto")]


@pytest.mark.parametrize("starts", [
    ["202611290955", "202611291015"],   # two due now: the operator chooses
    ["202611290800", "202611291300"],   # none due now
    ["20261129", "20261129"],           # dates only: no guess
])
def test_no_automatic_choice_unless_exactly_one_is_due(bus, starts):
    cur = _current(bus, auto_select_minutes=30)
    cur.set_worklist([_proc(i, s) for i, s in enumerate(starts, 1)])
    assert cur.current() is None


def test_automatic_choice_can_be_turned_off(bus):
    cur = _current(bus, auto_select_minutes=0)
    cur.set_worklist([_proc(1, "202611291000")])
    assert cur.current() is None


def test_an_operator_choice_stands_across_refreshes(bus):
    cur = _current(bus)
    a, b = _proc(1, "202611290800"), _proc(2, "202611291000")
    cur.set_worklist([a, b])
    assert cur.current() == b  # auto
    cur.select(1)
    cur.set_worklist([a, b])
    assert cur.current() == a
    # The chosen item leaves the worklist (the RIS closed it): it stays current, no position.
    cur.set_worklist([b])
    assert cur.current() == a and cur.position() is None


def test_next_and_previous_wrap(bus):
    sub = bus.subscribe(kinds=(K.PROCEDURE_SELECTED,))
    cur = _current(bus, auto_select_minutes=0)
    items = [_proc(i, "") for i in (1, 2, 3)]
    cur.set_worklist(items)
    assert cur.next() == items[0]            # from nothing: the first
    assert cur.next() == items[1]
    assert cur.next() == items[2]
    assert cur.next() == items[0]            # wraps
    assert cur.previous() == items[2]        # wraps back
    assert cur.previous() == items[1]
    cur.clear()
    assert cur.previous() == items[2]        # from nothing: the last
    assert [e.patient_id for e in _events(sub)] == ["PID1", "PID2", "PID3", "PID1", "PID3", "PID2", "", "PID3"]


def test_select_by_position_or_key_and_the_refusals(bus):
    cur = _current(bus, auto_select_minutes=0)
    with pytest.raises(SelectionError, match="the worklist is empty"):
        cur.select(1)
    with pytest.raises(SelectionError, match="empty"):
        cur.next()
    items = [_proc(i, "") for i in (1, 2, 3)]
    cur.set_worklist(items)
    assert cur.select("3") == items[2] and cur.select(1) == items[0]
    assert cur.select("SPS2|ACC2|1.2.2") == items[1]
    with pytest.raises(SelectionError, match="no item 4: the worklist has items 1 to 3"):
        cur.select(4)
    with pytest.raises(SelectionError, match="no item 0"):
        cur.select("0")
    with pytest.raises(SelectionError, match="no worklist item has the key 'nope'"):
        cur.select("nope")
    assert cur.current() == items[1]  # a refused selection changes nothing


def test_unscheduled_identity_is_generated_counted_and_flagged(bus, tmp_path):
    sub = bus.subscribe(kinds=(K.PROCEDURE_SELECTED,))
    cur = _current(bus, tmp_path, unscheduled_prefix="EDGE-", modality="US")
    day = time.strftime("%Y%m%d", time.localtime(NOW))
    first = cur.unscheduled()
    assert first.patient_id == f"EDGE-{day}-001" and not first.scheduled
    assert first.key.startswith("UNSCHEDULED-") and cur.current() == first and cur.position() is None
    ds = first.dataset()
    assert ds.PatientID == first.patient_id and str(ds.PatientName) == ""
    assert ds.ScheduledProcedureStepSequence[0].Modality == "US"
    assert cur.unscheduled().patient_id == f"EDGE-{day}-002"
    # A restart (a new CurrentProcedure on the same buffer) never hands a number out twice.
    again = _current(bus, tmp_path, unscheduled_prefix="EDGE-")
    assert again.unscheduled().patient_id == f"EDGE-{day}-003"
    evs = _events(sub)
    assert evs[0] == K.ProcedureSelected(key=first.key, patient_id=first.patient_id, scheduled=False,
                                         how="unscheduled")


def test_unscheduled_uuid_ids(bus, tmp_path):
    cur = _current(bus, tmp_path, unscheduled_id="uuid", unscheduled_prefix="U")
    a, b = cur.unscheduled(), cur.unscheduled()
    assert a.patient_id != b.patient_id and len(a.patient_id) == 33 and a.patient_id.startswith("U")
    assert not (tmp_path / "unscheduled-ids.json").exists()


def test_a_refreshed_worklist_may_choose_by_itself_once_the_choice_is_cleared(bus):
    cur = _current(bus)
    a = _proc(1, "202611291000")
    cur.set_worklist([a])
    cur.clear()
    assert cur.auto_select() == a
    assert cur.auto_select() is None  # something is current already


def test_for_capture_never_guesses_a_patient(bus, tmp_path):
    cur = _current(bus, tmp_path, auto_select_minutes=0)
    # No worklist: a capture is still possible, for a generated identity made current.
    first = cur.for_capture()
    assert not first.scheduled and cur.current() == first and cur.for_capture() == first
    # Items to choose from and none chosen: refused, one line.
    cur.clear()
    cur.set_worklist([_proc(1, ""), _proc(2, "")])
    with pytest.raises(LookupError, match=r"no procedure chosen \(2 in the worklist\)"):
        cur.for_capture()
    cur.select(2)
    assert cur.for_capture().patient_id == "PID2"


def test_an_ended_procedure_is_not_chosen_again_by_itself(bus):
    cur = _current(bus, auto_select_minutes=30)
    items = [_proc(1, "202611290800"), _proc(2, "202611291015")]
    cur.set_worklist(items)
    assert cur.current() == items[1]
    cur.done(items[1].key)                      # capture --end
    assert cur.current() is None and cur.was_done(items[1].key)
    assert cur.auto_select() is None            # the only one due now was ended: no automatic choice
    cur.set_worklist(items)                     # nor after a refresh
    assert cur.current() is None
    with pytest.raises(LookupError, match="no procedure chosen"):
        cur.for_capture()                       # a stray pedal tap captures for nobody
    assert cur.select(2) == items[1]            # the operator may choose it again, knowingly
