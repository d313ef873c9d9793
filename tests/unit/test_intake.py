"""The intake door on its own: a file and a source, no network. What a media import and a capture
will call; the C-STORE adapter (StoreSCP) is the same door with an AE:<title> source."""

from __future__ import annotations

import errno
import shutil
from concurrent.futures import Future

import pytest
from datasets import make_ct
from pydicom.uid import CTImageStorage, MRImageStorage

from gateway.buffer.ingest import Buffer, Outcome
from gateway.buffer.intake import Intake, Refusal
from gateway.buffer.source import Source, SourceKind
from gateway.config import Config
from gateway.events import EventBus
from gateway.routing import Router

CT = str(CTImageStorage)


def _config(**extra) -> Config:
    return Config.model_validate({
        "destinations": {"pacs": {"ae_title": "PACS", "port": 11122},
                         "ct_archive": {"ae_title": "CTARCH", "port": 11123}},
        "routes": [{"to": ["ct_archive"], "calling_ae": ["CT1"]},
                   {"to": ["pacs"], "modality": ["CT"]}],
        **extra,
    })


@pytest.fixture
def setup(tmp_path):
    def build(config: Config | None = None, reserve: int = 0):
        cfg = config or _config()
        buf = Buffer(tmp_path / "buf", reserve, "replace", Router(cfg))
        events = EventBus()
        q = events.subscribe()
        intake = Intake(cfg, buf, events, {CT})
        return intake, buf, q
    yield build


def _received(buf: Buffer, src):
    tmp = buf.files.new_incoming_path()
    shutil.copyfile(src, tmp)
    return tmp


def _events(q):
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def test_source_renders_and_parses():
    assert str(Source.ae("CT1")) == "AE:CT1"
    assert str(Source.media("USB-2")) == "MEDIA:USB-2"
    assert str(Source.capture("grabber0")) == "CAPTURE:grabber0"
    assert Source.parse("MEDIA:USB-2") == Source(SourceKind.MEDIA, "USB-2")
    assert Source.parse("CAPTURE:grabber0").kind is SourceKind.CAPTURE
    assert Source.parse("CT1") == Source.ae("CT1")  # a bare name is an AE title
    assert Source.ae("CT1").label == "CT1" and Source.media("X").label == "MEDIA:X"


def test_media_source_stores_and_routes_by_source(setup, tmp_path):
    intake, buf, q = setup()
    ds = make_ct(tmp_path / "a.dcm")
    path = _received(buf, tmp_path / "a.dcm")
    r = intake.take(path, Source.media("USB1"), CT, ds.SOPInstanceUID)
    assert r.ok and r.refusal is None
    # The calling_ae route does not match a medium; the modality route does.
    assert r.ingest.outcome is Outcome.STORED and r.ingest.routes == ("pacs",)
    assert not path.exists()
    (row,) = buf.index.query("SELECT sop_uid, calling_ae FROM instances")
    assert (row["sop_uid"], row["calling_ae"]) == (ds.SOPInstanceUID, "MEDIA:USB1")
    (ev,) = _events(q)
    assert ev.kind == "received" and ev.data["source"] == "MEDIA:USB1" and ev.data["routes"] == ("pacs",)


def test_ae_source_matches_calling_ae_routes(setup, tmp_path):
    intake, buf, _ = setup()
    ds = make_ct(tmp_path / "a.dcm")
    r = intake.take(_received(buf, tmp_path / "a.dcm"), Source.ae("CT1"), CT, ds.SOPInstanceUID)
    assert r.ok and r.ingest.routes == ("ct_archive", "pacs")
    (row,) = buf.index.query("SELECT calling_ae FROM instances")
    assert row["calling_ae"] == "CT1"  # the column keeps the bare title, as before


def test_capture_source_stores_with_a_running_sync(setup, tmp_path):
    intake, buf, q = setup()
    ds = make_ct(tmp_path / "a.dcm")
    started = []

    def start_sync():
        f: Future = Future()
        f.set_result(None)
        started.append(f)
        return f

    r = intake.take(_received(buf, tmp_path / "a.dcm"), Source.capture("grabber0"), CT, ds.SOPInstanceUID,
                    synced=start_sync)
    assert r.ok and started and r.ingest.routes == ("pacs",)
    assert [e.kind for e in _events(q)] == ["received"]


def test_duplicate_from_media_is_identical(setup, tmp_path):
    intake, buf, _ = setup()
    ds = make_ct(tmp_path / "a.dcm")
    for _ in range(2):
        r = intake.take(_received(buf, tmp_path / "a.dcm"), Source.media("DVD"), CT, ds.SOPInstanceUID)
    assert r.ok and r.ingest.outcome is Outcome.IDENTICAL


def _refused(q, refusal: Refusal):
    evs = [e for e in _events(q) if e.kind == "store-refused"]
    assert len(evs) == 1 and evs[0].data["refusal"] == refusal.value
    return evs[0]


def test_refuses_a_class_that_is_not_storage(setup, tmp_path):
    intake, buf, q = setup()
    ds = make_ct(tmp_path / "a.dcm")
    path = _received(buf, tmp_path / "a.dcm")
    r = intake.take(path, Source.capture("grabber0"), str(MRImageStorage), ds.SOPInstanceUID)
    assert r.refusal is Refusal.NOT_STORAGE_CLASS and "not a storage class" in r.reason
    assert not path.exists() and not buf.index.query("SELECT id FROM instances")
    assert _refused(q, Refusal.NOT_STORAGE_CLASS).data["source"] == "CAPTURE:grabber0"


def test_refuses_a_uid_that_differs(setup, tmp_path):
    intake, buf, q = setup()
    make_ct(tmp_path / "a.dcm")
    r = intake.take(_received(buf, tmp_path / "a.dcm"), Source.media("USB1"), CT, "1.2.3.4")
    assert r.refusal is Refusal.MISMATCH and "SOP Instance UID" in r.reason
    _refused(q, Refusal.MISMATCH)


def test_refuses_an_unreadable_file(setup, tmp_path):
    intake, buf, q = setup()
    path = buf.files.new_incoming_path()
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 40)
    r = intake.take(path, Source.media("USB1"), CT, "1.2.3")
    assert r.refusal is Refusal.UNREADABLE
    assert not path.exists()
    _refused(q, Refusal.UNREADABLE)


def test_not_authorized_applies_to_ae_peers_only(setup, tmp_path):
    cfg = _config(peers={"ct": {"ae_title": "CT1", "may_store": False}})
    intake, buf, q = setup(cfg)
    ds = make_ct(tmp_path / "a.dcm")
    r = intake.take(_received(buf, tmp_path / "a.dcm"), Source.ae("CT1"), CT, ds.SOPInstanceUID)
    assert r.refusal is Refusal.NOT_AUTHORIZED and r.reason == "CT1 may not store"
    _refused(q, Refusal.NOT_AUTHORIZED)
    # A medium labelled like the peer is not the peer.
    assert intake.take(_received(buf, tmp_path / "a.dcm"), Source.media("CT1"), CT, ds.SOPInstanceUID).ok


def test_refuses_when_the_buffer_is_full(setup, tmp_path):
    intake, buf, q = setup(reserve=1 << 62)
    ds = make_ct(tmp_path / "a.dcm")
    path = _received(buf, tmp_path / "a.dcm")
    r = intake.take(path, Source.media("USB1"), CT, ds.SOPInstanceUID)
    assert r.refusal is Refusal.DISK_FULL and r.reason.startswith("buffer full")
    assert not path.exists()
    kinds = [e.kind for e in _events(q)]
    assert "disk-full" in kinds and "store-refused" in kinds


def test_write_errors_of_the_sync_are_named(setup, tmp_path):
    intake, buf, q = setup()
    ds = make_ct(tmp_path / "a.dcm")

    def enospc():
        raise OSError(errno.ENOSPC, "No space left on device")

    def eio():
        f: Future = Future()
        f.set_exception(OSError(errno.EIO, "Input/output error"))
        return f

    r = intake.take(_received(buf, tmp_path / "a.dcm"), Source.capture("g"), CT, ds.SOPInstanceUID, synced=enospc)
    assert (r.refusal, r.reason) == (Refusal.DISK_FULL, "disk full")
    r = intake.take(_received(buf, tmp_path / "a.dcm"), Source.capture("g"), CT, ds.SOPInstanceUID, synced=eio)
    assert r.refusal is Refusal.WRITE_FAILED and r.reason == "cannot write to buffer: Input/output error"
    assert not buf.index.query("SELECT id FROM instances")


def test_every_refusal_has_a_dimse_status():
    from gateway.dicom.store_scp import STATUS_OF

    assert set(STATUS_OF) == set(Refusal)
