"""The Part-10 preamble and File Meta Information a received data set is stored behind (PS3.10 7.1).

Written by hand because it is the same eight elements for every object on the receive path, and
pydicom's create_file_meta + write_file_meta_info cost more per object than the rest of the
header work put together. Source Application Entity Title records who sent the object, so a file
carries its own provenance even without the index.
"""

from __future__ import annotations

import struct

from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

_SHORT = struct.Struct("<HH2sH")  # tag, VR, 2-byte length
_LONG = struct.Struct("<HH2s2xI")  # tag, VR (OB), reserved, 4-byte length


def _short(element: int, vr: bytes, value: bytes, pad: bytes) -> bytes:
    if len(value) % 2:
        value += pad
    return _SHORT.pack(0x0002, element, vr, len(value)) + value


def encode(sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str = "") -> bytes:
    """128-byte preamble, "DICM", and group 0002 in Explicit VR Little Endian."""
    body = _LONG.pack(0x0002, 0x0001, b"OB", 2) + b"\x00\x01"
    body += _short(0x0002, b"UI", sop_class.encode("ascii", "replace"), b"\x00")
    body += _short(0x0003, b"UI", sop_instance.encode("ascii", "replace"), b"\x00")
    body += _short(0x0010, b"UI", transfer_syntax.encode("ascii"), b"\x00")
    body += _short(0x0012, b"UI", IMPLEMENTATION_CLASS_UID.encode("ascii"), b"\x00")
    body += _short(0x0013, b"SH", IMPLEMENTATION_VERSION_NAME.encode("ascii"), b" ")
    if source_ae:
        body += _short(0x0016, b"AE", source_ae.strip().encode("ascii", "replace")[:16], b" ")
    group_length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body))
    return b"\x00" * 128 + b"DICM" + group_length + body
