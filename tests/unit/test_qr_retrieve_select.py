"""gateway/buffer/retrieve_select.py: which stored instances a C-MOVE / C-GET identifier names
(PS3.4 C.4.2.2.1, hierarchical retrieve over Patient Root and Study Root)."""

from __future__ import annotations

import shutil

import pytest
from datasets import make_ct
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from gateway.buffer import retrieve_select as rs
from gateway.buffer.ingest import Buffer
from gateway.part10.attributes import read_attributes


@pytest.fixture
def stored(tmp_path):
    """A buffer with two patients: P1 has study A (series A1: 3 images, A2: 1) and study B
    (series B1: 2); P2 has study C (series C1: 1). Returns (buffer, {name: [sop uids]}, uids)."""
    buf = Buffer(tmp_path / "buf", 0, "replace", lambda attrs, calling: [])
    uids = {k: generate_uid() for k in ("A", "B", "C", "A1", "A2", "B1", "C1")}
    layout = [("P1", "A", "A1", 3), ("P1", "A", "A2", 1), ("P1", "B", "B1", 2), ("P2", "C", "C1", 1)]
    sops: dict[str, list[str]] = {}
    n = 0
    for pid, study, series, count in layout:
        for k in range(count):
            n += 1
            src = tmp_path / f"src{n}.dcm"
            ds = make_ct(src, study_uid=uids[study], series_uid=uids[series], number=k + 1, patient_id=pid,
                         rows=4, cols=4)
            tmp = buf.files.new_incoming_path()
            shutil.copyfile(src, tmp)
            buf.ingest(tmp, read_attributes(src), "MOD")
            sops.setdefault(series, []).append(str(ds.SOPInstanceUID))
    yield buf, sops, uids
    buf.close()


def _ident(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def _uids(matches):
    return [m.sop_uid for m in matches]


def test_study_root_study_level_list_of_uids_in_stable_order(stored, monkeypatch):
    buf, sops, uids = stored
    # One UID per statement: the rows come back in the list's order, and select() must sort them.
    monkeypatch.setattr(rs, "_CHUNK", 1)
    got = rs.retrieve_matches(buf.index, rs.STUDY_ROOT, _ident("STUDY", StudyInstanceUID=[uids["B"], uids["A"]]))
    # Ordered as the instances entered the index, not as the list was given.
    assert _uids(got) == sops["A1"] + sops["A2"] + sops["B1"]
    m = got[0]
    assert m.sop_class == "1.2.840.10008.5.1.4.1.1.2" and m.transfer_syntax == "1.2.840.10008.1.2.1"
    assert (buf.files.root / m.path).is_file()
    again = rs.retrieve_matches(buf.index, rs.STUDY_ROOT, _ident("STUDY", StudyInstanceUID=[uids["A"], uids["B"]]))
    assert again == got


def test_series_and_image_levels_are_hierarchical(stored):
    buf, sops, uids = stored
    got = rs.retrieve_matches(buf.index, rs.STUDY_ROOT,
                              _ident("SERIES", StudyInstanceUID=uids["A"], SeriesInstanceUID=[uids["A2"], uids["A1"]]))
    assert _uids(got) == sops["A1"] + sops["A2"]
    # A series of another study under this study's UID: no match (the hierarchy bounds it).
    assert rs.retrieve_matches(buf.index, rs.STUDY_ROOT,
                               _ident("SERIES", StudyInstanceUID=uids["A"], SeriesInstanceUID=uids["B1"])) == []
    one = sops["A1"][1]
    got = rs.retrieve_matches(buf.index, rs.STUDY_ROOT,
                              _ident("IMAGE", StudyInstanceUID=uids["A"], SeriesInstanceUID=uids["A1"],
                                     SOPInstanceUID=[one, "1.2.3.999"]))
    assert _uids(got) == [one]


def test_patient_root_levels_and_patient_bound(stored):
    buf, sops, uids = stored
    assert _uids(rs.retrieve_matches(buf.index, rs.PATIENT_ROOT, _ident("PATIENT", PatientID="P2"))) == sops["C1"]
    assert len(rs.retrieve_matches(buf.index, rs.PATIENT_ROOT, _ident("PATIENT", PatientID="P1"))) == 6
    assert _uids(rs.retrieve_matches(buf.index, rs.PATIENT_ROOT,
                                     _ident("STUDY", PatientID="P1", StudyInstanceUID=uids["B"]))) == sops["B1"]
    # Study C belongs to P2: under Patient Root, P1's identifier does not reach it.
    assert rs.retrieve_matches(buf.index, rs.PATIENT_ROOT,
                               _ident("STUDY", PatientID="P1", StudyInstanceUID=uids["C"])) == []
    # An issuer other than the stored one (none) narrows to nothing.
    assert rs.retrieve_matches(buf.index, rs.PATIENT_ROOT,
                               _ident("PATIENT", PatientID="P2", IssuerOfPatientID="OTHER")) == []
    # Under Study Root, PatientID is not a key: it is ignored.
    assert _uids(rs.retrieve_matches(buf.index, rs.STUDY_ROOT,
                                     _ident("STUDY", PatientID="P1", StudyInstanceUID=uids["C"]))) == sops["C1"]


def test_unknown_uid_matches_nothing(stored):
    buf, _sops, _uids = stored
    assert rs.retrieve_matches(buf.index, rs.STUDY_ROOT, _ident("STUDY", StudyInstanceUID="1.2.3.4.5")) == []


@pytest.mark.parametrize("model, ident, words", [
    (rs.STUDY_ROOT, {"StudyInstanceUID": "1.2"}, "no Query/Retrieve Level"),
    (rs.STUDY_ROOT, {"QueryRetrieveLevel": "PATIENT", "PatientID": "P1"}, "not a level of Study Root"),
    (rs.PATIENT_ROOT, {"QueryRetrieveLevel": "FOO"}, "not a level of Patient Root"),
    (rs.STUDY_ROOT, {"QueryRetrieveLevel": "STUDY"}, "StudyInstanceUID missing or empty"),
    (rs.STUDY_ROOT, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ""}, "StudyInstanceUID missing or empty"),
    (rs.STUDY_ROOT, {"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": "1.2"}, "StudyInstanceUID missing"),
    (rs.PATIENT_ROOT, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2"}, "PatientID missing"),
    (rs.STUDY_ROOT, {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": ["1.2", "1.3"],
                     "SeriesInstanceUID": "1.4"}, "StudyInstanceUID has 2 values"),
    (rs.STUDY_ROOT, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.*"}, "not a UID"),
    (rs.PATIENT_ROOT, {"QueryRetrieveLevel": "PATIENT", "PatientID": "P*"}, "wildcard"),
])
def test_bad_identifiers_name_the_problem(stored, model, ident, words):
    buf, _sops, _uids = stored
    ds = Dataset()
    for k, v in ident.items():
        setattr(ds, k, v)
    with pytest.raises(rs.BadIdentifier) as err:
        rs.retrieve_matches(buf.index, model, ds)
    assert words in str(err.value)
    assert err.value.status == 0xA900


def test_more_than_65535_instances_is_refused(stored, monkeypatch):
    buf, _sops, uids = stored
    monkeypatch.setattr(rs, "MAX_SUBOPERATIONS", 5)
    with pytest.raises(rs.BadIdentifier) as err:
        rs.retrieve_matches(buf.index, rs.PATIENT_ROOT, _ident("PATIENT", PatientID="P1"))
    assert err.value.status == 0xA701


def test_current_follows_the_index(stored):
    buf, sops, uids = stored
    (m,) = rs.retrieve_matches(buf.index, rs.STUDY_ROOT, _ident("STUDY", StudyInstanceUID=uids["C"]))
    assert rs.current(buf.index, m) == m
    with buf.index.tx() as cur:
        cur.execute("DELETE FROM instances WHERE id = ?", (m.instance_id,))
    assert rs.current(buf.index, m) is None
