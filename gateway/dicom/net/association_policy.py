"""Who may associate, for how long, and how the sockets behave: the listener's admission rules.

- Calling AE titles not in the config are rejected at association (unless the config allows them);
  a peer whose `host` is given in the config is admitted only from that host. Every refusal is an
  A-ASSOCIATE-RJ with its PS3.8 9.3.4 reason, never a bare abort, and logs the title as received.
- AE titles are compared normalised (identity.normalise_ae: up to the first NUL, spaces stripped),
  the same on the fast path and on pynetdicom's.
- The association cap counts only associations that finished negotiating. pynetdicom counts every
  connection, so a dozen sockets that send three bytes and stall would lock real modalities out;
  here they get `handshake_s` to finish the A-ASSOCIATE exchange and are dropped after it.
- TCP_NODELAY on every socket: DICOM is request/response, and Nagle plus delayed ACK cost ~40 ms
  per object on loopback (../shared/PEERS.md).
- A session timer aborts an association that outlives `session_s` (seed statement: 60 min).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time

from pynetdicom import evt

from gateway.config import Config, PeerSection
from gateway.dicom.net.association_events import AssociationEvents
from gateway.dicom.net.pynetdicom_patches import guard_association, raw_socket, reject_in_handler, request_primitive
from gateway.identity import escaped_ae, normalise_ae

log = logging.getLogger("gateway.dicom.association")

# A-ASSOCIATE-RJ (result, source, reason): PS3.8 9.3.4
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # rejected-permanent, service-user, calling AE not recognised
REJECT_CALLED_AE = (0x01, 0x01, 0x07)  # rejected-permanent, service-user, called AE not recognised
REJECT_LOCAL_LIMIT = (0x02, 0x03, 0x02)  # rejected-transient, service-provider (presentation), local-limit-exceeded

# A peer configured by host name is resolved at most this often (a DHCP-addressed modality moves).
_RESOLVE_TTL_S = 60.0


def _address(text: str):
    address = ipaddress.ip_address(text.split("%", 1)[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


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


class AssociationPolicy:
    """`observed`: where refusals decided on pynetdicom's path are reported (the acceptor reports
    its own); a silent AssociationEvents when not given."""

    def __init__(self, config: Config, called_titles: list[str], observed: AssociationEvents | None = None):
        self.config = config
        self.observed = observed if observed is not None else AssociationEvents(None)
        self.called_titles = {t.strip() for t in called_titles}
        self._lock = threading.Lock()
        self._admit_lock = threading.Lock()
        self._established: set[int] = set()
        self._session_timers: dict[int, threading.Timer] = {}
        self._resolved: dict[str, tuple[float, frozenset]] = {}

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
        # Input must never kill a pynetdicom thread (issue 14): see pynetdicom_patches (P5, P6).
        guard_association(event.assoc)
        tune_socket(raw_socket(event.assoc), self.config.ae.tcp_nodelay, self.config.timers.handshake_s)

    def refusal(self, calling: str, called: str, host: str, calling_raw: bytes | str | None = None,
                called_raw: bytes | str | None = None) -> tuple[int, int, int] | None:
        """Why the titles or the host refuse this association (A-ASSOCIATE-RJ result, source,
        reason; PS3.8 9.3.4: called AE not recognised 1/1/7, calling AE not recognised 1/1/3), or
        None. `calling`/`called` normalised; the raw titles, as received, go into the log."""
        shown_calling = escaped_ae(calling_raw if calling_raw is not None else calling)
        if called not in self.called_titles:
            log.warning("rejected association from %s (%s): called AE title %s is not served here "
                        "(calling AE title %s)", calling, host,
                        escaped_ae(called_raw if called_raw is not None else called), shown_calling)
            return REJECT_CALLED_AE
        peer = self.config.peer_by_ae(calling) if calling else None
        if peer is None and not (calling and self.config.ae.accept_unknown_callers):
            log.warning("rejected association from %s (%s): calling AE title %s is not configured as a peer",
                        calling, host, shown_calling)
            return REJECT_CALLING_AE
        if peer is not None and not self._host_matches(peer, host):
            # Same reason as an unknown title: PS3.8 has no "wrong host", and to this AE a known
            # title from an unexpected address is not the peer it knows.
            log.warning("rejected association from %s (%s): calling AE title %s is configured for host %s "
                        "only (peers.*.host)", calling, host, shown_calling, peer.host)
            return REJECT_CALLING_AE
        return None

    def admission(self, calling: str, called: str, host: str, calling_raw: bytes | str | None = None,
                  called_raw: bytes | str | None = None) -> tuple[int, int, int] | None:
        """refusal(), then the association cap (rejected-transient, local-limit-exceeded)."""
        reason = self.refusal(calling, called, host, calling_raw, called_raw)
        if reason is not None:
            return reason
        if self.established_count >= self.config.ae.max_associations:
            log.warning("rejected association from %s (%s): %d associations already open (ae.max_associations)",
                        calling, host, self.config.ae.max_associations)
            return REJECT_LOCAL_LIMIT
        return None

    def _host_matches(self, peer: PeerSection, host: str) -> bool:
        if "host" not in peer.model_fields_set:
            return True  # no host given: the AE title alone identifies the peer
        try:
            remote = _address(host)
        except ValueError:
            return False
        return remote in self._peer_addresses(peer.host)

    def _peer_addresses(self, name: str) -> frozenset:
        try:
            return frozenset((_address(name),))
        except ValueError:
            pass
        now = time.monotonic()
        with self._lock:
            cached = self._resolved.get(name)
        if cached is not None and now - cached[0] < _RESOLVE_TTL_S:
            return cached[1]
        try:
            found = frozenset(_address(info[4][0]) for info in socket.getaddrinfo(name, None))
        except (OSError, ValueError) as exc:
            log.warning("peer host %s does not resolve: %s", name, exc)
            found = frozenset()
        with self._lock:
            self._resolved[name] = (now, found)
        return found

    def try_admit(self, key: object, calling: str, called: str, host: str, calling_raw: bytes | None = None,
                  called_raw: bytes | None = None) -> tuple[int, int, int] | None:
        """admission() and, if admitted, count the association as established in one step (the
        storage path negotiates on its own thread; two requests must not both take the last slot)."""
        with self._admit_lock:
            reason = self.admission(calling, called, host, calling_raw, called_raw)
            if reason is None:
                with self._lock:
                    self._established.add(id(key))
            return reason

    def release(self, key: object) -> None:
        with self._lock:
            self._established.discard(id(key))

    def _on_requested(self, event) -> None:
        assoc = event.assoc
        # requestor.ae_title is filled in only after negotiation, from the request primitive:
        # normalise the titles there, so the print SCP, the store handler and the logs see the
        # same title as the fast path would.
        primitive = request_primitive(assoc)
        calling_raw, called_raw = str(primitive.calling_ae_title), str(primitive.called_ae_title)
        calling, called = normalise_ae(calling_raw), normalise_ae(called_raw)
        reason = self.admission(calling, called, assoc.requestor.address, calling_raw, called_raw)
        if reason is not None:
            # Told before the answer: _reject waits for the DUL to go idle, which can take until the
            # peer closes (or the ARTIM timer), and the refusal is decided now.
            self.observed.refused(calling, called, str(assoc.requestor.address), reason)
            self._reject(assoc, reason)
            return
        primitive.calling_ae_title = calling
        primitive.called_ae_title = called

    @staticmethod
    def _reject(assoc, reason: tuple[int, int, int]) -> None:
        reject_in_handler(assoc, reason)

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
