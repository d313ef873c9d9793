"""C-FIND matching over the buffer's index (PS3.4 C.2.2, C.4.1.2, C.6.1 / C.6.2): a query
identifier in, response identifiers out, as pydicom Datasets. No network here: the C-FIND SCP
(gateway/dicom/qr_find_scp.py) turns these into DIMSE responses.

Information models: Patient Root (PATIENT, STUDY, SERIES, IMAGE) and Study Root (STUDY, SERIES,
IMAGE; the patient's attributes are study-level keys there). Search method: baseline hierarchical
(PS3.4 C.4.1.2.1): the identifier must hold the unique key of every level above the query level,
with single value matching; relational queries are not offered (extended negotiation byte 1 is
answered 0). Keys of a level above the query level besides its unique key are matched and
returned too (the parent's values).

Keys of a level below the query level (Modality at STUDY level, say): PS3.4 C.4.1.2.1 has the
SCU send the keys of the query level and the unique keys above it, nothing below; many
workstations send them anyway, and Orthanc and dcm4chee ignore them. So does this SCP: such a key
does not restrict the match and is returned zero length, and the pendings are FF01 (PS3.4
C.4.1.1.4, "one or more Optional Keys were not supported for existence and/or matching"), as for
any key the index does not hold; FindPlan.ignored lists them for the query's log line. One
exception, see _MODALITY_AT_STUDY: Modality (0008,0060) at STUDY level is matched as Modalities in
Study (0008,0061) would be (still returned zero length, still FF01).

Matching (PS3.4 C.2.2.2), all of it in one parameterised SQL statement over the index:
  - universal: a key sent empty (or "*") matches everything and is returned;
  - single value: equality (case-sensitive except PN, see below);
  - wildcard: "*" and "?" in AE, CS, LO, LT, PN, SH, ST, UC, UR, UT values, as SQLite GLOB
    ("[" escaped); a wildcard in a DA, TM or UI value is refused (QueryError, A900);
  - range: DA and TM "a-b", "a-", "-b"; StudyDate with StudyTime as one date-time range when
    the SCU negotiated combined date-time matching (extended negotiation byte 2, PS3.4 C.5.1.1.1);
  - list of UID: UI values separated by "\\" (PS3.4 C.2.2.2.2);
  - PN: case-insensitive by default (`pn_case_insensitive`), through the folded columns of
    migration 7 (NFC + str.casefold, non-ASCII too). A value without "=" matches a name whose whole
    value or any one component group (alphabetic, ideographic, phonetic) it matches; a value with
    "=" is matched against the whole name. A "*" in such a value may span a "=".
  - sequence matching: none of the attributes the index holds is in a sequence; a sequence key
    is answered with an empty sequence and does not restrict the match.
  - ModalitiesInStudy: matches a study with a series of any of the values given (C.6.1.1.3.2).
Return keys: the keys of Tables C.6-1 .. C.6-8 the index holds, and the derived counts and
ModalitiesInStudy; every other key asked for is returned zero length (PS3.4 C.2.2.1.3 and
C.4.1.1.3.2 leave the SCP zero length or absent for an optional key it does not support; zero
length tells the SCU the key was read). Private keys are dropped. The unique keys of the query
level and of every level above are always returned.

Specific Character Set of a response: the study's own (studies.charset; at PATIENT level the
patient's latest study's) when it can encode every value of the response, else ISO_IR 192 (UTF-8).
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from pydicom.charset import convert_encodings, encode_string, python_encoding
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.valuerep import PersonName

from gateway.buffer.query_columns import fold_pn, normal_time

if TYPE_CHECKING:
    from gateway.buffer.index import Index

PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
MODELS = {PATIENT_ROOT_FIND: ("PATIENT", "STUDY", "SERIES", "IMAGE"),
          STUDY_ROOT_FIND: ("STUDY", "SERIES", "IMAGE")}

IDENTIFIER_DOES_NOT_MATCH = 0xA900  # PS3.4 C.4.1.1.4
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
# Not keys: the identifier's own bookkeeping (PS3.4 C.4.1.1.3.1).
_NOT_KEYS = frozenset({Tag("SpecificCharacterSet"), Tag("QueryRetrieveLevel"), Tag("TimezoneOffsetFromUTC")})
_BATCH = 256
_TEXT_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC"})
# Return keys answered without the index: Retrieve AE Title (0008,0054), Instance Availability (0008,0056).
_ANSWERED = frozenset({0x00080054, 0x00080056})


class QueryError(Exception):
    """The identifier cannot be answered as asked. status: the C-FIND status (A900);
    comment: one line for Error Comment (no patient data); offending: the tag at fault, or None."""

    def __init__(self, comment: str, offending: int | None = None, status: int = IDENTIFIER_DOES_NOT_MATCH):
        super().__init__(comment)
        self.status, self.comment, self.offending = status, comment, offending


@dataclass(frozen=True)
class _Key:
    """An attribute the index holds. level: its entity (PATIENT .. IMAGE, Patient Root's levels).
    column: SQL giving its value. folded: the folded column (PN). derived: a count or a list
    worked out at query time, never matched (counts, PS3.4 C.6.1.1.3.2) or matched its own way."""

    keyword: str
    level: str
    column: str
    folded: str | None = None
    derived: bool = False


# Only what holds an instance is in the buffer for a query: a patient, study or series row left
# without instances (a replaced instance that moved to another patient or study) matches nothing
# and is not counted.
_STUDY_HOLDS = "EXISTS (SELECT 1 FROM series y JOIN instances z ON z.series_fk = y.id WHERE y.study_fk = {})"
_SERIES_HOLDS = "EXISTS (SELECT 1 FROM instances z WHERE z.series_fk = {})"
_HOLDS = {
    "PATIENT": ("EXISTS (SELECT 1 FROM studies x JOIN series y ON y.study_fk = x.id JOIN instances z"
                " ON z.series_fk = y.id WHERE x.patient_fk = p.id)"),
    "STUDY": _STUDY_HOLDS.format("st.id"),
    "SERIES": _SERIES_HOLDS.format("se.id"),
}
_COUNT_PATIENT_STUDIES = ("(SELECT COUNT(*) FROM studies x WHERE x.patient_fk = p.id AND "
                          + _STUDY_HOLDS.format("x.id") + ")")
_COUNT_PATIENT_SERIES = ("(SELECT COUNT(*) FROM studies x JOIN series y2 ON y2.study_fk = x.id"
                         " WHERE x.patient_fk = p.id AND " + _SERIES_HOLDS.format("y2.id") + ")")
_COUNT_PATIENT_INSTANCES = ("(SELECT COUNT(*) FROM studies x JOIN series y ON y.study_fk = x.id"
                            " JOIN instances z ON z.series_fk = y.id WHERE x.patient_fk = p.id)")
_COUNT_STUDY_SERIES = ("(SELECT COUNT(*) FROM series y2 WHERE y2.study_fk = st.id AND "
                       + _SERIES_HOLDS.format("y2.id") + ")")
_COUNT_STUDY_INSTANCES = ("(SELECT COUNT(*) FROM series y JOIN instances z ON z.series_fk = y.id"
                          " WHERE y.study_fk = st.id)")
_COUNT_SERIES_INSTANCES = "(SELECT COUNT(*) FROM instances z WHERE z.series_fk = se.id)"
_MODALITIES = ("(SELECT group_concat(m, '\\') FROM (SELECT DISTINCT y.modality AS m FROM series y"
               " WHERE y.study_fk = st.id AND y.modality != '' ORDER BY m))")

_KEYS = {k.keyword: k for k in (
    _Key("PatientName", "PATIENT", "p.patient_name", "p.name_folded"),
    _Key("PatientID", "PATIENT", "p.patient_id"),
    _Key("IssuerOfPatientID", "PATIENT", "p.issuer"),
    _Key("PatientBirthDate", "PATIENT", "p.birth_date"),
    _Key("PatientSex", "PATIENT", "p.sex"),
    _Key("NumberOfPatientRelatedStudies", "PATIENT", _COUNT_PATIENT_STUDIES, derived=True),
    _Key("NumberOfPatientRelatedSeries", "PATIENT", _COUNT_PATIENT_SERIES, derived=True),
    _Key("NumberOfPatientRelatedInstances", "PATIENT", _COUNT_PATIENT_INSTANCES, derived=True),
    _Key("StudyInstanceUID", "STUDY", "st.study_uid"),
    _Key("StudyDate", "STUDY", "st.study_date"),
    _Key("StudyTime", "STUDY", "st.study_time"),
    _Key("AccessionNumber", "STUDY", "st.accession"),
    _Key("StudyID", "STUDY", "st.study_id"),
    _Key("StudyDescription", "STUDY", "st.description"),
    _Key("ReferringPhysicianName", "STUDY", "st.referring", "st.referring_folded"),
    _Key("ModalitiesInStudy", "STUDY", _MODALITIES, derived=True),
    _Key("NumberOfStudyRelatedSeries", "STUDY", _COUNT_STUDY_SERIES, derived=True),
    _Key("NumberOfStudyRelatedInstances", "STUDY", _COUNT_STUDY_INSTANCES, derived=True),
    _Key("SeriesInstanceUID", "SERIES", "se.series_uid"),
    _Key("Modality", "SERIES", "se.modality"),
    _Key("SeriesNumber", "SERIES", "se.series_number"),
    _Key("SeriesDescription", "SERIES", "se.description"),
    _Key("BodyPartExamined", "SERIES", "se.body_part"),
    _Key("NumberOfSeriesRelatedInstances", "SERIES", _COUNT_SERIES_INSTANCES, derived=True),
    _Key("SOPInstanceUID", "IMAGE", "i.sop_uid"),
    _Key("SOPClassUID", "IMAGE", "i.sop_class"),
    _Key("InstanceNumber", "IMAGE", "i.instance_number"),
)}
_UNIQUE = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID",
           "IMAGE": "SOPInstanceUID"}
# Each level's table, how it joins its parent, and its primary key (batches are walked on it).
_FROM = {
    "PATIENT": ("patients p", "p.id"),
    "STUDY": ("studies st JOIN patients p ON p.id = st.patient_fk", "st.id"),
    "SERIES": ("series se JOIN studies st ON st.id = se.study_fk JOIN patients p ON p.id = st.patient_fk",
               "se.id"),
    "IMAGE": ("instances i JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk"
              " JOIN patients p ON p.id = st.patient_fk", "i.id"),
}
_CHARSET = {"PATIENT": "(SELECT x.charset FROM studies x WHERE x.patient_fk = p.id ORDER BY x.id DESC LIMIT 1)"}


def model_level(model: str, keyword: str) -> str:
    """The level of `keyword` in `model` (Study Root folds the patient's keys into STUDY)."""
    level = _KEYS[keyword].level
    return "STUDY" if level == "PATIENT" and model == STUDY_ROOT_FIND else level


@dataclass
class FindPlan:
    """A checked query: the SQL that matches it and how to build each response.
    level: the Query/Retrieve Level; sql/params: the statement (with a `> ?` on the primary key
    for batches, the last parameter); returned: (tag, VR, keyword or None) in identifier order;
    keyword None means zero length (a key the index does not hold, or one of a level below the
    query level); ignored: the tags of the keys of a level below the query level, in identifier
    order (not matched, except Modality at STUDY level, see _MODALITY_AT_STUDY)."""

    model: str
    level: str
    sql: str
    params: list
    returned: list[tuple[int, str, str | None]] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)

    @property
    def unsupported(self) -> bool:
        """Some key asked for is not held (returned zero length, not matched): the pendings are
        then FF01 (PS3.4 C.4.1.1.4: optional keys not supported)."""
        return any(kw is None and tag not in _ANSWERED for tag, _vr, kw in self.returned)


def plan(identifier: Dataset, model: str, *, pn_case_insensitive: bool = True,
         combined_datetime: bool = False) -> FindPlan:
    """Check `identifier` (a decoded C-FIND identifier) against `model` (PATIENT_ROOT_FIND or
    STUDY_ROOT_FIND) and build its SQL. A key of a level below the query level is not matched
    and is returned zero length (FindPlan.ignored; Modality at STUDY level excepted, see
    _MODALITY_AT_STUDY). Raises QueryError (A900, with the tag at fault) for a missing or unknown
    QueryRetrieveLevel, a missing or non-single unique key of a level above it (PS3.4 C.4.1.2.1),
    a wildcard where its VR allows none, or a malformed range."""
    levels = MODELS[model]
    raw_level = identifier.get("QueryRetrieveLevel")
    if raw_level is None or not str(raw_level).strip():
        raise QueryError("QueryRetrieveLevel (0008,0052) is missing", Tag("QueryRetrieveLevel"))
    level = str(raw_level).strip().upper()
    if level not in levels:
        raise QueryError(f"QueryRetrieveLevel {level[:16]} not in this model: {'/'.join(levels)}",
                         Tag("QueryRetrieveLevel"))
    depth = levels.index(level)
    where: list[str] = []
    params: list = []
    returned: list[tuple[int, str, str | None]] = []
    given: dict[str, object] = {}
    ignored: list[int] = []
    modality_at_study = None
    for elem in identifier:
        if elem.tag in _NOT_KEYS or elem.tag.is_private or elem.tag.element == 0:
            continue
        kw = keyword_for_tag(elem.tag)
        key = _KEYS.get(kw)
        if key is None:
            returned.append((int(elem.tag), elem.VR, None))
            continue
        if levels.index(model_level(model, kw)) > depth:
            # Not of this level: not matched, returned zero length, FF01 (the module's docstring).
            ignored.append(int(elem.tag))
            returned.append((int(elem.tag), elem.VR, None))
            if kw == _MODALITY_AT_STUDY and level == "STUDY":
                modality_at_study = elem.value
            continue
        given[kw] = elem.value
        returned.append((int(elem.tag), elem.VR, kw))
    # The unique keys of the levels above: present, single value (baseline hierarchical search).
    for above in levels[:depth]:
        kw = _UNIQUE[above]
        value = _text(given.get(kw))
        if not value or "\\" in value or "*" in value or "?" in value:
            raise QueryError(f"{kw} (one value) is required at {level} level", int(Tag(kw)))
    # The unique keys of the query level and above are always returned.
    for lvl in levels[:depth + 1]:
        kw = _UNIQUE[lvl]
        if kw not in given:
            tag = int(Tag(kw))
            returned.append((tag, dictionary_VR(tag), kw))
            given[kw] = ""
    combined = combined_datetime and _text(given.get("StudyDate")) not in ("", "*") \
        and _text(given.get("StudyTime")) not in ("", "*")
    for kw, value in given.items():
        if kw in ("StudyDate", "StudyTime") and combined:
            continue
        _condition(kw, value, pn_case_insensitive, where, params)
    if combined:
        _combined_condition(_text(given["StudyDate"]), _text(given["StudyTime"]), where, params)
    if modality_at_study is not None:
        _modalities_condition(_text(modality_at_study), where, params)
    if level in _HOLDS:
        where.append(_HOLDS[level])
    tables, pk = _FROM[level]
    columns = [f"{pk} AS _pk", f"{_CHARSET.get(level, 'st.charset')} AS _charset"]
    columns += [f"{_KEYS[kw].column} AS {kw}" for _tag, _vr, kw in returned if kw is not None]
    sql = (f"SELECT {', '.join(columns)} FROM {tables} WHERE {' AND '.join(where + [f'{pk} > ?'])}"
           f" ORDER BY {pk} LIMIT {_BATCH}")
    returned.sort(key=lambda r: r[0])
    return FindPlan(model, level, sql, params, returned, ignored)


def find(index: "Index", identifier: Dataset, model: str, *, pn_case_insensitive: bool = True,
         combined_datetime: bool = False, retrieve_ae: str = "",
         encoding: tuple[bool, bool] | None = None) -> Iterator[Dataset]:
    """The response identifiers of a C-FIND with `identifier` on `model`, one Dataset per match,
    in index order, read from `index` in batches of 256 (an abandoned iterator stops reading:
    that is how C-CANCEL ends a query). The query is checked before this returns: QueryError
    (see plan). `retrieve_ae`: the Retrieve AE Title (0008,0054) returned when asked for (""
    returns it zero length). `encoding`: (implicit VR, little endian) of the presentation context
    the responses go out on; given, pydicom writes the encoded values as they are instead of
    decoding and encoding them again. sqlite3 errors propagate from the iteration."""
    p = plan(identifier, model, pn_case_insensitive=pn_case_insensitive, combined_datetime=combined_datetime)
    return responses(index, p, retrieve_ae, encoding)


def responses(index: "Index", p: FindPlan, retrieve_ae: str = "",
              encoding: tuple[bool, bool] | None = None) -> Iterator[Dataset]:
    """The response identifiers of a checked plan (see find)."""
    last = 0
    while True:
        rows = index.query(p.sql, (*p.params, last))
        for row in rows:
            yield _response(p, row, retrieve_ae, encoding)
        if len(rows) < _BATCH:
            return
        last = rows[-1]["_pk"]


def _response(p: FindPlan, row, retrieve_ae: str, encoding: tuple[bool, bool] | None) -> Dataset:
    ds = Dataset()
    # Values are written as encoded bytes (raw elements, which pydicom writes as they are and
    # decodes when read): building and validating a DataElement per value, then encoding it again,
    # was most of a response's cost (the values were checked when they were received).
    for tag, vr, value in _elements(p, row, retrieve_ae):
        if value is None:
            ds.add(DataElement(tag, "SQ", Sequence()))
        else:
            ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
    if encoding is not None:
        # pydicom's writer decodes and re-encodes every raw element of a data set whose original
        # encoding or character set differs from the output's (filewriter.write_dataset): these
        # values are already in the output's character set, and their bytes do not depend on the
        # VR being explicit or not, nor on the byte order (text only).
        ds.set_original_encoding(encoding[0], encoding[1], ds._character_set)
    return ds


def _elements(p: FindPlan, row, retrieve_ae: str) -> list[tuple[int, str, bytes | None]]:
    """One response's elements in ascending tag order: (tag, VR, value as it goes on the wire,
    padded to even length), None for an empty sequence. Shared by the Dataset (_response) and the
    hand encoder (encode_response), so both carry the same bytes."""
    values: list[tuple[int, str, object]] = []
    texts: list[tuple[str, str]] = []
    for tag, vr, kw in p.returned:
        if kw is None:
            if tag == 0x00080054:  # Retrieve AE Title: where a C-MOVE of this match goes
                value = retrieve_ae
            elif tag == 0x00080056:  # Instance Availability: everything indexed is on disk
                value = "ONLINE"
            elif vr == "SQ":
                value = None
            else:
                value = ""
        else:
            value = row[kw]
            value = "" if value is None else str(value)
            if vr in _TEXT_VRS and value:
                texts.append((vr, value))
        values.append((tag, vr, value))
    terms = [t.strip() for t in (row["_charset"] or "").split("\\")]
    terms = terms if any(terms) else []
    encoded = _encode_texts(terms, texts)
    if encoded is None:
        terms = ["ISO_IR 192"]
        encoded = {t: t[1].encode("utf-8") for t in texts}
    out: list[tuple[int, str, bytes | None]] = []
    for tag, vr, value in values:
        if value is None:
            out.append((tag, vr, None))
        else:
            out.append((tag, vr, _pad(vr, encoded[(vr, value)] if vr in _TEXT_VRS and value else
                                      value.encode("ascii", "replace"))))
    out.append((0x00080052, "CS", _pad("CS", p.level.encode("ascii"))))
    if terms:
        out.append((0x00080005, "CS", _pad("CS", "\\".join(terms).encode("ascii"))))
    out.sort(key=_first)
    return out


def _first(item: tuple) -> int:
    return item[0]


def _pad(vr: str, value: bytes) -> bytes:
    """A value as it goes on the wire: padded to even length (UI with NUL, the rest with a space,
    PS3.5 6.2)."""
    if len(value) % 2:
        value += b"\x00" if vr == "UI" else b" "
    return value


# -- the identifier encoded by hand (PS3.5 7.1.2, 7.1.3) --------------------------------------------
# pydicom's write_dataset walks a Dataset element by element through its generic writer; a C-FIND
# response is a dozen short text elements whose bytes are already known, so its encoding is a few
# struct packs. Only for the VRs the returned keys can have; anything else goes to pydicom
# (encodable_by_hand False).
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_SHORT_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN",
                        "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"})
_IMPLICIT = struct.Struct("<HHI")
_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_EXPLICIT_LONG = struct.Struct("<HH2s2xI")


def encodable_by_hand(p: FindPlan) -> bool:
    """Whether encode_response can write every response of `p`: each returned key has one plain
    VR (not an ambiguous "US or SS"), and text keys (the only ones with values) are short VRs or
    the long text VRs."""
    return all(vr in _SHORT_VRS or vr in _LONG_VRS for _tag, vr, _kw in p.returned)


def encode_response(p: FindPlan, row, retrieve_ae: str, implicit_vr: bool) -> bytes:
    """One response identifier encoded in Little Endian, implicit or explicit VR (PS3.5 7.1.2 /
    7.1.3): the same elements and bytes that pydicom writes for _response's Dataset (pinned by
    tests/unit/test_qr_find_fast.py). Only for a plan with encodable_by_hand(p). Raises ValueError
    when a value is too long for its VR's 16-bit length (the caller falls back to pydicom)."""
    parts = []
    for tag, vr, value in _elements(p, row, retrieve_ae):
        if value is None:  # an empty sequence: defined length 0
            value = b""
        group, element = tag >> 16, tag & 0xFFFF
        if implicit_vr:
            parts.append(_IMPLICIT.pack(group, element, len(value)))
        elif vr in _LONG_VRS:
            parts.append(_EXPLICIT_LONG.pack(group, element, vr.encode("ascii"), len(value)))
        else:
            if len(value) > 0xFFFF:
                raise ValueError(f"({group:04X},{element:04X}) {vr} value of {len(value)} bytes")
            parts.append(_EXPLICIT_SHORT.pack(group, element, vr.encode("ascii"), len(value)))
        parts.append(value)
    return b"".join(parts)


def encoded_responses(index: "Index", p: FindPlan, retrieve_ae: str, implicit_vr: bool) -> Iterator[bytes]:
    """As responses(), each identifier encoded by encode_response (Little Endian, implicit or
    explicit VR) instead of built as a Dataset."""
    last = 0
    while True:
        rows = index.query(p.sql, (*p.params, last))
        for row in rows:
            yield encode_response(p, row, retrieve_ae, implicit_vr)
        if len(rows) < _BATCH:
            return
        last = rows[-1]["_pk"]


def _encode_texts(terms: list[str], texts: list[tuple[str, str]]) -> dict[tuple[str, str], bytes] | None:
    """Each of `texts` ((VR, value) pairs) encoded in the character set `terms` (a study's Specific
    Character Set, [] for the default repertoire), or None when one of them cannot be (the
    response then goes in ISO_IR 192)."""
    out: dict[tuple[str, str], bytes] = {}
    if not terms or (len(terms) == 1 and not terms[0].startswith("ISO 2022")):
        term = terms[0] if terms else "ISO_IR 6"
        codec = "ascii" if term == "ISO_IR 6" else python_encoding.get(term)
        if codec is None:
            return None
        try:
            for vr, t in texts:
                out[(vr, t)] = t.encode(codec)
        except UnicodeEncodeError:
            return None
        return out
    # Code extensions (ISO 2022): pydicom knows their escape rules, per component group of a
    # person name (PersonName.encode: no escape before the first group, as in PS3.5 H.3.1); it
    # only warns when it has to replace a character, so a warning is "cannot".
    try:
        encodings = convert_encodings(terms)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for vr, t in texts:
                out[(vr, t)] = PersonName(t).encode(encodings) if vr == "PN" else encode_string(t, encodings)
    except Exception:
        return None
    return out


def _text(value) -> str:
    """A key's value as one string: multiple values joined by "\\", None and empty as ""."""
    if value is None:
        return ""
    if isinstance(value, (MultiValue, list, tuple)):
        return "\\".join(str(v) for v in value)
    if isinstance(value, (bytes, bytearray)):
        return ""
    return str(value).strip()


def _glob(value: str) -> str:
    """A DICOM wildcard value as a GLOB pattern: * and ? keep their meaning, [ and ] are literal."""
    return "".join("[[]" if c == "[" else "[]]" if c == "]" else c for c in value)


def _condition(kw: str, value, pn_ci: bool, where: list[str], params: list) -> None:
    key = _KEYS[kw]
    if key.derived and kw != "ModalitiesInStudy":
        return  # counts are return keys only
    text = _text(value)
    if text in ("", "*"):
        return  # universal matching (PS3.4 C.2.2.2.3; "*" alone, C.2.2.2.4)
    vr = dictionary_VR(Tag(kw))
    wild = "*" in text or "?" in text
    if wild and vr not in WILDCARD_VRS:
        raise QueryError(f"{kw}: wildcards are not allowed in a {vr} value", int(Tag(kw)))
    if kw == "ModalitiesInStudy":
        _modalities_condition(text, where, params)
        return
    if vr == "UI":
        uids = [u.strip() for u in text.split("\\") if u.strip()]
        where.append(f"{key.column} IN ({', '.join('?' * len(uids))})")
        params.extend(uids)
        return
    if vr in ("DA", "TM") and "-" in text:
        lo, _, hi = text.partition("-")
        lo, hi = lo.strip(), hi.strip()
        if "-" in hi or not (lo or hi):
            raise QueryError(f"{kw}: the value is not a range (a-b, a-, -b)", int(Tag(kw)))
        column = key.column if vr == "DA" else _time_expr(key.column)
        if vr == "TM":
            lo, hi = normal_time(lo) if lo else "", normal_time(hi, "9") if hi else ""
        where.append(f"{key.column} != ''")
        if lo:
            where.append(f"{column} >= ?")
            params.append(lo)
        if hi:
            where.append(f"{column} <= ?")
            params.append(hi)
        return
    if vr == "PN":
        column = key.folded if pn_ci else key.column
        q = fold_pn(text) if pn_ci else text
        q = q.rstrip("=")
        pattern = _glob(q)
        if "=" in q:
            where.append(f"{column} GLOB ?")
            params.append(pattern)
        else:
            # The whole name, or any one component group of it (PS3.5 6.2.1.2).
            where.append(f"({column} GLOB ? OR {column} GLOB ? OR {column} GLOB ? OR {column} GLOB ?)")
            params.extend([pattern, pattern + "=*", "*=" + pattern, "*=" + pattern + "=*"])
        return
    if wild:
        where.append(f"{key.column} GLOB ?")
        params.append(_glob(text))
        return
    if vr == "TM":
        where.append(f"{_time_expr(key.column)} = ?")
        params.append(normal_time(text))
        return
    where.append(f"{key.column} = ?")
    params.append(text)


# Modality (0008,0060) at STUDY level. PS3.4 has it a series key only (Tables C.6-3 / C.6-6); the
# study-level key for it is Modalities in Study (0008,0061, Table C.6-2 / C.6-5), which matches a
# study with a series of any of the values given (C.6.1.1.3.2). A workstation that sends Modality=MR
# at study level means that: "the MR studies". Ignoring it would answer every study, which is
# correct by the standard (FF01 says the key was not used) but floods the SCU's list; matching it
# as Modalities in Study answers what was meant and filters no study the SCU wanted. It is still
# returned zero length and the pendings are still FF01: the key is not of this level, and a study
# has no single Modality to return. The other keys below the level are only ignored: none of them
# has a study-level counterpart.
_MODALITY_AT_STUDY = "Modality"


def _modalities_condition(text: str, where: list[str], params: list) -> None:
    """A study with a series whose Modality matches any of the "\\"-separated values of `text`
    (wildcards allowed: CS); none when `text` is empty or "*" (universal matching)."""
    if text in ("", "*"):
        return
    terms = []
    for v in text.split("\\"):
        terms.append("y.modality GLOB ?")
        params.append(_glob(v))
    where.append(f"EXISTS (SELECT 1 FROM series y WHERE y.study_fk = st.id AND ({' OR '.join(terms)}))")


def _time_expr(column: str) -> str:
    """SQL for a stored TM as normal_time() gives it (HHMMSS[.F]), so that "1430" compares with "143000"."""
    return (f"(CASE WHEN instr({column}, '.') > 0 THEN {column}"
            f" ELSE substr(replace({column}, ':', '') || '000000', 1, 6) END)")


def _combined_condition(date: str, time: str, where: list[str], params: list) -> None:
    """StudyDate and StudyTime as one range over studies.study_dt (PS3.4 C.2.2.2.5.1): dates
    d1-d2 and times t1-t2 mean from d1 t1 to d2 t2; a single value is both ends."""
    for kw, text in (("StudyDate", date), ("StudyTime", time)):
        if "*" in text or "?" in text:
            raise QueryError(f"{kw}: wildcards are not allowed in a {dictionary_VR(Tag(kw))} value", int(Tag(kw)))
    d_lo, d_range, d_hi = (s.strip() for s in date.partition("-"))
    t_lo, t_range, t_hi = (s.strip() for s in time.partition("-"))
    if not d_range:
        d_hi = d_lo
    if not t_range:
        t_hi = t_lo
    where.append("st.study_dt != ''")
    if d_lo:
        where.append("st.study_dt >= ?")
        params.append(d_lo + (normal_time(t_lo) if t_lo else ""))
    if d_hi:
        where.append("st.study_dt <= ?")
        params.append(d_hi + (normal_time(t_hi, "9") if t_hi else "999999.999999"))
