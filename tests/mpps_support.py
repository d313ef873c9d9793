"""Procedures for the MPPS tests: worklist identifiers in Japanese (ISO 2022 IR 87) and Latin-1
(ISO_IR 100), made as a worklist SCP would send them (Explicit VR Little Endian bytes)."""

from __future__ import annotations

from pydicom.dataset import Dataset

from gateway.buffer.procedure import Procedure, encode_identifier

JAPANESE_NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"
LATIN1_NAME = "Müller^Jürgen"
STUDY_UID = "1.2.826.0.1.3680043.8.498.4711"


def japanese_procedure() -> Procedure:
    """A scheduled worklist item: patient in ISO 2022 IR 87, one Scheduled Procedure Step with a
    protocol code, a Referenced Study Sequence, requested procedure in Japanese."""
    ds = Dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = JAPANESE_NAME
    ds.PatientID = "JP-0042"
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientBirthDate = "19610203"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = STUDY_UID
    ds.AccessionNumber = "ACC-77"
    ds.RequestedProcedureID = "RP-9"
    ds.RequestedProcedureDescription = "腹部エコー"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.99"
    ds.ReferencedStudySequence = [ref]
    sps = Dataset()
    sps.ScheduledStationAETitle = "EDGE"
    sps.ScheduledProcedureStepStartDate = "20261129"
    sps.ScheduledProcedureStepStartTime = "0900"
    sps.Modality = "US"
    sps.ScheduledProcedureStepID = "SPS-1"
    sps.ScheduledProcedureStepDescription = "US Abdomen"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "US-ABD", "99LOCAL", "超音波 腹部"
    sps.ScheduledProtocolCodeSequence = [code]
    ds.ScheduledProcedureStepSequence = [sps]
    return Procedure(key=f"SPS-1|ACC-77|{STUDY_UID}", identifier=encode_identifier(ds), patient_id="JP-0042",
                     accession_number="ACC-77", study_uid=STUDY_UID, modality="US", station_ae="EDGE")


def latin1_unscheduled() -> Procedure:
    """An unscheduled capture: a generated Patient ID, a Latin-1 name, no scheduled step."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = LATIN1_NAME
    ds.PatientID = "UNSCHED-1"
    return Procedure(key="UNSCHEDULED-0001", identifier=encode_identifier(ds), scheduled=False,
                     patient_id="UNSCHED-1")
