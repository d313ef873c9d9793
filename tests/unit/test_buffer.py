"""The buffer on its own: durable placement, index, duplicates, recovery, the job queue."""

from __future__ import annotations

import shutil
import time

import pytest
from datasets import make_ct

from gateway.buffer.files import DiskReserveError
from gateway.buffer.ingest import FORWARD, Buffer, Outcome
from gateway.part10.attributes import InvalidDataset, MalformedDataset, read_attributes


def _buffer(tmp_path, routes=("pacs",), policy="replace", reserve=0) -> Buffer:
    return Buffer(tmp_path / "buf", reserve, policy, lambda attrs, calling: list(routes))


def _incoming_copy(buf: Buffer, src) -> object:
    tmp = buf.files.new_incoming_path()
    shutil.copyfile(src, tmp)
    return tmp


def _ingest(buf, src, calling="MOD"):
    return buf.ingest(_incoming_copy(buf, src), read_attributes(src), calling)


def test_ingest_places_indexes_and_queues(tmp_path):
    buf = _buffer(tmp_path, routes=("a", "b"))
    src = tmp_path / "x.dcm"
    ds = make_ct(src)
    r = _ingest(buf, src)
    assert r.outcome is Outcome.STORED and r.routes == ("a", "b")
    (row,) = buf.index.query("SELECT sop_uid, path, transfer_syntax FROM instances")
    assert row["sop_uid"] == ds.SOPInstanceUID
    assert (buf.files.root / row["path"]).read_bytes() == src.read_bytes()
    # The path is the buffer's own name, never a DICOM value.
    assert ds.SOPInstanceUID not in row["path"] and row["path"].startswith("objects/")
    assert sorted(j.target for j in buf.queue.list()) == ["a", "b"]
    assert list(buf.files.incoming.iterdir()) == []


def test_identical_resend_is_not_queued_again(tmp_path):
    buf = _buffer(tmp_path)
    src = tmp_path / "x.dcm"
    make_ct(src)
    assert _ingest(buf, src).outcome is Outcome.STORED
    assert _ingest(buf, src).outcome is Outcome.IDENTICAL
    assert len(buf.queue.list()) == 1
    assert len(list(buf.files.objects.rglob("*.dcm"))) == 1


def test_the_same_data_set_under_another_file_meta_is_the_same_instance(tmp_path):
    # A PACS returning what the modality sent, or a disc's copy: the file meta (Source AE, the
    # writer's implementation) differs, the data set does not -> IDENTICAL, no false warning.
    from gateway.part10 import file_meta
    from gateway.part10.structure import file_meta as meta_end

    buf = _buffer(tmp_path)
    src = tmp_path / "x.dcm"
    ds = make_ct(src)
    assert _ingest(buf, src).outcome is Outcome.STORED
    start, meta = meta_end(src.read_bytes())
    body = src.read_bytes()[start:]
    other_meta = tmp_path / "from-pacs.dcm"
    other_meta.write_bytes(file_meta.encode(ds.SOPClassUID, ds.SOPInstanceUID, meta["transfer_syntax"],
                                            "SOME-OTHER-AE") + body)
    assert other_meta.read_bytes() != src.read_bytes()
    assert _ingest(buf, other_meta, calling="PACS").outcome is Outcome.IDENTICAL
    # Another transfer syntax in the meta, or one byte of the data set changed: not the same.
    other_ts = tmp_path / "other-ts.dcm"
    other_ts.write_bytes(file_meta.encode(ds.SOPClassUID, ds.SOPInstanceUID, "1.2.840.10008.1.2.1.99") + body)
    changed = tmp_path / "changed.dcm"
    changed.write_bytes(src.read_bytes()[:-1] + bytes([src.read_bytes()[-1] ^ 1]))
    for path in (other_ts, changed):
        assert buf._duplicate_outcome({"path": buf.index.query("SELECT path FROM instances")[0]["path"]},
                                      path) is Outcome.REPLACED, path.name


def test_replacement_after_forwarding_is_forwarded_again(tmp_path):
    buf = _buffer(tmp_path)
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    ds = make_ct(a, seed=1)
    make_ct(b, sop_uid=ds.SOPInstanceUID, study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID, seed=2)
    _ingest(buf, a)
    (job,) = buf.queue.claim(FORWARD, "pacs", 10)
    buf.queue.complete([job.id])
    assert _ingest(buf, b).outcome is Outcome.REPLACED
    states = sorted(j.state for j in buf.queue.list(("queued", "done")))
    assert states == ["done", "queued"]  # the corrected object goes out; the first stays done
    (row,) = buf.index.query("SELECT path, version FROM instances")
    assert (buf.files.root / row["path"]).read_bytes() == b.read_bytes() and row["version"] == 2


def test_keep_first_policy_discards_the_newcomer(tmp_path):
    buf = _buffer(tmp_path, policy="keep-first")
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    ds = make_ct(a, seed=1)
    make_ct(b, sop_uid=ds.SOPInstanceUID, study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID, seed=2)
    _ingest(buf, a)
    assert _ingest(buf, b).outcome is Outcome.KEPT_FIRST
    (row,) = buf.index.query("SELECT path FROM instances")
    assert (buf.files.root / row["path"]).read_bytes() == a.read_bytes()
    assert len(list(buf.files.objects.rglob("*.dcm"))) == 1


def test_a_copy_coming_back_from_an_archive_never_replaces_the_stored_one(tmp_path):
    # A retrieve from the PACS of what the box holds: the PACS's copy may be older, or lack this
    # box's coercion; under "replace" it must not undo the stored object (the modality still may).
    buf = Buffer(tmp_path / "buf", 0, "replace", lambda attrs, calling: [], frozenset({"PACS"}))
    a, b, c = tmp_path / "a.dcm", tmp_path / "b.dcm", tmp_path / "c.dcm"
    ds = make_ct(a, seed=1)
    for path, seed in ((b, 2), (c, 3)):
        make_ct(path, sop_uid=ds.SOPInstanceUID, study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID,
                seed=seed)
    _ingest(buf, a, calling="CT1")
    assert _ingest(buf, b, calling="PACS").outcome is Outcome.KEPT_FIRST
    (row,) = buf.index.query("SELECT path FROM instances")
    assert (buf.files.root / row["path"]).read_bytes() == a.read_bytes()
    assert _ingest(buf, c, calling="CT1").outcome is Outcome.REPLACED


def test_reserve_refuses_and_removes_the_incoming_file(tmp_path):
    buf = _buffer(tmp_path, reserve=1 << 60)
    src = tmp_path / "x.dcm"
    make_ct(src)
    tmp = _incoming_copy(buf, src)
    with pytest.raises(DiskReserveError):
        buf.ingest(tmp, read_attributes(src), "MOD")
    assert not tmp.exists() and list(buf.files.objects.rglob("*")) == []


def test_recovery_removes_partials_and_orphans_and_requeues_in_flight(tmp_path):
    buf = _buffer(tmp_path)
    src = tmp_path / "x.dcm"
    make_ct(src)
    _ingest(buf, src)
    buf.queue.claim(FORWARD, "pacs", 10)  # in flight when the power went
    (buf.files.incoming / "half.part").write_bytes(b"partial")
    orphan_dir = buf.files.objects / "20260101"
    orphan_dir.mkdir()
    (orphan_dir / "orphan.dcm").write_bytes(b"renamed but never indexed")
    buf.close()
    buf = _buffer(tmp_path)
    assert buf.recover() == {"partial_files": 1, "orphan_files": 1, "requeued_jobs": 1}
    (job,) = buf.queue.list()
    assert job.state == "queued" and job.last_error == "interrupted by a restart"
    assert len(list(buf.files.objects.rglob("*.dcm"))) == 1


def test_queue_backoff_dead_letter_retry(tmp_path):
    buf = _buffer(tmp_path)
    src = tmp_path / "x.dcm"
    make_ct(src)
    _ingest(buf, src)
    (job,) = buf.queue.claim(FORWARD, "pacs", 10)
    assert job.attempts == 1
    buf.queue.fail(job.id, "status 0xA700", time.time() + 3600)
    assert buf.queue.claim(FORWARD, "pacs", 10) == []  # not due yet
    assert buf.queue.next_due(FORWARD, "pacs") > time.time()
    buf.queue.dead_letter([job.id], "operator gave up")
    (dead,) = buf.queue.list(("dead",))
    assert dead.last_error == "operator gave up"
    assert buf.queue.retry() == 1
    (again,) = buf.queue.claim(FORWARD, "pacs", 10)
    assert again.id == job.id and again.attempts == 1  # a fresh count after an operator retry


def test_delete_when_done_only_after_every_route(tmp_path):
    buf = _buffer(tmp_path, routes=("a", "b"))
    src = tmp_path / "x.dcm"
    make_ct(src)
    r = _ingest(buf, src)
    (ja,) = buf.queue.claim(FORWARD, "a", 10)
    buf.queue.complete([ja.id])
    assert buf.release_if_done([r.instance_id]) == 0  # route b still pending
    (jb,) = buf.queue.claim(FORWARD, "b", 10)
    buf.queue.complete([jb.id])
    assert buf.release_if_done([r.instance_id]) == 1
    assert list(buf.files.objects.rglob("*.dcm")) == []
    assert buf.index.query("SELECT COUNT(*) AS n FROM instances")[0]["n"] == 0


def test_attribute_errors(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"garbage" * 10)
    with pytest.raises(MalformedDataset):
        read_attributes(bad)
    src = tmp_path / "x.dcm"
    make_ct(src, study_uid="1.2.3.abc")
    with pytest.raises(InvalidDataset, match="StudyInstanceUID is not a valid UID"):
        read_attributes(src)


def test_studies_says_a_copy_from_the_pacs_is_not_forwarded_not_that_no_route_matched(tmp_path, capsys):
    # A study retrieved from the PACS has no forward job by design (routing never sends it back).
    from gateway.operator_views import show_studies

    buf = _buffer(tmp_path, routes=())
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    make_ct(a, seed=1)
    make_ct(b, seed=2)
    _ingest(buf, a, calling="TESTPACS")
    _ingest(buf, b, calling="MOD")
    assert show_studies(buf, frozenset({"TESTPACS"})) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.strip() for line in out[2::2]] == ["a copy from TESTPACS: not forwarded",
                                                    "no destination (no route matched)"]
