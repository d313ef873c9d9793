"""What the listener tells the event bus about associations: opened, refused, closed.

Both receive paths report here: the acceptor (the fast path's negotiation, and every A-ASSOCIATE-RJ
it sends before a request reaches pynetdicom) calls opened() / refused() / closed() itself; on
pynetdicom's path AssociationPolicy reports its refusals, and handlers() follow establishment and
the connection's close. Payloads: gateway/event_kinds.py (AssociationOpened, AssociationRefused,
AssociationClosed).

Publishing is the bus's offer to bounded queues (gateway/events.py): it never waits for an observer,
so an association is never slowed by who watches it. Nothing here is per C-STORE: one event when an
association opens or is refused, one when it ends.
"""

from __future__ import annotations

import threading
import time

from pynetdicom import evt

from gateway.event_kinds import AssociationClosed, AssociationOpened, AssociationRefused
from gateway.dicom.net.pynetdicom_patches import request_primitive
from gateway.events import EventBus

# Who serves an accepted association (AssociationOpened.path).
STORAGE_PATH = "storage"
PYNETDICOM_PATH = "pynetdicom"

# A-ASSOCIATE-RJ (source, diagnostic) in words, PS3.8 9.3.4 (Table 9-21).
_REASONS = {
    (0x01, 0x01): "no reason given",
    (0x01, 0x02): "application context name not supported",
    (0x01, 0x03): "calling AE title not recognised",
    (0x01, 0x07): "called AE title not recognised",
    (0x02, 0x01): "no reason given",
    (0x02, 0x02): "protocol version not supported",
    (0x03, 0x01): "temporary congestion",
    (0x03, 0x02): "local limit exceeded",
}


def reject_reason(source: int, diagnostic: int) -> str:
    """The words for an A-ASSOCIATE-RJ's (source, reason/diag.) pair, PS3.8 9.3.4; unknown pairs
    are named by their codes."""
    return _REASONS.get((source, diagnostic), f"source {source} reason {diagnostic}")


class AssociationEvents:
    """Publishes association events to `events` (None: publishes nothing, for a listener built
    without a bus). Thread-safe: each association's thread reports its own association.

    `key`: any object naming one association for its lifetime (the fast path's own key, a
    pynetdicom Association); opened() and closed() must be given the same one."""

    def __init__(self, events: EventBus | None):
        self.events = events
        self._lock = threading.Lock()
        # id(key) -> (payload of the opening, monotonic start)
        self._open: dict[int, tuple[AssociationOpened, float]] = {}

    def opened(self, key: object, calling_ae: str, called_ae: str, peer: str, path: str) -> None:
        """An A-ASSOCIATE-AC was sent for `key`."""
        ev = AssociationOpened(calling_ae=calling_ae, called_ae=called_ae, peer=peer, path=path)
        with self._lock:
            self._open[id(key)] = (ev, time.monotonic())
        self._publish(ev)

    def refused(self, calling_ae: str, called_ae: str, peer: str, reject: tuple[int, int, int]) -> None:
        """An A-ASSOCIATE-RJ `reject` = (result, source, diagnostic) was sent (PS3.8 9.3.4)."""
        result, source, diagnostic = reject
        self._publish(AssociationRefused(calling_ae=calling_ae, called_ae=called_ae, peer=peer, result=result,
                                         source=source, diagnostic=diagnostic,
                                         reason=reject_reason(source, diagnostic)))

    def closed(self, key: object, how: str) -> None:
        """The association `key` ended: `how` "released" or "aborted". Nothing for a key that was
        never opened (or already closed), so a path may report its end without knowing whether it
        got that far."""
        with self._lock:
            entry = self._open.pop(id(key), None)
        if entry is None:
            return
        ev, started = entry
        self._publish(AssociationClosed(calling_ae=ev.calling_ae, called_ae=ev.called_ae, peer=ev.peer,
                                        path=ev.path, how=how, seconds=max(0.0, time.monotonic() - started)))

    @property
    def open_count(self) -> int:
        """Associations opened and not yet closed."""
        with self._lock:
            return len(self._open)

    # -- pynetdicom's path ---------------------------------------------------------------------
    def handlers(self) -> list[tuple]:
        """pynetdicom event handlers: EVT_ESTABLISHED opens, EVT_CONN_CLOSE closes (released when
        pynetdicom answered an A-RELEASE-RQ, aborted otherwise). Refusals on this path are
        reported by AssociationPolicy, which decides them."""
        return [(evt.EVT_ESTABLISHED, self._on_established), (evt.EVT_CONN_CLOSE, self._on_conn_close)]

    def _on_established(self, event) -> None:
        assoc = event.assoc
        # The titles as AssociationPolicy._on_requested normalised them in the request.
        rq = request_primitive(assoc)
        self.opened(assoc, str(rq.calling_ae_title), str(rq.called_ae_title), str(assoc.requestor.address),
                    PYNETDICOM_PATH)

    def _on_conn_close(self, event) -> None:
        self.closed(event.assoc, "released" if event.assoc.is_released else "aborted")

    def _publish(self, ev) -> None:
        if self.events is not None:
            self.events.publish(ev)
