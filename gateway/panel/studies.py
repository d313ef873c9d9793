"""The studies the panel offers for export, read from the buffer's index (gateway/buffer/index.py).

The panel's studies screens show one study each (patient name and ID, modality, date) and EXPORT
queues the one shown. Events carry no patient data (gateway/event_kinds.py), so this list comes
from the index, which holds what the instances said: Patient Name as decoded with the instance's
Specific Character Set (PS3.5 6.1), all its component groups included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.buffer.index import Index


@dataclass(frozen=True)
class StudyChoice:
    """A study offered on the studies screens. patient_name: the DICOM PN as decoded (all three
    component groups, PS3.5 6.2.1.2). study_date: YYYYMMDD or "". modality: the series'
    modalities, "CT" or "CT/SR", or ""."""

    study_uid: str
    patient_id: str
    patient_name: str = ""
    study_date: str = ""
    modality: str = ""


_RECENT = """
SELECT st.study_uid, p.patient_id, p.patient_name, st.study_date,
       (SELECT group_concat(m, '/') FROM (SELECT DISTINCT se.modality AS m FROM series se
                                          WHERE se.study_fk = st.id AND se.modality != '' ORDER BY m))
         AS modalities
FROM studies st JOIN patients p ON p.id = st.patient_fk
ORDER BY st.first_received DESC, st.id DESC
LIMIT ?
"""


def recent_studies(index: "Index", limit: int = 20) -> list[StudyChoice]:
    """The `limit` studies whose first instance arrived last, newest first: what a radiographer
    at the box most likely wants on a disc. A bounded list, because NEXT walks it one press a
    study; older studies are exported from the command line (`dicom-gateway export`)."""
    return [StudyChoice(r["study_uid"], r["patient_id"], r["patient_name"], r["study_date"], r["modalities"] or "")
            for r in index.query(_RECENT, (limit,))]
