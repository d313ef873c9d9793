"""The panel's display text (gateway/panel/display.py): ROM A00 characters only, 16 or 20 columns,
names transliterated from pydicom's character set test files (Latin-1, Japanese, and the others)."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_charset_files

from gateway.panel.display import ROM_CHARACTERS, encode_a00, fit, identifier, person_name, to_rom, two_columns


def _name(file: str) -> str:
    return str(pydicom.dcmread(get_charset_files(file)[0]).PatientName)


@pytest.mark.parametrize("file, shown", [
    ("chrFren.dcm", "Buc Jerome"),            # ISO_IR 100: é ô are not in the ROM
    ("chrGerm.dcm", "Aneas Rüdiger"),         # ü is in the ROM (0xF5), Ä is not
    ("chrH31.dcm", "Yamada Tarou"),           # alphabetic group first (PS3.5 6.2.1.2)
    ("chrH32.dcm", "ﾔﾏﾀﾞ ﾀﾛｳ"),                # its alphabetic group is JIS X 0201 katakana: the ROM's own
    ("chrJapMulti.dcm", "ﾔﾏﾀﾞ ﾀﾛｳ"),           # hiragana only -> half-width katakana, dakuten separate
    ("chrI2.dcm", "Hong Gildong"),
    ("chrX1.dcm", "Wang XiaoDong"),
    ("chrGreek.dcm", "Dionysios"),
])
def test_names_from_pydicoms_charset_files(file, shown):
    assert person_name(_name(file)) == shown
    encode_a00(shown)  # every character is in the ROM


@pytest.mark.parametrize("file", ["chrArab.dcm", "chrHbrw.dcm", "chrRuss.dcm", "chrKoreanMulti.dcm"])
def test_other_scripts_become_ascii(file):
    shown = person_name(_name(file))
    assert shown and shown.isascii() and set(shown) <= ROM_CHARACTERS


def test_kanji_without_a_reading_is_not_guessed():
    assert person_name("=山田^太郎") is None                      # ideographic group only
    assert person_name("=山田^太郎=やまだ^たろう") == "ﾔﾏﾀﾞ ﾀﾛｳ"    # the phonetic group is the reading
    assert person_name("") is None and person_name("^") is None
    assert to_rom("山田 X") == "?? X"


def test_latin1_letters():
    assert to_rom("Ødegård Åse Straße Çelik Ñúñez ÆRØ") == "Odegard Ase Strasse Celik Nuñez AeRO"
    assert to_rom("äöüñ") == "äöüñ" and encode_a00("äöüñ") == bytes([0xE1, 0xEF, 0xF5, 0xEE])


def test_what_the_rom_lacks_or_must_not_get():
    # 0x5C is a yen sign and 0x7E an arrow in A00; control codes would select CGRAM glyphs.
    assert to_rom("C:\\x ~y") == "C:/x -y"
    assert to_rom("a\tb\nc\x01d") == "a b c d"
    assert to_rom("ＹＡＭＡＤＡ　１２") == "YAMADA 12"              # full-width ASCII, ideographic space
    assert to_rom("ガッコウ・ー") == "ｶﾞｯｺｳ･ｰ"


def test_encode_a00_maps_kana_to_the_rom_and_names_what_it_cannot():
    assert encode_a00("ｱ ｦﾟ") == bytes([0xB1, 0x20, 0xA6, 0xDF])
    with pytest.raises(ValueError, match=r"'\\\\' \(U\+005C\) at column 2 is not in the HD44780 A00 ROM"):
        encode_a00("a\\")
    with pytest.raises(ValueError, match="U\\+00E9"):
        encode_a00("é")


@pytest.mark.parametrize("width", [16, 20])
def test_lines_are_exactly_the_width(width):
    assert fit("READY", width) == "READY".ljust(width)
    assert fit("X" * 30, width) == "X" * width
    line = two_columns("QUEUE 123456789012345", "DEAD 3", width)
    assert len(line) == width and line.endswith(" DEAD 3")  # the left part is cut, the number kept


def test_a_width_the_box_does_not_take():
    with pytest.raises(ValueError, match="display width 24 is not one of 16, 20 columns"):
        fit("x", 24)


@pytest.mark.parametrize("pid, beside, prefix, expect", [
    ("HWSIM-1", "CT 260101", "", "HWSIM-1 CT 260101"),         # 17 > 16: the ID alone, never "HWSIM- CT 260101"
    ("PID5", "CT 261129", "", "PID5   CT 261129"),
    ("HWSIM-1", "", "ID ", "ID HWSIM-1"),
    ("1234567890ABCDEF", "", "ID ", "1234567890ABCDEF"),      # the prefix goes before the ID is cut
    ("1234567890ABCDEFGH", "CT", "", "1234567890ABCDE>"),     # longer than the glass: the cut is marked
])
def test_a_patient_id_is_never_cut_without_a_mark(pid, beside, prefix, expect):
    line = identifier(pid, beside, 16, prefix)
    assert len(line) == 16
    if len(expect) > 16:  # the whole would not fit: the ID alone
        assert line == pid.ljust(16)
    else:
        assert line == expect.ljust(16)
