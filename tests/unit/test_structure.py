"""The structure walk against pydicom's own samples: the truncated ones fail, the rest pass."""

from __future__ import annotations

import struct

import pydicom
import pytest
from peers import TEST_FILES

from gateway.part10.structure import StrayFileMeta, StructureError, check_structure, walk_file

BROKEN = {"MR_truncated.dcm", "rtplan_truncated.dcm", "SC_rgb_jpeg.dcm"}  # DCMTK rejects these too


def _samples():
    for f in sorted(TEST_FILES.glob("*.dcm")):
        try:
            ts = str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        except Exception:
            continue  # no file meta: not something a C-STORE can deliver
        yield f, ts


@pytest.mark.parametrize("path,ts", list(_samples()), ids=lambda v: getattr(v, "name", v))
def test_samples(path, ts):
    if path.name in BROKEN:
        with pytest.raises(StructureError):
            check_structure(path, ts)
    else:
        check_structure(path, ts)


def _value_spans(path):
    """(start, end) byte offsets of the Patient's Name value and the Pixel Data value."""
    with open(path, "rb") as fh:
        ds = pydicom.dcmread(fh, defer_size=None)
    spans = []
    raw = path.read_bytes()
    name = str(ds.PatientName).encode()
    i = raw.index(name)
    spans.append((i, i + len(name)))
    px = ds.PixelData
    j = raw.rindex(px[-64:]) + 64
    spans.append((j - len(px), j))
    return spans


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm",
                                  "MR_small_implicit.dcm", "MR_small_bigendian.dcm"])
def test_a_cut_inside_a_value_is_caught(tmp_path, name):
    # A cut exactly between two elements leaves a shorter but well-formed data set; these cuts
    # land inside values, which is what a dropped connection or a full disk produces.
    path = TEST_FILES / name
    src = path.read_bytes()
    ts = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    cut_file = tmp_path / "cut.dcm"
    for start, end in _value_spans(path):
        for cut in range(start + 1, end, max(1, (end - start) // 50)):
            cut_file.write_bytes(src[:cut])
            with pytest.raises(StructureError):
                check_structure(cut_file, ts)


def test_a_cut_deflated_stream_is_caught(tmp_path):
    path = TEST_FILES / "image_dfl.dcm"
    src = path.read_bytes()
    cut_file = tmp_path / "cut.dcm"
    for cut in range(400, len(src) - 64, 37):
        cut_file.write_bytes(src[:cut])
        with pytest.raises(StructureError):
            check_structure(cut_file, "1.2.840.10008.1.2.1.99")


def _with_stray_meta(tmp_path, name="CT_small.dcm"):
    """A Part-10 file whose data set begins with (0002,0000) and (0002,0010) = JPEG-LS Lossless."""
    from dicom_bytes import dataset_bytes

    src = (TEST_FILES / name).read_bytes()
    body = dataset_bytes(src)
    meta_end = len(src) - len(body)
    ts = b"1.2.840.10008.1.2.4.80\x00"
    tsu = struct.pack("<HH2sH", 0x0002, 0x0010, b"UI", len(ts)) + ts
    stray = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(tsu)) + tsu
    path = tmp_path / "stray.dcm"
    path.write_bytes(src[:meta_end] + stray + body)
    return path, meta_end, meta_end + len(stray)


def test_group_0002_at_the_start_of_the_data_set_is_found_not_taken_for_meta(tmp_path):
    path, start, end = _with_stray_meta(tmp_path)
    with pytest.raises(StrayFileMeta) as info:
        walk_file(path)
    assert (info.value.start, info.value.end) == (start, end)
    assert info.value.tags == [(0x0002, 0x0000), (0x0002, 0x0010)]
    # Without the stray elements the same file walks, with the meta's transfer syntax.
    raw = path.read_bytes()
    path.write_bytes(raw[:start] + raw[end:])
    ts, _ = walk_file(path)
    assert ts == "1.2.840.10008.1.2.1"
