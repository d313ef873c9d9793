"""The one queue worker: every kind of outgoing work runs in a QueueWorker.

The forwarder (kind 'forward', one worker per destination), the print spooler (kind 'print', one per
printer) and the job kinds still to come (media export, MPPS, C-MOVE sub-operations) share this
loop and implement only what one claimed job (or batch) means:

    while not stopping:
        claim up to `batch` due jobs of (kind, target)     -- queued -> in_flight, committed
        none: wait until the next one is due, or until notified (new work, an operator, the stop)
        some: process_batch(jobs)                          -- the subclass; by default process(job)
        the buffer's disk full or failing: one ERROR line, one INFO line when it is usable again
        anything else: logged with its traceback, a pause, and the loop goes on

What a subclass gets besides the loop:
- `backoff_wait` / `wait_out`: sleep out a backoff for a target that is down (a PACS, a printer);
  it ends at once on the stop and on an operator's verb (JobQueue.wake_all), not on new work;
  `wait_out` also logs a reminder every so often while the target stays down.
- `retry_delay`, `target_down`, `target_up`: the failure count behind the capped exponential
  backoff and the start and end of an outage, so that each is logged once.
- `request_stop` / `join` / `stop` / `is_alive`: the stop ends an idle wait or a backoff at once;
  the job in hand is finished by process() (which looks at `stopping` between objects).

The worker never changes a job's state itself: claim() is the queue's, and what becomes of a
claimed job (done, failed, released) is process()'s decision, made through JobQueue's verbs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from gateway.buffer.queue import Job, JobQueue
from gateway.logs import EXPECTED_BUFFER_ERRORS, FaultLog

# The longest idle wait. Work queued in this process notifies at once; this bounds how late a
# change made without a wake-up (another process writing the index, a clock jump) is seen.
IDLE_S = 5.0
# The shortest idle wait: a job due "now" by a few ms must not make the loop spin.
MIN_WAIT_S = 0.05
# The pause after a buffer fault or a bug: long enough not to flood the log or the disk, short
# enough that a freed disk is used again within seconds.
PAUSE_S = 5.0


def backoff(initial: float, cap: float, failures: int) -> float:
    """Capped exponential backoff: `initial` after the first failure, doubling, at most `cap`."""
    return min(cap, initial * (2 ** max(0, failures - 1)))


class QueueWorker:
    """One thread that drains the jobs of one (kind, target) from the buffer's queue.

    Subclasses implement process(job), or process_batch(jobs) when one claim is worked as a
    whole (the forwarder sends a batch over one association). `who` names the worker in its log
    lines ("forwarder pacs", "print spooler"); `logger` is the subclass's own, so that its lines
    keep their module's name."""

    idle_s = IDLE_S
    pause_s = PAUSE_S

    def __init__(self, queue: JobQueue, kind: str, target: str, *, who: str, logger: logging.Logger,
                 thread_name: str, batch: int = 1):
        self.queue = queue
        self.kind = kind
        self.target = target
        self.batch = batch
        self.who = who
        self.log = logger
        self._stop = threading.Event()
        self._buffer_fault = FaultLog(logger, who)
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self.failures = 0  # failed attempts on the target in a row (the backoff's exponent)
        self.down_since: float | None = None  # when the target's outage started (wall clock)
        self._reminded_at = 0.0

    # -- what a job kind implements --------------------------------------------------------------
    def process(self, job: Job) -> None:
        """Work one claimed job and settle it through the queue (complete, fail or release)."""
        raise NotImplementedError(f"{type(self).__name__}.process")

    def process_batch(self, jobs: list[Job]) -> None:
        """Work what one claim returned. By default one job after the other; a stop requested in
        between hands the rest back to the queue without using up an attempt (they were never
        tried), so that the stop waits for one job at most."""
        for i, job in enumerate(jobs):
            if self.stopping:
                self.queue.release([j.id for j in jobs[i:]], "", 0, uncount=True)
                return
            self.process(job)

    def on_start(self) -> None:
        """First thing in the worker's thread (the default logs that it started)."""
        self.log.info("%s started", self.who)

    def on_stop(self) -> None:
        """Last thing in the worker's thread (the default logs that it stopped)."""
        self.log.info("%s stopped", self.who)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Stop after the job in hand: an idle wait or a backoff ends at once. The stop flag is set
        before the wake-up, and JobQueue.wait looks at it under the wake-up lock, so the wake-up
        can never fall between the worker's last look and its wait."""
        self._stop.set()
        self.queue.notify()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """request_stop() and wait up to `timeout` for the thread to end."""
        self.request_stop()
        self.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """The stop was requested: process() should hand back what it has not started."""
        return self._stop.is_set()

    # -- the loop ---------------------------------------------------------------------------------
    def _run(self) -> None:
        self.on_start()
        while not self._stop.is_set():
            self._round()
        self.on_stop()

    def _round(self) -> None:
        """One claim and its work, or one idle wait. Never raises: a worker thread that died
        would stop this kind of work for good while the service looks healthy."""
        try:
            jobs = self.claim()
            if not jobs:
                self._buffer_fault.ok()  # the claim went through: the index is usable
                self.idle_wait()
                return
            self.process_batch(jobs)
            self._buffer_fault.ok()
        except EXPECTED_BUFFER_ERRORS as exc:
            # A full or failing disk under the index: one line, not a traceback every few seconds.
            self._buffer_fault.failed(exc, self.pause_s)
            self._stop.wait(self.pause_s)
        except Exception:
            # A bug must not silently stop this kind of work for good: log it, pause, go on.
            self.log.exception("%s: unexpected error; retrying in %.3g s", self.who, self.pause_s)
            self._stop.wait(self.pause_s)

    def claim(self) -> list[Job]:
        """Up to `batch` due jobs of this worker's kind and target, now in flight."""
        return self.queue.claim(self.kind, self.target, self.batch)

    def idle_wait(self) -> None:
        """Nothing due: wait until the next job is due (at most idle_s), or until notified."""
        due = self.queue.next_due(self.kind, self.target)
        wait = self.idle_s if due is None else max(MIN_WAIT_S, min(self.idle_s, due - time.time()))
        self.queue.wait(wait, self._stop)

    # -- a target that is down --------------------------------------------------------------------
    def retry_delay(self, initial: float, cap: float) -> float:
        """One more failed attempt on the target: the backoff before the next one."""
        self.failures += 1
        return backoff(initial, cap, self.failures)

    def target_down(self) -> bool:
        """An attempt on the target failed. True when this starts an outage (log it then, once);
        reminders (wait_out) count from here."""
        if self.down_since is None:
            self.down_since = self._reminded_at = time.time()
            return True
        return False

    def target_up(self) -> float | None:
        """An attempt on the target worked: the failure count starts again. Returns how long the
        outage lasted, None when there was none."""
        lasted = None if self.down_since is None else time.time() - self.down_since
        self.down_since, self.failures = None, 0
        return lasted

    def backoff_wait(self, delay: float) -> bool:
        """Sleep out a backoff; True when it ended early (the stop, or an operator's verb)."""
        return self.queue.backoff_wait(delay, self._stop)

    def wait_out(self, delay: float, remind_every: float | None = None,
                 remind: Callable[[float], None] | None = None) -> bool:
        """backoff_wait(delay), calling remind(seconds left) every `remind_every` s from the
        outage's start (target_down) while it lasts: one line at 3 a.m. scrolls away long before
        anyone reads the log, and the retry cadence alone is not the operator's. True when it
        ended early."""
        deadline = time.monotonic() + delay
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sleep = left
            if remind is not None and remind_every is not None:
                remind_in = self._reminded_at + remind_every - time.time()
                if remind_in <= 0:
                    self._reminded_at = time.time()
                    remind(left)
                    continue
                sleep = min(left, remind_in)
            if self.queue.backoff_wait(sleep, self._stop):
                return True
        return True
