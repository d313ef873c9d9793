"""The listening AE: one port, one AE title, every service the appliance offers as SCP."""

from __future__ import annotations

import logging

from pathlib import Path

from pynetdicom import AE, _config, dimse_messages, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from gateway.config import Config
from gateway.dicom import pynetdicom_tuning, receive_spool
from gateway.dicom.association_policy import AssociationPolicy
from gateway.dicom.echo import handle_echo
from gateway.dicom.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from gateway.dicom.sop_classes import (
    ACCEPTED_TRANSFER_SYNTAXES,
    STORAGE_COMMITMENT_PUSH,
    UNCOMPRESSED,
    VERIFICATION,
)

log = logging.getLogger("gateway.dicom.listener")

# Headroom above ae.max_associations for connections still negotiating; AssociationPolicy enforces
# the real cap on established associations.
_HANDSHAKE_HEADROOM = 64


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


class Listener:
    """`handlers`: pynetdicom (event, handler) pairs of the services behind this port.
    `contexts`: further supported contexts, (abstract syntax, transfer syntaxes, scu_role, scp_role).
    `called_titles`: AE titles besides ae.title that this port answers to (e.g. a print AE)."""

    def __init__(self, config: Config, handlers: list[tuple], contexts: list[tuple] = (),
                 called_titles: list[str] = ()):
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
        ae.maximum_associations = config.ae.max_associations + _HANDSHAKE_HEADROOM
        # Called AE titles are checked by AssociationPolicy, which knows every title served here.
        ae.require_called_aet = False
        ae.add_supported_context(VERIFICATION)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ACCEPTED_TRANSFER_SYNTAXES)
        # Orthanc (and others) send the commitment N-EVENT-REPORT on a new association and
        # propose the SCP role for it: accept both roles.
        ae.add_supported_context(STORAGE_COMMITMENT_PUSH, list(UNCOMPRESSED[:2]), scu_role=True, scp_role=True)
        for abstract, syntaxes, scu_role, scp_role in contexts:
            ae.add_supported_context(abstract, syntaxes, scu_role=scu_role, scp_role=scp_role)
        self.ae = ae
        self._handlers = self.policy.handlers() + [(evt.EVT_C_ECHO, handle_echo)] + handlers
        self._server = None

    def start(self) -> None:
        c = self.config.ae
        self._server = self.ae.start_server((c.bind, c.port), block=False, evt_handlers=self._handlers)
        log.info("listening as %s on %s:%d", c.title, c.bind, c.port)

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        # shutdown() only closes the listening socket: associations in progress keep running on
        # their own threads and would call the handlers after the buffer is closed. End them and
        # wait until their handlers returned; an object not yet acknowledged is sent again.
        active = server.active_associations
        for assoc in active:
            assoc.abort()
        for assoc in active:
            assoc.join(timeout)
