"""The media service: what the box does when a medium goes into or out of a drive (issue 8 items 2
"triggers: insertion" and 4).

Each configured drive's hotplug source (``drive.events``, drivers/media/hotplug.py) reports
MediaEvents.  The source's thread only hands the event to the drive's own worker thread here: the
pyudev observer (or the simulator's watcher) must never wait on mtools, xorriso or the index.  The
worker, one per drive so that a long import from the stick never delays the disc:

- "inserted", blank (an empty writable disc, or a stick with no file in its root): the export
  rules (gateway/media/rules.py) choose studies; the first rule that selects any is queued as
  export jobs (gateway/media/export.py ``enqueue_export``), recorded per study (marked or not),
  and the drive's exporter is woken.  When no rule selects anything the event and the log line
  say why and the medium is left alone; when a matching study was only still arriving (younger
  than the rule's stable_s), the rules are tried again once it is stable, if the same medium is
  still in the drive (a later insertion or removal cancels that re-check).  A read-only medium is
  neither written nor read.
- "inserted" with data: the medium's files are copied into a staging folder in the buffer
  (``drive.read_tree``), imported through the intake as MEDIA:<drive name>
  (gateway/media/importer.py ``import_tree``: the checks, duplicate policy and routes of a
  C-STORE), and the staging folder is deleted.  The label is the drive's name, not the medium's
  volume label: a route or an operator can name "MEDIA:usb", while a volume label is whatever the
  burner chose (and may name a patient).
- "removed": the drive's exporter is woken (a write in progress fails on its own, issue 8 item 5).
- an operator's "import the medium in this drive now" (``request_import``: `dicom-gateway import
  DRIVE` through gateway/control.py, or the front panel through gateway/commands.py): queued to
  the same worker, behind what it has in hand, and done by the same ``_import`` as on insertion;
  refused (an ImportOutcome, never raised) when the drive holds no medium or a blank one.

Every decision is one log line and one event (gateway/event_kinds.py, media-*); a driver's
failure (MediaError, an OSError, the index) is one line and a media-fault event, never a traceback
out of a thread; the worker keeps serving the drive.  No log line or event names a patient.
"""

from __future__ import annotations

import logging
import queue
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.media.hotplug import MediaEvent
from drivers.media.interface import MediaDrive, MediaError, MediumInfo
from gateway.event_kinds import (MediaExportQueued, MediaFault, MediaImportDone, MediaImportQueued,
                                 MediaInserted, MediaNothingToExport, MediaRemoved, MediaWatching)
from gateway.media.export import ExportRefused, ExportRequest, enqueue_export, medium_capacity
from gateway.media.importer import import_tree
from gateway.media.rules import Selection, decide, record_export, study_rows

if TYPE_CHECKING:
    from gateway.buffer.ingest import Buffer
    from gateway.buffer.intake import Intake
    from gateway.config.media import MediaSection
    from gateway.events import EventBus

log = logging.getLogger("gateway.media.service")

STAGING = "media-staging"
_STOP = object()
# A re-check waits until the youngest study is stable, plus this margin; and never longer than a day.
_RECHECK_MARGIN_S = 1.0
_RECHECK_MAX_S = 24 * 3600.0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class _Recheck:
    """Try the rules again for the medium that arrived with ``event`` (generation ``generation``)."""

    def __init__(self, event: MediaEvent, generation: int):
        self.event = event
        self.generation = generation


@dataclass(frozen=True)
class ImportOutcome:
    """What an import asked for by an operator (MediaService.request_import) came to.

    refused: why nothing was read ("" when the medium was read); ok: every file imported (as
    MediaImportDone.ok); import_id: the import report's number (0: none was begun); detail: the
    report's summary line, or the failure's one line."""

    refused: str = ""
    ok: bool = False
    import_id: int = 0
    detail: str = ""


class _ImportNow:
    """An operator's "import the medium in this drive now", for the drive's worker; ``done``
    receives the ImportOutcome."""

    def __init__(self, done: Future):
        self.done = done


class _DriveWorker:
    """One drive's thread and inbox.  ``generation`` counts the hotplug events put in: a re-check
    armed for one medium is void once another event came."""

    def __init__(self, name: str, handle: Callable[[MediaEvent], None],
                 import_now: Callable[[str], "ImportOutcome"]):
        self.name = name
        self._import_now = import_now
        self.inbox: queue.Queue = queue.Queue()
        self.busy = threading.Event()
        self.generation = 0
        self.handling = 0  # the generation of the event in hand
        self.timer: threading.Timer | None = None
        self._handle = handle
        self.thread = threading.Thread(target=self._run, name=f"media-{name}", daemon=True)

    def put(self, event: MediaEvent) -> None:
        """A hotplug event (any thread): cancels a pending re-check."""
        self.generation += 1
        self.cancel_timer()
        self.inbox.put((self.generation, event))

    def cancel_timer(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()

    def recheck_in(self, delay: float, event: MediaEvent) -> None:
        """Put a re-check of ``event``'s medium (the event in hand) in the inbox after ``delay`` s."""
        self.cancel_timer()
        job = _Recheck(event, self.handling)
        self.timer = threading.Timer(delay, self.inbox.put, (job,))
        self.timer.daemon = True
        self.timer.start()

    def _run(self) -> None:
        while True:
            item = self.inbox.get()
            if item is _STOP:
                return
            if isinstance(item, _ImportNow):
                self._serve(item)
                continue
            if isinstance(item, _Recheck):
                if item.generation != self.generation:
                    continue  # the medium it was for has gone or been replaced
                event = item.event
            else:
                self.handling, event = item
            self.busy.set()
            try:
                self._handle(event)
            except Exception as exc:  # noqa: BLE001 - the drive must stay served: one line, go on
                log.error("drive %s: %s not handled: %s: %s", self.name, event.action,
                          type(exc).__name__, _one_line(exc))
            finally:
                self.busy.clear()

    def _serve(self, item: _ImportNow) -> None:
        # Not a hotplug event: the generation (and a re-check armed for a blank medium) stands.
        self.busy.set()
        try:
            item.done.set_result(self._import_now(self.name))
        except Exception as exc:  # noqa: BLE001 - the asker gets one line; the drive stays served
            log.error("drive %s: import asked by the operator not handled: %s: %s", self.name,
                      type(exc).__name__, _one_line(exc))
            item.done.set_result(ImportOutcome(refused=f"import: drive {self.name}: {_one_line(exc)}"))
        finally:
            self.busy.clear()


class MediaService:
    """Acts on media inserted into and removed from the configured drives.

    ``media``: the config's [media] section (drives and export_rules); ``buffer``: the open Buffer
    (its index, queue and files); ``intake``: the intake door imports go through; ``events``: the
    bus; ``drives``: drive name -> MediaDrive built from the registry (each with ``events``, its
    hotplug source); ``exporters``: drive name -> that drive's Exporter (``medium_changed()``);
    ``staging_root``: where media are copied before import (a folder in the buffer's directory,
    emptied at start); ``clock``: seconds since the epoch (the rules' "now")."""

    def __init__(self, media: "MediaSection", buffer: "Buffer", intake: "Intake", events: "EventBus",
                 drives: Mapping[str, MediaDrive], exporters: Mapping[str, Any], *,
                 staging_root: Path, clock: Callable[[], float] = time.time):
        self.media = media
        self.buffer = buffer
        self.intake = intake
        self.events = events
        self.drives = dict(drives)
        self.exporters = dict(exporters)
        self.staging_root = Path(staging_root)
        self.clock = clock
        self._workers = {name: _DriveWorker(name, self.handle, self.import_now) for name in self.drives}
        self._started: list[str] = []

    # -- running -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Empty the staging folder (an import cut by a crash leaves its copy there), start each
        drive (a simulator starts here), its worker and then its hotplug source.  A drive that
        cannot start is one ERROR line and a media-fault event; the others run."""
        shutil.rmtree(self.staging_root, ignore_errors=True)
        for name, drive in self.drives.items():
            worker = self._workers[name]
            worker.thread.start()
            try:
                drive.start()
                drive.events.start(worker.put)
            except (MediaError, OSError, ImportError, RuntimeError) as exc:
                self._fault(name, "start", exc)
                continue
            self._started.append(name)
            log.info("drive %s: watching for media", name)
            self.events.publish(MediaWatching(drive=name))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the hotplug sources, let each worker finish the event in hand (at most ``timeout``
        seconds in all), stop the drives.  Safe to call after a start that failed."""
        for name in self._started:
            try:
                self.drives[name].events.stop()
            except Exception as exc:  # noqa: BLE001 - stopping one drive must not keep the others
                log.warning("drive %s: stopping its media events: %s", name, _one_line(exc))
        deadline = time.monotonic() + timeout
        for worker in self._workers.values():
            worker.cancel_timer()
            worker.inbox.put(_STOP)
        for worker in self._workers.values():
            if worker.thread.is_alive():
                worker.thread.join(max(0.0, deadline - time.monotonic()))
                if worker.thread.is_alive():
                    log.warning("drive %s: still busy at stop; its work is abandoned", worker.name)
        for name in self._started:
            try:
                self.drives[name].stop()
            except Exception as exc:  # noqa: BLE001
                log.warning("drive %s: stopping: %s", name, _one_line(exc))
        self._started.clear()

    def is_alive(self) -> bool:
        """Every drive's worker thread runs (the watchdog's liveness)."""
        return all(w.thread.is_alive() for w in self._workers.values())

    def busy(self, drive: str) -> bool:
        """Whether ``drive``'s worker is handling an event now (an import, the rules)."""
        return self._workers[drive].busy.is_set()

    def request_import(self, drive: str) -> Future:
        """Queue "import the medium in ``drive`` now" to that drive's worker, behind what it has in
        hand: the worker reads and imports it exactly as on insertion (``import_now``). Returns a
        Future of the ImportOutcome (a refusal for no medium or a blank one). KeyError for a
        drive that is not configured."""
        worker = self._workers[drive]
        done: Future = Future()
        if not worker.thread.is_alive():
            done.set_result(ImportOutcome(refused=f"import: drive {drive} is not being served (see the log)"))
        else:
            worker.inbox.put(_ImportNow(done))
        return done

    def import_now(self, drive: str) -> ImportOutcome:
        """On ``drive``'s worker thread (or a test's): import the medium in the drive as on its
        insertion (``_import``: staging copy, import_tree as MEDIA:<drive>, events), or refuse
        when there is no medium or it is blank."""
        try:
            info = self.drives[drive].medium()
        except (MediaError, OSError) as exc:
            self._fault(drive, "inspect", exc)
            return ImportOutcome(refused=f"import: drive {drive} cannot say what it holds: {_one_line(exc)}")
        if info is None:
            return ImportOutcome(refused=f"import: drive {drive} has no medium")
        if info.blank:
            return ImportOutcome(refused=f"import: the {info.kind.value} in drive {drive} is blank: nothing to import")
        return self._import(drive, self.drives[drive], info)

    def submit(self, event: MediaEvent) -> None:
        """Hand ``event`` to its drive's worker (what the hotplug source's callback does)."""
        worker = self._workers.get(event.drive)
        if worker is None:
            log.warning("media %s in drive %s, which is not configured: ignored", event.action, event.drive)
            return
        worker.put(event)

    # -- one event, on the drive's worker thread ------------------------------------------------
    def handle(self, event: MediaEvent) -> None:
        """Act on one MediaEvent (the worker calls this; tests may too).  Never raises for a
        driver, medium or index failure: those become a media-fault event and one line."""
        name = event.drive
        drive = self.drives.get(name)
        if drive is None:
            return
        if event.action == "removed":
            log.info("drive %s: medium removed", name)
            self.events.publish(MediaRemoved(drive=name))
            self._wake_exporter(name)
            return
        try:
            info = drive.medium()
        except (MediaError, OSError) as exc:
            self._fault(name, "inspect", exc)
            return
        if info is None:
            log.info("drive %s: the medium reported inserted is gone again", name)
            self.events.publish(MediaRemoved(drive=name))
            self._wake_exporter(name)
            return
        blank = info.blank if event.blank is None else (event.blank and info.blank)
        self.events.publish(MediaInserted(drive=name, medium=info.kind.value, blank=blank, label=info.label,
                                          read_only=info.read_only, capacity_bytes=info.capacity_bytes,
                                          free_bytes=info.free_bytes))
        if blank:
            waiting = self._waiting_exports(name)
            if info.read_only:
                self._nothing(name, "the medium is blank but write-protected: left alone")
            elif waiting:
                # An export already queued for this drive (an operator's, a failed one) gets the
                # medium it waits for; the rules have their turn on the next blank one.
                log.info("drive %s: blank %s: for the export%s already waiting (the rules wait for the "
                         "next blank medium)", name, info.kind.value, "s" if waiting > 1 else "")
            else:
                self._export(event, info)
            # An export queued earlier (an operator's, a failed one) may be waiting for a medium too.
            self._wake_exporter(name)
        else:
            self._import(name, drive, info)

    def _waiting_exports(self, name: str) -> int:
        """How many export jobs of drive `name` are queued (0 when the index cannot say: the rules
        then decide as before)."""
        try:
            return self.buffer.queue.open_counts().get(("export", name, "queued"), 0)
        except sqlite3.Error:
            return 0

    def _export(self, event: MediaEvent, info: MediumInfo) -> None:
        name = event.drive
        rules = self.media.export_rules
        try:
            chosen, tried = decide(rules, name, study_rows(self.buffer.index), self.clock())
        except sqlite3.Error as exc:
            self._fault(name, "export-rules", exc)
            return
        if chosen is None:
            self._nothing(name, _why_nothing(tried))
            wait = max((sel.wait_s for sel in tried if sel.still_arriving), default=0.0)
            if wait > 0:
                self._workers[name].recheck_in(min(wait + _RECHECK_MARGIN_S, _RECHECK_MAX_S), event)
            return
        rule = chosen.rule
        request = ExportRequest(chosen.study_uids, name, copies=rule.copies, reason=f"rule:{rule.name}")
        try:
            # Split for the medium that is in the drive (series boundaries, issue 8 item 2).
            jobs = enqueue_export(self.buffer.queue, request, now=self.clock(), capacity=medium_capacity(info),
                                  events=self.events)
            record_export(self.buffer.index, chosen.study_uids, jobs, rule.mark_exported)
        except ExportRefused as exc:
            self._fault(name, "export-rules", exc)
            return
        except sqlite3.Error as exc:
            self._fault(name, "export-rules", exc)
            return
        later = f"; {chosen.still_arriving} still arriving, left for later" if chosen.still_arriving else ""
        log.info("drive %s: blank %s: rule %s queued %d studies x %d copies (jobs %s)%s", name,
                 info.kind.value, rule.name, len(chosen.study_uids), rule.copies,
                 ",".join(map(str, jobs)), later)
        self.events.publish(MediaExportQueued(drive=name, rule=rule.name, studies=len(chosen.study_uids),
                                              study_uids=chosen.study_uids, copies=rule.copies,
                                              jobs=tuple(jobs), still_arriving=chosen.still_arriving))

    def _import(self, name: str, drive: MediaDrive, info: MediumInfo) -> ImportOutcome:
        label = name
        staging = self.staging_root / f"{name}-{time.time_ns()}"
        log.info("drive %s: %s with data: importing as MEDIA:%s", name, info.kind.value, label)
        self.events.publish(MediaImportQueued(drive=name, label=label))
        import_id = 0
        try:
            staging.mkdir(parents=True)
            drive.read_tree(staging)
            report = import_tree(staging, label, self.intake, self.buffer.files.new_incoming_path,
                                 events=self.events)
            import_id = report.import_id
        except (MediaError, OSError, sqlite3.Error) as exc:
            self._fault(name, "import", exc)
            self.events.publish(MediaImportDone(drive=name, ok=False, import_id=import_id,
                                                detail=_one_line(exc), read=False))
            return ImportOutcome(ok=False, import_id=import_id, detail=_one_line(exc))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if report.routed:
            self.buffer.queue.notify()
        self.events.publish(MediaImportDone(drive=name, ok=report.ok, import_id=import_id,
                                            detail=report.summary()))
        return ImportOutcome(ok=report.ok, import_id=import_id, detail=report.summary())

    # -- helpers -----------------------------------------------------------------------------------
    def _wake_exporter(self, name: str) -> None:
        exporter = self.exporters.get(name)
        if exporter is not None:
            exporter.medium_changed()

    def _nothing(self, name: str, reason: str) -> None:
        log.info("drive %s: blank medium, nothing exported: %s", name, reason)
        self.events.publish(MediaNothingToExport(drive=name, reason=reason))

    def _fault(self, name: str, action: str, exc: BaseException) -> None:
        detail = _one_line(exc)
        log.error("drive %s: %s failed: %s", name, action, detail)
        self.events.publish(MediaFault(drive=name, action=action, detail=detail))


def _why_nothing(tried: list[Selection]) -> str:
    """One line for a blank medium no rule wrote: no rule for the drive, or per rule why."""
    if not tried:
        return "no export rule is for this drive"
    parts = []
    for sel in tried:
        if sel.still_arriving:
            parts.append(f"rule {sel.rule.name}: {sel.still_arriving} studies still arriving "
                         f"(stable in {sel.wait_s:.0f} s: tried again then if the medium is still in)")
        else:
            parts.append(f"rule {sel.rule.name}: no study matches")
    return "; ".join(parts)
