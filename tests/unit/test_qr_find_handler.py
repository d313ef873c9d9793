"""The C-FIND SCP's handler on its own (gateway/dicom/qr_find_scp.py): the qr-query event it
publishes, A700 when the index stays locked, and FF01 for keys below the query level on both
paths (pynetdicom's Datasets, the hand-encoded bytes). The index is real; the lock is injected, since
a WAL reader is never blocked by a writer on a healthy disk."""

from __future__ import annotations

import logging
import sqlite3
from io import BytesIO
from types import SimpleNamespace

import pytest

from index_seed import seed_studies
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.dsutils import decode

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


def _decoded(identifier, implicit: bool) -> Dataset:
    """A pending's identifier as the SCU reads it: the fast path's bytes decoded, a Dataset as is."""
    if isinstance(identifier, bytes):
        return decode(BytesIO(identifier), implicit, True)
    return identifier


@pytest.mark.parametrize("implicit", [None, True, False], ids=["pynetdicom", "fast-implicit", "fast-explicit"])
def test_keys_below_the_level_answer_ff01_on_both_paths_and_are_logged_without_values(tmp_path, caplog, implicit):
    index = _index(tmp_path, 3)
    with index.tx() as cur:  # the first study MR, the others CT
        cur.execute("UPDATE series SET modality = CASE WHEN series_uid = '1.2.3.0.1' THEN 'MR' ELSE 'CT' END")
    scp = _scp(tmp_path, index, None)
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = ""
    q.Modality = "MR"
    q.SeriesDescription = "SECRET*"  # a series key: not matched (no series has it), zero length back
    caplog.set_level(logging.INFO, logger="gateway.dicom.qr_find")
    # on_find is pynetdicom's path (Datasets); _answers with implicit set is serve()'s (bytes).
    answers = scp.on_find(_Event("WS", q)) if implicit is None else scp._answers(_Event("WS", q), implicit)
    out = [(status if isinstance(status, int) else status.Status, ds) for status, ds in answers]
    assert [code for code, _ in out] == [0xFF01, 0x0000]
    rsp = _decoded(out[0][1], bool(implicit))
    assert rsp.StudyInstanceUID == "1.2.3.0" and rsp["Modality"].is_empty and rsp["SeriesDescription"].is_empty
    (line,) = [r.getMessage() for r in caplog.records if "matches" in r.getMessage()]
    assert "Modality (0008,0060) matched as ModalitiesInStudy" in line and "SeriesDescription (0008,103E)" in line
    assert "SECRET" not in line and "MR" not in line.replace("ModalitiesInStudy", "")
    # Without keys below the level: FF00.
    q2 = Dataset()
    q2.QueryRetrieveLevel = "STUDY"
    q2.ModalitiesInStudy = "CT"
    answers = scp.on_find(_Event("WS", q2)) if implicit is None else scp._answers(_Event("WS", q2), implicit)
    assert [s if isinstance(s, int) else s.Status for s, _ in answers] == [0xFF00, 0xFF00, 0x0000]
    index.close()
