"""The file-set creator: plan a file-set from instances, write what must be written, lay it out (PS3.10 8).

plan_fileset reads only headers and decides everything: File IDs, directory records, which files a
profile forces to be converted, what is left out and why, and a size estimate. write_fileset writes
the DICOMDIR and the converted files into a staging folder; the plan's mapping then says, for
every relative path on the medium, which file holds its bytes (staging for the DICOMDIR and the
converted files, the buffer's own file for the rest), so a drive writes each byte once.
materialize lays a plan out in a folder (tests, the bench, a folder "drive").

Speed (bench/bench_export.py): an image's header is read by the one structure walk that also
checks it holds together (gateway.part10.structure.walk_file), its raw values decoded by pydicom
only where a record needs text (a pydicom Dataset is made for a new patient, study or series, and
the patient keys are decoded once per patient; the other instances of a series compare bytes),
and its IMAGE record kept as the encoded bytes it came with;
pydicom.dcmread reads only the other objects (SR, KO, PR, encapsulated documents, RT...) and files
the walk refuses, so their reasons are pydicom's as before. The copies run in the kernel and one
syncfs(2) makes them durable. Memory: the plan keeps per instance its PlannedFile and the record's
encoded keys (~1 KB in all), and the DICOMDIR is streamed to the medium.

Patients: one Patient ID names one patient on a file-set (PS3.3 F.5.1). Instances whose Patient ID
is already on the file-set under another Patient's Name are not merged: they are left out with the
reason, to go on a medium of their own. Instances without a Patient ID get an invented one
(NOIDnnnn) per distinct name and birth date.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary

from gateway.media.dicomdir import (
    MEDIA_STORAGE_DIRECTORY_SOP_CLASS,
    RecordError,
    RecordNode,
    encode_keys,
    image_record_from_values,
    leaf_record,
    leaf_record_type,
    patient_record,
    series_record,
    study_record,
    write_dicomdir,
)
from gateway.media.file_ids import FileIdAllocator, FileIdError, file_id_path
from gateway.part10.structure import EXPLICIT_BE, IMPLICIT_LE, StructureError, check_structure, walk_file
from gateway.media.profiles import ConversionError, Profile, convert, decide, get_profile

log = logging.getLogger(__name__)

DICOMDIR = "DICOMDIR"
# Bytes a directory record takes, for the size estimate only: pydicom's test and charset files
# average 190 bytes a record; the margin covers SR records with long code sequences.
_RECORD_ESTIMATE = 512
# Every top-level key the plan and the PATIENT/STUDY/SERIES/IMAGE records read (PS3.3 F.5.1-F.5.3,
# F.5.8); the structure walk collects their raw values on its way to the last byte.
_HEADER_KEYWORDS = (
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "PatientName", "PatientID",
    "PatientBirthDate", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription", "StudyID",
    "AccessionNumber", "SeriesInstanceUID", "SeriesDate", "SeriesTime", "SeriesNumber", "Modality",
    "AcquisitionDate", "AcquisitionTime", "ContentDate", "ContentTime", "InstanceNumber", "Rows",
    "Columns", "NumberOfFrames", "SamplesPerPixel", "BitsAllocated",
)
_HEADER_TAGS = frozenset(tag_for_keyword(kw) for kw in _HEADER_KEYWORDS)
# Modalities whose instances have a record type other than IMAGE whatever their SOP class (PS3.3
# F.4, as pydicom's table decides it).
_NOT_IMAGE_MODALITIES = frozenset({"RTINTENT", "RTSEGANN", "RTRAD", "PLAN"})


class FilesetError(Exception):
    """The file-set cannot be written where asked; one line."""


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """One instance on the medium: its File ID, where its bytes are, and whether they are converted.

    syntax: the transfer syntax of the file on the medium (the source's unless convert is True).
    estimated_size: bytes on the medium (exact when copied; an upper bound when converted).
    Slotted: a plan holds one per instance, thousands of them.
    """

    file_id: tuple[str, ...]
    source: Path
    sop_class: str
    sop_instance: str
    source_syntax: str
    syntax: str
    convert: bool
    estimated_size: int
    patient: str
    study: str
    series: str

    @property
    def path(self) -> str:
        """The File ID as a relative path, "DICOM/P0000001/..."."""
        return "/".join(self.file_id)


@dataclass(frozen=True)
class LeftOut:
    """An instance not on the file-set and the one-line reason."""

    source: Path
    reason: str


@dataclass
class FilesetPlan:
    """What plan_fileset decided; write_fileset and materialize carry it out.

    files: in File ID order of allocation; left_out: what is not on the file-set and why (write_fileset
    adds conversions that failed); mapping: after write_fileset, [(relative destination, source
    path)] with the DICOMDIR first.
    """

    profile: Profile
    fileset_id: str
    files: list[PlannedFile] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    mapping: list[tuple[str, Path]] = field(default_factory=list)
    # Every record kept as its encoded keys (dicomdir.encode_keys), not as a Dataset: a few hundred
    # bytes an instance, so that the plan's memory grows by little more than the DICOMDIR's size.
    _patients: dict[str, bytes] = field(default_factory=dict, repr=False)
    _studies: dict[tuple[str, str], bytes] = field(default_factory=dict, repr=False)
    _series: dict[tuple[str, str, str], bytes] = field(default_factory=dict, repr=False)
    _leaves: dict[str, tuple[str, bytes]] = field(default_factory=dict, repr=False)

    @property
    def estimated_size(self) -> int:
        """Bytes the file-set takes on a medium: the files plus the DICOMDIR (an estimate, never low by design)."""
        records = len(self._patients) + len(self._studies) + len(self._series) + len(self._leaves)
        return sum(f.estimated_size for f in self.files) + 1024 + records * _RECORD_ESTIMATE

    def record_tree(self, exclude: frozenset[str] = frozenset()) -> list[RecordNode]:
        """The PATIENT/STUDY/SERIES/leaf records of the planned files, without the SOP Instance UIDs in exclude.

        Linear in the number of files; a patient, study or series left with nothing is dropped. The
        nodes hold the records' encoded keys; a node's .record decodes them when read.
        """
        roots: list[RecordNode] = []
        patients: dict[str, RecordNode] = {}
        studies: dict[tuple[str, str], RecordNode] = {}
        series: dict[tuple[str, str, str], RecordNode] = {}
        for f in self.files:
            if f.sop_instance in exclude:
                continue
            p = patients.get(f.patient)
            if p is None:
                p = patients[f.patient] = RecordNode("PATIENT", keys=self._patients[f.patient])
                roots.append(p)
            sk = (f.patient, f.study)
            s = studies.get(sk)
            if s is None:
                s = studies[sk] = RecordNode("STUDY", keys=self._studies[sk])
                p.children.append(s)
            rk = (f.patient, f.study, f.series)
            r = series.get(rk)
            if r is None:
                r = series[rk] = RecordNode("SERIES", keys=self._series[rk])
                s.children.append(r)
            record_type, keys = self._leaves[f.sop_instance]
            r.children.append(RecordNode(record_type, keys=keys))
        return roots


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


_UI_TAGS = {kw: tag_for_keyword(kw) for kw in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID",
                                                 "SeriesInstanceUID")}


_PATIENT_TAGS = tuple(tag_for_keyword(kw) for kw in ("SpecificCharacterSet", "PatientName", "PatientID",
                                                     "PatientBirthDate"))


def _raw_dataset(raw: dict, implicit: bool, little: bool) -> Dataset:
    # The walk's raw values as a pydicom Dataset: decoded by pydicom on access, in the file's
    # Specific Character Set, as pydicom.dcmread would give them.
    elements = {}
    for key, (vr, value) in raw.items():
        tag = BaseTag(key)
        elements[tag] = RawDataElement(tag, vr.decode("ascii") if vr else None, len(value), value, 0,
                                       implicit, little)
    return Dataset(elements)


def _patient_keys(ds: Dataset) -> tuple[str, str, str]:
    return str(ds.get("PatientName", "") or ""), _text(ds, "PatientID"), _text(ds, "PatientBirthDate")


class _Header:
    """One instance's header as the plan reads it: the walk's raw values (raw, None after a pydicom
    read) and a pydicom Dataset of them (.ds), made only when a record needs one. Most instances
    of a series need none: their keys are compared from the raw bytes."""

    __slots__ = ("raw", "_implicit", "_little", "_ds")

    def __init__(self, raw: dict | None, implicit: bool = False, little: bool = True,
                 ds: Dataset | None = None):
        self.raw, self._implicit, self._little, self._ds = raw, implicit, little, ds

    @property
    def ds(self) -> Dataset:
        if self._ds is None:
            self._ds = _raw_dataset(self.raw, self._implicit, self._little)
        return self._ds

    def key(self, keyword: str) -> str:
        """A UID key, stripped: a single UID is ASCII in every character set, so it is read from
        the walk's bytes as pydicom would (trailing NUL and spaces gone); anything else through pydicom."""
        if self.raw is not None and keyword in _UI_TAGS:
            value = self.raw.get(_UI_TAGS[keyword], (None, b""))[1]
            if b"\\" not in value and value.isascii():
                return value.decode("ascii").strip("\x00 ")
        return _text(self.ds, keyword)

    def patient(self, decoded: dict) -> tuple[str, str, str]:
        """(Patient's Name, Patient ID, Patient's Birth Date) as pydicom decodes them. decoded: the
        plan's cache by the raw bytes of these keys and the character set (one decode per patient)."""
        if self._ds is not None or self.raw is None:
            return _patient_keys(self.ds)
        key = (self._implicit, self._little, *(self.raw.get(t) for t in _PATIENT_TAGS))
        found = decoded.get(key)
        if found is None:
            only = {t: self.raw[t] for t in _PATIENT_TAGS if t in self.raw}
            found = decoded[key] = _patient_keys(_raw_dataset(only, self._implicit, self._little))
        return found


def _pixel_bytes(ds: Dataset) -> int:
    try:
        return (int(ds.Rows) * int(ds.Columns) * int(ds.get("NumberOfFrames") or 1)
                * int(ds.get("SamplesPerPixel") or 1) * int(ds.BitsAllocated) + 7) // 8
    except (AttributeError, TypeError, ValueError):
        return 0


def _walked_header(source: Path) -> tuple[str, _Header, dict] | None:
    """The plan's keys of an ordinary image file from one structure walk -> (syntax, header, raw), else None.

    The header's Dataset (made when needed) holds the raw top-level values, decoded by pydicom on
    access in the file's Specific Character Set, so the records read the same values
    pydicom.dcmread would give, at the cost of the walk the structure check makes anyway. None (the caller reads the file
    with pydicom) for a file that does not walk, and for anything but an image storage SOP class:
    the other record types read sequences and keys the walk does not collect (PS3.3 F.5). raw:
    the walk's {tag: (VR, value bytes)}.
    """
    try:
        syntax, raw = walk_file(source, wanted=_HEADER_TAGS)
    except (StructureError, OSError, ValueError):
        return None
    # Deflated data sets are walked inflated, in Explicit VR LE, like every other explicit LE one.
    implicit, little = syntax == IMPLICIT_LE, syntax != EXPLICIT_BE
    sop_class = raw.get(0x00080016, (None, b""))[1].rstrip(b"\x00 ").decode("ascii", "replace")
    modality = raw.get(0x00080060, (None, b""))[1].strip(b"\x00 ").decode("ascii", "replace")
    if modality in _NOT_IMAGE_MODALITIES or _record_type_of_class(sop_class) != "IMAGE":
        return None
    return syntax, _Header(raw, implicit, little), raw


@functools.lru_cache(maxsize=256)
def _record_type_of_class(sop_class: str) -> str:
    # "IMAGE" only for a SOP class the UID dictionary names an image storage class and the record
    # type table (leaf_record_type, PS3.3 F.4) makes an IMAGE; one lookup per class, not per file.
    if not UID_dictionary.get(sop_class, ("",))[0].endswith("Image Storage"):
        return ""
    probe = Dataset()
    probe.SOPClassUID = sop_class
    return leaf_record_type(probe)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def plan_fileset(instances: Iterable[Path | str], profile: str | Profile,
                 fileset_id: str = "") -> FilesetPlan:
    """Plan a file-set of the given Part-10 files for an application profile (PS3.10 8, PS3.11 D).

    instances: paths of Part-10 files, in the order they go on the medium; profile: "STD-GEN-CD",
    "STD-GEN-DVD-JPEG", "STD-GEN-USB-JPEG" or a Profile; fileset_id: the File-set ID (0004,1130),
    at most 16 characters of A-Z 0-9 _ and space. Reads headers only (no pixel data). A file that
    is unreadable, a duplicate, a second patient under one Patient ID, or in a transfer syntax the
    profile can neither take nor convert is left out with the reason. Raises ProfileError for an
    unknown profile and FileIdError for a bad fileset_id.
    """
    prof = get_profile(profile)
    if not re.fullmatch(r"[A-Z0-9_ ]{0,16}", fileset_id):
        raise FileIdError(f"File-set ID {fileset_id!r} must be at most 16 characters of A-Z, 0-9, _ "
                          "and space (PS3.10 8.2)")
    plan = FilesetPlan(prof, fileset_id)
    ids = FileIdAllocator()
    names: dict[str, object] = {}
    invented: dict[tuple[str, str], str] = {}
    study_ids: dict[tuple[str, str], str] = {}
    series_numbers: dict[tuple[str, str], int] = {}
    instance_numbers: dict[tuple[str, str, str], int] = {}
    decoded: dict[tuple, tuple[str, str, str]] = {}
    for item in instances:
        # The caller's Path as it is (not a copy of it per PlannedFile).
        source = item if isinstance(item, Path) else Path(item)
        walked = _walked_header(source)
        raw = None
        if walked is not None:
            syntax, h, raw = walked
        else:
            try:
                h = _Header(None, ds=pydicom.dcmread(source, stop_before_pixels=True))
                syntax = str(h.ds.file_meta.get("TransferSyntaxUID", "") or "")
            except (OSError, InvalidDicomError, ValueError, TypeError, EOFError, AttributeError,
                    KeyError, NotImplementedError) as exc:
                plan.left_out.append(LeftOut(source, f"not a readable DICOM file: {_one_line(exc)}"))
                continue
        sop_class, sop_uid = h.key("SOPClassUID"), h.key("SOPInstanceUID")
        if not syntax:
            plan.left_out.append(LeftOut(source, "no Transfer Syntax UID in a File Meta Information "
                                         "(PS3.10 7.1)"))
            continue
        if sop_class == MEDIA_STORAGE_DIRECTORY_SOP_CLASS:
            plan.left_out.append(LeftOut(source, "a DICOMDIR is not an instance to put on a file-set"))
            continue
        if not sop_class or not sop_uid:
            plan.left_out.append(LeftOut(source, "no SOP Class UID or SOP Instance UID"))
            continue
        if sop_uid in plan._leaves:
            plan.left_out.append(LeftOut(source, f"SOP Instance UID {sop_uid} is already on the file-set"))
            continue
        try:
            # Headers only (the walk seeks over values): a source that does not parse to its last
            # byte would be a broken file on the medium, which readers like dcmmkdir refuse. A
            # walked header has passed this check already.
            if walked is None:
                check_structure(source, syntax)
        except (StructureError, OSError, ValueError) as exc:
            plan.left_out.append(LeftOut(source, f"the data set does not hold together: {_one_line(exc)}"))
            continue
        decision = decide(prof, syntax)
        if decision.action == "omit":
            plan.left_out.append(LeftOut(source, decision.reason))
            continue

        name, patient, birth_date = h.patient(decoded)
        if not patient:
            key = (name, birth_date)
            patient = invented.get(key) or invented.setdefault(key, f"NOID{len(invented) + 1:04d}")
        if patient in names and names[patient] != name:
            plan.left_out.append(LeftOut(source, f"Patient ID {patient!r} is already on this file-set "
                                         "for another patient's name; not merged (PS3.3 F.5.1)"))
            continue
        # Interned: every instance of a series holds the same three keys in its PlannedFile.
        study = sys.intern(h.key("StudyInstanceUID"))
        series = sys.intern(h.key("SeriesInstanceUID"))
        patient = sys.intern(patient)
        try:
            new_patient = patient not in plan._patients
            if new_patient:
                patient_rec = encode_keys("PATIENT", patient_record(h.ds, patient))
            sk = (patient, study)
            if sk not in plan._studies:
                sid = _text(h.ds, "StudyID") or _text(h.ds, "AccessionNumber")[:16] \
                    or str(len(study_ids) + 1)
                study_rec = encode_keys("STUDY", study_record(h.ds, sid))
            rk = (patient, study, series)
            if rk not in plan._series:
                number = _text(h.ds, "SeriesNumber") or str(series_numbers.get(sk, 0) + 1)
                series_rec = encode_keys("SERIES", series_record(h.ds, number))
            file_id = ids.allocate(patient, study, series)
            count = instance_numbers.get(rk, 0) + 1
            leaf = None
            if raw is not None:
                record_type = "IMAGE"
                leaf = image_record_from_values(raw, file_id, sop_class, sop_uid, decision.target, count)
            if leaf is None:
                record_type, leaf = leaf_record(h.ds, file_id, decision.target, count)
            # Encoded now, once: the plan keeps the bytes the DICOMDIR will hold, not the Dataset.
            leaf = encode_keys(record_type, leaf)
        except (RecordError, FileIdError) as exc:
            plan.left_out.append(LeftOut(source, _one_line(exc)))
            continue

        # Commit the instance only now that every record it needs could be built.
        if new_patient:
            plan._patients[patient] = patient_rec
            names[patient] = name
        if sk not in plan._studies:
            plan._studies[sk] = study_rec
            study_ids[sk] = sid
        if rk not in plan._series:
            plan._series[rk] = series_rec
            series_numbers[sk] = series_numbers.get(sk, 0) + 1
        instance_numbers[rk] = count
        plan._leaves[sop_uid] = (sys.intern(record_type), leaf)
        size = source.stat().st_size
        if decision.action == "convert":
            size += _pixel_bytes(h.ds)
        # Interned: a handful of distinct classes and syntaxes, shared by every PlannedFile.
        plan.files.append(PlannedFile(file_id, source, sys.intern(sop_class), sop_uid, sys.intern(syntax),
                                      sys.intern(decision.target), decision.action == "convert", size,
                                      patient, study, series))
    for gone in plan.left_out:
        log.info("file-set %s: left out %s: %s", fileset_id or "-", gone.source.name, gone.reason)
    return plan


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_fileset(plan: FilesetPlan, staging_dir: Path) -> list[tuple[str, Path]]:
    """Write the DICOMDIR and the converted files of plan into staging_dir, fsynced (PS3.10 8.6).

    Returns the plan's mapping [(relative destination path, source path)], DICOMDIR first; copied
    files map to their source. A conversion that fails moves its instance to plan.left_out and off
    the DICOMDIR. Raises FilesetError (one line) when staging_dir cannot be written or the plan
    would leave an empty file-set.
    """
    staging_dir = Path(staging_dir)
    dirs: set[Path] = set()
    failed: set[str] = set()
    try:
        staging_dir.mkdir(parents=True, exist_ok=True)
        for f in plan.files:
            if not f.convert:
                continue
            dest = staging_dir / f.path
            try:
                convert(f.source, dest, f.syntax)
            except ConversionError as exc:
                failed.add(f.sop_instance)
                plan.left_out.append(LeftOut(f.source, _one_line(exc)))
                log.info("file-set %s: left out %s: %s", plan.fileset_id or "-", f.source.name, exc)
                dest.unlink(missing_ok=True)
                continue
            dirs.update(p for p in dest.parents if staging_dir in p.parents or p == staging_dir)
        roots = plan.record_tree(frozenset(failed))
        if not roots:
            raise FilesetError("nothing to put on the file-set: every instance was left out")
        write_dicomdir(staging_dir / DICOMDIR, roots, plan.fileset_id)
        dirs.add(staging_dir)
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            _fsync_dir(d)
    except OSError as exc:
        raise FilesetError(f"cannot write the file-set into {staging_dir}: {_one_line(exc)}") from exc
    plan.files = [f for f in plan.files if f.sop_instance not in failed]
    plan.mapping = [(DICOMDIR, staging_dir / DICOMDIR)] + [
        (file_id_path(f.file_id), staging_dir / f.path if f.convert else f.source) for f in plan.files
    ]
    return plan.mapping


def _copy(source: Path, target: str | Path) -> None:
    # In the kernel: copy_file_range (a reflink where the file system can), else sendfile; the
    # bytes never pass through Python. O_EXCL: a file-set folder never overwrites a file.
    fd_in = os.open(source, os.O_RDONLY)
    try:
        fd_out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            left = os.fstat(fd_in).st_size
            use_range = hasattr(os, "copy_file_range")
            while left > 0:
                if use_range:
                    try:
                        n = os.copy_file_range(fd_in, fd_out, left)
                    except OSError as exc:
                        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                            raise
                        use_range = False
                        continue
                else:
                    n = os.sendfile(fd_out, fd_in, None, left)
                if n == 0:
                    raise OSError(errno.EIO, f"{source} ended {left} bytes early")
                left -= n
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _syncfs_call():
    # syncfs(2) reports write-back errors of the file system only since Linux 5.8 (errseq on the
    # superblock); before that, or off Linux, it may return 0 after a lost write: fsync per file.
    if not sys.platform.startswith("linux"):
        return None
    try:
        major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())
        if (major, minor) < (5, 8):
            return None
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (AttributeError, OSError, ValueError):
        return None


_SYNCFS = _syncfs_call()


def _sync_written(dest_dir: Path, files: Iterable[str | Path], dirs: list[Path]) -> None:
    """Make every file and directory materialize wrote durable before it returns (PS3.10 8: a
    file-set is only a file-set whole). files: iterated only on the fsync path. One syncfs(2) of dest_dir's file system where it reports
    write-back errors, else an fsync per file and per directory, deepest first. Raises OSError."""
    if _SYNCFS is not None:
        fd = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs: {os.strerror(err)}")
        finally:
            os.close(fd)
        return
    for target in files:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        _fsync_dir(d)


def materialize(plan: FilesetPlan, dest_dir: Path) -> list[tuple[str, Path]]:
    """Lay the file-set out in dest_dir (which must be empty or absent), every file durable on return.

    The DICOMDIR and the converted files are written straight into dest_dir (it is the staging
    folder), the other files copied from their source once, in the kernel. Durable: one syncfs(2)
    of dest_dir's file system on Linux >= 5.8 (it covers every file and directory written and
    reports write-back errors), else an fsync per file and directory. Returns the mapping. Raises
    FilesetError (one line) for a non-empty dest_dir or a write that fails.
    """
    dest_dir = Path(dest_dir)
    if dest_dir.exists() and any(dest_dir.iterdir()):
        raise FilesetError(f"{dest_dir} is not empty; a file-set is written into an empty folder")
    mapping = write_fileset(plan, dest_dir)
    # Plain strings, made as they are used: Path arithmetic per file costs more than the copy's own
    # system calls, and a list of targets would grow the memory with the file-set.
    root = str(dest_dir)
    folders: set[str] = set()
    for rel, _ in mapping:
        folder = rel.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    dirs = [dest_dir / folder for folder in sorted(folders, key=lambda f: f.count("/"))]

    def copied():
        # The files materialize copies (the DICOMDIR and converted files are written in place).
        for rel, source in mapping:
            target = f"{root}/{rel}"
            if str(source) != target:
                yield source, target

    try:
        for d in dirs:
            d.mkdir(exist_ok=True)  # parents first: the sort puts them there
        for source, target in copied():
            _copy(source, target)
        # One sync after all the copies: the kernel writes back while we copy, and nothing is
        # reported written before the sync returns.
        _sync_written(dest_dir, (target for _, target in copied()), dirs + [dest_dir])
    except OSError as exc:
        raise FilesetError(f"cannot copy the file-set into {dest_dir}: {_one_line(exc)}") from exc
    return mapping
