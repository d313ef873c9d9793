"""The listening AE: one port, one AE title, every service the appliance offers as SCP.

The port belongs to Acceptor, which serves Storage/Verification associations itself and hands
every other association to a pynetdicom server that never listens on a port of its own.
"""

from __future__ import annotations

import logging

from pathlib import Path

from pynetdicom import AE, register_uid
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from gateway.config import Config
from gateway.dicom.net import pynetdicom_patches, receive_spool
from gateway.dicom.net.acceptor import Acceptor
from gateway.dicom.net.association_policy import AssociationPolicy
from gateway.dicom.sop_classes import ACCEPTED_TRANSFER_SYNTAXES, VERIFICATION, storage_sop_classes
from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

log = logging.getLogger("gateway.dicom.listener")

# Acceptor limits the connections; AssociationPolicy caps the established associations.
_UNLIMITED = 10_000


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            if not record.getMessage().strip() and exc is not None:
                record.msg, record.args = f"{type(exc).__name__}: {exc}", None
            record.exc_info, record.exc_text = None, None
        return True


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
            if not any(isinstance(f, _OneLine) for f in logger.filters):
                logger.addFilter(_OneLine())


def _register_storage(uids) -> None:
    """pynetdicom picks the service for a request by its SOP class and knows no retired or
    private storage class (its handler would never run): register those as storage."""
    for uid in uids:
        if uid_to_service_class(uid) is not StorageServiceClass:
            register_uid(uid, "EdgeStorage_" + uid.replace(".", "_"), StorageServiceClass)


class Listener:
    """`handlers`: pynetdicom (event, handler) pairs of the services behind this port (each role's
    handlers(): echo, store, commitment reports, print), after the policy's own.
    `contexts`: supported contexts besides Verification and the storage classes (those are the
    listener's: the fast path serves them), (abstract syntax, transfer syntaxes, scu_role, scp_role).
    `called_titles`: AE titles besides ae.title that this port answers to (e.g. a print AE).
    `store`: StoreSCP.store, for the Storage/Verification fast path (None: pynetdicom serves all)."""

    def __init__(self, config: Config, handlers: list[tuple], contexts: list[tuple] = (),
                 called_titles: list[str] = (), store=None):
        self.config = config
        self.policy = AssociationPolicy(config, [config.ae.title, *called_titles])
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
        ae.add_supported_context(VERIFICATION)
        self.storage_classes = storage_sop_classes(config.storage.extra_sop_classes)
        _register_storage(self.storage_classes)
        for uid in sorted(self.storage_classes):
            ae.add_supported_context(uid, ACCEPTED_TRANSFER_SYNTAXES)
        for abstract, syntaxes, scu_role, scp_role in contexts:
            ae.add_supported_context(abstract, syntaxes, scu_role=scu_role, scp_role=scp_role)
        self.ae = ae
        self._handlers = self.policy.handlers() + handlers
        self._store = store
        self._server = None
        self._acceptor = None

    def start(self, accept: bool = True) -> None:
        """Bind and listen (OSError when the port cannot be had); serve associations only when
        `accept` (otherwise call accept() later: the service recovers its buffer in between)."""
        c = self.config.ae
        self._server = pynetdicom_patches.HandOffServer(self.ae, (c.bind, c.port), self.ae.ae_title, self.ae.supported_contexts,
                                      evt_handlers=self._handlers)
        fast = self.storage_classes | {VERIFICATION} if self._store is not None else frozenset()
        self._acceptor = Acceptor(self.config, self.policy, self.ae.supported_contexts, frozenset(fast),
                                  self._store, self._server.hand_off)
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
