"""Property-based fuzzing of the upper layer against the real service (issue 14, item 14).

Hypothesis builds A-ASSOCIATE-RQs, P-DATA-TF PDUs and DIMSE command sets that are almost right
(even or zero context IDs, missing syntaxes, sub-item and PDV lengths that lie, NUL and control
bytes in AE titles, command elements cut short) and sends each to one running gateway, on the
fast path and on a pynetdicom-served association. For every case the peer must get an answer at
once (A-ASSOCIATE-AC/RJ, A-ABORT, a response, A-RELEASE-RP) within a read bound far below the
gateway's handshake and inactivity timers; afterwards the service still answers a C-ECHO, and its
log holds no "thread ... died" line and no traceback.

The PDU length field itself is always honest: a PDU that announces more bytes than are sent can
only be answered by the timers (PS3.8 9.2, ARTIM), which is not what this measures.

Bounded: a fixed number of examples, derandomized (the same cases every run) unless FUZZ_SEED is
set, in which case that seed is used and printed.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import Counter

import pdu_bytes
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from test_storage_protocol import _still_serving, echo_rq, requestors, store_rq  # noqa: F401 - fixture

pytestmark = pytest.mark.interop

VERIFICATION = "1.2.840.10008.1.1"
COMMITMENT = "1.2.840.10008.1.20.1"
# The gateway's timers are 30 s and 60 s; every read here gives up after this.
READ_BOUND = 5.0
SEED = os.environ.get("FUZZ_SEED")


def _settings(examples: int):
    kw = dict(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=True)
    if SEED is None:
        kw["derandomize"] = True
    return settings(**kw)


def _seeded(fn):
    if SEED is not None:
        print(f"FUZZ_SEED={SEED}")
        return seed(int(SEED))(fn)
    print("fuzz cases derandomized (the same every run); FUZZ_SEED=<n> draws others")
    return fn


# -- talking to the gateway ----------------------------------------------------------------------

def _read_pdu(sock: socket.socket) -> tuple[int, bytes] | None:
    def exact(n: int) -> bytes | None:
        out = b""
        while len(out) < n:
            got = sock.recv(n - len(out))  # bounded by READ_BOUND: a timeout fails the case
            if not got:
                return None
            out += got
        return out

    header = exact(6)
    if header is None:
        return None
    pdu_type, length = struct.unpack(">BxI", header)
    body = exact(length) if length else b""
    if body is None:
        return None
    return pdu_type, body


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=READ_BOUND)


def _finish(sock: socket.socket) -> str:
    """After the fuzzed input: ask for a release and read until the gateway ends the association.
    Returns how it ended. A read that times out raises socket.timeout: the case fails."""
    try:
        sock.sendall(pdu_bytes.pdu(0x05, b"\x00" * 4))
    except OSError:
        pass  # already closed by the gateway: reading tells how
    while True:
        try:
            got = _read_pdu(sock)
        except ConnectionResetError:
            return "reset"
        if got is None:
            return "closed"
        if got[0] in (0x06, 0x07):  # A-RELEASE-RP, A-ABORT
            return {0x06: "released", 0x07: "aborted"}[got[0]]
        # P-DATA (responses) may come before; anything else is a protocol error of the gateway.
        assert got[0] == 0x04, f"unexpected PDU type 0x{got[0]:02X} from the gateway"


# -- strategies ----------------------------------------------------------------------------------

def often(strategy_good, strategy_bad, good: int = 4):
    """`strategy_good` `good` times in `good`+1: mostly-right input reaches deeper states."""
    return st.integers(0, good).flatmap(lambda i: strategy_good if i else strategy_bad)


@st.composite
def good_title(draw, names=(b"EDGE", b"STORESCU", b"ECHOSCU")):
    name = draw(st.sampled_from(names))
    pad = draw(st.sampled_from([b" ", b"\x00"]))
    return (name + pad * 16)[:16]


@st.composite
def bad_title(draw):
    name = draw(st.sampled_from([b"EDGE", b"STORESCU", b"", b"NOBODY"]))
    pad = draw(st.sampled_from([b" ", b"\x00", b"\x01", b"\xff"]))
    return draw(st.one_of(st.just((name + pad * 16)[:16]), st.binary(min_size=16, max_size=16)))


GOOD_ABSTRACTS = [VERIFICATION, CTImageStorage, COMMITMENT, "1.2.840.10008.5.1.4.1.1.6", "1.2.3.4"]
GOOD_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, "1.2.840.10008.1.2.4.80", "1.2.3"]


@st.composite
def context_items(draw):
    """(item, context ID, certainly malformed): the last is True for defects no reading of
    PS3.8 9.3.2.2 allows (even or zero ID, no abstract or no transfer syntax, wrong order, an
    empty UID); the others may or may not leave a valid item."""
    context_id = draw(often(st.sampled_from([1, 3, 5, 7, 9, 255]), st.integers(0, 255)))
    abstract = pdu_bytes.item(0x30, pdu_bytes.uid_bytes(draw(st.sampled_from(GOOD_ABSTRACTS))))
    syntaxes = [pdu_bytes.item(0x40, pdu_bytes.uid_bytes(ts))
                for ts in draw(st.lists(st.sampled_from(GOOD_SYNTAXES), min_size=1, max_size=3))]
    defect = draw(often(st.just("none"), st.sampled_from(
        ["no-abstract", "no-syntax", "garbage-uid", "odd-sub-item", "order", "empty-uid"]), good=5))
    subs = [abstract] + syntaxes
    if defect == "no-abstract":
        subs = syntaxes
    elif defect == "no-syntax":
        subs = [abstract]
    elif defect == "garbage-uid":
        subs[draw(st.integers(0, len(subs) - 1))] = pdu_bytes.item(draw(st.sampled_from([0x30, 0x40])),
                                                                    draw(st.binary(max_size=70)))
    elif defect == "odd-sub-item":
        subs.insert(draw(st.integers(0, len(subs))), pdu_bytes.item(draw(st.integers(0, 255)), draw(st.binary(max_size=8))))
    elif defect == "order":
        subs.reverse()
    elif defect == "empty-uid":
        subs[draw(st.integers(0, len(subs) - 1))] = pdu_bytes.item(0x40, b"")
    certain = defect in ("no-abstract", "no-syntax", "order", "empty-uid") or context_id % 2 == 0
    return pdu_bytes.item(0x20, bytes((context_id, 0, 0, 0)) + b"".join(subs)), context_id, certain


@st.composite
def user_items(draw):
    subs = [pdu_bytes.item(0x51, struct.pack(">I", draw(st.sampled_from([0, 4096, 16384, 1 << 31])))),
            pdu_bytes.item(0x52, pdu_bytes.uid_bytes(pdu_bytes.IMPLEMENTATION_CLASS_UID))]
    kinds = st.sampled_from(["identity", "role", "async", "version", "unknown", "ext", "common-ext"])
    certain = False
    for kind in draw(st.lists(kinds, max_size=2)):
        right = draw(often(st.just(True), st.just(False), good=2))
        if kind == "identity":
            primary = draw(st.binary(min_size=1, max_size=20))
            subs.append(pdu_bytes.user_identity(primary, draw(st.binary(max_size=8)),
                                                kind=draw(st.integers(1, 5) if right else st.integers(0, 255)),
                                                primary_length=None if right else draw(st.integers(0, 0xFFFF))))
        elif kind == "role":
            u = pdu_bytes.uid_bytes(draw(st.sampled_from(GOOD_ABSTRACTS)))
            n = len(u) if right else draw(st.integers(0, 0xFFFF))
            roles = bytes((draw(st.integers(0, 1)), draw(st.integers(0, 1)))) if right else draw(st.binary(max_size=3))
            subs.append(pdu_bytes.item(0x54, struct.pack(">H", n) + u + roles))
        elif kind == "async":
            subs.append(pdu_bytes.item(0x53, draw(st.binary(min_size=4, max_size=4) if right else st.binary(max_size=6))))
        elif kind == "version":
            subs.append(pdu_bytes.item(0x55, b"FUZZ_1" if right else draw(st.binary(max_size=20))))
        elif kind == "ext":
            u = pdu_bytes.uid_bytes(CTImageStorage)
            n = len(u) if right else draw(st.integers(0, 0xFFFF))
            subs.append(pdu_bytes.item(0x56, struct.pack(">H", n) + u + draw(st.binary(max_size=4))))
        elif kind == "common-ext":
            u = pdu_bytes.uid_bytes(CTImageStorage)
            body = struct.pack(">H", len(u)) + u + struct.pack(">H", len(u)) + u + struct.pack(">H", 0)
            subs.append(pdu_bytes.item(0x57, body if right else draw(lie(body))))
        else:  # a sub-item type PS3.7 D.3.3 does not define for a request
            subs.append(pdu_bytes.item(draw(st.integers(0x59, 0xFF)), draw(st.binary(max_size=10))))
            certain = True
    return pdu_bytes.item(0x50, b"".join(subs)), certain


@st.composite
def lie(draw, data: bytes) -> bytes:
    """Overwrite a 16-bit length somewhere, flip a byte, or cut the tail."""
    if not data:
        return data
    how = draw(st.sampled_from(["length", "flip", "cut"]))
    pos = draw(st.integers(0, len(data) - 1))
    if how == "length" and pos + 2 <= len(data):
        return data[:pos] + struct.pack(">H", draw(st.integers(0, 0xFFFF))) + data[pos + 2:]
    if how == "flip":
        return data[:pos] + bytes((data[pos] ^ draw(st.integers(1, 255)),)) + data[pos + 1:]
    return data[:pos]


@st.composite
def associate_requests(draw):
    """(A-ASSOCIATE-RQ, certainly malformed)."""
    items = []
    certain = False
    if draw(often(st.just(True), st.just(False), good=9)):
        items.append(pdu_bytes.item(0x10, draw(often(st.just(pdu_bytes.APPLICATION_CONTEXT.encode()),
                                                     st.binary(max_size=70), good=9))))
    else:
        certain = True  # no application context item
    contexts = draw(st.lists(context_items(), min_size=0 if draw(st.integers(0, 9)) == 0 else 1, max_size=4))
    ids = [cx[1] for cx in contexts]
    certain |= not contexts or len(set(ids)) != len(ids) or any(cx[2] for cx in contexts)
    items += [cx[0] for cx in contexts]
    if draw(often(st.just(True), st.just(False), good=9)):
        user, broken = draw(user_items())
        items.append(user)
        certain |= broken
    if draw(st.integers(0, 9)) == 0:
        items = draw(st.permutations(items))
    body = b"".join(items)
    if draw(st.integers(0, 3)) == 0:
        body = draw(lie(body))
        certain = False  # a lie may cut the defect away
    version = draw(often(st.just(1), st.sampled_from([0, 2, 0xFFFF]), good=9))
    called = draw(often(good_title(names=(b"EDGE",)), bad_title(), good=6))
    calling = draw(often(good_title(), bad_title(), good=6))
    return pdu_bytes.associate_rq(called, calling, body, version), certain


@st.composite
def command_sets(draw):
    """A DIMSE command set: a valid C-ECHO/C-STORE one, maybe damaged, or made up element by element."""
    kind = draw(st.sampled_from(["echo", "echo", "store", "elements"]))
    if kind == "echo":
        data = echo_rq(draw(st.integers(0, 0xFFFF)))
    elif kind == "store":
        data = store_rq(draw(st.integers(0, 0xFFFF)), "1.2.3.4", draw(st.sampled_from([CTImageStorage, VERIFICATION])))
    else:
        data = b""
        for _ in range(draw(st.integers(0, 6))):
            element = draw(st.sampled_from([0x0000, 0x0002, 0x0100, 0x0110, 0x0800, 0x0900, 0x1000, 0x0120]))
            value = draw(st.binary(max_size=12))
            length = draw(often(st.just(len(value)), st.integers(0, 0xFFFFFFFF)))
            data += struct.pack("<HHI", draw(often(st.just(0x0000), st.just(0x0008))), element, length) + value
        return data
    return draw(often(st.just(data), lie(data), good=2))


@st.composite
def messages(draw, context_ids: list[int]):
    """The PDVs of one DIMSE message: mostly a right one (an echo; a store with a short data set,
    which the gateway refuses or stores), with at most a defect or two."""
    command = draw(command_sets())
    context_id = draw(often(st.sampled_from(context_ids), st.integers(0, 255), good=9))
    out = []
    pieces = [(command, 0x03)]
    if b"\x01\x00\x00\x00" in command and draw(st.booleans()):  # maybe a C-STORE: add a data set
        pieces.append((draw(st.binary(min_size=1, max_size=64)), 0x02))
    if draw(st.integers(0, 5)) == 0:
        pieces = pieces[1:] or pieces  # a data set with no command, or the command alone
    for value, control in pieces:
        if draw(st.integers(0, 9)) == 0:
            control = draw(st.integers(0, 255))
        length = draw(often(st.just(len(value) + 2), st.integers(0, 0xFFFFFFFF), good=9))
        out.append(struct.pack(">IBB", length, context_id, control) + value)
    return out


@st.composite
def p_data_pdus(draw, context_ids: list[int]):
    pdv_list = [pdv for message in draw(st.lists(messages(context_ids), min_size=1, max_size=3)) for pdv in message]
    if draw(st.booleans()):  # one PDU per PDV, or all in one
        return [pdu_bytes.pdu(0x04, pdv) for pdv in pdv_list]
    return [pdu_bytes.pdu(0x04, b"".join(pdv_list))]


# -- the properties ------------------------------------------------------------------------------

@pytest.fixture
def fuzz_gateway(gateway_factory):
    return gateway_factory({"timers": {"handshake_s": 30.0, "inactivity_s": 60.0}})


def _healthy(gw, requestors) -> None:
    _still_serving(gw, requestors)
    log = gw.log
    assert " died: " not in log and "Traceback" not in log, log[-4000:]


def test_fuzzed_associate_requests_are_answered_at_once(fuzz_gateway, requestors):
    gw = fuzz_gateway
    outcomes: Counter = Counter()
    certain = [0]

    @_seeded
    @_settings(250)
    @given(associate_requests())
    def case(drawn: tuple[bytes, bool]) -> None:
        request, malformed = drawn
        sock = _connect(gw.port)
        try:
            sock.sendall(request)
            got = _read_pdu(sock)
            assert got is not None, "connection closed without an answer"
            assert got[0] in (0x02, 0x03, 0x07), f"answered with PDU type 0x{got[0]:02X}"
            if malformed:  # PS3.8 9.2 AA-1: invalid PDU in Sta2 -> A-ABORT
                assert got[0] == 0x07, f"a malformed A-ASSOCIATE-RQ answered with PDU type 0x{got[0]:02X}"
                certain[0] += 1
            outcomes[{0x02: "accepted", 0x03: "rejected", 0x07: "aborted"}[got[0]]] += 1
            if got[0] == 0x02:
                _finish(sock)
        finally:
            sock.close()
        assert gw.proc.poll() is None, "the service died"

    case()
    print("A-ASSOCIATE-RQ outcomes:", dict(outcomes), "certainly malformed:", certain[0])
    _healthy(gw, requestors)
    # The cases reach every kind of answer, or the strategies have gone blind.
    assert set(outcomes) == {"accepted", "rejected", "aborted"}, outcomes


@pytest.mark.parametrize("path", ["fast", "pynetdicom"])
def test_fuzzed_p_data_and_command_sets_are_answered(fuzz_gateway, requestors, path):
    gw = fuzz_gateway
    contexts = [(1, VERIFICATION, [ImplicitVRLittleEndian]), (3, CTImageStorage, [ExplicitVRLittleEndian])]
    if path == "pynetdicom":
        contexts.append((5, COMMITMENT, [ImplicitVRLittleEndian]))
    request = pdu_bytes.associate_rq(pdu_bytes.title("EDGE"), pdu_bytes.title("STORESCU"),
                                     pdu_bytes.standard_items(contexts))
    ids = [cx[0] for cx in contexts]
    outcomes: Counter = Counter()

    @_seeded
    @_settings(150 if path == "fast" else 100)
    @given(p_data_pdus(ids))
    def case(pdus: list[bytes]) -> None:
        sock = _connect(gw.port)
        try:
            sock.sendall(request)
            got = _read_pdu(sock)
            assert got is not None and got[0] == 0x02, f"association not accepted: {got!r}"
            try:
                for p in pdus:
                    sock.sendall(p)
            except OSError:
                pass  # the gateway aborted already: _finish reads how
            outcomes[_finish(sock)] += 1
        finally:
            sock.close()
        assert gw.proc.poll() is None, "the service died"

    case()
    print(f"P-DATA outcomes ({path}):", dict(outcomes))
    _healthy(gw, requestors)
    assert outcomes["released"] and outcomes["aborted"], outcomes
    assert (f"association from STORESCU (127.0.0.1) accepted:" in gw.log) == (path == "fast")
