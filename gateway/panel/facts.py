"""What the panel knows of the service, folded from the event stream, and which events raise or clear
an alarm (gateway/panel/alarms.py).

Why the panel folds events itself instead of reading the StateObserver's snapshot (gateway/state.py):
the snapshot changes on its own thread and would have to be polled, and it lacks what the panel
needs: the moment of each instance received or forwarded (the activity LED), a print job printing,
an export's part "1 of 2", and above all the alarms and their acknowledgement, which are the
panel's own state. Folding is cheap (a few dict updates per event) and the panel subscribes only
to FOLDED. Where both fold the same fact the panel uses the snapshot's vocabulary (queue states from
gateway.state) so that the panel and `dicom-gateway status` cannot disagree on words.

Which events are alarms (needing the ACK button) and which are only LEDs:
  alarm, standing until cleared   disk full / below reserve (cleared when space is back),
                                  printer FAILURE (cleared by NORMAL or WARNING), a config problem
                                  at run time (nothing clears it: it holds until a restart; ACK
                                  steadies the error LED)
  alarm, momentary                job dead-lettered, export failed, media fault, import failed,
                                  film held, print job FAILURE, buffer write error
  no alarm                        destination down (the network LED blinks and the status line says
                                  so; a radiographer cannot mend a PACS, and its restarts would keep
                                  the error LED blinking), store refused (the sender got the status)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.event_kinds import (BUFFER_ERROR, CONFIG_PROBLEM, DEAD_LETTERED, DESTINATION_DOWN, DESTINATION_STILL_DOWN,
                                 DESTINATION_UP, DISK_FULL, DISK_SPACE, EVICTED, EXPORT_FAILED, EXPORT_PROGRESS, EXPORT_QUEUED,
                                 EXPORT_STARTED, EXPORT_VERIFIED, EXPORT_WRITTEN, FORWARDED, MEDIA_EXPORT_QUEUED,
                                 MEDIA_FAULT, MEDIA_IMPORT_DONE, MEDIA_IMPORT_FINISHED, MEDIA_IMPORT_QUEUED,
                                 MEDIA_INSERTED, MEDIA_NOTHING_TO_EXPORT, MEDIA_REMOVED, MEDIA_WATCHING, PRINT_HELD,
                                 PRINT_JOB, PRINTED, PRINTER_STATUS_CHANGED, QUEUE_DEPTHS, RECEIVED)
from gateway.event_kinds import (CAPTURE_CLIP_STARTED, CAPTURE_FAILED, CAPTURE_SIGNAL, CAPTURE_STORED,
                                 PROCEDURE_SELECTED)
from gateway.events import Event
from gateway.panel.alarms import Alarms
from gateway.state import WAITING_STATES

# The kinds the panel folds: subscribe with `events.subscribe(kinds=FOLDED)`.
FOLDED = (RECEIVED, FORWARDED, DESTINATION_UP, DESTINATION_DOWN, DESTINATION_STILL_DOWN, DEAD_LETTERED,
          QUEUE_DEPTHS, DISK_SPACE, DISK_FULL, EVICTED, BUFFER_ERROR, PRINTER_STATUS_CHANGED, PRINT_JOB,
          PRINT_HELD, PRINTED, MEDIA_INSERTED, MEDIA_REMOVED, MEDIA_WATCHING, MEDIA_EXPORT_QUEUED,
          MEDIA_NOTHING_TO_EXPORT, MEDIA_IMPORT_QUEUED, MEDIA_IMPORT_DONE, MEDIA_IMPORT_FINISHED, MEDIA_FAULT,
          EXPORT_QUEUED, EXPORT_STARTED, EXPORT_PROGRESS, EXPORT_WRITTEN, EXPORT_VERIFIED, EXPORT_FAILED,
          CONFIG_PROBLEM, CAPTURE_SIGNAL, CAPTURE_CLIP_STARTED, CAPTURE_STORED, CAPTURE_FAILED, PROCEDURE_SELECTED)

# Job kinds whose waiting jobs are the backlog. Export jobs are left out: they wait for a blank
# medium, maybe for days, and the media LED and page show them.
BACKLOG_KINDS = ("forward", "print")


@dataclass
class Drive:
    """One media drive as the panel shows it. present: a medium is in (None: not known yet).
    medium: "cd", "dvd", "usb". blank. busy: "" (idle), "export queued", "writing", "verifying",
    "importing". part / of: the export's medium number ("1 of 2"). last: what became of the last
    medium, a few words ("VERIFIED", "EXPORT FAILED", "IMPORTED 12"). failed: the last export
    or read of this medium failed (media LED blinks fast until the medium is removed). percent:
    how much of the file-set is written (export-progress), None when not known.
    exports_waiting: export jobs queued for this drive."""

    present: bool | None = None
    medium: str = ""
    blank: bool = False
    busy: str = ""
    part: int = 1
    of: int = 1
    last: str = ""
    failed: bool = False
    percent: int | None = None
    exports_waiting: int = 0


@dataclass
class Facts:
    """The panel's view of the service. Times in seconds since the epoch, sizes in bytes.

    counted: a queue-depths tick arrived (the service is up and its index answers). destinations:
    name -> reachable (None: not tried yet). down_reason: name -> why unreachable. waiting / dead:
    backlog jobs (BACKLOG_KINDS) on their way / dead-lettered. free_bytes / reserve_bytes / below_reserve.
    last_activity: the last instance received or forwarded, or film printed. printer_status
    ("NORMAL", "WARNING", "FAILURE", None: not read yet or printing off), printer_info, printing (a
    job is PRINTING). drives: name -> Drive. received / forwarded: counts since start."""

    counted: bool = False
    destinations: dict[str, bool | None] = field(default_factory=dict)
    down_reason: dict[str, str] = field(default_factory=dict)
    waiting: int = 0
    dead: int = 0
    free_bytes: int | None = None
    reserve_bytes: int | None = None
    below_reserve: bool = False
    last_activity: float | None = None
    printer_status: str | None = None
    printer_info: str = ""
    printing: bool = False
    drives: dict[str, Drive] = field(default_factory=dict)
    received: int = 0
    forwarded: int = 0
    # The capture page: the grabber's signal (None: no frame yet), a clip recording, the procedure
    # chosen (its Patient ID; never the name: events carry none), objects captured for it.
    signal: str | None = None
    recording: bool = False
    procedure_id: str = ""
    procedure_key: str = ""
    scheduled: bool = True
    captured: int = 0

    def drive(self, name: str) -> Drive:
        """The drive `name` (created unknown on first mention: a drive the config names before any event)."""
        return self.drives.setdefault(name, Drive())

    def apply(self, ev: Event, alarms: Alarms) -> None:
        """Fold one event (any kind; kinds not in FOLDED are ignored) and raise or clear its alarms."""
        d, kind, at = ev.data, ev.kind, ev.at
        if kind == RECEIVED:
            self.received += 1
            self.last_activity = at
        elif kind == FORWARDED:
            self.forwarded += int(d["count"])
            self.last_activity = at
            self.destinations[d["target"]] = True
            self.down_reason.pop(d["target"], None)
        elif kind == DESTINATION_UP:
            self.destinations[d["target"]] = True
            self.down_reason.pop(d["target"], None)
        elif kind in (DESTINATION_DOWN, DESTINATION_STILL_DOWN):
            self.destinations[d["target"]] = False
            self.down_reason[d["target"]] = d["reason"]
        elif kind == DEAD_LETTERED:
            alarms.raise_(f"dead:{d['target']}", "JOB GIVEN UP", f"{d['target']}: {d['reason']}", at, momentary=True)
        elif kind == QUEUE_DEPTHS:
            self._queue_depths(d["counts"])
        elif kind == DISK_SPACE:
            self.free_bytes, self.reserve_bytes = d["free_bytes"], d["reserve_bytes"]
            self._disk(alarms, at)
        elif kind == EVICTED:
            self.free_bytes = d["free_bytes"]
            self._disk(alarms, at)
        elif kind == DISK_FULL:
            self.below_reserve = True
            alarms.raise_("disk", "DISK FULL", "images are refused: the buffer is full", at)
        elif kind == BUFFER_ERROR:
            alarms.raise_("buffer", "BUFFER ERROR", d["detail"], at, momentary=True)
        elif kind == PRINTER_STATUS_CHANGED:
            self.printer_status, self.printer_info = d["status"], d["info"]
            if d["status"] == "FAILURE":
                alarms.raise_("printer", "PRINTER FAULT", d["info"] or "printer failure", at)
            else:
                alarms.clear("printer")
        elif kind == PRINT_JOB:
            self.printing = d["status"] == "PRINTING"
            if d["status"] == "FAILURE":
                alarms.raise_("print-failed", "PRINT FAILED", d["info"] or "print job failed", at, momentary=True)
        elif kind == PRINT_HELD:
            alarms.raise_("print-held", "FILM HELD", f"job {d['job_id']}: {d['reason']}", at, momentary=True)
        elif kind == PRINTED:
            self.last_activity = at
        elif kind == CAPTURE_SIGNAL:
            self.signal = "lost" if d["state"] == "lost" else "up"
            if self.signal == "lost":
                self.recording = False
        elif kind == CAPTURE_CLIP_STARTED:
            self.recording = True
        elif kind == CAPTURE_STORED:
            self.last_activity = at
            self.recording = self.recording and d["what"] != "clip"
            self.captured += d["procedure"] == self.procedure_key
        elif kind == CAPTURE_FAILED:
            self.recording = self.recording and d["what"] != "clip"
        elif kind == PROCEDURE_SELECTED:
            if d["key"] != self.procedure_key:
                self.captured = 0
            self.procedure_key, self.procedure_id, self.scheduled = d["key"], d["patient_id"], d["scheduled"]
        elif kind == CONFIG_PROBLEM:
            # Standing, not momentary: the problem holds until the service is restarted. One alarm
            # per key: the same key failing again is the same problem.
            alarms.raise_(f"config:{d['key']}", "CONFIG PROBLEM", f"{d['key']}: {d['detail']}", at)
        else:
            self._media(ev, alarms)

    def _queue_depths(self, counts) -> None:
        self.counted = True
        self.waiting = self.dead = 0
        exports: dict[str, int] = {}
        for job_kind, target, state, n in counts:
            if job_kind in BACKLOG_KINDS:
                if state in WAITING_STATES:
                    self.waiting += n
                elif state == "dead":
                    self.dead += n
            elif job_kind == "export" and state in WAITING_STATES:
                exports[target] = exports.get(target, 0) + n
        for name, drive in self.drives.items():
            drive.exports_waiting = exports.pop(name, 0)
        for name, n in exports.items():
            self.drive(name).exports_waiting = n

    def _disk(self, alarms: Alarms, at: float) -> None:
        if self.free_bytes is None or self.reserve_bytes is None:
            return
        below = self.free_bytes < self.reserve_bytes
        if below and not self.below_reserve:
            alarms.raise_("disk", "DISK LOW", "free space is under the reserve: images are refused", at)
        elif not below:
            alarms.clear("disk")
        self.below_reserve = below

    def _media(self, ev: Event, alarms: Alarms) -> None:
        d, kind, at = ev.data, ev.kind, ev.at
        if "drive" not in d:
            return
        name = d["drive"]
        drive = self.drive(name)
        if kind == MEDIA_INSERTED:
            drive.present, drive.medium, drive.blank = True, d["medium"], d["blank"]
            drive.busy, drive.failed = "", False
        elif kind == MEDIA_WATCHING:
            if drive.present is None:  # an insert folded before (a medium in at start) stands
                drive.present = False
        elif kind == MEDIA_REMOVED:
            drive.present, drive.medium, drive.blank, drive.busy, drive.failed = False, "", False, "", False
        elif kind in (MEDIA_EXPORT_QUEUED, EXPORT_QUEUED):
            drive.busy = drive.busy or "export queued"
        elif kind == MEDIA_NOTHING_TO_EXPORT:
            drive.last = "NOTHING TO WRITE"  # 16 columns: the narrow display shows it whole
        elif kind == MEDIA_IMPORT_QUEUED:
            drive.busy = "importing"
        elif kind == MEDIA_IMPORT_FINISHED:
            drive.last = f"IMPORTED {d['imported']}"
        elif kind == MEDIA_IMPORT_DONE:
            drive.busy = ""
            if not d["ok"]:
                # Read but not every file taken (skipped, failed) is worth a look, not a failure.
                title = "IMPORT PARTIAL" if d.get("read", True) else "IMPORT FAILED"
                drive.failed, drive.last = True, title
                alarms.raise_(f"import:{name}", title, f"{name}: {d['detail']}", at, momentary=True)
        elif kind == MEDIA_FAULT:
            drive.busy, drive.failed, drive.last = "", True, "FAULT"
            alarms.raise_(f"media:{name}", "MEDIA FAULT", f"{name} {d['action']}: {d['detail']}", at, momentary=True)
        elif kind == EXPORT_STARTED:
            drive.busy, drive.part, drive.of, drive.failed, drive.percent = "writing", d["part"], d["of"], False, None
        elif kind == EXPORT_PROGRESS:
            # total 0: the size is not known yet (an ISO being mastered); say nothing rather than 0 %.
            drive.percent = min(100, d["done_bytes"] * 100 // d["total_bytes"]) if d["total_bytes"] else None
        elif kind == EXPORT_WRITTEN:
            drive.busy, drive.percent = "verifying", None
        elif kind == EXPORT_VERIFIED:
            drive.busy, drive.last, drive.percent = "", "VERIFIED", None
        elif kind == EXPORT_FAILED:
            drive.busy, drive.failed, drive.last, drive.percent = "", True, "EXPORT FAILED", None
            alarms.raise_(f"export:{name}", "EXPORT FAILED", f"{name}: {d['reason']}", at, momentary=True)
