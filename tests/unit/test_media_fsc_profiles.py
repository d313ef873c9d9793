"""The general-purpose profiles' transfer syntax rules (PS3.11 D) and the conversion they force."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from gateway.media.profiles import (
    PROFILES,
    ConversionError,
    ProfileError,
    convert,
    decide,
    get_profile,
)

_FILES = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"
EXPLICIT_LE, IMPLICIT_LE, BIG = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
BASELINE, EXTENDED, LOSSLESS_SV1 = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.70"
J2K, RLE = "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"


@pytest.mark.parametrize("profile, syntax, action", [
    ("STD-GEN-CD", EXPLICIT_LE, "copy"),
    ("STD-GEN-CD", IMPLICIT_LE, "convert"),
    ("STD-GEN-CD", BASELINE, "convert"),
    ("STD-GEN-CD", RLE, "convert"),
    ("STD-GEN-CD", BIG, "convert"),
    ("STD-GEN-DVD-JPEG", BASELINE, "copy"),
    ("STD-GEN-DVD-JPEG", EXTENDED, "copy"),
    ("STD-GEN-DVD-JPEG", LOSSLESS_SV1, "copy"),
    ("STD-GEN-DVD-JPEG", J2K, "convert"),
    ("STD-GEN-USB-JPEG", BASELINE, "copy"),
    ("STD-GEN-USB-JPEG", RLE, "convert"),
    ("STD-GEN-USB-JPEG", "1.2.3.4", "omit"),
])
def test_profile_rules(profile, syntax, action):
    decision = decide(get_profile(profile), syntax)
    assert decision.action == action
    if action == "convert":
        assert decision.target == EXPLICIT_LE
    if action == "omit":
        assert profile in decision.reason and "\n" not in decision.reason


def test_profiles_name_dcmtks_options_and_unknown_names_are_refused():
    assert {p.dcmmkdir_option for p in PROFILES.values()} == {"-Pgp", "-Pdv", "-Pfl"}
    with pytest.raises(ProfileError, match="STD-GEN-CD") as err:
        get_profile("STD-GEN-BD")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "MR_small_RLE.dcm", "MR_small_implicit.dcm"])
def test_convert_decodes_into_explicit_le_keeping_the_instance(tmp_path, name):
    src = pydicom.dcmread(_FILES / name)
    size = convert(_FILES / name, tmp_path / "OUT")
    out = pydicom.dcmread(tmp_path / "OUT")
    assert size == (tmp_path / "OUT").stat().st_size
    assert out.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert out.SOPInstanceUID == src.SOPInstanceUID
    if src.get("PhotometricInterpretation", "").startswith("YBR"):
        assert out.PhotometricInterpretation == "RGB"
    assert np.array_equal(out.pixel_array, src.pixel_array)  # pydicom's pixel_array is RGB too


def test_convert_failure_is_one_line(tmp_path):
    bad = tmp_path / "BAD"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    with pytest.raises(ConversionError) as err:
        convert(bad, tmp_path / "OUT")
    assert "\n" not in str(err.value) and not (tmp_path / "OUT").exists()


def test_a_decompressed_lossy_image_stays_flagged_lossy(tmp_path):
    src = pydicom.dcmread(_FILES / "SC_rgb_jpeg_dcmtk.dcm")
    del src.LossyImageCompression
    src.save_as(tmp_path / "IN", enforce_file_format=True)
    convert(tmp_path / "IN", tmp_path / "OUT")
    assert pydicom.dcmread(tmp_path / "OUT").LossyImageCompression == "01"


def test_a_decoder_failure_is_folded_into_one_line(tmp_path):
    with pytest.raises(ConversionError) as err:
        convert(_FILES / "JPEG2000-embedded-sequence-delimiter.dcm", tmp_path / "OUT")
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_a_big_endian_instance_converts_to_the_little_endian_file_of_the_same_image(tmp_path):
    """pydicom ships one MR in both byte orders: converted, the Big Endian one must read exactly
    as the Little Endian one does (every element's value; the pixels; OW swapped per word)."""
    convert(_FILES / "MR_small_bigendian.dcm", tmp_path / "OUT")
    out = pydicom.dcmread(tmp_path / "OUT")
    le = pydicom.dcmread(_FILES / "MR_small.dcm")
    assert out.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert np.array_equal(out.pixel_array, le.pixel_array)
    assert out.pixel_array.max() > 255  # a swap error would show in 16-bit values
    differ = [e.keyword for e in le if e.keyword not in ("PixelData", "DataSetTrailingPadding")
              and (e.tag not in out or out[e.tag].value != e.value)]
    assert differ == []
