"""Query/Retrieve activity for the status page: the qr-query and qr-retrieve events (gateway/
event_kinds.py) folded into today's counts, the last query, the last retrieve and the last failure.

Folded by the metrics observer (gateway/status/metrics.py), from its own subscription and in its
own thread, next to the gateway_qr_* counters: the Q/R SCP's events need no second subscriber.
Read by the status document (gateway/status/view.py, "qr"). The events carry no patient data (no
keys or values of a query, no UIDs), so neither does this: AE titles, levels, counts and statuses.

"Today" is the box's local calendar day: an administrator reads "12 queries today" against the
wall clock of the ward, and the counts start again at local midnight (Prometheus has the totals
since start). Times are seconds since the epoch.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from gateway.event_kinds import QR_QUERY, QR_RETRIEVE
from gateway.events import Event

FIND = "C-FIND"
# Outcomes that are no failure: the request was served, or the requestor cancelled it.
GOOD = ("success", "cancel")
# Peers whose last good request is remembered (to tell a failure since fixed): only configured
# peers with may_query get a good answer, so a handful; the bound is for a config of hundreds.
GOOD_PEERS_KEPT = 256


def outcome(status: int) -> str:
    """The class of a final C-FIND / C-MOVE / C-GET status (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4;
    PS3.7 C): "success" 0x0000; "cancel" 0xFE00; "warning" 0xB000-0xBFFF (sub-operations complete,
    some failed or warned); "refused" 0xA7xx (out of resources), 0xA801 (Move Destination unknown),
    0x0122 (SOP Class not supported), 0x0124 (not authorized); "aborted" -1 (no final response:
    the requestor's association ended first, gateway/event_kinds.py QRRetrieve); "failed"
    anything else (0xA900 identifier does not match, 0xCxxx unable to process)."""
    if status == 0x0000:
        return "success"
    if status == 0xFE00:
        return "cancel"
    if status < 0:
        return "aborted"
    if 0xB000 <= status <= 0xBFFF:
        return "warning"
    if 0xA700 <= status <= 0xA7FF or status in (0xA801, 0x0122, 0x0124):
        return "refused"
    return "failed"


def status_text(status: int) -> str:
    """A status as the standard writes it ("0xA801"); -1: "no final response"."""
    return "no final response" if status < 0 else f"0x{status:04X}"


def local_day(at: float) -> str:
    """The box's local calendar day of `at` (seconds since the epoch), "YYYY-MM-DD"."""
    return time.strftime("%Y-%m-%d", time.localtime(at))


def _today(day: str | None) -> dict[str, Any]:
    return {"day": day, "queries": 0, "retrieves": 0, "completed": 0, "failed": 0, "warning": 0}


class QrActivity:
    """The fold. apply(ev) from the observer's thread, summary() from any: thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._today = _today(None)
        self._last_query: dict[str, Any] | None = None
        self._last_retrieve: dict[str, Any] | None = None
        self._last_failure: dict[str, Any] | None = None
        self._good_at: dict[str, float] = {}  # calling AE -> its last good request
        # The counts live in memory: after a restart "today" counts from the start, and says so.
        self._started = time.time()

    def apply(self, ev: Event) -> None:
        """Fold one qr-query or qr-retrieve event (other kinds are ignored). KeyError for a payload
        missing a field (the observer logs it and goes on)."""
        if ev.kind not in (QR_QUERY, QR_RETRIEVE):
            return
        d = ev.data
        status = int(d["status"])
        how = outcome(status)
        with self._lock:
            day = local_day(ev.at)
            if self._today["day"] != day:
                self._today = _today(day)
            if ev.kind == QR_QUERY:
                operation = FIND
                self._today["queries"] += 1
                self._last_query = {"at": ev.at, "calling_ae": d["calling_ae"], "model": d["model"],
                                    "level": d["level"], "matches": d["matches"], "status": status,
                                    "outcome": how}
                failure = {}
            else:
                operation = d["operation"]
                self._today["retrieves"] += 1
                for sub in ("completed", "failed", "warning"):
                    self._today[sub] += d[sub]
                counts = {k: d[k] for k in ("completed", "failed", "warning", "remaining")}
                self._last_retrieve = {"at": ev.at, "operation": operation, "calling_ae": d["calling_ae"],
                                       "destination": d["destination"], "status": status, "outcome": how, **counts}
                failure = {"destination": d["destination"], **counts}
            if how in GOOD:
                self._good_at.pop(d["calling_ae"], None)  # re-inserted last: the oldest goes first
                self._good_at[d["calling_ae"]] = ev.at
                while len(self._good_at) > GOOD_PEERS_KEPT:
                    del self._good_at[next(iter(self._good_at))]
            else:
                self._last_failure = {"at": ev.at, "operation": operation, "calling_ae": d["calling_ae"],
                                      "status": status, "outcome": how, **failure}

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """The status document's "qr" (plain data, a copy):

          today          {"day", "queries", "retrieves", "completed", "failed", "warning"}: requests
                         ended on the local day of `now`, and their C-STORE sub-operations' outcomes
          last_query     {"at", "calling_ae", "model", "level", "matches", "status", "outcome"} | None
          last_retrieve  {"at", "operation", "calling_ae", "destination", "status", "outcome",
                          "completed", "failed", "warning", "remaining"} | None
          last_failure   the last request whose outcome was not success or cancel (a query's or a
                         retrieve's, with the retrieve's destination and counts) | None
          failing        True when that failure's calling AE has had no good answer since: a peer
                         still in trouble, not one that failed once and then got through
          since          when today's counts began: the service's start when it started today
                         (the counts are not kept across a restart), else None (local midnight)

        status: the final status as an integer (-1: none); outcome: its class (outcome())."""
        now = time.time() if now is None else now
        with self._lock:
            today = dict(self._today) if self._today["day"] == local_day(now) else _today(local_day(now))
            failure = copy.deepcopy(self._last_failure)
            failing = failure is not None and self._good_at.get(failure["calling_ae"], 0.0) < failure["at"]
            return {"today": today, "last_query": copy.deepcopy(self._last_query),
                    "last_retrieve": copy.deepcopy(self._last_retrieve), "last_failure": failure,
                    "failing": failing,
                    "since": self._started if local_day(self._started) == local_day(now) else None}
