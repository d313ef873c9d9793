"""One in-process event stream: services publish what happens, observers (panel, logs, metrics) watch.

Publishing never blocks a DICOM handler: each observer has a bounded queue and loses the oldest
events if it falls behind, because a slow LCD must never stall a C-STORE.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str  # e.g. "received", "forwarded", "forward-failed", "dead-lettered", "committed"
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class EventBus:
    def __init__(self) -> None:
        self._subs: list[queue.Queue[Event]] = []
        self._lock = threading.Lock()

    def subscribe(self, maxsize: int = 1000) -> "queue.Queue[Event]":
        q: queue.Queue[Event] = queue.Queue(maxsize=maxsize)
        with self._lock:
            self._subs.append(q)
        return q

    def unsubscribe(self, q: "queue.Queue[Event]") -> None:
        with self._lock:
            if q in self._subs:
                self._subs.remove(q)

    def publish(self, kind: str, **data: Any) -> None:
        ev = Event(kind, data)
        with self._lock:
            subs = list(self._subs)
        for q in subs:
            while True:
                try:
                    q.put_nowait(ev)
                    break
                except queue.Full:
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass
