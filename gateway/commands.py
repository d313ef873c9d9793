"""The operator's verbs, one implementation for every face: the command line, and in-process the
coming front panel and status page.

Each verb is the queue's own verb (gateway/buffer/queue.py: retry_jobs, retry_all_dead,
dead_letter_jobs, reforward_jobs, reforward_instances) plus the checks and the wording around it,
so that a button and `dicom-gateway queue retry` do the same thing and say it in the same words:

  retry(job ids)          queued: due now, tries reset; dead: queued again. No ids: every dead job.
  dead_letter(job ids)    queued: given up (dead); dead: unchanged.
  re_forward(selection, to)  forward jobs, or a stored study / series / instance, sent to `to` again.
  wake()                  the workers look at the queue now, even those backing off.
  export(studies, drive)  the studies queued for media (gateway/media/export.py), one job a medium.
  eject(drive)            the medium given back; refused while it is written, verified or read.
  import_medium(drive)    the medium in the drive read and imported now, by the media service's
                          worker for that drive, as on insertion; refused for an unknown drive, no
                          medium, a blank one, or while the drive is written or read.
  worklist_refresh()      the worklist SCP asked now (waits at most worklist.timeout_s).
  select_procedure(N|KEY), next_procedure(), previous_procedure(), unscheduled_procedure()
                          the current procedure a capture is for (gateway/capture/procedure.py).
  worklist_status()       the current procedure's key and the worklist's state, as JSON in the
                          summary (what `dicom-gateway worklist` shows beside the cached items).
  capture(clip_s, wait_s) a still of the latest frame (clip_s 0), or a clip of clip_s seconds
                          (gateway/capture/service.py), for the current procedure; refused with no
                          grabber, no signal, a clip already recording.
  end_procedure(discontinued)
                          the procedure captured for is over: its MPPS completed (or discontinued).

Two ways in:
- the module functions (retry, dead_letter, re_forward) take a JobQueue and raise `Refused` for a
  whole command refused (unknown destination, no job IDs, ...); the command line (cli.py) calls
  them, on the buffer of a service that may run in another process, and then wakes that process
  with SIGUSR1;
- `Commands`, the facade on a running service (`Gateway.commands`): the same verbs, returning a
  `CommandResult` with what was done or the refusal, and waking the workers directly. The verbs
  on a device the service holds (eject, import_medium) exist only here; the command line reaches
  them through the service's control socket (gateway/control.py).

"""

from __future__ import annotations

import json
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from gateway.buffer.queue import VerbResult

if TYPE_CHECKING:
    from gateway.buffer.procedure import Procedure
    from gateway.buffer.queue import JobQueue
    from gateway.config import Config
    from gateway.capture.service import CaptureService
    from gateway.dicom.worklist_service import WorklistService


# How long import_medium waits for the drive's worker to report the import before answering
# "still reading": a stick of a few studies is read well within it, a full DVD may not be.
IMPORT_WAIT_S = 120.0


class Refused(Exception):
    """The whole command is refused: nothing was done. `usage`: what was asked cannot be (an unknown
    name, a bad job ID; the command line exits 2 for it) rather than a state of the buffer or
    config (exit 1)."""

    def __init__(self, message: str, usage: bool = False):
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class CommandResult:
    """What a command did.

    verb: "retry", "dead-letter", "re-forward" or "wake". results: per job or object, what the
    queue did (VerbResult: ok, the one-line message). summary: the closing line ("2 jobs queued
    again"). notes: what the operator should know besides ("destination 'pacs' is disabled; its
    jobs wait until it is"). refused: why the whole command was refused ("" when it ran); usage: that
    refusal is a mistake in the request. woken: the workers were told to look at the queue now.
    failed: the verb ran but did not do all it should (an import that left files out); its
    words are in the results and summary."""

    verb: str
    results: tuple[VerbResult, ...] = ()
    summary: str = ""
    notes: tuple[str, ...] = ()
    refused: str = ""
    usage: bool = False
    woken: bool = False
    failed: bool = False

    @property
    def ok(self) -> bool:
        """Ran, nothing in it was refused and nothing failed."""
        return not self.refused and not self.failed and all(r.ok for r in self.results)

    @property
    def changed(self) -> bool:
        """The queue changed (something for the workers to act on)."""
        return any(r.ok and r.changed for r in self.results)

    def lines(self) -> list[str]:
        """What the command line prints on stdout: each result, the summary, the notes."""
        if self.refused:
            return [self.refused]
        return ([r.message if r.ok else f"refused: {r.message}" for r in self.results] + [self.summary]
                + [f"note: {n}" for n in self.notes])


# -- checks shared by the command line and the facade ---------------------------------------------
def job_ids(verb: str, raw: Iterable[str | int]) -> list[int]:
    """Job IDs as given (text or numbers); Refused (usage) naming the first that is not one."""
    out = []
    for r in map(str, raw):
        if not r.isdigit() or int(r) == 0:
            raise Refused(f"{verb}: {r!r} is not a job ID (job IDs are the numbers `dicom-gateway queue list`"
                          " shows)", usage=True)
        out.append(int(r))
    return out


def need_ids(verb: str, ids: list[int]) -> None:
    """dead-letter has no "all": it needs the jobs named."""
    if not ids:
        raise Refused(f"{verb}: give the IDs of the jobs to give up on", usage=True)


def forward_destination(config: "Config", to: str) -> None:
    """re-forward's destination: one in the config (Refused, usage), and enabled (Refused)."""
    dest = config.destinations.get(to)
    if dest is None:
        known = ", ".join(config.destinations) or "none configured"
        raise Refused(f"re-forward: unknown destination {to!r} (destinations: {known})", usage=True)
    if not dest.enabled:
        raise Refused(f"re-forward: destination {to!r} is disabled (destinations.{to}.enabled)")


@dataclass(frozen=True)
class Selection:
    """What re_forward sends: forward job IDs, or every instance of a study, of a series, or one
    instance (by UID) held in the buffer. Exactly one of them."""

    jobs: tuple[str | int, ...] = ()
    study: str | None = None
    series: str | None = None
    instance: str | None = None

    def form(self) -> tuple[str, str | None]:
        """("jobs", None) or (level, UID); Refused (usage) unless exactly one form is given."""
        forms = [(n, v) for n, v in (("jobs", self.jobs), ("study", self.study), ("series", self.series),
                                     ("instance", self.instance)) if v]
        if len(forms) != 1:
            raise Refused("re-forward: give job IDs, or one of --study / --series / --instance UID", usage=True)
        level, value = forms[0]
        return (level, None) if level == "jobs" else (level, value)


_INSTANCES_OF = {
    "study": "SELECT i.id FROM instances i JOIN series se ON se.id = i.series_fk"
             " JOIN studies st ON st.id = se.study_fk WHERE st.study_uid = ? ORDER BY i.id",
    "series": "SELECT i.id FROM instances i JOIN series se ON se.id = i.series_fk"
              " WHERE se.series_uid = ? ORDER BY i.id",
    "instance": "SELECT id FROM instances WHERE sop_uid = ?",
}


def idle_target_notes(config: "Config", jobs) -> list[str]:
    """Jobs queued again for a destination or printer that no worker serves wait until one does:
    say so, or the operator waits for nothing."""
    idle = set()
    for j in jobs:
        if j is None:
            continue
        if j.kind == "forward":
            d = config.destinations.get(j.target)
            if d is None or not d.enabled:
                idle.add(f"destination {j.target!r} is {'disabled' if d else 'not in the config'}")
        elif j.kind == "print" and (not config.print.enabled or config.print.name != j.target):
            idle.add(f"printer {j.target!r} is not enabled in the config")
    return [f"{why}; its jobs wait until it is" for why in sorted(idle)]


# -- the verbs ------------------------------------------------------------------------------------
def retry(queue: "JobQueue", ids: list[int], config: "Config | None" = None) -> CommandResult:
    """retry_jobs(ids), or retry_all_dead() when no ids are given. With the config, notes name the
    jobs queued again for a destination or printer that no worker serves."""
    results = queue.retry_jobs(ids) if ids else queue.retry_all_dead()
    done = sum(r.ok for r in results)
    notes = idle_target_notes(config, [queue.get(r.job_id) for r in results if r.ok and r.job_id]) if config else []
    return CommandResult("retry", tuple(results), f"{done} jobs queued again" + ("" if results else " (no dead jobs)"),
                         tuple(notes))


def dead_letter(queue: "JobQueue", ids: list[int], reason: str = "dead-lettered by operator") -> CommandResult:
    """dead_letter_jobs(ids, reason); Refused without ids."""
    need_ids("queue dead-letter", ids)
    results = queue.dead_letter_jobs(ids, reason)
    return CommandResult("dead-letter", tuple(results),
                         f"{sum(r.ok and r.changed for r in results)} jobs dead-lettered")


def re_forward(queue: "JobQueue", config: "Config", selection: Selection, to: str) -> CommandResult:
    """reforward_jobs / reforward_instances to destination `to`; Refused for an unknown or disabled
    destination, a selection that is not exactly one form, or a UID the buffer does not hold."""
    forward_destination(config, to)
    level, uid = selection.form()
    if level == "jobs":
        results = queue.reforward_jobs(job_ids("re-forward", selection.jobs), to)
    else:
        ids = [r["id"] for r in queue.index.query(_INSTANCES_OF[level], (uid,))]
        if not ids:
            raise Refused(f"re-forward: no {level} {uid} in the buffer")
        results = queue.reforward_instances(ids, to)
    return CommandResult("re-forward", tuple(results), f"{sum(r.ok for r in results)} objects queued for {to}")


def export_drive(config: "Config", name: str | None) -> str:
    """The drive an export goes to: `name`, or the only configured one. Refused (usage) for no
    drive, an unknown one, or a choice to make."""
    drives = config.media.drives
    if not drives:
        raise Refused("export: no media drive is configured ([media.drives.<name>])", usage=True)
    if name is None:
        if len(drives) > 1:
            raise Refused(f"export: {len(drives)} drives are configured; choose one with --to: "
                          f"{', '.join(sorted(drives))}", usage=True)
        (name,) = drives
    elif name not in drives:
        raise Refused(f"export: unknown drive {name!r} (configured: {', '.join(sorted(drives))})", usage=True)
    return name


def export(queue: "JobQueue", config: "Config", study_uids: Iterable[str], drive: str | None = None,
           copies: int = 1, capacity=None, events=None, mark: bool = True) -> CommandResult:
    """Queue these studies for a medium in `drive` (gateway/media/export.py enqueue_export: one job
    a medium, split at series boundaries for `capacity`, (kind, bytes), default the nominal
    capacity of the drive's kind). Refused for an unknown study or drive.

    `mark`: the studies count as exported for the export rules (gateway/media/rules.py: a rule
    taking "not-exported" studies leaves them out) while one of these jobs is not dead; an
    operator who burnt a study for the patient does not want it on the next automatic disc."""
    from gateway.media.export import ExportRefused, ExportRequest, enqueue_export, nominal_capacity
    from gateway.media.rules import record_export

    name = export_drive(config, drive)
    uids = tuple(study_uids)
    if not uids:
        raise Refused("export: give at least one Study Instance UID", usage=True)
    if capacity is None:
        d = config.media.drives[name]
        capacity = nominal_capacity(d.kind, d.sim_cd_mb)
    try:
        ids = enqueue_export(queue, ExportRequest(uids, name, copies, "operator"), capacity=capacity, events=events)
    except ExportRefused as exc:
        raise Refused(str(exc)) from None
    # Recorded either way (the rules' view of which jobs carry a study); a marking record makes the
    # study "exported". After the jobs are queued: a crash between the two leaves a study unmarked
    # (exported once more at worst), never marked by a job that does not exist.
    record_export(queue.index, uids, ids, mark)
    results = tuple(VerbResult(i, True, f"job {i}: {queue.describe(queue.get(i))} queued") for i in ids)
    return CommandResult("export", results, f"{len(ids)} media queued for drive {name}")


class Commands:
    """The verbs on a running service (Gateway.commands), for the panel and the status page: each
    returns a CommandResult (a refusal included, never raised) and wakes the workers directly
    when the queue changed, instead of the command line's SIGUSR1.

    `drives` / `exporters` (by drive name), `busy(drive)` and `request_import(drive)` (a Future
    of gateway/media/service.ImportOutcome) come from the media service when drives are
    configured: export() splits for the medium in the drive, eject() and import_medium() refuse
    while the drive is written or read, import_medium() has the drive's worker do the import."""

    def __init__(self, queue: "JobQueue", config: "Config", wake: Callable[[], None] | None = None, *,
                 drives: dict | None = None, exporters: dict | None = None,
                 busy: Callable[[str], object] | None = None, events=None,
                 request_import: Callable[[str], object] | None = None,
                 worklist: "WorklistService | None" = None, capture: "CaptureService | None" = None):
        self.queue = queue
        self.worklist = worklist
        self.capture_service = capture
        self.config = config
        self._wake = wake or queue.wake_all
        self.drives = drives or {}
        self.exporters = exporters or {}
        self._busy = busy or (lambda name: None)
        self._request_import = request_import
        self.events = events

    def _run(self, verb: str, call: Callable[[], CommandResult]) -> CommandResult:
        try:
            result = call()
        except Refused as exc:
            return CommandResult(verb, refused=str(exc), usage=exc.usage)
        if result.changed:
            self._wake()
            result = CommandResult(result.verb, result.results, result.summary, result.notes, woken=True)
        return result

    def retry(self, ids: Iterable[int | str] = ()) -> CommandResult:
        """Retry these jobs (no ids: every dead job)."""
        return self._run("retry", lambda: retry(self.queue, job_ids("queue retry", ids), self.config))

    def dead_letter(self, ids: Iterable[int | str], reason: str = "dead-lettered by operator") -> CommandResult:
        """Give these queued jobs up."""
        return self._run("dead-letter", lambda: dead_letter(self.queue, job_ids("queue dead-letter", ids), reason))

    def re_forward(self, selection: Selection, to: str) -> CommandResult:
        """Send these jobs' objects, or this study / series / instance, to destination `to` again."""
        return self._run("re-forward", lambda: re_forward(self.queue, self.config, selection, to))

    def export(self, study_uids: Iterable[str], drive: str | None = None, copies: int = 1,
               mark: bool = True) -> CommandResult:
        """Queue these studies for a medium (the front panel's "export the chosen study"): split
        for the medium now in the drive when there is a blank one, else for the drive's kind.
        `mark`: as export() above."""
        def call() -> CommandResult:
            from gateway.media.export import medium_capacity

            name = export_drive(self.config, drive)
            capacity = None
            if name in self.drives:
                try:
                    capacity = medium_capacity(self.drives[name].medium())
                except Exception:  # noqa: BLE001 - a drive that cannot say: split for its kind
                    capacity = None
            result = export(self.queue, self.config, study_uids, name, copies, capacity, self.events, mark)
            if name in self.exporters:
                self.exporters[name].medium_changed()
            return result
        return self._run("export", call)

    def _drive_refusal(self, verb: str, drive: str, writing_then: str) -> CommandResult | None:
        """The refusals eject and import share: an unknown drive (usage), a drive whose medium is
        written or verified (an export job in flight; `writing_then` says what follows), one
        whose worker is busy (an import, the export rules)."""
        if drive not in self.drives:
            return CommandResult(verb, refused=f"{verb}: unknown drive {drive!r}"
                                 f" (configured: {', '.join(sorted(self.drives)) or 'none'})", usage=True)
        # An export job in flight on this drive is writing or verifying its medium.
        if self.queue.open_counts().get(("export", drive, "in_flight")):
            return CommandResult(verb, refused=f"{verb}: drive {drive} is writing or verifying its medium;"
                                 f" {writing_then}")
        if self._busy(drive):
            return CommandResult(verb, refused=f"{verb}: drive {drive} is reading its medium (an import)"
                                 " or choosing what to write on it; try again when it is done")
        return None

    def eject(self, drive: str) -> CommandResult:
        """Give the medium back (open the tray, release the stick). Refused for an unknown drive,
        or while the box writes, verifies or reads that medium (ejecting then would ruin it)."""
        refusal = self._drive_refusal("eject", drive, "it ejects it by itself when done")
        if refusal is not None:
            return refusal
        from drivers.media.interface import MediaError

        try:
            held = self.drives[drive].medium()
            self.drives[drive].eject()
        except MediaError as exc:
            return CommandResult("eject", refused=f"eject: {exc}")
        if held is None:
            # Not an error (an optical drive opens its tray all the same), but not "released" either.
            return CommandResult("eject", summary=f"drive {drive}: no medium in the drive (nothing to release)")
        return CommandResult("eject", summary=f"drive {drive}: medium released")

    def import_medium(self, drive: str, wait_s: float = IMPORT_WAIT_S) -> CommandResult:
        """Import the medium now in `drive` (issue 8 item 4, `dicom-gateway import DRIVE`): the
        media service's worker for that drive reads it and imports it as MEDIA:<drive>, exactly
        as on insertion (gateway/media/service.py). Waits up to `wait_s` seconds for the import's
        report: its summary and number; past that, says the drive is still reading.

        Refused (one line) for an unknown drive (usage), no media service, a drive being written
        or verified, a drive already busy, no medium, a blank medium. An import that ran but
        failed (some files not imported, the medium unreadable) is a result with ok False."""
        refusal = self._drive_refusal("import", drive, "try again when it is done")
        if refusal is not None:
            return refusal
        if self._request_import is None:
            return CommandResult("import", refused="import: the media service is not running")
        done = self._request_import(drive)
        try:
            outcome = done.result(timeout=wait_s)
        except FutureTimeout:
            return CommandResult("import", summary=f"drive {drive}: still reading its medium after {wait_s:g} s;"
                                 " the report when done: dicom-gateway imports")
        if outcome.refused:
            return CommandResult("import", refused=outcome.refused)
        what = f"import {outcome.import_id} of drive {drive} as MEDIA:{drive}" if outcome.import_id \
            else f"import of drive {drive}"
        results = (VerbResult(None, True, f"{what}: {outcome.detail}", changed=False),)
        if outcome.ok:
            summary = f"the report: dicom-gateway imports {outcome.import_id}"
        elif outcome.import_id:
            summary = f"some files were not imported; the report: dicom-gateway imports {outcome.import_id}"
        else:
            summary = f"drive {drive}: the medium could not be read"
        return CommandResult("import", results, summary, failed=not outcome.ok)

    def wake(self) -> CommandResult:
        """The workers look at the queue now, even those backing off (a destination down, a printer
        not ready)."""
        self._wake()
        return CommandResult("wake", summary="workers told to look at the queue now", woken=True)

    # -- the worklist and the current procedure (issue 10 item 1) ----------------------------------
    def _no_worklist(self, verb: str) -> CommandResult | None:
        if self.worklist is None:
            return CommandResult(verb, refused=f"{verb}: the worklist service is not running in this service")
        return None

    def worklist_refresh(self) -> CommandResult:
        """Ask the worklist SCP now (WorklistService.refresh: at most worklist.timeout_s). Refused
        when the worklist is not enabled; failed (one line) when the SCP did not answer well."""
        refusal = self._no_worklist("worklist-refresh")
        if refusal is not None:
            return refusal
        outcome = self.worklist.refresh()
        if outcome.ok:
            return CommandResult("worklist-refresh", summary=f"worklist refreshed: {outcome.items} items")
        if outcome.pending:
            return CommandResult("worklist-refresh", summary=f"the worklist SCP has not answered within "
                                 f"{self.worklist.section.timeout_s:g} s; its answer is used when it comes")
        st = self.worklist.status()
        using = (f"; using the worklist fetched at {_when(st['fetched_at'])}" if st["fetched_at"]
                 else "; no worklist: unscheduled captures only")
        if not st["enabled"]:
            return CommandResult("worklist-refresh", refused=f"worklist-refresh: {outcome.reason}")
        return CommandResult("worklist-refresh", summary=f"worklist refresh failed: {outcome.reason}{using}",
                             failed=True)

    def _procedure_verb(self, verb: str, call: Callable[[], "Procedure"]) -> CommandResult:
        from gateway.capture.procedure import SelectionError

        refusal = self._no_worklist(verb)
        if refusal is not None:
            return refusal
        try:
            chosen = call()
        except SelectionError as exc:
            return CommandResult(verb, refused=f"{verb}: {exc}")
        except OSError as exc:
            return CommandResult(verb, refused=f"{verb}: cannot keep the unscheduled ID counter: {exc.strerror or exc}")
        again = (" (ENDED ONCE ALREADY in this run: capturing for it starts a new performed step)"
                 if self.worklist.current.was_done(chosen.key) else "")
        return CommandResult(verb, summary="current procedure: " + describe_procedure(
            chosen, self.worklist.current.position(), len(self.worklist.current.items())) + again)

    def select_procedure(self, which: str) -> CommandResult:
        """Make the worklist item at 1-based position ``which`` (digits), or with that key, current."""
        return self._procedure_verb("procedure-select", lambda: self.worklist.current.select(which))

    def next_procedure(self) -> CommandResult:
        """The next worklist item becomes current (wraps; the first when none is)."""
        return self._procedure_verb("procedure-next", self.worklist.current.next if self.worklist else None)

    def previous_procedure(self) -> CommandResult:
        """The previous worklist item becomes current (wraps; the last when none is)."""
        return self._procedure_verb("procedure-previous", self.worklist.current.previous if self.worklist else None)

    def unscheduled_procedure(self) -> CommandResult:
        """A new unscheduled identity (generated Patient ID, flagged unscheduled) becomes current."""
        return self._procedure_verb("procedure-unscheduled", self.worklist.current.unscheduled if self.worklist else None)

    def worklist_status(self) -> CommandResult:
        """The summary is JSON: {"current": key or "", "current_patient_id", "current_scheduled",
        "position": int or null, and WorklistService.status()'s keys}."""
        refusal = self._no_worklist("worklist-status")
        if refusal is not None:
            return refusal
        cur = self.worklist.current.current()
        doc = {"current": cur.key if cur else "", "current_patient_id": cur.patient_id if cur else "",
               "current_scheduled": cur.scheduled if cur else True,
               "position": self.worklist.current.position(), **self.worklist.status()}
        return CommandResult("worklist-status", summary=json.dumps(doc))

    def capture(self, clip_s: float = 0.0, wait_s: float = 0.0) -> CommandResult:
        """A still (``clip_s`` 0) or a clip of ``clip_s`` seconds for the current procedure (an
        unscheduled one when none is chosen and the worklist has no single item due now). For a
        clip, ``wait_s`` > 0 waits that long for it to be stored (its outcome is the answer);
        0 answers when recording starts. Refused (nothing made) with no grabber, no signal, a clip
        already recording, a clip longer than capture.clip_max_s."""
        verb = "capture"
        svc = self.capture_service
        if svc is None:
            return CommandResult(verb, refused=f"{verb}: no grabber ([capture] enabled = false)")
        if clip_s < 0 or wait_s < 0:
            return CommandResult(verb, refused=f"{verb}: a clip length and a wait are not negative", usage=True)
        outcome = svc.still() if clip_s == 0 else svc.clip(clip_s)
        if not outcome.ok:
            return CommandResult(verb, refused=f"{verb}: {outcome.line}")
        if clip_s and wait_s:
            done = svc.wait_clip(wait_s)
            if done is None:
                return CommandResult(verb, summary=f"{outcome.line}; not stored yet after {wait_s:g} s "
                                                   f"(capture-stored tells when)")
            if not done.ok:
                return CommandResult(verb, summary=f"clip: {done.line}", failed=True)
            outcome = done
        return CommandResult(verb, summary=outcome.line)

    def end_procedure(self, discontinued: bool = False) -> CommandResult:
        """The procedure captured for is over (CaptureService.end_procedure): its MPPS N-SET
        COMPLETED, or DISCONTINUED, is queued. Refused with no grabber, nothing captured, a clip
        recording."""
        verb = "capture-end"
        svc = self.capture_service
        if svc is None:
            return CommandResult(verb, refused=f"{verb}: no grabber ([capture] enabled = false)")
        outcome = svc.end_procedure(discontinued)
        if not outcome.ok:
            return CommandResult(verb, refused=f"{verb}: {outcome.line}")
        return CommandResult(verb, summary=outcome.line)


def _when(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def describe_procedure(p: "Procedure", position: int | None, of: int) -> str:
    """One line naming a procedure without the patient's name (it goes to logs and the panel's
    answer line): "2 of 5: Patient ID PID001, accession ACC001, US, start 2026-11-29 10:15, Abdomen"."""
    where = f"{position} of {of}: " if position else ("unscheduled: " if not p.scheduled else "not in the worklist: ")
    parts = [f"Patient ID {p.patient_id or '-'}"]
    if p.accession_number:
        parts.append(f"accession {p.accession_number}")
    if p.modality:
        parts.append(p.modality)
    if len(p.start) >= 12:
        parts.append(f"start {p.start[:4]}-{p.start[4:6]}-{p.start[6:8]} {p.start[8:10]}:{p.start[10:12]}")
    if p.description:
        parts.append(p.description)
    return where + ", ".join(parts)
