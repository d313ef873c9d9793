"""The derived columns the index keeps for C-FIND matching (gateway/buffer/query.py), computed in
one place for the migration that adds them (migrations.py, version 7) and for ingest (ingest.py).

- folded person names: `fold_pn(value)`, the decoded PN (all component groups) in Unicode NFC and
  `str.casefold`, so that case-insensitive PN matching (PS3.4 C.2.2.2.1, "insensitive to case" is
  left to the SCP) is an indexed text comparison in SQL, for non-ASCII names too (SQLite's own
  NOCASE and LIKE fold ASCII only, which is why this is done here and not by SQLite);
- the study's date and time as one sortable text, `study_datetime(date, time)`:
  YYYYMMDD + HHMMSS[.FFFFFF] (the time padded to whole seconds), for combined date-time range
  matching (PS3.4 C.2.2.2.5.1) on one index.
"""

from __future__ import annotations

import unicodedata


def fold_pn(value: str) -> str:
    """`value` (a decoded Person Name, any component groups) folded for case-insensitive
    matching: NFC, then str.casefold ("Buc^Jérôme" -> "buc^jérôme"; ideographic groups unchanged)."""
    return unicodedata.normalize("NFC", value).casefold()


def normal_time(value: str, pad: str = "0") -> str:
    """A TM value as HHMMSS[.FFFFFF]: missing minutes and seconds filled with `pad` ("0" for a value
    or a range's lower end, "9" for a range's upper end, so "1500" ends after 15:00:59), ACR-NEMA
    colons dropped. "" stays "". Not validated: a garbled time sorts where its text sorts."""
    value = value.strip().replace(":", "")
    if not value:
        return ""
    whole, dot, fraction = value.partition(".")
    whole = (whole + pad * 6)[:6]
    if dot:
        return f"{whole}.{fraction}"
    return whole + (".999999" if pad == "9" else "")


def study_datetime(date: str, time: str) -> str:
    """The text StudyDate and StudyTime are range-matched on together: YYYYMMDD + normal_time(time).
    "" when the study has no date (such a study matches no date range, PS3.4 C.2.2.2.5)."""
    date = date.strip().replace(".", "")  # ACR-NEMA YYYY.MM.DD
    if not date:
        return ""
    return date + normal_time(time)
