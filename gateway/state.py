"""What the running service knows and the buffer's index does not: is each destination reachable,
what does the printer say. An observer of the event stream keeps it and writes it as a small JSON
snapshot in the buffer folder, which `dicom-gateway status` reads from another process.

Only live facts are kept here (reachability, the printer's status); counts (backlog, dead letters,
next retry) come from the index itself, so they are right even when no service is running. The
snapshot holds no patient data. It is written atomically (temporary file, then rename) and not
fsynced: it is advice for an operator, rewritten at every change, and a reader that finds it
missing or unreadable says "unknown" rather than failing.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from gateway.events import Event, EventBus

log = logging.getLogger("gateway.state")

SNAPSHOT_NAME = "state.json"


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


class StateObserver:
    """Keeps destination reachability and printer status from events; writes the snapshot."""

    def __init__(self, events: EventBus, buffer_dir: Path, destinations: list[str],
                 printer: str | None = None):
        self.events = events
        self.path = snapshot_path(buffer_dir)
        now = time.time()
        self.state: dict[str, Any] = {
            "pid": os.getpid(),
            "started": now,
            "written": now,
            # reachable: None until the first attempt tells us.
            "destinations": {d: {"reachable": None, "since": None, "reason": "", "last_forwarded": None}
                             for d in destinations},
            "printer": None if printer is None else {"name": printer, "status": None, "info": "",
                                                     "since": None},
        }
        self._sub = events.subscribe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-snapshot", daemon=True)

    def start(self) -> None:
        """Write the first snapshot and follow events from now on."""
        self._write()
        self._thread.start()

    def stop(self) -> None:
        """Write a last snapshot and stop following events."""
        self._stop.set()
        self._thread.join(5)
        self.events.unsubscribe(self._sub)

    def apply(self, ev: Event) -> bool:
        """Fold one event into the state. True when the state changed."""
        d = ev.data
        dests = self.state["destinations"]
        target = d.get("target")
        if ev.kind in ("destination-down", "destination-still-down") and target is not None:
            entry = dests.setdefault(target, {"reachable": None, "since": None, "reason": "",
                                              "last_forwarded": None})
            changed = entry["reachable"] is not False or entry["reason"] != d.get("reason", "")
            if entry["reachable"] is not False:
                entry["since"] = ev.at
            entry["reachable"], entry["reason"] = False, d.get("reason", "")
            return changed
        if ev.kind in ("destination-up", "forwarded") and target is not None:
            entry = dests.setdefault(target, {"reachable": None, "since": None, "reason": "",
                                              "last_forwarded": None})
            if entry["reachable"] is not True:
                entry["since"] = ev.at
            entry["reachable"], entry["reason"] = True, ""
            if ev.kind == "forwarded":
                entry["last_forwarded"] = ev.at
            return True
        if ev.kind == "printer-status-changed" and self.state["printer"] is not None:
            self.state["printer"].update(status=d.get("status"), info=d.get("info", ""), since=ev.at)
            return True
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ev = self._sub.get(timeout=0.5)
            except queue.Empty:
                continue
            changed = self.apply(ev)
            # A burst of events (a batch forwarded) is written once.
            while True:
                try:
                    changed = self.apply(self._sub.get_nowait()) or changed
                except queue.Empty:
                    break
            if changed:
                self._write()
        self._write()

    def _write(self) -> None:
        self.state["written"] = time.time()
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.state))
            os.replace(tmp, self.path)
        except OSError as exc:
            # A full disk must not stop the service; status then shows the last snapshot.
            log.warning("cannot write the status snapshot %s: %s", self.path, exc)
