"""The replacement recv keeps pynetdicom's contract: all bytes asked for, or what came before EOF."""

from __future__ import annotations

import socket
import threading

from gateway.dicom import pynetdicom_tuning
from gateway.dicom.pynetdicom_tuning import _recv


class _Sock:
    def __init__(self, s):
        self.socket = s


def test_reads_exactly_across_many_small_sends_and_stops_short_at_eof():
    a, b = socket.socketpair()
    payload = bytes(range(256)) * 1000

    def writer():
        for i in range(0, len(payload), 777):  # arrives in odd-sized pieces
            a.sendall(payload[i:i + 777])
        a.close()

    t = threading.Thread(target=writer)
    t.start()
    first = _recv(_Sock(b), 100_000)
    rest = _recv(_Sock(b), 1_000_000)
    t.join()
    assert bytes(first) == payload[:100_000]
    assert bytes(rest) == payload[100_000:]  # short: the peer closed
    assert _recv(_Sock(b), 10) == bytearray()
    b.close()


def test_a_pdu_longer_than_the_limit_reads_as_a_closed_connection():
    pynetdicom_tuning.apply(131072)
    a, b = socket.socketpair()
    try:
        assert _recv(_Sock(b), 0x7FFFFFF0) == bytearray()  # nothing allocated, nothing read
        a.sendall(b"x" * 10)
        assert _recv(_Sock(b), 10) == bytearray(b"x" * 10)
    finally:
        a.close()
        b.close()


def test_supported_contexts_are_list_copied_other_values_deep_copied():
    from pynetdicom import transport
    from pynetdicom.presentation import build_context

    pynetdicom_tuning.apply(131072)
    contexts = [build_context("1.2.840.10008.1.1")]
    copied = transport.deepcopy(contexts)
    assert copied == contexts and copied is not contexts and copied[0] is contexts[0]
    nested = {"a": [1, 2]}
    other = transport.deepcopy(nested)
    assert other == nested and other["a"] is not nested["a"]
