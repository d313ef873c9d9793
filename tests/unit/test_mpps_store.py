"""The MPPS records and their jobs (gateway/buffer/mpps.py) over a real buffer: begin / complete
queue the N-CREATE and N-SET with their attribute lists in one commit, a crash loses nothing, the
N-SET waits for its N-CREATE and says why in `queue list`, and the operator verbs name MPPS jobs."""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.buffer import migrations
from gateway.buffer import mpps_attributes as A
from gateway.buffer.ingest import Buffer
from gateway.buffer.mpps import (CREATE, MPPS, MPPS_TARGET, SET, WAITS_FOR_CREATE, MppsRefused, MppsStep,
                                 MppsStore)
from gateway.buffer.queue import DEAD, DONE, QUEUED
from gateway.config.mpps import MppsSection
from gateway.operator_views import show_queue
from mpps_support import STUDY_UID, japanese_procedure, latin1_unscheduled

UID = "1.2.826.0.1.3680043.8.498.1001"
SC = "1.2.840.10008.5.1.4.1.1.7"
WHEN = datetime(2026, 11, 29, 10, 0, 0)


def _buffer(tmp_path) -> Buffer:
    return Buffer(tmp_path / "buf", 0, "replace", lambda attrs, calling: [])


@pytest.fixture
def store(tmp_path):
    buf = _buffer(tmp_path)
    yield MppsStore(buf.queue)
    buf.index.close()


def _begin(store: MppsStore, uid: str = UID) -> int:
    return store.begin(japanese_procedure(), uid, WHEN, "EDGE", "US")


def test_begin_queues_the_n_create_with_its_record(store):
    job_id = _begin(store)
    job = store.queue.get(job_id)
    assert (job.kind, job.target, job.state) == (MPPS, MPPS_TARGET, QUEUED)
    assert MppsStep.from_job(job) == MppsStep(UID, CREATE)
    rec = store.get(UID)
    assert (rec.create_job, rec.set_job, rec.status) == (job_id, None, A.IN_PROGRESS)
    assert rec.procedure_key.endswith(STUDY_UID) and rec.pps_id == A.pps_id_for(UID)
    assert A.decode(rec.create_attrs).PerformedProcedureStepStatus == "IN PROGRESS"
    assert store.for_procedure(rec.procedure_key) == [rec]
    # Named for an operator without patient data.
    assert store.queue.describe(job) == f"MPPS N-CREATE of {UID}"


def test_refusals(store):
    with pytest.raises(MppsRefused, match="not a UID"):
        store.begin(japanese_procedure(), "1.2.abc", WHEN, "EDGE", "US")
    with pytest.raises(MppsRefused, match="no Study Instance UID"):
        store.begin(latin1_unscheduled(), UID, WHEN, "EDGE", "XC")
    with pytest.raises(MppsRefused, match="never begun"):
        store.complete(UID, [(SC, "1.2.3", "1.2.4")], WHEN)
    _begin(store)
    with pytest.raises(MppsRefused, match="begun already"):
        _begin(store)
    with pytest.raises(MppsRefused, match="at least one image"):
        store.complete(UID, [], WHEN)
    set_job = store.complete(UID, [(SC, "1.2.3", "1.2.4")], WHEN)
    with pytest.raises(MppsRefused, match=f"COMPLETED already .*job {set_job}"):
        store.complete(UID, [(SC, "1.2.3", "1.2.4")], WHEN, discontinued=True)
    # Nothing was queued by the refusals: one N-CREATE, one N-SET.
    assert len(store.queue.list()) == 2


def test_complete_records_the_n_set_in_the_create_s_character_set(store):
    _begin(store)
    job_id = store.complete(UID, [(SC, "1.2.3.1", "1.2.9")], WHEN, retrieve_ae="PACS")
    rec = store.get(UID)
    assert (rec.set_job, rec.status) == (job_id, A.COMPLETED)
    ds = A.decode(rec.set_attrs)
    assert ds.SpecificCharacterSet == ["", "ISO 2022 IR 87"]
    assert ds.PerformedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.2.3.1"
    assert store.queue.describe(store.queue.get(job_id)) == f"MPPS N-SET of {UID}"


def test_discontinued_unscheduled(store):
    store.begin(latin1_unscheduled(), UID, WHEN, "EDGE", "XC", study_uid="1.2.3.4")
    store.complete(UID, [], WHEN, discontinued=True, reason="patient-refused")
    rec = store.get(UID)
    assert rec.status == A.DISCONTINUED
    assert A.decode(rec.set_attrs).PerformedProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == "110510"


def test_nothing_lost_across_a_crash(tmp_path):
    buf = _buffer(tmp_path)
    store = MppsStore(buf.queue)
    create = _begin(store)
    set_job = store.complete(UID, [(SC, "1.2.3.1", "1.2.9")], WHEN)
    (claimed,) = buf.queue.claim(MPPS, MPPS_TARGET, 1)  # the N-CREATE was being sent...
    assert claimed.id == create
    buf.index.close()  # ...and the process died (nothing else was written)
    again = _buffer(tmp_path)
    try:
        assert again.queue.recover() == 1
        store2 = MppsStore(again.queue)
        rec = store2.get(UID)
        assert (rec.create_job, rec.set_job) == (create, set_job)
        job = again.queue.get(create)
        assert (job.state, job.last_error) == (QUEUED, "interrupted by a restart")
        assert A.decode(rec.create_attrs).PatientID == "JP-0042"
    finally:
        again.index.close()


def test_n_set_waits_for_its_n_create_and_says_why(store, capsys):
    create = _begin(store)
    set_id = store.complete(UID, [(SC, "1.2.3.1", "1.2.9")], WHEN)
    q = store.queue
    # The N-CREATE failed once and waits for its retry; the N-SET is claimed meanwhile.
    (c,) = q.claim(MPPS, MPPS_TARGET, 1)
    q.fail(c.id, "status 0x0110 Processing Failure", 4_000_000_000.0)
    (s,) = q.claim(MPPS, MPPS_TARGET, 1)
    assert s.id == set_id
    why = store.wait_for_create(s, q.get(create), recheck_s=60)
    waiting = q.get(set_id)
    assert waiting.state == QUEUED and waiting.attempts == 0  # waiting uses up no attempt
    assert waiting.last_error == why and why.startswith(f"{WAITS_FOR_CREATE} (job {create}, queued")
    assert waiting.next_attempt > 4_000_000_000.0  # after the N-CREATE's own retry
    # The N-CREATE dead: the N-SET says so, and how to send both.
    q.fail(create, "status 0x0120 Missing Attribute", None)
    (s,) = q.claim(MPPS, MPPS_TARGET, 1) or [None]
    assert s is None  # not due yet
    why = store.wait_for_create(q.get(set_id), q.get(create), recheck_s=60)
    assert "dead-lettered (status 0x0120 Missing Attribute)" in why and f"queue retry {create}" in why
    show_queue(q, [QUEUED, DEAD])
    out = capsys.readouterr().out
    assert f"MPPS N-SET of {UID}" in out and f"MPPS N-CREATE of {UID}" in out
    assert why in out and "Yamada" not in out and "JP-0042" not in out


def test_retry_of_a_dead_n_set_names_the_dead_n_create(store):
    create = _begin(store)
    set_id = store.complete(UID, [(SC, "1.2.3.1", "1.2.9")], WHEN)
    store.queue.fail(create, "status 0x0120 Missing Attribute", None)
    store.queue.fail(set_id, "gave up", None)
    (r,) = store.queue.retry_jobs([set_id])
    assert r.ok and f"queue retry {create}" in r.message


def test_settle_of_the_n_create_makes_its_n_set_due(store):
    _begin(store)
    set_id = store.complete(UID, [(SC, "1.2.3.1", "1.2.9")], WHEN)
    q = store.queue
    (c,) = q.claim(MPPS, MPPS_TARGET, 1)
    (s,) = q.claim(MPPS, MPPS_TARGET, 1)
    store.wait_for_create(s, q.get(c.id), recheck_s=3600)  # the N-CREATE is in flight: a while
    assert q.claim(MPPS, MPPS_TARGET, 1) == []
    store.settle(c, MppsStep(UID, CREATE))
    assert q.get(c.id).state == DONE and store.create_done(store.get(UID))
    (s,) = q.claim(MPPS, MPPS_TARGET, 1)
    assert s.id == set_id and MppsStep.from_job(s).step == SET


def test_schema_6_has_the_mpps_table(tmp_path):
    buf = _buffer(tmp_path)
    try:
        assert migrations.LATEST >= 6
        cols = {r["name"] for r in buf.index.query("PRAGMA table_info(mpps)")}
        assert {"mpps_uid", "create_job", "set_job", "create_attrs", "set_attrs", "status"} <= cols
    finally:
        buf.index.close()


def test_config_section_is_strict_and_bounded():
    assert MppsSection().enabled is False and MppsSection().calling_ae == ""
    for bad in (dict(max_attempts=0), dict(retry_initial_s=0.0), dict(retry_initial_s=10.0, retry_max_s=5.0),
                dict(calling_ae="X" * 17), dict(port=0), dict(colour="red"), dict(max_attempts="3")):
        with pytest.raises(ValueError):
            MppsSection(**bad)
