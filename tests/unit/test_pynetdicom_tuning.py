"""The replacement recv keeps pynetdicom's contract: all bytes asked for, or what came before EOF."""

from __future__ import annotations

import socket
import threading

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
