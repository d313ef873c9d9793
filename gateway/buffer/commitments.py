"""Storage commitment transactions in the buffer: one row per N-ACTION sent, until its report.

A transaction is 'pending' from the moment its request is recorded (before the N-ACTION leaves, in
the transaction that moves its jobs to 'committing', JobQueue.mark_committing) until the report
arrives ('done'), the peer refuses the request ('refused') or its deadline passes ('expired').
Which instances a transaction covers is not stored here: the jobs carry it (jobs.commit_txn),
because the jobs are what the queue retries. This module owns only the `commitments` table.
"""

from __future__ import annotations

from gateway.buffer.index import Index

PENDING, DONE, REFUSED, EXPIRED = "pending", "done", "refused", "expired"


class CommitmentStore:
    """The `commitments` table of one buffer's index."""

    def __init__(self, index: Index):
        self.index = index

    @staticmethod
    def open_in(cur, txn_uid: str, target: str, sent_at: float, deadline: float) -> None:
        """Record a transaction as pending, inside the caller's transaction (the one that marks
        its jobs committing), so that a report finds it whenever it comes."""
        cur.execute(
            "INSERT INTO commitments(txn_uid, target, state, sent_at, deadline) VALUES (?, ?, ?, ?, ?)",
            (txn_uid, target, PENDING, sent_at, deadline),
        )

    def close(self, txn_uid: str, state: str) -> None:
        """The transaction ended: DONE (report received), REFUSED or EXPIRED."""
        with self.index.tx() as cur:
            cur.execute("UPDATE commitments SET state = ? WHERE txn_uid = ?", (state, txn_uid))

    def expired(self, now: float) -> list[str]:
        """Pending transactions whose deadline has passed, by UID."""
        rows = self.index.query(
            "SELECT txn_uid FROM commitments WHERE state = ? AND deadline <= ?", (PENDING, now))
        return [r["txn_uid"] for r in rows]
