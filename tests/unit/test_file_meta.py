"""Bytes the storage fast path writes by hand: the Part-10 header of a received object, and the
P-DATA PDUs that carry a response command to a peer with a small maximum PDU length."""

from __future__ import annotations

import struct
from io import BytesIO

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.pdu import P_DATA_TF

from gateway.dicom.net import dimse_command, pdu_socket
from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from gateway.part10 import file_meta

ODD_UID = "1.2.826.0.1.3680043.2.1125.123456"  # 33 characters
EVEN_UID = "1.2.826.0.1.3680043.2.1125.12345"  # 32 characters
assert len(ODD_UID) % 2 and not len(EVEN_UID) % 2


def _data_set(sop_uid: str, implicit: bool) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = "Test^Patient"
    ds.PatientID = "PID-1"
    ds.Modality = "CT"
    ds.Rows = 2
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def _meta_elements(blob: bytes) -> tuple[int, list[tuple[int, bytes, bytes]], int]:
    """Group length value, (element, VR, value) of the rest of group 0002, and where it ends;
    walked by hand in Explicit VR Little Endian."""
    assert blob[:128] == b"\x00" * 128 and blob[128:132] == b"DICM"
    group, element, vr, length = struct.unpack_from("<HH2sH", blob, 132)
    assert (group, element, vr, length) == (0x0002, 0x0000, b"UL", 4)
    group_length = struct.unpack_from("<I", blob, 140)[0]
    pos, out = 144, []
    while pos < len(blob):
        group, element, vr = struct.unpack_from("<HH2s", blob, pos)
        if group != 0x0002:
            break
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            assert blob[pos + 6:pos + 8] == b"\x00\x00"
            length = struct.unpack_from("<I", blob, pos + 8)[0]
            header = 12
        else:
            length = struct.unpack_from("<H", blob, pos + 6)[0]
            header = 8
        out.append((element, vr, blob[pos + header:pos + header + length]))
        pos += header + length
    return group_length, out, pos


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_header_plus_data_set_reads_back_with_pydicom(ts):
    body = _data_set(ODD_UID, implicit=ts == ImplicitVRLittleEndian)
    blob = file_meta.encode(CTImageStorage, ODD_UID, ts, "MODALITY1")
    ds = pydicom.dcmread(BytesIO(blob + body))  # not forced: must be a valid Part-10 file
    m = ds.file_meta
    assert m.FileMetaInformationVersion == b"\x00\x01"
    assert m.MediaStorageSOPClassUID == CTImageStorage
    assert m.MediaStorageSOPInstanceUID == ODD_UID
    assert m.TransferSyntaxUID == ts
    assert m.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert m.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert m.SourceApplicationEntityTitle == "MODALITY1"
    assert m.FileMetaInformationGroupLength == len(blob) - 144
    # The data set behind it is read in the transfer syntax the header names.
    assert ds.SOPInstanceUID == ODD_UID and ds.PatientID == "PID-1" and ds.Rows == 2


@pytest.mark.parametrize("sop_uid", [ODD_UID, EVEN_UID])
@pytest.mark.parametrize("source_ae", ["", "MOD", "ST", "SIXTEEN_CHARS_AE"])
def test_group_length_and_even_values(sop_uid, source_ae):
    blob = file_meta.encode(CTImageStorage, sop_uid, ExplicitVRLittleEndian, source_ae)
    group_length, elements, end = _meta_elements(blob + _data_set(sop_uid, implicit=False))
    # The group length counts exactly the bytes of the rest of group 0002, and the data set
    # starts where it says.
    assert end == len(blob)
    assert group_length == end - 144
    assert all(len(value) % 2 == 0 for _, _, value in elements), elements
    tags = [element for element, _, _ in elements]
    assert tags == sorted(tags)
    assert tags[:5] == [0x0001, 0x0002, 0x0003, 0x0010, 0x0012]
    assert (0x0016 in tags) == bool(source_ae)


def test_odd_length_uids_are_nul_padded_and_ae_space_padded():
    blob = file_meta.encode(CTImageStorage, ODD_UID, "1.2.840.10008.1.2.4.50", "MOD")
    values = {element: (vr, value) for element, vr, value in _meta_elements(blob)[1]}
    assert values[0x0003] == (b"UI", ODD_UID.encode() + b"\x00")
    assert values[0x0010] == (b"UI", b"1.2.840.10008.1.2.4.50")  # 22: even, unpadded
    assert values[0x0002] == (b"UI", CTImageStorage.encode() + b"\x00")  # 25 characters
    assert values[0x0016] == (b"AE", b"MOD ")
    assert values[0x0013][0] == b"SH"


def test_source_ae_is_stripped():
    blob = file_meta.encode(CTImageStorage, EVEN_UID, ExplicitVRLittleEndian, "  MOD  ")
    values = {element: value for element, _, value in _meta_elements(blob)[1]}
    assert values[0x0016] == b"MOD "


def test_no_source_ae_means_no_element():
    blob = file_meta.encode(CTImageStorage, EVEN_UID, ExplicitVRLittleEndian)
    ds = pydicom.dcmread(BytesIO(blob + _data_set(EVEN_UID, implicit=False)))
    assert "SourceApplicationEntityTitle" not in ds.file_meta


def test_matches_pydicom_file_meta():
    # pydicom's writer, fed the same values, produces the same group (values and VRs).
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info

    ours = file_meta.encode(CTImageStorage, ODD_UID, ExplicitVRLittleEndian, "MOD")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = ODD_UID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    meta.SourceApplicationEntityTitle = "MOD"
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_file_meta_info(fp, meta, enforce_standard=True)
    assert ours[132:] == fp.getvalue()


# -- command_pdus ----------------------------------------------------------------------------

def _command() -> bytes:
    request = dimse_command.Command(dimse_command.C_STORE_RQ, 1, True, CTImageStorage, ODD_UID)
    return dimse_command.response(request, 0xC000, "cannot understand the data set")


def _split(stream: bytes) -> list[tuple[int, bytes]]:
    """(PDU type, body) of each PDU in a byte stream."""
    out, pos = [], 0
    while pos < len(stream):
        pdu_type, reserved, length = struct.unpack_from(">BBI", stream, pos)
        assert reserved == 0
        out.append((pdu_type, stream[pos + 6:pos + 6 + length]))
        pos += 6 + length
    assert pos == len(stream)
    return out


def _pdvs(body: bytes) -> list[tuple[int, int, bytes]]:
    """(context ID, control header, data) of each PDV in a P-DATA-TF body."""
    out, pos = [], 0
    while pos < len(body):
        item_length, context_id, control = struct.unpack_from(">IBB", body, pos)
        out.append((context_id, control, body[pos + 6:pos + 4 + item_length]))
        pos += 4 + item_length
    assert pos == len(body)
    return out


def test_unlimited_peer_gets_one_pdu():
    command = _command()
    stream = pdu_socket.command_pdus(5, command, 0)
    ((pdu_type, body),) = _split(stream)
    assert pdu_type == pdu_socket.P_DATA_TF
    assert _pdvs(body) == [(5, 0x03, command)]
    # pynetdicom reads it the same way.
    pdu = P_DATA_TF()
    pdu.decode(stream)
    assert pdu.presentation_data_value_items[0].presentation_data_value == b"\x03" + command


def test_large_peer_maximum_gets_one_pdu():
    command = _command()
    ((_, body),) = _split(pdu_socket.command_pdus(1, command, 16384))
    assert _pdvs(body) == [(1, 0x03, command)]


@pytest.mark.parametrize("peer_max", [16, 17, 64, 100])
def test_small_peer_maximum_splits_the_command(peer_max):
    command = _command()
    assert len(command) > peer_max  # several PDUs, or the loop below checks little
    pdus = _split(pdu_socket.command_pdus(3, command, peer_max))
    assert len(pdus) > 1
    pieces = []
    for i, (pdu_type, body) in enumerate(pdus):
        assert pdu_type == pdu_socket.P_DATA_TF
        assert len(body) <= peer_max  # the peer's maximum bounds the PDU's variable field
        ((context_id, control, data),) = _pdvs(body)
        assert context_id == 3
        assert data, "empty fragment"
        assert control == (0x03 if i == len(pdus) - 1 else 0x01)
        pieces.append(data)
    assert b"".join(pieces) == command


def test_command_filling_the_last_pdu_exactly_has_no_empty_tail():
    # 16 - 6 = 10 bytes of command per PDU; lengths that are multiples of 10 end exactly on a PDU.
    for command in (bytes(range(20)), bytes(range(10)), bytes(range(30))):
        pdus = _split(pdu_socket.command_pdus(1, command, 16))
        assert len(pdus) == len(command) // 10
        controls = [_pdvs(body)[0][1] for _, body in pdus]
        assert controls == [0x01] * (len(pdus) - 1) + [0x03]
        assert b"".join(_pdvs(body)[0][2] for _, body in pdus) == command
