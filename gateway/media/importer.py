"""The File-set Reader (PS3.10 8, PS3.11): import the DICOM instances of a medium's file tree into
the buffer through the intake, as a C-STORE would arrive, and report each file.

How a tree is read:
- With a DICOMDIR in its root (PS3.3 F.5, the Basic Directory IOD): its records are walked from the
  root directory entity through the Offset of the Next Directory Record (0004,1400) and Offset of
  Referenced Lower-Level Directory Entity (0004,1420) chains, and every record with a Referenced
  File ID (0004,1500) names a file to import. Files the DICOMDIR does not reference are not part
  of the file-set and are left alone (a viewer, INDEX.HTM, IHE_PDI/).
- File IDs are matched case-insensitively, with a `;1` version suffix, a trailing "." and a ".dcm"
  extension tolerated: Linux lower-cases plain ISO 9660 names (mount option map=normal), some
  burners keep the version suffix (map=off), and some writers add ".dcm" to names the DICOMDIR
  spells without it.
- Without a DICOMDIR, or when it cannot be read, or when its offsets are stale (a record offset
  that points at no record, a loop, records no chain reaches): the report says so and every file
  of the tree is read instead, so a badly made medium still gives up what it holds.

Each file: "DICM" at byte 128 (PS3.10 7.1) or it is not DICOM; the header is read
(gateway.part10.attributes); a DICOMDIR record's Referenced SOP Instance / Class UID in File must
match the file's; then the file is COPIED into the buffer's incoming folder (the intake deletes or
moves what it is given, and a medium's own files are never handed over) and taken by
`Intake.take` with source MEDIA:<label>: the storage class check, the duplicate policy, the routes
and the events are those of a C-STORE.

Two patients under one Patient ID in one file-set (different Patient's Name or Birth Date): both
are imported and every file of that ID is flagged "patient-id-conflict" in the report. Why not
refuse: the gateway does not own patient identity, a C-STORE with the same conflict is accepted
too, and refusing would keep images a clinic handed over from reaching the PACS, where patient
reconciliation happens; the flag puts the conflict in front of the operator instead. (The buffer's
index keeps one patient row per Patient ID and issuer, so `studies` shows them as one.)

Reconciliation (optional, `[media.import]`, gateway/media/reconcile.py): with a mapping file
configured, a file whose Patient ID (and issuer) a row maps is rewritten WHILE it is copied into
incoming/ (gateway/part10/coerce.py: one pass over the bytes, the pixel data streamed): Patient
ID, Issuer, Patient's Name and Accession Number replaced, the previous values in an Original
Attributes Sequence item (reason COERCE, Source of Previous Values "MEDIA:<label>"). Its report
item says "reconciled by mapping line N" and which attributes. A file no row maps is imported
unchanged (said in its item) or, with `unmatched = "skip"`, skipped with reason "not-reconciled".
A DICOMDIR record's UIDs are checked against the file as it is on the medium; the UIDs are never
coerced.

The importer knows no DIMSE: the storage SOP classes are the injected Intake's. Nothing here logs
a patient name; the report holds UIDs, reason codes and File IDs only (gateway/buffer/imports.py).
"""

from __future__ import annotations

import enum
import logging
import os
import re
import time
from datetime import datetime
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import pydicom
from pydicom.errors import InvalidDicomError

from gateway.buffer.imports import ImportStore, ItemRow
from gateway.buffer.ingest import Outcome
from gateway.buffer.intake import Refusal
from gateway.buffer.source import Source
from gateway.event_kinds import MediaImportFinished, MediaImportStarted
from gateway.media.reconcile import (ACCESSION_NUMBER, ISSUER_OF_PATIENT_ID, PATIENT_ID, PATIENT_NAME, Match,
                                     Reconciliation)
from gateway.part10.attributes import InvalidDataset, MalformedDataset, read_attributes
from gateway.part10.coerce import CoerceError, Provenance, coerce_file
from gateway.part10.structure import StrayFileMeta

if TYPE_CHECKING:
    from gateway.buffer.intake import Intake
    from gateway.events import EventBus

log = logging.getLogger("gateway.media.importer")

DICOMDIR = "DICOMDIR"
DICOM_PREFIX_OFFSET = 128  # PS3.10 7.1: a 128-byte preamble, then "DICM"
COPY_CHUNK = 1 << 20
ITEM_BATCH = 64  # items written to the report per transaction (each costs an fsync)

_NEXT = "OffsetOfTheNextDirectoryRecord"
_LOWER = "OffsetOfReferencedLowerLevelDirectoryEntity"
_FIRST = "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity"


class Status(enum.Enum):
    IMPORTED = "imported"    # new in the buffer
    DUPLICATE = "duplicate"  # the buffer held the SOP Instance UID: outcome says what the policy did
    SKIPPED = "skipped"      # not imported: the file is not what it should be
    FAILED = "failed"        # not imported: the buffer could not take it (space, write, index)


class Reason(enum.Enum):
    NOT_DICOM = "not-dicom"
    MISSING_FILE = "missing-file"
    RECORD_MISMATCH = "record-mismatch"
    UNSUPPORTED_SOP_CLASS = "unsupported-sop-class"
    UNREADABLE = "unreadable"
    DISK_FULL = "disk-full"
    WRITE_FAILED = "write-failed"
    INDEX_ERROR = "index-error"
    NOT_RECONCILED = "not-reconciled"  # reconciliation on: no mapping row, or the rewrite was refused
    COERCION_FAILED = "coercion-failed"  # a [[coercion]] rule cannot be applied to it


PATIENT_ID_CONFLICT = "patient-id-conflict"

# The intake's refusals in the report's terms. NOT_AUTHORIZED is for AE sources only.
_REFUSAL = {
    Refusal.NOT_STORAGE_CLASS: (Status.SKIPPED, Reason.UNSUPPORTED_SOP_CLASS),
    Refusal.UNREADABLE: (Status.SKIPPED, Reason.UNREADABLE),
    Refusal.MISMATCH: (Status.SKIPPED, Reason.UNREADABLE),
    Refusal.NOT_AUTHORIZED: (Status.FAILED, Reason.WRITE_FAILED),
    Refusal.DISK_FULL: (Status.FAILED, Reason.DISK_FULL),
    Refusal.WRITE_FAILED: (Status.FAILED, Reason.WRITE_FAILED),
    Refusal.INDEX_ERROR: (Status.FAILED, Reason.INDEX_ERROR),
    Refusal.COERCION_FAILED: (Status.FAILED, Reason.COERCION_FAILED),
}


@dataclass(frozen=True)
class ImportItem:
    """One file looked at. path: relative to the root as found on the medium (for the operator's
    terminal; never stored, it may carry a patient's name); file_id: the DICOMDIR record's
    Referenced File ID joined with "\\" ("" when scanned); outcome: the buffer's verdict
    (ingest.Outcome value) for imported and duplicate files; reason: a Reason for skipped and
    failed ones; detail: one line saying what was wrong; routes: destinations it was queued for."""

    path: str
    status: Status
    sop_uid: str = ""
    sop_class: str = ""
    file_id: str = ""
    outcome: str = ""
    reason: Reason | None = None
    flag: str = ""
    detail: str = ""
    routes: tuple[str, ...] = ()
    reconciled: int = 0  # the mapping file's line that reconciled it (0: not reconciled)

    def line(self) -> str:
        """The operator's one line: "skipped: IMAGES/IM0003: not a DICOM file (...)"."""
        what = self.status.value if self.status is not Status.DUPLICATE else f"duplicate ({self.outcome})"
        text = f"{what}: {self.path}"
        if self.detail:
            text += f": {self.detail}"
        return text


@dataclass
class ImportReport:
    """What an import did. method: "dicomdir" or "scan"; note: why the tree was scanned or what was
    wrong with its DICOMDIR; items in the order the files were read; import_id: the report's row in
    the buffer (`dicom-gateway imports ID`); started/finished: seconds since the epoch."""

    label: str
    root: Path
    method: str = "scan"
    note: str = ""
    items: list[ImportItem] = field(default_factory=list)
    import_id: int = 0
    started: float = 0.0
    finished: float = 0.0

    def count(self, status: Status) -> int:
        return sum(1 for i in self.items if i.status is status)

    @property
    def flagged(self) -> int:
        return sum(1 for i in self.items if i.flag)

    @property
    def ok(self) -> bool:
        """Every file was imported (or already held): nothing skipped, nothing failed."""
        return not any(i.status in (Status.SKIPPED, Status.FAILED) for i in self.items)

    @property
    def routed(self) -> bool:
        """Some file was queued for a destination (the service's workers have work)."""
        return any(i.routes for i in self.items)

    def problems(self) -> list[ImportItem]:
        """The items an operator must read: skipped, failed and flagged ones."""
        return [i for i in self.items if i.status in (Status.SKIPPED, Status.FAILED) or i.flag]

    @property
    def reconciled(self) -> int:
        return sum(1 for i in self.items if i.reconciled)

    def summary(self) -> str:
        """"12 files: 10 imported, 1 duplicate, 1 skipped, 0 failed; 2 flagged" (and "; 9
        reconciled" when reconciliation rewrote any)."""
        text = (f"{len(self.items)} files: {self.count(Status.IMPORTED)} imported, "
                f"{self.count(Status.DUPLICATE)} duplicate, {self.count(Status.SKIPPED)} skipped, "
                f"{self.count(Status.FAILED)} failed; {self.flagged} flagged")
        return text + (f"; {self.reconciled} reconciled" if self.reconciled else "")


# -- names on a medium -------------------------------------------------------------------------------
def normalise_name(name: str) -> str:
    """A directory entry's name as a File ID component would spell it: upper case, without an ISO
    9660 version suffix (";1") or a trailing "." (an ISO 9660 name without extension)."""
    return re.sub(r";\d*$", "", name).rstrip(".").upper()


class CaseFolder:
    """Resolves File IDs (PS3.10 8.2: components of upper-case letters, digits and "_") against a
    real tree whatever case its names have; each folder is listed once."""

    def __init__(self, root: Path):
        self.root = root
        self._listings: dict[Path, dict[str, list[str]]] = {}

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._listings:
            names: dict[str, list[str]] = {}
            try:
                entries = sorted(os.listdir(folder))
            except OSError:
                entries = []
            for name in entries:
                names.setdefault(normalise_name(name), []).append(name)
            self._listings[folder] = names
        return self._listings[folder]

    def resolve(self, components: list[str]) -> Path | None:
        """The file a File ID names, or None. An exact name wins over a case-folded one; the last
        component may also carry ".dcm"."""
        here = self.root
        for n, comp in enumerate(components):
            last = n == len(components) - 1
            listing = self._listing(here)
            want = comp.strip().upper()
            options = listing.get(want, []) or (listing.get(want + ".DCM", []) if last else [])
            if not options:
                return None
            chosen = comp if comp in options else options[0]
            here = here / chosen
            if not last and not here.is_dir():
                return None
        return here if here.is_file() else None

    def dicomdir(self) -> Path | None:
        """The root's DICOMDIR, however its name is cased or suffixed."""
        for name in self._listing(self.root).get(DICOMDIR, []):
            if (self.root / name).is_file():
                return self.root / name
        return None


# -- the DICOMDIR ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """A directory record that references a file: its File ID components and what it says the
    file holds (PS3.3 F.5: Referenced SOP Class / Instance UID in File, (0004,1510) / (0004,1511))."""

    file_id: tuple[str, ...]
    sop_class: str
    sop_uid: str


class DicomdirProblem(Exception):
    """The DICOMDIR cannot be followed: unreadable, or its offsets are stale. One line."""


def _file_id(record) -> tuple[str, ...]:
    value = record.get("ReferencedFileID")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    return tuple(str(v).strip() for v in value if str(v).strip())


def read_dicomdir(path: Path) -> list[Reference]:
    """The files a DICOMDIR references, in directory order (PS3.3 F.5: root entity first, each
    record's lower-level entity before its next record). Raises DicomdirProblem when it cannot be
    read, or when an offset points at no record, the chains loop, or records are unreachable."""
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise DicomdirProblem(f"DICOMDIR cannot be read ({type(exc).__name__}: {exc})") from None
    if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) != "1.2.840.10008.1.3.10":
        raise DicomdirProblem("DICOMDIR is not a Media Storage Directory (its SOP class is not 1.2.840.10008.1.3.10)")
    records = ds.get("DirectoryRecordSequence")
    if records is None:
        raise DicomdirProblem("DICOMDIR has no Directory Record Sequence (0004,1220)")
    by_offset = {}
    for record in records:
        offset = getattr(record, "seq_item_tell", None)
        if offset is None:  # pydicom notes where each item starts; without it offsets mean nothing
            raise DicomdirProblem("DICOMDIR records carry no offsets as read")
        by_offset[offset] = record
    order: list = []
    seen: set[int] = set()
    # (offset, who points at it); a stack keeps the PS3.3 F.5 depth-first order without recursion.
    stack = [(int(ds.get(_FIRST, 0) or 0), "the root directory entity's first record (0004,1200)")]
    while stack:
        offset, where = stack.pop()
        while offset:
            record = by_offset.get(offset)
            if record is None:
                raise DicomdirProblem(f"stale offset in the DICOMDIR: {where} points at byte {offset}, "
                                      "where no directory record starts")
            if offset in seen:
                raise DicomdirProblem(f"the DICOMDIR's record chains loop: {where} points back at byte {offset}")
            seen.add(offset)
            order.append(record)
            nxt = int(record.get(_NEXT, 0) or 0)
            lower = int(record.get(_LOWER, 0) or 0)
            kind = str(record.get("DirectoryRecordType", "?"))
            if lower:
                # The lower entity comes first; this chain resumes after it.
                stack.append((nxt, f"the {kind} record at byte {offset}'s next record (0004,1400)"))
                offset, where = lower, f"the {kind} record at byte {offset}'s lower-level entity (0004,1420)"
            else:
                offset, where = nxt, f"the {kind} record at byte {offset}'s next record (0004,1400)"
    unreached = len(by_offset) - len(seen)
    if unreached:
        raise DicomdirProblem(f"stale offsets in the DICOMDIR: {unreached} of its {len(by_offset)} "
                              "directory records are reached by no chain from the root")
    return [Reference(fid, str(r.get("ReferencedSOPClassUIDInFile", "")),
                      str(r.get("ReferencedSOPInstanceUIDInFile", "")))
            for r in order if (fid := _file_id(r))]


# -- the import --------------------------------------------------------------------------------------
def _is_part10(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(DICOM_PREFIX_OFFSET + 4)
    return len(head) == DICOM_PREFIX_OFFSET + 4 and head[DICOM_PREFIX_OFFSET:] == b"DICM"


_IDENTITY = ["PatientID", "IssuerOfPatientID", "AccessionNumber", "PatientName", "SpecificCharacterSet"]


def _uids_of_stray(path: Path) -> tuple[str, str, dict[str, str]]:
    """SOP Class and Instance UID of a file whose data set begins with file meta elements (the
    intake rewrites it; the structure walk refuses it), and the values reconciliation matches on
    (keyword -> text): pydicom reads them."""
    with warnings.catch_warnings():
        # pydicom guesses the data set's VR encoding after the stray elements, and says so: the
        # intake rewrites the file and reads it again, so the guess costs nothing.
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["SOPClassUID", "SOPInstanceUID"] + _IDENTITY)
        ids = {kw: "\\".join(map(str, v)) if isinstance(v := ds.get(kw, ""), pydicom.multival.MultiValue)
               else str(v).strip() for kw in _IDENTITY}
    return str(ds.get("SOPClassUID", "")), str(ds.get("SOPInstanceUID", "")), ids


class _Configured:
    def __repr__(self) -> str:
        return "CONFIGURED"


CONFIGURED = _Configured()  # import_tree's default: reconciliation as the intake's config says


class _WriteFailed(Exception):
    """Writing the buffer's copy failed (the rewrite's reads of the medium raise OSError)."""

    def __init__(self, exc: OSError):
        super().__init__(str(exc))
        self.exc = exc


class _BufferFile:
    """The incoming file coerce_file writes to: its write errors are told apart from the medium's
    read errors."""

    def __init__(self, fh):
        self.fh = fh

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            raise _WriteFailed(exc) from None

    def tell(self) -> int:
        return self.fh.tell()


class _ReadError(Exception):
    """Reading the medium's file failed (a bad sector, a medium pulled)."""


def _copy(src: Path, dst: Path) -> None:
    """Copy a medium's file into the buffer's incoming folder. _ReadError when reading the medium
    fails, OSError when writing the copy does (the intake fsyncs it)."""
    try:
        fin = open(src, "rb")
    except OSError as exc:
        raise _ReadError(exc.strerror or str(exc)) from None
    with fin, open(dst, "wb") as fout:
        while True:
            try:
                chunk = fin.read(COPY_CHUNK)
            except OSError as exc:
                raise _ReadError(exc.strerror or str(exc)) from None
            if not chunk:
                return
            fout.write(chunk)


def _files_of(root: Path, skip: Path | None) -> Iterator[Path]:
    """Every regular file under root, sorted per folder, symlinks not followed (a medium's copy
    holds none; one pointing out of the tree must not import the box's own files)."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            p = Path(folder) / name
            if p != skip and not p.is_symlink() and p.is_file():
                yield p


def import_tree(root: Path, label: str, intake: "Intake", new_incoming_path: Callable[[], Path], *,
                store: ImportStore | None = None, events: "EventBus | None" = None,
                reconcile: "Reconciliation | None | _Configured" = CONFIGURED) -> ImportReport:
    """Import the DICOM file-set (or, without a usable DICOMDIR, every DICOM file) under `root`
    into the buffer through `intake` (source MEDIA:<label>), and report each file.

    new_incoming_path: a fresh path in the buffer's incoming folder (FileStore.new_incoming_path),
    where each file is copied before the intake takes it. store: where the report is kept
    (default: the intake's buffer's index); events: where MediaImportStarted / Finished are
    published (default: the intake's bus); reconcile: the Reconciliation to apply (default: as
    the intake's config's `[media.import]` says, its mapping file read now, once for the whole
    import; None: off). Raises NotADirectoryError when root is not a folder, MappingError (an
    OSError) when the configured mapping file cannot be used (nothing is imported), sqlite3.Error
    when the report cannot be written; a bad file never raises, it is reported."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    if isinstance(reconcile, _Configured):
        reconcile = Reconciliation.configured(intake.config)
    store = store if store is not None else ImportStore(intake.buffer.index)
    events = events if events is not None else intake.events
    report = ImportReport(label=label, root=root, started=time.time())
    tree = CaseFolder(root)
    dicomdir = tree.dicomdir()
    references: list[Reference] | None = None
    if dicomdir is None:
        report.note = "no DICOMDIR: every file was read"
    else:
        try:
            references = read_dicomdir(dicomdir)
            report.method = "dicomdir"
        except DicomdirProblem as exc:
            report.note = f"{exc}; every file was read instead"
    report.import_id = store.begin(label, report.method, report.note, report.started)
    events.publish(MediaImportStarted(import_id=report.import_id, label=label, method=report.method,
                                      note=report.note))
    log.info("media import %d from MEDIA:%s: %s", report.import_id, label,
             "following the DICOMDIR" if references is not None else report.note)
    source = Source.media(label)
    pending: list[ItemRow] = []
    patients: dict[tuple[str, str], dict[tuple[str, str], list[int]]] = {}

    def add(item: ImportItem, identity: tuple[tuple[str, str], tuple[str, str]] | None = None) -> None:
        report.items.append(item)
        seq = len(report.items)
        if identity is not None and item.status in (Status.IMPORTED, Status.DUPLICATE):
            key, who = identity
            patients.setdefault(key, {}).setdefault(who, []).append(seq)
        pending.append(_row(seq, item))
        if len(pending) >= ITEM_BATCH:
            store.add_items(report.import_id, pending)
            pending.clear()

    if references is not None:
        done: set[Path] = set()
        for ref in references:
            shown = "/".join(ref.file_id)
            path = tree.resolve(list(ref.file_id))
            if path is None:
                add(ImportItem(shown, Status.SKIPPED, ref.sop_uid, ref.sop_class, "\\".join(ref.file_id),
                               reason=Reason.MISSING_FILE,
                               detail="the DICOMDIR references this file; it is not on the medium"))
                continue
            if path in done:
                continue
            done.add(path)
            add(*_import_one(path, root, ref, intake, source, new_incoming_path, reconcile))
    else:
        for path in _files_of(root, dicomdir):
            add(*_import_one(path, root, None, intake, source, new_incoming_path, reconcile))

    store.add_items(report.import_id, pending)
    _flag_conflicts(report, patients, store)
    report.finished = time.time()
    store.finish(report.import_id, files=len(report.items), imported=report.count(Status.IMPORTED),
                 duplicates=report.count(Status.DUPLICATE), skipped=report.count(Status.SKIPPED),
                 failed=report.count(Status.FAILED), flagged=report.flagged, finished=report.finished)
    events.publish(MediaImportFinished(
        import_id=report.import_id, label=label, imported=report.count(Status.IMPORTED),
        duplicates=report.count(Status.DUPLICATE), skipped=report.count(Status.SKIPPED),
        failed=report.count(Status.FAILED), flagged=report.flagged))
    log.info("media import %d from MEDIA:%s finished: %s", report.import_id, label, report.summary())
    return report


def _row(seq: int, item: ImportItem) -> ItemRow:
    return ItemRow(seq=seq, status=item.status.value, outcome=item.outcome,
                   reason=item.reason.value if item.reason else "", flag=item.flag, sop_uid=item.sop_uid,
                   sop_class=item.sop_class, file_id=item.file_id, detail=item.detail)


def _import_one(path: Path, root: Path, ref: Reference | None, intake: "Intake", source: Source,
                new_incoming_path: Callable[[], Path], reconcile: Reconciliation | None = None):
    """(ImportItem, patient identity or None) for one file of the medium."""
    shown = path.relative_to(root).as_posix()
    base = ImportItem(shown, Status.SKIPPED, file_id="\\".join(ref.file_id) if ref else "",
                      sop_uid=ref.sop_uid if ref else "", sop_class=ref.sop_class if ref else "")

    def skip(reason: Reason, detail: str, status: Status = Status.SKIPPED):
        return replace(base, status=status, reason=reason, detail=detail), None

    try:
        if not _is_part10(path):
            return skip(Reason.NOT_DICOM, "not a DICOM file (no \"DICM\" after the 128-byte preamble, PS3.10 7.1)")
    except OSError as exc:
        return skip(Reason.UNREADABLE, f"cannot read the file: {exc.strerror or exc}")
    identity = None
    try:
        attrs = read_attributes(path)
        sop_class, sop_uid = attrs.sop_class, attrs.sop_uid
        identity = ((attrs.patient_id, attrs.issuer),
                    (" ".join(attrs.patient_name.upper().split()), attrs.birth_date))
        ids = {"PatientID": attrs.patient_id, "IssuerOfPatientID": attrs.issuer,
               "AccessionNumber": attrs.accession, "PatientName": attrs.patient_name,
               "SpecificCharacterSet": attrs.charset}
    except StrayFileMeta:
        try:
            sop_class, sop_uid, ids = _uids_of_stray(path)
        except Exception as exc:  # pydicom raises many kinds on a damaged file; all mean unreadable
            return skip(Reason.UNREADABLE, f"cannot parse data set: {type(exc).__name__}: {exc}")
    except (MalformedDataset, InvalidDataset) as exc:
        return skip(Reason.UNREADABLE, str(exc))
    except OSError as exc:
        return skip(Reason.UNREADABLE, f"cannot read the file: {exc.strerror or exc}")
    base = replace(base, sop_uid=sop_uid, sop_class=sop_class)
    if ref is not None and ref.sop_uid and ref.sop_uid != sop_uid:
        return skip(Reason.RECORD_MISMATCH, f"the DICOMDIR record says SOP Instance UID {ref.sop_uid}, "
                                            f"the file holds {sop_uid}")
    if ref is not None and ref.sop_class and ref.sop_class != sop_class:
        return skip(Reason.RECORD_MISMATCH, f"the DICOMDIR record says SOP Class UID {ref.sop_class}, "
                                            f"the file holds {sop_class}")
    if sop_class not in intake.storage_classes:
        # Said before the copy: a medium full of presentation states or private objects costs no writes.
        return skip(Reason.UNSUPPORTED_SOP_CLASS, f"SOP class {sop_class} is not a storage class the gateway keeps")
    match: Match | None = None
    note = ""
    when = None
    if reconcile is not None:
        args = (ids["PatientID"], ids["IssuerOfPatientID"], ids["AccessionNumber"], ids["PatientName"],
                ids["SpecificCharacterSet"])
        match = reconcile.mapping.match(*args)
        if match is not None and match.changes:
            # One time for both stamps (0008,0015 and 0400,0562); a held copy's when re-imported.
            when = _held_reconciled(intake, sop_uid, match, ids) or datetime.now().astimezone()
            match = reconcile.mapping.match(*args, now=when)
        if match is None and reconcile.unmatched == "skip":
            return skip(Reason.NOT_RECONCILED, "no row of the mapping file maps its Patient ID "
                                               "(media.import.unmatched = \"skip\")")
        if match is None:
            note = "not reconciled: no row of the mapping file maps its Patient ID; imported unchanged"
        elif not match.changes:
            note = f"mapping line {match.line}: already holds the local values; imported unchanged"
    tmp = new_incoming_path()
    try:
        if match is not None and match.changes:
            # The rewrite IS the copy: one pass over the medium's bytes (part10/coerce.py).
            with open(tmp, "wb") as out:
                coerce_file(path, _BufferFile(out), match.changes,
                            Provenance(reconcile.modifying_system, "COERCE", f"MEDIA:{source.name}", when),
                            record=match.record)
            note = (f"reconciled by mapping line {match.line}: {match.attributes} replaced (previous values "
                    "in the Original Attributes Sequence)")
        else:
            _copy(path, tmp)
    except CoerceError as exc:
        tmp.unlink(missing_ok=True)
        return skip(Reason.NOT_RECONCILED, f"cannot reconcile (mapping line {match.line}): {exc}")
    except _WriteFailed as exc:
        tmp.unlink(missing_ok=True)
        return skip(Reason.WRITE_FAILED, f"cannot write to the buffer: {exc.exc.strerror or exc}", Status.FAILED)
    except _ReadError as exc:
        tmp.unlink(missing_ok=True)
        return skip(Reason.UNREADABLE, f"reading the medium failed: {exc}")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if match is not None and match.changes:  # the rewrite's writes are _WriteFailed: this is a read
            return skip(Reason.UNREADABLE, f"reading the medium failed: {exc.strerror or exc}")
        return skip(Reason.WRITE_FAILED, f"cannot write to the buffer: {exc.strerror or exc}", Status.FAILED)
    result = intake.take(tmp, source, sop_class, sop_uid)
    if not result.ok:
        status, reason = _REFUSAL[result.refusal]
        return skip(reason, result.reason, status)
    outcome = result.ingest.outcome
    item = replace(base, status=Status.IMPORTED if outcome is Outcome.STORED else Status.DUPLICATE,
                   outcome=outcome.value, routes=tuple(result.ingest.routes), detail=note,
                   reconciled=match.line if match is not None and match.changes else 0)
    if item.reconciled and identity is not None:
        # The buffer holds the local patient now: conflicts are judged on what was stored.
        c = match.changes
        name = c.get(PATIENT_NAME)
        identity = ((c.get(PATIENT_ID, ids["PatientID"]), c.get(ISSUER_OF_PATIENT_ID, ids["IssuerOfPatientID"])),
                    identity[1] if name is None else (" ".join(name.upper().split()), identity[1][1]))
    return item, identity


def _held_reconciled(intake: "Intake", sop_uid: str, match: Match, ids: dict[str, str]) -> datetime | None:
    """When the buffer holds this instance already reconciled to the same values (the medium is
    imported again): the time of that reconciliation, so that the rewrite now gives the same
    bytes and the intake finds it identical (nothing queued twice), as a re-import without
    reconciliation does. None otherwise (a new reconciliation, at the time it is made)."""
    rows = intake.buffer.index.query("SELECT path FROM instances WHERE sop_uid = ?", (sop_uid,))
    if not rows:
        return None
    held = intake.buffer.files.root / rows[0]["path"]
    try:
        attrs = read_attributes(held)
        ds = pydicom.dcmread(held, stop_before_pixels=True, specific_tags=["OriginalAttributesSequence"])
        last = ds.OriginalAttributesSequence[-1]
        when = datetime.strptime(str(last.AttributeModificationDateTime), "%Y%m%d%H%M%S.%f%z")
    except Exception:  # not reconciled by us (no item, another time format) or unreadable: a new one
        return None
    want = {PATIENT_ID: ids["PatientID"], ISSUER_OF_PATIENT_ID: ids["IssuerOfPatientID"],
            PATIENT_NAME: ids["PatientName"], ACCESSION_NUMBER: ids["AccessionNumber"]}
    want.update((t, v) for t, v in match.changes.items() if t in want)
    have = {PATIENT_ID: attrs.patient_id, ISSUER_OF_PATIENT_ID: attrs.issuer, PATIENT_NAME: attrs.patient_name,
            ACCESSION_NUMBER: attrs.accession}
    return when if have == want else None


def _flag_conflicts(report: ImportReport, patients: dict, store: ImportStore) -> None:
    """Flag every imported file of a Patient ID that names more than one patient (name or birth
    date differ) in this file-set; see the module docstring for why they are imported."""
    for (patient_id, _issuer), identities in patients.items():
        if not patient_id or len(identities) < 2:
            continue
        seqs = sorted(s for group in identities.values() for s in group)
        # No patient data in the text: it is stored and published; the operator's terminal shows the files.
        detail = (f"one Patient ID names {len(identities)} different patients (Patient's Name or Birth Date "
                  "differ) in this file-set; imported, check before the PACS merges them")
        for s in seqs:
            item = report.items[s - 1]
            report.items[s - 1] = replace(item, flag=PATIENT_ID_CONFLICT,
                                          detail=(item.detail + "; " if item.detail else "") + detail)
        store.flag(report.import_id, seqs, PATIENT_ID_CONFLICT, detail)
