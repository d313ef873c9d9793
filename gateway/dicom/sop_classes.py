"""What the appliance accepts on the wire: storage SOP classes and transfer syntaxes."""

from __future__ import annotations

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

# Every storage SOP class pynetdicom knows (170 as of 3.0: all of PS3.4 Annex B's table).
STORAGE_SOP_CLASSES = frozenset(str(cx.abstract_syntax) for cx in AllStoragePresentationContexts)

VERIFICATION = "1.2.840.10008.1.1"
STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_PUSH_INSTANCE = "1.2.840.10008.1.20.1.1"
