"""Media export: studies from the buffer onto a removable medium, as jobs of the durable queue.

An export is a job of kind EXPORT whose target is the drive's config name; its payload says which
studies, which part of how many, which copy; the instances it writes are the ones linked to it
in job_items (JobQueue.link_in), which also keeps them from eviction until the job is done.
Nothing leaves the buffer because it was exported: after the job is done, retention's own rules
apply (issue 8 item 5).

Enqueueing (enqueue_export): one job per medium. A request of N copies is N jobs (each medium is
verified and retried on its own; a failed third copy never rewrites the two good ones). A request
too large for one medium is split at series boundaries into parts "1 of N", "2 of N" (PS3.10 8:
each part a file-set of its own, with its own DICOMDIR and PDI pages). The split is decided at
enqueue time, from a capacity the caller knows then (the blank medium in the drive, or the
nominal capacity of the drive's kind: nominal_capacity), because each part must be its own job
from the start: the queue's rows are changed only through its verbs, and a job cannot rewrite
itself into parts later. A part that still does not fit the medium inserted (a CD in a drive the
split assumed a DVD for) fails with the drive's MediumFull and waits for the next medium.

Writing (Exporter, one QueueWorker per drive), per claimed job:
  1. the medium: none, a written disc, a stick that holds files, or the medium an export just
     failed on -> the job waits: JobQueue.release(uncount=True) puts it back queued without
     using an attempt (never dead-lettered for want of a medium), due again after
     `medium_poll_s`; process() returns at once, so the worker sits in QueueWorker's idle wait,
     which medium_changed() ends (JobQueue.make_due + notify) and so does an operator's
     `queue retry` (due now) or a new export (SIGUSR1 -> wake_all)
  2. the profile follows the medium (PS3.11): CD -> STD-GEN-CD, DVD -> STD-GEN-DVD-JPEG,
     USB -> STD-GEN-USB-JPEG
  3. plan_fileset over the linked instances, write_fileset (DICOMDIR, converted files) and
     write_pdi (README.TXT, INDEX.HTM, IHE_PDI/) into <staging_dir>/job-<id>/
  4. drive.write(mapping, volume_id), then drive.verify(mapping): only a verified medium makes
     the job done (ExportVerified); then the medium is ejected
  5. any MediaError: ExportFailed with the one-line reason; the job is queued again with backoff
     (an attempt used) and dead-lettered after `max_attempts`; that medium is not used again
     until a medium change (a ruined CD-R, a write-protected stick), so the job is retried on the
     next medium
  kill -9 at any point: the job stays in_flight, the queue's recover() queues it again at start,
  and the staging folder is rebuilt (stale ones are removed when the worker starts).

Events (gateway/event_kinds.py): export-queued, export-started, export-written, export-verified,
export-failed; job id, drive, counts and part / of, never a patient's name or ID. The medium's
volume id and File-set ID carry no patient data either ("DICOM_J12_1OF2").
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from drivers.media.interface import CD_700_BYTES, MediaDrive, MediaError, MediumInfo, MediumKind
from gateway.buffer.queue import Job, JobKind, JobQueue
from gateway.buffer.worker import QueueWorker, backoff
from gateway.event_kinds import (
    ExportFailed, ExportProgress, ExportQueued, ExportStarted, ExportVerified, ExportWritten)
from gateway.events import EventBus
from gateway.media.fileset import FilesetError, FilesetPlan, plan_fileset, write_fileset
from gateway.media.pdi import PdiError, PdiSeries, PdiStudy, write_pdi

log = logging.getLogger("gateway.media.export")

EXPORT = "export"  # jobs.kind; jobs.target is the drive's name
# PS3.11: the application profile a medium of each kind is written with.
PROFILE_FOR = {MediumKind.CD: "STD-GEN-CD", MediumKind.DVD: "STD-GEN-DVD-JPEG", MediumKind.USB: "STD-GEN-USB-JPEG"}
MAX_COPIES = 20
# export-progress at most this often (seconds): the status file and a panel follow a burn without
# an SD card rewrite per block.
PROGRESS_EVERY_S = 1.0
# How a waiting job's error line goes on to say why its last attempt failed.
LAST_FAILED = "; last attempt failed: "
# Bytes one medium loses beside the files, for the split only (the drive makes the real check):
# ISO 9660 system area, descriptors and path tables (~120 KB, drivers/media/optical.py
# estimate_image_bytes), the DICOMDIR's fixed part and the PDI pages; per series a JPEG preview
# (a 256-pixel JPEG is 5-40 KB) and its folder; per file a sector or cluster of rounding and its
# directory records.
_PART_OVERHEAD = 512 * 1024
_SERIES_OVERHEAD = 64 * 1024
_FILE_OVERHEAD = 2048 + 512
_SECTOR = 2048


class ExportRefused(Exception):
    """An export request that cannot be queued; the message is one line naming why (unknown or
    not held study, nothing to export, bad copies, a series larger than one medium)."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export where. study_uids: Study Instance UIDs (0020,000D) held in the buffer.
    drive: the drive's name ([media.drives.<name>]). copies: how many media (1..MAX_COPIES).
    reason: who asked, "operator" or "rule:<rule name>" (events and the job's payload)."""

    study_uids: tuple[str, ...]
    drive: str
    copies: int = 1
    reason: str = "operator"


@dataclass(frozen=True)
class ExportPayload:
    """An export job's payload (jobs.payload, JSON). studies: the request's Study Instance UIDs
    with an instance on this medium. part / of: this medium in a split request. copy / copies:
    which of the request's copies. reason: as in ExportRequest."""

    studies: tuple[str, ...]
    part: int = 1
    of: int = 1
    copy: int = 1
    copies: int = 1
    reason: str = "operator"

    def to_json(self) -> str:
        return json.dumps({"studies": list(self.studies), "part": self.part, "of": self.of,
                           "copy": self.copy, "copies": self.copies, "reason": self.reason})

    @classmethod
    def from_job(cls, job: Job) -> "ExportPayload":
        """The payload of an export job; ValueError for one that is not an export payload."""
        try:
            p = json.loads(job.payload or "")
            return cls(tuple(str(s) for s in p["studies"]), int(p["part"]), int(p["of"]),
                       int(p["copy"]), int(p["copies"]), str(p.get("reason", "operator")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"job {job.id}: not an export payload ({exc})") from None


def _describe(job: Job) -> str:
    try:
        p = ExportPayload.from_job(job)
    except ValueError:
        return f"export job on {job.target}"
    what = f"{len(p.studies)} stud{'y' if len(p.studies) == 1 else 'ies'}"
    extra = [f"part {p.part} of {p.of}"] if p.of > 1 else []
    if p.copies > 1:
        extra.append(f"copy {p.copy} of {p.copies}")
    return f"export of {what}{' (' + ', '.join(extra) + ')' if extra else ''} to {job.target}"


# What the queue's operator verbs say about export jobs (gateway/buffer/queue.py JobKind).
EXPORT_JOB_KIND = JobKind(
    EXPORT,
    describe=_describe,
    finished="written and verified",
    done_advice=lambda job: "a verified medium is not written again from the queue (for another one: "
                            f"`dicom-gateway export STUDY_UID... --to {job.target}`)",
    reforward_hint="export the studies again with `dicom-gateway export`",
)


def nominal_capacity(drive_kind: str, sim_cd_mb: int | None = None) -> tuple[MediumKind, int] | None:
    """The capacity to split a request for when no medium is in the drive: (kind, bytes) or None.

    drive_kind: the config's [media.drives.<name>].kind ("optical", "usb", "optical-sim",
    "usb-sim"). Optical drives: the smallest blank disc they take, a 700 MB CD-R
    (drivers/media/interface.py CD_700_BYTES; a simulated drive's sim_cd_mb when given), so that a
    part fits whatever disc comes. USB: None (sticks have no nominal size; the request is one
    part, and a stick too small fails with MediumFull)."""
    if drive_kind.startswith("optical"):
        if sim_cd_mb is not None and drive_kind.endswith("-sim"):
            return MediumKind.CD, sim_cd_mb * 1_000_000
        return MediumKind.CD, CD_700_BYTES
    return None


def medium_capacity(info: MediumInfo | None) -> tuple[MediumKind, int] | None:
    """The capacity of a writable medium in a drive now (kind, free bytes), None for none."""
    if info is None or info.read_only or not info.blank:
        return None
    return info.kind, info.free_bytes


# -- reading the buffer's index ------------------------------------------------------------------------

_INSTANCES_OF_STUDIES = (
    "SELECT i.id, i.path, se.series_uid, st.study_uid FROM instances i"
    " JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk"
    " WHERE st.study_uid IN ({marks})"
    " ORDER BY st.first_received, st.id, CAST(se.series_number AS INTEGER), se.id,"
    " CAST(i.instance_number AS INTEGER), i.id")


def _held(rows_source, study_uids: Sequence[str]) -> list:
    marks = ",".join("?" * len(study_uids))
    return list(rows_source(_INSTANCES_OF_STUDIES.format(marks=marks), tuple(study_uids)))


def _series_cost(sizes: Sequence[int]) -> int:
    return sum(math.ceil(s / _SECTOR) * _SECTOR + _FILE_OVERHEAD for s in sizes) + _SERIES_OVERHEAD


def _split(queue: JobQueue, rows: list, kind: MediumKind, capacity: int) -> list[list[int]]:
    """Instance ids per part: whole series packed in order into media of `capacity` bytes, using
    the plan's size estimate for the profile of `kind` (decompression for a CD included)."""
    root = queue.index.path.parent
    by_path = {str(root / r["path"]): r for r in rows}
    plan = plan_fileset(list(by_path), PROFILE_FOR[kind])
    sizes: dict[int, int] = {by_path[str(f.source)]["id"]: f.estimated_size for f in plan.files}
    series: dict[str, list[int]] = {}
    for r in rows:
        series.setdefault(r["series_uid"], []).append(r["id"])
    budget = capacity - _PART_OVERHEAD
    parts: list[list[int]] = [[]]
    used = 0
    for uid, ids in series.items():
        # An instance the plan left out costs nothing on the medium (it is reported there).
        cost = _series_cost([sizes[i] for i in ids if i in sizes])
        if cost > budget:
            raise ExportRefused(f"series {uid} needs about {cost / 1e6:.1f} MB, more than one "
                                f"{kind.value} ({capacity / 1e6:.1f} MB); a study is split only "
                                "at series boundaries")
        if used + cost > budget and parts[-1]:
            parts.append([])
            used = 0
        parts[-1].extend(ids)
        used += cost
    return parts


def enqueue_export(queue: JobQueue, request: ExportRequest, now: float | None = None, *,
                   capacity: tuple[MediumKind, int] | None = None,
                   events: EventBus | None = None) -> list[int]:
    """Queue the export of request.study_uids to request.drive; returns the job ids.

    One job per medium: parts x copies, copy-major (copy 1's parts first). capacity: (medium
    kind, bytes) one medium takes (medium_capacity / nominal_capacity); None queues one part
    whatever the size. Every instance of the studies is linked to the job of its part
    (job_items) in the transaction that creates the jobs, so none can be evicted before the job
    is done. events: ExportQueued is published per job after the commit. Raises ExportRefused
    (one line) for no study, a study with no instance held, copies out of 1..MAX_COPIES, an
    empty drive name, or a series larger than one medium."""
    studies = tuple(dict.fromkeys(s.strip() for s in request.study_uids if s.strip()))
    if not studies:
        raise ExportRefused("export: no study given")
    if not request.drive:
        raise ExportRefused("export: no drive given")
    if not isinstance(request.copies, int) or not 1 <= request.copies <= MAX_COPIES:
        raise ExportRefused(f"export: copies must be 1 to {MAX_COPIES}, not {request.copies!r}")
    rows = _held(queue.index.query, studies)
    missing = [s for s in studies if s not in {r["study_uid"] for r in rows}]
    if missing:
        raise ExportRefused(f"export: study {missing[0]} has no instance held in the buffer")
    # Header reads happen outside the write transaction: a large study must not hold the index
    # (and every C-STORE) while its files are read.
    parts = _split(queue, rows, *capacity) if capacity is not None else [[r["id"] for r in rows]]
    now = time.time() if now is None else now
    made: list[tuple[int, ExportPayload, int]] = []
    with queue.index.tx() as cur:
        # Read again inside the transaction: what retention evicted meanwhile is not linked, what
        # arrived meanwhile goes with the last part.
        now_rows = _held(lambda sql, args: cur.execute(sql, args).fetchall(), studies)
        present = {r["id"]: r["study_uid"] for r in now_rows}
        planned = {i for part in parts for i in part}
        parts = [[i for i in part if i in present] for part in parts]
        parts[-1].extend(i for i in present if i not in planned)
        parts = [p for p in parts if p]
        gone = [s for s in studies if s not in present.values()]
        if gone:
            raise ExportRefused(f"export: study {gone[0]} has no instance held in the buffer")
        for copy in range(1, request.copies + 1):
            for n, ids in enumerate(parts, 1):
                part_studies = tuple(s for s in studies if s in {present[i] for i in ids})
                payload = ExportPayload(part_studies, n, len(parts), copy, request.copies, request.reason)
                job_id = JobQueue.enqueue_in(cur, EXPORT, request.drive, payload.to_json(), now)
                JobQueue.link_in(cur, job_id, ids)
                made.append((job_id, payload, len(ids)))
    queue.notify()
    for job_id, payload, count in made:
        log.info("export job %d queued: %s", job_id, _describe_payload(payload, request.drive, count))
        if events is not None:
            events.publish(ExportQueued(job_id=job_id, drive=request.drive, studies=len(payload.studies),
                                        instances=count, part=payload.part, of=payload.of,
                                        reason=payload.reason))
    return [m[0] for m in made]


def _describe_payload(p: ExportPayload, drive: str, count: int) -> str:
    part = f", part {p.part} of {p.of}" if p.of > 1 else ""
    copy = f", copy {p.copy} of {p.copies}" if p.copies > 1 else ""
    return f"{len(p.studies)} studies, {count} instances to {drive}{part}{copy} ({p.reason})"


def volume_id(job_id: int, part: int, of: int, kind: MediumKind) -> str:
    """The medium's label: ISO 9660 volume identifier (d-characters, <= 32, ECMA-119 8.4.6) for
    a disc, FAT volume label (<= 11) for a stick; carries the job and the part, no patient data.
    "DICOM_J12_1OF2" on a disc, "DICOM1OF2" on a stick ("DICOM" when not split)."""
    part_text = f"{part}OF{of}" if of > 1 else ""
    if kind is MediumKind.USB:
        label = f"DICOM{part_text}"
        return label if len(label) <= 11 else part_text[:11]
    return f"DICOM_J{job_id}" + (f"_{part_text}" if part_text else "")


# -- the worker --------------------------------------------------------------------------------------

class _Wait(Exception):
    """No medium this job can use now: the job waits, no attempt used (the message says why)."""



def last_failure(job: Job) -> str:
    """Why the job's last attempt failed (its error line), "" when it has not failed yet or the
    line says nothing more than that it waits."""
    text = job.last_error or ""
    if not job.attempts or not text:
        return ""
    if LAST_FAILED in text:
        return text.split(LAST_FAILED, 1)[1]
    return "" if text.startswith("waiting") else text

class Exporter(QueueWorker):
    """The queue worker of kind EXPORT for one drive (target = drive.name).

    buffer: the gateway.buffer.ingest.Buffer (its queue and index). drive: the MediaDrive.
    events: where export-* events go. staging_dir: a folder of this drive's own (per job
    <staging_dir>/job-<id>/ holds the DICOMDIR, converted files and PDI pages while the job
    runs). retry_initial_s / retry_max_s: the backoff after a failed attempt (capped
    exponential, seconds). max_attempts: failed attempts before the job is dead-lettered.
    medium_poll_s: how often a waiting job looks at the drive again when no medium_changed()
    comes (a drive whose insertions are not reported). Registers EXPORT_JOB_KIND on the queue."""

    def __init__(self, buffer, drive: MediaDrive, events: EventBus, *, staging_dir: Path,
                 retry_initial_s: float = 5.0, retry_max_s: float = 300.0, max_attempts: int = 5,
                 medium_poll_s: float = 30.0):
        super().__init__(buffer.queue, EXPORT, drive.name, who=f"exporter {drive.name}", logger=log,
                         thread_name=f"export-{drive.name}")
        self.buffer, self.drive, self.events = buffer, drive, events
        self.staging_dir = Path(staging_dir)
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self.max_attempts = max_attempts
        self.medium_poll_s = medium_poll_s
        # Medium changes seen (medium_changed) and the one an export last failed on: a medium
        # that failed is not written again until another one (or the same, re-inserted) comes.
        self._generation = 0
        self._failed_on: int | None = None
        self._waiting: dict[int, str] = {}
        # (job id, bytes written, bytes to write) while a medium is written, else None: for the
        # service's status and the front panel, in this process (the drive's progress callback).
        self.progress: tuple[int, int, int] | None = None
        self._progress_sent = 0.0
        buffer.queue.register_kind(EXPORT_JOB_KIND)

    # -- control -----------------------------------------------------------------------------------
    def medium_changed(self) -> None:
        """A medium was inserted into or removed from this drive (the media service calls this on
        its hotplug events): waiting jobs of this drive are due now and the worker wakes."""
        self._generation += 1
        self.queue.make_due(EXPORT, self.target)
        self.queue.notify()

    def on_start(self) -> None:
        removed = self.clean_staging()
        log.info("exporter for drive %s started%s", self.target,
                 f" ({removed} stale staging folders removed)" if removed else "")

    def clean_staging(self) -> int:
        """Remove the staging folders of jobs this worker is not running: every job-<id>/ of
        this drive's jobs (the worker runs none while it starts), and of jobs that are no longer
        in flight or no longer exist. Returns how many were removed."""
        if not self.staging_dir.is_dir():
            return 0
        removed = 0
        for folder in self.staging_dir.glob("job-*"):
            try:
                job = self.queue.get(int(folder.name[4:]))
            except ValueError:
                continue
            if job is None or job.state != "in_flight" or job.target == self.target:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    # -- one job -----------------------------------------------------------------------------------
    def process(self, job: Job) -> None:
        try:
            payload = ExportPayload.from_job(job)
        except ValueError as exc:
            self.queue.fail(job.id, str(exc), None)
            return
        try:
            info = self._usable_medium()
        except _Wait as why:
            self._wait(job, str(why))
            return
        self._waiting.pop(job.id, None)
        rows = self.buffer.index.query(
            "SELECT i.path FROM job_items ji JOIN instances i ON i.id = ji.instance_fk"
            " JOIN series se ON se.id = i.series_fk JOIN studies st ON st.id = se.study_fk"
            " WHERE ji.job_id = ? ORDER BY st.first_received, st.id, CAST(se.series_number AS INTEGER),"
            " se.id, CAST(i.instance_number AS INTEGER), i.id", (job.id,))
        root = self.buffer.index.path.parent
        paths = [root / r["path"] for r in rows]
        counts = dict(job_id=job.id, drive=self.target, studies=len(payload.studies), instances=len(paths),
                      part=payload.part, of=payload.of)
        if not paths:
            self._failed(job, counts, "none of its instances is held in the buffer any more", dead=True)
            return
        staging = self.staging_dir / f"job-{job.id}"
        profile = PROFILE_FOR[info.kind]
        label = volume_id(job.id, payload.part, payload.of, info.kind)
        settled = False
        try:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            try:
                plan, mapping = self._stage(paths, profile, label, staging, payload)
            except (FilesetError, PdiError) as exc:
                # Nothing left to put on a medium is final; a staging disk that is full or failing
                # is not (the attempt counts, the job waits and is tried again).
                transient = isinstance(exc.__cause__, OSError)
                self._failed(job, counts, f"the file-set cannot be made: {exc}",
                             dead=not transient or job.attempts >= self.max_attempts)
                return
            self.events.publish(ExportStarted(profile=profile, attempt=job.attempts, **counts))
            log.info("export job %d: writing %d files (%s) to the %s in drive %s as %s", job.id,
                     len(mapping), profile, info.kind.value, self.target, label)
            try:
                self.progress = (job.id, 0, 0)
                self._progress_sent = 0.0
                self.drive.write(mapping, label, lambda done, total: self._progress(job.id, done, total))
                size = sum(Path(src).stat().st_size for _, src in mapping)
                # The end of the write in the drive's own units (an ISO's total counts its
                # directories and padding), so that a bar ends full.
                total = self.progress[2] if self.progress and self.progress[2] else size
                self.events.publish(ExportProgress(job_id=job.id, drive=self.target, done_bytes=total,
                                                   total_bytes=total))
                self.events.publish(ExportWritten(volume_id=label, files=len(mapping), bytes=size, **counts))
                self.drive.verify(mapping)
            except MediaError as exc:
                self._failed_on = self._generation
                self._failed(job, counts, str(exc), dead=job.attempts >= self.max_attempts)
                self._eject()
                return
            except ValueError as exc:
                # A name or label the medium cannot carry: a bug of the file-set creator; another
                # medium would not help.
                self._failed(job, counts, f"the drive refused the file-set: {exc}", dead=True)
                return
            finally:
                self.progress = None
            self.queue.complete([job.id])
            settled = True
            self.target_up()
            self.events.publish(ExportVerified(volume_id=label, left_out=len(plan.left_out), **counts))
            log.info("export job %d: the medium in drive %s is verified (%s)", job.id, self.target, label)
            self._eject()
        except Exception as exc:
            if settled:
                raise
            # Settled here, not left in flight until the next start: a staging disk that failed,
            # a bug. The attempt counts; the traceback goes to the log, one line to the queue.
            log.exception("export job %d: unexpected error", job.id)
            self._failed(job, counts, f"internal error: {type(exc).__name__}: {exc}",
                         dead=job.attempts >= self.max_attempts)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _progress(self, job_id: int, done: int, total: int) -> None:
        # Called from the writing thread for every block: only the throttled event leaves it.
        self.progress = (job_id, done, total)
        now = time.monotonic()
        if now - self._progress_sent >= PROGRESS_EVERY_S:
            self._progress_sent = now
            self.events.publish(ExportProgress(job_id=job_id, drive=self.target, done_bytes=done,
                                               total_bytes=total))

    def _usable_medium(self) -> MediumInfo:
        """The medium to write, or _Wait saying why there is none."""
        try:
            info = self.drive.medium()
        except MediaError as exc:
            raise _Wait(f"waiting for a usable medium ({exc})") from None
        if info is None:
            raise _Wait(f"waiting for a blank medium in drive {self.target}")
        if not info.blank:
            # A written disc, or a stick that holds files (perhaps a file-set brought for import):
            # never written beside or over what is there.
            what = "disc is not blank" if info.kind is not MediumKind.USB else "stick is not empty"
            raise _Wait(f"waiting for a blank medium in drive {self.target} (the {what})")
        if info.read_only:
            # A stick with its lock switch on: no attempt is used on a medium no write can change;
            # the job waits for a writable one, and says why (queue list, export --wait, panel).
            raise _Wait(f"waiting for a writable medium in drive {self.target} (the stick is write-protected)")
        if self._failed_on == self._generation:
            raise _Wait(f"waiting for another medium in drive {self.target} (an export failed on this one)")
        return info

    def _wait(self, job: Job, why: str) -> None:
        # Not an attempt: the job was never tried. Due again after medium_poll_s, at once on
        # medium_changed() (make_due) or an operator's `queue retry`.
        failed = last_failure(job)
        if failed:
            # The job's one error line must keep why the last medium failed, not only that it waits.
            why = f"{why}{LAST_FAILED}{failed}"
        self.queue.release([job.id], why, time.time() + self.medium_poll_s, uncount=True)
        if self._waiting.get(job.id) != why:
            self._waiting[job.id] = why
            log.info("export job %d: %s", job.id, why)

    def _stage(self, paths: list[Path], profile: str, label: str, staging: Path,
               payload: ExportPayload) -> tuple[FilesetPlan, list[tuple[str, Path]]]:
        """Plan and write the file-set and its PDI pages into staging; (plan, mapping)."""
        plan = plan_fileset(paths, profile, fileset_id=label[:16])
        mapping = list(write_fileset(plan, staging))
        studies = _pdi_studies(plan)
        try:
            written = write_pdi(staging, studies, volume_label=label, part_of=(payload.part, payload.of))
        except PdiError as exc:
            if "patient" not in str(exc):
                raise
            # The label happened to contain a patient's ID (a number like the job's): say less.
            for name in ("README.TXT", "INDEX.HTM", "IHE_PDI"):
                shutil.rmtree(staging / name, ignore_errors=True)
                (staging / name).unlink(missing_ok=True)
            written = write_pdi(staging, studies, volume_label="DICOM", part_of=(payload.part, payload.of))
        mapping.extend((rel, staging / rel) for rel in written)
        return plan, mapping

    def _failed(self, job: Job, counts: dict, reason: str, dead: bool) -> None:
        if dead:
            self.queue.fail(job.id, reason, None)
            log.error("export job %d failed and is dead-lettered after %d attempts: %s", job.id,
                      job.attempts, reason)
        else:
            delay = backoff(self.retry_initial_s, self.retry_max_s, job.attempts)
            self.queue.fail(job.id, reason, time.time() + delay)
            log.warning("export job %d failed (attempt %d of %d), retried on the next medium: %s",
                        job.id, job.attempts, self.max_attempts, reason)
        self.events.publish(ExportFailed(reason=reason, state="dead" if dead else "queued", attempt=job.attempts, **counts))

    def _eject(self) -> None:
        try:
            self.drive.eject()
        except (MediaError, OSError) as exc:
            log.warning("drive %s: eject failed: %s", self.target, exc)


def _pdi_studies(plan: FilesetPlan) -> list[PdiStudy]:
    """PdiStudy / PdiSeries of what the plan puts on the medium, from one header per study and
    per series (a representative instance: the series' middle one gives the preview)."""
    studies: dict[tuple[str, str], dict[str, list]] = {}
    for f in plan.files:
        studies.setdefault((f.patient, f.study), {}).setdefault(f.series, []).append(f)
    out = []
    for series_map in studies.values():
        series_list = []
        first = None
        for files in series_map.values():
            middle = files[len(files) // 2]
            try:
                ds = pydicom.dcmread(middle.source, stop_before_pixels=True)
            except (OSError, InvalidDicomError, ValueError) as exc:
                log.warning("PDI: header of %s unreadable: %s", middle.source.name, exc)
                continue
            first = first or ds
            has_pixels = "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds \
                or bool(ds.get("Rows"))
            series_list.append(PdiSeries(
                modality=str(ds.get("Modality", "") or ""),
                series_number=str(ds.get("SeriesNumber", "") or ""),
                description=str(ds.get("SeriesDescription", "") or ""),
                instance_count=len(files),
                thumbnail_source=middle.source if has_pixels else None,
                file_ids=tuple(f.file_id for f in files)))
        if first is not None:
            out.append(PdiStudy.from_dataset(first, series_list))
    return out
