"""STORE SCU: open an association to a destination and send stored files over it.

A file is sent as stored (its bytes, in its transfer syntax) whenever the peer accepts that syntax.
When it does not, the data set is decoded (decompressed with pydicom + pylibjpeg where needed) and
sent in Explicit or Implicit VR Little Endian, with the same SOP Instance UID: a change of transfer
syntax is not a new instance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import UID
from pynetdicom import AE, evt
from pynetdicom.status import STATUS_SUCCESS, STATUS_WARNING, code_to_category

from gateway.config import DestinationSection, TimersSection
from gateway.dicom import status
from gateway.dicom.net.association_policy import tune_socket
from gateway.dicom.net.pynetdicom_patches import limit_pending_pdata, raw_socket, rejection
from gateway.dicom.sop_classes import STORAGE_COMMITMENT_PUSH, UNCOMPRESSED
from gateway.dicom.net.storage_requestor import RequestRefused, StorageRequestor, describe_rejection
from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

log = logging.getLogger("gateway.dicom.store_scu")

MAX_CONTEXTS = 127  # PS3.8: odd context IDs 1..255; one slot kept for storage commitment
FALLBACK = [str(UNCOMPRESSED[0]), str(UNCOMPRESSED[1])]  # Explicit, Implicit VR LE


@dataclass(frozen=True)
class SendItem:
    path: Path
    sop_class: str
    sop_uid: str
    transfer_syntax: str


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status: int | None  # None: no response at all (association lost, timeout)
    error: str = ""
    transient: bool = False
    warning: bool = False


class AssociationFailed(Exception):
    def __init__(self, reason: str, transient: bool = True):
        super().__init__(reason)
        self.transient = transient


def contexts_for(items: list[SendItem]) -> list[tuple[str, list[str]]]:
    """Presentation contexts for a batch: each stored syntax on its own, plus an uncompressed
    fallback per SOP class, so the acceptor's answer tells us exactly what it takes."""
    out: list[tuple[str, list[str]]] = []
    seen: set[tuple[str, str]] = set()
    for it in items:
        for ts_list in ([it.transfer_syntax], FALLBACK):
            key = (it.sop_class, ts_list[0] if len(ts_list) == 1 else "fallback")
            if key not in seen:
                seen.add(key)
                out.append((it.sop_class, ts_list))
    return out


def fit_batch(items: list[SendItem], limit: int = MAX_CONTEXTS) -> int:
    """How many leading items of `items` fit in one association's context limit."""
    for n in range(len(items), 0, -1):
        if len(contexts_for(items[:n])) <= limit:
            return n
    return 0


class StoreSCU:
    """C-STORE to one destination as `local_ae` (the calling AE title)."""

    def __init__(self, local_ae: str, dest: DestinationSection, timers: TimersSection,
                 nodelay: bool = True, max_pdu: int = 131072, extra_handlers: list | None = None):
        self.dest = dest
        self.timers = timers
        self.nodelay = nodelay
        self.local_ae = local_ae
        self.max_pdu = max_pdu
        self.extra_handlers = extra_handlers or []

    def open(self, items: list[SendItem], commitment: bool = False):
        """An association for `items`: the own storage requestor, or pynetdicom when storage
        commitment must be negotiated too."""
        if not commitment:
            return self._open_storage(items)
        ae = AE(ae_title=self.local_ae)
        ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        ae.acse_timeout = ae.connection_timeout = self.timers.association_s
        ae.dimse_timeout = ae.network_timeout = self.timers.inactivity_s
        ae.maximum_pdu_size = self.max_pdu
        for sop_class, ts in contexts_for(items):
            ae.add_requested_context(sop_class, ts)
        if commitment:
            ae.add_requested_context(STORAGE_COMMITMENT_PUSH, FALLBACK)
        handlers = [(evt.EVT_CONN_OPEN, self._on_open)] + self.extra_handlers
        d = self.dest
        assoc = ae.associate(d.host, d.port, ae_title=d.ae_title, evt_handlers=handlers)
        if assoc.is_established:
            limit_pending_pdata(assoc)
            return assoc
        if assoc.is_rejected:
            result, source, diagnostic = rejection(assoc)
            why = (describe_rejection(result, source, diagnostic) if None not in (result, source, diagnostic)
                   else "rejected")
            # rejected-permanent (0x01) is a configuration error, but a PACS that restarts may
            # answer it briefly too: keep retrying with backoff; the operator sees the reason.
            raise AssociationFailed(f"association rejected by {d.ae_title}@{d.host}:{d.port}: {why}",
                                    transient=result != 0x01)
        raise AssociationFailed(f"no association with {d.ae_title}@{d.host}:{d.port} "
                                "(connection refused, aborted or timed out)")

    def _open_storage(self, items: list[SendItem]) -> StorageRequestor:
        d = self.dest
        try:
            return StorageRequestor.connect(d.host, d.port, self.local_ae, d.ae_title, contexts_for(items),
                                            self.max_pdu, self.timers.association_s, self.timers.inactivity_s,
                                            self.nodelay)
        except RequestRefused as exc:
            # As for pynetdicom below: rejected-permanent is a configuration error, but a PACS that
            # restarts may answer it briefly too; keep retrying with backoff.
            where = f"{d.ae_title}@{d.host}:{d.port}"
            if exc.result is not None:
                raise AssociationFailed(f"association rejected by {where}: {exc}",
                                        transient=exc.result != 0x01) from None
            raise AssociationFailed(f"no association with {where} ({exc})") from None

    def _on_open(self, event) -> None:
        tune_socket(raw_socket(event.assoc), self.nodelay)

    def send(self, assoc, item: SendItem) -> SendResult:
        raw_ok = any(
            cx.abstract_syntax == item.sop_class and cx.transfer_syntax[0] == item.transfer_syntax
            for cx in assoc.accepted_contexts
        )
        fallback_ok = any(
            cx.abstract_syntax == item.sop_class and cx.transfer_syntax[0] in FALLBACK
            for cx in assoc.accepted_contexts
        )
        try:
            if raw_ok:
                rsp = assoc.send_c_store(item.path)
            elif fallback_ok:
                rsp = assoc.send_c_store(self._decoded(item))
            else:
                return SendResult(False, None, f"{self.dest.ae_title} accepts neither SOP class "
                                  f"{item.sop_class} in {item.transfer_syntax} nor uncompressed")
        except FileNotFoundError:
            return SendResult(False, None, "stored file vanished (replaced by a newer copy?)", transient=True)
        except (ValueError, AttributeError, NotImplementedError, RuntimeError) as exc:
            # Decoding for the fallback failed, or the association dropped under us.
            transient = not assoc.is_established
            return SendResult(False, None, f"cannot send: {type(exc).__name__}: {exc}", transient=transient)
        code = rsp.get("Status") if rsp is not None else None
        if code is None:
            return SendResult(False, None, "no C-STORE response (association lost or DIMSE timeout)", transient=True)
        comment = str(rsp.get("ErrorComment", "")) if "ErrorComment" in rsp else ""
        category = code_to_category(code)
        if category in (STATUS_SUCCESS, STATUS_WARNING):
            return SendResult(True, code, comment, warning=category == STATUS_WARNING)
        return SendResult(False, code, f"status 0x{code:04X}" + (f": {comment}" if comment else ""),
                          transient=status.is_transient_store_failure(code))

    @staticmethod
    def _decoded(item: SendItem):
        ds = pydicom.dcmread(item.path)
        if UID(item.transfer_syntax).is_compressed:
            # Same instance, other transfer syntax: keep the SOP Instance UID.
            ds.decompress(generate_instance_uid=False)
        elif item.transfer_syntax not in FALLBACK:
            # Deflated: pydicom has inflated it; pynetdicom re-encodes in what the peer accepted.
            ds.file_meta.TransferSyntaxUID = UNCOMPRESSED[0]
        return ds
