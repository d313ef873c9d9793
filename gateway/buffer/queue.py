"""The durable job queue: outgoing work (forward, print, export) as rows in the buffer's index.

A job is claimed (queued -> in_flight) in its own committed transaction before any byte leaves the
box, and marked done only after the far side confirmed. After a crash, in_flight jobs go back to
queued: the far side may see an object twice, never zero times.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Iterable

from gateway.buffer.index import Index

QUEUED, IN_FLIGHT, COMMITTING, DONE, DEAD = "queued", "in_flight", "committing", "done", "dead"
STATES = (QUEUED, IN_FLIGHT, COMMITTING, DONE, DEAD)


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


_JOB_COLUMNS = """
    j.id, j.kind, j.target, j.state, j.attempts, j.last_error, j.payload, j.instance_fk,
    i.sop_uid, i.sop_class, i.transfer_syntax, i.path, st.study_uid
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
        self._wake = threading.Condition()

    # -- producers -----------------------------------------------------------------------------
    @staticmethod
    def enqueue_instance_in(cur, kind: str, target: str, instance_fk: int, now: float) -> bool:
        """Queue work for an instance inside the caller's transaction. False if already queued."""
        cur.execute(
            "INSERT OR IGNORE INTO jobs(kind, target, instance_fk, state, next_attempt, created, updated)"
            " VALUES (?, ?, ?, 'queued', 0, ?, ?)",
            (kind, target, instance_fk, now, now),
        )
        return cur.rowcount == 1

    def enqueue(self, kind: str, target: str, payload: str) -> int:
        now = time.time()
        with self.index.tx() as cur:
            cur.execute(
                "INSERT INTO jobs(kind, target, payload, state, next_attempt, created, updated)"
                " VALUES (?, ?, ?, 'queued', 0, ?, ?)",
                (kind, target, payload, now, now),
            )
            job_id = cur.lastrowid
        self.notify()
        return job_id

    # -- wake-ups ------------------------------------------------------------------------------
    def notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def wait(self, timeout: float) -> None:
        with self._wake:
            self._wake.wait(timeout)

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
        now = time.time()
        with self.index.tx() as cur:
            cur.executemany(
                "UPDATE jobs SET state = 'done', last_error = '', commit_txn = NULL, updated = ?"
                " WHERE id = ?",
                [(now, i) for i in job_ids],
            )

    def fail(self, job_id: int, error: str, retry_at: float | None) -> None:
        """Back to queued until `retry_at`, or dead-lettered when `retry_at` is None."""
        now = time.time()
        with self.index.tx() as cur:
            if retry_at is None:
                cur.execute(
                    "UPDATE jobs SET state = 'dead', last_error = ?, commit_txn = NULL, updated = ?"
                    " WHERE id = ?",
                    (error, now, job_id),
                )
            else:
                self._requeue(cur, job_id, error, retry_at, now)

    @staticmethod
    def _requeue(cur, job_id: int, error: str, retry_at: float, now: float) -> None:
        # A newer copy of the instance may already be queued (replaced while this one was out);
        # then this job has nothing left to do that the queued one will not do.
        row = cur.execute("SELECT kind, target, instance_fk FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row and row["instance_fk"] is not None:
            dup = cur.execute(
                "SELECT 1 FROM jobs WHERE kind = ? AND target = ? AND instance_fk = ? AND state = 'queued'",
                (row["kind"], row["target"], row["instance_fk"]),
            ).fetchone()
            if dup:
                cur.execute(
                    "UPDATE jobs SET state = 'done', last_error = ?, commit_txn = NULL, updated = ?"
                    " WHERE id = ?",
                    (f"superseded by a newer copy; {error}", now, job_id),
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
    def mark_committing(self, job_ids: list[int], txn_uid: str, target: str, deadline: float) -> None:
        now = time.time()
        with self.index.tx() as cur:
            cur.execute(
                "INSERT INTO commitments(txn_uid, target, state, sent_at, deadline) VALUES (?, ?, 'pending', ?, ?)",
                (txn_uid, target, now, deadline),
            )
            cur.executemany(
                "UPDATE jobs SET state = 'committing', commit_txn = ?, updated = ? WHERE id = ?",
                [(txn_uid, now, i) for i in job_ids],
            )

    def committing_jobs(self, txn_uid: str) -> list[Job]:
        rows = self.index.query(
            f"SELECT {_JOB_COLUMNS} {_JOB_FROM} WHERE j.commit_txn = ? AND j.state = 'committing'",
            (txn_uid,),
        )
        return [_job(r) for r in rows]

    def close_commitment(self, txn_uid: str, state: str) -> None:
        with self.index.tx() as cur:
            cur.execute("UPDATE commitments SET state = ? WHERE txn_uid = ?", (state, txn_uid))

    def expired_commitments(self, now: float) -> list[str]:
        rows = self.index.query(
            "SELECT txn_uid FROM commitments WHERE state = 'pending' AND deadline <= ?", (now,)
        )
        return [r["txn_uid"] for r in rows]

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
        """Operator: send dead (or the given) jobs again now, with a fresh attempt count."""
        now = time.time()
        with self.index.tx() as cur:
            if job_ids is None:
                ids = [r["id"] for r in cur.execute("SELECT id FROM jobs WHERE state = 'dead'").fetchall()]
            else:
                ids = [
                    r["id"]
                    for i in job_ids
                    for r in cur.execute(
                        "SELECT id FROM jobs WHERE id = ? AND state IN ('dead', 'queued')", (i,)
                    ).fetchall()
                ]
            for job_id in ids:
                cur.execute("UPDATE jobs SET attempts = 0 WHERE id = ?", (job_id,))
                self._requeue(cur, job_id, "retried by operator", 0, now)
        self.notify()
        return len(ids)

    def dead_letter(self, job_ids: Iterable[int], reason: str) -> int:
        now = time.time()
        n = 0
        with self.index.tx() as cur:
            for job_id in job_ids:
                cur.execute(
                    "UPDATE jobs SET state = 'dead', last_error = ?, updated = ?"
                    " WHERE id = ? AND state IN ('queued', 'dead')",
                    (reason, now, job_id),
                )
                n += cur.rowcount
        return n

    def list(self, states: Iterable[str] = (QUEUED, IN_FLIGHT, COMMITTING, DEAD), limit: int = 1000) -> list[Job]:
        states = tuple(states)
        marks = ",".join("?" * len(states))
        rows = self.index.query(
            f"SELECT {_JOB_COLUMNS} {_JOB_FROM} WHERE j.state IN ({marks}) ORDER BY j.id LIMIT ?",
            (*states, limit),
        )
        return [_job(r) for r in rows]

    def counts(self) -> dict[tuple[str, str, str], int]:
        rows = self.index.query("SELECT kind, target, state, COUNT(*) AS n FROM jobs GROUP BY kind, target, state")
        return {(r["kind"], r["target"], r["state"]): r["n"] for r in rows}
