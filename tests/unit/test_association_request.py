"""The strict A-ASSOCIATE-RQ check (PS3.8 9.3.2) and AE title normalisation, without a socket."""

from __future__ import annotations

import struct

import pdu_bytes
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import PresentationContext

from gateway.dicom.net.association_request import (
    REJECT_APPLICATION_CONTEXT,
    REJECT_PROTOCOL_VERSION,
    MalformedRequest,
    parse,
)
from gateway.identity import escaped_ae, normalise_ae

VERIFICATION = "1.2.840.10008.1.1"
CT = (CTImageStorage, [ExplicitVRLittleEndian])


def _rq(items: bytes, called=b"EDGE" + b" " * 12, calling=b"MOD" + b" " * 13, version=1) -> bytes:
    return pdu_bytes.associate_rq(called, calling, items, version)


def test_a_request_pynetdicom_encodes_is_read_whole():
    p = A_ASSOCIATE()
    p.application_context_name = pdu_bytes.APPLICATION_CONTEXT
    p.calling_ae_title, p.called_ae_title = "MOD", "EDGE"
    contexts = []
    for i, (abstract, syntaxes) in enumerate([(VERIFICATION, ["1.2.840.10008.1.2"]), CT]):
        cx = PresentationContext()
        cx.context_id, cx.abstract_syntax, cx.transfer_syntax = 2 * i + 1, abstract, syntaxes
        contexts.append(cx)
    p.presentation_context_definition_list = contexts
    ml = MaximumLengthNotification()
    ml.maximum_length_received = 16384
    p.user_information = [ml]
    rq = A_ASSOCIATE_RQ()
    rq.from_primitive(p)
    got = parse(rq.encode())
    assert (got.called, got.calling, got.reject) == ("EDGE", "MOD", None)
    assert got.contexts == {1: (VERIFICATION, ["1.2.840.10008.1.2"]), 3: CT}


@pytest.mark.parametrize("raw,expected", [
    (b"EDGE" + b"\x00" * 12, "EDGE"),
    (b"  EDGE" + b" " * 10, "EDGE"),
    (b"EDGE\x00junk" + b"\x00" * 7, "EDGE"),
    (b"\x00" * 16, ""),
    (b" " * 16, ""),
])
def test_ae_titles_are_read_up_to_the_first_nul(raw, expected):
    assert normalise_ae(raw) == expected
    got = parse(_rq(pdu_bytes.standard_items([(1, *CT)]), calling=raw))
    assert got.calling == expected and got.calling_raw == raw


def test_escaped_title_shows_nul_and_control_bytes():
    assert escaped_ae(b"AB\x00\x01") == r"'AB\x00\x01'"


def _lying_context() -> bytes:
    cx = pdu_bytes.presentation_context(3, *CT)
    return cx[:2] + struct.pack(">H", len(cx) + 40) + cx[4:]


APP = pdu_bytes.item(0x10, pdu_bytes.APPLICATION_CONTEXT.encode())
UI = pdu_bytes.user_information()
MALFORMED = {
    "even-id": APP + pdu_bytes.presentation_context(2, *CT) + UI,
    "zero-id": APP + pdu_bytes.presentation_context(0, *CT) + UI,
    "no-transfer-syntax": APP + pdu_bytes.presentation_context(1, CTImageStorage, []) + UI,
    "no-abstract-syntax": APP + pdu_bytes.presentation_context(1, None, [ExplicitVRLittleEndian]) + UI,
    "duplicate-id": APP + pdu_bytes.presentation_context(1, *CT) * 2 + UI,
    "item-length-lies": APP + _lying_context() + UI,
    "user-identity-larger-than-its-item": APP + pdu_bytes.presentation_context(1, *CT)
    + pdu_bytes.user_information(extra=pdu_bytes.user_identity(b"user", primary_length=4000)),
    "stray-bytes": APP + pdu_bytes.presentation_context(1, *CT) + UI + b"\x00\x00",
    "uid-not-a-uid": APP + pdu_bytes.presentation_context(1, "1.2.abc", [ExplicitVRLittleEndian]) + UI,
    "no-context": APP + UI,
    "no-application-context": pdu_bytes.presentation_context(1, *CT) + UI,
    "unknown-item": APP + pdu_bytes.presentation_context(1, *CT) + UI + pdu_bytes.item(0x33, b"x"),
    "max-length-of-3-bytes": APP + pdu_bytes.presentation_context(1, *CT)
    + pdu_bytes.item(0x50, pdu_bytes.item(0x51, b"\x00\x00\x40")),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_requests_are_refused(case):
    with pytest.raises(MalformedRequest):
        parse(_rq(MALFORMED[case]))


def test_reasons_of_ps3_8_9_3_4_are_reported_not_raised():
    items = pdu_bytes.standard_items([(1, *CT)])
    assert parse(_rq(items, version=2)).reject == REJECT_PROTOCOL_VERSION
    other = pdu_bytes.item(0x10, b"1.2.3.4") + items[len(APP):]
    assert parse(_rq(other)).reject == REJECT_APPLICATION_CONTEXT
