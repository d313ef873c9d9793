"""A small pynetdicom PACS whose answers a test scripts: statuses per C-STORE, commitment reports.

Used where no real PACS can be made to misbehave on cue (../shared/PEERS.md: "a fault-injecting DCMTK
storescp or a small pynetdicom fake"). It stores nothing; it records what it was sent.
"""

from __future__ import annotations

import threading
from collections import deque

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from peers import free_port

COMMITMENT = "1.2.840.10008.1.20.1"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"


class FakePACS:
    def __init__(self, aet: str = "FAKEPACS", statuses: list[int] | None = None, default: int = 0x0000):
        self.aet = aet
        self.port = free_port()
        self.statuses = deque(statuses or [])
        self.default = default
        self.received: list[str] = []  # SOP Instance UIDs answered with success, in order
        self.calls: list[tuple[str, int]] = []
        self.commit_requests: list[tuple[str, list[str]]] = []
        # Set by a test: (gateway_port, gateway_aet, fail_once_uids) to answer commitment on a new
        # association; each UID in the set is reported failed once, then committed.
        self.report_to: tuple[int, str, set[str]] | None = None
        self.never_commit: set[str] = set()  # reported failed every time
        self._lock = threading.Lock()
        ae = AE(ae_title=aet)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
        ae.add_supported_context(COMMITMENT)
        self.ae = ae
        self.server = None

    def start(self) -> "FakePACS":
        self.server = self.ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=[
            (evt.EVT_C_STORE, self._on_store), (evt.EVT_N_ACTION, self._on_action)])
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()

    def _on_store(self, event):
        uid = str(event.request.AffectedSOPInstanceUID)
        with self._lock:
            code = self.statuses.popleft() if self.statuses else self.default
            self.calls.append((uid, code))
            if code == 0x0000:
                self.received.append(uid)
        return code

    def _on_action(self, event):
        ds = event.action_information
        txn = str(ds.TransactionUID)
        uids = [(str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID)) for i in ds.ReferencedSOPSequence]
        with self._lock:
            self.commit_requests.append((txn, [u for _, u in uids]))
        if self.report_to is not None:
            threading.Thread(target=self._report, args=(txn, uids), daemon=True).start()
        return 0x0000, None

    def _report(self, txn: str, uids: list[tuple[str, str]]) -> None:
        port, aet, fail = self.report_to
        ds = Dataset()
        ds.TransactionUID = txn
        ok, bad = [], []
        for cls, inst in uids:
            item = Dataset()
            item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = cls, inst
            if inst in fail or inst in self.never_commit:
                fail.discard(inst)
                item.FailureReason = 0x0112
                bad.append(item)
            else:
                ok.append(item)
        if ok:
            ds.ReferencedSOPSequence = ok
        if bad:
            ds.FailedSOPSequence = bad
        # As Orthanc does: a new association, proposing the SCP role for commitment.
        from pynetdicom import build_role

        ae = AE(ae_title=self.aet)
        ae.add_requested_context(COMMITMENT)
        assoc = ae.associate("127.0.0.1", port, ae_title=aet,
                             ext_neg=[build_role(COMMITMENT, scp_role=True)])
        if assoc.is_established:
            assoc.send_n_event_report(ds, 2 if bad else 1, COMMITMENT, COMMITMENT_INSTANCE)
            assoc.release()


class SilentListener:
    """A plain TCP listener standing in for a PACS that goes wrong at association set-up: it
    accepts and reads the A-ASSOCIATE-RQ, then never answers (`mode="mute"`) or answers it with an
    A-ABORT PDU (`mode="abort"`, PS3.8 9.3.8: type 07, source 0 = service-user). `requested` is set
    once an A-ASSOCIATE-RQ (PDU type 01) has arrived, `closed` once the requestor ended the
    connection (an A-ABORT PDU from it, or the socket closed)."""

    def __init__(self, mode: str = "mute"):
        import socket

        self.mode = mode
        self.requested = threading.Event()
        self.closed = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._conns: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn) -> None:
        try:
            first = conn.recv(65536)
            if first[:1] == b"\x01":
                self.requested.set()
                if self.mode == "abort":
                    conn.sendall(b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00")
            while first:
                if first[:1] == b"\x07" and self.mode == "mute":
                    break  # the requestor's A-ABORT
                first = conn.recv(65536)
        except OSError:
            pass
        self.closed.set()

    def stop(self) -> None:
        self._sock.close()
        for conn in self._conns:
            conn.close()


def aborting_qr_pacs(aet: str = "ABORTPACS"):
    """A pynetdicom Study Root FIND/MOVE/GET SCP that accepts any association and aborts it at the
    first request, as Orthanc does for a calling AE title missing from its DicomModalities.
    Returns (server, port)."""
    from pynetdicom.sop_class import (StudyRootQueryRetrieveInformationModelFind,
                                      StudyRootQueryRetrieveInformationModelGet,
                                      StudyRootQueryRetrieveInformationModelMove)

    def abort(event):
        event.assoc.abort()
        yield 0xC000, None  # not sent: the association is gone

    ae = AE(ae_title=aet)
    for uid in (StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelMove,
                StudyRootQueryRetrieveInformationModelGet):
        ae.add_supported_context(uid)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[
        (evt.EVT_C_FIND, abort), (evt.EVT_C_MOVE, abort), (evt.EVT_C_GET, abort)])
    return server, port
