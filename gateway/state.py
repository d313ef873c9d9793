"""The running service's state, folded from the event stream into one snapshot.

`StateObserver` subscribes to the kinds it folds (gateway/event_kinds.py) and keeps one dict, the
snapshot. Its readers: systemd STATUS= and `Gateway.status_line` (gateway/app.py), `dicom-gateway
status` from another process (through state.json, below), and next the front panel, the status
page and metrics. `get_status()` returns it (or some of its objects) as plain data, as a Klipper
object answers `objects/query`.

What the snapshot holds (times in seconds since the epoch, sizes in bytes, None = not known yet):

  pid, started, written   the service's PID, when it started, when the snapshot was last written
  destinations            per destination name: reachable (True/False/None: not tried yet), since
                          (when that began), reason (why unreachable), last_forwarded
  printer                 None when printing is off; else name, status ("NORMAL", "WARNING",
                          "FAILURE", None: not read yet), info, since
  queues                  job kind -> target -> {"queued", "in_flight", "committing", "dead"}: jobs
                          not done, counted from the index by the housekeeping tick (queue-depths);
                          None until the first count. queues_at: when counted
  disk                    free_bytes, total_bytes, reserve_bytes, below_reserve, at (when measured;
                          the tick's disk-space, or retention's evictions), last_full (when a received
                          object last did not fit), last_full_detail
  last_received           at, source ("AE:<title>", "MEDIA:<label>", ...) of the last instance taken in
  last_forwarded          at, target of the last batch delivered
  counts                  since start: received, refused, forwarded (instances), dead_lettered
  associations            the listener's, since start: open (accepted, not yet ended), accepted,
                          refused; last_refused: the last A-ASSOCIATE-RJ (at, calling_ae, called_ae,
                          peer, reason in words, result / source / diagnostic: PS3.8 9.3.4) or None,
                          so that "why does my modality not get through" is on the status page
  media                   per configured drive: present (a medium is in; None: not known yet), medium
                          ("cd", "dvd", "usb" or None), blank, read_only, busy (None, "importing",
                          "queued-export": an export rule queued jobs for the medium), since (when
                          that changed), last (the last decision or fault, one line), progress
                          (while a medium is written: job_id, done_bytes, total_bytes, at; else None)
  config_problems         what the config asks for and the running service could not have (a device
                          that failed to start, a port in use: config-problem events), oldest first,
                          the last CONFIG_PROBLEMS_KEPT: key, detail, at. They hold until a restart

Only facts of the running service are kept; the index stays the authority on jobs (a
queue-depths event is a count of it, not a second bookkeeping), so `status` is right even when no
service runs. The snapshot holds no patient data.

state.json: the snapshot is written atomically (temporary file, then rename) in the buffer folder,
not fsynced: it is advice for an operator, and a reader that finds it missing or unreadable says
"unknown" rather than failing. A change an operator reads at once (a destination up or down, the
printer's status) is written at once; the rest (counts, last received, queue depths, disk) at the
next `sync()`, which the housekeeping tick calls: an SD card is not a log, and a C-STORE burst must
not rewrite the file per image.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from gateway.event_kinds import (ASSOCIATION_CLOSED, ASSOCIATION_OPENED, ASSOCIATION_REFUSED, CONFIG_PROBLEM,
                                 DEAD_LETTERED, DESTINATION_DOWN, DESTINATION_STILL_DOWN, DESTINATION_UP,
                                 DISK_FULL, DISK_SPACE, EVICTED, EXPORT_FAILED, EXPORT_PROGRESS, EXPORT_STARTED,
                                 EXPORT_VERIFIED, EXPORT_WRITTEN, FORWARDED, MEDIA_EXPORT_QUEUED, MEDIA_FAULT,
                                 MEDIA_IMPORT_DONE, MEDIA_IMPORT_QUEUED, MEDIA_INSERTED,
                                 MEDIA_NOTHING_TO_EXPORT, MEDIA_REMOVED, MEDIA_WATCHING, PRINTER_STATUS_CHANGED,
                                 QUEUE_DEPTHS, RECEIVED, STORE_REFUSED)
from gateway.event_kinds import (CAPTURE_CLIP_STARTED, CAPTURE_FAILED, CAPTURE_SIGNAL, CAPTURE_STORED,
                                 MPPS_FAILED, MPPS_SENT, PROCEDURE_SELECTED, WORKLIST_FAILED,
                                 WORKLIST_REFRESHED)
from gateway.events import Event, EventBus

log = logging.getLogger("gateway.state")

SNAPSHOT_NAME = "state.json"

# The kinds the snapshot is folded from (its subscription receives nothing else).
MEDIA_KINDS = (MEDIA_INSERTED, MEDIA_REMOVED, MEDIA_WATCHING, MEDIA_EXPORT_QUEUED, MEDIA_NOTHING_TO_EXPORT,
               MEDIA_IMPORT_QUEUED, MEDIA_IMPORT_DONE, MEDIA_FAULT, EXPORT_STARTED, EXPORT_PROGRESS, EXPORT_WRITTEN,
               EXPORT_VERIFIED, EXPORT_FAILED)
FOLDED = (DESTINATION_UP, DESTINATION_DOWN, DESTINATION_STILL_DOWN, FORWARDED, DEAD_LETTERED,
          PRINTER_STATUS_CHANGED, RECEIVED, STORE_REFUSED, QUEUE_DEPTHS, DISK_SPACE, DISK_FULL, EVICTED,
          ASSOCIATION_OPENED, ASSOCIATION_REFUSED, ASSOCIATION_CLOSED, CONFIG_PROBLEM, *MEDIA_KINDS)
# The capture's and the worklist's: `capture` (signal, recording, the last object or failure) and
# `worklist` (the procedure chosen, by key and Patient ID only; the last refresh and failure).
CAPTURE_KINDS = (CAPTURE_SIGNAL, CAPTURE_CLIP_STARTED, CAPTURE_STORED, CAPTURE_FAILED, PROCEDURE_SELECTED,
                 WORKLIST_REFRESHED, WORKLIST_FAILED, MPPS_SENT, MPPS_FAILED)
FOLDED = (*FOLDED, *CAPTURE_KINDS)

# The job states counted in `queues` (done jobs are not a backlog).
QUEUE_STATES = ("queued", "in_flight", "committing", "dead")
# Of those, the ones still on their way (a job dead-lettered waits for an operator instead).
WAITING_STATES = ("queued", "in_flight", "committing")
# Config problems kept in the snapshot: a device retried on every start must not grow state.json.
CONFIG_PROBLEMS_KEPT = 10


# How long after an event the snapshot folds what else arrived (seconds); a barrier (sync) is not
# delayed.
LINGER_S = 0.05

def snapshot_path(buffer_dir: Path) -> Path:
    """Where the running service writes its snapshot for this buffer."""
    return buffer_dir / SNAPSHOT_NAME


def read_snapshot(buffer_dir: Path) -> dict[str, Any] | None:
    """The last snapshot written for this buffer, or None when there is none or it is unreadable."""
    try:
        data = json.loads(snapshot_path(buffer_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def backlog(status: dict[str, Any]) -> tuple[int, int] | None:
    """(jobs waiting, jobs dead-lettered) over every queue of a snapshot; None before the first
    count. Waiting = queued, in flight or awaiting commitment."""
    queues = status.get("queues")
    if queues is None:
        return None
    waiting = dead = 0
    for targets in queues.values():
        for states in targets.values():
            waiting += sum(states.get(s, 0) for s in WAITING_STATES)
            dead += states.get("dead", 0)
    return waiting, dead


def _destination() -> dict[str, Any]:
    return {"reachable": None, "since": None, "reason": "", "last_forwarded": None}


def _drive() -> dict[str, Any]:
    return {"present": None, "medium": None, "blank": None, "read_only": None, "busy": None, "since": None,
            "last": "", "progress": None}


class StateObserver:
    """Folds events into the snapshot; writes state.json. Thread-safe: events are folded by its own
    thread (start/stop) or, when not started, by sync() in the caller's."""

    def __init__(self, events: EventBus, buffer_dir: Path, destinations: list[str],
                 printer: str | None = None, drives: Iterable[str] = ()):
        self.events = events
        self.path = snapshot_path(buffer_dir)
        now = time.time()
        self.state: dict[str, Any] = {
            "pid": os.getpid(),
            "started": now,
            "written": now,
            "destinations": {d: _destination() for d in destinations},
            "printer": None if printer is None else {"name": printer, "status": None, "info": "",
                                                     "since": None},
            "queues": None,
            "queues_at": None,
            "disk": {"free_bytes": None, "total_bytes": None, "reserve_bytes": None, "below_reserve": None,
                     "at": None, "last_full": None, "last_full_detail": ""},
            "last_received": {"at": None, "source": ""},
            "last_forwarded": {"at": None, "target": ""},
            "counts": {"received": 0, "refused": 0, "forwarded": 0, "dead_lettered": 0},
            "associations": {"open": 0, "accepted": 0, "refused": 0, "last_refused": None},
            "media": {d: _drive() for d in drives},
            "capture": {"signal": None, "width": 0, "height": 0, "fps": 0.0, "since": None, "recording": None,
                        "stored": 0, "last": None, "last_failed": None},
            "worklist": {"items": None, "source": None, "refreshed": None, "failed": None, "current": None},
            "mpps": {"last_sent": None, "failing": None},
            "config_problems": [],
        }
        self._lock = threading.RLock()
        self._dirty = False
        # Larger than the default: a C-STORE burst's "received" must not push a destination's
        # "down" (or a sync's barrier) out before this thread drains it.
        self._sub = events.subscribe(maxsize=10000, kinds=FOLDED)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-snapshot", daemon=True)

    # -- readers -----------------------------------------------------------------------------------
    def get_status(self, objects: Iterable[str] | None = None) -> dict[str, Any]:
        """The snapshot as plain data (a copy): every object, or only those named
        (`get_status(["destinations", "queues"])`; an unknown name answers None)."""
        with self._lock:
            if objects is None:
                return copy.deepcopy(self.state)
            return {name: copy.deepcopy(self.state.get(name)) for name in objects}

    # -- running -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Write the first snapshot and follow events from now on."""
        with self._lock:
            self._write()
        self._thread.start()

    def stop(self) -> None:
        """Write a last snapshot and stop following events."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.events.unsubscribe(self._sub)
        with self._lock:
            self._drain()
            self._write()

    def sync(self, timeout: float = 2.0) -> bool:
        """Fold every event published before this call, then write the snapshot if anything
        changed. The housekeeping tick calls it after publishing its counts, so that the STATUS
        line it sends next reads them. False when the fold did not catch up within `timeout`."""
        caught_up = True
        if self._thread.is_alive():
            barrier = threading.Event()
            try:
                self._sub.put(barrier, timeout=timeout)  # FIFO: set once all before it are folded
                caught_up = barrier.wait(timeout)
            except queue.Full:
                caught_up = False
        with self._lock:
            if not self._thread.is_alive() and self._drain():
                self._dirty = True
            if self._dirty:
                self._write()
        return caught_up

    # -- the fold ----------------------------------------------------------------------------------
    def apply(self, ev: Event) -> bool:
        """Fold one event into the snapshot. True when a fact the operator reads at once changed
        (a destination's reachability, the printer's status): the snapshot is written now. Other
        changes are written at the next sync()."""
        with self._lock:
            return self._fold(ev)

    def _fold(self, ev: Event) -> bool:
        d, s, kind = ev.data, self.state, ev.kind
        if kind in (DESTINATION_DOWN, DESTINATION_STILL_DOWN, DESTINATION_UP, FORWARDED) and "target" in d:
            entry = s["destinations"].setdefault(d["target"], _destination())
            if kind in (DESTINATION_DOWN, DESTINATION_STILL_DOWN):
                changed = entry["reachable"] is not False or entry["reason"] != d.get("reason", "")
                if entry["reachable"] is not False:
                    entry["since"] = ev.at
                entry["reachable"], entry["reason"] = False, d.get("reason", "")
                return changed
            if entry["reachable"] is not True:
                entry["since"] = ev.at
            entry["reachable"], entry["reason"] = True, ""
            if kind == FORWARDED:
                entry["last_forwarded"] = ev.at
                s["last_forwarded"] = {"at": ev.at, "target": d["target"]}
                s["counts"]["forwarded"] += int(d.get("count", 0))
            return True
        if kind == CONFIG_PROBLEM:
            # Read at once: the operator looks for it right after a start that went wrong.
            problems = s["config_problems"]
            problems.append({"key": d.get("key", ""), "detail": d.get("detail", ""), "at": ev.at})
            del problems[:-CONFIG_PROBLEMS_KEPT]
            return True
        if kind == PRINTER_STATUS_CHANGED:
            if s["printer"] is None:
                return False
            s["printer"].update(status=d.get("status"), info=d.get("info", ""), since=ev.at)
            return True
        if kind in MEDIA_KINDS:
            return self._fold_media(ev)
        if kind in CAPTURE_KINDS:
            return self._fold_capture(ev)
        if kind not in FOLDED:
            return False
        self._dirty = True
        if kind == RECEIVED:
            s["last_received"] = {"at": ev.at, "source": d.get("source", "")}
            s["counts"]["received"] += 1
        elif kind == STORE_REFUSED:
            s["counts"]["refused"] += 1
        elif kind == DEAD_LETTERED:
            s["counts"]["dead_lettered"] += 1
        elif kind == QUEUE_DEPTHS:
            queues: dict[str, dict[str, dict[str, int]]] = {}
            for job_kind, target, state, n in d.get("counts", ()):
                if state in QUEUE_STATES and n:
                    per = queues.setdefault(job_kind, {}).setdefault(target, dict.fromkeys(QUEUE_STATES, 0))
                    per[state] += n
            s["queues"], s["queues_at"] = queues, ev.at
        elif kind == DISK_SPACE:
            s["disk"].update(free_bytes=d["free_bytes"], total_bytes=d["total_bytes"],
                             reserve_bytes=d["reserve_bytes"], at=ev.at)
            self._below_reserve()
        elif kind == EVICTED:
            s["disk"].update(free_bytes=d["free_bytes"], at=ev.at)
            self._below_reserve()
        elif kind == DISK_FULL:
            s["disk"].update(last_full=ev.at, last_full_detail=d.get("detail", ""))
        elif kind == ASSOCIATION_OPENED:
            s["associations"]["open"] += 1
            s["associations"]["accepted"] += 1
        elif kind == ASSOCIATION_CLOSED:
            # An opening lost to a full queue must not leave a negative count.
            s["associations"]["open"] = max(0, s["associations"]["open"] - 1)
        elif kind == ASSOCIATION_REFUSED:
            s["associations"]["refused"] += 1
            s["associations"]["last_refused"] = {
                "at": ev.at, **{k: d.get(k) for k in ("calling_ae", "called_ae", "peer", "reason", "result",
                                                      "source", "diagnostic")}}
        return False

    def _fold_capture(self, ev: Event) -> bool:
        d, kind = ev.data, ev.kind
        cap, wl = self.state["capture"], self.state["worklist"]
        if kind == CAPTURE_SIGNAL:
            cap.update(signal=d["state"] if d["state"] != "format" else "up", width=d["width"],
                       height=d["height"], fps=d["fps"], since=ev.at)
        elif kind == CAPTURE_CLIP_STARTED:
            cap["recording"] = {"since": ev.at, "seconds": d["seconds"], "procedure": d["procedure"]}
        elif kind == CAPTURE_STORED:
            cap["stored"] += 1
            cap["last"] = {"at": ev.at, **{k: d[k] for k in ("what", "sop_uid", "procedure", "scheduled",
                                                                "frames", "dropped", "note")}}
            if d["what"] == "clip":
                cap["recording"] = None
        elif kind == CAPTURE_FAILED:
            cap["last_failed"] = {"at": ev.at, "what": d["what"], "reason": d["reason"]}
            if d["what"] == "clip":
                cap["recording"] = None
        elif kind == WORKLIST_REFRESHED:
            wl.update(items=d["items"], source=d["source"], refreshed=d["at"])
            if d["source"] == "scp":
                wl["failed"] = None
        elif kind == WORKLIST_FAILED:
            wl["failed"] = {"at": ev.at, "reason": d["reason"], "using_cache_from": d["using_cache_from"] or None}
        elif kind == MPPS_SENT:
            self.state["mpps"] = {"last_sent": {"at": ev.at, "step": d["step"], "status": d["status"]},
                                  "failing": None}
        elif kind == MPPS_FAILED:
            m = self.state["mpps"]
            since = (m.get("failing") or {}).get("since") or ev.at
            m["failing"] = {"since": since, "at": ev.at, "step": d["step"], "reason": d["reason"],
                            "attempt": d["attempt"], "dead": d["dead"]}
        elif kind == PROCEDURE_SELECTED:
            wl["current"] = None if not d["key"] else {
                "key": d["key"], "patient_id": d["patient_id"], "scheduled": d["scheduled"], "how": d["how"],
                "at": ev.at}
        return True

    def _fold_media(self, ev: Event) -> bool:
        # A drive's medium and what the box does with it are read at once (the panel's "busy").
        d, kind = ev.data, ev.kind
        entry = self.state["media"].setdefault(d["drive"], _drive())
        if kind == MEDIA_INSERTED:
            entry.update(present=True, medium=d["medium"], blank=d["blank"], read_only=d["read_only"],
                         busy=None, since=ev.at, last="")
        elif kind == MEDIA_WATCHING:
            if entry["present"] is None:  # an insert folded before (a medium in at start) stands
                entry.update(present=False, since=ev.at)
        elif kind == MEDIA_REMOVED:
            # `last` stays: what became of the medium that just left is what the operator asks.
            entry.update(present=False, medium=None, blank=None, read_only=None, busy=None, since=ev.at,
                         progress=None)
        elif kind == MEDIA_IMPORT_QUEUED:
            entry.update(busy="importing", since=ev.at, last=f"importing as MEDIA:{d['label']}")
        elif kind == MEDIA_IMPORT_DONE:
            entry.update(busy=None, since=ev.at,
                         last=("imported: " if d["ok"] else "imported, not every file: " if d.get("read", True)
                               else "import failed: ") + d.get("detail", ""))
        elif kind == MEDIA_EXPORT_QUEUED:
            entry.update(busy="queued-export", since=ev.at,
                         last=f"rule {d['rule']} queued {d['studies']} studies")
        elif kind == MEDIA_NOTHING_TO_EXPORT:
            entry.update(last=f"nothing to export: {d['reason']}")
        elif kind == MEDIA_FAULT:
            entry.update(busy=None, last=f"{d['action']} failed: {d['detail']}")
        elif kind == EXPORT_PROGRESS:
            # Throttled at the source (export.PROGRESS_EVERY_S): written at once, as the rest here.
            entry.update(progress={"job_id": d["job_id"], "done_bytes": d["done_bytes"],
                                   "total_bytes": d["total_bytes"], "at": ev.at})
        elif kind == EXPORT_STARTED:
            entry.update(busy="writing", since=ev.at, last=f"writing export job {d['job_id']}"
                         + (f" (part {d['part']} of {d['of']})" if d["of"] > 1 else ""),
                         progress={"job_id": d["job_id"], "done_bytes": 0, "total_bytes": 0, "at": ev.at})
        elif kind == EXPORT_WRITTEN:
            entry.update(busy="verifying", since=ev.at, last=f"verifying {d['volume_id']}")
        elif kind == EXPORT_VERIFIED:
            entry.update(busy=None, since=ev.at, last=f"export job {d['job_id']} verified as {d['volume_id']}",
                         progress=None)
        elif kind == EXPORT_FAILED:
            entry.update(busy=None, since=ev.at, last=f"export job {d['job_id']} failed: {d['reason']}",
                         progress=None)
        return True

    def _below_reserve(self) -> None:
        disk = self.state["disk"]
        if disk["free_bytes"] is not None and disk["reserve_bytes"] is not None:
            disk["below_reserve"] = disk["free_bytes"] < disk["reserve_bytes"]

    def _drain(self) -> bool:
        """Fold what is queued (caller holds the lock). True when it must be written now."""
        urgent = False
        while True:
            try:
                item = self._sub.get_nowait()
            except queue.Empty:
                return urgent
            if isinstance(item, threading.Event):
                item.set()
            else:
                urgent = self._fold(item) or urgent

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._sub.get(timeout=0.5)
            except queue.Empty:
                continue
            if not isinstance(first, threading.Event):
                # A burst (C-STOREs arriving) is folded at once: one wake-up of this thread per
                # LINGER_S, not per event (gateway/events.py Subscription.take says why).
                time.sleep(LINGER_S)
            with self._lock:
                # A burst of events (a batch forwarded) is folded, and written, once.
                if isinstance(first, threading.Event):
                    urgent = False
                    barrier = first
                else:
                    urgent, barrier = self._fold(first), None
                urgent = self._drain() or urgent
                if urgent:
                    self._write()
            if barrier is not None:
                barrier.set()

    def _write(self) -> None:
        """Caller holds the lock."""
        self.state["written"] = time.time()
        self._dirty = False
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.state))
            os.replace(tmp, self.path)
        except OSError as exc:
            # A full disk must not stop the service; status then shows the last snapshot.
            log.warning("cannot write the status snapshot %s: %s", self.path, exc)
