"""DIMSE command sets of the storage paths, read and written by hand (PS3.7 E.1, 9.3.1).

A command set is group 0000 in Implicit VR Little Endian: tag, 4-byte length, value. pydicom
decodes one into a Dataset and pynetdicom wraps it in message classes; for the messages a
storage association carries (C-STORE-RQ/RSP, C-ECHO-RQ/RSP) that costs more CPU per object than
parsing the object's header, for a handful of fixed fields. Anything this module does not understand is
reported, never guessed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

C_STORE_RQ = 0x0001
C_ECHO_RQ = 0x0030
NO_DATA_SET = 0x0101

_ELEMENT = struct.Struct("<HHI")
_US = struct.Struct("<H")

# Group 0000 tags (element numbers).
_AFFECTED_SOP_CLASS = 0x0002
_COMMAND_FIELD = 0x0100
_MESSAGE_ID = 0x0110
_MESSAGE_ID_RESPONDED_TO = 0x0120
_DATA_SET_TYPE = 0x0800
_STATUS = 0x0900
_ERROR_COMMENT = 0x0902
_AFFECTED_SOP_INSTANCE = 0x1000
_PRIORITY = 0x0700
_MOVE_ORIGINATOR_AE = 0x1030
_MOVE_ORIGINATOR_ID = 0x1031


class CommandError(ValueError):
    """The command set cannot be parsed."""


@dataclass(frozen=True)
class Command:
    command_field: int
    message_id: int
    has_data_set: bool
    affected_sop_class: str
    affected_sop_instance: str
    status: int | None = None  # responses only
    error_comment: str = ""
    message_id_responded_to: int | None = None


def _uid(value: bytes) -> str:
    # UIs are padded to even length with NUL; some senders pad with a space.
    return value.rstrip(b"\x00 ").decode("ascii", "replace")


def parse(encoded: bytes | bytearray | memoryview) -> Command:
    """The fields of a request command set that the storage path acts on."""
    buf = memoryview(encoded)
    fields: dict[int, bytes] = {}
    pos, end = 0, len(buf)
    while pos < end:
        if end - pos < 8:
            raise CommandError(f"command set ends inside an element header at byte {pos}")
        group, element, length = _ELEMENT.unpack_from(buf, pos)
        pos += 8
        if group != 0x0000:
            raise CommandError(f"element ({group:04X},{element:04X}) outside group 0000 in a command set")
        if length > end - pos:
            raise CommandError(f"element (0000,{element:04X}) runs past the end of the command set")
        fields[element] = bytes(buf[pos:pos + length])
        pos += length

    def us(element: int, name: str) -> int:
        value = fields.get(element)
        if value is None or len(value) != 2:
            raise CommandError(f"{name} (0000,{element:04X}) missing or not 2 bytes")
        return _US.unpack(value)[0]

    command_field = us(_COMMAND_FIELD, "Command Field")
    is_response = bool(command_field & 0x8000)
    return Command(
        command_field=command_field,
        message_id=0 if is_response else us(_MESSAGE_ID, "Message ID"),
        has_data_set=us(_DATA_SET_TYPE, "Command Data Set Type") != NO_DATA_SET,
        affected_sop_class=_uid(fields.get(_AFFECTED_SOP_CLASS, b"")),
        affected_sop_instance=_uid(fields.get(_AFFECTED_SOP_INSTANCE, b"")),
        status=us(_STATUS, "Status") if is_response else None,
        error_comment=fields.get(_ERROR_COMMENT, b"").decode("ascii", "replace").strip(" \x00"),
        message_id_responded_to=us(_MESSAGE_ID_RESPONDED_TO, "Message ID Being Responded To") if is_response else None,
    )


def _element(element: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00"  # UI padding; LO values are padded with a space by the caller
    return _ELEMENT.pack(0x0000, element, len(value)) + value


def _command_set(body: bytes) -> bytes:
    """Group 0000 with its Command Group Length in front."""
    return _ELEMENT.pack(0x0000, 0x0000, 4) + struct.pack("<I", len(body)) + body


def store_request(message_id: int, sop_class: str, sop_instance: str, priority: int = 0x0000,
                  originator: tuple[str, int] | None = None) -> bytes:
    """A C-STORE-RQ command set announcing a data set (PS3.7 9.3.1.1). `originator`: (Move
    Originator AE Title, Move Originator Message ID) of a C-MOVE sub-operation (PS3.7 9.3.1.1,
    (0000,1030) and (0000,1031)), None otherwise."""
    body = (
        _element(_AFFECTED_SOP_CLASS, sop_class.encode("ascii"))
        + _element(_COMMAND_FIELD, _US.pack(C_STORE_RQ))
        + _element(_MESSAGE_ID, _US.pack(message_id))
        + _element(_PRIORITY, _US.pack(priority))
        + _element(_DATA_SET_TYPE, _US.pack(0x0001))
        + _element(_AFFECTED_SOP_INSTANCE, sop_instance.encode("ascii"))
    )
    if originator is not None:
        # AE: 16 characters at most, padded with a space to even length.
        title = originator[0].strip()[:16].encode("ascii", "replace")
        body += (_element(_MOVE_ORIGINATOR_AE, title + b" " * (len(title) % 2))
                 + _element(_MOVE_ORIGINATOR_ID, _US.pack(originator[1])))
    return _command_set(body)


def response(request: Command, status: int, error_comment: str = "") -> bytes:
    """The response command set to `request` (no data set), elements in ascending tag order."""
    body = b""
    if request.affected_sop_class:
        body += _element(_AFFECTED_SOP_CLASS, request.affected_sop_class.encode("ascii", "replace"))
    body += _element(_COMMAND_FIELD, _US.pack(request.command_field | 0x8000))
    body += _element(_MESSAGE_ID_RESPONDED_TO, _US.pack(request.message_id))
    body += _element(_DATA_SET_TYPE, _US.pack(NO_DATA_SET))
    body += _element(_STATUS, _US.pack(status))
    if error_comment:
        # LO: 64 characters at most, no backslash, padded with a space to even length.
        text = error_comment.replace("\\", "/")[:64].encode("ascii", "replace")
        body += _element(_ERROR_COMMENT, text + b" " * (len(text) % 2))
    if request.affected_sop_instance:
        body += _element(_AFFECTED_SOP_INSTANCE, request.affected_sop_instance.encode("ascii", "replace"))
    return _command_set(body)
