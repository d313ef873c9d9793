"""gateway/part10/coerce.py against pydicom reading the result and dciodvfy judging it: only the
changed elements change, the previous values are in the Original Attributes Sequence (PS3.3
C.12.1.1.9), every other element and the pixel data bytes are as they were, in Explicit and Implicit
VR Little Endian, Explicit VR Big Endian and an encapsulated JPEG file of pydicom's."""

from __future__ import annotations

import io
import struct
import subprocess
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct
from peers import TEST_FILES, require
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gateway.part10.coerce import DELETE, CoerceError, Provenance, coerce_file
from gateway.part10.structure import file_meta

PATIENT_NAME, PATIENT_ID, ISSUER, ACCESSION = 0x00100010, 0x00100020, 0x00100021, 0x00080050
INSTITUTION, STUDY_DESCRIPTION = 0x00080080, 0x00081030
WHEN = datetime(2026, 11, 29, 12, 30, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
PROVENANCE = Provenance("EDGE dicom-gateway", "COERCE", "MEDIA:usb", WHEN)
FILES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "SC_rgb_jpeg_dcmtk.dcm"]


def _coerce(src: Path, dst: Path, changes, provenance=PROVENANCE, **kw):
    with open(dst, "wb") as out:
        return coerce_file(src, out, changes, provenance, **kw)


def _pixel_element_offset(data: bytes) -> int:
    """Where (7FE0,0010) starts (the last occurrence: the pixel data is the last big element)."""
    for tag in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"):
        at = data.rfind(tag)
        if at > 0:
            return at
    raise AssertionError("no pixel data")


@pytest.mark.parametrize("name", FILES)
def test_only_the_changed_elements_change_and_the_originals_are_recorded(name, tmp_path):
    src = TEST_FILES / name
    dst = tmp_path / "out.dcm"
    before = pydicom.dcmread(src)
    result = _coerce(src, dst, {PATIENT_ID: "MRN0042", PATIENT_NAME: "Doe^Jane", ACCESSION: "ACC-9",
                                STUDY_DESCRIPTION: DELETE}, record=[ISSUER])
    after = pydicom.dcmread(dst)
    assert result.transfer_syntax == str(before.file_meta.TransferSyntaxUID)
    assert after.PatientID == "MRN0042" and after.PatientName == "Doe^Jane" and after.AccessionNumber == "ACC-9"
    assert STUDY_DESCRIPTION not in after
    # Every other element equal, the file meta too.
    changed = {PATIENT_ID, PATIENT_NAME, ACCESSION, STUDY_DESCRIPTION, 0x04000561}
    assert result.changed == tuple(sorted(t for t in changed - {0x04000561}
                                          if t in before or t != STUDY_DESCRIPTION))
    for elem in before:
        if elem.tag not in changed:
            assert after[elem.tag].value == elem.value, elem.keyword
    assert {e.tag for e in after} - changed == {e.tag for e in before} - changed
    assert after.file_meta == before.file_meta
    # The pixel data: the same bytes, the element and everything after it byte-identical.
    assert after.PixelData == before.PixelData
    raw_before, raw_after = src.read_bytes(), dst.read_bytes()
    assert raw_after[_pixel_element_offset(raw_after):] == raw_before[_pixel_element_offset(raw_before):]
    # The Original Attributes item (PS3.3 Table C.12.1.1.9-1).
    [item] = after.OriginalAttributesSequence
    assert item.ReasonForTheAttributeModification == "COERCE"
    assert item.ModifyingSystem == "EDGE dicom-gateway" and item.SourceOfPreviousValues == "MEDIA:usb"
    assert item.AttributeModificationDateTime == "20261129123000.123456+0100"
    [old] = item.ModifiedAttributesSequence
    assert old.PatientID == before.PatientID and old.PatientName == before.PatientName
    if "StudyDescription" in before:
        assert old.StudyDescription == before.StudyDescription
    else:  # deleting what is not there is no change and records nothing
        assert STUDY_DESCRIPTION not in old
    assert old.AccessionNumber == before.get("AccessionNumber", "")
    # Recorded although unchanged: the issuer beside the Patient ID (zero length when absent).
    assert old[ISSUER].value in ("", None) and ISSUER not in after


def test_the_file_meta_group_length_and_the_meta_bytes_stay(tmp_path):
    src = TEST_FILES / "CT_small.dcm"
    _coerce(src, tmp_path / "out.dcm", {PATIENT_ID: "A-MUCH-LONGER-PATIENT-ID-THAN-BEFORE"})
    data = (tmp_path / "out.dcm").read_bytes()
    start, meta = file_meta(data)
    (group_length,) = struct.unpack_from("<I", data, 140)
    assert start == 144 + group_length
    assert data[:start] == src.read_bytes()[:start]


def test_a_data_set_group_length_is_made_true_again(tmp_path):
    src = tmp_path / "gl.dcm"
    make_ct(src)
    # pydicom drops data set group lengths when it writes: put a true (0010,0000) in by hand.
    data = src.read_bytes()
    first, nxt = data.index(b"\x10\x00\x10\x00PN"), data.index(b"\x20\x00\x0d\x00UI")
    src.write_bytes(data[:first] + b"\x10\x00\x00\x00UL\x04\x00" + struct.pack("<I", nxt - first) + data[first:])
    assert pydicom.dcmread(src)[0x00100000].value == nxt - first
    _coerce(src, tmp_path / "out.dcm", {PATIENT_ID: "LONGER-ID-0000000001", PATIENT_NAME: DELETE})
    data = (tmp_path / "out.dcm").read_bytes()
    at = data.index(b"\x10\x00\x00\x00UL\x04\x00", 132)
    (declared,) = struct.unpack_from("<I", data, at + 8)
    after = pydicom.dcmread(tmp_path / "out.dcm")
    first_after_group = next(e for e in after if e.tag.group > 0x0010)
    # The group's elements end where the next group's first element starts.
    next_at = data.index(struct.pack("<HH", first_after_group.tag.group, first_after_group.tag.elem)
                         + first_after_group.VR.encode(), at)
    assert declared == next_at - (at + 12)
    assert after.PatientID == "LONGER-ID-0000000001" and "PatientName" not in after


def test_a_second_coercion_appends_an_item_and_keeps_the_first(tmp_path):
    one, two = tmp_path / "one.dcm", tmp_path / "two.dcm"
    _coerce(TEST_FILES / "CT_small.dcm", one, {PATIENT_ID: "FIRST"})
    _coerce(one, two, {PATIENT_ID: "SECOND"}, Provenance("OTHER", "CORRECT"))
    ds = pydicom.dcmread(two)
    assert ds.PatientID == "SECOND"
    first, second = ds.OriginalAttributesSequence
    assert first.ModifiedAttributesSequence[0].PatientID == "1CT1" and first.ModifyingSystem == "EDGE dicom-gateway"
    assert second.ModifiedAttributesSequence[0].PatientID == "FIRST"
    assert second.ReasonForTheAttributeModification == "CORRECT"


def test_an_undefined_length_original_attributes_sequence_gets_the_item_before_its_delimiter(tmp_path):
    src = tmp_path / "oas.dcm"
    ds = make_ct(src)
    earlier = Dataset()
    earlier.ModifiedAttributesSequence = Sequence([Dataset()])
    earlier.ModifiedAttributesSequence[0].InstitutionName = "Old Place"
    earlier.AttributeModificationDateTime = "20200101000000"
    earlier.ModifyingSystem = "PACS"
    earlier.SourceOfPreviousValues = ""
    earlier.ReasonForTheAttributeModification = "CORRECT"
    ds.OriginalAttributesSequence = Sequence([earlier])
    ds["OriginalAttributesSequence"].is_undefined_length = True
    ds.save_as(src, enforce_file_format=True)  # pydicom writes sequences with undefined length
    assert b"\xfe\xff\xdd\xe0" in src.read_bytes()
    _coerce(src, tmp_path / "out.dcm", {INSTITUTION: "New Place"})
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.InstitutionName == "New Place"
    kept, added = out.OriginalAttributesSequence
    assert kept.ModifiedAttributesSequence[0].InstitutionName == "Old Place" and kept.ModifyingSystem == "PACS"
    assert added.ModifiedAttributesSequence[0][INSTITUTION].value in ("", None)  # it was absent


def test_values_in_the_data_sets_character_set(tmp_path):
    src = tmp_path / "latin1.dcm"
    ds = make_ct(src)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.save_as(src, enforce_file_format=True)
    _coerce(src, tmp_path / "out.dcm", {PATIENT_NAME: "Müller^Jürgen"})
    assert b"M\xfcller^J\xfcrgen" in (tmp_path / "out.dcm").read_bytes()
    assert pydicom.dcmread(tmp_path / "out.dcm").PatientName == "Müller^Jürgen"
    make_ct(tmp_path / "plain.dcm")
    # No character set declared: a non-ASCII value is refused rather than written in Latin-1.
    with pytest.raises(CoerceError, match="not ASCII"):
        _coerce(tmp_path / "plain.dcm", tmp_path / "x.dcm", {PATIENT_NAME: "Müller^Jürgen"})
    # Setting the character set in the same change: the value is encoded in the new one.
    _coerce(tmp_path / "plain.dcm", tmp_path / "utf8.dcm",
            {0x00080005: "ISO_IR 192", PATIENT_NAME: "Müller^Jürgen"})
    out = pydicom.dcmread(tmp_path / "utf8.dcm")
    assert out.PatientName == "Müller^Jürgen" and b"M\xc3\xbcller" in (tmp_path / "utf8.dcm").read_bytes()
    assert out.OriginalAttributesSequence[0].ModifiedAttributesSequence[0][0x00080005].value in ("", None)


def test_bytes_and_data_elements_as_values(tmp_path):
    _coerce(TEST_FILES / "CT_small.dcm", tmp_path / "out.dcm",
            {PATIENT_ID: b"RAW1", 0x00081032: DataElement(0x00081032, "SQ", Sequence([Dataset()]))})
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.PatientID == "RAW1" and len(out.ProcedureCodeSequence) == 1


def test_the_value_already_there_changes_nothing(tmp_path):
    src = TEST_FILES / "CT_small.dcm"
    result = _coerce(src, tmp_path / "out.dcm", {PATIENT_ID: "1CT1", 0x00081080: DELETE})
    assert result.changed == () and (tmp_path / "out.dcm").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("changes,message", [
    ({0x00020010: "1.2.840.10008.1.2"}, "file meta"),
    ({0x7FE00010: b"\x00\x00"}, "before the pixel data"),
    ({0x00100000: b"\x00\x00\x00\x00"}, "group length"),
    ({0x04000561: DELETE}, "written by the coercion itself"),
    ({0x00771001: "x"}, "not in the data dictionary"),
    ({PATIENT_ID: 3}, "not int"),
])
def test_refused_changes_are_named(changes, message, tmp_path):
    out = io.BytesIO()
    with pytest.raises(CoerceError, match=message):
        coerce_file(TEST_FILES / "CT_small.dcm", out, changes, PROVENANCE)
    assert out.getvalue() == b""


def test_a_deflated_file_is_refused_precisely(tmp_path):
    out = io.BytesIO()
    with pytest.raises(CoerceError, match=r"deflated transfer syntax 1\.2\.840\.10008\.1\.2\.1\.99"):
        coerce_file(TEST_FILES / "image_dfl.dcm", out, {PATIENT_ID: "X"}, PROVENANCE)
    assert out.getvalue() == b""


def test_a_bad_reason_is_refused():
    with pytest.raises(CoerceError, match="COERCE or CORRECT"):
        coerce_file(TEST_FILES / "CT_small.dcm", io.BytesIO(), {PATIENT_ID: "X"}, Provenance("S", "FIX"))


def test_a_large_pixel_data_is_streamed_not_read_into_memory(tmp_path):
    src = tmp_path / "big.dcm"
    make_ct(src, rows=2048, cols=4096)  # 16 MiB of pixel data
    tracemalloc.start()
    try:
        _coerce(src, tmp_path / "out.dcm", {PATIENT_ID: "BIG"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak} bytes"
    assert (tmp_path / "out.dcm").stat().st_size > 16 << 20
    assert pydicom.dcmread(tmp_path / "out.dcm").PatientID == "BIG"


def _dciodvfy_errors(path: Path) -> set[str]:
    exe = require("dciodvfy", "dicom3tools")
    r = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return {line for line in (r.stdout + r.stderr).splitlines() if line.startswith("Error")}


@pytest.mark.parametrize("name", FILES)
def test_dciodvfy_reports_no_new_error(name, tmp_path):
    src = TEST_FILES / name
    dst = tmp_path / "out.dcm"
    _coerce(src, dst, {PATIENT_ID: "MRN0042", PATIENT_NAME: "Doe^Jane", ACCESSION: "ACC-9",
                       0x00080015: "20261129123000.000000+0100"}, record=[ISSUER])
    assert _dciodvfy_errors(dst) - _dciodvfy_errors(src) == set()


@pytest.mark.parametrize("name", sorted(p.name for p in TEST_FILES.glob("*.dcm")))
def test_the_walk_in_memory_finds_what_the_file_walk_finds(name, tmp_path):
    # _BytesWalk.top_level is the file walk's loop inlined for speed (it runs on every coerced
    # C-STORE): on every pydicom test file, whole and cut short, the same elements or the same kind
    # of error (the words of a truncation differ; in the stream it means "wait for more").
    from gateway.part10 import coerce

    src = TEST_FILES / name
    data = src.read_bytes()
    try:
        start, meta = file_meta(data)
        _, enc = coerce._encoding(meta)
    except Exception:  # noqa: BLE001 - not a Part-10 file, or deflated: neither walk runs on it
        pytest.skip(f"{name}: no walkable file meta")

    def answer(walk, last_group):
        try:
            elements, tail = walk.top_level(start, last_group)
            return [(e.tag, e.vr, e.start, e.value_start, e.end, e.length) for e in elements], tail
        except coerce.CoerceError as exc:
            return type(exc).__name__

    for cut in sorted({len(data), len(data) - 1, start + 5, start + 9, start + 200, start + 1000}):
        if cut <= start or cut > len(data):
            continue
        head = data[:cut]
        (tmp_path / "cut.dcm").write_bytes(head)
        for last_group in (0x0008, 0x0010, 0x0028, 0x0400, 0x7FDF):
            with open(tmp_path / "cut.dcm", "rb") as fh:
                expected = answer(coerce._HeaderWalk(fh, cut, enc), last_group)
            assert answer(coerce._BytesWalk(head, enc), last_group) == expected, (cut, hex(last_group))
