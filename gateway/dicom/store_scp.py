"""STORE SCP: a C-STORE becomes a durable, indexed instance, or a precise failure status.

The DIMSE adapter over the intake door (gateway/buffer/intake.py): the checks, the ingest and the
events are the intake's, the same for media import and capture; here the source is AE:<calling>,
and the intake's refusal becomes a DIMSE status (STATUS_OF) and its log line.

Two receive paths end in the same store():
- the fast path (gateway/dicom/net/acceptor.py, net/storage_acceptor.py) serves associations that
  propose only Storage and Verification: it streams each data set from the socket into a spool
  file in the buffer's incoming/ folder and calls store() with the spool's fsync already started;
- pynetdicom serves every other association (one that also carries print or commitment): its
  C-STORE event reaches handle_store(), which checks the command's SOP class against its context
  (pynetdicom does not) and calls store(). pynetdicom streams that data set too
  (STORE_RECV_CHUNKED_DATASET) into the same kind of spool file (net/receive_spool.py, installed by
  net/pynetdicom_patches.py), and a data set cut short by a closed connection is deleted at once.

Either way memory does not grow with object size and the file is already on the right file system:
taking it into the buffer is an fsync and a rename, never a copy or a re-encode. Success goes out
only after the intake returned (file fsynced, renamed, directory fsynced, index committed).
"""
from __future__ import annotations

import logging
from pathlib import Path

from pynetdicom import evt, register_uid
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from gateway.buffer.ingest import Buffer, Outcome
from gateway.buffer.intake import Intake, Refusal, StartSync
from gateway.buffer.source import Source
from gateway.config import Config
from gateway.dicom import status
from gateway.dicom.net import receive_spool
from gateway.dicom.net.pynetdicom_patches import dataset_file, receiving_file
from gateway.dicom.net.service_role import SupportedContext
from gateway.dicom.sop_classes import ACCEPTED_TRANSFER_SYNTAXES, VERIFICATION, storage_sop_classes
from gateway.event_kinds import StoreRefused
from gateway.events import EventBus
from gateway.identity import normalise_ae

log = logging.getLogger("gateway.dicom.store_scp")

UNRECOGNIZED_OPERATION = 0x0211  # PS3.7 C: the context's SOP class has no such operation

# The intake's refusals as C-STORE statuses (PS3.4 B.2.3, the conformance statement).
STATUS_OF: dict[Refusal, int] = {
    Refusal.NOT_STORAGE_CLASS: status.SOP_CLASS_NOT_SUPPORTED,
    Refusal.NOT_AUTHORIZED: status.NOT_AUTHORIZED,
    Refusal.UNREADABLE: status.CANNOT_UNDERSTAND,
    Refusal.MISMATCH: status.DATASET_MISMATCH,
    Refusal.DISK_FULL: status.OUT_OF_RESOURCES,
    Refusal.WRITE_FAILED: status.OUT_OF_RESOURCES_DIRECTORY,
    Refusal.INDEX_ERROR: status.DATABASE_ERROR,
    Refusal.COERCION_FAILED: status.PROCESSING_FAILURE,  # a coercion rule cannot be applied
}


class StoreSCP:
    def __init__(self, config: Config, buffer: Buffer, events: EventBus):
        self.config = config
        self.buffer = buffer
        self.events = events
        self.storage_classes = storage_sop_classes(config.storage.extra_sop_classes)
        self.intake = Intake(config, buffer, events, self.storage_classes)
        _register_storage(self.storage_classes)

    # -- the service role (gateway/dicom/net/service_role.py) ----------------------------------------
    def contexts(self) -> list[SupportedContext]:
        """Every storage class accepted (standard, retired and storage.extra_sop_classes), each
        with every transfer syntax stored as received; the fast path serves them all."""
        return [SupportedContext(uid, tuple(ACCEPTED_TRANSFER_SYNTAXES), fast_path=True)
                for uid in sorted(self.storage_classes)]

    def handlers(self) -> list[tuple]:
        return [(evt.EVT_C_STORE, self.handle_store), (evt.EVT_CONN_CLOSE, self._on_close)]

    @staticmethod
    def called_titles() -> list[str]:
        return []

    @staticmethod
    def _on_close(event) -> None:
        receive_spool.discard_partial(receiving_file(event.assoc))

    def handle_store(self, event):
        """pynetdicom's C-STORE event (associations that also carry other services)."""
        req = event.request
        calling = normalise_ae(event.assoc.requestor.ae_title)
        sop_class, sop_uid = str(req.AffectedSOPClassUID), str(req.AffectedSOPInstanceUID)
        abstract = str(event.context.abstract_syntax)
        if sop_class != abstract:
            # pynetdicom routes by the command's SOP class, not by the context it came on
            # (PS3.7 9.1.1.1.2: they must be the same).
            Path(event.dataset_path).unlink(missing_ok=True)
            if abstract == VERIFICATION or abstract not in self.storage_classes:
                return status.response(*self._refuse(UNRECOGNIZED_OPERATION, calling, sop_uid,
                                                     f"C-STORE on the context of {abstract}"))
            return status.response(*self._refuse(status.SOP_CLASS_NOT_SUPPORTED, calling, sop_uid,
                                                 f"SOP class {sop_class} sent on the context of {abstract}"))
        # pynetdicom keeps the file object it streamed into on the request; ours is a SpoolFile
        # (pynetdicom_patches, P3), whose fsync the intake starts.
        spool = dataset_file(req)
        synced = spool.start_finish if isinstance(spool, receive_spool.SpoolFile) else None
        code, comment = self.store(Path(event.dataset_path), calling, sop_class, sop_uid, synced)
        return status.response(code, comment)

    def head_coercion(self, path: Path, calling: str, sop_uid: str):
        """The fast path's hook for coercion in the receive stream: the Intake's
        HeadCoercion for the object about to be spooled into `path` from `calling`, or None."""
        try:
            return self.intake.head_coercion(path, Source.ae(calling), sop_uid)
        except Exception as exc:  # noqa: BLE001 - raised on the receiving thread it would end the association
            log.warning("C-STORE %s from %s: no coercion in the receive stream (%s: %s); coerced after "
                        "receiving", sop_uid, calling, type(exc).__name__, exc)
            return None

    def store(self, path: Path, calling: str, sop_class: str, sop_uid: str,
              synced: StartSync | None = None) -> tuple[int, str]:
        """Take the received Part-10 file at `path` into the buffer through the intake. `synced`:
        the spool's start_finish (the fsync already under way), or None. Returns the DIMSE status
        and an error comment for the C-STORE response."""
        result = self.intake.take(path, Source.ae(calling), sop_class, sop_uid, synced)
        if result.ok:
            ingested = result.ingest
            if ingested.outcome not in (Outcome.IDENTICAL, Outcome.KEPT_FIRST):
                log.info("stored %s from %s (%s), routes: %s", sop_uid, calling, ingested.outcome.value,
                         ", ".join(ingested.routes) or "none",
                         extra={"sop_instance_uid": sop_uid, "calling_ae": calling, "dimse_status": "0x0000"})
            if result.coerced is not None and result.coerced.warn:
                # a rule with store_status = "warning" (PS3.4 B.2.3: B000 Coercion of
                # data elements); the default answers Success, see gateway/config/coercion.py.
                return status.COERCION_OF_DATA_ELEMENTS, ""
            return status.SUCCESS, ""
        code = STATUS_OF[result.refusal]
        self._log_refusal(code, calling, sop_uid, result.reason)
        return code, result.reason

    def _refuse(self, code: int, calling: str, sop_uid: str, why: str):
        """A refusal decided here, before the intake (the command's context)."""
        self._log_refusal(code, calling, sop_uid, why)
        self.events.publish(StoreRefused(sop_uid=sop_uid, calling_ae=calling, source=f"AE:{calling}",
                                         status=code, reason=why))
        return code, why

    @staticmethod
    def _log_refusal(code: int, calling: str, sop_uid: str, why: str) -> None:
        # Structured fields for journald (SOP_INSTANCE_UID=, CALLING_AE=, DIMSE_STATUS=).
        log.warning("C-STORE %s from %s refused with 0x%04X: %s", sop_uid, calling, code, why,
                    extra={"sop_instance_uid": sop_uid, "calling_ae": calling, "dimse_status": f"0x{code:04X}"})


def _register_storage(uids) -> None:
    """pynetdicom picks the service for a request by its SOP class and knows no retired or
    private storage class (its handler would never run): register those as storage. Process-wide
    and idempotent (a class already known as storage is left alone)."""
    for uid in uids:
        if uid_to_service_class(uid) is not StorageServiceClass:
            register_uid(uid, "EdgeStorage_" + uid.replace(".", "_"), StorageServiceClass)
