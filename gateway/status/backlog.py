"""Read-only index queries for the status endpoint: per target the oldest waiting job, and the
last dead-lettered jobs with their reasons.

The state snapshot (gateway/state.py) already holds the job counts per target and state (the
housekeeping tick counts them every few seconds); what it lacks is the age of the oldest job and
the dead letters' reasons, which only the index knows. Both queries read the open jobs only
(the partial index jobs_open, schema version 3), never the done ones, however many the buffer
holds: a status page open in a browser asks twice a second. Nothing here
writes. No patient data: a dead letter names its job, target, SOP Instance UID and error.
"""

from __future__ import annotations

from typing import Any

from gateway.buffer.index import Index

# "state != 'done'" is implied by each query's own condition, but SQLite uses the partial index
# jobs_open only when the query names its condition: without it every scrape walks the done jobs.
OLDEST_SQL = ("SELECT kind, target, MIN(created) AS oldest FROM jobs WHERE state != 'done'"
              " AND state IN ('queued', 'in_flight', 'committing') GROUP BY kind, target")
DEAD_SQL = ("SELECT j.id, j.kind, j.target, i.sop_uid, j.last_error, j.updated, j.attempts"
            " FROM jobs j LEFT JOIN instances i ON i.id = j.instance_fk"
            " WHERE j.state != 'done' AND j.state = 'dead' ORDER BY j.updated DESC, j.id DESC LIMIT ?")


def oldest_waiting(index: Index) -> dict[tuple[str, str], float]:
    """(job kind, target) -> creation time (seconds since the epoch) of its oldest job still
    waiting (queued, in flight or awaiting commitment). Pairs with no waiting job are absent.
    Raises sqlite3.Error when the index cannot be read."""
    rows = index.query(OLDEST_SQL)
    return {(r["kind"], r["target"]): r["oldest"] for r in rows}


def dead_letters(index: Index, limit: int = 20) -> list[dict[str, Any]]:
    """The `limit` most recently dead-lettered jobs, newest first: {"id", "kind", "target",
    "sop_uid" (None for a job of no single instance: print, export), "reason" (the job's last
    error), "since" (when it was given up, seconds since the epoch), "attempts"}.
    Raises sqlite3.Error when the index cannot be read."""
    rows = index.query(DEAD_SQL, (limit,))
    return [{"id": r["id"], "kind": r["kind"], "target": r["target"], "sop_uid": r["sop_uid"],
             "reason": r["last_error"], "since": r["updated"], "attempts": r["attempts"]} for r in rows]
