"""Outgoing P-DATA waits for room; other primitives and a dead DUL never make it hang."""

from __future__ import annotations

import threading

from pynetdicom.pdu_primitives import A_ABORT, P_DATA

from gateway.dicom.net.pdu_flow import BoundedPDataQueue


def test_pdata_waits_for_room_and_abort_does_not():
    q = BoundedPDataQueue(2, lambda: True)
    q.put(P_DATA())
    q.put(P_DATA())
    third_in = threading.Event()

    def producer():
        q.put(P_DATA())
        third_in.set()

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    assert not third_in.wait(0.3)  # bounded: the third waits while two are queued
    q.put(A_ABORT())  # never waits, even when full
    assert q.qsize() == 3
    q.get_nowait()
    q.get_nowait()
    assert third_in.wait(5)  # room made: the waiting put goes through
    t.join(5)
    assert q.qsize() == 2


def test_a_dead_consumer_does_not_hang_the_sender():
    alive = [True]
    q = BoundedPDataQueue(1, lambda: alive[0])
    q.put(P_DATA())
    done = threading.Event()
    t = threading.Thread(target=lambda: (q.put(P_DATA()), done.set()), daemon=True)
    t.start()
    assert not done.wait(0.3)
    alive[0] = False  # the DUL stopped (peer aborted): the put gives up waiting
    assert done.wait(5)
