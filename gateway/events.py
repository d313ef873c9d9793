"""One in-process event stream: services publish what happens, observers (state snapshot, panel,
logs, metrics) watch.

The bus is for observers only. Publishing never blocks a DICOM handler: each subscriber has a
bounded queue and loses its oldest events when it falls behind (a slow LCD must never stall a
C-STORE), and `Subscription.dropped` counts what it lost. So nothing that must arrive rides on it:
control (a print job's status for the Print SCU waiting on it, a command from the panel) goes
through explicit callbacks or the command facade (gateway/commands.py), never through the bus.

Event kinds and their payload types are catalogued in gateway/event_kinds.py. Publish a typed
payload, `events.publish(Forwarded(target="pacs", count=3))`; subscribe to the kinds you fold,
`events.subscribe(kinds=(FORWARDED, DESTINATION_DOWN))` (kind names or payload types), so that an
observer of destinations does not receive every C-STORE's "received".
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from gateway.event_kinds import CATALOGUE, Payload


@dataclass(frozen=True)
class Event:
    """One published event. kind: a catalogue kind (gateway/event_kinds.py). data: the payload's
    fields as a plain dict. at: when it was published (seconds since the epoch). payload: the
    typed payload (None only in an Event a test builds by hand)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    payload: Payload | None = None


class Subscription(queue.Queue):
    """One observer's bounded queue of events. kinds: the kinds it receives (None: all).
    dropped: how many events it lost because it was full."""

    def __init__(self, maxsize: int, kinds: frozenset[str] | None):
        super().__init__(maxsize=maxsize)
        self.kinds = kinds
        self.dropped = 0

    def take(self, timeout: float | None, linger: float = 0.0, limit: int = 10_000) -> list[Any]:
        """What is waiting, up to `limit` items: blocks up to `timeout` seconds for the first
        (queue.Empty when none came), then waits `linger` seconds more so that a burst is taken in
        one go. Why: a thread woken per event costs the publisher a GIL hand-off per C-STORE; an
        observer that lingers wakes once per burst (its view lags by `linger`, which no LED, page or
        scrape can tell)."""
        out = [self.get(timeout=timeout)]
        if linger > 0:
            time.sleep(linger)
        while len(out) < limit:
            try:
                out.append(self.get_nowait())
            except queue.Empty:
                break
        return out

    def wants(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds

    def offer(self, ev: Event) -> None:
        """Put without blocking; when full, drop the oldest event to make room."""
        while True:
            try:
                self.put_nowait(ev)
                return
            except queue.Full:
                try:
                    self.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass


def _kind_names(kinds: Iterable[str | type[Payload]]) -> frozenset[str]:
    names = set()
    for k in kinds:
        name = k.KIND if isinstance(k, type) and issubclass(k, Payload) else k
        if name not in CATALOGUE:
            raise ValueError(f"unknown event kind {k!r} (see gateway/event_kinds.py)")
        names.add(name)
    return frozenset(names)


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def subscribe(self, maxsize: int = 1000,
                  kinds: Iterable[str | type[Payload]] | None = None) -> Subscription:
        """A new observer's queue. kinds: only these kinds (names or payload types); None: all."""
        sub = Subscription(maxsize, None if kinds is None else _kind_names(kinds))
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: "queue.Queue[Event]") -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, event: Payload, /) -> None:
        """Tell every observer that wants this kind. `event`: a payload from the catalogue
        (gateway/event_kinds.py); TypeError for anything else, so that a kind nobody catalogued
        cannot reach an observer."""
        if not isinstance(event, Payload):
            raise TypeError(f"publish() takes a payload from gateway/event_kinds.py, not {event!r}")
        ev = Event(event.KIND, event.as_dict(), payload=event)
        with self._lock:
            subs = [s for s in self._subs if s.wants(ev.kind)]
        for sub in subs:
            sub.offer(ev)
