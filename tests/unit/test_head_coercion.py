"""Ingest coercion in the receive stream (issue 11 item 3, gateway/buffer/head_coercion.py): a
data set written into a receive_spool.SpoolFile in fragments, its head coerced in memory, gives
the bytes the file path (Coercer.coerce on the received file) gives; anything the stream does not
do is left to the file path unchanged; the Intake takes a stream-coerced object as it takes one
coerced after receiving (index, re-send, one fsync of the spool)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct
from peers import TEST_FILES
from test_coercion_rules import CHARSET_FILES, CT, RULES  # the rule set both files apply

from gateway.buffer import head_coercion
from gateway.buffer.coercion import Coercer
from gateway.buffer.head_coercion import HeadCoercion, last_group
from gateway.buffer.ingest import Buffer, Outcome
from gateway.buffer.intake import Intake, Refusal
from gateway.buffer.source import Source
from gateway.config import Config
from gateway.dicom.net import receive_spool
from gateway.events import EventBus
from gateway.routing import Router

WHEN = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))


@pytest.fixture
def incoming(tmp_path):
    saved = receive_spool._incoming, receive_spool._reserve_check
    path = tmp_path / "incoming"
    path.mkdir()
    receive_spool.configure(path, None)
    yield path
    receive_spool._incoming, receive_spool._reserve_check = saved


def _stream(data: bytes, head, fragment: int, spool=None) -> Path:
    """`data` (a Part-10 file) written as the fast path writes it: the file meta then the data
    set in fragments; returns the spool file's path (flushed, fsynced)."""
    spool = spool or receive_spool.SpoolFile()
    if head is not None:
        spool.coerce_head(head)
    start, _ = receive_spool_meta_end(data)
    spool.write(data[:start])
    for at in range(start, len(data), fragment):
        spool.write(data[at:at + fragment])
    spool.end_head()
    spool.finish()
    spool.close()
    return Path(spool.name)


def receive_spool_meta_end(data: bytes):
    from gateway.part10.structure import file_meta
    return file_meta(data)


def _coercer(cfg: Config) -> tuple[Coercer, list]:
    coercer = Coercer.for_ingest(cfg, Path("/nonexistent"))
    return coercer, coercer.rules_for(Source.ae("CT1"))


def _head(coercer: Coercer, rules: list) -> HeadCoercion:
    return HeadCoercion(coercer, rules, "AE:CT1", WHEN, last_group(coercer, rules))


def _source(name: str, tmp_path: Path) -> Path:
    with pydicom.dcmread(TEST_FILES / name) as ds:  # the map needs its key
        ds.InstitutionName = "GH01"
        ds.PatientBirthDate = ds.get("PatientBirthDate") or "19700101"
        ds.save_as(tmp_path / "src.dcm")
    return tmp_path / "src.dcm"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm",
                                  "MR_small_bigendian.dcm", "JPEG2000.dcm"])
@pytest.mark.parametrize("fragment", [7, 1000, 16384, 1 << 22])
@pytest.mark.parametrize("meta_told", [False, True], ids=["meta-walked", "meta-told"])
def test_the_stream_writes_the_bytes_the_file_path_writes(name, fragment, meta_told, incoming, tmp_path):
    src = _source(name, tmp_path)
    coercer, rules = _coercer(Config.model_validate(RULES))
    expected = coercer.coerce(src, tmp_path / "file-path.dcm", rules, "AE:CT1", when=WHEN)
    assert expected.changed
    head = _head(coercer, rules)
    if meta_told:  # as the fast path does: it wrote the file meta, it says where the data set starts
        start, uids = receive_spool_meta_end(src.read_bytes())
        head.expect_meta(start, uids["transfer_syntax"])
    got = _stream(src.read_bytes(), head, fragment)
    assert head.result == expected, head.why_not
    assert got.read_bytes() == (tmp_path / "file-path.dcm").read_bytes()


def test_rules_that_change_nothing_leave_the_bytes(incoming, tmp_path):
    src = _source("CT_small.dcm", tmp_path)
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "same", "calling_ae": ["CT1"], "set": {"InstitutionName": "GH01"}}]})
    coercer, rules = _coercer(cfg)
    head = _head(coercer, rules)
    got = _stream(src.read_bytes(), head, 4096)
    assert head.result is not None and head.result.changed == () and head.result.rules == ("same",)
    assert got.read_bytes() == src.read_bytes()


def test_a_value_that_needs_pydicom_is_left_to_the_file_path(incoming, tmp_path):
    src = CHARSET_FILES / "chrH31.dcm"  # ISO 2022 IR 87: decoded by pydicom on the file path
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "jp", "calling_ae": ["CT1"], "set": {"InstitutionName": "TOKYO"}}]})
    coercer, rules = _coercer(cfg)
    head = _head(coercer, rules)
    got = _stream(src.read_bytes(), head, 4096)
    assert head.result is None and head.settle() is None and "pydicom" in head.why_not
    assert got.read_bytes() == src.read_bytes()


def test_a_head_over_the_cap_is_left_to_the_file_path(incoming, tmp_path, monkeypatch):
    monkeypatch.setattr(head_coercion, "HEAD_CAP", 8192)
    make_ct(tmp_path / "ct.dcm")
    with pydicom.dcmread(tmp_path / "ct.dcm") as ds:
        # A private block in group 0009: before (0400,0561), so part of the head.
        ds.private_block(0x0009, "HEADTEST", create=True).add_new(0x10, "OB", b"x" * 20000)
        ds.save_as(tmp_path / "ct.dcm")
    coercer, rules = _coercer(Config.model_validate(RULES))
    head = _head(coercer, rules)
    got = _stream((tmp_path / "ct.dcm").read_bytes(), head, 4096)
    assert head.result is None and "8192" in head.why_not
    assert got.read_bytes() == (tmp_path / "ct.dcm").read_bytes()


@pytest.fixture
def intake(tmp_path, incoming):
    def build(cfg: Config):
        buf = Buffer(tmp_path / "buf", 0, "replace", Router(cfg))
        bus = EventBus()
        build.events = bus.subscribe()
        return Intake(cfg, buf, bus, {CT}), buf
    return build


def _receive(take: Intake, data: bytes, sop_uid: str, calls: list):
    """One C-STORE as the fast path does it: the spool, the intake's head, the data set, take()."""
    spool = receive_spool.SpoolFile()
    head = take.head_coercion(Path(spool.name), Source.ae("CT1"), sop_uid)
    if head is not None:
        spool.coerce_head(head)
    start, _ = receive_spool_meta_end(data)
    spool.write(data[:start])
    for at in range(start, len(data), 16384):
        spool.write(data[at:at + 16384])
    spool.end_head()

    def start_finish(**kw):
        calls.append(kw)
        return spool.start_finish(**kw)
    try:
        return take.take(Path(spool.name), Source.ae("CT1"), CT, sop_uid, start_finish)
    finally:
        spool.close()


def test_the_intake_stores_a_stream_coerced_object_as_the_file_path_does(intake, tmp_path):
    """Sent once coerced on the file path (no spool), then again through the stream: the second
    is IDENTICAL (the same bytes, coerced with the stored copy's modification time); the stream's
    spool is fsynced (durable), not only flushed; the result names the rules and changes."""
    cfg = Config.model_validate({"ae": {"title": "EDGE"},
                                 "destinations": {"pacs": {"ae_title": "PACS", "port": 11003}}, **RULES})
    take, buf = intake(cfg)
    ds = make_ct(tmp_path / "ct.dcm")
    with pydicom.dcmread(tmp_path / "ct.dcm") as d:
        d.InstitutionName = "GH01"
        d.save_as(tmp_path / "ct.dcm")
    path = buf.files.new_incoming_path()
    shutil.copyfile(tmp_path / "ct.dcm", path)
    first = take.take(path, Source.ae("CT1"), CT, ds.SOPInstanceUID)
    assert first.ok and first.ingest.outcome is Outcome.STORED and first.coerced.changed
    calls: list = []
    again = _receive(take, (tmp_path / "ct.dcm").read_bytes(), ds.SOPInstanceUID, calls)
    assert again.ok and again.ingest.outcome is Outcome.IDENTICAL, again
    assert again.coerced == first.coerced
    assert calls == [{}]  # start_finish(): the fsync, as without rules
    (row,) = buf.index.query("SELECT path FROM instances")
    stored = pydicom.dcmread(buf.files.absolute(row["path"]))
    assert stored.InstitutionName == "General Hospital" and len(stored.OriginalAttributesSequence) == 1
    assert list(buf.files.incoming.iterdir()) == []


def test_a_stream_coerced_object_is_indexed_with_its_coerced_values(intake, tmp_path):
    take, buf = intake(Config.model_validate(RULES))
    ds = make_ct(tmp_path / "ct.dcm")
    calls: list = []
    r = _receive(take, (tmp_path / "ct.dcm").read_bytes(), ds.SOPInstanceUID, calls)
    assert r.ok and r.coerced.rules == ("legacy",) and 0x00081030 in r.coerced.changed
    (row,) = buf.index.query("SELECT s.description, p.issuer FROM studies s JOIN patients p ON s.patient_fk = p.id")
    assert row["description"] == "CT HEAD" and row["issuer"] == "HOSP-A"
    ev = intake.events.get_nowait()
    assert ev.kind == "received" and ev.payload.coerced == ("legacy",)


def test_a_rule_that_fails_in_the_stream_refuses_the_object_after_it_is_received(intake, tmp_path):
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "accent", "calling_ae": ["CT1"], "set": {"InstitutionName": "Hôpital"}}]})
    take, buf = intake(cfg)
    make_ct(tmp_path / "ct.dcm")
    with pydicom.dcmread(tmp_path / "ct.dcm") as d:
        if "SpecificCharacterSet" in d:
            del d.SpecificCharacterSet
        d.save_as(tmp_path / "ct.dcm")
    calls: list = []
    r = _receive(take, (tmp_path / "ct.dcm").read_bytes(), d.SOPInstanceUID, calls)
    assert r.refusal is Refusal.COERCION_FAILED and "Specific Character Set" in r.reason
    assert buf.index.query("SELECT COUNT(*) AS n FROM instances")[0]["n"] == 0
    assert list(buf.files.incoming.iterdir()) == []
