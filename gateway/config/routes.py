"""`[[routes]]`: which destinations an instance goes to (gateway/routing.py applies them).

A route's criteria: `source` (where the object came from: "AE:CT1", "MEDIA:*", "CAPTURE:grabber0";
shell-style wildcards * ? [..] in the name, the kind spelled exactly), `calling_ae` (network peers
only, the older spelling of source = ["AE:<title>"]), `modality` and `sop_class`, and
`match`: any indexed attribute by keyword, against shell-style patterns, case-sensitively:

    [[routes]]
    to = ["neuro-pacs"]
    match = { StudyDescription = ["*HEAD*", "*BRAIN*"], PatientID = ["A-*"] }

The attributes are those the buffer indexes (ROUTE_ATTRIBUTES), as stored: after coercion."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from gateway.config.base import Section, Uid

# The kinds of gateway.buffer.source.SourceKind, spelled here because config sits below the buffer;
# tests/unit/test_intake.py checks that the two lists agree.
SOURCE_KINDS = ("AE", "MEDIA", "CAPTURE")


def _check_source_pattern(value: str) -> str:
    kind, sep, name = value.partition(":")
    if not sep or kind not in SOURCE_KINDS or not name:
        raise ValueError(f"{value!r} is not a source pattern: write KIND:NAME with KIND one of "
                         f"{', '.join(SOURCE_KINDS)} (e.g. \"AE:CT1\", \"MEDIA:*\")")
    return value


SourcePattern = Annotated[str, AfterValidator(_check_source_pattern)]


# the indexed attributes a route may match, keyword -> InstanceAttributes field
# (gateway/part10/attributes.py; tests/unit/test_coercion_rules.py checks the fields exist).
ROUTE_ATTRIBUTES = {
    "Modality": "modality", "SOPClassUID": "sop_class", "StudyDescription": "study_description",
    "SeriesDescription": "series_description", "PatientID": "patient_id", "IssuerOfPatientID": "issuer",
    "AccessionNumber": "accession", "StudyID": "study_id", "BodyPartExamined": "body_part",
    "ReferringPhysicianName": "referring", "StudyDate": "study_date", "PatientSex": "sex",
    "SeriesNumber": "series_number", "SpecificCharacterSet": "charset",
}


def _check_match(value: dict) -> dict:
    for key, patterns in value.items():
        if key not in ROUTE_ATTRIBUTES:
            raise ValueError(f"match: {key!r} is not an indexed attribute; one of {', '.join(ROUTE_ATTRIBUTES)}")
        if not patterns:
            raise ValueError(f"match.{key}: an empty list would match nothing; leave the key out")
    return value


class RouteSection(Section):
    to: Annotated[list[str], Field(min_length=1)]
    # Empty list = matches anything. Several criteria are ANDed; values in one list are ORed.
    source: list[SourcePattern] = []
    calling_ae: list[str] = []
    modality: list[str] = []
    sop_class: list[Uid] = []
    # keyword -> patterns (ORed); keywords ANDed with each other and the criteria above
    match: Annotated[dict[str, Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]],
                                         Field(max_length=64)]],
                     Field(max_length=len(ROUTE_ATTRIBUTES)), AfterValidator(_check_match)] = {}
