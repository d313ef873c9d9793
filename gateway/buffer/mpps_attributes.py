"""The attribute lists of a Modality Performed Procedure Step's N-CREATE and N-SET (PS3.4 F.7.2,
Table F.7.2-1; the IOD is PS3.3 B.17 / C.4.13-C.4.16), built from the Procedure a capture is for.

Why on the buffer floor and not in the SCU: the lists are built when the step is queued
(gateway/buffer/mpps.py MppsStore.begin / complete) and stored with it as bytes, so that
  - a step queued before a crash is sent after it exactly as recorded (a changed config or a
    worklist refreshed meanwhile cannot change what the RIS is told about a past procedure);
  - bad input (a procedure whose data set does not decode, a missing Study Instance UID) is a
    one-line ValueError to the caller at the moment it happens, not a dead job found later;
  - the SCU (gateway/dicom/mpps_scu.py) only sends bytes, as the forwarder does.
This module is pure pydicom: it opens no socket and no file.

Bytes stay bytes: patient, accession and scheduled step attributes are copied from the worklist
identifier as the SCP encoded them (pydicom's raw elements, written back unchanged), with the
identifier's Specific Character Set (0008,0005), so a name in ISO 2022 Japanese or Latin-1 reaches
the RIS as the RIS wrote it. Only values this box makes (IDs, dates, AE titles, UIDs) are new.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Iterable

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from gateway.buffer.procedure import Procedure

# (0040,0252) Performed Procedure Step Status, PS3.3 C.4.14.
IN_PROGRESS, COMPLETED, DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"

_SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
# Patient attributes of Table F.7.2-1 copied from the identifier (name, ID, birth date, sex: type 2;
# issuer of patient ID: type 3, copied when the worklist sent it).
_PATIENT = (Tag(0x0010, 0x0010), Tag(0x0010, 0x0020), Tag(0x0010, 0x0021), Tag(0x0010, 0x0030),
            Tag(0x0010, 0x0040))
_PATIENT_TYPE2 = (Tag(0x0010, 0x0010), Tag(0x0010, 0x0020), Tag(0x0010, 0x0030), Tag(0x0010, 0x0040))
_STUDY_UID = Tag(0x0020, 0x000D)
_ACCESSION = Tag(0x0008, 0x0050)
_REQUESTED_PROCEDURE_ID = Tag(0x0040, 0x1001)
_REQUESTED_PROCEDURE_DESCRIPTION = Tag(0x0032, 0x1060)
_SPS_SEQUENCE = Tag(0x0040, 0x0100)
_SPS_ID = Tag(0x0040, 0x0009)
_SPS_DESCRIPTION = Tag(0x0040, 0x0007)
_SCHEDULED_PROTOCOL_CODES = Tag(0x0040, 0x0008)
_REFERENCED_STUDY = Tag(0x0008, 0x1110)
_REF_SOP_CLASS, _REF_SOP_INSTANCE = Tag(0x0008, 0x1150), Tag(0x0008, 0x1155)
# Code Sequence Macro (PS3.3 Table 8.8-1): the leaves a scheduled protocol code carries.
_CODE_LEAVES = (Tag(0x0008, 0x0100), Tag(0x0008, 0x0102), Tag(0x0008, 0x0103), Tag(0x0008, 0x0104),
                Tag(0x0008, 0x0119), Tag(0x0008, 0x0120))
_PPS_DESCRIPTION = Tag(0x0040, 0x0254)
_PPS_TYPE_DESCRIPTION = Tag(0x0040, 0x0255)

# PS3.16 CID 9300 "Procedure Discontinuation Reasons": the reasons a capture can give.
DISCONTINUATION_REASONS: dict[str, tuple[str, str, str]] = {
    "equipment-failure": ("110501", "DCM", "Equipment failure"),
    "patient-refused": ("110510", "DCM", "Patient refused to continue procedure"),
    "patient-condition": ("110507", "DCM", "Patient condition prevented continuing"),
    "wrong-worklist-entry": ("110514", "DCM", "Incorrect worklist entry selected"),
    "duplicate-order": ("110500", "DCM", "Doctor canceled procedure"),
    "other": ("110513", "DCM", "Discontinued for unspecified reason"),
}


class MppsAttributeError(ValueError):
    """The attribute list cannot be built; the message is one line naming what is wrong."""


@dataclass(frozen=True)
class ReferencedImage:
    """One object the procedure produced (PS3.4 Table F.7.2-1, Performed Series Sequence >
    Referenced Image Sequence): SOP Class UID (0008,1150), SOP Instance UID (0008,1155) and the
    Series Instance UID (0020,000E) of its series. A plain (class, instance, series) tuple works
    wherever a ReferencedImage is taken."""

    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str


def pps_id_for(mpps_uid: str) -> str:
    """A Performed Procedure Step ID (0040,0253, SH: 16 characters) derived from the MPPS SOP
    Instance UID: stable across a restart (the same step always gets the same ID) and, unlike a
    counter, needing no state."""
    return "PPS" + hashlib.sha1(mpps_uid.encode("ascii")).hexdigest()[:13].upper()


def _raw_copy(src: Dataset, tag: int, dst: Dataset, as_tag: int | None = None) -> bool:
    """Copy element `tag` of `src` into `dst` as it was read (its bytes), under `as_tag` when
    given. False when `src` lacks it."""
    if tag not in src:
        return False
    elem = src.get_item(tag)
    if isinstance(elem, RawDataElement):
        if as_tag is not None:
            elem = elem._replace(tag=Tag(as_tag))
        dst[elem.tag] = elem
    else:
        # Already decoded (an identifier built in memory): its value, under the wanted tag.
        dst.add(DataElement(Tag(as_tag if as_tag is not None else tag), elem.VR, elem.value))
    return True


def _ensure_empty(ds: Dataset, tag: int, vr: str) -> None:
    """A type 2 attribute the identifier did not give: present, zero length (PS3.5 7.4)."""
    if tag not in ds:
        ds.add(DataElement(Tag(tag), vr, Sequence() if vr == "SQ" else None))


def _items(src: Dataset, tag: int) -> list[Dataset]:
    """The items of sequence `tag` of `src` (decoded as sequence items, their leaves still raw)."""
    if tag not in src:
        return []
    value = src[tag].value
    return list(value) if value else []


def _code_items(items: Iterable[Dataset]) -> Sequence:
    out = Sequence()
    for item in items:
        code = Dataset()
        for leaf in _CODE_LEAVES:
            _raw_copy(item, leaf, code)
        out.append(code)
    return out


def _da_tm(when: datetime) -> tuple[str, str]:
    # DA / TM of the box's local time (PS3.5 6.2); no offset: the modality's clock is the context.
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S")


def _scheduled_step_items(proc: Procedure, src: Dataset, study_uid: str) -> Sequence:
    """Scheduled Step Attributes Sequence (0040,0270) items: one per Scheduled Procedure Step of
    the worklist item (PS3.4 F.7.2.1); for an unscheduled capture one item with the Study Instance
    UID and every other attribute zero length (PS3.4 Table F.7.2-1, the unscheduled case)."""
    steps = _items(src, _SPS_SEQUENCE) if proc.scheduled else []
    out = Sequence()
    for sps in steps or [None]:
        item = Dataset()
        item.add(DataElement(_STUDY_UID, "UI", study_uid))
        if proc.scheduled:
            refs = Sequence()
            for ref in _items(src, _REFERENCED_STUDY):
                r = Dataset()
                _raw_copy(ref, _REF_SOP_CLASS, r)
                _raw_copy(ref, _REF_SOP_INSTANCE, r)
                refs.append(r)
            item.add(DataElement(_REFERENCED_STUDY, "SQ", refs))
            _raw_copy(src, _ACCESSION, item)
            _raw_copy(src, _REQUESTED_PROCEDURE_ID, item)
            _raw_copy(src, _REQUESTED_PROCEDURE_DESCRIPTION, item)
            if sps is not None:
                _raw_copy(sps, _SPS_ID, item)
                _raw_copy(sps, _SPS_DESCRIPTION, item)
                item.add(DataElement(_SCHEDULED_PROTOCOL_CODES, "SQ",
                                     _code_items(_items(sps, _SCHEDULED_PROTOCOL_CODES))))
        for tag, vr in ((_REFERENCED_STUDY, "SQ"), (_ACCESSION, "SH"), (_REQUESTED_PROCEDURE_ID, "SH"),
                        (_REQUESTED_PROCEDURE_DESCRIPTION, "LO"), (_SPS_ID, "SH"), (_SPS_DESCRIPTION, "LO"),
                        (_SCHEDULED_PROTOCOL_CODES, "SQ")):
            _ensure_empty(item, tag, vr)
        out.append(item)
    return out


def create_attributes(proc: Procedure, *, pps_id: str, started: datetime, station_ae: str, modality: str,
                      study_uid: str = "", station_name: str = "", location: str = "", study_id: str = "",
                      description: str = "") -> Dataset:
    """The N-CREATE Attribute List of a new Performed Procedure Step, status IN PROGRESS
    (PS3.4 F.7.2.1, Table F.7.2-1 N-CREATE column).

    proc: the procedure (its identifier gives the patient and the scheduled step attributes).
    pps_id: Performed Procedure Step ID (0040,0253), SH. started: PPS Start Date/Time
    (0040,0244/0245), local time. station_ae: Performed Station AE Title (0040,0241), the box's
    AE title. modality: (0008,0060), e.g. "US", "ES", "XC". study_uid: the Study Instance UID of
    the captured objects when the worklist item has none (or the capture is unscheduled): it goes
    in the Scheduled Step Attributes item. station_name / location / study_id / description:
    (0040,0242), (0040,0243), (0020,0010), (0040,0254) (type 2; "" sends them empty; an empty
    description takes the SPS description, then the requested procedure's, as the RIS wrote them).
    The attributes an N-SET may set later (end date/time, Performed Series Sequence,
    discontinuation reason) are created empty: PS3.4 F.7.2.2 lets an N-SET change only what the
    N-CREATE created.
    Raises MppsAttributeError (one line) when the identifier does not decode, no Study Instance
    UID is known, or a value does not fit its VR."""
    try:
        return _create(proc, pps_id=pps_id, started=started, station_ae=station_ae, modality=modality,
                       study_uid=study_uid, station_name=station_name, location=location, study_id=study_id,
                       description=description)
    except MppsAttributeError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom reads lazily: bad bytes fail where first read
        raise MppsAttributeError(f"procedure {proc.key}: its data set does not decode: "
                                 f"{type(exc).__name__}: {exc}") from None


def _create(proc: Procedure, *, pps_id: str, started: datetime, station_ae: str, modality: str, study_uid: str,
            station_name: str, location: str, study_id: str, description: str) -> Dataset:
    try:
        src = proc.dataset()
    except ValueError as exc:
        raise MppsAttributeError(str(exc)) from None
    uid = study_uid or proc.study_uid
    if not uid and _STUDY_UID in src:
        uid = str(src[_STUDY_UID].value or "")
    if not uid:
        raise MppsAttributeError(f"procedure {proc.key}: no Study Instance UID (the worklist gave none"
                                 " and none was passed)")
    for name, value, limit in (("pps_id", pps_id, 16), ("station_ae", station_ae, 16), ("modality", modality, 16),
                               ("study_id", study_id, 16), ("station_name", station_name, 16)):
        if len(value) > limit or "\\" in value:
            raise MppsAttributeError(f"{name} {value!r} does not fit its attribute (at most {limit} characters)")
    for name, value in (("pps_id", pps_id), ("station_ae", station_ae), ("modality", modality)):
        if not value.strip():
            raise MppsAttributeError(f"{name} must not be empty (type 1 in PS3.4 Table F.7.2-1)")
    ds = Dataset()
    _raw_copy(src, _SPECIFIC_CHARACTER_SET, ds)
    ds.add(DataElement(0x00400270, "SQ", _scheduled_step_items(proc, src, uid)))
    for tag in _PATIENT:
        _raw_copy(src, tag, ds)
    for tag, vr in zip(_PATIENT_TYPE2, ("PN", "LO", "DA", "CS")):
        _ensure_empty(ds, tag, vr)
    day, time_ = _da_tm(started)
    ds.add(DataElement(0x00400253, "SH", pps_id))
    ds.add(DataElement(0x00400241, "AE", station_ae))
    ds.add(DataElement(0x00400242, "SH", station_name))
    ds.add(DataElement(0x00400243, "SH", location))
    ds.add(DataElement(0x00400244, "DA", day))
    ds.add(DataElement(0x00400245, "TM", time_))
    ds.add(DataElement(0x00400252, "CS", IN_PROGRESS))
    if description:
        ds.add(DataElement(_PPS_DESCRIPTION, "LO", description))
    else:
        steps = _items(src, _SPS_SEQUENCE) if proc.scheduled else []
        if not (steps and _raw_copy(steps[0], _SPS_DESCRIPTION, ds, _PPS_DESCRIPTION)) and proc.scheduled:
            _raw_copy(src, _REQUESTED_PROCEDURE_DESCRIPTION, ds, _PPS_DESCRIPTION)
        _ensure_empty(ds, _PPS_DESCRIPTION, "LO")
    if not (proc.scheduled and _raw_copy(src, _REQUESTED_PROCEDURE_DESCRIPTION, ds, _PPS_TYPE_DESCRIPTION)):
        ds.add(DataElement(_PPS_TYPE_DESCRIPTION, "LO", None))
    ds.add(DataElement(0x00081032, "SQ", Sequence()))  # Procedure Code Sequence, type 2
    ds.add(DataElement(0x00400250, "DA", None))  # End Date: set by the N-SET
    ds.add(DataElement(0x00400251, "TM", None))  # End Time: set by the N-SET
    ds.add(DataElement(0x00400281, "SQ", Sequence()))  # Discontinuation Reason: created to be settable
    ds.add(DataElement(0x00080060, "CS", modality))
    ds.add(DataElement(0x00200010, "SH", study_id))
    ds.add(DataElement(0x00400260, "SQ", Sequence()))  # Performed Protocol Code Sequence, type 2
    ds.add(DataElement(0x00400340, "SQ", Sequence()))  # Performed Series Sequence: empty until the N-SET
    return _adopt(ds)


def _referenced(images: Iterable[ReferencedImage | tuple[str, str, str]]) -> list[ReferencedImage]:
    out = []
    for image in images:
        ref = image if isinstance(image, ReferencedImage) else ReferencedImage(*image)
        for name in ("sop_class_uid", "sop_instance_uid", "series_uid"):
            value = getattr(ref, name)
            if not isinstance(value, str) or not value or len(value) > 64 or not all(
                    c.isdigit() or c == "." for c in value):
                raise MppsAttributeError(f"referenced image {name} {value!r} is not a UID")
        out.append(ref)
    return out


def set_attributes(images: Iterable[ReferencedImage | tuple[str, str, str]], *, ended: datetime,
                   discontinued: bool = False, reason: str | tuple[str, str, str] | None = None,
                   retrieve_ae: str = "",
                   protocol_name: str = "CAPTURE", series_description: str = "",
                   character_set: bytes | None = None) -> Dataset:
    """The N-SET Modification List that ends a Performed Procedure Step (PS3.4 F.7.2.2, Table
    F.7.2-1 N-SET column and its final state requirements).

    images: the objects the procedure produced; grouped into one Performed Series Sequence
    (0040,0340) item per Series Instance UID, in first-seen order, each with its Referenced Image
    Sequence (0008,1140) and an empty Referenced Non-Image Composite SOP Instance Sequence
    (0040,0220). A completed step needs at least one series (F.7.2.2: the sequence must not be
    empty at COMPLETED); a discontinued one may have none. ended: PPS End Date/Time
    (0040,0250/0251). discontinued: status DISCONTINUED instead of COMPLETED. reason: a key of
    DISCONTINUATION_REASONS (CID 9300), or a code (code value, coding scheme designator, code
    meaning), for the PPS Discontinuation Reason Code Sequence (0040,0281); only with
    discontinued. retrieve_ae: Retrieve AE Title (0008,0054) of each
    series (type 2). protocol_name: Protocol Name (0018,1030, type 1). series_description:
    (0008,103E). character_set: the raw value of the N-CREATE's Specific Character Set, repeated
    here so that any text of the N-SET is read in it (1C).
    Raises MppsAttributeError (one line) for a bad UID, an unknown reason, a reason without
    discontinued, or COMPLETED with no image."""
    refs = _referenced(images)
    if reason is not None and not discontinued:
        raise MppsAttributeError("a discontinuation reason is given only with discontinued=True")
    if isinstance(reason, tuple):
        if len(reason) != 3 or not all(isinstance(v, str) and v.strip() for v in reason):
            raise MppsAttributeError(f"a discontinuation reason code is (code value, coding scheme, meaning),"
                                     f" not {reason!r}")
    elif reason is not None and reason not in DISCONTINUATION_REASONS:
        raise MppsAttributeError(f"unknown discontinuation reason {reason!r}; known: "
                                 + ", ".join(sorted(DISCONTINUATION_REASONS)))
    if not refs and not discontinued:
        raise MppsAttributeError("a COMPLETED step references at least one image (PS3.4 F.7.2.2);"
                                 " discontinue it instead")
    if not protocol_name.strip():
        raise MppsAttributeError("protocol_name must not be empty (type 1 in the Performed Series Sequence)")
    ds = Dataset()
    if character_set:
        ds[_SPECIFIC_CHARACTER_SET] = RawDataElement(_SPECIFIC_CHARACTER_SET, "CS", len(character_set),
                                                     character_set, 0, False, True)
    day, time_ = _da_tm(ended)
    ds.add(DataElement(0x00400252, "CS", DISCONTINUED if discontinued else COMPLETED))
    ds.add(DataElement(0x00400250, "DA", day))
    ds.add(DataElement(0x00400251, "TM", time_))
    codes = Sequence()
    if reason is not None:
        value, scheme, meaning = reason if isinstance(reason, tuple) else DISCONTINUATION_REASONS[reason]
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
        codes.append(code)
    if discontinued:
        ds.add(DataElement(0x00400281, "SQ", codes))
    series: dict[str, list[ReferencedImage]] = {}
    for ref in refs:
        series.setdefault(ref.series_uid, []).append(ref)
    performed = Sequence()
    for series_uid, members in series.items():
        item = Dataset()
        item.PerformingPhysicianName = None
        item.ProtocolName = protocol_name
        item.OperatorsName = None
        item.SeriesInstanceUID = series_uid
        item.SeriesDescription = series_description or None
        item.RetrieveAETitle = retrieve_ae or None
        images_seq = Sequence()
        for ref in members:
            image = Dataset()
            image.ReferencedSOPClassUID = ref.sop_class_uid
            image.ReferencedSOPInstanceUID = ref.sop_instance_uid
            images_seq.append(image)
        item.ReferencedImageSequence = images_seq
        item.ReferencedNonImageCompositeSOPInstanceSequence = Sequence()
        performed.append(item)
    ds.add(DataElement(0x00400340, "SQ", performed))
    return _adopt(ds)


def _adopt(ds: Dataset) -> Dataset:
    """Give a built list, and every item nested in it, the character set of its (0008,0005) and
    the encoding its raw elements were read in (Explicit VR Little Endian), as a data set read
    from bytes has them. Why: pydicom decodes raw elements again before writing a data set it
    thinks was re-encoded, and items built in memory do not know their parent's character set;
    an ISO 2022 name would be decoded as Latin-1. So adopted, the list is written back byte for
    byte in Explicit VR (encode), and decoded in the right character set where a peer's Implicit
    VR needs it re-encoded."""
    charset = ds._character_set

    def walk(item: Dataset) -> None:
        item._parent_encoding = charset
        item.set_original_encoding(False, True, charset)
        for elem in item.values():
            if getattr(elem, "VR", None) == "SQ" and not isinstance(elem, RawDataElement):
                for child in elem.value or ():
                    walk(child)

    ds.set_original_encoding(False, True, charset)
    for elem in ds.values():
        if getattr(elem, "VR", None) == "SQ" and not isinstance(elem, RawDataElement):
            for child in elem.value or ():
                walk(child)
    return ds


def encode(ds: Dataset) -> bytes:
    """An attribute list as stored: Explicit VR Little Endian, no file meta. Raw elements are
    written as they were read (their bytes, in their character set)."""
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    return buf.getvalue()


def decode(data: bytes) -> Dataset:
    """A stored attribute list back as a Dataset (its elements raw until read). ValueError, one
    line, when the bytes are not a data set."""
    try:
        return read_dataset(BytesIO(data), is_implicit_VR=False, is_little_endian=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for bad bytes
        raise ValueError(f"stored MPPS attribute list does not decode: {exc}") from None


def character_set_of(ds: Dataset) -> bytes | None:
    """The raw value of (0008,0005) in `ds`, None when absent."""
    if _SPECIFIC_CHARACTER_SET not in ds:
        return None
    elem = ds.get_item(_SPECIFIC_CHARACTER_SET)
    if isinstance(elem, RawDataElement):
        return bytes(elem.value or b"") or None
    value = elem.value
    text = "\\".join(value) if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") and not isinstance(
        value, str) else str(value or "")
    return text.encode("ascii") or None
