"""Retention on its own: which instances may be evicted, in what order, when; never an undelivered one.

The disk is modelled (total fixed, free = total - what the buffer's files take - a chosen "other"
use) so a test can put the buffer under any pressure without filling a real disk; the interop test
(tests/interop/test_retention_tmpfs.py) does the same on a real tmpfs.
"""

from __future__ import annotations

import logging
import shutil

import pytest
from datasets import make_ct

from gateway import config as config_mod
from gateway.buffer.files import DiskReserveError
from gateway.buffer.ingest import FORWARD, Buffer
from gateway.buffer.retention import DAY_S, Retention, retention_summary
from gateway.config import BufferSection
from gateway.events import EventBus
from gateway.part10.attributes import read_attributes

T0 = 1_800_000_000.0


class Disk:
    """A file system of `total` bytes holding the buffer's object files and `other` bytes."""

    def __init__(self, buf: Buffer, total: int, other: int = 0):
        self.buf, self.total, self.other = buf, total, other

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.buf.files.objects.rglob("*.dcm"))

    def __call__(self) -> tuple[int, int]:
        return self.total, max(0, self.total - self.used() - self.other)

    def leave_free(self, n: int) -> None:
        """Fill the rest with other data so that exactly `n` bytes are free now."""
        self.other = self.total - self.used() - n


def _setup(tmp_path, routes=("a", "b"), reserve=0, total=10_000_000, clock=None, **cfg):
    buf = Buffer(tmp_path / "buf", reserve, "replace", lambda attrs, calling: list(routes))
    disk = Disk(buf, total)
    buf.files.disk_usage = disk
    events = EventBus()
    sub = events.subscribe()
    ret = Retention(buf, BufferSection(**cfg), events, **({"clock": clock} if clock else {}))
    return buf, disk, ret, sub


def _ingest(buf: Buffer, tmp_path, n: int, received_at: float = T0, routes=None, **kw) -> tuple[int, bytes]:
    src = tmp_path / f"src{n}.dcm"
    kw.setdefault("rows", 128)
    kw.setdefault("cols", 128)  # 32 KB each
    make_ct(src, seed=n, number=n, **kw)
    tmp = buf.files.new_incoming_path()
    shutil.copyfile(src, tmp)
    if routes is not None:
        buf.router = lambda attrs, calling: list(routes)
    r = buf.ingest(tmp, read_attributes(src), "MOD")
    with buf.index.tx() as cur:
        cur.execute("UPDATE instances SET received_at = ? WHERE id = ?", (received_at, r.instance_id))
    return r.instance_id, src.read_bytes()


def _set_state(buf: Buffer, instance_id: int, target: str, state: str) -> None:
    with buf.index.tx() as cur:
        cur.execute("UPDATE jobs SET state = ? WHERE instance_fk = ? AND target = ?", (state, instance_id, target))


def _deliver(buf: Buffer, instance_id: int, targets=("a", "b")) -> None:
    for t in targets:
        _set_state(buf, instance_id, t, "done")


def _held(buf: Buffer) -> set[int]:
    return {r["id"] for r in buf.index.query("SELECT id FROM instances")}


def _file_of(buf: Buffer, instance_id: int):
    (row,) = buf.index.query("SELECT path FROM instances WHERE id = ?", (instance_id,))
    return buf.files.absolute(row["path"])


# -- the selection rule ------------------------------------------------------------------------

@pytest.mark.parametrize("other_state", ["queued", "in_flight", "committing", "dead"])
def test_only_instances_whose_every_job_is_done_are_evicted(tmp_path, other_state):
    buf, disk, ret, _ = _setup(tmp_path, retention_free_percent=50)
    held, held_bytes = _ingest(buf, tmp_path, 1, received_at=T0)  # the oldest: first in line
    _set_state(buf, held, "a", "done")
    _set_state(buf, held, "b", other_state)
    unrouted, unrouted_bytes = _ingest(buf, tmp_path, 2, received_at=T0 + 1, routes=())
    delivered, _ = _ingest(buf, tmp_path, 3, received_at=T0 + 2, routes=("a", "b"))
    _deliver(buf, delivered)
    disk.leave_free(0)  # far below the high-water mark: everything evictable must go

    swept = ret.sweep()

    assert _held(buf) == {held, unrouted}
    assert swept["low-space"].instances == 1
    # What stays is byte-identical on disk.
    assert _file_of(buf, held).read_bytes() == held_bytes
    assert _file_of(buf, unrouted).read_bytes() == unrouted_bytes
    # Once the last route is done, it is evictable like any other.
    _set_state(buf, held, "b", "done")
    ret.sweep()
    assert _held(buf) == {unrouted}


def test_commitment_pending_holds_the_instance_until_the_report(tmp_path):
    buf, disk, ret, _ = _setup(tmp_path, routes=("pacs",), retention_free_percent=50)
    iid, _ = _ingest(buf, tmp_path, 1)
    (job,) = buf.queue.claim(FORWARD, "pacs", 10)  # sent: the PACS said Success...
    buf.queue.mark_committing([job.id], "1.2.3.4", "pacs", T0 + 3600)  # ...but has not committed
    disk.leave_free(0)
    assert ret.sweep() == {}
    buf.files.reserve_bytes = 1
    with pytest.raises(DiskReserveError):
        buf.files.check_reserve()
    assert _held(buf) == {iid}
    buf.queue.complete([job.id])  # what CommitmentSCU.handle_report does for a committed instance
    ret.sweep()
    assert _held(buf) == set()


def test_oldest_received_first_and_no_more_than_needed(tmp_path):
    buf, disk, ret, _ = _setup(tmp_path, routes=("a",), retention_free_percent=50)
    # Inserted in an order that differs from the received order.
    mid, _ = _ingest(buf, tmp_path, 1, received_at=T0 + 20)
    old, _ = _ingest(buf, tmp_path, 2, received_at=T0 + 10)
    new, _ = _ingest(buf, tmp_path, 3, received_at=T0 + 30)
    for i in (mid, old, new):
        _deliver(buf, i, ("a",))
    size = _file_of(buf, old).stat().st_size
    disk.leave_free(disk.total // 2 - size + 1)  # one object's worth short of the 50 % mark
    swept = ret.sweep()
    assert swept["low-space"].instances == 1
    assert _held(buf) == {mid, new}
    disk.leave_free(disk.total // 2 - 1)
    ret.sweep()
    assert _held(buf) == {new}


# -- the reserve path (A700 only when undelivered fills the disk) -------------------------------

def test_reserve_path_evicts_delivered_before_refusing(tmp_path):
    buf, disk, ret, _ = _setup(tmp_path, routes=("a",), reserve=100_000, retention_free_percent=0)
    delivered = [_ingest(buf, tmp_path, n, received_at=T0 + n)[0] for n in range(1, 4)]
    for i in delivered:
        _deliver(buf, i, ("a",))
    waiting, waiting_bytes = _ingest(buf, tmp_path, 9, received_at=T0)  # older than all, undelivered
    disk.leave_free(50_000)
    buf.files.check_reserve(8_000)  # no DiskReserveError: delivered instances made room
    assert waiting in _held(buf)
    assert _held(buf) & set(delivered), "evicted more than the reserve needed"
    assert disk()[1] >= 100_000
    # Short by more than all delivered instances hold: they all go, then refuse; the undelivered
    # one (the oldest) stays, byte-identical.
    disk.leave_free(0)
    with pytest.raises(DiskReserveError, match="nothing delivered is left to evict"):
        buf.files.check_reserve(8_000)
    assert _held(buf) == {waiting}
    assert _file_of(buf, waiting).read_bytes() == waiting_bytes


def test_reserve_path_meets_the_reserve_beyond_the_sync_bound(tmp_path, monkeypatch):
    from gateway.buffer import retention

    monkeypatch.setattr(retention, "SYNC_MAX_INSTANCES", 1)
    buf, disk, ret, _ = _setup(tmp_path, routes=("a",), reserve=100_000, retention_free_percent=0)
    ids = [_ingest(buf, tmp_path, n, received_at=T0 + n)[0] for n in range(1, 6)]
    for i in ids:
        _deliver(buf, i, ("a",))
    size = _file_of(buf, ids[0]).stat().st_size
    disk.leave_free(100_000 - 3 * size + 1)  # three objects short: more than the bound of one
    buf.files.check_reserve()
    assert _held(buf) == set(ids[3:])


def test_retention_disabled_keeps_everything_and_refuses(tmp_path):
    buf, disk, ret, _ = _setup(tmp_path, routes=("a",), reserve=100_000, retention_enabled=False,
                               retention_free_percent=50, retention_max_age_days=1)
    iid, _ = _ingest(buf, tmp_path, 1)
    _deliver(buf, iid, ("a",))
    disk.leave_free(0)
    assert ret.sweep(now=T0 + 100 * DAY_S) == {}
    with pytest.raises(DiskReserveError, match="retention does not evict"):
        buf.files.check_reserve()
    assert _held(buf) == {iid}


# -- age ------------------------------------------------------------------------------------------

def test_age_limit_with_controlled_time(tmp_path):
    now = [T0]
    buf, disk, ret, _ = _setup(tmp_path, routes=("a",), clock=lambda: now[0], retention_max_age_days=30)
    delivered, _ = _ingest(buf, tmp_path, 1, received_at=T0)
    _deliver(buf, delivered, ("a",))
    younger, _ = _ingest(buf, tmp_path, 2, received_at=T0 + 5 * DAY_S)
    _deliver(buf, younger, ("a",))
    undelivered, _ = _ingest(buf, tmp_path, 3, received_at=T0)
    now[0] = T0 + 29 * DAY_S
    assert ret.sweep() == {}
    now[0] = T0 + 31 * DAY_S
    assert ret.sweep()["age"].instances == 1
    assert _held(buf) == {younger, undelivered}
    now[0] = T0 + 10_000 * DAY_S
    ret.sweep()
    assert _held(buf) == {undelivered}  # never, however old


def test_unrouted_instances_are_kept_unless_their_own_age_limit_is_set(tmp_path):
    buf, disk, ret, _ = _setup(tmp_path, routes=(), retention_free_percent=90, retention_max_age_days=1)
    iid, _ = _ingest(buf, tmp_path, 1, received_at=T0)
    disk.leave_free(0)
    assert ret.sweep(now=T0 + 10_000 * DAY_S) == {}
    assert _held(buf) == {iid}
    ret.config = BufferSection(retention_unrouted_max_age_days=7)
    assert ret.sweep(now=T0 + 6 * DAY_S) == {}
    assert ret.sweep(now=T0 + 8 * DAY_S)["unrouted-age"].instances == 1
    assert _held(buf) == set()


# -- delete_when_done, crash safety, what is left in the index ------------------------------------

def test_delete_when_done_evicts_at_once_and_the_sweep_catches_a_missed_one(tmp_path):
    buf, disk, ret, sub = _setup(tmp_path, routes=("a", "b"), delete_when_done=True)
    one, _ = _ingest(buf, tmp_path, 1)
    two, _ = _ingest(buf, tmp_path, 2)
    _set_state(buf, one, "a", "done")
    assert buf.release_if_done([one]) == 0  # route b still pending
    _deliver(buf, one)
    assert buf.release_if_done([one]) == 1
    _deliver(buf, two)  # done, but the callback never ran (a crash in between)
    assert ret.sweep()["delete-when-done"].instances == 1
    assert _held(buf) == set()
    assert list(buf.files.objects.rglob("*.dcm")) == []


def test_index_first_then_the_file(tmp_path):
    buf, disk, ret, _ = _setup(tmp_path, routes=("a",), retention_free_percent=50)
    iid, _ = _ingest(buf, tmp_path, 1)
    _deliver(buf, iid, ("a",))
    path = _file_of(buf, iid)
    disk.leave_free(0)

    def crash(rel):
        raise KeyboardInterrupt("power cut between the index commit and the unlink")

    buf.files.remove = crash
    with pytest.raises(KeyboardInterrupt):
        ret.sweep()
    assert _held(buf) == set() and path.exists()  # an orphan file, never a dangling row
    del buf.files.remove
    assert buf.recover()["orphan_files"] == 1
    assert not path.exists()


def test_a_failing_sweep_is_logged_not_raised(tmp_path, caplog):
    buf, disk, ret, _ = _setup(tmp_path, routes=("a",), retention_free_percent=50)
    iid, _ = _ingest(buf, tmp_path, 1)
    _deliver(buf, iid, ("a",))
    disk.leave_free(0)
    buf.index.close()  # e.g. the index became unreadable
    with caplog.at_level(logging.ERROR, logger="gateway.buffer.retention"):
        assert ret.sweep() == {}
    assert "retention sweep failed" in caplog.text


def test_emptied_series_studies_and_patients_leave_the_index(tmp_path):
    buf, disk, ret, _ = _setup(tmp_path, routes=("a",), retention_free_percent=50)
    a, _ = _ingest(buf, tmp_path, 1, patient_id="P-A")
    b, _ = _ingest(buf, tmp_path, 2, patient_id="P-B", study_uid="1.2.826.0.1.9", series_uid="1.2.826.0.1.9.1")
    c, _ = _ingest(buf, tmp_path, 3, patient_id="P-B", study_uid="1.2.826.0.1.9", series_uid="1.2.826.0.1.9.1")
    _deliver(buf, a, ("a",))
    _deliver(buf, b, ("a",))
    disk.leave_free(0)
    ret.sweep()
    assert _held(buf) == {c}
    assert [r["patient_id"] for r in buf.index.query("SELECT patient_id FROM patients")] == ["P-B"]
    assert len(buf.index.query("SELECT id FROM studies")) == 1
    assert len(buf.index.query("SELECT id FROM series")) == 1


def test_one_log_line_and_one_event_per_batch_without_patient_data(tmp_path, caplog):
    buf, disk, ret, sub = _setup(tmp_path, routes=("a",), retention_free_percent=50)
    ids = [_ingest(buf, tmp_path, n)[0] for n in range(1, 4)]
    for i in ids:
        _deliver(buf, i, ("a",))
    size = sum(_file_of(buf, i).stat().st_size for i in ids)
    disk.leave_free(0)
    with caplog.at_level(logging.INFO, logger="gateway.buffer.retention"):
        ret.sweep()
    (line,) = [r for r in caplog.records if r.name == "gateway.buffer.retention"]
    msg = line.getMessage()
    assert "evicted 3 delivered instances" in msg and str(size) in msg
    assert "Test^Patient" not in msg and "PID" not in msg
    ev = sub.get_nowait()
    assert (ev.kind, ev.data["reason"], ev.data["instances"], ev.data["bytes"]) == ("evicted", "low-space", 3, size)


def test_summary_for_status(tmp_path):
    buf, disk, ret, _ = _setup(tmp_path, routes=("a",), reserve=1000, retention_free_percent=20)
    delivered, d_bytes = _ingest(buf, tmp_path, 1, received_at=T0)
    _deliver(buf, delivered, ("a",))
    waiting, w_bytes = _ingest(buf, tmp_path, 2, received_at=T0 + 1)
    _set_state(buf, waiting, "a", "dead")
    unrouted, u_bytes = _ingest(buf, tmp_path, 3, received_at=T0 + 2, routes=())
    cfg = config_mod.load(None, ["buffer.retention_free_percent=20"]).config
    s = retention_summary(buf, cfg)
    assert s["held"] == {"instances": 3, "bytes": len(d_bytes) + len(w_bytes) + len(u_bytes)}
    assert s["evictable"] == {"instances": 1, "bytes": len(d_bytes)}
    assert s["undelivered"]["instances"] == 1 and s["undelivered"]["bytes"] == len(w_bytes)
    assert s["unrouted"]["instances"] == 1 and s["unrouted"]["oldest_received_at"] == T0 + 2
    assert s["policy"]["high_water_bytes"] == disk.total // 5
    assert s["policy"]["enabled"] and s["disk"]["total_bytes"] == disk.total


# -- config -------------------------------------------------------------------------------------

def test_default_config_evicts_delivered_instances():
    shipped = config_mod.load(config_mod.Path(__file__).resolve().parents[2] / "config" / "gateway.toml")
    for b in (shipped.config.buffer, BufferSection()):
        assert b.retention_enabled and b.retention_free_percent > 0
        assert b.retention_unrouted_max_age_days == 0  # unrouted: kept unless a site says otherwise


@pytest.mark.parametrize("override,key", [
    ("buffer.retention_free_percent=91", "buffer.retention_free_percent"),
    ("buffer.retention_free_percent=-1", "buffer.retention_free_percent"),
    ("buffer.retention_max_age_days=-1", "buffer.retention_max_age_days"),
    ("buffer.retention_max_age_days=1.5", "buffer.retention_max_age_days"),
    ("buffer.retention_unrouted_max_age_days=\"7\"", "buffer.retention_unrouted_max_age_days"),
    ("buffer.retention_enabled=\"yes\"", "buffer.retention_enabled"),
    ("buffer.retention_free_mb=100", "buffer.retention_free_mb"),  # unknown key
])
def test_retention_keys_are_typed_and_bounded(override, key):
    with pytest.raises(config_mod.ConfigError) as exc:
        config_mod.load(None, [override])
    assert len(exc.value.problems) == 1 and exc.value.problems[0].startswith(key + ":"), exc.value.problems


# -- media exports (issue 8): a medium is not the archive ------------------------------------------

def _export_job(buf: Buffer, instance_ids: list[int], state: str) -> int:
    with buf.index.tx() as cur:
        job_id = buf.queue.enqueue_in(cur, "export", "cd", '{"study_uids": []}', T0)
        buf.queue.link_in(cur, job_id, instance_ids)
        cur.execute("UPDATE jobs SET state = ? WHERE id = ?", (state, job_id))
    return job_id


def test_an_export_protects_but_never_delivers(tmp_path):
    """An unrouted instance written to a medium stays (its only copy may be the buffer's); a routed
    one leaves only when its forwards AND its exports are done."""
    buf, disk, ret, _ = _setup(tmp_path, routes=(), retention_free_percent=90, delete_when_done=True)
    unrouted, _ = _ingest(buf, tmp_path, 1)
    routed, _ = _ingest(buf, tmp_path, 2, routes=("a",))
    job = _export_job(buf, [unrouted, routed], "queued")
    disk.leave_free(0)
    _deliver(buf, routed, targets=("a",))
    assert ret.sweep() == {} and _held(buf) == {unrouted, routed}  # the export still needs both
    with buf.index.tx() as cur:
        cur.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (job,))
    swept = ret.sweep()
    assert sum(e.instances for e in swept.values()) == 1 and _held(buf) == {unrouted}
    # ...and an unrouted one's own age limit waits for its export too.
    ret.config = BufferSection(retention_unrouted_max_age_days=1)
    _export_job(buf, [unrouted], "dead")
    assert ret.sweep(now=T0 + 10 * DAY_S) == {} and _held(buf) == {unrouted}
