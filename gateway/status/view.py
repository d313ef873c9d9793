"""The status document: what /status.json answers and the status page's Server-Sent Events carry.

Built from the state snapshot (gateway/state.py: services, destinations, printer, media, disk,
counts, queue depths as last counted) and two read-only index queries (backlog.py: the oldest
waiting job per target, the last dead letters with their reasons). No patient data: the snapshot
holds none, and the index queries read no patient or study attribute.

Shape (times in seconds since the epoch, sizes in bytes, None = not known yet):

  {"service":      {"pid", "started", "uptime_s", "healthy", "problem"},
   "counts":       {"received", "refused", "forwarded", "dead_lettered"}   since start
   "associations": {"open", "accepted", "refused", "last_refused"}         as in the snapshot
   "last_received", "last_forwarded"                                         as in the snapshot
   "destinations": {name: {"reachable", "since", "reason", "last_forwarded",
                           "queued", "in_flight", "committing", "dead", "oldest_waiting",
                           "oldest_age_s"}}
   "queues":       {job kind: {target: {state: n, ..., "oldest_waiting", "oldest_age_s"}}} | None
   "dead_letters": [{"id", "kind", "target", "sop_uid", "reason", "since", "attempts"}]  newest first
   "printer":      the snapshot's printer (None when printing is off)
   "media":        per drive, the snapshot's entry
   "disk":         the snapshot's disk
   "config_problems": [{"key", "detail", "at"}]: the snapshot's, oldest first (what the config
                   asks for and the running service could not have; they hold until a restart)
   "qr":           Query/Retrieve served from the buffer: {"today", "last_query", "last_retrieve",
                   "last_failure", "failing", "since"} (gateway/status/qr_activity.py QrActivity.summary;
                   AE titles, levels, counts and statuses, no patient data); None when not folded
   "errors":       [{"at", "what"}]: the last errors known (destinations down, disk full, media
                   faults, printer not NORMAL, config problems, the index unreadable, a Q/R peer
                   whose last request failed and that has not got through since), newest first
   "at":           when this document was built}
"""

from __future__ import annotations

import copy
import sqlite3
import time
from typing import Any

from gateway.buffer.index import Index
from gateway.state import QUEUE_STATES
from gateway.status.backlog import dead_letters, oldest_waiting
from gateway.status.qr_activity import status_text

DEAD_LETTERS_SHOWN = 20


def build(snapshot: dict[str, Any], index: Index | None, health_problem: str | None,
          now: float | None = None, dead_shown: int = DEAD_LETTERS_SHOWN,
          qr: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status document (module docstring) from a snapshot (StateObserver.get_status(), not
    changed here) and the index (None: the index parts are left empty). health_problem: why the
    service is not healthy, None when it is. qr: the Q/R activity (QrActivity.summary(), folded by
    the metrics observer; None: unknown); a failure of a peer that has not got through since is
    an entry of "errors". Never raises for an unreadable index: it becomes an entry of "errors"."""
    now = time.time() if now is None else now
    s = copy.deepcopy(snapshot)
    errors: list[dict[str, Any]] = []
    oldest: dict[tuple[str, str], float] = {}
    dead: list[dict[str, Any]] = []
    if index is not None:
        try:
            oldest = oldest_waiting(index)
            dead = dead_letters(index, dead_shown)
        except sqlite3.Error as exc:
            errors.append({"at": now, "what": f"index: cannot be read: {exc}"})
    queues = s.get("queues")
    if queues is not None:
        for kind, targets in queues.items():
            for target, states in targets.items():
                first = oldest.get((kind, target))
                states.update(oldest_waiting=first, oldest_age_s=None if first is None else max(0.0, now - first))
    destinations = {}
    for name, d in (s.get("destinations") or {}).items():
        per = ((queues or {}).get("forward") or {}).get(name) or {}
        first = oldest.get(("forward", name))
        destinations[name] = {**d, **{st: per.get(st, 0) for st in QUEUE_STATES},
                              "oldest_waiting": first,
                              "oldest_age_s": None if first is None else max(0.0, now - first)}
        if d.get("reachable") is False:
            errors.append({"at": d.get("since"), "what": f"destination {name} unreachable: {d.get('reason', '')}"})
    disk = s.get("disk") or {}
    if disk.get("last_full"):
        errors.append({"at": disk["last_full"], "what": f"buffer full: {disk.get('last_full_detail', '')}"})
    printer = s.get("printer")
    if printer and printer.get("status") not in (None, "NORMAL"):
        errors.append({"at": printer.get("since"), "what": f"printer {printer['name']}: {printer['status']} "
                                                          f"{printer.get('info', '')}".rstrip()})
    for drive, m in (s.get("media") or {}).items():
        if "failed" in (m.get("last") or ""):
            errors.append({"at": m.get("since"), "what": f"media {drive}: {m['last']}"})
    capture, worklist = s.get("capture") or {}, s.get("worklist") or {}
    if capture.get("signal") == "lost":
        errors.append({"at": capture.get("since"), "what": "capture: no signal from the grabber"})
    failed = capture.get("last_failed")
    if failed and (not capture.get("last") or failed["at"] > capture["last"]["at"]):
        errors.append({"at": failed["at"], "what": f"capture: {failed['what']} failed: {failed['reason']}"})
    failing = (s.get("mpps") or {}).get("failing")
    if failing:
        errors.append({"at": failing["at"], "what": f"MPPS {failing['step']} failing: {failing['reason']}"})
    if worklist.get("failed"):
        errors.append({"at": worklist["failed"]["at"], "what": f"worklist: {worklist['failed']['reason']}"})
    problems = s.get("config_problems") or []  # a snapshot from before they were kept has none
    for p in problems:
        errors.append({"at": p.get("at"), "what": f"config problem {p.get('key', '')}: {p.get('detail', '')}"})
    if qr and qr.get("failing"):
        f = qr["last_failure"]
        to = f" to {f['destination']}" if f["operation"] == "C-MOVE" else ""
        errors.append({"at": f["at"], "what": f"Q/R: {f['operation']} from {f['calling_ae']}{to} "
                                              f"{f['outcome']}: {status_text(f['status'])}"})
    errors.sort(key=lambda e: e["at"] or 0, reverse=True)
    started = s.get("started")
    return {
        "service": {"pid": s.get("pid"), "started": started,
                    "uptime_s": None if started is None else max(0.0, now - started),
                    "healthy": health_problem is None, "problem": health_problem},
        "counts": s.get("counts"),
        "associations": s.get("associations"),
        "last_received": s.get("last_received"),
        "last_forwarded": s.get("last_forwarded"),
        "destinations": destinations,
        "queues": queues,
        "queues_at": s.get("queues_at"),
        "dead_letters": dead,
        "printer": printer,
        "media": s.get("media"),
        "capture": s.get("capture"),
        "worklist": s.get("worklist"),
        "mpps": s.get("mpps"),
        "disk": disk,
        "config_problems": problems,
        "qr": qr,
        "errors": errors,
        "at": now,
    }
