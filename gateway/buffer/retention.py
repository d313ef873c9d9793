"""Retention: which received instances may leave the buffer, in what order, and when.

The rule, in one place for every path that deletes a received instance:

- An instance is *delivered* when at least one forward job references it (a job_items link) and
  every job that references it is done: forwarded to every route it was queued for, committed
  where the destination asks for storage commitment (such a job stays 'committing' until the PACS
  reports), and written to every medium an export was queued for. A job in any other state
  (queued, in_flight, committing, dead), of any kind, makes it undelivered. Only a forward makes an
  instance delivered: a copy on a medium handed to a patient is not the archive's copy, so nothing
  leaves the buffer because it went to a medium (issue 8). Print jobs reference films, not
  instances.
- Only delivered instances are evicted, oldest received first. Undelivered ones never are, so a
  C-STORE is refused with A700 only when undelivered instances alone fill the disk.
- Instances no route matched have no forward job: they were never to be delivered anywhere, so
  "delivered" does not apply and they are kept. The gateway may hold the only copy (a modality
  may delete its own after Success), and a route mistake found weeks later must still be fixable
  by re-forwarding; losing that silently is worse than a full disk that `status` explains. A site
  whose routes filter on purpose sets buffer.retention_unrouted_max_age_days.

When:

- delete_when_done: at once, when the last job of an instance is done (Buffer.release_if_done from
  the forwarder and the commitment report), and in every sweep for any the callback missed (a
  crash between a job's done and its delete).
- low space: every sweep (the service's housekeeping tick) evicts until free space is back over
  the high-water mark, max(reserve_mb, retention_free_percent of the file system).
- at the reserve: a C-STORE that finds free space under reserve_mb evicts synchronously first
  (toward the high-water mark, bounded) and is refused only if nothing delivered is left.
- age: every sweep evicts delivered instances received more than retention_max_age_days ago.

Index first, then the file: the rows go in one committed transaction, then the files are unlinked.
A crash in between leaves orphan files, which Buffer.recover removes, never an index row pointing
at nothing. Series, studies and patients emptied by an eviction go with it, so no patient data
outlives its images in the index.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from gateway.event_kinds import InstancesEvicted
from gateway.events import EventBus

if TYPE_CHECKING:
    from gateway.buffer.ingest import Buffer
    from gateway.config import BufferSection, Config

log = logging.getLogger("gateway.buffer.retention")

DAY_S = 86400.0
# A C-STORE waits while the reserve path evicts: beyond the reserve itself (which is always met
# if delivered instances allow), it frees at most this many more toward the high-water mark and
# leaves the rest to the next sweep.
SYNC_MAX_INSTANCES = 200
# One transaction, one INFO line and one event per batch.
BATCH = 1000
# SQLite's limit on bound parameters is 32766 (999 on old builds): chunk id lists well below it.
_CHUNK = 500

# Which jobs need an instance is read from job_items (migration 2), never from jobs.instance_fk:
# a job may need many instances (a media export, a C-MOVE), and each of them is protected until
# that job is done.
_ROUTED = ("EXISTS (SELECT 1 FROM job_items ji JOIN jobs j ON j.id = ji.job_id"
           " WHERE ji.instance_fk = i.id AND j.kind = 'forward')")
_ALL_DONE = ("NOT EXISTS (SELECT 1 FROM job_items ji JOIN jobs j ON j.id = ji.job_id"
             " WHERE ji.instance_fk = i.id AND j.state != 'done')")
DELIVERED = f"({_ROUTED} AND {_ALL_DONE})"
# Unrouted and not needed by any job (an export still to write protects it like any other job).
UNROUTED = f"(NOT {_ROUTED} AND {_ALL_DONE})"


@dataclass(frozen=True)
class Evicted:
    """What one eviction removed."""

    instances: int = 0
    bytes: int = 0

    def __add__(self, other: "Evicted") -> "Evicted":
        return Evicted(self.instances + other.instances, self.bytes + other.bytes)


def _chunks(items: list, n: int = _CHUNK):
    for k in range(0, len(items), n):
        yield items[k:k + n]


def evict(buffer: "Buffer", reason: str, *, where: str = DELIVERED, ids: list[int] | None = None,
          received_before: float | None = None, bytes_wanted: int | None = None,
          limit: int = BATCH) -> Evicted:
    """Evict up to `limit` instances matching `where` (delivered, by default), oldest received
    first, stopping once `bytes_wanted` are freed. `ids`: only among these (every one that
    matches; `bytes_wanted` does not apply). One transaction per batch; the files are unlinked
    after it commits. Tells `buffer.evicted` when anything went."""
    if ids is not None:
        total = Evicted()
        for part in _chunks(list(ids)):
            total += _evict_one_batch(buffer, reason, where, part, received_before, None, max(limit, len(part)))
        return total
    return _evict_one_batch(buffer, reason, where, None, received_before, bytes_wanted, limit)


def _evict_one_batch(buffer, reason, where, ids, received_before, bytes_wanted, limit) -> Evicted:
    conds, params = [where], []
    if ids is not None:
        conds.append(f"i.id IN ({','.join('?' * len(ids))})")
        params.extend(ids)
    if received_before is not None:
        conds.append("i.received_at < ?")
        params.append(received_before)
    with buffer.index.tx() as cur:
        if where == DELIVERED and cur.execute("SELECT 1 FROM jobs WHERE state = 'done' LIMIT 1").fetchone() is None:
            return Evicted()
        rows = cur.execute(
            f"SELECT i.id, i.path, i.size, i.series_fk FROM instances i WHERE {' AND '.join(conds)}"
            " ORDER BY i.received_at, i.id LIMIT ?",
            (*params, limit),
        ).fetchall()
        if bytes_wanted is not None:
            chosen, freed = [], 0
            for r in rows:
                if freed >= bytes_wanted:
                    break
                chosen.append(r)
                freed += r["size"]
            rows = chosen
        if not rows:
            return Evicted()
        _drop_jobs_of(cur, [r["id"] for r in rows])
        cur.executemany("DELETE FROM instances WHERE id = ?", [(r["id"],) for r in rows])
        _drop_empty_hierarchy(cur, sorted({r["series_fk"] for r in rows}))
    for r in rows:
        buffer.files.remove(r["path"])
    result = Evicted(len(rows), sum(r["size"] for r in rows))
    buffer.evicted(reason, result)
    return result


def _drop_jobs_of(cur: sqlite3.Cursor, instance_ids: list[int]) -> None:
    """The evicted instances' links, then the jobs left with nothing to link (all of them done, or
    the instance would not have been chosen). A job that still links instances kept in the buffer
    stays: its record outlives the first file it no longer needs. The database refuses to delete
    an instance a job still links (job_items has no cascade on instances), so this runs first."""
    params = [(i,) for i in instance_ids]
    jobs = {r[0] for part in _chunks(instance_ids) for r in cur.execute(
        f"SELECT DISTINCT job_id FROM job_items WHERE instance_fk IN ({','.join('?' * len(part))})", part)}
    cur.executemany("DELETE FROM job_items WHERE instance_fk = ?", params)
    cur.executemany("DELETE FROM jobs WHERE id = ? AND NOT EXISTS"
                    " (SELECT 1 FROM job_items WHERE job_id = jobs.id)", [(j,) for j in sorted(jobs)])
    # jobs.instance_fk references instances too: a job naming an evicted instance cannot outlive it.
    cur.executemany("DELETE FROM jobs WHERE instance_fk = ?", params)


def _drop_empty_hierarchy(cur: sqlite3.Cursor, series_ids: list[int]) -> None:
    for part in _chunks(series_ids):
        marks = ",".join("?" * len(part))
        studies = [r[0] for r in cur.execute(f"SELECT DISTINCT study_fk FROM series WHERE id IN ({marks})", part)]
        cur.execute(f"DELETE FROM series WHERE id IN ({marks})"
                    " AND NOT EXISTS (SELECT 1 FROM instances WHERE series_fk = series.id)", part)
        for sp in _chunks(studies):
            smarks = ",".join("?" * len(sp))
            patients = [r[0] for r in cur.execute(
                f"SELECT DISTINCT patient_fk FROM studies WHERE id IN ({smarks})", sp)]
            cur.execute(f"DELETE FROM studies WHERE id IN ({smarks})"
                        " AND NOT EXISTS (SELECT 1 FROM series WHERE study_fk = studies.id)", sp)
            for pp in _chunks(patients):
                pmarks = ",".join("?" * len(pp))
                cur.execute(f"DELETE FROM patients WHERE id IN ({pmarks})"
                            " AND NOT EXISTS (SELECT 1 FROM studies WHERE patient_fk = patients.id)", pp)


class Retention:
    """The buffer's retention policy, running in the service.

    Constructing it hooks it into the buffer: every eviction (including delete_when_done's) is
    logged and published as an "evicted" event, and, when retention is enabled, a C-STORE that
    finds free space under the reserve evicts delivered instances before it is refused.
    `clock` is injectable so tests can age instances without waiting.
    """

    def __init__(self, buffer: "Buffer", config: "BufferSection", events: EventBus | None = None,
                 clock: Callable[[], float] = time.time):
        self.buffer = buffer
        self.config = config
        self.events = events
        self.clock = clock
        # One evictor at a time: concurrent C-STOREs at the reserve must not each evict the
        # whole deficit.
        self._lock = threading.Lock()
        buffer.evicted = self._report
        if config.retention_enabled:
            buffer.files.make_room = self.make_room

    def high_water_bytes(self, total: int | None = None) -> int:
        """Free space the sweep restores: the reserve, or the configured share if larger."""
        if total is None:
            total = self.buffer.files.disk_usage()[0]
        return max(self.buffer.files.reserve_bytes, total * self.config.retention_free_percent // 100)

    def make_room(self, needed: int) -> int:
        """The reserve path (FileStore.check_reserve): free space is under the reserve. Evict
        delivered instances until the reserve is met (however many that takes), then on toward
        the high-water mark, at most SYNC_MAX_INSTANCES more. Returns the bytes freed.

        `needed` is what the caller saw missing; it is measured again here, under the lock,
        because a concurrent C-STORE may have made the room meanwhile."""
        with self._lock:
            total, free = self.buffer.files.disk_usage()
            reserve = self.buffer.files.reserve_bytes
            if free >= reserve:
                return 0  # another thread made room while this one waited
            got = evict(self.buffer, "reserve", bytes_wanted=self.high_water_bytes(total) - free,
                        limit=SYNC_MAX_INSTANCES)
            while free + got.bytes < reserve:
                more = evict(self.buffer, "reserve", bytes_wanted=reserve - free - got.bytes)
                if not more.instances:
                    break
                got += more
            return got.bytes

    def sweep(self, now: float | None = None) -> dict[str, Evicted]:
        """Housekeeping: delete_when_done leftovers, age limits, the high-water mark. Returns what
        went, per reason. Errors are logged, never raised: the next tick tries again."""
        now = self.clock() if now is None else now
        cfg = self.config
        out: dict[str, Evicted] = {}
        with self._lock:
            try:
                if cfg.delete_when_done:
                    out["delete-when-done"] = self._until_none("delete-when-done")
                if cfg.retention_enabled and cfg.retention_max_age_days:
                    out["age"] = self._until_none("age", received_before=now - cfg.retention_max_age_days * DAY_S)
                if cfg.retention_enabled and cfg.retention_unrouted_max_age_days:
                    out["unrouted-age"] = self._until_none(
                        "unrouted-age", where=UNROUTED,
                        received_before=now - cfg.retention_unrouted_max_age_days * DAY_S)
                if cfg.retention_enabled:
                    total, free = self.buffer.files.disk_usage()
                    short = self.high_water_bytes(total) - free
                    if short > 0:
                        out["low-space"] = self._until_none("low-space", bytes_wanted=short)
            except Exception:
                # The housekeeping loop also pets the watchdog: a failing sweep (a busy or
                # damaged index, an unreadable folder) must not stop it.
                log.exception("retention sweep failed; trying again at the next tick")
        return {k: v for k, v in out.items() if v.instances}

    def _until_none(self, reason: str, where: str = DELIVERED, received_before: float | None = None,
                    bytes_wanted: int | None = None) -> Evicted:
        got = Evicted()
        while True:
            left = None if bytes_wanted is None else bytes_wanted - got.bytes
            if left is not None and left <= 0:
                return got
            batch = evict(self.buffer, reason, where=where, received_before=received_before, bytes_wanted=left)
            if not batch.instances:
                return got
            got += batch

    def _report(self, reason: str, evicted: Evicted) -> None:
        free = self.buffer.files.free_bytes()
        # delete_when_done's per-forward release would log a line for every image sent; the
        # forwarder already logs what it sent, so that one path is DEBUG.
        level = logging.DEBUG if reason == "done" else logging.INFO
        log.log(level, "retention (%s): evicted %d delivered instances, %d bytes; %d MB free",
                reason, evicted.instances, evicted.bytes, free // (1024 * 1024))
        if self.events is not None:
            self.events.publish(InstancesEvicted(reason=reason, instances=evicted.instances, bytes=evicted.bytes,
                                                 free_bytes=free))


def retention_summary(buffer: "Buffer", config: "Config | BufferSection") -> dict:
    """What the buffer holds, by retention class, and the policy, for `status`.

    held = everything indexed; evictable = what the policy may evict now or at the next sweep
    (delivered instances when retention or delete_when_done is on, plus unrouted ones past their
    age limit); undelivered = a job still queued, in flight, committing or dead (never evicted);
    unrouted = no route matched (kept unless retention_unrouted_max_age_days).
    """
    cfg = getattr(config, "buffer", config)
    rows = buffer.index.query(
        f"SELECT CASE WHEN {UNROUTED} THEN 'unrouted' WHEN {DELIVERED} THEN 'delivered'"
        " ELSE 'undelivered' END AS cls, COUNT(*) AS n, COALESCE(SUM(i.size), 0) AS b,"
        " MIN(i.received_at) AS oldest FROM instances i GROUP BY cls"
    )
    by = {r["cls"]: {"instances": r["n"], "bytes": r["b"], "oldest_received_at": r["oldest"]} for r in rows}
    empty = {"instances": 0, "bytes": 0, "oldest_received_at": None}
    delivered, undelivered, unrouted = (by.get(k, dict(empty)) for k in ("delivered", "undelivered", "unrouted"))
    evictable = {"instances": 0, "bytes": 0}
    if cfg.retention_enabled or cfg.delete_when_done:
        evictable = {"instances": delivered["instances"], "bytes": delivered["bytes"]}
    if cfg.retention_enabled and cfg.retention_unrouted_max_age_days:
        cutoff = time.time() - cfg.retention_unrouted_max_age_days * DAY_S
        (aged,) = buffer.index.query(
            f"SELECT COUNT(*) AS n, COALESCE(SUM(i.size), 0) AS b FROM instances i"
            f" WHERE {UNROUTED} AND i.received_at < ?", (cutoff,))
        evictable = {"instances": evictable["instances"] + aged["n"], "bytes": evictable["bytes"] + aged["b"]}
    total, free = buffer.files.disk_usage()
    reserve = buffer.files.reserve_bytes
    return {
        "policy": {
            "enabled": cfg.retention_enabled,
            "delete_when_done": cfg.delete_when_done,
            "free_percent": cfg.retention_free_percent,
            "reserve_bytes": reserve,
            "high_water_bytes": max(reserve, total * cfg.retention_free_percent // 100),
            "max_age_days": cfg.retention_max_age_days,
            "unrouted_max_age_days": cfg.retention_unrouted_max_age_days,
        },
        "disk": {"total_bytes": total, "free_bytes": free},
        "held": {"instances": sum(c["instances"] for c in (delivered, undelivered, unrouted)),
                 "bytes": sum(c["bytes"] for c in (delivered, undelivered, unrouted))},
        "delivered": delivered,
        "evictable": evictable,
        "undelivered": undelivered,
        "unrouted": unrouted,
    }
