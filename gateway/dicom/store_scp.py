"""STORE SCP: a C-STORE becomes a durable, indexed instance, or a precise failure status.

pynetdicom streams the data set to a temporary file in the buffer's incoming/ folder
(STORE_RECV_CHUNKED_DATASET), so memory does not grow with object size and the file is already on
the right file system: taking it into the buffer is an fsync and a rename, never a copy or a
re-encode. Success goes out only after Buffer.ingest returned (file fsynced, renamed, directory
fsynced, index committed).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from pathlib import Path

from pynetdicom import evt

from gateway.buffer.files import DiskReserveError
from gateway.buffer.ingest import Buffer, Outcome
from gateway.config import Config
from gateway.dicom import receive_spool, status
from gateway.dicom.sop_classes import VERIFICATION, storage_sop_classes
from gateway.events import EventBus
from gateway.identity import normalise_ae
from gateway.part10.attributes import InvalidDataset, MalformedDataset, read_attributes
from gateway.part10.structure import StrayFileMeta

log = logging.getLogger("gateway.dicom.store_scp")

UNRECOGNIZED_OPERATION = 0x0211  # PS3.7 C: the context's SOP class has no such operation


class StoreSCP:
    def __init__(self, config: Config, buffer: Buffer, events: EventBus):
        self.config = config
        self.buffer = buffer
        self.events = events
        self.storage_classes = storage_sop_classes(config.storage.extra_sop_classes)

    def handlers(self) -> list[tuple]:
        return [(evt.EVT_C_STORE, self.handle_store), (evt.EVT_CONN_CLOSE, self._on_close)]

    @staticmethod
    def _on_close(event) -> None:
        receive_spool.discard_partial(event.assoc)

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
        code, comment = self.store(Path(event.dataset_path), calling, sop_class, sop_uid)
        return status.response(code, comment)

    def store(self, path: Path, calling: str, sop_class: str, sop_uid: str) -> tuple[int, str]:
        """Take the received Part-10 file at `path` into the buffer. Returns the DIMSE status and
        an error comment for the C-STORE response."""
        try:
            return self._store(path, calling, sop_class, sop_uid)
        finally:
            # Whatever happened, nothing half-received stays in incoming/.
            path.unlink(missing_ok=True)

    def _store(self, path: Path, calling: str, sop_class: str, sop_uid: str):
        if sop_class not in self.storage_classes:
            return self._refuse(status.SOP_CLASS_NOT_SUPPORTED, calling, sop_uid,
                                f"SOP class {sop_class} is not a storage class")
        peer = self.config.peer_by_ae(calling)
        if peer is not None and not peer.may_store:
            return self._refuse(status.NOT_AUTHORIZED, calling, sop_uid, f"{calling} may not store")
        spool = receive_spool.lookup(path)
        try:
            synced = spool.start_finish() if spool is not None else None
        except OSError as exc:
            return self._write_failed(exc, calling, sop_uid)
        # The header is parsed while the fsync runs; the write outcome is reported first.
        stray = None
        try:
            attrs, refusal = read_attributes(path), None
        except StrayFileMeta as exc:
            attrs, refusal, stray = None, None, exc
        except MalformedDataset as exc:
            attrs, refusal = None, (status.CANNOT_UNDERSTAND, str(exc))
        except InvalidDataset as exc:
            attrs, refusal = None, (status.DATASET_MISMATCH, str(exc))
        if synced is not None:
            try:
                synced.result()
            except OSError as exc:
                return self._write_failed(exc, calling, sop_uid)
        if stray is not None:
            try:
                attrs = self._drop_stray_meta(path, stray, calling, sop_uid)
            except OSError as exc:
                return self._write_failed(exc, calling, sop_uid)
            except MalformedDataset as exc:
                return self._refuse(status.CANNOT_UNDERSTAND, calling, sop_uid, str(exc))
            except InvalidDataset as exc:
                return self._refuse(status.DATASET_MISMATCH, calling, sop_uid, str(exc))
            except StrayFileMeta as exc:  # cannot happen after the rewrite; never store it as is
                return self._refuse(status.CANNOT_UNDERSTAND, calling, sop_uid, str(exc))
        if refusal is not None:
            return self._refuse(refusal[0], calling, sop_uid, refusal[1])
        if attrs.sop_uid != sop_uid:
            return self._refuse(status.DATASET_MISMATCH, calling, sop_uid,
                                "SOP Instance UID in data set differs from the request")
        if attrs.sop_class != sop_class:
            return self._refuse(status.DATASET_MISMATCH, calling, sop_uid,
                                "SOP Class UID in data set differs from the request")
        try:
            result = self.buffer.ingest(path, attrs, calling, synced=spool is not None)
        except OSError as exc:
            return self._write_failed(exc, calling, sop_uid)
        except sqlite3.Error as exc:
            log.exception("indexing %s from %s failed", sop_uid, calling)
            return self._refuse(status.DATABASE_ERROR, calling, sop_uid, f"index error: {exc}")

        if result.outcome is Outcome.IDENTICAL and result.routes:
            log.info("received %s from %s again, identical: queued again for %s (its earlier job there "
                     "was dead or gone)", sop_uid, calling, ", ".join(result.routes))
        elif result.outcome is Outcome.IDENTICAL:
            log.info("received %s from %s again, identical: not queued again", sop_uid, calling)
        elif result.outcome is Outcome.KEPT_FIRST:
            log.warning("received %s from %s again with different content: kept the first "
                        "(buffer.duplicate_policy = keep-first)", sop_uid, calling)
        else:
            log.info("stored %s from %s (%s), routes: %s", sop_uid, calling, result.outcome.value,
                     ", ".join(result.routes) or "none",
                     extra={"sop_instance_uid": sop_uid, "calling_ae": calling, "dimse_status": "0x0000"})
        self.events.publish("received", sop_uid=sop_uid, calling_ae=calling,
                            outcome=result.outcome.value, routes=result.routes)
        return status.SUCCESS, ""

    @staticmethod
    def _drop_stray_meta(path: Path, stray: StrayFileMeta, calling: str, sop_uid: str):
        """Rewrite the received file without the group 0002 elements its data set began with, and
        read its attributes again. The file meta comes from the association only (PS3.10 7.1:
        the negotiated transfer syntax, the command's SOP class and instance, the calling AE);
        DCMTK storescp and Orthanc drop such elements too. Rare, so the one extra copy is paid
        only here; fsynced before Success as every stored object is."""
        tags = ", ".join(f"({g:04X},{e:04X})" for g, e in stray.tags)
        log.warning("C-STORE %s from %s: data set began with file meta element(s) %s; dropped, the "
                    "file meta is the association's", sop_uid, calling, tags,
                    extra={"sop_instance_uid": sop_uid, "calling_ae": calling})
        fixed = path.with_name(path.name + ".fix")
        try:
            with open(path, "rb") as src, open(fixed, "wb") as dst:
                dst.write(src.read(stray.start))
                src.seek(stray.end)
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(fixed, path)
        finally:
            fixed.unlink(missing_ok=True)
        return read_attributes(path)

    def _write_failed(self, exc: OSError, calling: str, sop_uid: str):
        if isinstance(exc, DiskReserveError):
            self.events.publish("disk-full", detail=str(exc))
            return self._refuse(status.OUT_OF_RESOURCES, calling, sop_uid, "buffer full: " + str(exc))
        if receive_spool.is_disk_full(exc):
            self.events.publish("disk-full", detail=str(exc))
            return self._refuse(status.OUT_OF_RESOURCES, calling, sop_uid, "disk full")
        log.error("storing %s from %s failed: %s", sop_uid, calling, exc)
        self.events.publish("buffer-error", detail=str(exc))
        return self._refuse(status.OUT_OF_RESOURCES_DIRECTORY, calling, sop_uid,
                            f"cannot write to buffer: {exc.strerror or exc}")

    def _refuse(self, code: int, calling: str, sop_uid: str, why: str):
        # Structured fields for journald (SOP_INSTANCE_UID=, CALLING_AE=, DIMSE_STATUS=).
        log.warning("C-STORE %s from %s refused with 0x%04X: %s", sop_uid, calling, code, why,
                    extra={"sop_instance_uid": sop_uid, "calling_ae": calling, "dimse_status": f"0x{code:04X}"})
        self.events.publish("store-refused", sop_uid=sop_uid, calling_ae=calling, status=code, reason=why)
        return code, why
