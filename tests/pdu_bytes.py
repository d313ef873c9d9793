"""Upper-layer PDUs built byte by byte (PS3.8 9.3), for requests a DICOM library refuses to
encode: NUL-padded AE titles, even context IDs, item lengths that lie."""

from __future__ import annotations

import struct

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.9.3811.1"


def pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BxI", pdu_type, len(body)) + body


def item(item_type: int, value: bytes, length: int | None = None) -> bytes:
    """An item or sub-item; `length` overrides the true length (a lying length field)."""
    return struct.pack(">BxH", item_type, len(value) if length is None else length) + value


def uid_bytes(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\x00" * (len(raw) % 2)


def title(text: str | bytes, pad: bytes = b" ") -> bytes:
    raw = text.encode("ascii") if isinstance(text, str) else text
    return (raw + pad * 16)[:16]


def presentation_context(context_id: int, abstract: str | None, syntaxes: list[str]) -> bytes:
    subs = b""
    if abstract is not None:
        subs += item(0x30, uid_bytes(abstract))
    for ts in syntaxes:
        subs += item(0x40, uid_bytes(ts))
    return item(0x20, bytes((context_id, 0, 0, 0)) + subs)


def user_information(max_pdu: int = 16384, extra: bytes = b"") -> bytes:
    subs = item(0x51, struct.pack(">I", max_pdu)) + item(0x52, uid_bytes(IMPLEMENTATION_CLASS_UID)) + extra
    return item(0x50, subs)


def user_identity(primary: bytes, secondary: bytes = b"", kind: int = 2, primary_length: int | None = None) -> bytes:
    """User identity sub-item (PS3.7 D.3.3.7.1); `primary_length` may lie."""
    n = len(primary) if primary_length is None else primary_length
    return item(0x58, bytes((kind, 0)) + struct.pack(">H", n) + primary + struct.pack(">H", len(secondary))
                + secondary)


def associate_rq(called: bytes, calling: bytes, items: bytes, version: int = 1) -> bytes:
    """A-ASSOCIATE-RQ with the given 16-byte titles and variable items (already encoded)."""
    body = struct.pack(">HH", version, 0) + called + calling + b"\x00" * 32 + items
    return pdu(0x01, body)


def standard_items(contexts: list[tuple[int, str, list[str]]], max_pdu: int = 16384) -> bytes:
    return (item(0x10, APPLICATION_CONTEXT.encode("ascii"))
            + b"".join(presentation_context(*cx) for cx in contexts) + user_information(max_pdu))
