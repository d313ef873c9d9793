"""What the appliance accepts on the wire: storage SOP classes and transfer syntaxes.

Storage SOP classes (PS3.4 Annex B, listed in PS3.6 Annex A): every SOP Class of pydicom's UID
dictionary whose name says Storage, retired ones included (ultrasound machines in service still
propose Ultrasound Image Storage (Retired) 1.2.840.10008.5.1.4.1.1.6 and its multi-frame sibling
1.2.840.10008.5.1.4.1.1.3), plus the ones pynetdicom knows and pydicom does not yet, plus private
classes from the config ([storage] extra_sop_classes). Not storage although named so: Storage
Commitment and the Media Storage Directory. Left out: the non-patient objects (hanging protocols,
colour palettes, implant templates, defined procedure protocols, inventories), which carry no
study or series that the buffer could index; their contexts are rejected at negotiation rather
than their objects refused after transfer.
"""

from __future__ import annotations

from pydicom._uid_dict import UID_dictionary
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom.presentation import AllStoragePresentationContexts

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)

# Accepted as SCP, in order of preference (the acceptor picks the first the requestor also offers).
ACCEPTED_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]

_NOT_STORAGE = frozenset({
    "1.2.840.10008.1.20.1",  # Storage Commitment Push Model
    "1.2.840.10008.1.20.2",  # Storage Commitment Pull Model (Retired)
    "1.2.840.10008.1.3.10",  # Media Storage Directory Storage (the DICOMDIR, never sent by C-STORE)
})
# PS3.4 Annex GG/X/..., non-patient objects: no Study/Series Instance UID to index them by.
NON_PATIENT_STORAGE = frozenset({
    "1.2.840.10008.5.1.4.38.1",  # Hanging Protocol Storage
    "1.2.840.10008.5.1.4.39.1",  # Color Palette Storage
    "1.2.840.10008.5.1.4.43.1",  # Generic Implant Template Storage
    "1.2.840.10008.5.1.4.44.1",  # Implant Assembly Template Storage
    "1.2.840.10008.5.1.4.45.1",  # Implant Template Group Storage
    "1.2.840.10008.5.1.4.1.1.200.1",  # CT Defined Procedure Protocol Storage
    "1.2.840.10008.5.1.4.1.1.200.3",  # Protocol Approval Storage
    "1.2.840.10008.5.1.4.1.1.200.7",  # XA Defined Procedure Protocol Storage
    "1.2.840.10008.5.1.4.1.1.201.1",  # Inventory Storage
})


def _standard_storage() -> frozenset[str]:
    named = {uid for uid, (name, kind, *_rest) in UID_dictionary.items()
             if kind == "SOP Class" and "Storage" in name}
    known = {str(cx.abstract_syntax) for cx in AllStoragePresentationContexts}
    return frozenset((named | known) - _NOT_STORAGE - NON_PATIENT_STORAGE)


# Every standard storage SOP class, retired ones included (see the module's docstring).
STORAGE_SOP_CLASSES = _standard_storage()


def storage_sop_classes(extra: list[str] | tuple[str, ...] = ()) -> frozenset[str]:
    """The storage SOP classes accepted as SCP: the standard ones and `extra` (the config's
    private ones, [storage] extra_sop_classes)."""
    return STORAGE_SOP_CLASSES | frozenset(extra)

VERIFICATION = "1.2.840.10008.1.1"
STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_PUSH_INSTANCE = "1.2.840.10008.1.20.1.1"
