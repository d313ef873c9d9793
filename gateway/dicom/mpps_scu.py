"""MPPS SCU: the queue worker that sends Modality Performed Procedure Steps (PS3.4 Annex F, SOP
Class 1.2.840.10008.3.1.2.3.3) to the [mpps] SCP: the N-CREATE (IN PROGRESS) and the N-SET
(COMPLETED / DISCONTINUED) that gateway/buffer/mpps.py MppsStore queued, one association per step
(a procedure has two; nothing is gained by holding one open).

Wiring (the lead's, gateway/app.py), when config.mpps.enabled:

    self.mpps = MppsSCU(config, self.buffer.queue, self.events)   # registers the job kind
    self.mpps.start()        # with the other workers; self.mpps.stop() at the stop
    ... the capture service gets self.mpps.store (an MppsStore) to call begin() / complete()

Failure classes (as the forwarder's, gateway/dicom/forward.py):
- no association (SCP down, rejected, the MPPS SOP class not accepted): the job goes back
  without using an attempt, the worker backs off (capped exponential, retry_initial_s ..
  retry_max_s); a RIS down for a weekend does not dead-letter Monday's steps. mpps-failed with
  attempt 0.
- a failure status from the SCP: retried with backoff until max_attempts, then dead-lettered,
  the status named ("status 0x0110 Processing Failure: <error comment>"); a status no retry can
  change (a missing or invalid attribute, SOP class not supported, not authorised, no such
  instance: PERMANENT) is dead-lettered at once.
- 0x0111 Duplicate SOP Instance to an N-CREATE: the SCP holds our instance (its UID is ours
  alone), so an earlier sending arrived; counted as accepted (a WARNING says so).
- 0x0110 to an N-SET whose previous attempt had no known outcome (a restart, no response, a
  send broken off):
  the SCP took that one and refuses to update a finished step (PS3.4 F.7.2.2); accepted.
- No response / association lost mid-step: an attempt used, retried with backoff.
The N-SET of a step whose N-CREATE is not yet accepted is never sent (MppsStore.wait_for_create).
"""

from __future__ import annotations

import logging
import time

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep
from pynetdicom.status import GENERAL_STATUS, STATUS_SUCCESS, STATUS_WARNING, code_to_category

from gateway.buffer import mpps_attributes as attrs
from gateway.buffer.mpps import CREATE, DIMSE, MPPS, MppsRecord, MppsStep, MppsStore, SET
from gateway.buffer.queue import Job, JobQueue
from gateway.buffer.worker import QueueWorker, backoff
from gateway.config import Config
from gateway.dicom.net.pynetdicom_patches import rejection
from gateway.dicom.net.storage_requestor import describe_rejection
from gateway.dicom.sop_classes import UNCOMPRESSED
from gateway.event_kinds import MppsFailed, MppsSent
from gateway.events import EventBus
from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

log = logging.getLogger("gateway.dicom.mpps_scu")

MPPS_SOP_CLASS = str(ModalityPerformedProcedureStep)  # 1.2.840.10008.3.1.2.3.3
# Proposed for it (the conformance statement reads this too): the two Little Endian syntaxes.
MPPS_SYNTAXES = (str(UNCOMPRESSED[0]), str(UNCOMPRESSED[1]))
DUPLICATE_SOP_INSTANCE = 0x0111
PROCESSING_FAILURE = 0x0110
# Failures no retry changes (PS3.7 C.4, PS3.4 F.7.2.1.2 / F.7.2.2.2): the attribute list or the
# SCP's configuration must change first.
PERMANENT = frozenset({0x0105, 0x0106, 0x0112, 0x0114, 0x0115, 0x0117, 0x0118, 0x0119, 0x0120, 0x0121,
                       0x0122, 0x0124, 0x0211, 0x0212})
# How an attempt that ended without a known outcome is recorded (the queue's recover() writes
# "interrupted by a restart"; _answered "no response", process "cannot send"): the next N-SET
# reads a 0x0110 after one of these as "already taken".
UNKNOWN_OUTCOME = ("interrupted by a restart", "no response", "cannot send")


class _NoAssociation(Exception):
    """No association with the SCP for the MPPS SOP class; the message is one line."""


def status_name(code: int) -> str:
    """'0x0110 Processing Failure': the code and pynetdicom's name for it (PS3.7 C)."""
    name = GENERAL_STATUS.get(code, ("", ""))[1]
    return f"0x{code:04X}" + (f" {name}" if name else "")


class MppsSCU(QueueWorker):
    """The queue worker of kind 'mpps' (target MPPS_TARGET): one claimed step at a time, over an
    association of its own. config: the whole Config (its [mpps], [ae] and [timers]). queue: the
    buffer's JobQueue. events: where mpps-sent / mpps-failed go. store: the MppsStore (default:
    one on `queue`, which registers the job kind); `self.store` is what the capture calls.
    recheck_s: how often an N-SET waiting for a dead-lettered N-CREATE looks again (default the
    section's retry_max_s)."""

    def __init__(self, config: Config, queue: JobQueue, events: EventBus, *, store: MppsStore | None = None,
                 recheck_s: float | None = None):
        self.store = store or MppsStore(queue)
        super().__init__(queue, MPPS, self.store.target, who="MPPS SCU", logger=log, thread_name="mpps-scu")
        self.config = config
        self.section = config.mpps
        self.events = events
        self.calling_ae = self.section.calling_ae or config.ae.title
        self.recheck_s = self.section.retry_max_s if recheck_s is None else recheck_s

    def on_start(self) -> None:
        s = self.section
        log.info("MPPS SCU to %s@%s:%d started", s.ae_title, s.host, s.port)

    # -- one step --------------------------------------------------------------------------------------
    def process(self, job: Job) -> None:
        """Send one claimed N-CREATE or N-SET and settle its job (done, retried, dead, or put back
        to wait for its N-CREATE)."""
        try:
            step = MppsStep.from_job(job)
        except ValueError as exc:
            self.queue.fail(job.id, str(exc), None)
            return
        record = self.store.get(step.mpps_uid)
        if record is None:
            self.queue.fail(job.id, f"MPPS {step.mpps_uid} has no record in the buffer", None)
            return
        if step.step == SET and not self.store.create_done(record):
            why = self.store.wait_for_create(job, self.store.create_state(record), self.recheck_s)
            log.info("MPPS N-SET of %s (job %d) %s", step.mpps_uid, job.id, why)
            return
        try:
            data = record.create_attrs if step.step == CREATE else record.set_attrs
            if data is None:
                raise ValueError("its N-SET attribute list was never recorded")
            ds = attrs.decode(data)
        except ValueError as exc:
            self._failed(job, step, f"MPPS {step.mpps_uid}: {exc}", dead=True)
            return
        try:
            code, comment = self._send(step, ds)
        except _NoAssociation as exc:
            self._no_association(job, step, str(exc))
            return
        except (RuntimeError, ValueError, AttributeError, OSError) as exc:
            # pynetdicom raises these for a list it cannot encode or an association lost under
            # it: an attempt used, one line, and the job never left in flight.
            self._failed(job, step, f"cannot send: {type(exc).__name__}: {exc}", dead=False)
            return
        self._answered(job, step, record, code, comment)

    def _send(self, step: MppsStep, ds: Dataset) -> tuple[int | None, str]:
        """One association, one N-CREATE or N-SET; (status, error comment), status None when no
        response came. Raises _NoAssociation."""
        s = self.section
        ae = AE(ae_title=self.calling_ae)
        ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        timers = self.config.timers
        ae.acse_timeout = ae.connection_timeout = timers.association_s
        ae.dimse_timeout = ae.network_timeout = timers.inactivity_s
        ae.maximum_pdu_size = self.config.ae.max_pdu
        ae.add_requested_context(MPPS_SOP_CLASS, list(MPPS_SYNTAXES))
        where = f"{s.ae_title}@{s.host}:{s.port}"
        assoc = ae.associate(s.host, s.port, ae_title=s.ae_title)
        if not assoc.is_established:
            if assoc.is_rejected:
                result, source, diagnostic = rejection(assoc)
                why = (describe_rejection(result, source, diagnostic) if None not in (result, source, diagnostic)
                       else "rejected")
                raise _NoAssociation(f"association rejected by {where}: {why}")
            raise _NoAssociation(f"no association with {where} (connection refused, aborted or timed out)")
        try:
            if not any(cx.abstract_syntax == MPPS_SOP_CLASS for cx in assoc.accepted_contexts):
                raise _NoAssociation(f"{where} does not accept the MPPS SOP class ({MPPS_SOP_CLASS})")
            if step.step == CREATE:
                rsp, _ = assoc.send_n_create(ds, MPPS_SOP_CLASS, step.mpps_uid)
            else:
                rsp, _ = assoc.send_n_set(ds, MPPS_SOP_CLASS, step.mpps_uid)
        finally:
            if assoc.is_established:
                assoc.release()
        code = rsp.get("Status") if rsp is not None else None
        comment = str(rsp.get("ErrorComment", "")) if code is not None and "ErrorComment" in rsp else ""
        return code, comment

    # -- outcomes ----------------------------------------------------------------------------------------
    def _answered(self, job: Job, step: MppsStep, record: MppsRecord, code: int | None, comment: str) -> None:
        what = f"MPPS {DIMSE[step.step]} of {step.mpps_uid}"
        status = attrs.IN_PROGRESS if step.step == CREATE else record.status
        if code is None:
            self._failed(job, step, "no response (association lost or DIMSE timeout)", dead=False)
            return
        category = code_to_category(code)
        if category in (STATUS_SUCCESS, STATUS_WARNING):
            if category == STATUS_WARNING:
                log.warning("%s (job %d) accepted with warning %s%s", what, job.id, status_name(code),
                            f": {comment}" if comment else "")
            self._accepted(job, step, status)
            return
        if step.step == CREATE and code == DUPLICATE_SOP_INSTANCE:
            # Only this box makes this UID: the SCP holds it because an earlier sending arrived.
            log.warning("%s (job %d): the SCP answered %s; it holds the instance from an earlier attempt "
                        "whose answer was lost: counted as accepted", what, job.id, status_name(code))
            self._accepted(job, step, status)
            return
        if (step.step == SET and code == PROCESSING_FAILURE and job.attempts > 1
                and job.last_error.startswith(UNKNOWN_OUTCOME)):
            log.warning("%s (job %d): the SCP answered %s after an attempt with no known outcome (%s): it "
                        "took that one and refuses to update a finished step; counted as accepted", what,
                        job.id, status_name(code), job.last_error)
            self._accepted(job, step, status)
            return
        reason = f"status {status_name(code)}" + (f": {comment}" if comment else "")
        self._failed(job, step, reason, dead=code in PERMANENT)

    def _accepted(self, job: Job, step: MppsStep, status: str) -> None:
        self.store.settle(job, step)
        lasted = self.target_up()
        if lasted is not None:
            log.info("MPPS SCP reachable again after %.0f s", lasted)
            # Steps that waited out the outage go now, not at their staggered backoff times.
            self.queue.make_due(MPPS, self.target)
        log.info("MPPS %s of %s (%s) accepted (job %d)", DIMSE[step.step], step.mpps_uid, status, job.id)
        self.events.publish(MppsSent(mpps_uid=step.mpps_uid, step=step.step, status=status))

    def _failed(self, job: Job, step: MppsStep, reason: str, dead: bool) -> None:
        """The SCP answered, and not yes (or no answer came): an attempt used."""
        s = self.section
        what = f"MPPS {DIMSE[step.step]} of {step.mpps_uid}"
        if not dead and job.attempts < s.max_attempts:
            delay = backoff(s.retry_initial_s, s.retry_max_s, job.attempts)
            self.queue.fail(job.id, reason, time.time() + delay)
            log.warning("%s failed (job %d, attempt %d/%d), retry in %.3g s: %s", what, job.id, job.attempts,
                        s.max_attempts, delay, reason)
        else:
            why = reason if dead else f"{reason} (gave up after {job.attempts} attempts)"
            self.queue.fail(job.id, why, None)
            log.error("%s dead-lettered (job %d): %s", what, job.id, why)
            reason, dead = why, True
        self.events.publish(MppsFailed(mpps_uid=step.mpps_uid, step=step.step, reason=reason,
                                       attempt=job.attempts, dead=dead))

    def _no_association(self, job: Job, step: MppsStep, reason: str) -> None:
        """The SCP could not be reached: the job waits, no attempt used; the worker backs off."""
        s = self.section
        delay = self.retry_delay(s.retry_initial_s, s.retry_max_s)
        self.queue.release([job.id], reason, time.time() + delay, uncount=True)
        if self.target_down():
            log.warning("MPPS SCP unreachable: %s; steps wait, retrying in %.3g s", reason, delay)
        self.events.publish(MppsFailed(mpps_uid=step.mpps_uid, step=step.step, reason=reason, attempt=0,
                                       dead=False))
        self.wait_out(delay, self.config.logging.down_reminder_s,
                      lambda left: log.warning("MPPS SCP still unreachable after %.0f s: %s; next try in %.3g s",
                                               time.time() - (self.down_since or time.time()), reason, left))
