"""Which stored instances a Query/Retrieve C-MOVE or C-GET identifier names (PS3.4 C.4.2.2.1,
C.4.3.2.1: the identifier of a retrieve, hierarchical, baseline behaviour).

A retrieve is not a query: only the Unique Keys count (PS3.4 C.2.2.1 and Table C.6-1/C.6-5):
PatientID at PATIENT level, StudyInstanceUID at STUDY, SeriesInstanceUID at SERIES,
SOPInstanceUID at IMAGE. The Unique Key of the retrieve level may be a list of UIDs (C.2.2.2.2,
List of UID Matching); each level above it takes exactly one value (the hierarchical model of
C.4.2.2.1.2: "a Unique Key for each level above the Query/Retrieve level"). Relational retrieve
(C.4.2.2.1.3) is not offered (it is an extended negotiation this SCP does not accept), so a key
missing above the retrieve level is an error, not a wider match.

Other attributes in the identifier are ignored, as C.4.2.2.1 allows an SCP to do with keys that
are not Unique Keys (SCUs send Specific Character Set, an empty Patient's Name...), with one
exception: IssuerOfPatientID, when given with a PatientID, narrows the patient (the index keeps
patients by (PatientID, issuer), and the same ID from two issuers is two people).

The answer is a list of Match rows in a stable order (study, series, instance as they entered the
index): the same identifier over the same buffer gives the same sub-operations in the same order.
A bad identifier raises BadIdentifier, which names the problem and carries the DIMSE status to
answer with (PS3.4 C.4.2.1.5 / C.4.3.1.4: A900 Identifier does not match SOP Class).
Nothing here decodes a stored file; the rows come from the index only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from gateway.buffer.index import Index

PATIENT_ROOT = "PATIENT"
STUDY_ROOT = "STUDY"

# The levels of each information model, top down (PS3.4 C.3.1 Patient Root, C.3.2 Study Root).
LEVELS: dict[str, tuple[str, ...]] = {
    PATIENT_ROOT: ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    STUDY_ROOT: ("STUDY", "SERIES", "IMAGE"),
}
# The Unique Key of each level (PS3.4 C.6.1.1 / C.6.2.1), and the index column it matches.
UNIQUE_KEY = {
    "PATIENT": ("PatientID", "p.patient_id"),
    "STUDY": ("StudyInstanceUID", "st.study_uid"),
    "SERIES": ("SeriesInstanceUID", "se.series_uid"),
    "IMAGE": ("SOPInstanceUID", "i.sop_uid"),
}

IDENTIFIER_MISMATCH = 0xA900  # PS3.4 C.4.2.1.5, C.4.3.1.4
# Number of Remaining Sub-operations is US (PS3.7 9.1.4.1.4 / 9.1.3.1): a retrieve of more
# instances could not report its counts.
MAX_SUBOPERATIONS = 65535
TOO_MANY = 0xA701  # PS3.4 C.4.2.1.5: Refused, Out of resources, unable to calculate number of matches

# A UID: digits and dots, at most 64 characters (PS3.5 9.1). Checked loosely on purpose: the
# buffer stores what senders sent, and a retrieve must find it by the same string.
_UID = re.compile(r"[0-9.]{1,64}")
# SQLite allows 32766 bound parameters (999 on old builds); UID lists are bound in chunks.
_CHUNK = 500


class BadIdentifier(ValueError):
    """The identifier cannot be a retrieve of the given model: `status` is the DIMSE status to
    answer with (A900, or A701 for a retrieve beyond 65535 instances); str() is one line naming
    the problem, fit for an Error Comment and the log (no patient data: key names, not values)."""

    def __init__(self, message: str, status: int = IDENTIFIER_MISMATCH):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Match:
    """One stored instance to send: `path` is relative to the buffer's root (FileStore.absolute),
    `transfer_syntax` the syntax the file is stored in; `instance_id` the index row."""

    instance_id: int
    sop_class: str
    sop_uid: str
    transfer_syntax: str
    path: str


@dataclass(frozen=True)
class RetrieveKeys:
    """An identifier reduced to what a retrieve uses: the level and, per level from the top down
    to it, the values of its Unique Key (one value above the retrieve level, one or more at it);
    `issuer`: IssuerOfPatientID when given with a PatientID, else None."""

    model: str
    level: str
    keys: tuple[tuple[str, tuple[str, ...]], ...]
    issuer: str | None = None


def _values(ds: "Dataset", keyword: str) -> tuple[str, ...]:
    """The values of `keyword` in `ds`, stripped, empty ones dropped; () when absent or empty."""
    if keyword not in ds:
        return ()
    value = ds[keyword].value
    if value is None:
        return ()
    # A multi-valued element is a MultiValue (a list); a single value a str (or bytes if undecoded).
    items = [value] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else list(value)
    out = []
    for v in items:
        text = (v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)).strip().rstrip("\x00")
        if text:
            out.append(text)
    return tuple(out)


def parse_identifier(model: str, identifier: "Dataset") -> RetrieveKeys:
    """The retrieve keys of a C-MOVE / C-GET identifier (PS3.4 C.4.2.2.1) under `model`
    (PATIENT_ROOT or STUDY_ROOT). Raises BadIdentifier: Query/Retrieve Level missing or not a
    level of the model, a Unique Key missing or empty at or above that level, more than one value
    above it, a value that is not a UID where a UID is due, a wildcard in the PatientID (single
    value matching only: C.2.2.2.1)."""
    if model not in LEVELS:
        raise ValueError(f"unknown information model {model!r}")
    try:
        level_values = _values(identifier, "QueryRetrieveLevel")
    except Exception as exc:  # pydicom decodes lazily; a broken element fails where first read
        raise BadIdentifier(f"Query/Retrieve Level unreadable: {type(exc).__name__}") from None
    if not level_values:
        raise BadIdentifier("identifier has no Query/Retrieve Level (0008,0052)")
    level = level_values[0].upper()
    levels = LEVELS[model]
    if len(level_values) != 1 or level not in levels:
        name = "Patient Root" if model == PATIENT_ROOT else "Study Root"
        raise BadIdentifier(f"Query/Retrieve Level {level!r} is not a level of {name} ({', '.join(levels)})")
    keys = []
    for lv in levels[: levels.index(level) + 1]:
        keyword, _column = UNIQUE_KEY[lv]
        try:
            values = _values(identifier, keyword)
        except Exception as exc:
            raise BadIdentifier(f"{keyword} unreadable: {type(exc).__name__}") from None
        if not values:
            raise BadIdentifier(f"{keyword} missing or empty: a {level} level retrieve needs the unique key of "
                                f"the {lv} level (PS3.4 C.4.2.2.1)")
        if lv != level and len(values) != 1:
            raise BadIdentifier(f"{keyword} has {len(values)} values: above the retrieve level a unique key "
                                "takes one value (PS3.4 C.4.2.2.1)")
        if lv == "PATIENT":
            if any(c in values[0] for c in "*?"):
                raise BadIdentifier("PatientID holds a wildcard: a retrieve matches unique keys by single value")
        else:
            bad = [v for v in values if not _UID.fullmatch(v)]
            if bad:
                raise BadIdentifier(f"{keyword} has a value that is not a UID")
        keys.append((lv, values))
    issuer = None
    if model == PATIENT_ROOT:
        try:
            given = _values(identifier, "IssuerOfPatientID")
        except Exception:
            given = ()  # not a key: unreadable, it does not narrow the match
        issuer = given[0] if given else None
    return RetrieveKeys(model, level, tuple(keys), issuer)


def select(index: "Index", keys: RetrieveKeys) -> list[Match]:
    """The stored instances `keys` name, each once, ordered by study, series and instance as they
    entered the index. Under Study Root a PatientID in the identifier is not a key (it is ignored,
    C.4.2.2.1); under Patient Root it bounds every level. Raises BadIdentifier (A701) beyond
    MAX_SUBOPERATIONS instances."""
    conds: list[str] = []
    params: list = []
    lists: tuple[str, tuple[str, ...]] | None = None
    for lv, values in keys.keys:
        column = UNIQUE_KEY[lv][1]
        if lv == keys.level:
            lists = (column, values)
        else:
            conds.append(f"{column} = ?")
            params.append(values[0])
    if keys.issuer is not None and keys.model == PATIENT_ROOT:
        conds.append("p.issuer = ?")
        params.append(keys.issuer)
    column, values = lists
    seen: set[int] = set()
    rows = []
    unique = list(dict.fromkeys(values))
    for k in range(0, len(unique), _CHUNK):
        part = unique[k:k + _CHUNK]
        where = " AND ".join([*conds, f"{column} IN ({','.join('?' * len(part))})"])
        for r in index.query(
            "SELECT i.id, i.sop_class, i.sop_uid, i.transfer_syntax, i.path, st.id AS st_id, se.id AS se_id"
            " FROM instances i JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk"
            f" JOIN patients p ON p.id = st.patient_fk WHERE {where}", (*params, *part)):
            if r["id"] not in seen:
                seen.add(r["id"])
                rows.append(r)
        if len(rows) > MAX_SUBOPERATIONS:
            break
    if len(rows) > MAX_SUBOPERATIONS:
        raise BadIdentifier(f"the identifier names more than {MAX_SUBOPERATIONS} instances; retrieve "
                            "by study or series", status=TOO_MANY)
    rows.sort(key=lambda r: (r["st_id"], r["se_id"], r["id"]))
    return [Match(r["id"], r["sop_class"], r["sop_uid"], r["transfer_syntax"], r["path"]) for r in rows]


def retrieve_matches(index: "Index", model: str, identifier: "Dataset") -> list[Match]:
    """parse_identifier then select: the instances a C-MOVE / C-GET identifier names.
    Raises BadIdentifier."""
    return select(index, parse_identifier(model, identifier))


def current(index: "Index", match: Match) -> Match | None:
    """The index's row for `match` now (its file may have been replaced by a newer copy of the
    same instance since the selection), or None when it has left the buffer (evicted)."""
    rows = index.query("SELECT id, sop_class, sop_uid, transfer_syntax, path FROM instances WHERE sop_uid = ?",
                       (match.sop_uid,))
    if not rows:
        return None
    r = rows[0]
    return Match(r["id"], r["sop_class"], r["sop_uid"], r["transfer_syntax"], r["path"])
