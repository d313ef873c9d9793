"""The operator verbs in-process (gateway/commands.py, issue 7 item 3): what the panel and the
status page will call. Each verb: a refused cell and an accepted cell, the wording the command
line prints, and the workers woken directly (no SIGUSR1)."""

from __future__ import annotations

from test_queue_verbs import _buffer, _job_in

from gateway.buffer.ingest import FORWARD
from gateway.buffer.queue import DEAD, DONE, IN_FLIGHT, QUEUED
from gateway.commands import Commands, Selection
from gateway.config import Config


def _config(pacs_enabled: bool = True) -> Config:
    return Config.model_validate({"destinations": {
        "pacs": {"ae_title": "PACS", "port": 11122, "enabled": pacs_enabled},
        "archive": {"ae_title": "ARCH", "port": 11123}}})


class _Wakes:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1


def _commands(buf, **kw):
    wakes = _Wakes()
    return Commands(buf.queue, _config(**kw), wakes), wakes


def test_retry_refused_in_flight_accepted_when_dead(tmp_path):
    buf = _buffer(tmp_path)
    busy = _job_in(buf, tmp_path, FORWARD, IN_FLIGHT)
    cmds, wakes = _commands(buf)
    r = cmds.retry([busy])
    assert not r.ok and not r.refused and r.results[0].ok is False and wakes.n == 0 and not r.woken
    assert r.lines()[0].startswith(f"refused: job {busy}") and r.lines()[-1] == "0 jobs queued again"
    assert buf.queue.get(busy).state == IN_FLIGHT

    buf2 = _buffer(tmp_path / "b2")
    dead = _job_in(buf2, tmp_path, FORWARD, DEAD)
    cmds, wakes = _commands(buf2)
    r = cmds.retry()  # no ids: every dead job
    assert r.ok and r.woken and wakes.n == 1 and r.summary == "1 jobs queued again"
    assert buf2.queue.get(dead).state == QUEUED
    assert cmds.retry().lines() == ["0 jobs queued again (no dead jobs)"]


def test_retry_notes_a_destination_no_worker_serves(tmp_path):
    buf = _buffer(tmp_path)
    dead = _job_in(buf, tmp_path, FORWARD, DEAD)
    cmds, _ = _commands(buf, pacs_enabled=False)
    r = cmds.retry([dead])
    assert r.ok and r.notes == ("destination 'pacs' is disabled; its jobs wait until it is",)
    assert r.lines()[-1] == "note: destination 'pacs' is disabled; its jobs wait until it is"


def test_dead_letter_refused_without_ids_or_when_done_accepted_when_queued(tmp_path):
    buf = _buffer(tmp_path)
    cmds, wakes = _commands(buf)
    r = cmds.dead_letter([])
    assert (r.ok, r.usage, r.refused) == (False, True, "queue dead-letter: give the IDs of the jobs to give up on")
    r = cmds.dead_letter(["7x"])
    assert r.usage and r.refused.startswith("queue dead-letter: '7x' is not a job ID")
    done = _job_in(buf, tmp_path, FORWARD, DONE)
    r = cmds.dead_letter([done])
    assert not r.ok and "nothing to dead-letter" in r.results[0].message and wakes.n == 0

    buf2 = _buffer(tmp_path / "b2")
    waiting = _job_in(buf2, tmp_path, FORWARD, QUEUED)
    cmds, wakes = _commands(buf2)
    r = cmds.dead_letter([waiting], "PACS retired")
    assert r.ok and r.summary == "1 jobs dead-lettered" and wakes.n == 1
    job = buf2.queue.get(waiting)
    assert job.state == DEAD and job.last_error == "PACS retired"
    # Already dead: said so, nothing changed, nobody woken.
    r = cmds.dead_letter([waiting])
    assert r.ok and not r.changed and r.summary == "0 jobs dead-lettered" and wakes.n == 1


def test_re_forward_refusals_and_a_study_sent_again(tmp_path):
    buf = _buffer(tmp_path)
    done = _job_in(buf, tmp_path, FORWARD, DONE)
    cmds, wakes = _commands(buf)
    r = cmds.re_forward(Selection(jobs=(done,)), "nowhere")
    assert r.usage and r.refused == "re-forward: unknown destination 'nowhere' (destinations: pacs, archive)"
    assert cmds.re_forward(Selection(), "pacs").refused == (
        "re-forward: give job IDs, or one of --study / --series / --instance UID")
    assert cmds.re_forward(Selection(series="1.2.3.4"), "pacs").refused == "re-forward: no series 1.2.3.4 in the buffer"
    disabled, _ = _commands(buf, pacs_enabled=False)
    r = disabled.re_forward(Selection(jobs=(done,)), "pacs")
    assert not r.usage and r.refused == "re-forward: destination 'pacs' is disabled (destinations.pacs.enabled)"
    assert wakes.n == 0 and buf.queue.list((QUEUED,)) == []

    study = buf.queue.get(done).study_uid
    r = cmds.re_forward(Selection(study=study), "archive")
    assert r.ok and r.summary == "1 objects queued for archive" and r.woken and wakes.n == 1
    (job,) = buf.queue.list((QUEUED,))
    assert job.target == "archive" and job.instance_fk == buf.queue.get(done).instance_fk


def test_wake_ends_a_workers_backoff(tmp_path):
    import threading

    buf = _buffer(tmp_path)
    cmds = Commands(buf.queue, _config())  # the real wake: queue.wake_all
    ended = []
    stop = threading.Event()
    t = threading.Thread(target=lambda: ended.append(buf.queue.backoff_wait(30, stop)))
    t.start()
    try:
        import time

        time.sleep(0.2)
        assert cmds.wake().woken
        t.join(5)
        assert ended == [True]
    finally:
        stop.set()
        buf.queue.notify()
        t.join(5)

