"""The MPPS N-CREATE / N-SET attribute lists (gateway/buffer/mpps_attributes.py, PS3.4 Table F.7.2-1):
patient and scheduled step attributes copied byte for byte from the worklist identifier with its
character set, the unscheduled case, the Performed Series Sequence of the N-SET, and one-line
refusals for what cannot be sent."""

from __future__ import annotations

from datetime import datetime
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode as wire_decode, encode as wire_encode

from gateway.buffer import mpps_attributes as A
from gateway.buffer.procedure import Procedure
from mpps_support import JAPANESE_NAME, LATIN1_NAME, STUDY_UID, japanese_procedure, latin1_unscheduled

START = datetime(2026, 11, 29, 9, 5, 7)
SC = "1.2.840.10008.5.1.4.1.1.7"


def _create(proc: Procedure, **kw) -> Dataset:
    args = dict(pps_id="PPS-1", started=START, station_ae="EDGE", modality="US")
    args.update(kw)
    return A.create_attributes(proc, **args)


def _over_the_wire(ds: Dataset, implicit: bool) -> Dataset:
    """What a peer decodes: stored bytes, then pynetdicom's encoding for the negotiated syntax."""
    stored = A.decode(A.encode(ds))
    return wire_decode(BytesIO(wire_encode(stored, implicit, True)), implicit, True)


@pytest.mark.parametrize("implicit", [True, False])
def test_create_from_a_japanese_worklist_item(implicit):
    ds = _over_the_wire(_create(japanese_procedure()), implicit)
    assert ds.SpecificCharacterSet == ["", "ISO 2022 IR 87"]
    assert ds.PatientName == JAPANESE_NAME
    assert (ds.PatientID, ds.IssuerOfPatientID, ds.PatientBirthDate, ds.PatientSex) == ("JP-0042", "HOSP",
                                                                                         "19610203", "M")
    assert ds.PerformedProcedureStepStatus == "IN PROGRESS"
    assert (ds.PerformedProcedureStepID, ds.PerformedStationAETitle, ds.Modality) == ("PPS-1", "EDGE", "US")
    assert (ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime) == ("20261129", "090507")
    (item,) = ds.ScheduledStepAttributesSequence
    assert item.StudyInstanceUID == STUDY_UID
    assert (item.AccessionNumber, item.RequestedProcedureID, item.ScheduledProcedureStepID) == ("ACC-77", "RP-9",
                                                                                                "SPS-1")
    assert item.RequestedProcedureDescription == "腹部エコー"
    assert item.ScheduledProcedureStepDescription == "US Abdomen"
    assert item.ScheduledProtocolCodeSequence[0].CodeMeaning == "超音波 腹部"
    assert item.ReferencedStudySequence[0].ReferencedSOPInstanceUID == "1.2.826.0.1.3680043.8.498.99"
    # What only an N-SET may set later exists, empty (PS3.4 F.7.2.2: N-SET changes only what exists).
    assert ds.PerformedSeriesSequence == [] and ds.PerformedProcedureStepDiscontinuationReasonCodeSequence == []
    assert ds.PerformedProcedureStepEndDate in ("", None) and "PerformedProcedureStepEndTime" in ds
    assert ds.PerformedProcedureStepDescription == "US Abdomen"
    assert ds.PerformedProcedureTypeDescription == "腹部エコー"


def test_patient_name_bytes_are_the_worklist_s():
    proc = japanese_procedure()
    raw_in = proc.dataset().get_item(0x00100010).value
    raw_out = A.decode(A.encode(_create(proc))).get_item(0x00100010).value
    assert raw_out == raw_in and b"\x1b$B" in raw_out  # ISO 2022 escape to JIS X 0208, untouched


def test_unscheduled_latin1():
    ds = _over_the_wire(_create(latin1_unscheduled(), modality="XC", study_uid="1.2.3.4.5"), True)
    assert ds.PatientName == LATIN1_NAME and ds.PatientID == "UNSCHED-1"
    (item,) = ds.ScheduledStepAttributesSequence
    assert item.StudyInstanceUID == "1.2.3.4.5"
    for keyword in ("AccessionNumber", "RequestedProcedureID", "ScheduledProcedureStepID",
                    "ScheduledProcedureStepDescription", "RequestedProcedureDescription"):
        assert keyword in item and item.get(keyword) in ("", None), keyword
    assert item.ReferencedStudySequence == [] and item.ScheduledProtocolCodeSequence == []
    # Type 2 patient attributes the identifier lacked are there, empty.
    assert "PatientBirthDate" in ds and "PatientSex" in ds


def test_refusals_are_one_line():
    with pytest.raises(A.MppsAttributeError, match="no Study Instance UID"):
        _create(latin1_unscheduled())
    with pytest.raises(A.MppsAttributeError, match="station_ae"):
        _create(japanese_procedure(), station_ae="")
    with pytest.raises(A.MppsAttributeError, match="does not decode"):
        # A Scheduled Procedure Step Sequence cut short: pydicom finds out only when it reads it.
        _create(Procedure(key="k", identifier=b"\x40\x00\x00\x01SQ\x00\x00\x10\x00\x00\x00abc",
                          study_uid="1.2.3"))
    with pytest.raises(A.MppsAttributeError, match="at least one image"):
        A.set_attributes([], ended=START)
    with pytest.raises(A.MppsAttributeError, match="not a UID"):
        A.set_attributes([(SC, "1.2.x", "1.2.3")], ended=START)
    with pytest.raises(A.MppsAttributeError, match="unknown discontinuation reason"):
        A.set_attributes([], ended=START, discontinued=True, reason="bored")


def test_set_completed_groups_images_by_series():
    images = [(SC, "1.2.3.1", "1.2.9.1"), A.ReferencedImage(SC, "1.2.3.2", "1.2.9.2"), (SC, "1.2.3.3", "1.2.9.1")]
    ds = _over_the_wire(A.set_attributes(images, ended=START, retrieve_ae="PACS", character_set=b"ISO_IR 100"),
                        True)
    assert ds.PerformedProcedureStepStatus == "COMPLETED"
    assert (ds.PerformedProcedureStepEndDate, ds.PerformedProcedureStepEndTime) == ("20261129", "090507")
    assert [s.SeriesInstanceUID for s in ds.PerformedSeriesSequence] == ["1.2.9.1", "1.2.9.2"]
    first = ds.PerformedSeriesSequence[0]
    assert [(r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID) for r in first.ReferencedImageSequence] == [
        (SC, "1.2.3.1"), (SC, "1.2.3.3")]
    assert first.RetrieveAETitle == "PACS" and first.ProtocolName == "CAPTURE"
    assert "ReferencedNonImageCompositeSOPInstanceSequence" in first
    assert "PerformedProcedureStepDiscontinuationReasonCodeSequence" not in ds
    assert ds.SpecificCharacterSet == "ISO_IR 100"


def test_set_discontinued_with_reason():
    ds = A.set_attributes([], ended=START, discontinued=True, reason="equipment-failure")
    assert ds.PerformedProcedureStepStatus == "DISCONTINUED"
    (code,) = ds.PerformedProcedureStepDiscontinuationReasonCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("110501", "DCM")
    assert ds.PerformedSeriesSequence == []


def test_set_discontinued_with_a_code_of_the_site():
    ds = A.set_attributes([], ended=START, discontinued=True, reason=("X-7", "99SITE", "Probe failure"))
    code = ds.PerformedProcedureStepDiscontinuationReasonCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == ("X-7", "99SITE", "Probe failure")
    with pytest.raises(A.MppsAttributeError, match="code value, coding scheme, meaning"):
        A.set_attributes([], ended=START, discontinued=True, reason=("X-7", ""))


def test_pps_id_fits_sh_and_is_stable():
    a = A.pps_id_for("1.2.3.4")
    assert a == A.pps_id_for("1.2.3.4") != A.pps_id_for("1.2.3.5") and len(a) <= 16
