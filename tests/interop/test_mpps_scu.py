"""The MPPS SCU (gateway/dicom/mpps_scu.py) against a pynetdicom MPPS SCP started here on
127.0.0.1 (no packaged MPPS SCP runs on these machines: DCMTK has none): the N-CREATE and N-SET
arrive with the attributes PS3.4 Table F.7.2-1 asks for, the N-SET never before its N-CREATE, an
SCP down is waited out and then served, failure statuses are retried and dead-lettered with the
status named, and a re-sent N-CREATE after a crash is not a second step.

No test asserts a duration: backoffs are made short through the config and outcomes are polled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from gateway.buffer.ingest import Buffer
from gateway.buffer.mpps import CREATE, MPPS, MppsStore, SET, WAITS_FOR_CREATE
from gateway.buffer.queue import DEAD, DONE, QUEUED
from gateway.config import Config
from gateway.dicom.mpps_scu import MppsSCU
from gateway.event_kinds import MPPS_FAILED, MPPS_SENT
from gateway.events import EventBus
from mpps_support import JAPANESE_NAME, LATIN1_NAME, STUDY_UID, japanese_procedure, latin1_unscheduled
from peers import GatewayProcess, free_port, wait_until

SC = "1.2.840.10008.5.1.4.1.1.7"
UID = "1.2.826.0.1.3680043.8.498.2001"
STARTED = datetime(2026, 11, 29, 9, 30, 15)
ENDED = datetime(2026, 11, 29, 9, 41, 2)
IMAGES = [(SC, "1.2.826.0.1.3680043.8.498.3.1", "1.2.826.0.1.3680043.8.498.3"),
          (SC, "1.2.826.0.1.3680043.8.498.3.2", "1.2.826.0.1.3680043.8.498.3"),
          (SC, "1.2.826.0.1.3680043.8.498.4.1", "1.2.826.0.1.3680043.8.498.4")]


class MppsSCP:
    """A pynetdicom MPPS SCP (AE "RIS") recording every N-CREATE / N-SET: `received` holds
    (step, SOP Instance UID, data set) in arrival order. answer(step, n) gives the status of the
    n-th request of that step (1-based); by default success, and 0x0111 Duplicate SOP Instance for
    an N-CREATE of an instance it already holds, as PS3.7 10.1.5 has an SCP do, and 0x0110 for an
    N-SET of a step already completed or discontinued (PS3.4 F.7.2.2)."""

    def __init__(self, port: int, answer=None):
        self.port = port
        self.answer = answer or (lambda step, n: 0x0000)
        self.received: list[tuple[str, str, object]] = []
        self.held: set[str] = set()
        self.finished: set[str] = set()
        self.lock = threading.Lock()
        self.server = None

    def start(self) -> "MppsSCP":
        ae = AE(ae_title="RIS")
        ae.add_supported_context(ModalityPerformedProcedureStep, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_N_CREATE, self._create), (evt.EVT_N_SET, self._set)])
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def steps(self, step: str | None = None) -> list:
        with self.lock:
            return [r for r in self.received if step is None or r[0] == step]

    def _create(self, event):
        uid = str(event.request.AffectedSOPInstanceUID)
        ds = event.attribute_list
        with self.lock:
            self.received.append((CREATE, uid, ds))
            n = len([r for r in self.received if r[0] == CREATE])
            if uid in self.held:
                return 0x0111, None
            status = self.answer(CREATE, n)
            if status == 0:
                self.held.add(uid)
        return status, (ds if status == 0 else None)

    def _set(self, event):
        uid = str(event.request.RequestedSOPInstanceUID)
        with self.lock:
            self.received.append((SET, uid, event.modification_list))
            n = len([r for r in self.received if r[0] == SET])
            if uid not in self.held:
                return 0x0112, None  # No Such Object Instance
            if uid in self.finished:
                return 0x0110, None  # PS3.4 F.7.2.2: a finished step may no longer be updated
            status = self.answer(SET, n)
            if status == 0:
                self.finished.add(uid)
        return status, (event.modification_list if status == 0 else None)


@pytest.fixture
def box(tmp_path):
    """A buffer, an event bus, and whatever the test starts (SCPs, the SCU), all stopped at the end."""
    class Box:
        buffer = Buffer(tmp_path / "buf", 0, "replace", lambda attrs, calling: [])
        events = EventBus()
        sub = events.subscribe(kinds=(MPPS_SENT, MPPS_FAILED))
        port = free_port()
        started: list = []
        seen: list = []

        def scp(self, answer=None) -> MppsSCP:
            scp = MppsSCP(self.port, answer).start()
            self.started.append(scp)
            return scp

        def scu(self, recheck_s: float = 3600.0, **mpps) -> MppsSCU:
            section = {"enabled": True, "ae_title": "RIS", "host": "127.0.0.1", "port": self.port,
                       "retry_initial_s": 0.05, "retry_max_s": 0.2, **mpps}
            config = Config.model_validate({"mpps": section, "ae": {"title": "EDGE"},
                                            "timers": {"association_s": 5.0, "inactivity_s": 10.0}})
            scu = MppsSCU(config, self.buffer.queue, self.events, recheck_s=recheck_s)
            self.started.append(scu)
            scu.start()
            return scu

        def events_seen(self) -> list:
            while not self.sub.empty():
                self.seen.append(self.sub.get_nowait())
            return self.seen

        def state(self, job_id: int) -> str:
            return self.buffer.queue.get(job_id).state

    b = Box()
    b.store = MppsStore(b.buffer.queue)
    yield b
    for peer in reversed(b.started):
        peer.stop()
    b.buffer.index.close()


def test_n_create_and_n_set_completed(box):
    scp = box.scp()
    create = box.store.begin(japanese_procedure(), UID, STARTED, "EDGE", "US")
    set_job = box.store.complete(UID, IMAGES, ENDED, retrieve_ae="PACS")
    box.scu()
    wait_until(lambda: box.state(set_job) == DONE, 30, what="the N-SET accepted")
    assert box.state(create) == DONE
    # The N-CREATE first, then the N-SET, each once.
    assert [(step, uid) for step, uid, _ in scp.steps()] == [(CREATE, UID), (SET, UID)]
    ds = scp.steps(CREATE)[0][2]
    assert ds.PerformedProcedureStepStatus == "IN PROGRESS"
    assert ds.PatientName == JAPANESE_NAME and ds.PatientID == "JP-0042"
    (item,) = ds.ScheduledStepAttributesSequence
    assert (item.StudyInstanceUID, item.AccessionNumber, item.RequestedProcedureID, item.ScheduledProcedureStepID,
            item.ScheduledProcedureStepDescription) == (STUDY_UID, "ACC-77", "RP-9", "SPS-1", "US Abdomen")
    assert item.RequestedProcedureDescription == "腹部エコー"
    assert ds.PerformedStationAETitle == "EDGE" and ds.Modality == "US"
    assert (ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime) == ("20261129", "093015")
    assert ds.PerformedProcedureStepID == box.store.get(UID).pps_id and ds.PerformedProcedureStepID
    mod = scp.steps(SET)[0][2]
    assert mod.PerformedProcedureStepStatus == "COMPLETED"
    assert (mod.PerformedProcedureStepEndDate, mod.PerformedProcedureStepEndTime) == ("20261129", "094102")
    series = {s.SeriesInstanceUID: s for s in mod.PerformedSeriesSequence}
    assert set(series) == {IMAGES[0][2], IMAGES[2][2]}
    first = series[IMAGES[0][2]]
    assert [(r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID) for r in first.ReferencedImageSequence] == [
        (SC, IMAGES[0][1]), (SC, IMAGES[1][1])]
    assert first.RetrieveAETitle == "PACS" and first.ProtocolName
    wait_until(lambda: len([e for e in box.events_seen() if e.kind == MPPS_SENT]) == 2, 10, what="two mpps-sent")
    sent = [e.data for e in box.events_seen() if e.kind == MPPS_SENT]
    assert sent == [{"mpps_uid": UID, "step": "create", "status": "IN PROGRESS"},
                    {"mpps_uid": UID, "step": "set", "status": "COMPLETED"}]


def test_discontinued_unscheduled_latin1(box):
    scp = box.scp()
    box.store.begin(latin1_unscheduled(), UID, STARTED, "EDGE", "XC", study_uid="1.2.826.0.1.3680043.8.498.77")
    set_job = box.store.complete(UID, IMAGES[:1], ENDED, discontinued=True, reason="equipment-failure")
    box.scu()
    wait_until(lambda: box.state(set_job) == DONE, 30, what="the N-SET accepted")
    ds = scp.steps(CREATE)[0][2]
    assert ds.PatientName == LATIN1_NAME and ds.Modality == "XC"
    (item,) = ds.ScheduledStepAttributesSequence
    assert item.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.77" and not item.AccessionNumber
    mod = scp.steps(SET)[0][2]
    assert mod.PerformedProcedureStepStatus == "DISCONTINUED"
    assert mod.PerformedProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == "110501"
    assert mod.PerformedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == IMAGES[0][1]


def test_scp_down_is_waited_out_then_served(box):
    create = box.store.begin(japanese_procedure(), UID, STARTED, "EDGE", "US")
    set_job = box.store.complete(UID, IMAGES, ENDED)
    box.scu()  # nothing listens on the port yet
    wait_until(lambda: len([e for e in box.events_seen() if e.kind == MPPS_FAILED]) >= 3, 30,
               what="three failed association attempts")
    failed = [e.data for e in box.events_seen() if e.kind == MPPS_FAILED]
    assert all(f["attempt"] == 0 and not f["dead"] and "no association" in f["reason"] for f in failed)
    job = box.buffer.queue.get(create)
    assert job.state in (QUEUED, "in_flight") and job.attempts <= 1  # waiting uses up no attempt
    scp = box.scp()
    wait_until(lambda: box.state(set_job) == DONE, 30, what="both steps delivered once the SCP is up")
    assert [s for s, _, _ in scp.steps()] == [CREATE, SET]


def test_failure_status_retried_then_dead_and_the_n_set_waits(box):
    ok = threading.Event()
    scp = box.scp(answer=lambda step, n: 0x0000 if ok.is_set() else 0x0110)
    create = box.store.begin(japanese_procedure(), UID, STARTED, "EDGE", "US")
    set_job = box.store.complete(UID, IMAGES, ENDED)
    box.scu(max_attempts=3)
    wait_until(lambda: box.state(create) == DEAD, 30, what="the N-CREATE dead-lettered")
    dead = box.buffer.queue.get(create)
    assert dead.last_error == "status 0x0110 Processing Failure (gave up after 3 attempts)"
    assert len(scp.steps(CREATE)) == 3 and scp.steps(SET) == []
    # It said "waits for its N-CREATE (queued, next try ...)" after the second failure already; the
    # line that counts is the one written when it is tried again after the third (a loaded CI
    # machine read the first and failed).
    wait_until(lambda: "which is dead-lettered" in (box.buffer.queue.get(set_job).last_error or ""), 30,
               what="the N-SET saying it waits for a dead-lettered N-CREATE")
    assert box.buffer.queue.get(set_job).last_error.startswith(WAITS_FOR_CREATE)
    waiting = box.buffer.queue.get(set_job)
    assert waiting.state == QUEUED and waiting.attempts == 0
    assert f"job {create}), which is dead-lettered" in waiting.last_error
    failed = [e.data for e in box.events_seen() if e.kind == MPPS_FAILED]
    assert [(f["step"], f["attempt"], f["dead"]) for f in failed] == [("create", 1, False), ("create", 2, False),
                                                                      ("create", 3, True)]
    assert "0x0110 Processing Failure" in failed[-1]["reason"]
    # The operator retries the N-CREATE once the RIS is fixed: it goes, and its N-SET follows at
    # once (recheck_s is an hour: only the N-CREATE's success can make it due).
    ok.set()
    (r,) = box.buffer.queue.retry_jobs([create])
    assert r.ok
    wait_until(lambda: box.state(set_job) == DONE, 30, what="the N-SET sent after the retried N-CREATE")
    assert [s for s, _, _ in scp.steps()] == [CREATE] * 4 + [SET]


def test_permanent_failure_is_dead_at_once(box):
    scp = box.scp(answer=lambda step, n: 0x0120)  # Missing Attribute: no retry changes that
    create = box.store.begin(japanese_procedure(), UID, STARTED, "EDGE", "US")
    box.scu(max_attempts=10)
    wait_until(lambda: box.state(create) == DEAD, 30, what="the N-CREATE dead-lettered")
    assert len(scp.steps(CREATE)) == 1
    assert box.buffer.queue.get(create).last_error.startswith("status 0x0120")


def test_n_create_sent_again_after_a_crash_is_not_a_second_step(box):
    """The SCP accepted the N-CREATE but the box died before recording it: the restart sends it
    again, the SCP answers 0x0111 Duplicate SOP Instance, and that counts as accepted."""
    scp = box.scp()
    create = box.store.begin(japanese_procedure(), UID, STARTED, "EDGE", "US")
    scu = box.scu()
    wait_until(lambda: box.state(create) == DONE, 30, what="the N-CREATE accepted")
    scu.stop()
    # What a crash between the SCP's answer and our commit leaves: the job in flight.
    with box.buffer.index.tx() as cur:
        cur.execute("UPDATE jobs SET state = 'in_flight' WHERE id = ?", (create,))
    assert box.buffer.queue.recover() == 1
    set_job = box.store.complete(UID, IMAGES, ENDED)
    box.scu()
    wait_until(lambda: box.state(set_job) == DONE, 30, what="the N-SET after the re-sent N-CREATE")
    assert [s for s, _, _ in scp.steps()] == [CREATE, CREATE, SET]
    assert box.state(create) == DONE and scp.held == {UID}


def test_n_set_sent_again_after_a_crash_is_taken_as_accepted(box):
    """The SCP took the N-SET but the box died before recording it: the re-sent N-SET is refused
    0x0110 (the step is finished), which after an attempt with no known outcome means "taken"."""
    scp = box.scp()
    box.store.begin(japanese_procedure(), UID, STARTED, "EDGE", "US")
    set_job = box.store.complete(UID, IMAGES, ENDED)
    scu = box.scu()
    wait_until(lambda: box.state(set_job) == DONE, 30, what="the N-SET accepted")
    scu.stop()
    with box.buffer.index.tx() as cur:
        cur.execute("UPDATE jobs SET state = 'in_flight' WHERE id = ?", (set_job,))
    assert box.buffer.queue.recover() == 1
    box.scu()
    wait_until(lambda: box.state(set_job) == DONE, 30, what="the re-sent N-SET settled")
    assert [s for s, _, _ in scp.steps()] == [CREATE, SET, SET]
    assert box.buffer.queue.get(set_job).last_error == ""  # settled as done, not as a failure


_CRASHING_CAPTURE = """
import os, signal, sys
from datetime import datetime
sys.path.insert(0, sys.argv[2])
from gateway.buffer.ingest import Buffer
from gateway.buffer.mpps import MPPS, MPPS_TARGET, MppsStore
from mpps_support import japanese_procedure
buf = Buffer(__import__("pathlib").Path(sys.argv[1]), 0, "replace", lambda a, c: [])
store = MppsStore(buf.queue)
store.begin(japanese_procedure(), sys.argv[3], datetime(2026, 11, 29, 9, 30, 15), "EDGE", "US")
store.complete(sys.argv[3], [("1.2.840.10008.5.1.4.1.1.7", "1.2.3.1", "1.2.3")], datetime(2026, 11, 29, 9, 41))
buf.queue.claim(MPPS, MPPS_TARGET, 1)  # the N-CREATE is being sent...
os.kill(os.getpid(), signal.SIGKILL)  # ...when the power goes
"""


def test_kill_9_between_queueing_and_sending_loses_nothing(box, tmp_path):
    """A process that queued both steps and was sending the N-CREATE is killed (-9); the next
    start sends both, in order, from what the buffer recorded."""
    root = tmp_path / "crashed"
    tests = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests)]))
    r = subprocess.run([sys.executable, "-c", _CRASHING_CAPTURE, str(root), str(tests), UID], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    buf = Buffer(root, 0, "replace", lambda attrs, calling: [])
    scu = None
    try:
        assert buf.queue.recover() == 1  # the N-CREATE in flight at the kill
        scp = box.scp()
        config = Config.model_validate({"mpps": {"enabled": True, "ae_title": "RIS", "port": box.port,
                                                 "retry_initial_s": 0.05, "retry_max_s": 0.2}})
        scu = MppsSCU(config, buf.queue, box.events)
        scu.start()
        record = scu.store.get(UID)
        wait_until(lambda: buf.queue.get(record.set_job).state == DONE, 30, what="both steps after the restart")
        assert [(s, u) for s, u, _ in scp.steps()] == [(CREATE, UID), (SET, UID)]
        assert scp.steps(CREATE)[0][2].PatientName == JAPANESE_NAME
    finally:
        if scu is not None:
            scu.stop()  # before its buffer closes
        buf.index.close()


def test_queue_verbs_name_mpps_jobs(box):
    create = box.store.begin(japanese_procedure(), UID, STARTED, "EDGE", "US")
    (r,) = box.buffer.queue.reforward_jobs([create], "pacs")
    assert not r.ok and "MPPS steps go to the [mpps] SCP only" in r.message
    assert box.buffer.queue.get(create).kind == MPPS


def test_cli_queue_list_and_retry_name_mpps_jobs(tmp_path):
    """`dicom-gateway queue list` shows an N-SET waiting for its dead N-CREATE with why, names both
    by MPPS UID (no patient name or ID), and `queue retry` of the N-SET says what it waits for."""
    # Its config and buffer only: the CLI reads the buffer itself.
    gw = GatewayProcess(tmp_path, {"destinations": {"pacs": {"ae_title": "TESTPACS", "port": free_port()}}})
    buf = Buffer(gw.buffer, 0, "replace", lambda attrs, calling: [])
    try:
        store = MppsStore(buf.queue)
        create = store.begin(japanese_procedure(), UID, STARTED, "EDGE", "US")
        set_job = store.complete(UID, IMAGES, ENDED)
        buf.queue.fail(create, "status 0x0120 Missing Attribute", None)
        (s,) = [j for j in buf.queue.claim(MPPS, "mpps", 2) if j.id == set_job]
        why = store.wait_for_create(s, buf.queue.get(create), recheck_s=3600)
        listing = gw.cli("queue", "list")
        assert listing.returncode == 0, listing.stderr
        assert f"MPPS N-CREATE of {UID}" in listing.stdout and f"MPPS N-SET of {UID}" in listing.stdout
        assert why in listing.stdout and "status 0x0120 Missing Attribute" in listing.stdout
        assert "JP-0042" not in listing.stdout and "Yamada" not in listing.stdout
        retried = gw.cli("queue", "retry", str(set_job))
        assert retried.returncode == 0, retried.stderr
        assert f"MPPS N-SET of {UID} is due now" in retried.stdout
        dead_retry = gw.cli("queue", "retry", str(create))
        assert f"MPPS N-CREATE of {UID} queued again" in dead_retry.stdout
        done = gw.cli("re-forward", "--to", "pacs", str(create))
        assert "MPPS steps go to the [mpps] SCP only" in done.stdout + done.stderr
    finally:
        buf.index.close()
