"""The queue's operator verbs name and treat each kind of job through its registered JobKind, so
that a new kind (media export) plugs in without the queue's code naming it."""

from __future__ import annotations

import time

from gateway.buffer.index import Index
from gateway.buffer.queue import DEAD, DONE, JobKind, JobQueue


def _job(q: JobQueue, kind: str, state: str) -> int:
    with q.index.tx() as cur:
        job_id = JobQueue.enqueue_in(cur, kind, "stick", '{"study": "1.2.3"}', time.time())
        cur.execute("UPDATE jobs SET state = ? WHERE id = ?", (state, job_id))
    return job_id


def test_an_unregistered_kind_is_named_generically(tmp_path):
    q = JobQueue(Index(tmp_path / "index.sqlite"))
    job_id = _job(q, "export", DONE)
    (r,) = q.retry_jobs([job_id])
    assert not r.ok and r.message.startswith(f"job {job_id}: export job on stick was finished at ")
    assert r.message.endswith("a finished job is not run again from the queue")


def test_a_registered_kind_names_its_jobs_and_adds_its_notes(tmp_path):
    q = JobQueue(Index(tmp_path / "index.sqlite"))
    seen = []

    def note(cur, job):
        seen.append(cur.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()["state"])
        return "the stick may hold half a file-set"

    q.register_kind(JobKind("export", describe=lambda j: f"export to {j.target}", finished="written",
                            done_advice=lambda j: "insert a new medium to write it again",
                            reforward_hint="export writes media", retry_note=note))
    done, dead = _job(q, "export", DONE), _job(q, "export", DEAD)
    (r,) = q.retry_jobs([done])
    assert not r.ok and "export to stick was written at" in r.message
    assert r.message.endswith("; insert a new medium to write it again")
    (r,) = q.retry_jobs([dead])
    assert r.ok and r.message == f"job {dead}: export to stick queued again; the stick may hold half a file-set"
    assert seen == ["queued"]  # the note runs inside the verb's transaction, after the change
    (r,) = q.reforward_jobs([done], "pacs")
    assert not r.ok and r.message.endswith("(export writes media)")
    (r,) = q.dead_letter_jobs([done], "operator")
    assert not r.ok and "was written at" in r.message
