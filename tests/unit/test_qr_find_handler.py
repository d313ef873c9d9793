"""The C-FIND SCP's handler on its own (gateway/dicom/qr_find_scp.py): the qr-query event it
publishes, and A700 when the index stays locked. The index is real; the lock is injected, since
a WAL reader is never blocked by a writer on a healthy disk."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

from index_seed import seed_studies
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from gateway.buffer.index import Index
from gateway.buffer.query import STUDY_ROOT_FIND
from gateway.config import Config
from gateway.dicom.qr_find_scp import QueryFindSCP
from gateway.event_kinds import QR_QUERY
from gateway.events import EventBus


class _Assoc:
    """pynetdicom's Association is a Thread: hashable by identity and weakly referenceable."""

    def __init__(self, calling: str):
        self.requestor = SimpleNamespace(ae_title=calling)


class _Event:
    """What the handler reads of pynetdicom's Event; is_cancelled turns true after `cancel_after`
    pendings (the C-CANCEL an SCU would send)."""

    def __init__(self, calling: str, identifier: Dataset, cancel_after: int | None = None):
        self.assoc = _Assoc(calling)
        self.request = SimpleNamespace(AffectedSOPClassUID=STUDY_ROOT_FIND)
        self.context = SimpleNamespace(transfer_syntax=ExplicitVRLittleEndian)
        self.identifier = identifier
        self.cancel_after = cancel_after
        self.sent = 0

    @property
    def is_cancelled(self) -> bool:
        return self.cancel_after is not None and self.sent >= self.cancel_after


def _index(tmp_path, studies: int) -> Index:
    index = Index(tmp_path / "index.sqlite")
    seed_studies(index, [f"1.2.3.{n}" for n in range(studies)])
    return index


def _run(scp, ev):
    out = []
    for status, ds in scp.on_find(ev):
        code = status if isinstance(status, int) else status.Status
        out.append((code, ds, status))
        if ds is not None:
            ev.sent += 1
    return out


def _scp(tmp_path, index, bus):
    config = Config(peers={"ws": {"ae_title": "WS", "may_store": False, "may_query": True},
                           "no": {"ae_title": "NOQ", "may_store": False}})
    return QueryFindSCP(config, index, bus)


def test_each_query_publishes_one_qr_query_event_without_patient_data(tmp_path):
    bus = EventBus()
    sub = bus.subscribe(kinds=(QR_QUERY,))
    index = _index(tmp_path, 5)
    scp = _scp(tmp_path, index, bus)
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.PatientName = "X*"
    out = _run(scp, _Event("WS", q))
    assert [c for c, _, _ in out] == [0xFF00] * 5 + [0x0000]
    out = _run(scp, _Event("WS", q, cancel_after=2))
    assert [c for c, _, _ in out] == [0xFF00] * 2 + [0xFE00]
    out = _run(scp, _Event("NOQ", q))
    assert [c for c, _, _ in out] == [0x0124] and "NOQ may not query" in out[0][2].ErrorComment
    data = [e.data for e in sub.take(timeout=5)]
    assert [(d["calling_ae"], d["level"], d["matches"], d["status"]) for d in data] == [
        ("WS", "STUDY", 5, 0x0000), ("WS", "STUDY", 2, 0xFE00), ("NOQ", "", 0, 0x0124)]
    assert all("X" not in str(v) for d in data for k, v in d.items() if k != "calling_ae")
    index.close()


def test_a_locked_index_is_answered_a700(tmp_path, monkeypatch):
    index = _index(tmp_path, 3)
    scp = _scp(tmp_path, index, None)

    def locked(sql, params=()):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(index, "query", locked)
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    out = _run(scp, _Event("WS", q))
    assert [c for c, _, _ in out] == [0xA700] and "locked" in out[0][2].ErrorComment
    index.close()
