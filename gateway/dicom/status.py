"""DIMSE status codes the appliance sends or acts on (PS3.7 Annex C, PS3.4 B.2.3).

Vocabulary, not a role: it imports nothing of ours, and both dicom floors use it (it sits on the
"dicom net" floor of tests/unit/test_layers.py although it lives next to the roles).

Which category a code is in (Success, Warning, Failure, ...) is pynetdicom's
`pynetdicom.status.code_to_category` (PS3.7 C.1-C.4, including the Warning codes 0001, 0107, 0116
and Bxxx); a bare status data set is its `code_to_status`. Only what pynetdicom does not say is
kept here: the codes by name, the Error Comment of a response, and which failures are worth
sending again.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pynetdicom.status import code_to_status

SUCCESS = 0x0000
SOP_CLASS_NOT_SUPPORTED = 0x0122
NOT_AUTHORIZED = 0x0124
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700  # seed: disk space
OUT_OF_RESOURCES_DIRECTORY = 0xA701  # seed: directory error
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
COERCION_OF_DATA_ELEMENTS = 0xB000  # C-STORE warning, PS3.4 B.2.3
DATABASE_ERROR = 0xC001  # seed conformance statement


def response(status: int, comment: str = "") -> Dataset:
    """A handler's status data set: pynetdicom's code_to_status, plus an Error Comment (which
    pynetdicom's does not set) made fit for LO: 64 characters, no backslash."""
    ds = code_to_status(status)
    if comment:
        ds.ErrorComment = comment.replace("\\", "/")[:64]
    return ds


def is_transient_store_failure(status: int) -> bool:
    """Failures worth retrying later: the peer is short of resources or busy, not refusing the data.
    Kept here: a retry policy of this gateway's, which pynetdicom's categories do not express (to
    it A7xx, A9xx and Cxxx are all just Failure)."""
    return 0xA700 <= status <= 0xA7FF or status in (PROCESSING_FAILURE, 0xA701, 0xA702)
