"""The two-line character display: text fitted to 16 or 20 columns, in what an HD44780's character
ROM A00 can show.

ROM A00 (the common Japanese one, HD44780U data sheet, table 4) holds ASCII 0x20-0x7D, except that
0x5C is a yen sign and 0x7E / 0x7F are arrows, the half-width katakana of JIS X 0201 at 0xA1-0xDF
(Unicode U+FF61-U+FF9F, in the same order), and a few Latin letters among Greek and math signs:
ä, ñ, ö, ü (lower case only). Codes 0x00-0x0F are the user-defined CGRAM glyphs and are never sent
as text. Every line this module returns holds only those characters; `encode_a00` turns a line into
the bytes the controller takes.

Transliteration, by a library where a well-kept one exists:
- anything outside the ROM and not Japanese: anyascii (ISC licence, no dependencies, a table for all
  of Unicode: "Øberg" -> "Oberg", "Straße" -> "Strasse"). Chosen over unidecode, which does the
  same but is GPL: a licence this appliance's code need not take on for a lookup table.
- Japanese kana: jaconv (MIT) turns hiragana and full-width katakana into the ROM's half-width
  katakana, voiced marks as the separate dakuten the ROM has ("ガ" -> "ｶﾞ", two cells).
- kanji: not transliterated. A kanji name has no one reading (the readings of name kanji, nanori,
  are the family's choice), so a dictionary's guess (pykakasi, cutlet) can show a radiographer a
  name the patient does not have; that is worse than no name when the display is used to confirm
  the patient. DICOM carries the reading itself: a Japanese Person Name has up to three component
  groups, alphabetic = ideographic = phonetic (PS3.5 6.2.1.2), and `person_name` shows the
  alphabetic or else the phonetic one. A kanji with no reading is shown as "?".
"""

from __future__ import annotations

import unicodedata

import jaconv
from anyascii import anyascii

WIDTHS = (16, 20)  # the HD44780 modules the box takes: 16x2 and 20x2

# ASCII the ROM shows as itself; backslash and tilde are absent (yen sign, arrow in their places).
_ASCII = frozenset(chr(c) for c in range(0x20, 0x7E)) - {"\\"}
_KANA = frozenset(chr(c) for c in range(0xFF61, 0xFFA0))  # JIS X 0201 katakana, ROM 0xA1-0xDF
_LATIN = {"ä": 0xE1, "ñ": 0xEE, "ö": 0xEF, "ü": 0xF5}
ROM_CHARACTERS = _ASCII | _KANA | frozenset(_LATIN)

# The ASCII look-alikes for the two ASCII characters the ROM lacks.
_SUBSTITUTES = {"\\": "/", "~": "-"}


def _is_ideograph(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


def to_rom(text: str, unknown: str = "?") -> str:
    """`text` in ROM A00 characters: kana as half-width katakana, ä ñ ö ü kept, everything else
    transliterated to ASCII (anyascii); a CJK ideograph becomes `unknown`, a control character a
    space, a character with no transliteration is dropped. Length may change ("ß" -> "ss")."""
    # NFKC first: full-width ASCII and the ideographic space become plain ASCII. It also widens
    # half-width kana, which jaconv narrows again below.
    text = unicodedata.normalize("NFKC", text)
    text = jaconv.z2h(jaconv.hira2kata(text), kana=True, ascii=False, digit=False)
    out = []
    for ch in text:
        if ch in ROM_CHARACTERS:
            out.append(ch)
        elif ch in _SUBSTITUTES:
            out.append(_SUBSTITUTES[ch])
        elif unicodedata.category(ch).startswith("C") or ch.isspace():
            out.append(" ")
        elif _is_ideograph(ch):
            out.append(unknown)
        else:
            out.extend(_SUBSTITUTES.get(c, c) for c in anyascii(ch) if c in ROM_CHARACTERS or c in _SUBSTITUTES)
    return "".join(out)


def person_name(pn: str) -> str | None:
    """A DICOM Person Name (PS3.5 6.2: component groups separated by "=", components by "^":
    family^given^middle^prefix^suffix) as the display shows it: "FAMILY GIVEN" in ROM characters,
    from the alphabetic group, else the phonetic group (kana), else the ideographic group when it
    holds no kanji. None when no group can be shown without guessing a reading (kanji only) or
    the name is empty: the caller shows the Patient ID alone."""
    groups = pn.split("=")
    alphabetic = groups[0]
    ideographic = groups[1] if len(groups) > 1 else ""
    phonetic = groups[2] if len(groups) > 2 else ""
    for group in (alphabetic, phonetic, ideographic):
        components = [c.strip() for c in group.split("^")[:2] if c.strip()]
        if not components:
            continue
        if any(_is_ideograph(ch) for c in components for ch in c):
            continue
        shown = " ".join(to_rom(c) for c in components).strip()
        if shown:
            return shown
    return None


def fit(text: str, width: int) -> str:
    """One display line: `text` (already ROM characters) cut or padded with spaces to `width`
    columns. ValueError for a width the box does not take (16 or 20)."""
    if width not in WIDTHS:
        raise ValueError(f"display width {width} is not one of {', '.join(map(str, WIDTHS))} columns")
    return text[:width].ljust(width)


def two_columns(left: str, right: str, width: int) -> str:
    """`left` and `right` on one line of `width`, right-aligned; `left` is cut first when both do
    not fit (the right part is the number the operator looks for)."""
    right = right[:width]
    room = width - len(right) - (1 if right else 0)
    return fit((left[:room].ljust(room) + (" " if right else "") + right) if room > 0 else right, width)


def identifier(pid: str, beside: str, width: int, prefix: str = "") -> str:
    """A line carrying a Patient ID, which is never cut without a mark: `prefix` + `pid` with
    `beside` right-aligned when all fit; else the ID alone (`beside` and then `prefix` dropped);
    an ID longer than the line ends in ">" where it is cut, so that "HWSIM-1" is never shown as
    "HWSIM-" (another patient's ID may be exactly that)."""
    for text in (prefix + pid, pid):
        if len(text) + (len(beside) + 1 if beside else 0) <= width:
            return two_columns(text, beside, width)
    for text in (prefix + pid, pid):
        if len(text) <= width:
            return fit(text, width)
    return fit(pid[:width - 1] + ">", width)


def encode_a00(line: str) -> bytes:
    """The bytes an HD44780 with ROM A00 takes for `line`. ValueError naming the first character
    the ROM does not hold (every line of this module passes; a driver given other text fails
    loudly rather than showing a wrong glyph)."""
    out = bytearray()
    for i, ch in enumerate(line):
        if ch in _ASCII:
            out.append(ord(ch))
        elif ch in _KANA:
            out.append(ord(ch) - 0xFF61 + 0xA1)
        elif ch in _LATIN:
            out.append(_LATIN[ch])
        else:
            raise ValueError(f"character {ch!r} (U+{ord(ch):04X}) at column {i + 1} is not in the HD44780 A00 ROM")
    return bytes(out)
