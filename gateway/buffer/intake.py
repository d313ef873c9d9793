"""The one intake door: a received Part-10 file from any source becomes a buffered instance or a
named refusal.

A C-STORE (StoreSCP, both the pynetdicom path and the fast path), a media import and a capture all
call `Intake.take` with the file and its `Source`. The checks live here: the SOP class is a storage
class, an AE source's peer may store, the header is readable and names the expected SOP class and
instance, a data set that began with group 0002 elements is rewritten without them. Then
Buffer.ingest (fsync, rename, index, routes by source) and the "received" / "store-refused" /
"disk-full" / "buffer-error" events.

The outcome names the refusal in buffer terms (`Refusal`); the DIMSE adapter maps it to a status
(store_scp.py), an importer to its own report. This module imports nothing of gateway.dicom.
"""

from __future__ import annotations

import enum
import logging
import os
import shutil
import sqlite3
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection

from gateway.buffer.coercion import (Coerced, CoercionFailed, Coercer, coerced_attributes, describe,
                                     previous_coercion_time)
from gateway.buffer.files import DiskReserveError, is_disk_full
from gateway.buffer.head_coercion import HeadCoercion, last_group
from gateway.buffer.ingest import Buffer, IngestResult, Outcome
from gateway.buffer.source import Source
from gateway.config import Config
from gateway.event_kinds import BufferWriteError, DiskFull, Received, StoreRefused
from gateway.events import EventBus
from gateway.part10.attributes import InvalidDataset, MalformedDataset, read_attributes
from gateway.part10.structure import StrayFileMeta

log = logging.getLogger("gateway.buffer.intake")

# Starts the fsync of a received file and returns its future (a spool's start_finish); raises
# OSError when the file could not be written. None: the file is not synced yet, ingest syncs it.
StartSync = Callable[[], "Future[None]"]


def _flush_only(start_sync: StartSync) -> "Future[None]":
    """the received file flushed but not fsynced, for an object the coercion rules will
    write again (and fsync): a second disk write of the whole object on the C-STORE's path would
    halve what the box takes in. A StartSync without the keyword (another caller) fsyncs as before."""
    try:
        return start_sync(durable=False)
    except TypeError:
        return start_sync()


class Refusal(enum.Enum):
    NOT_STORAGE_CLASS = "not-storage-class"  # the SOP class is not one the buffer stores
    NOT_AUTHORIZED = "not-authorized"  # the source may not store
    UNREADABLE = "unreadable"  # the data set cannot be parsed
    MISMATCH = "mismatch"  # the data set is invalid or names another SOP class/instance
    DISK_FULL = "disk-full"  # the reserve, or the file system, is full
    WRITE_FAILED = "write-failed"  # any other write error
    INDEX_ERROR = "index-error"  # the index transaction failed
    COERCION_FAILED = "coercion-failed"  # a [[coercion]] rule cannot be applied to it


@dataclass(frozen=True, slots=True)
class IntakeResult:
    refusal: Refusal | None = None
    reason: str = ""
    ingest: IngestResult | None = None
    coerced: Coerced | None = None  # the ingest coercion rules that applied, if any

    @property
    def ok(self) -> bool:
        return self.refusal is None


class Intake:
    def __init__(self, config: Config, buffer: Buffer, events: EventBus, storage_classes: Collection[str]):
        self.config = config
        self.buffer = buffer
        self.events = events
        self.storage_classes = storage_classes
        # the [[coercion]] rules applied on ingest, before the index and the router
        # (buffer None: a role built only to be described, gateway/conformance/contexts.py)
        self.coercer = (Coercer.for_ingest(config, buffer.files.root if buffer is not None else None)
                        if getattr(config, "coercion", None) else Coercer([], ""))
        # the objects being coerced in their receive stream, by spool path (weak: a spool
        # dropped mid-data-set takes its entry with it)
        self._heads: "weakref.WeakValueDictionary[str, HeadCoercion]" = weakref.WeakValueDictionary()
        self._stream_plans: dict = {}
        self._stream_plans_of = None  # the config they were made from

    def head_coercion(self, path: Path, source: Source, sop_uid: str) -> HeadCoercion | None:
        """the coercion of the object about to be received into `path` (a spool file, the
        data set not yet written) in its receive stream (gateway/buffer/head_coercion.py), or None
        when its source has no ingest rules (or may not store). take() of that path uses it."""
        plan = self._stream_plans.get(source, False) if self._stream_plans_of is self.config else False
        if plan is False:
            plan = self._stream_plan(source)
        if plan is None:
            return None
        rules, group = plan
        head = HeadCoercion(self.coercer, rules, source.label, self._resend_time(sop_uid), group)
        self._heads[str(path)] = head
        return head

    def _stream_plan(self, source: Source) -> tuple[list, int] | None:
        """(the rules, the last group of the head) of objects from `source`, or None when none is
        coerced in the stream; remembered per source (asked on every C-STORE) until the config
        is another."""
        if self._stream_plans_of is not self.config:
            self._stream_plans, self._stream_plans_of = {}, self.config
        rules = self.coercer.rules_for(source) if self.coercer else []
        plan = None
        peer = self.config.peer_by_ae(source.name) if source.is_ae else None
        if rules and (peer is None or peer.may_store):
            group = last_group(self.coercer, rules)
            plan = None if group is None else (rules, group)
        self._stream_plans[source] = plan
        return plan

    def _resend_time(self, sop_uid: str):
        """The Attribute Modification DateTime to coerce a re-send of `sop_uid` with (None: now)."""
        try:
            row = self.buffer.index.query("SELECT path FROM instances WHERE sop_uid = ?", (sop_uid,))
        except sqlite3.Error:
            row = []  # the ingest reports the index's trouble; here it only costs the re-send check
        if not row:
            return None
        # A re-send: coerced with the stored copy's modification time, an identical object
        # gives identical bytes (Outcome.IDENTICAL, not forwarded again).
        return previous_coercion_time(self.buffer.files.absolute(row[0]["path"]), self.coercer.modifying_system)

    def take(self, path: Path, source: Source, sop_class: str, sop_uid: str,
             synced: StartSync | None = None) -> IntakeResult:
        """Take the received Part-10 file at `path` into the buffer. `sop_class`, `sop_uid`: what
        the sender says it is (the C-STORE request; an importer passes what the file says). The
        file is gone afterwards whatever happened: stored, or deleted."""
        try:
            return self._take(path, source, sop_class, sop_uid, synced, time.monotonic())
        finally:
            # Whatever happened, nothing half-received stays in incoming/.
            path.unlink(missing_ok=True)

    def _take(self, path: Path, source: Source, sop_class: str, sop_uid: str,
              start_sync: StartSync | None, began: float) -> IntakeResult:
        head = self._heads.pop(str(path), None)
        # coerced in the receive stream already (its spool is fsynced as without rules)
        streamed = head.settle() if head is not None else None
        if sop_class not in self.storage_classes:
            return self._refuse(Refusal.NOT_STORAGE_CLASS, source, sop_uid,
                                f"SOP class {sop_class} is not a storage class")
        if source.is_ae:
            peer = self.config.peer_by_ae(source.name)
            if peer is not None and not peer.may_store:
                return self._refuse(Refusal.NOT_AUTHORIZED, source, sop_uid, f"{source.name} may not store")
        # the ingest coercion rules of this source (decided by the source alone)
        rules = self.coercer.rules_for(source) if self.coercer else []
        flush_only = bool(rules) and streamed is None
        try:
            synced = None if start_sync is None else _flush_only(start_sync) if flush_only else start_sync()
        except OSError as exc:
            return self._write_failed(exc, source, sop_uid)
        # The header is parsed while the fsync runs; the write outcome is reported first.
        stray = None
        try:
            attrs, refusal = read_attributes(path), None
        except StrayFileMeta as exc:
            attrs, refusal, stray = None, None, exc
        except MalformedDataset as exc:
            attrs, refusal = None, (Refusal.UNREADABLE, str(exc))
        except InvalidDataset as exc:
            attrs, refusal = None, (Refusal.MISMATCH, str(exc))
        if synced is not None:
            try:
                synced.result()
            except OSError as exc:
                return self._write_failed(exc, source, sop_uid)
        if stray is not None:
            try:
                attrs = self._drop_stray_meta(path, stray, source, sop_uid)
            except OSError as exc:
                return self._write_failed(exc, source, sop_uid)
            except MalformedDataset as exc:
                return self._refuse(Refusal.UNREADABLE, source, sop_uid, str(exc))
            except InvalidDataset as exc:
                return self._refuse(Refusal.MISMATCH, source, sop_uid, str(exc))
            except StrayFileMeta as exc:  # cannot happen after the rewrite; never store it as is
                return self._refuse(Refusal.UNREADABLE, source, sop_uid, str(exc))
        if refusal is not None:
            return self._refuse(refusal[0], source, sop_uid, refusal[1])
        if attrs.sop_uid != sop_uid:
            return self._refuse(Refusal.MISMATCH, source, sop_uid,
                                "SOP Instance UID in data set differs from the request")
        if attrs.sop_class != sop_class:
            return self._refuse(Refusal.MISMATCH, source, sop_uid,
                                "SOP Class UID in data set differs from the request")
        who = source.label
        coerced = None
        if rules and streamed is not None:
            coerced = streamed
            if coerced.changed and log.isEnabledFor(logging.INFO):  # describe() is not free
                log.info("coerced %s from %s: %s (in the receive stream)", sop_uid, who, describe(coerced),
                         extra={"sop_instance_uid": sop_uid, "calling_ae": who})
        elif rules:
            # coerced before anything is indexed or routed, so the index, the routes and
            # every forward see the coerced values. A rule that cannot be applied refuses the
            # object: stored uncoerced it would reach the PACS with the very header the rule exists
            # to fix (a wrong institution, a patient ID without its issuer); refused, the modality
            # keeps it and shows the failure, and the log line names the rule's problem.
            try:
                coerced, attrs = self._coerce(path, attrs, source, rules)
            except CoercionFailed as exc:
                log.warning("coercion of %s from %s failed: %s", sop_uid, who, exc,
                            extra={"sop_instance_uid": sop_uid, "calling_ae": who})
                return self._refuse(Refusal.COERCION_FAILED, source, sop_uid, f"coercion failed: {exc}")
            except OSError as exc:
                return self._write_failed(exc, source, sop_uid)
            except (MalformedDataset, InvalidDataset, StrayFileMeta) as exc:  # cannot happen: identity kept
                return self._refuse(Refusal.COERCION_FAILED, source, sop_uid, f"coercion failed: {exc}")
        try:
            size = path.stat().st_size  # before ingest moves the file
            # Durable already: the spool's fsync (no rules), or the coerced copy's. Rules that changed
            # nothing leave a file only flushed: ingest fsyncs it.
            durable = (start_sync is not None and not flush_only) or (
                streamed is None and bool(coerced and coerced.changed))
            result = self.buffer.ingest(path, attrs, source, synced=durable)
        except OSError as exc:
            return self._write_failed(exc, source, sop_uid)
        except sqlite3.Error as exc:
            log.exception("indexing %s from %s failed", sop_uid, who)
            return self._refuse(Refusal.INDEX_ERROR, source, sop_uid, f"index error: {exc}")

        if result.outcome is Outcome.IDENTICAL and result.routes:
            log.info("received %s from %s again, identical: queued again for %s (its earlier job there "
                     "was dead or gone)", sop_uid, who, ", ".join(result.routes))
        elif result.outcome is Outcome.IDENTICAL:
            log.info("received %s from %s again, identical: not queued again", sop_uid, who)
        elif result.outcome is Outcome.KEPT_FIRST:
            why = ("a copy coming back from an archive never replaces the stored one"
                   if self.buffer.from_archive(source) else "buffer.duplicate_policy = keep-first")
            log.warning("received %s from %s again with different content: kept the first (%s)", sop_uid, who, why)
        self.events.publish(Received(sop_uid=sop_uid, calling_ae=who, source=str(source),
                                     outcome=result.outcome.value, routes=tuple(result.routes),
                                     bytes=size, seconds=time.monotonic() - began,
                                     coerced=coerced.rules if coerced is not None and coerced.changed else ()))
        return IntakeResult(ingest=result, coerced=coerced)

    def _coerce(self, path: Path, attrs, source: Source, rules):
        """apply `rules` to the received file in place (a coerced copy written beside it,
        fsynced, renamed over it) and read its attributes again. Returns (Coerced, attributes).
        Raises CoercionFailed, OSError."""
        out = path.with_name(path.name + ".coerced")
        when = self._resend_time(attrs.sop_uid)
        coerced = self.coercer.coerce(path, out, rules, source.label, when=when)
        if not coerced.changed:
            return coerced, attrs
        os.replace(out, path)
        # Not parsed again unless the character set or a number changed (a third walk of the
        # header on every coerced C-STORE); the unit tests hold the two equal.
        fresh = coerced_attributes(attrs, coerced) or read_attributes(path)
        log.info("coerced %s from %s: %s", attrs.sop_uid, source.label, describe(coerced),
                 extra={"sop_instance_uid": attrs.sop_uid, "calling_ae": source.label})
        return coerced, fresh

    @staticmethod
    def _drop_stray_meta(path: Path, stray: StrayFileMeta, source: Source, sop_uid: str):
        """Rewrite the received file without the group 0002 elements its data set began with, and
        read its attributes again. The file meta comes from the association only (PS3.10 7.1:
        the negotiated transfer syntax, the command's SOP class and instance, the calling AE);
        DCMTK storescp and Orthanc drop such elements too. Rare, so the one extra copy is paid
        only here; fsynced before Success as every stored object is."""
        tags = ", ".join(f"({g:04X},{e:04X})" for g, e in stray.tags)
        what = "C-STORE" if source.is_ae else "intake"
        log.warning("%s %s from %s: data set began with file meta element(s) %s; dropped, the "
                    "file meta is the association's", what, sop_uid, source.label, tags,
                    extra={"sop_instance_uid": sop_uid, "calling_ae": source.label})
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

    def _write_failed(self, exc: OSError, source: Source, sop_uid: str) -> IntakeResult:
        if isinstance(exc, DiskReserveError):
            # Its words, without the "[Errno 28]" an operator cannot use.
            self.events.publish(DiskFull(detail=exc.strerror or str(exc)))
            return self._refuse(Refusal.DISK_FULL, source, sop_uid, "buffer full: " + (exc.strerror or str(exc)))
        if is_disk_full(exc):
            self.events.publish(DiskFull(detail=str(exc)))
            return self._refuse(Refusal.DISK_FULL, source, sop_uid, "disk full")
        log.error("storing %s from %s failed: %s", sop_uid, source.label, exc)
        self.events.publish(BufferWriteError(detail=str(exc)))
        return self._refuse(Refusal.WRITE_FAILED, source, sop_uid,
                            f"cannot write to buffer: {exc.strerror or exc}")

    def _refuse(self, refusal: Refusal, source: Source, sop_uid: str, why: str) -> IntakeResult:
        # The caller logs it in its own terms (StoreSCP: with the DIMSE status for journald).
        self.events.publish(StoreRefused(sop_uid=sop_uid, calling_ae=source.label, source=str(source),
                                         refusal=refusal.value, reason=why))
        return IntakeResult(refusal, why)
