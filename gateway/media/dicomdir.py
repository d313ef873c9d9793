"""The DICOMDIR: its directory records (PS3.3 F.5) and a writer in linear time (PS3.10 8.6, PS3.3 F.3).

Not pydicom's FileSet.add/write: FileSet.add is quadratic and stages a copy of every instance
(../shared/PEERS.md: 2,000 files take ~17 s there against 0.3 s for dcmmkdir). pydicom does
build the leaf records (pydicom.fileset.DIRECTORY_RECORDERS, the F.5 keys per record type); this
module fills what the instances lack and lays the records out itself: every record's keys are
encoded exactly once (encode_keys; the planner does it as it plans and keeps only those bytes), the
byte offset of each record follows from the lengths, and each record's head (its offsets and type,
46 bytes and the type) is made as the file is written, before its keys. The keys are encoded by
pydicom, except records whose keys are all still raw Explicit VR LE elements
(image_record_from_values), whose bytes are laid out as they are.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid
# DIRECTORY_RECORDERS is public; _four_level_record_type (SOP class -> record type, Table F.4-1)
# is not, and is pinned by tests/unit/test_media_dicomdir.py's record type table.
from pydicom.fileset import DIRECTORY_RECORDERS, _four_level_record_type

from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

MEDIA_STORAGE_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"
EXPLICIT_LE = "1.2.840.10008.1.2.1"

_UL = struct.Struct("<I")
_ITEM = struct.Struct("<HHI")


class RecordError(ValueError):
    """An instance lacks a key its directory record needs and that cannot be filled; one line."""


class RecordNode:
    """One directory record and the records one level below it (PS3.3 F.3.2.2).

    RecordNode(record_type, record, children=None, *, keys=None). record_type: the Directory Record
    Type (0004,1430), e.g. "PATIENT", "IMAGE"; record: the record's own keys as a Dataset (no
    offsets, no Directory Record Type: the writer adds those); or keys: the same keys already
    encoded in Explicit VR LE (what the planner keeps: a few hundred bytes a record instead of a
    Dataset), decoded into .record only when someone reads it. Once .record has been read, the
    Dataset is what is written (the caller may have changed it). Raises TypeError with neither.
    """

    __slots__ = ("record_type", "children", "_record", "_keys")

    def __init__(self, record_type: str, record: Dataset | None = None,
                 children: list["RecordNode"] | None = None, *, keys: bytes | None = None):
        if record is None and keys is None:
            raise TypeError("RecordNode needs the record's keys as a Dataset or as encoded bytes")
        self.record_type = record_type
        self.children: list[RecordNode] = [] if children is None else children
        self._record = record
        self._keys = None if record is not None else keys

    @property
    def record(self) -> Dataset:
        if self._record is None:
            self._record = _decode_keys(self._keys)
        self._keys = None
        return self._record

    @record.setter
    def record(self, value: Dataset) -> None:
        self._record, self._keys = value, None

    def __repr__(self) -> str:
        return f"RecordNode({self.record_type!r}, {len(self.children)} children)"


@dataclass(frozen=True)
class DicomdirStats:
    """What write_dicomdir did: records written, record encodings done (== records: linear), bytes."""

    records: int
    encodings: int
    size: int


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _first_of(ds: Dataset, keywords: tuple[str, ...]) -> str:
    for kw in keywords:
        value = _text(ds, kw)
        if value:
            return value
    return ""


_DA = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")
_TM = re.compile(r"(\d{2})(?::?(\d{2})(?::?(\d{2})(\.\d{1,6})?)?)?")


def _da(value: str) -> str:
    """A DA value as PS3.5 6.2 has it (YYYYMMDD), also from ACR-NEMA's "YYYY.MM.DD"; "" when it is
    neither (a record must not copy an invalid value: the next candidate or the fill is taken)."""
    m = _DA.fullmatch(value)
    return "".join(m.groups()) if m else ""


def _tm(value: str) -> str:
    """A TM value (HH[MM[SS[.F]]]), also from ACR-NEMA's "HH:MM:SS.F"; "" when it is neither."""
    m = _TM.fullmatch(value)
    return "".join(g or "" for g in m.groups()) if m else ""


def _first_date(ds: Dataset, keywords: tuple[str, ...], clean) -> str:
    for kw in keywords:
        value = clean(_text(ds, kw))
        if value:
            return value
    return ""


def _charset(record: Dataset, ds: Dataset) -> Dataset:
    # A record's text is encoded in its own Specific Character Set (PS3.3 F.5, C.12.1.1.2); copying
    # the instance's keeps ISO 2022 and Latin-1 names as the modality wrote them.
    if ds.get("SpecificCharacterSet"):
        record.SpecificCharacterSet = ds.SpecificCharacterSet
    return record


def patient_record(ds: Dataset, patient_id: str) -> Dataset:
    """PATIENT record keys (PS3.3 F.5.1): Patient's Name (2), Patient ID (1), charset.

    patient_id: the ID this patient has in the file-set (the caller keeps it unique per patient).
    """
    record = _charset(Dataset(), ds)
    record.PatientName = ds.get("PatientName", "")
    record.PatientID = patient_id
    return record


def study_record(ds: Dataset, study_id: str, now: datetime | None = None) -> Dataset:
    """STUDY record keys (PS3.3 F.5.2): Study Date, Time, ID (1), Description, Accession Number (2), UID.

    Study Date/Time missing or invalid in the instance (ACR-NEMA's "1997.04.24" is rewritten as
    19970424): the Series, Acquisition or Content date/time, else the export time (Type 1 must
    have a value). study_id: the Study ID to record (the instance's, or one
    the planner made from the Accession Number or a counter). Raises RecordError without a Study
    Instance UID.
    """
    now = now or datetime.now()
    uid = _text(ds, "StudyInstanceUID")
    if not uid:
        raise RecordError("the instance has no Study Instance UID (PS3.3 F.5.2)")
    record = _charset(Dataset(), ds)
    record.StudyDate = _first_date(ds, ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"), _da) \
        or now.strftime("%Y%m%d")
    record.StudyTime = _first_date(ds, ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime"), _tm) \
        or now.strftime("%H%M%S")
    record.StudyDescription = ds.get("StudyDescription", "")
    record.StudyInstanceUID = uid
    record.StudyID = study_id
    record.AccessionNumber = ds.get("AccessionNumber", "")
    return record


def series_record(ds: Dataset, series_number: int | str) -> Dataset:
    """SERIES record keys (PS3.3 F.5.3): Modality, Series Instance UID, Series Number (1).

    A missing Modality becomes "OT" (other); series_number is the instance's or a counter from the
    planner. Raises RecordError without a Series Instance UID.
    """
    uid = _text(ds, "SeriesInstanceUID")
    if not uid:
        raise RecordError("the instance has no Series Instance UID (PS3.3 F.5.3)")
    record = _charset(Dataset(), ds)
    record.Modality = _text(ds, "Modality") or "OT"
    record.SeriesInstanceUID = uid
    record.SeriesNumber = series_number
    return record


def leaf_record_type(ds: Dataset) -> str:
    """The Directory Record Type of an instance's own record by its SOP class (PS3.3 F.4, Table F.4-1).

    IMAGE for image storage and unknown classes, else SR DOCUMENT, KEY OBJECT DOC, PRESENTATION,
    WAVEFORM, ENCAP DOC, RT DOSE/STRUCTURE SET/PLAN/TREAT RECORD, SPECTROSCOPY, RAW DATA,
    REGISTRATION, FIDUCIAL, STEREOMETRIC, ... (pydicom's table of them).
    """
    return _four_level_record_type(ds)


def _sr_keys(record: Dataset, ds: Dataset) -> None:
    # PS3.3 F.5.18/F.5.19: the record's Content Sequence holds only the root's HAS CONCEPT MOD
    # items (pydicom copies the whole document tree, which dciodvfy rightly refuses), and
    # Verification DateTime is required when the document is VERIFIED: the latest verifier's.
    items = [item for item in record.get("ContentSequence", [])
             if item.get("RelationshipType") == "HAS CONCEPT MOD"]
    if "ContentSequence" in record:
        del record.ContentSequence
    if items:
        record.ContentSequence = items
    if _text(ds, "VerificationFlag") == "VERIFIED" and "VerificationDateTime" not in record:
        times = [_text(v, "VerificationDateTime") for v in ds.get("VerifyingObserverSequence", [])]
        times = [t for t in times if t]
        if not times:
            raise RecordError("SR DOCUMENT record: the VERIFIED document has no Verification "
                              "DateTime (PS3.3 F.5.18)")
        record.VerificationDateTime = max(times)


def leaf_record(ds: Dataset, file_id: tuple[str, ...], transfer_syntax: str,
                instance_number: int) -> tuple[str, Dataset]:
    """The record for one instance (PS3.3 F.5.x by record type) -> (record type, record keys).

    file_id: its File ID components; transfer_syntax: the syntax of the file on the medium;
    instance_number: used where the instance has none. Content Date/Time missing: the Series or
    Study date/time. Raises RecordError (one line) when a Type 1 key is still missing.
    """
    record_type = leaf_record_type(ds)
    fill: dict[str, object] = {}
    if not _text(ds, "InstanceNumber"):
        fill["InstanceNumber"] = instance_number
    if not _text(ds, "ContentDate"):
        date = _first_date(ds, ("SeriesDate", "StudyDate"), _da)
        if date:
            fill["ContentDate"] = date
    if not _text(ds, "ContentTime"):
        time = _first_date(ds, ("SeriesTime", "StudyTime"), _tm)
        if time:
            fill["ContentTime"] = time
    view = ds
    if fill:
        # A shallow view that shares the instance's elements as they are (raw ones stay undecoded)
        # and only adds the filled keys: copying every element costs more than the record.
        view = Dataset({tag: ds.get_item(tag) for tag in ds.keys()})
        for keyword, value in fill.items():
            setattr(view, keyword, value)
    try:
        record = DIRECTORY_RECORDERS[record_type](view)
    except (ValueError, KeyError, AttributeError) as exc:
        raise RecordError(f"{record_type} record: {str(exc).splitlines()[0]}") from None
    if record_type in ("SR DOCUMENT", "KEY OBJECT DOC"):
        _sr_keys(record, ds)
    _charset(record, ds)
    record.ReferencedFileID = list(file_id)
    record.ReferencedSOPClassUIDInFile = _text(ds, "SOPClassUID")
    record.ReferencedSOPInstanceUIDInFile = _text(ds, "SOPInstanceUID")
    record.ReferencedTransferSyntaxUIDInFile = transfer_syntax
    return record_type, record


_IS_VALUE = re.compile(rb" *[+-]?[0-9]{1,12} *")
_TAG_CHARSET, _TAG_INSTANCE_NUMBER = 0x00080005, 0x00200013
# One tag object per key, shared by every record (a plan holds thousands of records in memory).
_TAGS = {t: Tag(t) for t in (_TAG_CHARSET, _TAG_INSTANCE_NUMBER, 0x00041500, 0x00041510, 0x00041511,
                             0x00041512)}


def _raw(tag: int, vr: str, value: bytes, pad: bytes) -> RawDataElement:
    # An element already in the DICOMDIR's encoding (Explicit VR LE); pydicom decodes it on access.
    if len(value) % 2:
        value += pad
    return RawDataElement(_TAGS.get(tag) or Tag(tag), vr, len(value), value, 0, False, True)


def image_record_from_values(values: dict[int, tuple[bytes | None, bytes]], file_id: tuple[str, ...],
                             sop_class: str, sop_instance: str, transfer_syntax: str,
                             instance_number: int) -> Dataset | None:
    """The IMAGE record (PS3.3 F.5.8) of an image instance from its raw top-level values -> keys, or None.

    values: (group << 16 | element) -> (VR or None, value bytes as encoded in the instance), as
    gateway.part10.structure.walk_file collects them; the record holds the same keys leaf_record
    gives an image (Instance Number, else instance_number; the Specific Character Set; the
    Referenced File ID, SOP Class, SOP Instance and Transfer Syntax UIDs in File), kept as encoded
    bytes so that nothing is decoded to be encoded again. None when the Instance Number is not a
    plain IS value: leaf_record decides those.
    """
    number = values.get(_TAG_INSTANCE_NUMBER, (None, b""))[1].strip(b" \x00")
    if not number:
        number = str(instance_number).encode("ascii")
    elif not _IS_VALUE.fullmatch(number):
        return None
    elements = {}
    charset = values.get(_TAG_CHARSET, (None, b""))[1]
    if charset.strip(b" \x00\\"):
        elements[_TAG_CHARSET] = _raw(_TAG_CHARSET, "CS", charset, b" ")
    elements[0x00041500] = _raw(0x00041500, "CS", "\\".join(file_id).encode("ascii"), b" ")
    elements[0x00041510] = _raw(0x00041510, "UI", sop_class.encode("ascii"), b"\x00")
    elements[0x00041511] = _raw(0x00041511, "UI", sop_instance.encode("ascii"), b"\x00")
    elements[0x00041512] = _raw(0x00041512, "UI", transfer_syntax.encode("ascii"), b"\x00")
    elements[_TAG_INSTANCE_NUMBER] = _raw(_TAG_INSTANCE_NUMBER, "IS", number, b" ")
    return Dataset({elem.tag: elem for _, elem in sorted(elements.items())})


def _short(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _file_meta() -> bytes:
    body = struct.pack("<HH2s2xI", 2, 1, b"OB", 2) + b"\x00\x01"
    body += _short(2, 2, b"UI", _uid(MEDIA_STORAGE_DIRECTORY_SOP_CLASS))
    # PS3.10 7.1: a DICOMDIR's Media Storage SOP Instance UID is the File-set's; one is made per write.
    body += _short(2, 3, b"UI", _uid(generate_uid()))
    body += _short(2, 0x10, b"UI", _uid(EXPLICIT_LE))
    body += _short(2, 0x12, b"UI", _uid(IMPLEMENTATION_CLASS_UID))
    version = IMPLEMENTATION_VERSION_NAME.encode("ascii")
    body += _short(2, 0x13, b"SH", version + b" " if len(version) % 2 else version)
    return b"\x00" * 128 + b"DICM" + _short(2, 0, b"UL", _UL.pack(len(body))) + body


_OFFSETS_END = 0x00041430  # the record's keys come after its offsets and Directory Record Type


_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})


def _raw_keys(keys: Dataset) -> bytes | None:
    # Keys that are all still the raw Explicit VR LE elements image_record_from_values made:
    # their encoding is their bytes behind a header (PS3.5 7.1.2). None: pydicom writes them.
    out = []
    for tag in sorted(keys.keys()):
        elem = keys.get_item(tag)
        if not isinstance(elem, RawDataElement) or elem.is_implicit_VR or not elem.is_little_endian \
                or elem.VR is None or elem.value is None or len(elem.value) % 2:
            return None
        vr = elem.VR.encode("ascii")
        if elem.VR in _LONG_VRS:
            out.append(struct.pack("<HH2s2xI", tag.group, tag.element, vr, len(elem.value)))
        elif len(elem.value) <= 0xFFFF:
            out.append(struct.pack("<HH2sH", tag.group, tag.element, vr, len(elem.value)))
        else:
            return None
        out.append(elem.value)
    return b"".join(out)


def encode_keys(record_type: str, keys: Dataset) -> bytes:
    """A record's own keys (no offsets, no type) encoded in Explicit VR LE, as the DICOMDIR holds them.

    What RecordNode(keys=...) takes: the planner encodes each record once, when it is planned, and
    keeps only these bytes (PS3.5 7.1.2, PS3.3 F.3.2.2). Raises RecordError when keys include the
    record's offsets or type (group 0004 up to (0004,1430)).
    """
    if keys and min(keys.keys()) <= _OFFSETS_END:
        raise RecordError(f"{record_type} record keys include the record's own offsets or type")
    raw = _raw_keys(keys)
    if raw is not None:
        return raw
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    # A view that says "already Explicit VR LE in its own character set" lets pydicom write the
    # elements as they are, without a decode and re-encode pass (its ambiguous-VR correction is
    # for data sets read as Implicit VR).
    view = Dataset(keys)
    if not any(" or " in (elem.VR or " or ") for elem in keys.elements()):
        charset = keys.get("SpecificCharacterSet")
        view.set_original_encoding(False, True, convert_encodings(charset) if charset else default_encoding)
    write_dataset(fp, view)
    return fp.getvalue()


def _decode_keys(keys: bytes) -> Dataset:
    # The inverse of encode_keys: raw elements, decoded by pydicom on access in the record's own
    # Specific Character Set.
    return read_dataset(BytesIO(keys), is_implicit_VR=False, is_little_endian=True)


def _node_keys(node: RecordNode) -> bytes:
    # A node planned as bytes is written as those bytes; one whose Dataset was given or read is
    # encoded now, once.
    return node._keys if node._keys is not None else encode_keys(node.record_type, node._record)


def _record_head(record_type: str, next_at: int, lower_at: int) -> bytes:
    # (0004,1400) next, (0004,1410) in-use FFFFH, (0004,1420) lower, (0004,1430) type: the same
    # 46 + len(type) bytes for every record but the two offsets.
    return _RECORD_HEAD.pack(4, 0x1400, b"UL", 4, next_at, 4, 0x1410, b"US", 2, 0xFFFF,
                             4, 0x1420, b"UL", 4, lower_at) + _record_type_element(record_type)


_RECORD_HEAD = struct.Struct("<HH2sHI HH2sHH HH2sHI")


def _record_type_element(record_type: str) -> bytes:
    kind = record_type.encode("ascii")
    return _short(4, 0x1430, b"CS", kind + b" " * (len(kind) % 2))


def _dicomdir_chunks(roots: list[RecordNode], fileset_id: str) -> tuple[Iterator[bytes], DicomdirStats]:
    """The DICOMDIR as byte strings in file order (the file is their concatenation), made as they are
    consumed, and the stats.

    Two passes over the records: their lengths give every record's offset (PS3.3 F.3.2.1, from the
    first byte of the file), then each record's head is made with its offsets and put before its
    keys; the keys themselves are not copied. Memory: a few entries per record besides its keys.
    """
    order: list[RecordNode] = []
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(node.children))
    keys = [_node_keys(node) for node in order]

    fsid = fileset_id.encode("ascii")
    if len(fsid) % 2:
        fsid += b" "
    meta = _file_meta()
    head_len = (8 + len(fsid)) + 12 + 12 + 10 + 12  # 1130, 1200, 1202, 1212, 1220 (SQ header)
    offset = len(meta) + head_len
    position: dict[int, int] = {}
    type_len: dict[str, int] = {}
    for node, body in zip(order, keys):
        position[id(node)] = offset
        kind = type_len.get(node.record_type)
        if kind is None:
            kind = type_len[node.record_type] = len(_record_type_element(node.record_type))
        offset += _ITEM.size + _RECORD_HEAD.size + kind + len(body)
    following: dict[int, int] = {}  # id(node) -> offset of its next sibling

    def link(siblings: list[RecordNode]) -> None:
        for a, b in zip(siblings, siblings[1:]):
            following[id(a)] = position[id(b)]

    link(roots)
    for node in order:
        link(node.children)

    first = position[id(roots[0])] if roots else 0
    last = position[id(roots[-1])] if roots else 0
    head = [meta, _short(4, 0x1130, b"CS", fsid), _short(4, 0x1200, b"UL", _UL.pack(first)),
            _short(4, 0x1202, b"UL", _UL.pack(last)), _short(4, 0x1212, b"US", struct.pack("<H", 0)),
            struct.pack("<HH2s2xI", 4, 0x1220, b"SQ", 0xFFFFFFFF)]

    def chunks() -> Iterator[bytes]:
        yield from head
        for node, body in zip(order, keys):
            lower = position[id(node.children[0])] if node.children else 0
            record_head = _record_head(node.record_type, following.get(id(node), 0), lower)
            yield _ITEM.pack(0xFFFE, 0xE000, len(record_head) + len(body)) + record_head
            yield body
        yield _ITEM.pack(0xFFFE, 0xE0DD, 0)

    return chunks(), DicomdirStats(records=len(order), encodings=len(keys), size=offset + _ITEM.size)


def encode_dicomdir(roots: list[RecordNode], fileset_id: str = "") -> tuple[bytes, DicomdirStats]:
    """The whole DICOMDIR file (PS3.10 8.6, PS3.3 F.3) in Explicit VR LE -> (bytes, stats).

    roots: the top level records (PATIENT...) with their subtrees, written depth first. Offsets are
    from the first byte of the file (preamble included), PS3.3 F.3.2.1. fileset_id: CS, at most 16
    characters of A-Z 0-9 _ and space (PS3.10 8.2). Linear: each record is encoded once (a record
    planned as bytes is not encoded again). Raises RecordError for keys that include the offsets.
    """
    chunks, stats = _dicomdir_chunks(roots, fileset_id)
    return b"".join(chunks), stats


def write_dicomdir(path: Path, roots: list[RecordNode], fileset_id: str = "") -> DicomdirStats:
    """Encode (as encode_dicomdir) and write the DICOMDIR at path, fsynced; -> stats.

    The records go to the file as they are laid out, through one buffered writer: the whole file
    is never held in memory twice. Raises OSError from the file system, RecordError as
    encode_dicomdir.
    """
    chunks, stats = _dicomdir_chunks(roots, fileset_id)
    with open(path, "wb", buffering=1 << 16) as fh:
        fh.writelines(chunks)
        fh.flush()
        os.fsync(fh.fileno())
    return stats
