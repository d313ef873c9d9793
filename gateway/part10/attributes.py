"""The few attributes the buffer indexes, read from a Part-10 file without touching its pixel data.

Only these are parsed; the stored bytes stay exactly as received. Values are checked here because
everything downstream (routing, query, media paths) trusts them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword

from gateway.part10.structure import StrayFileMeta, StructureError, check_structure, walk_file

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

_TAGS = [
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "StudyDate", "StudyTime",
    "AccessionNumber", "Modality", "ReferringPhysicianName", "StudyDescription",
    "SeriesDescription", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate",
    "PatientSex", "BodyPartExamined", "StudyInstanceUID", "SeriesInstanceUID", "StudyID",
    "SeriesNumber", "InstanceNumber",
]


_TAG_OF = {kw: tag_for_keyword(kw) for kw in _TAGS}
_VR_OF = {tag: dictionary_VR(tag).encode("ascii") for tag in _TAG_OF.values()}
_WANTED = frozenset(_TAG_OF.values())
# Character sets whose text values decode byte by byte to one Python codec. Anything else (ISO
# 2022 code extensions, several values, GB18030...) goes to pydicom, which knows their rules.
_CODECS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


class _Unusual(Exception):
    """The header needs pydicom's general reader."""


class MalformedDataset(Exception):
    """The data set cannot be parsed at all (C000)."""


class InvalidDataset(Exception):
    """The data set parses but contradicts the request or lacks what every IOD needs (A900)."""


@dataclass(frozen=True)
class InstanceAttributes:
    transfer_syntax: str
    sop_class: str
    sop_uid: str
    study_uid: str
    series_uid: str
    patient_id: str = ""
    issuer: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    study_id: str = ""
    study_description: str = ""
    referring: str = ""
    charset: str = ""
    modality: str = ""
    series_number: str = ""
    series_description: str = ""
    body_part: str = ""
    instance_number: str = ""


def configure_pydicom() -> None:
    """Process-wide: pydicom's per-value validation while reading only warns (nobody reads the
    warnings of a headless box) and costs a third of the header parse on every received object.
    The values that matter are checked here, and by the print SCP's own validation."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


def is_valid_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and bool(_UID_RE.match(value))


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _fast_fields(path: Path) -> tuple[str, dict[str, str]]:
    """The indexed attributes from one structure walk over the file (no pydicom parse): the common
    case of a received object, at a fraction of pydicom's cost. Raises StructureError for a data
    set that does not hold together, _Unusual for anything that needs pydicom."""
    ts, raw = walk_file(path, wanted=_WANTED)
    charset = raw.get(_TAG_OF["SpecificCharacterSet"], (None, b""))[1]
    codec = _CODECS.get(charset.decode("ascii", "replace").strip(" \x00"))
    if codec is None:
        raise _Unusual("character set")
    fields = {}
    for kw, tag in _TAG_OF.items():
        vr, value = raw.get(tag, (None, b""))
        if vr is not None and vr != _VR_OF[tag]:
            raise _Unusual(f"{kw} sent as {vr!r}")
        try:
            text = value.decode(codec)
        except UnicodeDecodeError:
            raise _Unusual(f"{kw} does not decode") from None
        # As pydicom reads them: values split at backslashes, padding removed from each.
        text = "\\".join(v.strip(" \x00") for v in text.split("\\")).strip()
        # A person name's empty trailing component groups ("Alphabetic=Ideographic=") are dropped.
        fields[kw] = text.rstrip("=") if _VR_OF[tag] == b"PN" else text
    return ts, fields


def _pydicom_fields(path: Path) -> tuple[str, dict[str, str]]:
    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    ts = str(ds.file_meta.TransferSyntaxUID)
    # pydicom stops quietly at the end of a truncated data set; this does not.
    check_structure(path, ts)
    # Force decoding of every kept element now, so a truncated or garbled value fails here,
    # while we can still answer C000, and not later in a query or an export.
    return ts, {kw: _text(ds, kw) for kw in _TAGS}


def read_attributes(path: Path) -> InstanceAttributes:
    """Parse the index attributes of the Part-10 file at `path`.

    Raises MalformedDataset when it cannot be read, InvalidDataset when a required UID is
    missing or not a UID, StrayFileMeta when the data set begins with group 0002 elements (the
    caller decides: drop them, or refuse).
    """
    try:
        try:
            ts, fields = _fast_fields(path)
        except _Unusual:
            ts, fields = _pydicom_fields(path)
    except StrayFileMeta:
        raise
    except StructureError as exc:
        raise MalformedDataset(f"cannot parse data set: {exc}") from None
    except Exception as exc:  # pydicom raises many kinds on hostile input; all mean "cannot parse"
        raise MalformedDataset(f"cannot parse data set: {type(exc).__name__}: {exc}") from None

    for kw in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not fields[kw]:
            raise InvalidDataset(f"{kw} is missing")
        if not is_valid_uid(fields[kw]):
            raise InvalidDataset(f"{kw} is not a valid UID")

    return InstanceAttributes(
        transfer_syntax=ts,
        sop_class=fields["SOPClassUID"],
        sop_uid=fields["SOPInstanceUID"],
        study_uid=fields["StudyInstanceUID"],
        series_uid=fields["SeriesInstanceUID"],
        patient_id=fields["PatientID"],
        issuer=fields["IssuerOfPatientID"],
        patient_name=fields["PatientName"],
        birth_date=fields["PatientBirthDate"],
        sex=fields["PatientSex"],
        study_date=fields["StudyDate"],
        study_time=fields["StudyTime"],
        accession=fields["AccessionNumber"],
        study_id=fields["StudyID"],
        study_description=fields["StudyDescription"],
        referring=fields["ReferringPhysicianName"],
        charset=fields["SpecificCharacterSet"],
        modality=fields["Modality"],
        series_number=fields["SeriesNumber"],
        series_description=fields["SeriesDescription"],
        body_part=fields["BodyPartExamined"],
        instance_number=fields["InstanceNumber"],
    )
