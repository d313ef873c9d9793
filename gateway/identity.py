"""This implementation's identity on the wire (PS3.7 D.3.3.2): its own class UID and version name.

The UID is under the 2.25 root (PS3.5 B.2, a UUID as a decimal integer), fixed for this product.
Also the AE title rules every receive path shares (normalise_ae, escaped_ae, lenient_ae_validator).

A leaf (tests/unit/test_layers.py): it imports nothing of ours, so the Part-10 file meta writer
(gateway.part10) and the DICOM roles (gateway.dicom) both use it.
"""

IMPLEMENTATION_CLASS_UID = "2.25.211826508049113193358415653718601850479"
IMPLEMENTATION_VERSION_NAME = "EDGEGW_010"
# The DICOM application context (PS3.7 A.2.1), the same in every association.
APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"


def user_information(max_pdu: int) -> list:
    """The A-ASSOCIATE user information items this implementation always sends (PS3.7 D.3.3):
    the longest PDU it accepts, its class UID and version name."""
    from pynetdicom.pdu_primitives import (
        ImplementationClassUIDNotification,
        ImplementationVersionNameNotification,
        MaximumLengthNotification,
    )

    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = max_pdu
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    return [max_length, class_uid, version]


def normalise_ae(raw: bytes | str) -> str:
    """An AE title as received (PS3.8 9.3.2: 16 bytes, space-padded), read as DCMTK and Orthanc
    read it: up to the first NUL (some viewers pad with NULs), leading and trailing spaces
    dropped. The same rule on both receive paths and for titles a peer sends back to the SCU."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw).decode("latin-1")
    return raw.split("\x00", 1)[0].strip(" ")


def escaped_ae(raw: bytes | str) -> str:
    """A received AE title for a log line: quoted, NULs and control bytes made visible."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw).decode("latin-1")
    return ascii(raw)


def lenient_ae_validator(value) -> tuple[bool, str]:
    """pynetdicom's AE validator (_config.VALIDATORS["AE"]) for this service: a NUL-padded or
    otherwise odd title must reach AssociationPolicy, which rejects it with A-ASSOCIATE-RJ
    (PS3.8 9.3.4) or accepts it normalised, instead of failing pynetdicom's decoder (which
    dropped the connection without an answer). Titles this service sends are checked by the config."""
    if not isinstance(value, str):
        return False, "must be str"
    if len(value) > 16:
        return False, "must not exceed 16 characters"
    return True, ""
