"""DIMSE status codes the appliance sends or acts on (PS3.7 Annex C, PS3.4 B.2.3)."""

from __future__ import annotations

from pydicom.dataset import Dataset

SUCCESS = 0x0000
SOP_CLASS_NOT_SUPPORTED = 0x0122
NOT_AUTHORIZED = 0x0124
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700  # seed: disk space
OUT_OF_RESOURCES_DIRECTORY = 0xA701  # seed: directory error
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
DATABASE_ERROR = 0xC001  # seed conformance statement


def response(status: int, comment: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = status
    if comment:
        # Error Comment is LO: 64 characters, no backslash.
        ds.ErrorComment = comment.replace("\\", "/")[:64]
    return ds


def is_success(status: int) -> bool:
    return status == SUCCESS


def is_warning(status: int) -> bool:
    return status in (0x0001, 0x0107, 0x0116) or 0xB000 <= status <= 0xBFFF


def is_transient_store_failure(status: int) -> bool:
    """Failures worth retrying later: the peer is short of resources or busy, not refusing the data."""
    return 0xA700 <= status <= 0xA7FF or status in (PROCESSING_FAILURE, 0xA701, 0xA702)
