"""Storage Commitment Push Model SCU (PS3.4 Annex J).

The transaction is written to the buffer (jobs -> committing) before the N-ACTION leaves, so a
report that arrives at any moment, on this association or a new one, and across a restart, finds
it. Instances the peer reports as failed, and every instance of a transaction that times out, are
sent again.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt

from gateway.buffer.queue import Job, JobQueue
from gateway.config import DestinationSection
from gateway.dicom import status
from gateway.dicom.net.service_role import SupportedContext
from gateway.dicom.sop_classes import STORAGE_COMMITMENT_PUSH, STORAGE_COMMITMENT_PUSH_INSTANCE, UNCOMPRESSED
from gateway.event_kinds import CommitmentRefused, Committed, DeadLettered
from gateway.events import EventBus

log = logging.getLogger("gateway.dicom.commitment")

FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0112: "no such object instance",
    0x0213: "resource limitation",
    0x0122: "referenced SOP class not supported",
    0x0119: "class / instance conflict",
    0x0131: "duplicate transaction UID",
}


class CommitmentSCU:
    def __init__(self, queue: JobQueue, events: EventBus,
                 destination: Callable[[str], DestinationSection | None], on_done=None):
        """`destination(target)`: the target's config (retry delay, attempts), None if gone."""
        self.queue = queue
        self.events = events
        self.destination = destination
        self.on_done = on_done or (lambda instance_ids: None)

    # -- the service role (gateway/dicom/net/service_role.py): reports on a new association ------------
    @staticmethod
    def contexts() -> list[SupportedContext]:
        """Storage Commitment Push for its N-EVENT-REPORT (PS3.4 J.3.3): Orthanc (and others) send
        the report on a new association and propose the SCP role for it, so both roles are
        accepted."""
        return [SupportedContext(STORAGE_COMMITMENT_PUSH, tuple(UNCOMPRESSED[:2]), True, True)]

    def handlers(self) -> list[tuple]:
        """The report handler, for the listener and for the forwarders' own associations (a
        destination may send the report on the association that asked for it)."""
        return [(evt.EVT_N_EVENT_REPORT, self.handle_report)]

    @staticmethod
    def called_titles() -> list[str]:
        return []

    def request(self, assoc, target: str, dest: DestinationSection, jobs: list[Job]) -> bool:
        txn = generate_uid()
        self.queue.mark_committing([j.id for j in jobs], txn, target, time.time() + dest.commitment_timeout_s)
        ds = Dataset()
        ds.TransactionUID = txn
        ds.ReferencedSOPSequence = []
        for j in jobs:
            item = Dataset()
            item.ReferencedSOPClassUID = j.sop_class
            item.ReferencedSOPInstanceUID = j.sop_uid
            ds.ReferencedSOPSequence.append(item)
        code = None
        try:
            rsp, _ = assoc.send_n_action(ds, 1, STORAGE_COMMITMENT_PUSH, STORAGE_COMMITMENT_PUSH_INSTANCE)
            code = rsp.get("Status") if rsp is not None else None
        except (ValueError, RuntimeError) as exc:
            log.warning("storage commitment request to %s not sent: %s", target, exc)
        if code == status.SUCCESS:
            log.info("storage commitment %s requested from %s for %d instances", txn, target, len(jobs))
            return True
        # The committing rows may already have been closed by a report on this association.
        pending = self.queue.committing_jobs(txn)
        reason = "no N-ACTION response" if code is None else f"N-ACTION status 0x{code:04X}"
        self.queue.release([j.id for j in pending], f"storage commitment not accepted ({reason})",
                           time.time() + dest.retry_initial_s)
        self.queue.close_commitment(txn, "refused")
        self.events.publish(CommitmentRefused(target=target, reason=reason))
        return False

    def handle_report(self, event):
        """EVT_N_EVENT_REPORT, from the listener (new association) or a forwarding association."""
        if str(event.request.AffectedSOPClassUID) != STORAGE_COMMITMENT_PUSH:
            return status.response(status.SOP_CLASS_NOT_SUPPORTED), None
        try:
            ds = event.event_information
            txn = str(ds.TransactionUID)
        except Exception as exc:  # a report we cannot read is the sender's error; say so
            return status.response(0x0110, f"cannot read event information: {exc}"), None
        committed = {str(i.ReferencedSOPInstanceUID) for i in ds.get("ReferencedSOPSequence", [])}
        failed = {
            str(i.ReferencedSOPInstanceUID): int(i.get("FailureReason", 0x0110))
            for i in ds.get("FailedSOPSequence", [])
        }
        jobs = self.queue.committing_jobs(txn)
        if not jobs:
            log.warning("storage commitment report for unknown or closed transaction %s", txn)
            return status.SUCCESS, None
        done = [j for j in jobs if j.sop_uid in committed]
        self.queue.complete([j.id for j in done])
        for j in jobs:
            if j.sop_uid in committed:
                continue
            code = failed.get(j.sop_uid)
            why = (f"storage commitment failed: 0x{code:04X} {FAILURE_REASONS.get(code, '')}".strip()
                   if code is not None else "storage commitment report did not mention it")
            self._resend_or_give_up(j, why)
        self.queue.close_commitment(txn, "done")
        log.info("storage commitment %s: %d committed, %d to resend", txn, len(done), len(jobs) - len(done))
        self.events.publish(Committed(transaction=txn, committed=len(done), failed=len(jobs) - len(done)))
        self.on_done([j.instance_fk for j in done])
        return status.SUCCESS, None

    def _resend_or_give_up(self, job: Job, why: str, at_once: bool = False) -> None:
        """Send the instance again, or dead-letter it once the destination's attempts are used up:
        a PACS that never commits an instance must not have it resent forever."""
        dest = self.destination(job.target)
        if dest is None or job.attempts >= dest.max_attempts:
            reason = f"{why} (gave up after {job.attempts} attempts)"
            self.queue.fail(job.id, reason, None)
            log.error("%s dead-lettered for %s: %s", job.sop_uid, job.target, reason)
            self.events.publish(DeadLettered(target=job.target, sop_uid=job.sop_uid or "", reason=reason))
            return
        delay = 0.0 if at_once else dest.retry_initial_s
        self.queue.release([job.id], why, time.time() + delay)
        log.warning("%s not committed by %s (%s); sending again in %.0f s", job.sop_uid, job.target, why, delay)

    def expire(self) -> int:
        """Transactions past their deadline: send their instances again."""
        n = 0
        for txn in self.queue.expired_commitments(time.time()):
            jobs = self.queue.committing_jobs(txn)
            for j in jobs:
                self._resend_or_give_up(j, "storage commitment timed out", at_once=True)
            self.queue.close_commitment(txn, "expired")
            log.warning("storage commitment %s timed out: %d instances will be sent again", txn, len(jobs))
            n += len(jobs)
        return n
