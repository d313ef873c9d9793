"""The buffer's attribute reader: its own walk must read what pydicom reads (pydicom is the oracle),
and hand anything unusual to pydicom rather than guess."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct

from gateway.part10 import attributes
from gateway.part10.attributes import read_attributes

_DATA = Path(os.path.dirname(pydicom.__file__)) / "data"  # test_files/ and charset_files/


def _pydicom_files() -> list[Path]:
    return sorted(p for p in _DATA.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ""))


def test_the_walk_reads_what_pydicom_reads_on_pydicom_test_files():
    checked = unusual = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about its deliberately odd test files
        for path in _pydicom_files():
            try:
                fast = attributes._fast_fields(path)
            except attributes._Unusual:
                unusual += 1
                continue
            except Exception:
                continue  # not a data set this walk accepts; read_attributes' errors are tested elsewhere
            try:
                oracle = attributes._pydicom_fields(path)
            except Exception as exc:
                pytest.fail(f"{path.name}: the walk read a file pydicom cannot: {exc}")
            assert fast == oracle, path.name
            checked += 1
    # pydicom 3 ships ~190 files; most are ordinary headers, some use other character sets.
    assert checked >= 100 and unusual >= 5, (checked, unusual)


@pytest.mark.parametrize("name", ["chrX1.dcm", "chrFren.dcm", "chrGerm.dcm"])
def test_single_codec_character_sets_are_read_by_the_walk(name):
    """UTF-8 (ISO_IR 192) and Latin-1 (ISO_IR 100) names, with '=' component groups."""
    path = next(_DATA.rglob(name), None)
    if path is None:
        pytest.skip(f"{name} is not in this pydicom's test data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = attributes._fast_fields(path)  # raises _Unusual if it would go to pydicom
        assert fast == attributes._pydicom_fields(path)
    assert fast[1]["PatientName"].isascii() is False


def test_iso_2022_goes_to_pydicom(monkeypatch):
    path = next(_DATA.rglob("chrH31.dcm"), None)  # Japanese, ISO 2022 IR 87 with escape sequences
    if path is None:
        pytest.skip("chrH31.dcm is not in this pydicom's test data")
    with pytest.raises(attributes._Unusual):
        attributes._fast_fields(path)
    used = []
    real = attributes._pydicom_fields
    monkeypatch.setattr(attributes, "_pydicom_fields", lambda p: used.append(p) or real(p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert "=" in read_attributes(path).patient_name
    assert used == [path]


def test_multi_values_and_padding_like_pydicom(tmp_path):
    src = tmp_path / "ct.dcm"
    ds = make_ct(src)
    ds.PatientName = "Doe^Jane^^^"
    ds.StudyDescription = "HEAD \\NECK "
    ds.AccessionNumber = ""
    ds.save_as(src, enforce_file_format=True)
    fast = attributes._fast_fields(src)
    assert fast == attributes._pydicom_fields(src)
    assert fast[1]["StudyDescription"] == "HEAD\\NECK"
