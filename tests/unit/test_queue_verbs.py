"""Operator verbs against every job state, for forward and print jobs (issue 14 item 1).

Each cell of the table either does the documented thing (and the work then really goes out: the
job can be claimed) or refuses with a reason and leaves the job as it was.
"""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
from datasets import make_ct

from gateway.buffer.ingest import FORWARD, Buffer, Outcome
from gateway.buffer.queue import COMMITTING, DEAD, DONE, IN_FLIGHT, QUEUED, STATES
from gateway.part10.attributes import read_attributes

PRINT = "print"


def _buffer(tmp_path, routes=("pacs",)) -> Buffer:
    return Buffer(tmp_path / "buf", 0, "replace", lambda attrs, calling: list(routes))


def _ingest(buf: Buffer, src):
    tmp = buf.files.new_incoming_path()
    shutil.copyfile(src, tmp)
    return buf.ingest(tmp, read_attributes(src), "MOD")


def _job_in(buf: Buffer, tmp_path, kind: str, state: str) -> int:
    """One job of `kind` brought to `state` the way the workers bring it there."""
    if kind == FORWARD:
        src = tmp_path / "x.dcm"
        make_ct(src)
        _ingest(buf, src)
        (job,) = buf.queue.list((QUEUED,))
        target = "pacs"
    else:
        job_id = buf.queue.enqueue(PRINT, "film", json.dumps({"print_job": "1.2.3", "film": 1, "folder": "f"}))
        job = buf.queue.get(job_id)
        target = "film"
    if state == QUEUED:
        # Waiting out a backoff, as after "no association": the case of the field report.
        buf.queue.release([buf.queue.claim(kind, target, 1)[0].id], "no association", time.time() + 3600,
                          uncount=True)
        return job.id
    (claimed,) = buf.queue.claim(kind, target, 1)
    if state == COMMITTING:
        buf.queue.mark_committing([claimed.id], "2.25.1", target, time.time() + 3600)
    elif state == DONE:
        buf.queue.complete([claimed.id])
    elif state == DEAD:
        buf.queue.fail(claimed.id, "status 0xA900", None)
    return claimed.id


# The documented table: (verb, kind, state) -> (does it, state afterwards of the job acted on).
# A refusal leaves the state as it was.
EXPECTED = {
    ("retry", QUEUED): (True, QUEUED),
    ("retry", IN_FLIGHT): (False, IN_FLIGHT),
    ("retry", COMMITTING): (False, COMMITTING),
    ("retry", DONE): (False, DONE),
    ("retry", DEAD): (True, QUEUED),
    ("dead-letter", QUEUED): (True, DEAD),
    ("dead-letter", IN_FLIGHT): (False, IN_FLIGHT),
    ("dead-letter", COMMITTING): (False, COMMITTING),
    ("dead-letter", DONE): (False, DONE),
    ("dead-letter", DEAD): (True, DEAD),  # already dead: nothing to do, said so
    ("re-forward", QUEUED): (True, QUEUED),  # that job, due now
    ("re-forward", IN_FLIGHT): (False, IN_FLIGHT),
    ("re-forward", COMMITTING): (False, COMMITTING),
    ("re-forward", DONE): (True, DONE),  # the done job stays; a new job is queued
    ("re-forward", DEAD): (True, QUEUED),  # the dead job is revived rather than duplicated
}


def _act(buf: Buffer, verb: str, job_id: int, target: str):
    if verb == "retry":
        return buf.queue.retry_jobs([job_id])
    if verb == "dead-letter":
        return buf.queue.dead_letter_jobs([job_id], "operator gave up")
    return buf.queue.reforward_jobs([job_id], target)


@pytest.mark.parametrize("kind", [FORWARD, PRINT])
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("verb", ["retry", "dead-letter", "re-forward"])
def test_every_verb_in_every_state(tmp_path, verb, state, kind):
    buf = _buffer(tmp_path)
    target = "pacs" if kind == FORWARD else "film"
    job_id = _job_in(buf, tmp_path, kind, state)
    before = buf.queue.get(job_id)
    (result,) = _act(buf, verb, job_id, target)
    ok, after_state = EXPECTED[(verb, state)]
    if verb == "re-forward" and kind == PRINT:
        ok, after_state = False, state  # a film is reprinted from the modality, never re-forwarded
    assert result.ok is ok, result.message
    assert result.message and "\n" not in result.message and str(job_id) in result.message
    after = buf.queue.get(job_id)
    assert after.state == after_state, result.message
    if not ok:
        # Refused: the job is untouched.
        assert (after.attempts, after.last_error, after.next_attempt) == (
            before.attempts, before.last_error, before.next_attempt)
        return
    if verb in ("retry", "re-forward"):
        # Done means done: the object goes out now, with a fresh count of attempts.
        (claimed,) = buf.queue.claim(kind, target, 10)
        assert claimed.attempts == 1
        if (verb, state) == ("re-forward", DONE):
            assert claimed.id == result.new_job != job_id and claimed.instance_fk == before.instance_fk
        else:
            assert claimed.id == job_id
    if verb == "dead-letter":
        assert buf.queue.claim(kind, target, 10) == []
        # An already dead job is said so, and not counted as a change (nothing to wake a worker for).
        assert result.changed is (state != DEAD), result


def test_refusal_reasons_name_the_way_out(tmp_path):
    buf = _buffer(tmp_path)
    done = _job_in(buf, tmp_path, FORWARD, DONE)
    (r,) = buf.queue.retry_jobs([done])
    assert "delivered" in r.message and f"re-forward {done} --to pacs" in r.message
    (r,) = buf.queue.retry_jobs([999])
    assert not r.ok and "no such job" in r.message
    (r,) = buf.queue.dead_letter_jobs([done], "x")
    assert not r.ok and "nothing to dead-letter" in r.message


def test_field_report_retry_of_a_waiting_job_while_the_pacs_is_down(tmp_path):
    """Issue 14 item 1 as reported: three queued, `queue retry` on the first; all three must go."""
    buf = _buffer(tmp_path)
    srcs = []
    for n in range(3):
        src = tmp_path / f"{n}.dcm"
        make_ct(src, seed=n)
        _ingest(buf, src)
        srcs.append(src)
    jobs = buf.queue.claim(FORWARD, "pacs", 10)
    buf.queue.release([j.id for j in jobs], "no association with PACS", time.time() + 3600, uncount=True)
    assert buf.queue.retry([jobs[0].id]) == 1
    assert sorted(j.state for j in buf.queue.list(STATES)) == [QUEUED] * 3
    (first,) = buf.queue.claim(FORWARD, "pacs", 10)  # due now; the others wait out their backoff
    assert first.id == jobs[0].id
    # The PACS is back: the destination's other jobs are made due and everything goes out.
    buf.queue.complete([first.id])
    assert buf.queue.make_due(FORWARD, "pacs") == 2
    rest = buf.queue.claim(FORWARD, "pacs", 10)
    buf.queue.complete([j.id for j in rest])
    assert sorted(j.id for j in buf.queue.list((DONE,))) == sorted(j.id for j in jobs)
    assert all("superseded" not in j.last_error for j in buf.queue.list((DONE,)))


def test_retry_all_dead_and_counts(tmp_path):
    buf = _buffer(tmp_path)
    dead = _job_in(buf, tmp_path, FORWARD, DEAD)
    assert buf.queue.retry() == 1
    assert buf.queue.get(dead).state == QUEUED and buf.queue.get(dead).attempts == 0
    assert buf.queue.retry() == 0  # nothing dead any more


def test_reforward_refuses_an_object_no_longer_held(tmp_path):
    buf = _buffer(tmp_path)
    job_id = _job_in(buf, tmp_path, FORWARD, DONE)
    job = buf.queue.get(job_id)
    (buf.files.root / job.path).unlink()
    (r,) = buf.queue.reforward_jobs([job_id], "pacs")
    assert not r.ok and "no longer held" in r.message
    assert [j.id for j in buf.queue.list(STATES)] == [job_id]


def test_reforward_to_another_destination_and_twice(tmp_path):
    buf = _buffer(tmp_path)
    job_id = _job_in(buf, tmp_path, FORWARD, DONE)
    inst = buf.queue.get(job_id).instance_fk
    (r1,) = buf.queue.reforward_instances([inst], "archive")
    (r2,) = buf.queue.reforward_instances([inst], "archive")
    assert r1.ok and r2.ok and r2.job_id == r1.new_job  # the second names the waiting one
    assert [(j.target, j.state) for j in buf.queue.list((QUEUED,))] == [("archive", QUEUED)]


def test_identical_resend_queues_dead_or_missing_routes_only(tmp_path):
    routes = ["a", "b", "c"]
    buf = _buffer(tmp_path, routes=routes)
    src = tmp_path / "x.dcm"
    make_ct(src)
    _ingest(buf, src)
    (ja,) = buf.queue.claim(FORWARD, "a", 1)
    buf.queue.fail(ja.id, "status 0xA900", None)  # a: dead
    (jb,) = buf.queue.claim(FORWARD, "b", 1)
    buf.queue.complete([jb.id])  # b: done; c: still queued
    routes.append("d")  # a route added to the config since: no job yet
    r = _ingest(buf, src)
    assert r.outcome is Outcome.IDENTICAL and sorted(r.routes) == ["a", "d"]
    states = {j.target: j.state for j in buf.queue.list(STATES)}
    assert states == {"a": QUEUED, "b": DONE, "c": QUEUED, "d": QUEUED}
    assert buf.queue.get(ja.id).attempts == 0
    # Sent once more while everything waits: nothing changes.
    assert _ingest(buf, src).routes == ()


def test_backoff_wait_ends_on_operator_wake_and_stop_not_on_new_work(tmp_path):
    buf = _buffer(tmp_path)
    stop = threading.Event()
    ended = []

    def sleeper():
        ended.append(buf.queue.backoff_wait(60, stop))

    t = threading.Thread(target=sleeper)
    t.start()
    time.sleep(0.2)
    buf.queue.notify()  # new work arriving: the backoff goes on
    t.join(0.5)
    assert t.is_alive()
    buf.queue.wake_all()  # an operator verb
    t.join(10)
    assert not t.is_alive() and ended == [True]
    t = threading.Thread(target=sleeper)
    t.start()
    time.sleep(0.1)
    stop.set()
    buf.queue.notify()  # what request_stop does
    t.join(10)
    assert not t.is_alive() and ended == [True, True]


def test_retry_of_a_film_without_verdict_warns_of_a_second_film(tmp_path):
    from gateway.print.store import PrintStore

    buf = _buffer(tmp_path)
    store = PrintStore(buf.files.root, buf.index, buf.queue, "film")
    (job_id,) = store.spool("1.2.3", [({"copies": 1}, {})], "PRINTSCU", "MED", 10)
    buf.queue.claim(PRINT, "film", 1)
    store.set_phase(job_id, "held")
    buf.queue.fail(job_id, "interrupted while sending", None)
    (r,) = buf.queue.retry_jobs([job_id])
    assert r.ok and "second one" in r.message
    assert buf.queue.get(job_id).last_error == "retried by operator"  # what the spooler honours


def _cli(config, *args):
    import subprocess
    import sys

    from peers import ROOT

    return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_cli_without_a_running_service(tmp_path):
    import tomli_w

    buf = _buffer(tmp_path)
    dead = _job_in(buf, tmp_path, FORWARD, DEAD)
    buf.close()
    config = tmp_path / "gateway.toml"
    config.write_text(tomli_w.dumps({
        "buffer": {"path": str(tmp_path / "buf")},
        "destinations": {"pacs": {"ae_title": "PACS", "enabled": False}}}))
    r = _cli(config, "queue", "retry", str(dead))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 jobs queued again" in r.stdout
    assert "note: destination 'pacs' is disabled; its jobs wait until it is" in r.stdout
    assert "no service is running on this buffer: the change takes effect at its next start" in r.stdout
    r = _cli(config, "re-forward", str(dead), "--to", "pacs")
    assert r.returncode != 0 and r.stderr.strip() == (
        "re-forward: destination 'pacs' is disabled (destinations.pacs.enabled)")
    r = _cli(config, "queue", "dead-letter", "7x")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "'7x' is not a job ID" in r.stderr


def test_an_idle_wait_ends_at_once_when_the_stop_is_already_set(tmp_path):
    """A worker's stop (set, then notify) that lands while the worker is between its last look at
    the stop flag and its wait must not cost it the whole wait: wait() looks at the flag under the
    wake-up lock."""
    import threading

    from gateway.buffer.index import Index
    from gateway.buffer.queue import JobQueue

    q = JobQueue(Index(tmp_path / "index.sqlite"))
    stop = threading.Event()
    stop.set()  # the notify that went with it is long gone
    t = threading.Thread(target=q.wait, args=(3600, stop), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "the wait ignored a stop that was already set"
