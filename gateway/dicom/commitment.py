"""Storage Commitment Push Model SCU (PS3.4 Annex J).

The transaction is written to the buffer (jobs -> committing) before the N-ACTION leaves, so a
report that arrives at any moment, on this association or a new one, and across a restart, finds
it. Instances the peer reports as failed, and every instance of a transaction that times out, are
sent again.
"""

from __future__ import annotations

import logging
import time

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from gateway.buffer.queue import Job, JobQueue
from gateway.config import DestinationSection
from gateway.dicom import status
from gateway.dicom.sop_classes import STORAGE_COMMITMENT_PUSH, STORAGE_COMMITMENT_PUSH_INSTANCE
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
    def __init__(self, queue: JobQueue, events: EventBus, retry_delay, on_done=None):
        """`retry_delay(target)`: seconds before an instance the target failed to commit is resent."""
        self.queue = queue
        self.events = events
        self.retry_delay = retry_delay
        self.on_done = on_done or (lambda instance_ids: None)

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
                           time.time() + self.retry_delay(target))
        self.queue.close_commitment(txn, "refused")
        self.events.publish("commitment-refused", target=target, reason=reason)
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
        now = time.time()
        for j in jobs:
            if j.sop_uid in committed:
                continue
            delay = self.retry_delay(j.target)
            code = failed.get(j.sop_uid)
            why = (f"storage commitment failed: 0x{code:04X} {FAILURE_REASONS.get(code, '')}".strip()
                   if code is not None else "storage commitment report did not mention it")
            self.queue.release([j.id], why, now + delay)
            log.warning("%s not committed by %s (%s); sending again in %.0f s", j.sop_uid, j.target, why, delay)
        self.queue.close_commitment(txn, "done")
        log.info("storage commitment %s: %d committed, %d to resend", txn, len(done), len(jobs) - len(done))
        self.events.publish("committed", transaction=txn, committed=len(done), failed=len(jobs) - len(done))
        self.on_done([j.instance_fk for j in done])
        return status.SUCCESS, None

    def expire(self) -> int:
        """Transactions past their deadline: send their instances again."""
        n = 0
        for txn in self.queue.expired_commitments(time.time()):
            jobs = self.queue.committing_jobs(txn)
            self.queue.release([j.id for j in jobs], "storage commitment timed out; sending again", 0)
            self.queue.close_commitment(txn, "expired")
            log.warning("storage commitment %s timed out: %d instances will be sent again", txn, len(jobs))
            n += len(jobs)
        return n
