"""The few attributes the buffer indexes, read from a Part-10 file without touching its pixel data.

Only these are parsed; the stored bytes stay exactly as received. Values are checked here because
everything downstream (routing, query, media paths) trusts them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pydicom

from gateway.buffer.structure import check_structure

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

_TAGS = [
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "StudyDate", "StudyTime",
    "AccessionNumber", "Modality", "ReferringPhysicianName", "StudyDescription",
    "SeriesDescription", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate",
    "PatientSex", "BodyPartExamined", "StudyInstanceUID", "SeriesInstanceUID", "StudyID",
    "SeriesNumber", "InstanceNumber",
]


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


def read_attributes(path: Path) -> InstanceAttributes:
    """Parse the index attributes of the Part-10 file at `path`.

    Raises MalformedDataset when pydicom cannot read it, InvalidDataset when a required UID is
    missing or not a UID.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
        # pydicom stops quietly at the end of a truncated data set; this does not.
        check_structure(path, str(ds.file_meta.TransferSyntaxUID))
        # Force decoding of every kept element now, so a truncated or garbled value fails here,
        # while we can still answer C000, and not later in a query or an export.
        fields = {kw: _text(ds, kw) for kw in _TAGS}
        ts = str(ds.file_meta.TransferSyntaxUID)
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
