"""The Modality Performed Procedure Steps this box reports (PS3.4 Annex F), as durable records
and jobs of the buffer's queue.

One row of table `mpps` (schema 6) per step, keyed by its SOP Instance UID, and two jobs of kind
MPPS on target MPPS_TARGET (the one [mpps] SCP): the N-CREATE (status IN PROGRESS), queued by
MppsStore.begin at the procedure's first capture, and the N-SET (COMPLETED or DISCONTINUED, with
the referenced images), queued by MppsStore.complete. The row and its job are written in one
transaction, with the attribute list as it will be sent (gateway/buffer/mpps_attributes.py), so a
crash between queueing and sending loses nothing, and a restart sends what was recorded.

Order: the N-SET is never sent before its N-CREATE was accepted. The SCU
(gateway/dicom/mpps_scu.py) that claims an N-SET whose N-CREATE is not done puts it back without
using an attempt (MppsStore.wait_for_create), saying why in the job's error line, which is what
`dicom-gateway queue list` shows: "waits for its N-CREATE (job 12): ..." -- due again when the
N-CREATE is next tried, or, while the N-CREATE is dead-lettered, every `recheck_s` until an
operator's `queue retry 12` sends it. The N-CREATE's success makes its N-SET due in the same
commit (MppsStore.settle).

Sent twice? The queue's rule holds (a step in flight at a crash is sent again at the restart:
never zero times), and the SCU keeps the second sending harmless where the standard lets it:
  - an N-CREATE sent again is answered 0x0111 Duplicate SOP Instance by an SCP that took the
    first one (our UID is ours alone): the SCU counts that as accepted;
  - an N-SET sent again after an attempt whose outcome was never known may be refused 0x0110
    ("may no longer be updated", PS3.4 F.7.2.2): the SCU counts that as accepted too, only then.
An N-CREATE whose acceptance was committed (job done) is never sent again.

No patient data in job descriptions, events or logs: the MPPS UID, the step and the procedure's
key only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from gateway.buffer import mpps_attributes as attrs
from gateway.buffer.job_kinds import JobKind
from gateway.buffer.procedure import Procedure
from gateway.buffer.queue import DEAD, DONE, QUEUED, Job, JobQueue

MPPS = "mpps"  # jobs.kind
MPPS_TARGET = "mpps"  # jobs.target: the one MPPS SCP of [mpps]
CREATE, SET = "create", "set"
DIMSE = {CREATE: "N-CREATE", SET: "N-SET"}
# What the error line of an N-SET waiting for its N-CREATE starts with (queue list shows it).
WAITS_FOR_CREATE = "waits for its N-CREATE"


class MppsRefused(ValueError):
    """A begin() or complete() that cannot be queued; the message is one line naming why."""


@dataclass(frozen=True)
class MppsRecord:
    """One row of table mpps. status: the Performed Procedure Step Status last queued.
    create_attrs / set_attrs: the attribute lists as sent (Explicit VR Little Endian bytes)."""

    mpps_uid: str
    procedure_key: str
    pps_id: str
    status: str
    create_job: int | None
    set_job: int | None
    create_attrs: bytes
    set_attrs: bytes | None
    created: float
    updated: float


@dataclass(frozen=True)
class MppsStep:
    """An MPPS job's payload (jobs.payload, JSON): which step of which MPPS instance."""

    mpps_uid: str
    step: str

    def to_json(self) -> str:
        return json.dumps({"mpps_uid": self.mpps_uid, "step": self.step})

    @classmethod
    def from_job(cls, job: Job) -> "MppsStep":
        """The payload of an MPPS job; ValueError (one line) for one that is not."""
        try:
            p = json.loads(job.payload or "")
            step = cls(str(p["mpps_uid"]), str(p["step"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"job {job.id}: not an MPPS payload ({exc})") from None
        if step.step not in DIMSE:
            raise ValueError(f"job {job.id}: unknown MPPS step {step.step!r}")
        return step


def _describe(job: Job) -> str:
    try:
        step = MppsStep.from_job(job)
    except ValueError:
        return f"MPPS job on {job.target}"
    return f"MPPS {DIMSE[step.step]} of {step.mpps_uid}"


def _retry_note(cur, job: Job) -> str:
    try:
        step = MppsStep.from_job(job)
    except ValueError:
        return ""
    if step.step != SET:
        return ""
    row = cur.execute("SELECT m.create_job, j.state FROM mpps m LEFT JOIN jobs j ON j.id = m.create_job"
                      " WHERE m.mpps_uid = ?", (step.mpps_uid,)).fetchone()
    if row is not None and row["state"] == DEAD:
        return (f"it waits for its N-CREATE (job {row['create_job']}), which is dead-lettered:"
                f" `dicom-gateway queue retry {row['create_job']}` sends that first")
    return ""


# What the queue's operator verbs say about MPPS jobs (gateway/buffer/job_kinds.py).
MPPS_JOB_KIND = JobKind(
    MPPS,
    describe=_describe,
    finished="accepted by the MPPS SCP",
    done_advice=lambda job: "an accepted MPPS step is not sent again (the RIS holds it)",
    reforward_hint="MPPS steps go to the [mpps] SCP only",
    retry_note=_retry_note,
)

_COLUMNS = ("mpps_uid, procedure_key, pps_id, status, create_job, set_job, create_attrs, set_attrs, created,"
            " updated")


def _record(row) -> MppsRecord:
    return MppsRecord(row["mpps_uid"], row["procedure_key"], row["pps_id"], row["status"], row["create_job"],
                      row["set_job"], bytes(row["create_attrs"]),
                      None if row["set_attrs"] is None else bytes(row["set_attrs"]), row["created"],
                      row["updated"])


class MppsStore:
    """The MPPS records and their N-CREATE / N-SET jobs on `queue` (target `target`, the [mpps]
    SCP). Registers MPPS_JOB_KIND on the queue so that its verbs name MPPS jobs."""

    def __init__(self, queue: JobQueue, target: str = MPPS_TARGET):
        self.queue = queue
        self.index = queue.index
        self.target = target
        queue.register_kind(MPPS_JOB_KIND)

    # -- producers (the capture service) --------------------------------------------------------------
    def begin(self, procedure: Procedure, mpps_uid: str, started: datetime, station_ae: str, modality: str,
              *, study_uid: str = "", pps_id: str | None = None, station_name: str = "", location: str = "",
              study_id: str = "", description: str = "") -> int:
        """Record a Performed Procedure Step that starts now and queue its N-CREATE (status IN
        PROGRESS, PS3.4 F.7.2.1); returns the job's id.

        procedure: the worklist item, or an unscheduled capture's identity (its Scheduled Step
        Attributes item then has only the Study Instance UID). mpps_uid: the MPPS SOP Instance UID
        (the caller generates it under its UID root; also the Referenced Performed Procedure Step
        of the captured objects). started: PPS Start Date/Time, local time. station_ae: Performed
        Station AE Title (the box's AE title). modality: (0008,0060). study_uid: the captured
        objects' Study Instance UID when the procedure has none. pps_id: Performed Procedure Step
        ID (default: derived from mpps_uid, mpps_attributes.pps_id_for). The other keywords: see
        mpps_attributes.create_attributes.
        Raises MppsRefused (one line) for a UID that is not one or already recorded, or attributes
        that cannot be built (mpps_attributes.MppsAttributeError)."""
        if not _is_uid(mpps_uid):
            raise MppsRefused(f"MPPS SOP Instance UID {mpps_uid!r} is not a UID")
        pps_id = pps_id or attrs.pps_id_for(mpps_uid)
        try:
            ds = attrs.create_attributes(procedure, pps_id=pps_id, started=started, station_ae=station_ae,
                                         modality=modality, study_uid=study_uid, station_name=station_name,
                                         location=location, study_id=study_id, description=description)
            data = attrs.encode(ds)
        except attrs.MppsAttributeError as exc:
            raise MppsRefused(f"MPPS {mpps_uid}: {exc}") from None
        now = time.time()
        with self.index.tx() as cur:
            if cur.execute("SELECT 1 FROM mpps WHERE mpps_uid = ?", (mpps_uid,)).fetchone():
                raise MppsRefused(f"MPPS {mpps_uid} was begun already")
            job_id = self.queue.enqueue_in(cur, MPPS, self.target, MppsStep(mpps_uid, CREATE).to_json(), now)
            cur.execute(f"INSERT INTO mpps({_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, ?, ?)",
                        (mpps_uid, procedure.key, pps_id, attrs.IN_PROGRESS, job_id, data, now, now))
        self.queue.notify()
        return job_id

    def complete(self, mpps_uid: str, referenced: Iterable[attrs.ReferencedImage | tuple[str, str, str]],
                 ended: datetime, discontinued: bool = False,
                 reason: str | tuple[str, str, str] | None = None, *,
                 retrieve_ae: str = "", protocol_name: str = "CAPTURE", series_description: str = "") -> int:
        """End the step begun as `mpps_uid`: queue its N-SET, status COMPLETED (or DISCONTINUED),
        with the Performed Series Sequence of `referenced` ((SOP Class UID, SOP Instance UID,
        Series Instance UID) each, PS3.4 F.7.2.2, Table F.7.2-1); returns the job's id. It is sent
        only after the N-CREATE was accepted (see the module docstring).

        ended: PPS End Date/Time, local time. reason: a key of
        mpps_attributes.DISCONTINUATION_REASONS (CID 9300) or a code (value, scheme, meaning),
        with discontinued only. retrieve_ae:
        Retrieve AE Title of the series (where the images can be had, e.g. the PACS's AE title).
        protocol_name / series_description: of each series.
        Raises MppsRefused (one line) for an unknown MPPS, one already completed or discontinued,
        or a list that cannot be built (a bad UID, COMPLETED with no image, an unknown reason)."""
        record = self.get(mpps_uid)
        if record is None:
            raise MppsRefused(f"MPPS {mpps_uid} was never begun")
        if record.set_job is not None or record.status != attrs.IN_PROGRESS:
            raise MppsRefused(f"MPPS {mpps_uid} is {record.status} already (its N-SET is job {record.set_job})")
        try:
            charset = attrs.character_set_of(attrs.decode(record.create_attrs))
            ds = attrs.set_attributes(referenced, ended=ended, discontinued=discontinued, reason=reason,
                                      retrieve_ae=retrieve_ae, protocol_name=protocol_name,
                                      series_description=series_description, character_set=charset)
            data = attrs.encode(ds)
        except ValueError as exc:
            raise MppsRefused(f"MPPS {mpps_uid}: {exc}") from None
        status = attrs.DISCONTINUED if discontinued else attrs.COMPLETED
        now = time.time()
        with self.index.tx() as cur:
            # Read again inside the write transaction: two callers never both queue an N-SET.
            row = cur.execute("SELECT set_job FROM mpps WHERE mpps_uid = ?", (mpps_uid,)).fetchone()
            if row["set_job"] is not None:
                raise MppsRefused(f"MPPS {mpps_uid} was ended already (its N-SET is job {row['set_job']})")
            job_id = self.queue.enqueue_in(cur, MPPS, self.target, MppsStep(mpps_uid, SET).to_json(), now)
            cur.execute("UPDATE mpps SET set_job = ?, set_attrs = ?, status = ?, updated = ? WHERE mpps_uid = ?",
                        (job_id, data, status, now, mpps_uid))
        self.queue.notify()
        return job_id

    # -- reading ---------------------------------------------------------------------------------------
    def get(self, mpps_uid: str) -> MppsRecord | None:
        """The record of `mpps_uid`, or None."""
        rows = self.index.query(f"SELECT {_COLUMNS} FROM mpps WHERE mpps_uid = ?", (mpps_uid,))
        return _record(rows[0]) if rows else None

    def for_procedure(self, procedure_key: str) -> list[MppsRecord]:
        """The steps recorded for a procedure, oldest first (a capture service restarted mid-
        procedure finds the step it began)."""
        rows = self.index.query(f"SELECT {_COLUMNS} FROM mpps WHERE procedure_key = ? ORDER BY created",
                                (procedure_key,))
        return [_record(r) for r in rows]

    # -- the SCU's side ----------------------------------------------------------------------------------
    def create_state(self, record: MppsRecord) -> Job | None:
        """The N-CREATE job of `record` (None if it was deleted)."""
        return None if record.create_job is None else self.queue.get(record.create_job)

    def wait_for_create(self, set_job: Job, create: Job | None, recheck_s: float) -> str:
        """An N-SET was claimed before its N-CREATE was accepted: put it back, no attempt used,
        due again just after the N-CREATE's next try (queued), or in `recheck_s` while the
        N-CREATE is in flight (its success makes this one due at once, settle), dead or gone.
        Returns the line it waits with (the job's error line, shown by `queue list`)."""
        now = time.time()
        if create is None:
            why, at = f"{WAITS_FOR_CREATE}, which is no longer in the queue; it is never sent", now + recheck_s
        elif create.state == DEAD:
            why = (f"{WAITS_FOR_CREATE} (job {create.id}), which is dead-lettered ({create.last_error});"
                   f" `dicom-gateway queue retry {create.id}` sends it, then this one")
            at = now + recheck_s
        elif create.state == QUEUED:
            when = "now" if create.next_attempt <= now else time.strftime(
                "%H:%M:%S", time.localtime(create.next_attempt))
            why = f"{WAITS_FOR_CREATE} (job {create.id}, queued, next try {when})"
            # Just after the N-CREATE's own time: claims go oldest job first, so it is tried first.
            at = max(create.next_attempt, now) + 0.001
        else:
            # Being sent (by another process): its success makes this one due (settle); a crash
            # meanwhile leaves the recheck.
            why, at = f"{WAITS_FOR_CREATE} (job {create.id}, {create.state})", now + recheck_s
        self.queue.release([set_job.id], why, at, uncount=True)
        return why

    def settle(self, job: Job, step: MppsStep) -> None:
        """The SCP accepted `step` (job `job`): the job is done, and for an N-CREATE its N-SET,
        if one waits, is due now, in the same commit."""
        now = time.time()
        with self.index.tx() as cur:
            JobQueue.complete_in(cur, [job.id], now)
            cur.execute("UPDATE mpps SET updated = ? WHERE mpps_uid = ?", (now, step.mpps_uid))
            if step.step == CREATE:
                row = cur.execute("SELECT set_job FROM mpps WHERE mpps_uid = ?", (step.mpps_uid,)).fetchone()
                if row is not None and row["set_job"] is not None:
                    JobQueue.make_job_due_in(cur, row["set_job"])
        self.queue.notify()

    def create_done(self, record: MppsRecord) -> bool:
        """Whether the N-CREATE of `record` was accepted (its job done)."""
        job = self.create_state(record)
        return job is not None and job.state == DONE


def _is_uid(value: str) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and all(
        part.isdigit() for part in value.split(".")) and not value.startswith(".")
