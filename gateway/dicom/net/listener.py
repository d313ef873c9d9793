"""The listening AE: one port, one AE title, every service the appliance offers as SCP.

The port belongs to Acceptor, which serves Storage/Verification associations itself and hands
every other association to a pynetdicom server that never listens on a port of its own.
"""

from __future__ import annotations

import logging

from pathlib import Path

from pynetdicom import AE

from gateway.config import Config
from gateway.events import EventBus
from gateway.dicom.net import pynetdicom_patches, receive_spool
from gateway.dicom.net.acceptor import Acceptor
from gateway.dicom.net.association_events import AssociationEvents
from gateway.dicom.net.association_policy import AssociationPolicy
from gateway.dicom.net.service_role import ServiceRole
from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from gateway.logs import OneLine

log = logging.getLogger("gateway.dicom.listener")

# Acceptor limits the connections; AssociationPolicy caps the established associations.
_UNLIMITED = 10_000


def configure_pynetdicom(incoming_dir, reserve_check=None, max_pdu: int = 0) -> None:
    """Process-wide pynetdicom settings. Received data sets stream to a spool file in the
    buffer's incoming/ folder (same file system as the store, so ingest is a rename), and stored
    files are sent from disk as they are, never decoded."""
    receive_spool.configure(Path(incoming_dir), reserve_check)
    # Every change to pynetdicom (chunked receive into receive_spool's SpoolFile, chunked send,
    # the PDU limit, lenient AE titles, ...) is listed and tested there.
    pynetdicom_patches.apply(max_pdu)
    # pynetdicom logs the input errors it handles (a PDU it cannot decode, then an A-ABORT) with
    # a traceback: one line each is what an operator needs, and a traceback means a fault here.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("pynetdicom") and isinstance(logger, logging.Logger):
            if not any(isinstance(f, OneLine) for f in logger.filters):
                logger.addFilter(OneLine())


class Listener:
    """`roles`: the services behind this port (net/service_role.py), in the order their contexts
    are offered; their handlers run after the association policy's own.
    `store`: StoreSCP.store, for the fast path, which then serves every association proposing only
    contexts marked fast_path (None: pynetdicom serves all).
    `head_coercion`: StoreSCP.head_coercion, the fast path's coercion in the receive stream.
    `events`: the bus that hears of associations opened, refused and closed on both paths
    (association_events.py); None: nobody is told."""

    def __init__(self, config: Config, roles: list[ServiceRole], store=None, events: EventBus | None = None,
                 head_coercion=None):
        self.config = config
        called_titles = [t for role in roles for t in role.called_titles()]
        self.observed = AssociationEvents(events)
        self.policy = AssociationPolicy(config, [config.ae.title, *called_titles], self.observed)
        ae = AE(ae_title=config.ae.title)
        ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        t = config.timers
        ae.acse_timeout = t.handshake_s
        ae.dimse_timeout = t.inactivity_s
        ae.network_timeout = t.inactivity_s
        ae.maximum_pdu_size = config.ae.max_pdu
        ae.maximum_associations = _UNLIMITED
        # Called AE titles are checked by AssociationPolicy, which knows every title served here.
        ae.require_called_aet = False
        handlers = self.policy.handlers() + self.observed.handlers()
        fast: set[str] = set()
        for role in roles:
            for c in role.contexts():
                if c.transfer_syntaxes is None:
                    ae.add_supported_context(c.abstract_syntax, scu_role=c.scu_role, scp_role=c.scp_role)
                else:
                    ae.add_supported_context(c.abstract_syntax, list(c.transfer_syntaxes),
                                             scu_role=c.scu_role, scp_role=c.scp_role)
                if c.fast_path:
                    fast.add(c.abstract_syntax)
            handlers += role.handlers()
        self.ae = ae
        self.fast_abstracts = frozenset(fast)
        self._handlers = handlers
        self._store = store
        self._head_coercion = head_coercion
        self._server = None
        self._acceptor = None

    def start(self, accept: bool = True) -> None:
        """Bind and listen (OSError when the port cannot be had); serve associations only when
        `accept` (otherwise call accept() later: the service recovers its buffer in between)."""
        c = self.config.ae
        self._server = pynetdicom_patches.HandOffServer(self.ae, (c.bind, c.port), self.ae.ae_title, self.ae.supported_contexts,
                                      evt_handlers=self._handlers)
        fast = self.fast_abstracts if self._store is not None else frozenset()
        self._acceptor = Acceptor(self.config, self.policy, self.ae.supported_contexts, fast,
                                  self._store, self._server.hand_off, self._head_coercion)
        try:
            self._acceptor.start(accept=False)
        except BaseException:
            self._server = None
            raise
        if accept:
            self.accept()

    def accept(self) -> None:
        """Start serving connections on the bound port."""
        c = self.config.ae
        self._acceptor.accept()
        log.info("listening as %s on %s:%d", c.title, c.bind, c.port)

    def stop(self, timeout: float = 10.0) -> None:
        """`timeout`: how long associations in progress may take to finish what they are doing."""
        if self._server is None:
            return
        server, self._server = self._server, None
        # Closing the port does not end associations in progress: they would call the handlers
        # after the buffer is closed. End them and wait until their handlers returned; an object
        # not yet acknowledged is sent again.
        self._acceptor.stop(timeout)
        server.server_close()
        active = server.active_associations
        for assoc in active:
            assoc.abort()
        for assoc in active:
            assoc.join(min(timeout, 5.0))  # aborted: they end at once, or never
