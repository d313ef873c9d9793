"""A strict reading of an A-ASSOCIATE-RQ PDU (PS3.8 9.3.2), before anyone else decodes it.

Why not pynetdicom's decoder alone: it trusts item lengths, accepts even and zero presentation
context IDs, a context without a transfer syntax and sub-items longer than their item, and its
acceptor thread then dies on what it decoded, leaving the peer without an answer until the
handshake timer closes the socket. Every request is checked here first, on both receive paths;
only a request that holds together to its last byte is negotiated (fast path) or handed to
pynetdicom. A malformed one is answered at once by the acceptor: A-ABORT (PS3.8 9.2, AA-1 in
state Sta2), or A-ASSOCIATE-RJ where PS3.8 9.3.4 names a reason (protocol version, application
context name).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from gateway.identity import APPLICATION_CONTEXT_NAME, normalise_ae

_ITEM = struct.Struct(">BxH")
_U16 = struct.Struct(">H")

# Fixed part of the A-ASSOCIATE-RQ body: protocol version, reserved, called AE, calling AE, reserved.
_FIXED = 2 + 2 + 16 + 16 + 32

# A-ASSOCIATE-RJ (result, source, reason) for the cases PS3.8 9.3.4 names.
REJECT_PROTOCOL_VERSION = (0x01, 0x02, 0x02)  # rejected-permanent, ACSE, protocol version not supported
REJECT_APPLICATION_CONTEXT = (0x01, 0x01, 0x02)  # rejected-permanent, service-user, app context not supported

_UID_MAX = 64


class MalformedRequest(ValueError):
    """The request does not follow PS3.8 9.3.2: answered with an A-ABORT."""


@dataclass
class Request:
    """What the acceptor decides on. Titles: `*_raw` as the 16 bytes received, the others
    normalised (PS3.8 9.3.2 and common practice: up to the first NUL, spaces stripped)."""

    called_raw: bytes
    calling_raw: bytes
    called: str
    calling: str
    # context ID -> (abstract syntax, transfer syntaxes)
    contexts: dict[int, tuple[str, list[str]]] = field(default_factory=dict)
    reject: tuple[int, int, int] | None = None  # a PS3.8 9.3.4 reason found while reading


def _items(body: bytes | memoryview, where: str):
    """(type, value) of the items of `body`; every length must fit exactly."""
    pos, end = 0, len(body)
    while pos < end:
        if end - pos < _ITEM.size:
            raise MalformedRequest(f"{where}: {end - pos} stray bytes after the last item")
        item_type, length = _ITEM.unpack_from(body, pos)
        pos += _ITEM.size
        if length > end - pos:
            raise MalformedRequest(f"{where}: item 0x{item_type:02X} claims {length} bytes, "
                                   f"{end - pos} left")
        yield item_type, body[pos:pos + length]
        pos += length


def _uid(value, what: str) -> str:
    raw = bytes(value)
    # UIDs are NUL-padded to even length (PS3.8 9.3.2.2); some senders pad with a space.
    text = raw.rstrip(b"\x00 ")
    if not text or len(text) > _UID_MAX:
        raise MalformedRequest(f"{what} of {len(raw)} bytes")
    if not all(0x30 <= b <= 0x39 or b == 0x2E for b in text):
        raise MalformedRequest(f"{what} {ascii(raw.decode('latin-1'))} is not a UID")
    return text.decode("ascii")


def _presentation_context(value) -> tuple[int, str, list[str]]:
    if len(value) < 4:
        raise MalformedRequest(f"presentation context item of {len(value)} bytes")
    context_id = value[0]
    if context_id == 0 or context_id % 2 == 0:
        # PS3.8 9.3.2.2: an odd integer between 1 and 255.
        raise MalformedRequest(f"presentation context ID {context_id} is not odd")
    abstract = None
    syntaxes: list[str] = []
    for sub_type, sub in _items(value[4:], f"presentation context {context_id}"):
        if sub_type == 0x30:
            if abstract is not None or syntaxes:
                raise MalformedRequest(f"presentation context {context_id}: abstract syntax not first or twice")
            abstract = _uid(sub, f"presentation context {context_id}: abstract syntax")
        elif sub_type == 0x40:
            if abstract is None:
                raise MalformedRequest(f"presentation context {context_id}: transfer syntax before abstract syntax")
            syntaxes.append(_uid(sub, f"presentation context {context_id}: transfer syntax"))
        else:
            raise MalformedRequest(f"presentation context {context_id}: sub-item type 0x{sub_type:02X}")
    if abstract is None:
        raise MalformedRequest(f"presentation context {context_id} has no abstract syntax")
    if not syntaxes:
        raise MalformedRequest(f"presentation context {context_id} has no transfer syntax")
    return context_id, abstract, syntaxes


def _length_prefixed(value, pos: int, what: str) -> int:
    """Position after a 2-byte length and its field starting at `pos`."""
    if pos + 2 > len(value):
        raise MalformedRequest(f"{what}: length field missing")
    (n,) = _U16.unpack_from(value, pos)
    if pos + 2 + n > len(value):
        raise MalformedRequest(f"{what}: field of {n} bytes runs past its item")
    return pos + 2 + n


def _user_information(value) -> None:
    """Sub-items of PS3.7 D.3.3 and PS3.8 9.3.2.3, each checked to fit its declared length."""
    for sub_type, sub in _items(value, "user information"):
        n = len(sub)
        if sub_type in (0x51, 0x53):  # maximum length; asynchronous operations window
            if n != 4:
                raise MalformedRequest(f"user information sub-item 0x{sub_type:02X} of {n} bytes (needs 4)")
        elif sub_type == 0x52:  # implementation class UID
            if not 1 <= n <= _UID_MAX:
                raise MalformedRequest(f"implementation class UID of {n} bytes")
        elif sub_type == 0x55:  # implementation version name
            if not 1 <= n <= 16:
                raise MalformedRequest(f"implementation version name of {n} bytes")
        elif sub_type == 0x54:  # SCP/SCU role selection
            end = _length_prefixed(sub, 0, "role selection")
            if end == 2 or end + 2 != n:
                raise MalformedRequest("role selection sub-item does not add up")
            _uid(sub[2:end], "role selection SOP class")
        elif sub_type == 0x56:  # SOP class extended negotiation
            end = _length_prefixed(sub, 0, "SOP class extended negotiation")
            if end == 2:
                raise MalformedRequest("SOP class extended negotiation without a SOP class UID")
            _uid(sub[2:end], "extended negotiation SOP class")
        elif sub_type == 0x57:  # SOP class common extended negotiation
            end = _length_prefixed(sub, 0, "common extended negotiation")
            if end == 2:
                raise MalformedRequest("common extended negotiation without a SOP class UID")
            _uid(sub[2:end], "common extended negotiation SOP class")
            end = _length_prefixed(sub, end, "common extended negotiation service class")
            related_end = _length_prefixed(sub, end, "common extended negotiation related classes")
            if related_end != n:
                raise MalformedRequest("common extended negotiation does not add up")
            pos = end + 2
            while pos < related_end:
                pos = _length_prefixed(sub[:related_end], pos, "related general SOP class")
        elif sub_type == 0x58:  # user identity (RQ)
            if n < 4 or sub[0] not in (1, 2, 3, 4, 5):
                raise MalformedRequest("user identity sub-item: bad type or too short")
            end = _length_prefixed(sub, 2, "user identity primary field")
            if end == 4:
                raise MalformedRequest("user identity without a primary field")
            end = _length_prefixed(sub, end, "user identity secondary field")
            if end != n:
                raise MalformedRequest("user identity sub-item does not add up")
        else:
            # Neither this code nor pynetdicom can interpret it; pynetdicom's decoder would fail.
            raise MalformedRequest(f"user information sub-item type 0x{sub_type:02X}")


def parse(pdu: bytes | memoryview) -> Request:
    """Check and read a whole A-ASSOCIATE-RQ PDU (header included). Raises MalformedRequest."""
    buf = memoryview(pdu)
    if len(buf) < 6 or buf[0] != 0x01:
        raise MalformedRequest("not an A-ASSOCIATE-RQ")
    (length,) = struct.unpack_from(">I", buf, 2)
    if length != len(buf) - 6:
        raise MalformedRequest("PDU length does not match")
    body = buf[6:]
    if len(body) < _FIXED:
        raise MalformedRequest(f"A-ASSOCIATE-RQ of {len(body)} bytes, shorter than its fixed fields")
    called_raw, calling_raw = bytes(body[4:20]), bytes(body[20:36])
    request = Request(called_raw, calling_raw, normalise_ae(called_raw), normalise_ae(calling_raw))
    (version,) = _U16.unpack_from(body, 0)
    app_context = None
    user_info = False
    for item_type, value in _items(body[_FIXED:], "A-ASSOCIATE-RQ"):
        if item_type == 0x10:
            if app_context is not None:
                raise MalformedRequest("two application context items")
            app_context = _uid(value, "application context name")
        elif item_type == 0x20:
            context_id, abstract, syntaxes = _presentation_context(value)
            if context_id in request.contexts:
                raise MalformedRequest(f"presentation context ID {context_id} proposed twice")
            request.contexts[context_id] = (abstract, syntaxes)
        elif item_type == 0x50:
            if user_info:
                raise MalformedRequest("two user information items")
            user_info = True
            _user_information(value)
        else:
            raise MalformedRequest(f"item type 0x{item_type:02X} in an A-ASSOCIATE-RQ")
    if app_context is None:
        raise MalformedRequest("no application context item")
    if not request.contexts:
        raise MalformedRequest("no presentation context item")
    if not version & 0x0001:
        request.reject = REJECT_PROTOCOL_VERSION
    elif app_context != APPLICATION_CONTEXT_NAME:
        request.reject = REJECT_APPLICATION_CONTEXT
    return request
