"""The worklist refresh loop: asks the worklist SCP periodically and on demand, keeps the last good
answer in the buffer, and hands the worklist in use to the current procedure.

    svc = WorklistService(config, buffer_dir, events)   # config: the whole Config
    svc.start()       # the cache at once (worklist-refreshed source "cache"), then a first query
    svc.refresh()     # on demand; waits at most worklist.timeout_s for the answer
    svc.items(); svc.status(); svc.current      # the CurrentProcedure (gateway/capture/procedure.py)
    svc.stop()

Rules (issue 10 item 1):
- a refresh that fails (no connection, rejected, a failure status, too many items) never replaces
  the worklist in use nor the cached one: the box captures from the last good worklist and says so
  (worklist-failed with using_cache_from, status() source "cache");
- a good answer is written to the buffer before it is used (gateway/buffer/worklist.py), zero
  items included;
- a caller is never blocked longer than timeout_s: the query runs on the service's own thread and
  refresh() waits for it at most that long (the answer still arrives later and is used);
- the log says a failure once, and again only when its reason changes, and when the SCP answers
  again: a RIS down for a night is two lines, not one every refresh_s.

Wiring (gateway/app.py, the lead's):
    self.worklist = WorklistService(cfg, loaded.buffer_dir, self.events)        # in _build
    Commands(..., worklist=self.worklist); ControlServer(..., {..., **worklist_verbs(c)})
    start(): self.worklist.start(); self._started.append("worklist")             # before control
    stop(): if "worklist" in self._started: self.worklist.stop()
    healthy(): ... and ("worklist" not in self._started or self.worklist.is_alive())
The capture and the panel read `self.worklist.current` (a CurrentProcedure).

With [worklist] enabled = false the service runs no thread: the cached worklist (if any) is not
used either, because a box told not to use a worklist must not capture for a stale one; only
unscheduled captures remain.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.buffer.procedure import Procedure
from gateway.buffer.worklist import CachedWorklist, WorklistStore
from gateway.capture.procedure import CurrentProcedure
from gateway.dicom.worklist_scu import WorklistError, WorklistQuery, find
from gateway.event_kinds import WorklistFailed, WorklistRefreshed

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.events import EventBus

log = logging.getLogger("gateway.dicom.worklist")


@dataclass(frozen=True)
class RefreshOutcome:
    """What an on-demand refresh came to. ok: the SCP answered (items: how many). pending: the
    answer did not come within timeout_s (it is still awaited and will be used). reason: the
    failure in one line ("" when ok or pending)."""

    ok: bool
    items: int = 0
    pending: bool = False
    reason: str = ""


class WorklistService:
    """See the module docstring. ``config``: the whole Config ([worklist] and ae.title).
    ``buffer_dir``: the buffer's folder (the cache lives there). ``events``: the bus.
    ``current``: the CurrentProcedure to feed (default: a new one, `self.current`)."""

    def __init__(self, config: "Config", buffer_dir: Path, events: "EventBus",
                 current: CurrentProcedure | None = None):
        self.config = config
        self.section = config.worklist
        self.events = events
        self.store = WorklistStore(buffer_dir)
        self.current = current or CurrentProcedure(self.section, events, self.store)
        self.source_name = f"{self.section.ae_title}@{self.section.host}:{self.section.port}"
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._worklist: CachedWorklist | None = None
        self._source = "none"          # "scp", "cache" or "none"
        self._last_error = ""
        self._failing_since = 0.0
        self._last_attempt = 0.0
        self._generation = 0           # finished refreshes, for refresh() to wait on
        self._done = threading.Condition(self._lock)

    # -- life ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Use the cached worklist at once (when enabled), then query in the background."""
        if not self.section.enabled:
            log.info("worklist disabled ([worklist] enabled = false): unscheduled captures only")
            return
        cached = self.store.load()
        if cached is not None:
            with self._lock:
                self._worklist, self._source = cached, "cache"
            self.current.set_worklist(cached.items)
            self.events.publish(WorklistRefreshed(items=len(cached.items), source="cache", at=cached.fetched_at))
            log.info("worklist: %d items from the cache (fetched %s from %s)", len(cached.items),
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(cached.fetched_at)), cached.source)
        self._thread = threading.Thread(target=self._run, name="worklist", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """End the loop; a query in flight ends within its own timeout (the thread is a daemon)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.section.timeout_s * 3 + 1 if timeout is None else timeout)

    def is_alive(self) -> bool:
        """The loop runs (True when disabled: nothing should run)."""
        return not self.section.enabled or (self._thread is not None and self._thread.is_alive())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self._refresh_once()
            self._wake.wait(self.section.refresh_s)

    # -- asking -------------------------------------------------------------------------------
    def query(self) -> WorklistQuery:
        """The C-FIND the config asks for, today (the box's local date)."""
        s, own = self.section, self.config.ae.title
        return WorklistQuery.around(date.today(), s.days_back, s.days_forward,
                                    station_ae=s.station(own), modality=s.modality)

    def _refresh_once(self) -> None:
        s = self.section
        started = time.time()
        try:
            items = find(s.ae_title, s.host, s.port, s.calling(self.config.ae.title), self.query(),
                         s.timeout_s, s.max_items)
            fetched = CachedWorklist(tuple(items), time.time(), self.source_name)
            self.store.save(fetched)  # durable before it is used
        except (WorklistError, OSError) as exc:
            self._failed(str(exc) if isinstance(exc, WorklistError)
                         else f"worklist cache {self.store.path}: cannot write: {exc.strerror or exc}", started)
            return
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a bug in one answer's handling
            log.error("worklist: refresh failed unexpectedly", exc_info=True)
            self._failed(f"internal error: {type(exc).__name__}: {exc}", started)
            return
        with self._lock:
            recovered = bool(self._last_error)
            self._worklist, self._source = fetched, "scp"
            self._last_error, self._failing_since, self._last_attempt = "", 0.0, started
        self.current.set_worklist(fetched.items)
        self.events.publish(WorklistRefreshed(items=len(items), source="scp", at=fetched.fetched_at))
        self._finished()
        if recovered:
            log.info("worklist: %s answers again: %d items", self.source_name, len(items))
        else:
            log.debug("worklist: %d items from %s", len(items), self.source_name)

    def _failed(self, reason: str, started: float) -> None:
        with self._lock:
            changed = reason != self._last_error
            self._last_error = reason
            self._failing_since = self._failing_since or started
            self._last_attempt = started
            cache_from = self._worklist.fetched_at if self._worklist is not None else 0.0
            if self._worklist is not None:
                self._source = "cache"
        self.events.publish(WorklistFailed(reason=reason, using_cache_from=cache_from))
        if changed:
            using = (f"using the worklist fetched {time.strftime('%Y-%m-%d %H:%M', time.localtime(cache_from))}"
                     if cache_from else "no worklist: unscheduled captures only")
            log.warning("worklist refresh failed: %s; %s", reason, using)
        # Time passes while the RIS is down: an item may become due now.
        self.current.auto_select()
        self._finished()

    def _finished(self) -> None:
        # Last, so that a refresh() that returns finds the current procedure told already.
        with self._lock:
            self._generation += 1
            self._done.notify_all()

    def refresh(self) -> RefreshOutcome:
        """Ask the SCP now; wait at most worklist.timeout_s for the answer. RefreshOutcome: ok with
        the item count, the failure's reason, or pending (still asking; the answer will be used).
        Not enabled: a failure saying so."""
        if not self.section.enabled or self._thread is None:
            return RefreshOutcome(False, reason="the worklist is not enabled ([worklist] enabled = false)"
                                  if not self.section.enabled else "the worklist service is not running")
        with self._lock:
            target = self._generation + 1
            self._wake.set()
            # The next refresh to finish answers: the one this wakes, or one already in flight
            # (started a moment before the request, so as fresh as the operator can tell).
            deadline = time.monotonic() + self.section.timeout_s
            while self._generation < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return RefreshOutcome(False, pending=True)
                self._done.wait(left)
            if self._last_error:
                return RefreshOutcome(False, reason=self._last_error)
            return RefreshOutcome(True, items=len(self._worklist.items) if self._worklist else 0)

    # -- reading ------------------------------------------------------------------------------
    def items(self) -> tuple[Procedure, ...]:
        """The worklist in use (empty when none)."""
        with self._lock:
            return self._worklist.items if self._worklist is not None else ()

    def status(self) -> dict[str, Any]:
        """For the panel, the status page and the CLI: {"enabled": bool, "scp": "AE@host:port",
        "source": "scp" | "cache" | "none", "items": int, "fetched_at": float (0.0: none),
        "fetched_from": str, "last_error": str ("" when the last refresh was good),
        "failing_since": float (0.0: not failing), "last_attempt": float}."""
        with self._lock:
            wl = self._worklist
            return {"enabled": self.section.enabled, "scp": self.source_name, "source": self._source,
                    "items": len(wl.items) if wl else 0, "fetched_at": wl.fetched_at if wl else 0.0,
                    "fetched_from": wl.source if wl else "", "last_error": self._last_error,
                    "failing_since": self._failing_since, "last_attempt": self._last_attempt}
