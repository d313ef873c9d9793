"""The durable job queue: outgoing work (forward, print, export) as rows in the buffer's index.

A job is claimed (queued -> in_flight) in its own committed transaction before any byte leaves the
box, and marked done only after the far side confirmed. After a crash, in_flight jobs go back to
queued: the far side may see an object twice, never zero times.

Who may change a row: workers (forwarder, spooler, commitment) change jobs they hold (in_flight,
committing); operator verbs change only jobs nobody holds (queued, dead) or add rows; a worker only
ever makes queued jobs due sooner. Each verb reads the state and changes it in one transaction, so
a verb and a worker never both act on one job.

Operator verbs per job state (a refusal changes nothing and says why in one line):

               queued          in_flight  committing  done                     dead
  retry        due now,        refused    refused     refused; forward: "use   queued, due now,
               tries reset                            re-forward"              tries reset
  dead-letter  dead            refused    refused     refused                  unchanged, said so
  re-forward   that job,       refused    refused     a new job queued         that job revived
  (to its own  due now                                (the done one stays)     (not duplicated)
   target)
  Print jobs: as above, except re-forward, which is refused in every state (a film is printed
  again from the modality), and retry of done, which never prints a film twice. Every kind but
  forward: re-forward is refused, retry of done is refused (its JobKind says what to do instead).
  re-forward to another destination: the object's job for THAT destination decides, as above;
  none yet: a new job.

Every write to the jobs table is a method here. A module that keeps rows of its own next to a job
(print: the film's phase) uses the `*_in(cur, ...)` verbs (enqueue_in, complete_in, fail_in), which
run in the caller's transaction, so that its rows and the job change in one commit. The loop that
claims and works jobs is gateway.buffer.worker.QueueWorker.

In flight and committing are refused rather than deferred: the worker holding the job settles it
within one attempt (or the commitment deadline), and the operator can then act on the outcome.

What a verb says about a job, and what it adds for one kind, comes from that kind's JobKind
(job_kinds.py):
forward's is here, since the buffer itself queues forwards; every other kind registers its own on
the queue (register_kind: PrintStore does for print, the media exporter will for export), so that
the queue's code never names another module's jobs or tables.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Iterable

from gateway.buffer.commitments import CommitmentStore
from gateway.buffer.index import Index
from gateway.buffer.job_kinds import FORWARD_KIND, JobKind, generic_kind

QUEUED, IN_FLIGHT, COMMITTING, DONE, DEAD = "queued", "in_flight", "committing", "done", "dead"
STATES = (QUEUED, IN_FLIGHT, COMMITTING, DONE, DEAD)
# The last_error of a job an operator queued again with `retry`. The print spooler reads it as "the
# operator looked at the printer: print it again" for a film whose first attempt had no verdict.
RETRIED_BY_OPERATOR = "retried by operator"


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    target: str
    state: str
    attempts: int
    last_error: str
    payload: str | None
    instance_fk: int | None
    sop_uid: str | None = None
    sop_class: str | None = None
    transfer_syntax: str | None = None
    path: str | None = None
    study_uid: str | None = None
    next_attempt: float = 0.0
    updated: float = 0.0


@dataclass(frozen=True)
class VerbResult:
    """What an operator verb did to one job (or one object): `ok` False means refused, and
    `message` is the one-line reason the CLI prints."""

    job_id: int | None
    ok: bool
    message: str
    new_job: int | None = None
    changed: bool = True  # False: nothing to do (e.g. dead-letter of a job already dead)


_JOB_COLUMNS = """
    j.id, j.kind, j.target, j.state, j.attempts, j.last_error, j.payload, j.instance_fk,
    i.sop_uid, i.sop_class, i.transfer_syntax, i.path, st.study_uid, j.next_attempt, j.updated
"""
_JOB_FROM = """
    FROM jobs j
    LEFT JOIN instances i ON i.id = j.instance_fk
    LEFT JOIN series se ON se.id = i.series_fk
    LEFT JOIN studies st ON st.id = se.study_fk
"""


def _job(row) -> Job:
    return Job(**{k: row[k] for k in row.keys()})


class JobQueue:
    def __init__(self, index: Index):
        self.index = index
        self.commitments = CommitmentStore(index)
        self._wake = threading.Condition()
        self._operator_wakeups = 0
        self._kinds: dict[str, JobKind] = {FORWARD_KIND.name: FORWARD_KIND}

    def register_kind(self, kind: JobKind) -> None:
        """What the operator verbs say about jobs of `kind.name` (see JobKind)."""
        self._kinds[kind.name] = kind

    def kind(self, name: str) -> JobKind:
        """The registered JobKind, or a generic one."""
        return self._kinds.get(name) or generic_kind(name)

    def describe(self, job: Job) -> str:
        """A job named for an operator: kind, object and target; no patient data."""
        return self.kind(job.kind).describe(job)

    # -- producers -----------------------------------------------------------------------------
    @staticmethod
    def enqueue_instance_in(cur, kind: str, target: str, instance_fk: int, now: float) -> bool:
        """Queue work for an instance inside the caller's transaction. False if already queued."""
        cur.execute(
            "INSERT OR IGNORE INTO jobs(kind, target, instance_fk, state, next_attempt, created, updated)"
            " VALUES (?, ?, ?, 'queued', 0, ?, ?)",
            (kind, target, instance_fk, now, now),
        )
        if cur.rowcount != 1:
            return False
        JobQueue.link_in(cur, cur.lastrowid, (instance_fk,))
        return True

    @staticmethod
    def link_in(cur, job_id: int, instance_ids: Iterable[int]) -> None:
        """Record, inside the caller's transaction (the one that creates the job), the instances
        job `job_id` needs. The link (job_items), not jobs.instance_fk, is what keeps an instance
        from eviction until every job linked to it is done; jobs.instance_fk stays only for the
        forwarder, which reads a forward job's one instance from it."""
        cur.executemany("INSERT OR IGNORE INTO job_items(job_id, instance_fk) VALUES (?, ?)",
                        [(job_id, i) for i in instance_ids])

    @staticmethod
    def enqueue_in(cur, kind: str, target: str, payload: str, now: float) -> int:
        """Queue a payload job (a film, later an export) inside the caller's transaction, so that
        the job and the caller's own rows (e.g. the film's phase) commit together. Returns the
        job's id. The caller calls notify() after its commit: a worker woken before it would not
        see the row."""
        cur.execute(
            "INSERT INTO jobs(kind, target, payload, state, next_attempt, created, updated)"
            " VALUES (?, ?, ?, 'queued', 0, ?, ?)",
            (kind, target, payload, now, now),
        )
        return cur.lastrowid

    def enqueue(self, kind: str, target: str, payload: str) -> int:
        with self.index.tx() as cur:
            job_id = self.enqueue_in(cur, kind, target, payload, time.time())
        self.notify()
        return job_id

    # -- wake-ups ------------------------------------------------------------------------------
    def notify(self) -> None:
        """New or newly due work: idle workers look at the queue now."""
        with self._wake:
            self._wake.notify_all()

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        """An idle worker's wait: ends on notify() or after `timeout`, at once if `stop` is set.

        `stop` is looked at under the wake-up lock: a worker that set-then-notify() stops it
        (request_stop) can never slip its notify() in between the worker's last look at `stop` and
        the wait, which used to cost a whole `timeout` at every service stop."""
        with self._wake:
            if stop is not None and stop.is_set():
                return
            self._wake.wait(timeout)

    def wake_all(self) -> None:
        """An operator changed the queue: idle workers look now, and workers backing off (a
        destination down, a printer not ready) give up the rest of their backoff."""
        with self._wake:
            self._operator_wakeups += 1
            self._wake.notify_all()

    def backoff_wait(self, delay: float, stop: threading.Event) -> bool:
        """Sleep out a backoff. Ends early when `stop` is set (its setter calls notify()) or on
        wake_all(); new work arriving does not end it, or every image received while a PACS is
        down would cost an association attempt. True when ended early."""
        deadline = time.monotonic() + delay
        with self._wake:
            seen = self._operator_wakeups
            while not stop.is_set() and self._operator_wakeups == seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def make_due(self, kind: str, target: str, later_than: float = 0.0) -> int:
        """Every queued job of `target` due now (its destination just came back). Only jobs due
        after `later_than` are counted and changed (a printer that came back passes the current
        time: it reports the films that were waiting for it). Returns how many."""
        with self.index.tx() as cur:
            cur.execute("UPDATE jobs SET next_attempt = 0 WHERE kind = ? AND target = ? AND state = 'queued'"
                        " AND next_attempt > ?", (kind, target, later_than))
            n = cur.rowcount
        if n:
            self.notify()
        return n

    @staticmethod
    def make_job_due_in(cur, job_id: int) -> bool:
        """One queued job due now, inside the caller's transaction: a job that waited for another
        (an MPPS N-SET for its N-CREATE) whose wait ended in the same commit. True when it was
        queued. The caller calls notify() after its commit."""
        cur.execute("UPDATE jobs SET next_attempt = 0 WHERE id = ? AND state = 'queued'", (job_id,))
        return cur.rowcount == 1

    # -- consumers -----------------------------------------------------------------------------
    def claim(self, kind: str, target: str, limit: int) -> list[Job]:
        """Take up to `limit` due jobs, oldest study first, in arrival order within a study."""
        now = time.time()
        with self.index.tx() as cur:
            rows = cur.execute(
                f"SELECT {_JOB_COLUMNS} {_JOB_FROM}"
                " WHERE j.kind = ? AND j.target = ? AND j.state = 'queued' AND j.next_attempt <= ?"
                " ORDER BY COALESCE(st.first_received, j.created), j.id LIMIT ?",
                (kind, target, now, limit),
            ).fetchall()
            cur.executemany(
                "UPDATE jobs SET state = 'in_flight', attempts = attempts + 1, updated = ? WHERE id = ?",
                [(now, r["id"]) for r in rows],
            )
        # The returned jobs carry the attempt now under way (the row was read before the update).
        return [replace(_job(r), state=IN_FLIGHT, attempts=r["attempts"] + 1) for r in rows]

    def next_due(self, kind: str, target: str) -> float | None:
        rows = self.index.query(
            "SELECT MIN(next_attempt) AS t FROM jobs WHERE kind = ? AND target = ? AND state = 'queued'",
            (kind, target),
        )
        return rows[0]["t"] if rows and rows[0]["t"] is not None else None

    def complete(self, job_ids: Iterable[int]) -> None:
        """The far side confirmed: the jobs are done."""
        with self.index.tx() as cur:
            self.complete_in(cur, job_ids, time.time())

    @staticmethod
    def complete_in(cur, job_ids: Iterable[int], now: float) -> None:
        """complete() inside the caller's transaction: the job is done in the same commit as the
        caller's own record of the outcome (a film's 'printed'), so that neither is ever seen
        without the other."""
        cur.executemany(
            "UPDATE jobs SET state = 'done', last_error = '', commit_txn = NULL, updated = ?"
            " WHERE id = ?",
            [(now, i) for i in job_ids],
        )

    def fail(self, job_id: int, error: str, retry_at: float | None) -> None:
        """Back to queued until `retry_at`, or dead-lettered when `retry_at` is None."""
        with self.index.tx() as cur:
            self.fail_in(cur, job_id, error, retry_at, time.time())

    @classmethod
    def fail_in(cls, cur, job_id: int, error: str, retry_at: float | None, now: float) -> None:
        """fail() inside the caller's transaction (e.g. with a film's phase 'held')."""
        if retry_at is None:
            cur.execute(
                "UPDATE jobs SET state = 'dead', last_error = ?, commit_txn = NULL, updated = ?"
                " WHERE id = ?",
                (error, now, job_id),
            )
        else:
            cls._requeue(cur, job_id, error, retry_at, now)

    @staticmethod
    def _requeue(cur, job_id: int, error: str, retry_at: float, now: float) -> None:
        # Another job may already queue the same instance for the same target (a corrected copy
        # arrived while this one was out); then this job has nothing left to do that that one will
        # not do, and the unique index allows only one queued row. The job itself never counts.
        row = cur.execute("SELECT kind, target, instance_fk FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row and row["instance_fk"] is not None:
            dup = cur.execute(
                "SELECT id FROM jobs WHERE kind = ? AND target = ? AND instance_fk = ? AND state = 'queued'"
                " AND id != ?",
                (row["kind"], row["target"], row["instance_fk"], job_id),
            ).fetchone()
            if dup:
                cur.execute(
                    "UPDATE jobs SET state = 'done', last_error = ?, commit_txn = NULL, updated = ?"
                    " WHERE id = ?",
                    (f"superseded by job {dup['id']} (a newer copy); {error}", now, job_id),
                )
                return
        cur.execute(
            "UPDATE jobs SET state = 'queued', last_error = ?, next_attempt = ?, commit_txn = NULL,"
            " updated = ? WHERE id = ?",
            (error, retry_at, now, job_id),
        )

    def release(self, job_ids: Iterable[int], error: str, retry_at: float, uncount: bool = False) -> None:
        """Put claimed jobs back (e.g. the association could not be opened)."""
        now = time.time()
        with self.index.tx() as cur:
            for job_id in job_ids:
                if uncount:
                    cur.execute("UPDATE jobs SET attempts = MAX(attempts - 1, 0) WHERE id = ?", (job_id,))
                self._requeue(cur, job_id, error, retry_at, now)

    # -- storage commitment --------------------------------------------------------------------
    # The transactions themselves are the CommitmentStore's (gateway/buffer/commitments.py); the
    # queue changes only its jobs' state. close_commitment / expired_commitments pass through so
    # the commitment SCU keeps one object to talk to.
    def mark_committing(self, job_ids: list[int], txn_uid: str, target: str, deadline: float) -> None:
        """The jobs' instances were sent; their commitment `txn_uid` is requested now. Records the
        transaction and moves the jobs to committing in one transaction."""
        now = time.time()
        with self.index.tx() as cur:
            CommitmentStore.open_in(cur, txn_uid, target, now, deadline)
            cur.executemany(
                "UPDATE jobs SET state = 'committing', commit_txn = ?, updated = ? WHERE id = ?",
                [(txn_uid, now, i) for i in job_ids],
            )

    def committing_jobs(self, txn_uid: str) -> list[Job]:
        """The jobs still waiting for commitment `txn_uid`."""
        rows = self.index.query(
            f"SELECT {_JOB_COLUMNS} {_JOB_FROM} WHERE j.commit_txn = ? AND j.state = 'committing'",
            (txn_uid,),
        )
        return [_job(r) for r in rows]

    def close_commitment(self, txn_uid: str, state: str) -> None:
        """CommitmentStore.close."""
        self.commitments.close(txn_uid, state)

    def expired_commitments(self, now: float) -> list[str]:
        """CommitmentStore.expired."""
        return self.commitments.expired(now)

    # -- recovery and operator actions ---------------------------------------------------------
    def recover(self) -> int:
        """After a restart: work that was in flight may or may not have arrived; send it again."""
        now = time.time()
        with self.index.tx() as cur:
            ids = [r["id"] for r in cur.execute("SELECT id FROM jobs WHERE state = 'in_flight'").fetchall()]
            for job_id in ids:
                self._requeue(cur, job_id, "interrupted by a restart", 0, now)
        return len(ids)

    def retry(self, job_ids: Iterable[int] | None = None) -> int:
        """Operator: send dead (or the given) jobs again now. Returns how many were queued again;
        retry_jobs() says why the others were refused."""
        results = self.retry_all_dead() if job_ids is None else self.retry_jobs(job_ids)
        return sum(r.ok for r in results)

    def dead_letter(self, job_ids: Iterable[int], reason: str) -> int:
        """Operator: give up on the given waiting jobs. Returns how many are now dead."""
        return sum(r.ok for r in self.dead_letter_jobs(job_ids, reason))

    def retry_all_dead(self) -> list[VerbResult]:
        """Operator: every dead job queued again, due now, with a fresh attempt count."""
        ids = [r["id"] for r in self.index.query("SELECT id FROM jobs WHERE state = 'dead' ORDER BY id")]
        return self.retry_jobs(ids)

    def retry_jobs(self, job_ids: Iterable[int]) -> list[VerbResult]:
        """Operator `retry`: a dead job is queued again; a queued one is made due now (a destination
        that was down may be back). Both get a fresh attempt count. Other states are refused."""
        now = time.time()
        out = []
        with self.index.tx() as cur:
            for job_id in job_ids:
                out.append(self._retry_one(cur, int(job_id), now))
        if any(r.ok for r in out):
            self.wake_all()
        return out

    def _retry_one(self, cur, job_id: int, now: float) -> VerbResult:
        job = self._get(cur, job_id)
        if job is None:
            return VerbResult(job_id, False, f"job {job_id}: no such job")
        what = self.describe(job)
        if job.state == IN_FLIGHT:
            return VerbResult(job_id, False, f"job {job_id}: {what} is being sent now; nothing to retry")
        if job.state == COMMITTING:
            return VerbResult(job_id, False, (
                f"job {job_id}: {what} was sent at {_when(job.updated)} and awaits the storage commitment;"
                " if it fails or times out the object is sent again by itself"))
        if job.state == DONE:
            kind = self.kind(job.kind)
            return VerbResult(job_id, False, (
                f"job {job_id}: {what} was {kind.finished} at {_when(job.updated)}; {kind.done_advice(job)}"))
        missing = self._not_held(job)
        if missing:
            return VerbResult(job_id, False, f"job {job_id}: {missing}")
        if job.state == QUEUED:
            cur.execute("UPDATE jobs SET attempts = 0, next_attempt = 0, updated = ? WHERE id = ?",
                        (now, job_id))
            return VerbResult(job_id, True, f"job {job_id}: {what} is due now (was waiting: "
                                            f"{job.last_error or 'not yet tried'})")
        # dead
        other = self._queued_twin(cur, job)
        if other is not None:
            return VerbResult(job_id, False, f"job {job_id}: job {other} already queues {what}")
        # "retried by operator" is also what the print spooler reads as "the operator looked at the
        # printer: print it again" for a film whose first attempt ended without a verdict.
        cur.execute("UPDATE jobs SET state = 'queued', attempts = 0, next_attempt = 0,"
                    " last_error = ?, commit_txn = NULL, updated = ? WHERE id = ?",
                    (RETRIED_BY_OPERATOR, now, job_id))
        note = self.kind(job.kind).retry_note(cur, job)
        return VerbResult(job_id, True, f"job {job_id}: {what} queued again" + (f"; {note}" if note else ""))

    def dead_letter_jobs(self, job_ids: Iterable[int], reason: str) -> list[VerbResult]:
        """Operator `dead-letter`: a waiting (queued) job is given up with `reason`. A dead job stays
        as it is; jobs being sent, awaiting commitment or done are refused."""
        now = time.time()
        out = []
        with self.index.tx() as cur:
            for job_id in job_ids:
                job_id = int(job_id)
                job = self._get(cur, job_id)
                if job is None:
                    out.append(VerbResult(job_id, False, f"job {job_id}: no such job"))
                    continue
                what = self.describe(job)
                if job.state == QUEUED:
                    cur.execute("UPDATE jobs SET state = 'dead', last_error = ?, commit_txn = NULL,"
                                " updated = ? WHERE id = ?", (reason, now, job_id))
                    out.append(VerbResult(job_id, True, f"job {job_id}: {what} dead-lettered"))
                elif job.state == DEAD:
                    out.append(VerbResult(job_id, True, f"job {job_id}: {what} was already dead-lettered"
                                                        f" ({job.last_error})", changed=False))
                elif job.state == IN_FLIGHT:
                    out.append(VerbResult(job_id, False, (
                        f"job {job_id}: {what} is being sent now; dead-letter it if it is queued again")))
                elif job.state == COMMITTING:
                    out.append(VerbResult(job_id, False, (
                        f"job {job_id}: {what} was sent at {_when(job.updated)} and awaits the storage"
                        " commitment; only waiting jobs can be dead-lettered")))
                else:
                    out.append(VerbResult(job_id, False, (
                        f"job {job_id}: {what} was {self.kind(job.kind).finished}"
                        f" at {_when(job.updated)}; nothing to dead-letter")))
        return out

    def reforward_jobs(self, job_ids: Iterable[int], target: str) -> list[VerbResult]:
        """Operator `re-forward JOB_ID... --to TARGET`: the forward jobs' instances sent to `target`
        again, whatever became of the earlier jobs (a PACS can lose what it confirmed)."""
        out = []
        instance_of: list[tuple[int, int | None]] = []
        with self.index.tx() as cur:
            for job_id in job_ids:
                job_id = int(job_id)
                job = self._get(cur, job_id)
                if job is None:
                    out.append(VerbResult(job_id, False, f"job {job_id}: no such job"))
                elif job.kind != "forward" or job.instance_fk is None:
                    hint = self.kind(job.kind).reforward_hint
                    out.append(VerbResult(job_id, False, (
                        f"job {job_id}: a {job.kind} job; re-forward sends stored objects to a"
                        " destination" + (f" ({hint})" if hint else ""))))
                else:
                    instance_of.append((job_id, job.instance_fk))
        for job_id, instance_fk in instance_of:
            (r,) = self.reforward_instances([instance_fk], target)
            out.append(replace(r, job_id=job_id, message=f"job {job_id}: {r.message}"))
        return out

    def reforward_instances(self, instance_ids: Iterable[int], target: str) -> list[VerbResult]:
        """Queue each instance for `target` now: a new job, unless one already waits or is being
        sent (that one is named, and made due now), or a dead one can be revived."""
        now = time.time()
        out = []
        with self.index.tx() as cur:
            for instance_fk in instance_ids:
                out.append(self._reforward_one(cur, instance_fk, target, now))
        if any(r.ok for r in out):
            self.wake_all()
        return out

    def _reforward_one(self, cur, instance_fk: int, target: str, now: float) -> VerbResult:
        inst = cur.execute("SELECT sop_uid, path FROM instances WHERE id = ?", (instance_fk,)).fetchone()
        if inst is None:
            return VerbResult(None, False, f"instance #{instance_fk} is no longer held in the buffer")
        what = f"instance {inst['sop_uid']}"
        if not (self.index.path.parent / inst["path"]).is_file():
            return VerbResult(None, False, f"{what} is no longer held in the buffer (its file is gone)")
        rows = cur.execute(
            "SELECT id, state FROM jobs WHERE kind = 'forward' AND target = ? AND instance_fk = ?"
            " AND state IN ('queued', 'in_flight', 'committing', 'dead') ORDER BY id DESC",
            (target, instance_fk)).fetchall()
        states = {r["state"]: r["id"] for r in rows}
        if QUEUED in states:
            cur.execute("UPDATE jobs SET next_attempt = 0 WHERE id = ?", (states[QUEUED],))
            return VerbResult(states[QUEUED], True, f"{what} already waits for {target} as job"
                                                    f" {states[QUEUED]}; due now")
        if IN_FLIGHT in states:
            return VerbResult(states[IN_FLIGHT], False, f"{what} is being sent to {target} now"
                                                        f" (job {states[IN_FLIGHT]})")
        if COMMITTING in states:
            return VerbResult(states[COMMITTING], False, (
                f"{what} was sent to {target} and awaits its storage commitment (job"
                f" {states[COMMITTING]}); it is sent again by itself if that fails"))
        if DEAD in states:
            job_id = states[DEAD]
            cur.execute("UPDATE jobs SET state = 'queued', attempts = 0, next_attempt = 0,"
                        " last_error = 're-forwarded by operator', commit_txn = NULL, updated = ?"
                        " WHERE id = ?", (now, job_id))
            return VerbResult(job_id, True, f"{what} queued for {target} again (dead job {job_id} revived)",
                              new_job=job_id)
        cur.execute("INSERT INTO jobs(kind, target, instance_fk, state, next_attempt, last_error, created,"
                    " updated) VALUES ('forward', ?, ?, 'queued', 0, 're-forwarded by operator', ?, ?)",
                    (target, instance_fk, now, now))
        job_id = cur.lastrowid
        self.link_in(cur, job_id, (instance_fk,))
        return VerbResult(job_id, True, f"{what} queued for {target} as job {job_id}", new_job=job_id)

    @staticmethod
    def requeue_routes_in(cur, kind: str, targets: Iterable[str], instance_fk: int, now: float) -> list[str]:
        """An identical copy of a held instance arrived again (the modality re-sent it): queue the
        routes whose job is dead or missing, inside the caller's transaction. Routes queued, in
        flight, committing or done are left alone (a re-send is not an operator's re-forward).
        Returns the targets queued."""
        queued = []
        for target in targets:
            row = cur.execute(
                "SELECT id, state FROM jobs WHERE kind = ? AND target = ? AND instance_fk = ?"
                " ORDER BY id DESC LIMIT 1", (kind, target, instance_fk)).fetchone()
            if row is not None and row["state"] != DEAD:
                continue
            if row is None:
                JobQueue.enqueue_instance_in(cur, kind, target, instance_fk, now)
            else:
                cur.execute("UPDATE jobs SET state = 'queued', attempts = 0, next_attempt = 0,"
                            " last_error = 'received again from the modality', commit_txn = NULL,"
                            " updated = ? WHERE id = ?", (now, row["id"]))
            queued.append(target)
        return queued

    # -- reading -------------------------------------------------------------------------------
    def get(self, job_id: int) -> Job | None:
        """One job by id, or None."""
        rows = self.index.query(f"SELECT {_JOB_COLUMNS} {_JOB_FROM} WHERE j.id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    @staticmethod
    def _get(cur, job_id: int) -> Job | None:
        row = cur.execute(f"SELECT {_JOB_COLUMNS} {_JOB_FROM} WHERE j.id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    @staticmethod
    def _queued_twin(cur, job: Job) -> int | None:
        if job.instance_fk is None:
            return None
        row = cur.execute("SELECT id FROM jobs WHERE kind = ? AND target = ? AND instance_fk = ?"
                          " AND state = 'queued' AND id != ?",
                          (job.kind, job.target, job.instance_fk, job.id)).fetchone()
        return row["id"] if row else None

    def _not_held(self, job: Job) -> str:
        """Why a forward job can no longer be sent (its object left the buffer), or ''."""
        if job.kind != "forward":
            return ""
        if job.path is None:
            return "its object is no longer held in the buffer"
        if not (self.index.path.parent / job.path).is_file():
            return f"instance {job.sop_uid} is no longer held in the buffer (its file is gone)"
        return ""

    def list(self, states: Iterable[str] = (QUEUED, IN_FLIGHT, COMMITTING, DEAD), limit: int = 1000) -> list[Job]:
        states = tuple(states)
        marks = ",".join("?" * len(states))
        rows = self.index.query(
            f"SELECT {_JOB_COLUMNS} {_JOB_FROM} WHERE j.state IN ({marks}) ORDER BY j.id LIMIT ?",
            (*states, limit),
        )
        return [_job(r) for r in rows]

    def counts(self) -> dict[tuple[str, str, str], int]:
        """Jobs by (kind, target, state), done ones included: a full count, for an operator's
        `queue list`; the service's periodic counts use open_counts()."""
        rows = self.index.query("SELECT kind, target, state, COUNT(*) AS n FROM jobs GROUP BY kind, target, state")
        return {(r["kind"], r["target"], r["state"]): r["n"] for r in rows}

    def open_counts(self) -> dict[tuple[str, str, str], int]:
        """Jobs not done by (kind, target, state), read from the jobs_open index (schema version 3)
        without touching the done ones, however many the buffer holds."""
        rows = self.index.query("SELECT kind, target, state, COUNT(*) AS n FROM jobs WHERE state != 'done'"
                                " GROUP BY kind, target, state")
        return {(r["kind"], r["target"], r["state"]): r["n"] for r in rows}


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
