"""Queue verbs that run in the caller's transaction (JobQueue.enqueue_in / complete_in / fail_in).

A module that keeps its own rows next to a job (print: the film's phase) changes the job through
these, in the same commit as its own rows: either both changed or neither, whatever crashes in
between. And no module but the queue writes the jobs table.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from gateway.buffer.ingest import Buffer
from gateway.buffer.queue import DEAD, DONE, IN_FLIGHT, QUEUED, JobQueue
from gateway.print.store import HELD, PRINT, PRINTED, PrintStore

ROOT = Path(__file__).resolve().parents[2]


class Crash(Exception):
    """Stands for the process dying before the caller's transaction commits."""


def _store(tmp_path) -> tuple[Buffer, PrintStore]:
    buf = Buffer(tmp_path / "buf", 0, "replace", lambda attrs, calling: [])
    return buf, PrintStore(buf.files.root, buf.index, buf.queue, "film")


def _crash_in(monkeypatch, verb: str, after: int = 0) -> None:
    """JobQueue.<verb> raises Crash on its call number `after` + 1 (the process dies there)."""
    real = getattr(JobQueue, verb)
    calls = {"n": 0}

    def dying(*args, **kw):
        calls["n"] += 1
        if calls["n"] > after:
            raise Crash
        return real(*args, **kw)

    monkeypatch.setattr(JobQueue, verb, staticmethod(dying))


def test_films_and_their_jobs_are_queued_in_one_commit(tmp_path, monkeypatch):
    buf, store = _store(tmp_path)
    _crash_in(monkeypatch, "enqueue_in", after=1)  # dies queueing the second of two films
    with pytest.raises(Crash):
        store.spool("1.2.3", [({"copies": 1}, {})] * 2, "PRINTSCU", "MED", 10)
    assert buf.queue.list((QUEUED,)) == [] and store.print_job("1.2.3") is None
    monkeypatch.undo()
    (job_id,) = store.spool("1.2.4", [({"copies": 1}, {})], "PRINTSCU", "MED", 10)
    job, film = buf.queue.get(job_id), store.film(job_id)
    assert (job.kind, job.target, job.state, job.attempts) == (PRINT, "film", QUEUED, 0)
    assert film["phase"] == QUEUED and film["print_job_uid"] == "1.2.4"


def test_printed_and_done_commit_together(tmp_path, monkeypatch):
    buf, store = _store(tmp_path)
    (job_id,) = store.spool("1.2.3", [({"copies": 1}, {})], "PRINTSCU", "MED", 10)
    buf.queue.claim(PRINT, "film", 1)
    _crash_in(monkeypatch, "complete_in")
    with pytest.raises(Crash):
        store.mark_printed(job_id, "previews/x.png")
    assert (store.film(job_id)["phase"], buf.queue.get(job_id).state) == (QUEUED, IN_FLIGHT)
    monkeypatch.undo()
    store.mark_printed(job_id, "previews/x.png")
    job = buf.queue.get(job_id)
    assert (store.film(job_id)["phase"], job.state, job.last_error) == (PRINTED, DONE, "")


def test_a_held_film_is_dead_lettered_in_the_same_commit(tmp_path, monkeypatch):
    """A held film whose job were queued again (a crash between the two writes, then recovery)
    would be printed with nobody having looked at the printer."""
    buf, store = _store(tmp_path)
    (job_id,) = store.spool("1.2.3", [({"copies": 1}, {})], "PRINTSCU", "MED", 10)
    buf.queue.claim(PRINT, "film", 1)
    _crash_in(monkeypatch, "fail_in")
    with pytest.raises(Crash):
        store.hold(job_id, "no verdict; check the printer")
    assert (store.film(job_id)["phase"], buf.queue.get(job_id).state) == (QUEUED, IN_FLIGHT)
    monkeypatch.undo()
    store.hold(job_id, "no verdict; check the printer")
    job = buf.queue.get(job_id)
    assert (store.film(job_id)["phase"], job.state, job.last_error) == (HELD, DEAD, "no verdict; check the printer")


def test_fail_in_with_a_retry_time_queues_the_job_again(tmp_path):
    buf, store = _store(tmp_path)
    (job_id,) = store.spool("1.2.3", [({"copies": 1}, {})], "PRINTSCU", "MED", 10)
    buf.queue.claim(PRINT, "film", 1)
    at = time.time() + 60
    with buf.index.tx() as cur:
        JobQueue.fail_in(cur, job_id, "printer not ready", at, time.time())
    job = buf.queue.get(job_id)
    assert (job.state, job.last_error, job.next_attempt) == (QUEUED, "printer not ready", at)


def test_a_printer_back_makes_only_the_films_that_wait_for_it_due(tmp_path):
    buf, store = _store(tmp_path)
    ids = store.spool("1.2.3", [({"copies": 1}, {})] * 3, "PRINTSCU", "MED", 10)
    claimed = buf.queue.claim(PRINT, "film", 3)
    now = time.time()
    buf.queue.release([claimed[0].id], "printer not ready", now + 600, uncount=True)
    buf.queue.release([claimed[1].id], "printer not ready", now - 5, uncount=True)  # already due
    assert buf.queue.make_due(PRINT, "film", later_than=time.time()) == 1
    assert {j.id for j in buf.queue.claim(PRINT, "film", 3)} == set(ids[:2])


def test_no_module_but_the_queue_writes_the_jobs_table():
    """The queue's state rules (who may change a row, and when) hold only if every write goes
    through it. Retention's eviction of delivered instances (rows already done) is the one
    exception, named here; the next one should be a queue verb instead."""
    writes = re.compile(r"(INSERT(\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM)\s+jobs\b", re.I)
    allowed = {"gateway/buffer/queue.py", "gateway/buffer/retention.py"}
    offenders = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "gateway").rglob("*.py")
                       if str(p.relative_to(ROOT)) not in allowed and writes.search(_code(p.read_text())))
    assert offenders == []


def _code(source: str) -> str:
    """The module without its docstrings: a downgrade recipe for an operator in a docstring
    (migrations.py's `DELETE FROM jobs WHERE kind = 'mpps'`) is not a write of this code's."""
    import ast

    tree = ast.parse(source)
    lines = source.splitlines()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            for i in range(body[0].lineno - 1, body[0].end_lineno):
                lines[i] = ""
    return "\n".join(lines)
