"""The conformance statement's shared helpers: UID names (PS3.6 Annex A), status codes as PS3.7
Annex C words, config defaults as the TOML file spells them, and the Markdown table every part uses."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pydicom._uid_dict import UID_dictionary
from pynetdicom.sop_class import _STORAGE_CLASSES
from pynetdicom.status import GENERAL_STATUS

from gateway.dicom import status


def uid_name(uid: str) -> str:
    """The standard name of a UID (PS3.6 Annex A): pydicom's dictionary, "(Retired)" appended for a
    retired one; pynetdicom's name for a storage class pydicom does not know yet; else the UID."""
    entry = UID_dictionary.get(uid)
    if entry:
        name, _kind, _info, retired, *_ = entry
        return f"{name} (Retired)" if retired == "Retired" and "Retired" not in name else name
    for keyword, value in _STORAGE_CLASSES.items():
        # StoreSCP registers the classes pynetdicom lacks under made-up keywords: not names.
        if value == uid and not keyword.startswith("EdgeStorage_"):
            return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", keyword)
    return uid


def _retired(uid: str) -> bool:
    entry = UID_dictionary.get(uid)
    return bool(entry) and entry[3] == "Retired"


def _ts_names(uids: Iterable[str]) -> str:
    return "<br>".join(f"{uid_name(u)} {u}" for u in uids)


def _hex(code: int) -> str:
    return f"{code:04X}"


# Codes whose PS3.7 meaning is a range's ("Cannot Understand" for every Cxxx): what this gateway
# means by them, after the seed statement.
_OWN_MEANING = {
    status.OUT_OF_RESOURCES_DIRECTORY: "Failure: Refused: Out of Resources (directory error)",
    status.DATABASE_ERROR: "Failure: Cannot Understand (database error)",
}


def _meaning(code: int, table: dict) -> str:
    if code in _OWN_MEANING:
        return _OWN_MEANING[code]
    category, text = table.get(code) or GENERAL_STATUS.get(code) or ("", "")
    return f"{category}: {text}" if text else category


def _value(v) -> str:
    """A config default as the TOML file spells it."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _ranges(codes: Iterable[int]) -> str:
    """0xA700..0xA7FF, 0x0110 -> "A700–A7FF, 0110"."""
    out, run = [], []
    for c in sorted(codes):
        if run and c != run[-1] + 1:
            out.append(run)
            run = []
        run.append(c)
    if run:
        out.append(run)
    return ", ".join(_hex(r[0]) if len(r) == 1 else f"{_hex(r[0])}–{_hex(r[-1])}" for r in out)


def _table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]
