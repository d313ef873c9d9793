"""The storage fast path's hand-written DIMSE command codec, checked against pydicom and pynetdicom.

parse() is fed command sets exactly as pynetdicom puts them on the wire, and response() is read
back with pydicom, so neither side is checked only against itself.
"""

from __future__ import annotations

import struct
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import CTImageStorage
from pynetdicom.dimse_messages import C_ECHO_RQ, C_FIND_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_STORE

from gateway.dicom.net import dimse_command
from gateway.dicom.net.dimse_command import CommandError

VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
ODD_UID = "1.2.826.0.1.3680043.2.1125.123456"  # 33 characters: padded with NUL on the wire


def _wire(message, primitive) -> bytes:
    """The command set as pynetdicom sends it: the PDV body of its one command fragment."""
    message.primitive_to_message(primitive)
    (pdata,) = [p for p in message.encode_msg(1, 0)
                if p.presentation_data_value_list[0][1][0] & 0x01]  # command fragments only
    (context_id, pdv), = pdata.presentation_data_value_list
    assert context_id == 1 and pdv[0] == 0x03  # one fragment, command, last
    return pdv[1:]


def _store_rq(message_id: int = 7, sop_uid: str = ODD_UID, **extra) -> bytes:
    p = C_STORE()
    p.MessageID = message_id
    p.AffectedSOPClassUID = CTImageStorage
    p.AffectedSOPInstanceUID = sop_uid
    p.Priority = 0
    for k, v in extra.items():
        setattr(p, k, v)
    p.DataSet = BytesIO(b"\x08\x00\x16\x00")
    return _wire(C_STORE_RQ(), p)


def _echo_rq(message_id: int = 3) -> bytes:
    p = C_ECHO()
    p.MessageID = message_id
    p.AffectedSOPClassUID = VERIFICATION
    return _wire(C_ECHO_RQ(), p)


def _implicit(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)
    return fp.getvalue()


def _decode(encoded: bytes) -> Dataset:
    return read_dataset(BytesIO(encoded), is_implicit_VR=True, is_little_endian=True)


def _elements(encoded: bytes) -> list[tuple[int, int, bytes]]:
    """(group, element, value) of each element, walked by hand."""
    out, pos = [], 0
    while pos < len(encoded):
        group, element, length = struct.unpack_from("<HHI", encoded, pos)
        out.append((group, element, encoded[pos + 8:pos + 8 + length]))
        pos += 8 + length
    assert pos == len(encoded), "an element runs past the end"
    return out


# -- parse -------------------------------------------------------------------------------------

def test_parse_c_store_rq_from_pynetdicom():
    raw = _store_rq(message_id=0xBEEF)
    assert ODD_UID.encode() + b"\x00" in raw  # the case below is really exercised
    cmd = dimse_command.parse(raw)
    assert cmd.command_field == dimse_command.C_STORE_RQ
    assert cmd.message_id == 0xBEEF
    assert cmd.has_data_set
    assert cmd.affected_sop_class == CTImageStorage
    # The NUL that pads the odd-length UID on the wire is not part of the UID.
    assert cmd.affected_sop_instance == ODD_UID


def test_parse_c_store_rq_ignores_fields_it_does_not_act_on():
    # A C-STORE from a C-MOVE carries Move Originator AE Title (AE, space padded) and Message ID.
    plain = dimse_command.parse(_store_rq())
    moved = dimse_command.parse(_store_rq(MoveOriginatorApplicationEntityTitle="MOVESCU",
                                          MoveOriginatorMessageID=99))
    assert moved == plain


def test_parse_c_echo_rq_from_pynetdicom():
    cmd = dimse_command.parse(_echo_rq(message_id=65535))
    assert cmd.command_field == dimse_command.C_ECHO_RQ
    assert cmd.message_id == 65535
    assert not cmd.has_data_set
    assert cmd.affected_sop_class == VERIFICATION
    assert cmd.affected_sop_instance == ""


def test_parse_other_requests_reports_their_command_field():
    # The association refuses these with 0x0211; it needs their field and message ID to answer.
    p = C_FIND()
    p.MessageID = 12
    p.AffectedSOPClassUID = STUDY_ROOT_FIND
    p.Priority = 0
    p.Identifier = BytesIO(b"")
    msg = C_FIND_RQ()
    msg.primitive_to_message(p)
    cmd = dimse_command.parse(_implicit(msg.command_set))
    assert (cmd.command_field, cmd.message_id, cmd.has_data_set) == (0x0020, 12, True)


def test_parse_accepts_a_space_padded_uid():
    ds = Dataset()
    ds.CommandField = 0x0001
    ds.MessageID = 1
    ds.CommandDataSetType = 0x0001
    ds.AffectedSOPClassUID = CTImageStorage
    ds.AffectedSOPInstanceUID = "1.2.3"
    encoded = _implicit(ds)
    # Rewrite the NUL pad pydicom wrote into the space some senders use.
    spaced = encoded.replace(b"1.2.3\x00", b"1.2.3 ")
    assert spaced != encoded
    assert dimse_command.parse(spaced).affected_sop_instance == "1.2.3"


def test_parse_accepts_memoryview_and_bytearray():
    raw = _store_rq()
    assert dimse_command.parse(memoryview(raw)) == dimse_command.parse(bytearray(raw)) == dimse_command.parse(raw)


# -- malformed command sets ------------------------------------------------------------------

def _minimal(**fields) -> Dataset:
    ds = Dataset()
    ds.CommandField = 0x0030
    ds.MessageID = 1
    ds.CommandDataSetType = 0x0101
    for k, v in fields.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    return ds


def test_minimal_command_set_parses():
    # The malformed cases below are this one with one defect: it must itself be fine.
    assert dimse_command.parse(_implicit(_minimal())).command_field == 0x0030


@pytest.mark.parametrize("tail", [b"\x00", b"\x00\x00\x00", b"\x00\x00\x00\x09\x02\x00\x00"],
                         ids=["1-byte", "3-byte", "7-byte"])
def test_truncated_element_header_is_an_error(tail):
    with pytest.raises(CommandError, match="element header"):
        dimse_command.parse(_implicit(_minimal()) + tail)


def test_element_running_past_the_end_is_an_error():
    good = _implicit(_minimal())
    # (0000,1000) announcing 100 bytes, 10 present.
    bad = good + struct.pack("<HHI", 0x0000, 0x1000, 100) + b"1.2.3.4.5\x00"
    with pytest.raises(CommandError, match="past the end"):
        dimse_command.parse(bad)
    # The last byte missing is enough.
    with pytest.raises(CommandError, match="past the end"):
        dimse_command.parse(good[:-1])


def test_element_outside_group_0000_is_an_error():
    bad = _implicit(_minimal()) + struct.pack("<HHI", 0x0008, 0x0016, 6) + b"1.2.3\x00"
    with pytest.raises(CommandError, match="outside group 0000"):
        dimse_command.parse(bad)


@pytest.mark.parametrize("missing", ["CommandField", "MessageID", "CommandDataSetType"])
def test_missing_required_field_is_an_error(missing):
    with pytest.raises(CommandError, match="missing"):
        dimse_command.parse(_implicit(_minimal(**{missing: None})))


def test_command_field_of_the_wrong_length_is_an_error():
    # UL-sized Command Field: four bytes where US takes two.
    bad = struct.pack("<HHIHH", 0x0000, 0x0100, 4, 0x0001, 0) + _implicit(_minimal(CommandField=None))
    with pytest.raises(CommandError, match="Command Field"):
        dimse_command.parse(bad)


def test_empty_command_set_is_an_error():
    with pytest.raises(CommandError):
        dimse_command.parse(b"")


def test_command_error_is_a_value_error():
    # Callers that catch ValueError around parsing keep working.
    assert issubclass(CommandError, ValueError)


# -- response --------------------------------------------------------------------------------

def _check_encoding(encoded: bytes) -> Dataset:
    """Group 0000 only, every value of even length, ascending tags, a correct group length."""
    elements = _elements(encoded)
    assert all(group == 0x0000 for group, _, _ in elements)
    assert all(len(value) % 2 == 0 for _, _, value in elements)
    tags = [element for _, element, _ in elements]
    assert tags == sorted(tags) and len(set(tags)) == len(tags)
    assert tags[0] == 0x0000
    assert struct.unpack("<I", elements[0][2])[0] == len(encoded) - 12
    ds = _decode(encoded)
    assert ds.CommandGroupLength == len(encoded) - 12
    return ds


def test_c_store_response_reads_back_with_pydicom():
    request = dimse_command.parse(_store_rq(message_id=4242))
    ds = _check_encoding(dimse_command.response(request, 0x0000))
    assert ds.CommandField == 0x8001
    assert ds.MessageIDBeingRespondedTo == 4242
    assert ds.CommandDataSetType == 0x0101
    assert ds.Status == 0x0000
    assert ds.AffectedSOPClassUID == CTImageStorage
    assert ds.AffectedSOPInstanceUID == ODD_UID
    assert "ErrorComment" not in ds
    assert "MessageID" not in ds  # a response names the request's ID only as "responded to"


def test_odd_length_uid_is_nul_padded_in_the_response():
    request = dimse_command.parse(_store_rq())
    values = {element: value for _, element, value in _elements(dimse_command.response(request, 0))}
    assert values[0x1000] == ODD_UID.encode() + b"\x00"


def test_c_echo_response_reads_back_with_pydicom():
    request = dimse_command.parse(_echo_rq(message_id=9))
    ds = _check_encoding(dimse_command.response(request, 0x0000))
    assert ds.CommandField == 0x8030
    assert ds.MessageIDBeingRespondedTo == 9
    assert ds.CommandDataSetType == 0x0101
    assert ds.Status == 0
    assert ds.AffectedSOPClassUID == VERIFICATION
    assert "AffectedSOPInstanceUID" not in ds  # the echo request had none


def test_response_decodes_as_a_pynetdicom_message():
    # What a pynetdicom SCU does with it: the message class is chosen by Command Field.
    from pynetdicom.dimse_messages import C_STORE_RSP

    request = dimse_command.parse(_store_rq(message_id=5))
    msg = C_STORE_RSP()
    msg.command_set = _decode(dimse_command.response(request, 0xA700, "buffer full"))
    rsp = msg.message_to_primitive()
    assert rsp.MessageIDBeingRespondedTo == 5
    assert rsp.Status == 0xA700
    assert rsp.AffectedSOPInstanceUID == ODD_UID


@pytest.mark.parametrize("comment, expected", [
    ("abc", "abc"),  # odd: space padded on the wire, stripped by the reader
    ("disk full", "disk full"),
    ("C:\\path\\x", "C:/path/x"),  # backslash is the LO value separator
    ("x" * 70, "x" * 64),
    ("\\" * 65, "/" * 64),
])
def test_error_comment_is_a_valid_lo(comment, expected):
    request = dimse_command.parse(_store_rq())
    encoded = dimse_command.response(request, 0xC000, comment)
    ds = _check_encoding(encoded)
    assert ds.Status == 0xC000
    assert ds.ErrorComment == expected
    raw = {element: value for _, element, value in _elements(encoded)}[0x0902]
    assert len(raw) <= 64 and b"\\" not in raw
    assert raw.rstrip(b" ").decode() == expected


def test_unanswered_operation_echoes_its_command_field():
    # 0x0211 goes back on a refused C-FIND: the response must be a C-FIND-RSP to the same ID.
    ds = _minimal(CommandField=0x0020, MessageID=77, CommandDataSetType=0x0001)
    ds.AffectedSOPClassUID = STUDY_ROOT_FIND
    request = dimse_command.parse(_implicit(ds))
    rsp = _check_encoding(dimse_command.response(request, 0x0211, "operation not supported here"))
    assert (rsp.CommandField, rsp.MessageIDBeingRespondedTo, rsp.Status) == (0x8020, 77, 0x0211)
    assert rsp.CommandDataSetType == 0x0101
    assert rsp.ErrorComment == "operation not supported here"
