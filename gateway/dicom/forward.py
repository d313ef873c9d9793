"""The forwarder: one queue worker (gateway.buffer.worker) per destination that drains that
destination's queue, a batch over one association at a time.

Failure classes:
- the association cannot be opened (PACS down, rejected): the destination backs off (capped
  exponential); the jobs wait without using up attempts, because a PACS down for a weekend must
  not turn Monday's studies into dead letters.
- a transient C-STORE failure (A7xx out of resources, no response, association lost): that job is
  retried with capped exponential backoff, until `max_attempts`, then dead-lettered.
- a permanent failure (A9xx, Cxxx, 0122, 0124...): dead-lettered at once, with the reason.
"""

from __future__ import annotations

import logging
import time
import uuid

from gateway.buffer.coercion import CoercionFailed, Coercer, describe
from gateway.buffer.ingest import FORWARD, Buffer
from gateway.buffer.queue import Job
from gateway.buffer.worker import QueueWorker, backoff
from gateway.config import Config, DestinationSection
from gateway.dicom.commitment import CommitmentSCU
from gateway.dicom.store_scu import AssociationFailed, SendItem, StoreSCU, fit_batch
from gateway.event_kinds import (DeadLettered, DestinationDown, DestinationStillDown, DestinationUp, ForwardFailed,
                                  Forwarded)
from gateway.events import EventBus

log = logging.getLogger("gateway.dicom.forward")


def _item(buffer: Buffer, job: Job) -> SendItem:
    return SendItem(buffer.files.absolute(job.path), job.sop_class, job.sop_uid, job.transfer_syntax)


class Forwarder(QueueWorker):
    """The queue worker of kind 'forward' for one destination: a claim is a batch, sent over one
    association (QueueWorker has the loop, the stop and the backoff waits)."""

    def __init__(self, name: str, config: Config, buffer: Buffer, events: EventBus,
                 commitment: CommitmentSCU | None, scu_handlers: list | None = None):
        self.name = name
        self.dest: DestinationSection = config.destinations[name]
        super().__init__(buffer.queue, FORWARD, name, who=f"forwarder {name}", logger=log,
                         thread_name=f"forward-{name}", batch=self.dest.batch_size)
        self.config = config
        self.buffer = buffer
        self.events = events
        self.commitment = commitment if self.dest.storage_commitment else None
        self.scu = StoreSCU(config.ae.title, self.dest, config.timers, config.ae.tcp_nodelay,
                            config.ae.max_pdu, scu_handlers)
        self._cut = False  # the stop's drain deadline passed: the send in progress was aborted
        # [[coercion]] rules with destination = [this one]: a coerced copy per send
        self.coercer = Coercer.for_destination(config, name) if config.coercion else None
        self._assoc = None

    def request_stop(self) -> None:
        """Stop after the object in hand: the send under way completes (and is marked done); the
        rest of the batch goes back to the queue without using up an attempt. cut() ends a send
        that outlasts the stop's drain deadline."""
        super().request_stop()

    def cut(self, drain_s: float) -> None:
        """The drain deadline passed: abort the association in progress (a WARNING names it). The
        job goes back to the queue without using up an attempt and is sent after the restart."""
        self._cut = True
        self._stop.set()
        assoc = self._assoc
        if assoc is not None and assoc.is_established:
            log.warning("aborting the association to %s (%s@%s:%d): the service is stopping and the "
                        "drain deadline (timers.stop_drain_s = %.0f s) passed mid-send; the object stays "
                        "queued", self.name, self.dest.ae_title, self.dest.host, self.dest.port, drain_s)
            assoc.abort()

    def on_start(self) -> None:
        log.info("forwarder for %s (%s@%s:%d) started", self.name, self.dest.ae_title, self.dest.host, self.dest.port)

    def on_stop(self) -> None:
        log.info("forwarder for %s stopped", self.name)

    def process_batch(self, jobs: list[Job]) -> None:
        """Send a claimed batch over one association; each job settled as its peer answered."""
        items = [_item(self.buffer, j) for j in jobs]
        n = fit_batch(items)
        if n < len(jobs):
            self.queue.release([j.id for j in jobs[n:]], "", 0, uncount=True)
            jobs, items = jobs[:n], items[:n]
        try:
            assoc = self.scu.open(items, commitment=self.commitment is not None)
        except AssociationFailed as exc:
            delay = self.retry_delay(self.dest.retry_initial_s, self.dest.retry_max_s)
            self.queue.release([j.id for j in jobs], str(exc), time.time() + delay, uncount=True)
            self._note_down(str(exc), delay)
            self._wait_out_outage(str(exc), delay)
            return
        self._assoc = assoc
        lasted = self.target_up()
        if lasted is not None:
            log.info("%s reachable again after %.0f s", self.name, lasted)
            self.events.publish(DestinationUp(target=self.name))
            # Jobs that waited out the outage go now, not at their staggered backoff times.
            self.queue.make_due(FORWARD, self.name)
        started = time.monotonic()
        sent: list[Job] = []
        try:
            for i, (job, item) in enumerate(zip(jobs, items)):
                if self.stopping or time.monotonic() - started > self.config.timers.session_s:
                    self.queue.release([j.id for j in jobs[i:]], "", 0, uncount=True)
                    break
                copy = None
                if self.coercer:
                    try:
                        item, copy = self._coerced(job, item)
                    except (CoercionFailed, OSError) as exc:
                        self._failed(job, f"coercion for {self.name} failed: {exc}", transient=isinstance(exc, OSError))
                        continue
                try:
                    result = self.scu.send(assoc, item)
                finally:
                    if copy is not None:
                        copy.unlink(missing_ok=True)
                if not result.ok and self._cut:
                    # Cut by the stop, not by the peer: this job and the rest are not attempts.
                    self.queue.release([j.id for j in jobs[i:]], "interrupted by a service stop", 0, uncount=True)
                    break
                if result.ok:
                    if result.warning:
                        log.warning("%s accepted %s with warning 0x%04X %s", self.name, job.sop_uid,
                                    result.status, result.error)
                    sent.append(job)
                    if self.commitment is None:
                        self.queue.complete([job.id])
                        self._done([job])
                    continue
                self._failed(job, result.error, result.transient)
                if not assoc.is_established:
                    self.queue.release([j.id for j in jobs[i + 1:]], "association lost", 0, uncount=True)
                    break
                if result.transient:
                    # Seed statement: "Refused -> release; the unit failed". The rest waits.
                    delay = backoff(self.dest.retry_initial_s, self.dest.retry_max_s, job.attempts)
                    self.queue.release([j.id for j in jobs[i + 1:]], "peer refused an earlier object",
                                       time.time() + delay, uncount=True)
                    break
            if self.commitment is not None and sent and assoc.is_established:
                self.commitment.request(assoc, self.name, self.dest, sent)
            elif self.commitment is not None and sent:
                self.queue.release([j.id for j in sent], "association lost before commitment request", 0,
                                   uncount=self._cut)
        finally:
            self._assoc = None
            if assoc.is_established:
                assoc.release()
        if sent:
            log.info("forwarded %d instances to %s", len(sent), self.name)

    def _coerced(self, job: Job, item: SendItem):
        """the destination's coercion rules applied to a copy of the stored object, made
        in incoming/ (same file system; removed after the send, and by recovery after a crash),
        not fsynced (nothing is acknowledged on it). Returns (the item to send, the copy or None
        when the rules change nothing). The stored object and the index keep the ingest's values.
        Raises CoercionFailed (dead-letters the job: the rule cannot apply to this object), OSError."""
        # No path component from the config or a DICOM value (files.py): the job id and a random name.
        copy = self.buffer.files.incoming / f"forward-{job.id}-{uuid.uuid4().hex}.part"
        coerced = self.coercer.coerce(item.path, copy, self.coercer.rules_for(None), self.config.ae.title,
                                      sync=False)
        if not coerced.changed:
            return item, None
        log.info("coerced %s for %s: %s", job.sop_uid, self.name, describe(coerced),
                 extra={"sop_instance_uid": job.sop_uid, "destination": self.name})
        return SendItem(copy, item.sop_class, item.sop_uid, item.transfer_syntax), copy

    def _note_down(self, reason: str, delay: float) -> None:
        """An association attempt failed: log the outage when it starts (WARNING, once)."""
        if self.target_down():
            log.warning("%s unreachable: %s; jobs wait, retrying in %.3g s", self.name, reason, delay)
            self.events.publish(DestinationDown(target=self.name, reason=reason, retry_in=delay))
        else:
            self.events.publish(DestinationStillDown(target=self.name, reason=reason, retry_in=delay))

    def _wait_out_outage(self, reason: str, delay: float) -> None:
        """The backoff after a failed association. Ends early on stop or on an operator's verb
        (`queue retry`, `re-forward`: queue.wake_all via SIGUSR1). While it lasts, the outage is
        logged again every `logging.down_reminder_s`: one line at 3 a.m. scrolls away long before
        anyone reads the log, and the retry cadence alone (up to retry_max_s) is not the operator's."""
        def remind(left: float) -> None:
            waiting = sum(n for (kind, target, state), n in self.queue.open_counts().items()
                          if kind == FORWARD and target == self.name and state == "queued")
            log.warning("%s still unreachable after %.0f s: %s; %d jobs wait, next try in %.3g s",
                        self.name, time.time() - (self.down_since or time.time()), reason, waiting, left)

        self.wait_out(delay, self.config.logging.down_reminder_s, remind)

    def _failed(self, job: Job, error: str, transient: bool) -> None:
        if transient and job.attempts < self.dest.max_attempts:
            delay = backoff(self.dest.retry_initial_s, self.dest.retry_max_s, job.attempts)
            self.queue.fail(job.id, error, time.time() + delay)
            log.warning("forward %s to %s failed (attempt %d/%d), retry in %.0f s: %s", job.sop_uid,
                        self.name, job.attempts, self.dest.max_attempts, delay, error,
                        extra={"sop_instance_uid": job.sop_uid, "destination": self.name, "job_id": job.id})
            self.events.publish(ForwardFailed(target=self.name, sop_uid=job.sop_uid or "", reason=error))
        else:
            why = error if not transient else f"{error} (gave up after {job.attempts} attempts)"
            self.queue.fail(job.id, why, None)
            log.error("forward %s to %s dead-lettered: %s", job.sop_uid, self.name, why,
                      extra={"sop_instance_uid": job.sop_uid, "destination": self.name, "job_id": job.id})
            self.events.publish(DeadLettered(target=self.name, sop_uid=job.sop_uid or "", reason=why))

    def _done(self, jobs: list[Job]) -> None:
        self.events.publish(Forwarded(target=self.name, count=len(jobs)))
        if self.config.buffer.delete_when_done:
            self.buffer.release_if_done([j.instance_fk for j in jobs])
