"""The listening AE: one port, one AE title, every service the appliance offers as SCP.

The port belongs to Acceptor, which serves Storage/Verification associations itself and hands
every other association to a pynetdicom server that never listens on a port of its own.
"""

from __future__ import annotations

import logging

from pathlib import Path

from pynetdicom import AE, _config, dimse_messages, evt, register_uid
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class
from pynetdicom.transport import ThreadedAssociationServer

from gateway.config import Config
from gateway.dicom import pynetdicom_tuning, receive_spool
from gateway.dicom.acceptor import Acceptor
from gateway.dicom.association_policy import AssociationPolicy
from gateway.dicom.echo import handle_echo
from gateway.dicom.sop_classes import (
    ACCEPTED_TRANSFER_SYNTAXES,
    STORAGE_COMMITMENT_PUSH,
    UNCOMPRESSED,
    VERIFICATION,
    storage_sop_classes,
)
from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, lenient_ae_validator

log = logging.getLogger("gateway.dicom.listener")

# Acceptor limits the connections; AssociationPolicy caps the established associations.
_UNLIMITED = 10_000


class _HandOffServer(ThreadedAssociationServer):
    """pynetdicom's server without a socket of its own: Acceptor passes it connections."""

    def server_bind(self) -> None:
        pass

    def server_activate(self) -> None:
        pass

    def hand_off(self, sock, address) -> None:
        # As ThreadedAssociationServer.process_request_thread: starts the Association thread.
        self.finish_request(sock, address)


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
    _config.STORE_RECV_CHUNKED_DATASET = True
    pynetdicom_tuning.apply(max_pdu)
    receive_spool.configure(Path(incoming_dir), reserve_check)
    # See receive_spool: survive a full disk with a status instead of an aborted association.
    dimse_messages.NamedTemporaryFile = receive_spool.SpoolFile
    _config.STORE_SEND_CHUNKED_DATASET = True
    # The buffer keeps every byte as received; a sender's odd-but-parsable UID is the receiver's
    # business to report (A900 from the attribute check), not pynetdicom's to drop the association.
    _config.ENFORCE_UID_CONFORMANCE = False
    # NUL-padded and other odd AE titles reach AssociationPolicy (normalised or rejected with a
    # reason) instead of failing pynetdicom's decoder.
    _config.VALIDATORS["AE"] = lenient_ae_validator
    # pynetdicom logs the input errors it handles (a PDU it cannot decode, then an A-ABORT) with
    # a traceback: one line each is what an operator needs, and a traceback means a fault here.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("pynetdicom") and isinstance(logger, logging.Logger):
            if not any(isinstance(f, _OneLine) for f in logger.filters):
                logger.addFilter(_OneLine())


def _echo_on_its_context(event):
    """C-ECHO, on the Verification context only (PS3.7 9.1.5.1.2): pynetdicom picks the service
    by the command's SOP class, so an echo on a print or storage context would pass otherwise.
    The fast path answers the same (0211)."""
    abstract = str(event.context.abstract_syntax)
    if abstract != VERIFICATION:
        log.warning("refused C-ECHO from %s on presentation context %d (%s): 0x0211",
                    event.assoc.requestor.ae_title, event.context.context_id, abstract)
        return 0x0211
    return handle_echo(event)


def _register_storage(uids) -> None:
    """pynetdicom picks the service for a request by its SOP class and knows no retired or
    private storage class (its handler would never run): register those as storage."""
    for uid in uids:
        if uid_to_service_class(uid) is not StorageServiceClass:
            register_uid(uid, "EdgeStorage_" + uid.replace(".", "_"), StorageServiceClass)


class Listener:
    """`handlers`: pynetdicom (event, handler) pairs of the services behind this port.
    `contexts`: further supported contexts, (abstract syntax, transfer syntaxes, scu_role, scp_role).
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
        # Orthanc (and others) send the commitment N-EVENT-REPORT on a new association and
        # propose the SCP role for it: accept both roles.
        ae.add_supported_context(STORAGE_COMMITMENT_PUSH, list(UNCOMPRESSED[:2]), scu_role=True, scp_role=True)
        for abstract, syntaxes, scu_role, scp_role in contexts:
            ae.add_supported_context(abstract, syntaxes, scu_role=scu_role, scp_role=scp_role)
        self.ae = ae
        self._handlers = self.policy.handlers() + [(evt.EVT_C_ECHO, _echo_on_its_context)] + handlers
        self._store = store
        self._server = None
        self._acceptor = None

    def start(self, accept: bool = True) -> None:
        """Bind and listen (OSError when the port cannot be had); serve associations only when
        `accept` (otherwise call accept() later: the service recovers its buffer in between)."""
        c = self.config.ae
        self._server = _HandOffServer(self.ae, (c.bind, c.port), self.ae.ae_title, self.ae.supported_contexts,
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
