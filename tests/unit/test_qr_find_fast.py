"""The C-FIND SCP's hand-encoded response identifiers (gateway/buffer/query.py encode_response)
are byte for byte what pydicom writes for the same response as a Dataset (the path pynetdicom
takes), in Implicit and Explicit VR Little Endian, at every level of both models, over pydicom's
character set files (Latin-1, German, Japanese ISO 2022, Korean, Russian, Greek...) and made CT
instances, with keys the index holds, keys it does not (zero length, a sequence) and the answered
ones (Retrieve AE Title, Instance Availability)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dsutils import encode

from gateway.buffer import query
from gateway.buffer.query import PATIENT_ROOT_FIND, STUDY_ROOT_FIND

import test_qr_query

# The fixtures of test_qr_query: a buffer with pydicom's charset files, and made CT studies.
buf, cts = test_qr_query.buf, test_qr_query.cts


def _identifier(level: str, model: str, parent: dict) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = ""
    ds.PatientID = parent.get("PatientID", "")
    ds.PatientBirthDate = ""
    ds.StudyInstanceUID = parent.get("StudyInstanceUID", "")
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = ""
    ds.ModalitiesInStudy = ""
    ds.NumberOfStudyRelatedInstances = ""
    ds.RetrieveAETitle = ""
    ds.InstanceAvailability = ""
    ds.OtherPatientIDsSequence = Sequence()  # not held: an empty sequence back
    ds.InstitutionName = ""  # not held: zero length back
    if level in ("SERIES", "IMAGE"):
        ds.SeriesInstanceUID = parent.get("SeriesInstanceUID", "")
        ds.Modality = ""
        ds.SeriesNumber = ""
        ds.SeriesDescription = ""
    if level == "IMAGE":
        ds.SOPInstanceUID = ""
        ds.SOPClassUID = ""
        ds.InstanceNumber = ""
    if level == "PATIENT":
        for kw in ("StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName",
                   "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"):
            delattr(ds, kw)
    if model == STUDY_ROOT_FIND and level != "STUDY":
        for kw in ("PatientName", "PatientID", "PatientBirthDate"):
            delattr(ds, kw)
    return ds


def _compare(buf, identifier: Dataset, model: str) -> int:
    """Every response of `identifier`: hand-encoded == pydicom-encoded, both VR encodings."""
    p = query.plan(identifier, model)
    assert query.encodable_by_hand(p)
    rows = buf.index.query(p.sql, (*p.params, 0))
    for row in rows:
        for implicit in (True, False):
            ds = query._response(p, row, "EDGE", (implicit, True))
            assert query.encode_response(p, row, "EDGE", implicit) == encode(ds, implicit, True), \
                (identifier.QueryRetrieveLevel, implicit, dict(row))
    return len(rows)


@pytest.mark.parametrize("model", [PATIENT_ROOT_FIND, STUDY_ROOT_FIND])
def test_hand_encoded_identifiers_equal_pydicoms_at_every_level(buf, cts, model):
    top = "PATIENT" if model == PATIENT_ROOT_FIND else "STUDY"
    assert _compare(buf, _identifier(top, model, {}), model) >= 9
    studies = buf.index.query("SELECT p.patient_id AS pid, st.study_uid AS uid FROM studies st "
                              "JOIN patients p ON st.patient_fk = p.id", ())
    n = 0
    for s in studies:
        parent = {"PatientID": s["pid"], "StudyInstanceUID": s["uid"]}
        if model == PATIENT_ROOT_FIND:
            n += _compare(buf, _identifier("STUDY", model, parent), model)
        for se in buf.index.query("SELECT series_uid FROM series se JOIN studies st ON se.study_fk = st.id "
                                  "WHERE st.study_uid = ?", (s["uid"],)):
            n += _compare(buf, _identifier("SERIES", model, parent), model)
            n += _compare(buf, _identifier("IMAGE", model, {**parent, "SeriesInstanceUID": se["series_uid"]}), model)
    assert n >= 20


def test_streamed_responses_are_the_hand_encoded_ones(buf, cts):
    p = query.plan(_identifier("STUDY", STUDY_ROOT_FIND, {}), STUDY_ROOT_FIND)
    fast = list(query.encoded_responses(buf.index, p, "EDGE", True))
    slow = [encode(ds, True, True) for ds in query.responses(buf.index, p, "EDGE", (True, True))]
    assert fast == slow and len(fast) >= 9


def test_an_ambiguous_vr_is_left_to_pydicom():
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.add_new(0x00280106, "US or SS", None)  # Smallest Image Pixel Value: not held, VR not plain
    p = query.plan(q, STUDY_ROOT_FIND)
    assert not query.encodable_by_hand(p)


@pytest.mark.parametrize("model", [PATIENT_ROOT_FIND, STUDY_ROOT_FIND])
def test_keys_below_the_level_are_hand_encoded_zero_length_as_pydicom_writes_them(buf, cts, model):
    top = "PATIENT" if model == PATIENT_ROOT_FIND else "STUDY"
    q = _identifier(top, model, {})
    q.Modality = "CT"  # at STUDY level matched as Modalities in Study, returned zero length
    q.SeriesDescription = "x*"
    q.SOPInstanceUID = ""
    if top == "PATIENT":
        q.StudyDate = "2026*"
    p = query.plan(q, model)
    assert p.unsupported and 0x00080060 in p.ignored
    assert _compare(buf, q, model) >= 1
    for row in buf.index.query(p.sql, (*p.params, 0)):
        ds = query._response(p, row, "EDGE", (False, True))
        assert ds["Modality"].is_empty and ds["SeriesDescription"].is_empty and ds["SOPInstanceUID"].is_empty
