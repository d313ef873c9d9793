"""C-FIND matching over the buffer's index (gateway/buffer/query.py), one rule a case, against a
real Index filled by the real ingest: pydicom's character set test files (Latin-1, Japanese,
Korean, Chinese...) and small made CT instances."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from datasets import make_ct
from index_seed import seed_studies
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from gateway.buffer import migrations
from gateway.buffer.index import Index
from gateway.buffer.ingest import Buffer
from gateway.buffer.query import PATIENT_ROOT_FIND, STUDY_ROOT_FIND, QueryError, find, plan
from gateway.part10.attributes import read_attributes

CHARSET_FILES = ("chrFren", "chrGerm", "chrH31", "chrH32", "chrI2", "chrX1", "chrX2", "chrRuss",
                 "chrGreek")


def _charset_file(name: str):
    (path,) = get_charset_files(f"{name}.dcm")
    return path


def _ingest(buf: Buffer, src) -> None:
    tmp = buf.files.new_incoming_path()
    shutil.copyfile(src, tmp)
    buf.ingest(tmp, read_attributes(src), "MOD")


def _ct(tmp_path, buf, name, **attrs):
    """A made CT instance with `attrs` set (keywords), ingested; returns its data set."""
    path = tmp_path / f"{name}.dcm"
    kw = {k: attrs.pop(k) for k in ("study_uid", "series_uid", "patient_id", "number") if k in attrs}
    ds = make_ct(path, rows=8, cols=8, **kw)
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    _ingest(buf, path)
    return ds


@pytest.fixture
def buf(tmp_path):
    b = Buffer(tmp_path / "buf", 0, "replace", lambda attrs, source: [])
    for name in CHARSET_FILES:
        _ingest(b, _charset_file(name))
    yield b
    b.close()


@pytest.fixture
def cts(tmp_path, buf):
    """Two studies of one patient (three CT/SR series) and one study of another patient."""
    study_a = dict(patient_id="P-A", PatientName="Smith^John", StudyDate="20260105", StudyTime="0930",
                   AccessionNumber="ACC-A", StudyDescription="CT HEAD[1]")
    a = _ct(tmp_path, buf, "a1", **study_a)
    _ct(tmp_path, buf, "a2", study_uid=a.StudyInstanceUID, series_uid=a.SeriesInstanceUID, number=2, **study_a)
    _ct(tmp_path, buf, "a3", study_uid=a.StudyInstanceUID, Modality="SR", **study_a)
    b = _ct(tmp_path, buf, "b1", patient_id="P-A", PatientName="Smith^John", StudyDate="20260107",
            StudyTime="174501.5", AccessionNumber="ACC-B")
    c = _ct(tmp_path, buf, "c1", patient_id="P-C", PatientName="smith^jane", StudyDate="20251231",
            StudyTime="235959", AccessionNumber="ACC-C", Modality="MR", ReferringPhysicianName="Müller^Anna")
    return a, b, c


def _q(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def _find(buf, level, model=STUDY_ROOT_FIND, **keys):
    opts = {k: keys.pop(k) for k in ("pn_case_insensitive", "combined_datetime", "retrieve_ae") if k in keys}
    if level != "PATIENT":  # read back by most cases (return keys, universal matching)
        keys = {"PatientID": "", "AccessionNumber": "", **keys}
    # Explicit VR Little Endian, as _wire_roundtrip sends them: the encoded values go out as they are.
    return list(find(buf.index, _q(level, **keys), model, encoding=(False, True), **opts))


def _values(responses, keyword):
    return sorted(str(r.get(keyword, "")) for r in responses)


# -- universal matching, return keys, derived keys -----------------------------------------------------
def test_universal_matching_returns_every_study_with_the_keys_asked(buf, cts):
    a, b, c = cts
    rs = _find(buf, "STUDY", StudyInstanceUID="", PatientID="", ModalitiesInStudy="",
               NumberOfStudyRelatedSeries="", NumberOfStudyRelatedInstances="")
    assert len(rs) == len(CHARSET_FILES) + 3
    by_uid = {r.StudyInstanceUID: r for r in rs}
    assert by_uid[a.StudyInstanceUID].ModalitiesInStudy == ["CT", "SR"]
    assert by_uid[a.StudyInstanceUID].NumberOfStudyRelatedSeries == 2
    assert by_uid[a.StudyInstanceUID].NumberOfStudyRelatedInstances == 3
    assert by_uid[c.StudyInstanceUID].ModalitiesInStudy == "MR"
    assert all(r.QueryRetrieveLevel == "STUDY" for r in rs)


def test_unsupported_keys_come_back_zero_length_private_dropped_sequences_empty(buf, cts):
    a, _, _ = cts
    q = _q("STUDY", StudyInstanceUID=a.StudyInstanceUID, OtherPatientIDs="X", NameOfPhysiciansReadingStudy="",
           ReferencedStudySequence=[], RetrieveAETitle="")
    q.add_new(0x00091010, "LO", "private")
    (r,) = find(buf.index, q, STUDY_ROOT_FIND, retrieve_ae="EDGE")
    assert r["OtherPatientIDs"].value in ("", None) and r["NameOfPhysiciansReadingStudy"].is_empty
    assert len(r.ReferencedStudySequence) == 0
    assert r.RetrieveAETitle == "EDGE"
    assert 0x00091010 not in r


def test_unique_keys_of_the_query_level_and_above_are_always_returned(buf, cts):
    a, _, _ = cts
    (r, *_) = _find(buf, "IMAGE", StudyInstanceUID=a.StudyInstanceUID, SeriesInstanceUID=a.SeriesInstanceUID,
                    InstanceNumber="1")
    assert r.SOPInstanceUID == a.SOPInstanceUID and r.SeriesInstanceUID == a.SeriesInstanceUID
    assert r.StudyInstanceUID == a.StudyInstanceUID


# -- single value, wildcard, list of UID ---------------------------------------------------------------
def test_single_value_matching(buf, cts):
    rs = _find(buf, "STUDY", AccessionNumber="ACC-B", StudyInstanceUID="")
    assert [r.StudyInstanceUID for r in rs] == [cts[1].StudyInstanceUID]
    assert _find(buf, "STUDY", AccessionNumber="acc-b") == []  # SH is case-sensitive


def test_wildcards_star_and_question_mark(buf, cts):
    assert _values(_find(buf, "STUDY", AccessionNumber="ACC-*"), "AccessionNumber") == ["ACC-A", "ACC-B", "ACC-C"]
    assert _values(_find(buf, "STUDY", AccessionNumber="ACC-?"), "AccessionNumber") == ["ACC-A", "ACC-B", "ACC-C"]
    assert _values(_find(buf, "STUDY", AccessionNumber="A?C-C"), "AccessionNumber") == ["ACC-C"]
    # GLOB's own brackets are literal characters in a DICOM value.
    assert _values(_find(buf, "STUDY", StudyDescription="CT HEAD[1]*"), "StudyDescription") == ["CT HEAD[1]"]


def test_list_of_uid_matching(buf, cts):
    a, b, c = cts
    rs = _find(buf, "STUDY", StudyInstanceUID=[a.StudyInstanceUID, c.StudyInstanceUID, "1.2.3.999"])
    assert _values(rs, "StudyInstanceUID") == sorted([a.StudyInstanceUID, c.StudyInstanceUID])


def test_modalities_in_study_matches_any_value(buf, cts):
    a, b, c = cts
    assert _values(_find(buf, "STUDY", ModalitiesInStudy="SR"), "StudyInstanceUID") == [a.StudyInstanceUID]
    rs = _find(buf, "STUDY", ModalitiesInStudy=["SR", "MR"])
    assert _values(rs, "StudyInstanceUID") == sorted([a.StudyInstanceUID, c.StudyInstanceUID])


# -- person names: case, non-ASCII, component groups -----------------------------------------------------
def test_pn_matching_is_case_insensitive_by_default_non_ascii_too(buf, cts):
    assert _values(_find(buf, "STUDY", PatientName="BUC^JÉRÔME"), "PatientID") == ["SCSFREN"]
    assert _values(_find(buf, "STUDY", PatientName="äneas*"), "PatientID") == ["SCSGERM"]
    assert _values(_find(buf, "STUDY", PatientName="SMITH^J*"), "PatientID") == ["P-A", "P-A", "P-C"]
    assert _values(_find(buf, "STUDY", ReferringPhysicianName="MÜLLER*"), "PatientID") == ["P-C"]
    assert _values(_find(buf, "STUDY", PatientName="люкceмбypг"), "PatientID") == ["SCSRUSS"]


def test_pn_matching_case_sensitive_when_configured(buf, cts):
    assert _find(buf, "STUDY", PatientName="BUC^JÉRÔME", pn_case_insensitive=False) == []
    assert _values(_find(buf, "STUDY", PatientName="Buc^Jérôme", pn_case_insensitive=False), "PatientID") == ["SCSFREN"]
    assert _values(_find(buf, "STUDY", PatientName="smith*", pn_case_insensitive=False), "PatientID") == ["P-C"]


def test_pn_matches_any_component_group_japanese_korean_chinese(buf, cts):
    assert _values(_find(buf, "STUDY", PatientName="Yamada^Tarou"), "PatientID") == ["H31EXAMPLE"]
    assert _values(_find(buf, "STUDY", PatientName="山田^太郎"), "PatientID") == ["H31EXAMPLE", "H32EXAMPLE"]
    assert _values(_find(buf, "STUDY", PatientName="やまだ*"), "PatientID") == ["H31EXAMPLE", "H32EXAMPLE"]
    assert _values(_find(buf, "STUDY", PatientName="ﾔﾏﾀﾞ^ﾀﾛｳ"), "PatientID") == ["H32EXAMPLE"]
    assert _values(_find(buf, "STUDY", PatientName="홍^길동"), "PatientID") == ["I2EXAMPLE"]
    assert _values(_find(buf, "STUDY", PatientName="wang^xiaodong"), "PatientID") == ["X1EXAMPLE", "X2EXAMPLE"]
    # With "=", the whole name is matched group by group.
    assert _values(_find(buf, "STUDY", PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう"), "PatientID") == ["H31EXAMPLE"]
    assert _find(buf, "STUDY", PatientName="Yamada^Tarou=山田^次郎") == []


def test_query_in_its_own_character_set_is_decoded(buf, cts):
    """A query identifier sent in ISO 2022 IR 87 is decoded by pydicom with its (0008,0005)."""
    q = _q("STUDY", PatientName="山田^太郎", PatientID="")
    q.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    wire = encode(q, True, True)
    assert b"\x1b$B" in wire  # really sent with code extensions
    back = decode(__import__("io").BytesIO(wire), True, True)
    rs = list(find(buf.index, back, STUDY_ROOT_FIND))
    assert _values(rs, "PatientID") == ["H31EXAMPLE", "H32EXAMPLE"]


# -- dates and times --------------------------------------------------------------------------------
def test_date_single_value_and_ranges(buf, cts):
    assert _values(_find(buf, "STUDY", StudyDate="20260105"), "AccessionNumber") == ["ACC-A"]
    assert _values(_find(buf, "STUDY", StudyDate="20260101-20260107"), "AccessionNumber") == ["ACC-A", "ACC-B"]
    assert _values(_find(buf, "STUDY", StudyDate="20260106-"), "AccessionNumber") == ["ACC-B"]
    assert _values(_find(buf, "STUDY", StudyDate="20260107-"), "AccessionNumber") == ["ACC-B"]  # ends included
    assert _values(_find(buf, "STUDY", StudyDate="-20260105"), "AccessionNumber") == ["ACC-A", "ACC-C"]
    # The charset files have no StudyDate: they match no range, only universal matching.
    assert len(_find(buf, "STUDY", StudyDate="")) == len(CHARSET_FILES) + 3


def test_time_ranges_compare_whole_times(buf, cts):
    # "0930" is stored as sent; "-0930" takes 09:30:xx; "1745-" takes 17:45:01.5.
    assert _values(_find(buf, "STUDY", StudyTime="-0930"), "AccessionNumber") == ["ACC-A"]
    assert _values(_find(buf, "STUDY", StudyTime="1745-"), "AccessionNumber") == ["ACC-B", "ACC-C"]
    assert _values(_find(buf, "STUDY", StudyTime="093000"), "AccessionNumber") == ["ACC-A"]
    # An upper end "1745" is the whole minute: 17:45:01.5 is in it.
    assert _values(_find(buf, "STUDY", StudyTime="-1745"), "AccessionNumber") == ["ACC-A", "ACC-B"]


def test_combined_date_time_range_when_negotiated(buf, cts):
    keys = dict(StudyDate="20251231-20260107", StudyTime="1000-1800")
    # Separately: dates in range AND time of day between 10:00 and 18:00 -> only B (17:45).
    assert _values(_find(buf, "STUDY", **keys), "AccessionNumber") == ["ACC-B"]
    # Combined (PS3.4 C.2.2.2.5.1): from 2025-12-31 10:00 to 2026-01-07 18:00 -> all three.
    assert _values(_find(buf, "STUDY", combined_datetime=True, **keys), "AccessionNumber") == \
        ["ACC-A", "ACC-B", "ACC-C"]
    assert _values(_find(buf, "STUDY", combined_datetime=True, StudyDate="20260107", StudyTime="-1700"),
                   "AccessionNumber") == []


# -- levels and models ------------------------------------------------------------------------------
def test_patient_root_patient_level_with_counts(buf, cts):
    rs = _find(buf, "PATIENT", PATIENT_ROOT_FIND, PatientID="P-A", PatientName="", NumberOfPatientRelatedStudies="",
               NumberOfPatientRelatedSeries="", NumberOfPatientRelatedInstances="")
    (r,) = rs
    assert (r.PatientName, r.NumberOfPatientRelatedStudies, r.NumberOfPatientRelatedSeries,
            r.NumberOfPatientRelatedInstances) == ("Smith^John", 2, 3, 4)
    assert "StudyInstanceUID" not in r


def test_a_replaced_instance_leaves_no_empty_patient_study_or_series_behind(tmp_path, buf):
    # duplicate_policy "replace": the same SOP instance sent again under another patient, study
    # and series (a corrected header) moves there; the old rows hold nothing and match nothing.
    first = _ct(tmp_path, buf, "x1", patient_id="P-OLD", PatientName="Moved^Once")
    again = tmp_path / "x1-again.dcm"
    ds = make_ct(again, rows=8, cols=8, patient_id="P-NEW")
    ds.SOPInstanceUID = first.SOPInstanceUID
    ds.PatientName = "Moved^Once"
    ds.save_as(again, enforce_file_format=True)
    _ingest(buf, again)
    patients = _find(buf, "PATIENT", PATIENT_ROOT_FIND, PatientName="Moved^Once", PatientID="",
                     NumberOfPatientRelatedStudies="")
    assert [(str(r.PatientID), r.NumberOfPatientRelatedStudies) for r in patients] == [("P-NEW", 1)]
    assert _values(_find(buf, "STUDY", PatientName="Moved^Once"), "StudyInstanceUID") == [ds.StudyInstanceUID]
    assert _find(buf, "SERIES", StudyInstanceUID=first.StudyInstanceUID, SeriesInstanceUID="") == []
    assert _find(buf, "PATIENT", PATIENT_ROOT_FIND, PatientID="P-OLD") == []


def test_patient_root_needs_the_patient_id_below_the_patient_level(buf, cts):
    with pytest.raises(QueryError) as e:
        _find(buf, "STUDY", PATIENT_ROOT_FIND, StudyInstanceUID="")
    assert e.value.status == 0xA900 and e.value.offending == 0x00100020 and "PatientID" in e.value.comment
    rs = _find(buf, "STUDY", PATIENT_ROOT_FIND, PatientID="P-A", StudyDate="")
    assert _values(rs, "StudyDate") == ["20260105", "20260107"]


def test_series_and_image_levels_need_single_unique_keys_above(buf, cts):
    a, _, _ = cts
    for keys in ({}, {"StudyInstanceUID": ""}, {"StudyInstanceUID": "1.2*"},
                 {"StudyInstanceUID": [a.StudyInstanceUID, "1.2.3"]}):
        with pytest.raises(QueryError) as e:
            _find(buf, "SERIES", **keys)
        assert e.value.offending == 0x0020000D
    rs = _find(buf, "SERIES", StudyInstanceUID=a.StudyInstanceUID, Modality="", NumberOfSeriesRelatedInstances="")
    assert sorted((r.Modality, r.NumberOfSeriesRelatedInstances) for r in rs) == [("CT", 2), ("SR", 1)]
    with pytest.raises(QueryError):
        _find(buf, "IMAGE", StudyInstanceUID=a.StudyInstanceUID)
    rs = _find(buf, "IMAGE", StudyInstanceUID=a.StudyInstanceUID, SeriesInstanceUID=a.SeriesInstanceUID,
               SOPClassUID="")
    assert len(rs) == 2 and all(r.SOPClassUID == a.SOPClassUID for r in rs)


# -- keys of a level below the query level ---------------------------------------------------------------
def test_keys_below_the_level_do_not_restrict_and_come_back_zero_length(buf, cts):
    a, b, c = cts
    everything = _values(_find(buf, "STUDY", StudyInstanceUID=""), "StudyInstanceUID")
    q = _q("STUDY", StudyInstanceUID="", SeriesInstanceUID="1.2.3.999", SeriesDescription="none*",
           SOPInstanceUID="1.2.3.998", InstanceNumber="77", BodyPartExamined="")
    p = plan(q, STUDY_ROOT_FIND)
    assert p.ignored == [0x00080018, 0x0008103E, 0x00180015, 0x0020000E, 0x00200013]  # tag order
    assert p.unsupported  # the pendings are FF01
    rs = list(find(buf.index, q, STUDY_ROOT_FIND))
    assert _values(rs, "StudyInstanceUID") == everything
    for kw in ("SeriesInstanceUID", "SeriesDescription", "SOPInstanceUID", "InstanceNumber", "BodyPartExamined"):
        assert all(r[kw].is_empty for r in rs), kw
    # Patient Root, PATIENT level: the study's and the series' keys alike (Modality is only ignored here).
    q = _q("PATIENT", PatientID="P-A", StudyDate="2026*", AccessionNumber="none", Modality="XA")
    p = plan(q, PATIENT_ROOT_FIND)
    assert p.ignored == [0x00080020, 0x00080050, 0x00080060] and p.unsupported
    (r,) = find(buf.index, q, PATIENT_ROOT_FIND)
    assert r.PatientID == "P-A" and r["StudyDate"].is_empty and r["Modality"].is_empty
    # Only the keys of the query level and above: FF00.
    assert not plan(_q("STUDY", StudyInstanceUID="", ModalitiesInStudy=""), STUDY_ROOT_FIND).unsupported


def test_modality_at_study_level_matches_as_modalities_in_study(buf, cts):
    a, b, c = cts
    for model, extra in ((STUDY_ROOT_FIND, {}), (PATIENT_ROOT_FIND, {"PatientID": "P-A"})):
        q = _q("STUDY", StudyInstanceUID="", Modality="SR", **extra)
        p = plan(q, model)
        assert p.ignored == [0x00080060] and p.unsupported
        rs = list(find(buf.index, q, model))
        assert [r.StudyInstanceUID for r in rs] == [a.StudyInstanceUID]
        assert rs[0]["Modality"].is_empty  # a study has no one Modality: zero length, FF01
    assert _values(_find(buf, "STUDY", StudyInstanceUID="", Modality=["SR", "MR"]), "StudyInstanceUID") == \
        sorted([a.StudyInstanceUID, c.StudyInstanceUID])
    assert _values(_find(buf, "STUDY", StudyInstanceUID="", Modality="M?"), "StudyInstanceUID") == [c.StudyInstanceUID]
    assert _find(buf, "STUDY", StudyInstanceUID="", Modality="XA") == []
    # Universal: every study, as without the key.
    assert len(_find(buf, "STUDY", StudyInstanceUID="", Modality="")) == len(CHARSET_FILES) + 3


@pytest.mark.parametrize("level, model, keys, offending", [
    (None, STUDY_ROOT_FIND, {}, 0x00080052),
    ("PATIENT", STUDY_ROOT_FIND, {}, 0x00080052),  # no patient level in Study Root
    ("FRAME", PATIENT_ROOT_FIND, {}, 0x00080052),
    ("STUDY", STUDY_ROOT_FIND, {"StudyDate": "2026*"}, 0x00080020),  # no wildcard in DA
    ("STUDY", STUDY_ROOT_FIND, {"StudyDate": "2026-01-05"}, 0x00080020),  # not a range
])
def test_bad_identifiers_are_refused_with_a900_naming_the_key(buf, level, model, keys, offending):
    q = Dataset()
    if level:
        q.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(q, k, v)
    with pytest.raises(QueryError) as e:
        find(buf.index, q, model)
    assert e.value.status == 0xA900 and e.value.offending == offending
    assert "\n" not in e.value.comment


# -- character sets of the responses ------------------------------------------------------------------
def _wire_roundtrip(ds: Dataset) -> Dataset:
    """As pynetdicom sends a response identifier and an SCU reads it; every value of even length
    (PS3.5 7.1.1)."""
    import io
    back = decode(io.BytesIO(encode(ds, False, True)), False, True)
    assert all(back.get_item(tag).length % 2 == 0 for tag in back.keys())
    return back


def test_responses_keep_the_study_character_set_when_it_holds_the_values(buf, cts):
    for pid, charset, name in (("SCSFREN", "ISO_IR 100", "Buc^Jérôme"), ("SCSGREEK", "ISO_IR 126", "Διονυσιος"),
                               ("H31EXAMPLE", ["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう"),
                               ("X2EXAMPLE", "GB18030", "Wang^XiaoDong=王^小东")):
        (r,) = _find(buf, "STUDY", PatientID=pid, PatientName="")
        assert r.SpecificCharacterSet == charset, pid
        back = _wire_roundtrip(r)
        assert str(back.PatientName) == name, pid
    (r,) = _find(buf, "STUDY", PatientID="P-C", PatientName="")
    assert "SpecificCharacterSet" not in r  # default repertoire: nothing to say
    # Japanese names go out in the very bytes of PS3.5 H.3.1 / H.3.2's examples (the files hold
    # them): escapes per component group, none before the first.
    import pydicom
    for name, pid in (("chrH31", "H31EXAMPLE"), ("chrH32", "H32EXAMPLE")):
        (r,) = _find(buf, "STUDY", PatientID=pid, PatientName="")
        sent = _wire_roundtrip(r).get_item(0x00100010).value
        assert sent == pydicom.dcmread(_charset_file(name)).get_item(0x00100010).value, name


def test_a_value_the_study_charset_cannot_hold_is_answered_in_utf8(tmp_path, buf):
    """The patient's name comes from a later study in UTF-8; an older Latin-1 study of the same
    patient is answered with ISO_IR 192, not with replacement characters."""
    _ct(tmp_path, buf, "l1", patient_id="P-W", PatientName="Wang", SpecificCharacterSet="ISO_IR 100",
        StudyDescription="Thorax ä")
    _ct(tmp_path, buf, "u1", patient_id="P-W", PatientName="Wang^XiaoDong=王^小東", SpecificCharacterSet="ISO_IR 192")
    rs = _find(buf, "STUDY", PatientID="P-W", PatientName="", StudyDescription="")
    by = {str(r.StudyDescription): r for r in rs}
    assert by["Thorax ä"].SpecificCharacterSet == "ISO_IR 192"
    back = _wire_roundtrip(by["Thorax ä"])
    assert str(back.PatientName) == "Wang^XiaoDong=王^小東" and back.StudyDescription == "Thorax ä"


# -- many matches, in batches; migration of an existing buffer -------------------------------------------
def test_many_matches_come_in_batches_and_a_dropped_iterator_stops(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    seed_studies(index, [f"1.2.3.{n}" for n in range(600)], study_dates=[f"2026{n % 12 + 1:02d}01" for n in range(600)])
    rs = list(find(index, _q("STUDY", StudyDate="20260101-20260630"), STUDY_ROOT_FIND))
    assert len(rs) == 300 and len({r.StudyInstanceUID for r in rs}) == 300
    it = find(index, _q("STUDY"), STUDY_ROOT_FIND)
    assert [next(it) for _ in range(3)][2].StudyInstanceUID == "1.2.3.2"
    it.close()
    index.close()


def test_a_version_6_buffer_is_migrated_and_answers_queries(tmp_path, buf, cts):
    """Migration 7 fills the new columns of the rows already there."""
    path = buf.index.path
    buf.close()
    db = sqlite3.connect(path, isolation_level=None)
    for idx in ("patients_name_folded", "patients_name", "studies_patient", "studies_date", "studies_dt",
                "studies_accession", "series_study"):
        db.execute(f"DROP INDEX {idx}")
    for table, column in (("patients", "name_folded"), ("studies", "referring_folded"), ("studies", "study_dt")):
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute("PRAGMA user_version = 6")
    db.close()
    index = Index(path)
    try:
        assert migrations.version(index._db) == migrations.LATEST
        rs = list(find(index, _q("STUDY", PatientName="BUC^JÉRÔME", PatientID=""), STUDY_ROOT_FIND))
        assert _values(rs, "PatientID") == ["SCSFREN"]
        rs = list(find(index, _q("STUDY", StudyDate="20251231-20260107", StudyTime="1000-1800",
                                 ReferringPhysicianName="müller^anna", AccessionNumber=""), STUDY_ROOT_FIND, combined_datetime=True))
        assert _values(rs, "AccessionNumber") == ["ACC-C"]
    finally:
        index.close()
