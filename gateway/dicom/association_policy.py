"""Who may associate, for how long, and how the sockets behave: the listener's admission rules.

- Calling AE titles not in the config are rejected at association (unless the config allows them).
- The association cap counts only associations that finished negotiating. pynetdicom counts every
  connection, so a dozen sockets that send three bytes and stall would lock real modalities out;
  here they get `handshake_s` to finish the A-ASSOCIATE exchange and are dropped after it.
- TCP_NODELAY on every socket: DICOM is request/response, and Nagle plus delayed ACK cost ~40 ms
  per object on loopback (PEERS.md).
- A session timer aborts an association that outlives `session_s` (seed statement: 60 min).
"""

from __future__ import annotations

import logging
import socket
import threading

from pynetdicom import evt

from gateway.config import Config

log = logging.getLogger("gateway.dicom.association")

# A-ASSOCIATE-RJ (result, source, reason): PS3.8 9.3.4
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # rejected-permanent, service-user, calling AE not recognised
REJECT_CALLED_AE = (0x01, 0x01, 0x07)  # rejected-permanent, service-user, called AE not recognised
REJECT_LOCAL_LIMIT = (0x02, 0x03, 0x02)  # rejected-transient, service-provider (presentation), local-limit-exceeded


def tune_socket(sock: socket.socket | None, nodelay: bool, timeout: float | None = None) -> None:
    if sock is None:
        return
    try:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if timeout is not None:
            sock.settimeout(timeout)
    except OSError:
        pass  # the peer is already gone; the DUL will notice


def raw_socket(assoc) -> socket.socket | None:
    wrapper = getattr(assoc.dul, "socket", None)
    return getattr(wrapper, "socket", None) if wrapper is not None else None


class AssociationPolicy:
    def __init__(self, config: Config, called_titles: list[str]):
        self.config = config
        self.called_titles = {t.strip() for t in called_titles}
        self._lock = threading.Lock()
        self._admit_lock = threading.Lock()
        self._established: set[int] = set()
        self._session_timers: dict[int, threading.Timer] = {}

    @property
    def established_count(self) -> int:
        with self._lock:
            return len(self._established)

    def handlers(self) -> list[tuple]:
        return [
            (evt.EVT_CONN_OPEN, self._on_conn_open),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]

    def _on_conn_open(self, event) -> None:
        tune_socket(raw_socket(event.assoc), self.config.ae.tcp_nodelay, self.config.timers.handshake_s)

    def admission(self, calling: str, called: str, host: str) -> tuple[int, int, int] | None:
        """Why an association request must be rejected (A-ASSOCIATE-RJ result, source, reason),
        or None. Logs the reason."""
        if called not in self.called_titles:
            log.warning("rejected association from %s (%s): called AE title %r is not served here",
                        calling, host, called)
            return REJECT_CALLED_AE
        if not self.config.ae.accept_unknown_callers and self.config.peer_by_ae(calling) is None:
            log.warning("rejected association from %s (%s): calling AE title not configured as a peer",
                        calling, host)
            return REJECT_CALLING_AE
        if self.established_count >= self.config.ae.max_associations:
            log.warning("rejected association from %s (%s): %d associations already open (ae.max_associations)",
                        calling, host, self.config.ae.max_associations)
            return REJECT_LOCAL_LIMIT
        return None

    def try_admit(self, key: object, calling: str, called: str, host: str) -> tuple[int, int, int] | None:
        """admission() and, if admitted, count the association as established in one step (the
        storage path negotiates on its own thread; two requests must not both take the last slot)."""
        with self._admit_lock:
            reason = self.admission(calling, called, host)
            if reason is None:
                with self._lock:
                    self._established.add(id(key))
            return reason

    def release(self, key: object) -> None:
        with self._lock:
            self._established.discard(id(key))

    def _on_requested(self, event) -> None:
        assoc = event.assoc
        # requestor.ae_title is filled in only after negotiation; the request primitive has it now.
        calling = str(assoc.requestor.primitive.calling_ae_title).strip()
        called = str(assoc.requestor.primitive.called_ae_title).strip()
        reason = self.admission(calling, called, assoc.requestor.address)
        if reason is not None:
            self._reject(assoc, reason)

    @staticmethod
    def _reject(assoc, reason: tuple[int, int, int]) -> None:
        assoc.acse.send_reject(*reason)
        # As pynetdicom does for its own rejections: wait until the DUL has sent the A-ASSOCIATE-RJ
        # and gone idle, otherwise the socket is closed under it and the peer sees an abort.
        assoc.kill()

    def _on_established(self, event) -> None:
        assoc = event.assoc
        # Past negotiation, the socket may idle as long as the inactivity timer allows.
        tune_socket(raw_socket(assoc), False, self.config.timers.inactivity_s)
        timer = threading.Timer(self.config.timers.session_s, self._session_expired, (assoc,))
        timer.daemon = True
        with self._lock:
            self._established.add(id(assoc))
            self._session_timers[id(assoc)] = timer
        timer.start()

    def _session_expired(self, assoc) -> None:
        log.warning("aborting association from %s: session timer (%.0f s) expired",
                    assoc.requestor.ae_title, self.config.timers.session_s)
        assoc.abort()

    def _on_closed(self, event) -> None:
        with self._lock:
            self._established.discard(id(event.assoc))
            timer = self._session_timers.pop(id(event.assoc), None)
        if timer is not None:
            timer.cancel()
