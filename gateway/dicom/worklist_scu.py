"""Modality Worklist SCU: one C-FIND of the Modality Worklist Information Model - FIND
(1.2.840.10008.5.1.4.31, PS3.4 Annex K) against the configured SCP, each response made a
`Procedure` (gateway/buffer/procedure.py) with its identifier's bytes kept as the SCP encoded them.

Matching keys (the seed conformance statement's, PS3.4 K.6.1.2.2 / Table K.6-1), all single value
or range matching, sent only when set:
  Scheduled Procedure Step Sequence, one item: Scheduled Station AE Title (0040,0001),
    Scheduled Procedure Step Start Date (0040,0002) (a date or a range "YYYYMMDD-YYYYMMDD"),
    Modality (0008,0060);
  Patient ID (0010,0020).
Return keys (universal matching, zero length): Specific Character Set, Patient's Name, Patient ID,
Issuer of Patient ID, Birth Date, Sex, Institution Name, Accession Number, Referring Physician's
Name, Requested Procedure ID and Description, Study Instance UID, and in the SPS item Station AE
Title, Start Date, Start Time, Modality, SPS ID, SPS Description, Scheduled Performing
Physician's Name.

Bytes stay bytes: pynetdicom hands the identifier over undecoded (pydicom's raw elements);
encode_identifier writes those raw values back as they came (only the VR framing may change,
implicit -> explicit), so a name in ISO 2022 Japanese reaches the capture as the RIS wrote it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, timedelta

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from gateway.buffer.procedure import Procedure, encode_identifier
from gateway.dicom.net.association_failure import why_no_association
from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

log = logging.getLogger("gateway.dicom.worklist_scu")

MWL_FIND = "1.2.840.10008.5.1.4.31"
# Implicit VR LE is what every worklist SCP takes (the seed's only one); Explicit VR LE keeps the VRs
# as the SCP knows them. Nothing compressed or deflated: an identifier is a few hundred bytes.
MWL_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
MEDIUM = 0  # PS3.7 9.1.2.1.6 Priority: 0 MEDIUM (pynetdicom's default for C-FIND is LOW)
_PENDING = (0xFF00, 0xFF01)
_SUCCESS = 0x0000
_CANCEL = 0xFE00
# PS3.4 K.4.1.1.4 / C.4.1.1.4 failure statuses, in words.
_FAILURES = {
    0xA700: "out of resources",
    0xA900: "identifier does not match SOP class",
    0x0122: "SOP class not supported",
}

_TOP_RETURN_KEYS = ("SpecificCharacterSet", "PatientName", "IssuerOfPatientID", "PatientBirthDate",
                    "PatientSex", "InstitutionName", "AccessionNumber", "ReferringPhysicianName",
                    "RequestedProcedureID", "RequestedProcedureDescription", "StudyInstanceUID")
_SPS_RETURN_KEYS = ("ScheduledProcedureStepStartTime", "ScheduledProcedureStepID",
                    "ScheduledProcedureStepDescription", "ScheduledPerformingPhysicianName")


class WorklistError(Exception):
    """The query failed as a whole (no connection, association refused, a failure status, too
    many items, a response that does not decode): one line naming the SCP and why."""


@dataclass(frozen=True)
class WorklistQuery:
    """What to match. station_ae: Scheduled Station AE Title ("" or "*": any). date_from /
    date_to: "YYYYMMDD", the SPS Start Date range (equal: one day; both "": any date).
    modality: "" any. patient_id: "" any."""

    station_ae: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    patient_id: str = ""

    @classmethod
    def around(cls, today: date, days_back: int, days_forward: int, **keys: str) -> "WorklistQuery":
        """The query for today - days_back .. today + days_forward (the [worklist] window)."""
        return cls(date_from=(today - timedelta(days=days_back)).strftime("%Y%m%d"),
                   date_to=(today + timedelta(days=days_forward)).strftime("%Y%m%d"), **keys)

    def identifier(self) -> Dataset:
        """The C-FIND request's identifier (PS3.4 K.6.1.2.2): matching keys with their values,
        return keys empty."""
        ds = Dataset()
        for kw in _TOP_RETURN_KEYS:
            setattr(ds, kw, "")
        ds.PatientID = self.patient_id
        sps = Dataset()
        sps.ScheduledStationAETitle = "" if self.station_ae in ("", "*") else self.station_ae
        if self.date_from or self.date_to:
            sps.ScheduledProcedureStepStartDate = (self.date_from if self.date_from == self.date_to
                                                   else f"{self.date_from}-{self.date_to}")
        else:
            sps.ScheduledProcedureStepStartDate = ""
        sps.Modality = self.modality
        for kw in _SPS_RETURN_KEYS:
            setattr(sps, kw, "")
        ds.ScheduledProcedureStepSequence = Sequence([sps])
        return ds


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def procedure_of(identifier: Dataset) -> Procedure:
    """One C-FIND response's identifier as a Procedure: its bytes (Explicit VR LE, values as
    received) and the decoded fields for screens. The SPS fields come from the sequence's first
    item (an SCP answers one response per Scheduled Procedure Step, PS3.4 K.6.1.2.2).
    ValueError when a value does not decode (a character set pydicom does not know)."""
    raw = encode_identifier(identifier)
    try:
        seq = identifier.get("ScheduledProcedureStepSequence") or [Dataset()]
        sps = seq[0]
        sps_id = _text(sps, "ScheduledProcedureStepID")
        accession = _text(identifier, "AccessionNumber")
        study = _text(identifier, "StudyInstanceUID")
        start = _text(sps, "ScheduledProcedureStepStartDate") + _text(sps, "ScheduledProcedureStepStartTime")
        return Procedure(
            key=f"{sps_id}|{accession}|{study}", identifier=raw, scheduled=True,
            patient_name=_text(identifier, "PatientName"), patient_id=_text(identifier, "PatientID"),
            accession_number=accession, study_uid=study, modality=_text(sps, "Modality"),
            description=_text(sps, "ScheduledProcedureStepDescription")
            or _text(identifier, "RequestedProcedureDescription"),
            start=start.split(".")[0], station_ae=_text(sps, "ScheduledStationAETitle"))
    except (LookupError, UnicodeError, AttributeError, TypeError) as exc:
        raise ValueError(f"a response does not decode: {exc}") from None


def _unique(item: Procedure, before: list[Procedure]) -> Procedure:
    """``item`` with a key no earlier item has: an SCP that sends neither SPS ID nor accession
    number (both Type 1 in K.6.1.2.2, yet seen) would otherwise give two items one key, and a
    selection by key would pick the wrong patient's step. The second becomes "<key>#2", and so on."""
    keys = {p.key for p in before}
    if item.key not in keys:
        return item
    n = 2
    while f"{item.key}#{n}" in keys:
        n += 1
    return replace(item, key=f"{item.key}#{n}")


def find(ae_title: str, host: str, port: int, calling_ae: str, query: WorklistQuery,
         timeout: float = 10.0, max_items: int = 500) -> list[Procedure]:
    """C-FIND ``query`` on the worklist SCP ``ae_title@host:port`` as ``calling_ae``; every pending
    response as a Procedure, in the SCP's order (PS3.4 K.4.1.3). ``timeout``: seconds for the
    connection, the association and each response. An empty list is a good answer.

    Raises WorklistError (one line naming the SCP) for: no connection, A-ASSOCIATE-RJ (its reason
    in words, e.g. "called AE title not recognised"), the context not accepted, a failure or
    cancel status, no final response, more than ``max_items`` items, an undecodable response."""
    where = f"{ae_title}@{host}:{port}"
    ae = AE(ae_title=calling_ae)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.add_requested_context(ModalityWorklistInformationFind, list(MWL_SYNTAXES))
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        raise WorklistError(why_no_association(assoc, where, host, port, timeout))
    items: list[Procedure] = []
    final: int | None = None
    try:
        if not assoc.accepted_contexts:
            raise WorklistError(f"{where} does not offer Modality Worklist (1.2.840.10008.5.1.4.31)")
        for status, identifier in assoc.send_c_find(query.identifier(), ModalityWorklistInformationFind,
                                                         priority=MEDIUM):
            if not status:  # pynetdicom: an empty status on a timeout, an abort or a bad response
                break
            code = int(status.Status)
            if code in _PENDING:
                if identifier is None:
                    continue
                if len(items) >= max_items:
                    raise WorklistError(f"{where} answered more than {max_items} items (worklist.max_items);"
                                        " narrow the query (station_ae, modality, days)")
                try:
                    item = procedure_of(identifier)
                except ValueError as exc:
                    raise WorklistError(f"{where}: {exc}") from None
                items.append(_unique(item, items))
                continue
            final = code
            break
    finally:
        if assoc.is_established:
            # No final response (a timeout, too many items): abort, a release would wait on it.
            if final is None:
                assoc.abort()
            else:
                assoc.release()
    if final is None:
        raise WorklistError(f"{where}: no final C-FIND response within {timeout:g} s (association lost or timed out)")
    if final == _CANCEL:
        raise WorklistError(f"{where}: the query was cancelled (status 0xFE00)")
    if final != _SUCCESS:
        words = _FAILURES.get(final) or ("unable to process" if final & 0xF000 == 0xC000 else "failed")
        raise WorklistError(f"{where}: C-FIND failed, status 0x{final:04X} ({words})")
    return items
