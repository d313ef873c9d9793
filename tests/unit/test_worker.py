"""The one queue worker (gateway.buffer.worker.QueueWorker) with a fake process() over a real queue.

What every job kind relies on: a job is taken when it is due (not a poll later), new work wakes an
idle worker, the stop ends an idle wait or a backoff at once, an operator's verb ends a backoff, a
full disk is one ERROR line and one recovery line, and a bug in process() costs one job, not the
thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time

import pytest

from gateway.buffer.ingest import Buffer
from gateway.buffer.queue import DONE, IN_FLIGHT, QUEUED, Job
from gateway.buffer.worker import QueueWorker, backoff

KIND, TARGET = "test", "device"
LOGGER = "gateway.test.worker"


def _buffer(tmp_path) -> Buffer:
    return Buffer(tmp_path / "buf", 0, "replace", lambda attrs, calling: [])


def _enqueue(buf: Buffer, n: int = 1) -> int:
    return buf.queue.enqueue(KIND, TARGET, json.dumps({"n": n}))


class Recorder(QueueWorker):
    """Completes every job and notes when; `then(job)` runs first, to misbehave on cue."""

    def __init__(self, buf: Buffer, batch: int = 1, then=None):
        super().__init__(buf.queue, KIND, TARGET, who="test worker", logger=logging.getLogger(LOGGER),
                         thread_name="test-worker", batch=batch)
        # Long idle waits: whatever takes a job sooner than this is what the test is about.
        self.idle_s = 30.0
        self.pause_s = 0.05
        self.then = then
        self.done: list[tuple[int, float]] = []
        self.seen = threading.Event()

    def process(self, job: Job) -> None:
        if self.then is not None:
            self.then(job)
        self.queue.complete([job.id])
        self.done.append((job.id, time.time()))
        self.seen.set()


@pytest.fixture
def workers():
    started: list[QueueWorker] = []
    yield started.append
    for w in started:
        w.stop(5)
        assert not w.is_alive(), f"{w.who} did not stop"


def _idle() -> None:
    """Give the worker time to find the queue empty and start its idle wait."""
    time.sleep(0.3)


def test_a_job_is_taken_when_it_falls_due(tmp_path, workers):
    buf = _buffer(tmp_path)
    job_id = _enqueue(buf)
    (job,) = buf.queue.claim(KIND, TARGET, 1)
    due = time.time() + 0.8
    buf.queue.release([job.id], "device busy", due, uncount=True)
    w = Recorder(buf)
    workers(w)
    w.start()
    assert w.seen.wait(5), "the job was not taken at its due time (only a 30 s idle poll would)"
    ((done_id, at),) = w.done
    assert done_id == job_id and due - 0.01 <= at < due + 1.0


def test_new_work_wakes_an_idle_worker(tmp_path, workers):
    buf = _buffer(tmp_path)
    w = Recorder(buf)
    workers(w)
    w.start()
    _idle()
    queued = time.time()
    job_id = _enqueue(buf)  # enqueue() notifies
    assert w.seen.wait(2), "an idle worker slept through new work"
    assert w.done[0][0] == job_id and w.done[0][1] - queued < 1.0
    assert buf.queue.get(job_id).state == DONE


def test_stop_ends_an_idle_wait_at_once(tmp_path):
    buf = _buffer(tmp_path)
    w = Recorder(buf)
    w.start()
    _idle()
    t0 = time.monotonic()
    w.request_stop()
    w.join(5)
    assert not w.is_alive() and time.monotonic() - t0 < 1.0


def test_a_stop_that_comes_just_before_the_wait_is_not_missed(tmp_path):
    """The stop lands after the loop's last look at the flag and before it waits (here: while it
    asks when the next job is due). Its wake-up went out before anyone waited; the wait must
    still see the flag, or the stop costs a whole idle_s (it cost 5 s at every service stop)."""
    buf = _buffer(tmp_path)
    w = Recorder(buf)
    real_next_due = buf.queue.next_due

    def next_due_and_stop(kind, target):
        w.request_stop()
        return real_next_due(kind, target)

    buf.queue.next_due = next_due_and_stop
    t0 = time.monotonic()
    w.start()
    w.join(5)
    assert not w.is_alive() and time.monotonic() - t0 < 1.0


def _backing_off(buf: Buffer, delay: float):
    """A worker whose process() backs off for `delay` (a device that is down), noting the outcome."""
    ended: list[bool] = []
    started = threading.Event()

    class Backoff(Recorder):
        def process(self, job: Job) -> None:
            self.queue.release([job.id], "device down", time.time() + 3600, uncount=True)
            started.set()
            ended.append(self.backoff_wait(delay))
            self.seen.set()

    return Backoff(buf), started, ended


def test_backoff_is_ended_by_an_operator_verb_not_by_new_work(tmp_path, workers):
    buf = _buffer(tmp_path)
    w, started, ended = _backing_off(buf, 60)
    workers(w)
    _enqueue(buf)
    w.start()
    assert started.wait(5)
    _enqueue(buf, 2)  # new work arriving: the backoff goes on (no attempt per received object)
    assert not w.seen.wait(0.5)
    t0 = time.monotonic()
    buf.queue.wake_all()  # `queue retry`, `re-forward` (SIGUSR1)
    assert w.seen.wait(2), "an operator's verb did not end the backoff"
    assert ended == [True] and time.monotonic() - t0 < 1.0


def test_stop_ends_a_backoff_at_once(tmp_path):
    buf = _buffer(tmp_path)
    w, started, ended = _backing_off(buf, 60)
    _enqueue(buf)
    w.start()
    assert started.wait(5)
    t0 = time.monotonic()
    w.request_stop()
    w.join(5)
    assert not w.is_alive() and time.monotonic() - t0 < 1.0 and ended == [True]


def test_a_target_that_stays_down_is_reminded_during_one_backoff(tmp_path):
    buf = _buffer(tmp_path)
    w = Recorder(buf)
    reminders: list[float] = []
    assert w.target_down() is True and w.target_down() is False  # the outage starts once
    t0 = time.monotonic()
    assert w.wait_out(1.0, 0.3, reminders.append) is False  # sat out to the end
    assert 0.95 <= time.monotonic() - t0 < 2.0
    assert len(reminders) == 3 and all(0 < left < 1.0 for left in reminders), reminders
    assert w.target_up() is not None and w.target_up() is None  # the outage ends once


def test_backoff_doubles_up_to_its_cap_and_starts_again_when_the_target_is_up(tmp_path):
    w = Recorder(_buffer(tmp_path))
    assert [w.retry_delay(1, 5) for _ in range(5)] == [1, 2, 4, 5, 5]
    w.target_up()
    assert w.retry_delay(1, 5) == 1
    assert backoff(0.5, 60, 0) == 0.5 and backoff(0.5, 60, 3) == 2.0


def test_a_full_disk_is_one_error_line_and_one_recovery_line(tmp_path, workers, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    buf = _buffer(tmp_path)
    job_id = _enqueue(buf)
    failures = {"left": 5}

    class FullDisk(Recorder):
        def claim(self):
            if failures["left"]:
                failures["left"] -= 1
                raise sqlite3.OperationalError("database or disk is full")
            return super().claim()

    w = FullDisk(buf)
    workers(w)
    w.start()
    assert w.seen.wait(5), "the worker did not take up its work again once the disk was usable"
    assert buf.queue.get(job_id).state == DONE
    # The recovery line follows the work that went through (process() returned): wait for it.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("usable again" in r.getMessage() for r in caplog.records):
        time.sleep(0.02)
    time.sleep(0.2)  # and nothing more is said
    mine = [r for r in caplog.records if r.name == LOGGER and "started" not in r.getMessage()]
    assert [r.levelname for r in mine] == ["ERROR", "INFO"], [r.getMessage() for r in mine]
    assert mine[0].getMessage().startswith(
        "test worker: the buffer cannot be used (OperationalError: database or disk is full)")
    assert mine[1].getMessage() == (
        "test worker: the buffer is usable again (was: OperationalError: database or disk is full)")
    assert all(r.exc_info is None for r in mine), "a traceback for an expected fault"


def test_a_bug_in_process_costs_one_job_not_the_thread(tmp_path, workers, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    buf = _buffer(tmp_path)
    first = _enqueue(buf, 1)

    def bug_once(job: Job) -> None:
        if job.id == first:
            raise KeyError("no such column")

    w = Recorder(buf, then=bug_once)
    workers(w)
    w.start()
    second = _enqueue(buf, 2)
    assert w.seen.wait(5), "the worker stopped working after a bug"
    assert w.is_alive() and [d[0] for d in w.done] == [second]
    # The job in hand stays in flight, as after a crash: the restart's recovery sends it again.
    assert buf.queue.get(first).state == IN_FLIGHT
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "test worker: unexpected error" in errors[0].getMessage()
    assert errors[0].exc_info is not None  # a bug keeps its traceback


def test_a_stop_between_jobs_of_a_batch_hands_the_rest_back_unspent(tmp_path):
    buf = _buffer(tmp_path)
    ids = [_enqueue(buf, n) for n in range(3)]
    w = Recorder(buf, batch=3, then=lambda job: w.request_stop())
    w.start()
    w.join(5)
    assert not w.is_alive()
    assert [d[0] for d in w.done] == ids[:1]
    rest = [buf.queue.get(i) for i in ids[1:]]
    assert [(j.state, j.attempts) for j in rest] == [(QUEUED, 0), (QUEUED, 0)]

