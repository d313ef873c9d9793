"""Taking an instance into the buffer: place the file durably, index it, queue its routes.

Every received object (C-STORE, media import, capture) comes here through the Intake (intake.py),
which does the checks first. It returns only after the file is fsynced and in place and the index
transaction is committed; the caller may then say Success.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gateway.buffer import lock as buffer_lock
from gateway.buffer.files import FileStore
from gateway.buffer.index import Index
from gateway.buffer.query_columns import fold_pn, study_datetime
from gateway.buffer.queue import JobQueue
from gateway.buffer.retention import evict
from gateway.buffer.source import Source
from gateway.part10.attributes import InstanceAttributes
from gateway.part10.compare import same_data_set

log = logging.getLogger("gateway.buffer")

FORWARD = "forward"

Router = Callable[[InstanceAttributes, Source], list[str]]


class Outcome(enum.Enum):
    STORED = "stored"
    REPLACED = "replaced"  # same SOP Instance UID, different content, later one wins
    IDENTICAL = "identical"  # same SOP Instance UID, same bytes: nothing to do
    KEPT_FIRST = "kept-first"  # same UID, different content, policy keeps the first


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    instance_id: int
    routes: tuple[str, ...]


class Buffer:
    """`archive_titles`: the AE titles of the archives this box forwards to (the destinations). An
    instance coming back from one of them (a Query/Retrieve of what the box already holds) never
    replaces the stored copy, whatever `duplicate_policy` says: the archive may hold an older
    version, or one without this box's attribute coercion, and the box would silently undo the
    coercion (keep-first, as the new-user trial of Q/R found)."""

    def __init__(self, root: Path, reserve_bytes: int, duplicate_policy: str, router: Router,
                 archive_titles: frozenset[str] = frozenset()):
        self.files = FileStore(root, reserve_bytes)
        self.index = Index(root / "index.sqlite")
        self.queue = JobQueue(self.index)
        self.duplicate_policy = duplicate_policy
        self.router = router
        self.archive_titles = archive_titles
        # Told of every eviction batch (reason, retention.Evicted); Retention sets it to log and
        # publish. A bare Buffer (tools, tests) evicts silently.
        self.evicted: Callable[[str, object], None] = lambda reason, evicted: None

    def recover(self) -> dict[str, int]:
        """Start-up after any stop, clean or not. Idempotent. The file cleaning (partial files,
        files no index row names) is skipped while another process writes into the buffer beside
        this one (lock.writer: `dicom-gateway import`), and done at the next start."""
        cleaning = buffer_lock.no_writers(self.files.root)
        if cleaning is None:
            partial = orphans = 0
            log.warning("another process (an import) is writing into the buffer: partial and unindexed"
                        " files are left for the next start to clean")
        else:
            try:
                partial = self.files.clean_incoming()
                known = {r["path"] for r in self.index.query("SELECT path FROM instances")}
                orphans = self.files.remove_orphans(known)
            finally:
                cleaning.close()
        requeued = self.queue.recover()
        return {"partial_files": partial, "orphan_files": orphans, "requeued_jobs": requeued}

    def from_archive(self, source: Source) -> bool:
        """`source` is one of the archives (archive_titles): its copy never replaces a stored one."""
        return source.is_ae and source.name.strip() in self.archive_titles

    def ingest(self, tmp: Path, attrs: InstanceAttributes, source: Source | str,
               synced: bool = False) -> IngestResult:
        """Take ownership of the file at `tmp` (already fsynced if `synced`). `source`: where it
        came from (a bare string is an AE title). Raises DiskReserveError (tmp removed) when full.
        The checks before this (SOP class, peer, header) are the Intake's (intake.py)."""
        if isinstance(source, str):
            source = Source.ae(source)
        try:
            size = tmp.stat().st_size  # the rename below keeps it
            self.files.check_reserve(size)
            final = self.files.place(tmp, synced)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        rel = self.files.relative(final)
        routes = tuple(self.router(attrs, source))
        now = time.time()
        try:
            with self.index.tx() as cur:
                result, superseded = self._index(cur, attrs, rel, size, source.label, routes, now,
                                                 self.from_archive(source))
        except BaseException:
            # Never acknowledged: the new file must not stay behind as an orphan; the old one is
            # still what the index points at.
            self.files.remove(rel)
            raise
        if superseded is not None:
            self.files.remove(superseded)
        if result.routes:
            self.queue.notify()
        return result

    def _index(self, cur, attrs, rel, size, calling_ae, routes, now,
               keep_first: bool = False) -> tuple[IngestResult, str | None]:
        """Index the placed file. Returns the result and the path of a file to delete afterwards."""
        old = cur.execute(
            "SELECT id, path, size FROM instances WHERE sop_uid = ?", (attrs.sop_uid,)
        ).fetchone()
        if old is not None:
            outcome = self._duplicate_outcome(old, self.files.absolute(rel), keep_first)
            if outcome is not Outcome.REPLACED:
                # An identical re-send queues again only the routes whose job is dead or missing.
                again = (JobQueue.requeue_routes_in(cur, FORWARD, routes, old["id"], now)
                         if outcome is Outcome.IDENTICAL else [])
                return IngestResult(outcome, old["id"], tuple(again)), rel
        series_fk = self._upsert_hierarchy(cur, attrs, now)
        if old is None:
            cur.execute(
                "INSERT INTO instances(sop_uid, sop_class, series_fk, instance_number,"
                " transfer_syntax, path, size, calling_ae, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (attrs.sop_uid, attrs.sop_class, series_fk, attrs.instance_number,
                 attrs.transfer_syntax, rel, size, calling_ae, now),
            )
            instance_id, outcome = cur.lastrowid, Outcome.STORED
        else:
            instance_id, outcome = old["id"], Outcome.REPLACED
            cur.execute(
                "UPDATE instances SET sop_class = ?, series_fk = ?, instance_number = ?,"
                " transfer_syntax = ?, path = ?, size = ?, calling_ae = ?, received_at = ?,"
                " version = version + 1 WHERE id = ?",
                (attrs.sop_class, series_fk, attrs.instance_number, attrs.transfer_syntax,
                 rel, size, calling_ae, now, instance_id),
            )
        for dest in routes:
            JobQueue.enqueue_instance_in(cur, FORWARD, dest, instance_id, now)
        return IngestResult(outcome, instance_id, routes), (old["path"] if old is not None else None)

    def _duplicate_outcome(self, old, new_path: Path, keep_first: bool = False) -> Outcome:
        old_path = self.files.absolute(old["path"])
        # The same data set is the same instance, whoever wrote the file meta (part10/compare.py).
        if old_path.exists() and same_data_set(old_path, new_path):
            return Outcome.IDENTICAL
        if keep_first or self.duplicate_policy == "keep-first":
            return Outcome.KEPT_FIRST
        return Outcome.REPLACED

    @staticmethod
    def _upsert_hierarchy(cur, a: InstanceAttributes, now: float) -> int:
        patient_fk = cur.execute(
            "INSERT INTO patients(patient_id, issuer, patient_name, birth_date, sex)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(patient_id, issuer) DO UPDATE SET patient_name = excluded.patient_name,"
            " birth_date = excluded.birth_date, sex = excluded.sex RETURNING id",
            (a.patient_id, a.issuer, a.patient_name, a.birth_date, a.sex),
        ).fetchone()[0]
        study_fk = cur.execute(
            "INSERT INTO studies(study_uid, patient_fk, study_date, study_time, accession, study_id,"
            " description, referring, charset, first_received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(study_uid) DO UPDATE SET patient_fk = excluded.patient_fk,"
            " study_date = excluded.study_date, study_time = excluded.study_time,"
            " accession = excluded.accession, study_id = excluded.study_id,"
            " description = excluded.description, referring = excluded.referring,"
            " charset = excluded.charset RETURNING id",
            (a.study_uid, patient_fk, a.study_date, a.study_time, a.accession, a.study_id,
             a.study_description, a.referring, a.charset, now),
        ).fetchone()[0]
        series_fk = cur.execute(
            "INSERT INTO series(series_uid, study_fk, modality, series_number, description, body_part)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(series_uid) DO UPDATE SET study_fk = excluded.study_fk,"
            " modality = excluded.modality, series_number = excluded.series_number,"
            " description = excluded.description, body_part = excluded.body_part RETURNING id",
            (a.series_uid, study_fk, a.modality, a.series_number, a.series_description, a.body_part),
        ).fetchone()[0]
        # The C-FIND columns (migration 7, query_columns.py), kept beside the values they derive from.
        cur.execute("UPDATE patients SET name_folded = ? WHERE id = ?", (fold_pn(a.patient_name), patient_fk))
        cur.execute("UPDATE studies SET referring_folded = ?, study_dt = ? WHERE id = ?",
                    (fold_pn(a.referring), study_datetime(a.study_date, a.study_time), study_fk))
        return series_fk

    def release_if_done(self, instance_ids: list[int]) -> int:
        """delete_when_done: evict those of these instances that are delivered (every job done,
        committed where configured; see retention). Returns how many were removed."""
        # Index first, then the file (retention.evict): a crash in between leaves an orphan file,
        # which recovery removes, never an index row pointing at nothing.
        return evict(self, "done", ids=list(instance_ids)).instances

    def close(self) -> None:
        self.index.close()
