"""The catalogue of event kinds: one constant and one small frozen payload type per kind.

Every event published on the bus (gateway/events.py) is one of these. A publisher writes
`events.publish(Forwarded(target="pacs", count=3))`; an observer subscribes to the kinds it
folds (`events.subscribe(kinds=(FORWARDED, DESTINATION_DOWN))`) and reads `ev.payload` (the
typed value) or `ev.data` (the same fields as a plain dict).

Payloads hold plain values only (str, int, float, bool, tuples of them), never a driver, socket
or database object: an observer may keep them, write them to JSON or show them on a panel, and
this module imports nothing of the gateway (it sits on the "leaves" floor, tests/unit/test_layers.py).
No payload holds patient data (no names, no patient IDs; the one exception is procedure-selected's
Patient ID, which the panel shows to confirm the patient); SOP Instance UIDs are identifiers of
objects, not of people.

Units: times are seconds since the epoch (time.time()), durations are seconds, sizes are bytes.

Kinds by who publishes them:

  listener (gateway/dicom/net)         association-opened, association-refused, association-closed
  intake (gateway/buffer/intake.py)    received, store-refused, disk-full, buffer-error
  store SCP (gateway/dicom/store_scp)  store-refused (refusals decided before the intake)
  retention (gateway/buffer/retention) evicted
  forwarder (gateway/dicom/forward)    destination-up, destination-down, destination-still-down,
                                       forwarded, forward-failed, dead-lettered
  commitment (gateway/dicom/commitment) committed, commitment-refused, dead-lettered
  the service's housekeeping tick      queue-depths, disk-space
    (gateway/app.py)
  printing (gateway/print, print_scp)  print-spooled, print-held, printed, printer-status-changed,
                                       print-job
  media import (gateway/media/importer) media-import-started, media-import-finished
  media export (gateway/media/export)  export-queued, export-started, export-progress,
                                       export-written, export-verified, export-failed
  MPPS SCU (gateway/dicom/mpps_scu.py) mpps-sent, mpps-failed
  media service (gateway/media/service) media-inserted, media-removed, media-export-queued,
                                       media-nothing-to-export, media-import-queued,
                                       media-import-done, media-fault
  capture (gateway/capture/service)    capture-signal, capture-clip-started, capture-stored,
                                       capture-failed
  the service's wiring (gateway/app.py) config-problem
  worklist (gateway/dicom/worklist_service) worklist-refreshed, worklist-failed
  current procedure (gateway/capture/procedure) procedure-selected
  C-FIND SCP (gateway/dicom/qr_find_scp.py) qr-query

The Print SCP's N-EVENT-REPORTs do not ride on these: they are control, and go through the print
domain's PrintJobListener callbacks (gateway/print/reports.py), which never drop. "print-job" here
is the same change, for observers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

# -- the kinds ---------------------------------------------------------------------------------
RECEIVED = "received"
STORE_REFUSED = "store-refused"
DISK_FULL = "disk-full"
BUFFER_ERROR = "buffer-error"
EVICTED = "evicted"
DESTINATION_UP = "destination-up"
DESTINATION_DOWN = "destination-down"
DESTINATION_STILL_DOWN = "destination-still-down"
FORWARDED = "forwarded"
FORWARD_FAILED = "forward-failed"
DEAD_LETTERED = "dead-lettered"
COMMITTED = "committed"
COMMITMENT_REFUSED = "commitment-refused"
QUEUE_DEPTHS = "queue-depths"
DISK_SPACE = "disk-space"
PRINT_SPOOLED = "print-spooled"
PRINT_HELD = "print-held"
PRINTED = "printed"
PRINTER_STATUS_CHANGED = "printer-status-changed"
PRINT_JOB = "print-job"


@dataclass(frozen=True)
class Payload:
    """Base of every payload. `KIND` is the event kind the payload type is published as."""

    KIND: ClassVar[str] = ""

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (shallow: the values themselves are plain already)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# kind -> payload type; filled by @_kind below.
CATALOGUE: dict[str, type[Payload]] = {}


def _kind(kind: str):
    def register(cls: type[Payload]) -> type[Payload]:
        if kind in CATALOGUE:
            raise ValueError(f"event kind {kind!r} is in the catalogue twice")
        cls.KIND = kind
        CATALOGUE[kind] = cls
        return cls
    return register


# -- associations (gateway/dicom/net/association_events.py) ------------------------------------
ASSOCIATION_OPENED = "association-opened"
ASSOCIATION_REFUSED = "association-refused"
ASSOCIATION_CLOSED = "association-closed"


@_kind(ASSOCIATION_OPENED)
@dataclass(frozen=True)
class AssociationOpened(Payload):
    """The listener accepted an association (A-ASSOCIATE-AC sent, PS3.8 9.3.3).

    calling_ae / called_ae: the titles as the policy compared them (normalised: spaces stripped).
    peer: the remote IP address. path: who serves it, "storage" (the receive fast path: only
    Storage and Verification proposed) or "pynetdicom" (print, commitment reports, the rest)."""

    calling_ae: str
    called_ae: str
    peer: str
    path: str


@_kind(ASSOCIATION_REFUSED)
@dataclass(frozen=True)
class AssociationRefused(Payload):
    """The listener answered an association request with an A-ASSOCIATE-RJ (PS3.8 9.3.4).

    result: 1 rejected-permanent, 2 rejected-transient. source: 1 service-user, 2 service-provider
    (ACSE), 3 service-provider (presentation). diagnostic: the reason code for that source (e.g.
    1/1/3 calling AE title not recognised, 1/1/7 called AE title not recognised, 2/3/2 local limit
    exceeded). reason: the same in words. Titles as in AssociationOpened ("" when the request was
    refused before its titles were read)."""

    calling_ae: str
    called_ae: str
    peer: str
    result: int
    source: int
    diagnostic: int
    reason: str


@_kind(ASSOCIATION_CLOSED)
@dataclass(frozen=True)
class AssociationClosed(Payload):
    """An association this listener accepted ended. how: "released" (A-RELEASE-RQ answered,
    PS3.8 7.2) or "aborted" (an A-ABORT either way, a timer, the service stopping, or the connection
    dropped without a release). seconds: from acceptance to the end. Other fields as in
    AssociationOpened."""

    calling_ae: str
    called_ae: str
    peer: str
    path: str
    how: str
    seconds: float


# -- intake and buffer -------------------------------------------------------------------------
@_kind(RECEIVED)
@dataclass(frozen=True)
class Received(Payload):
    """An instance was taken into the buffer (or recognised as one it holds).

    sop_uid: the SOP Instance UID. calling_ae: who sent it (the AE title, or the source's label).
    source: the intake source as text (`AE:<title>`, `MEDIA:<label>`, `CAPTURE:<device>`).
    outcome: the buffer's verdict (gateway.buffer.ingest.Outcome value: "stored", "identical",
    "replaced", "kept-first"). routes: the destinations it was queued for (may be empty).
    bytes: the received Part-10 file's size. seconds: how long the intake took, from the whole
    object being received to it being durable and indexed (fsync, rename, index commit): the part
    of a C-STORE's latency the gateway owns, the Success is sent right after (the network transfer
    before it is the peer's and the link's). 0 / 0.0 from a publisher that does not measure."""

    sop_uid: str
    calling_ae: str
    source: str
    outcome: str
    routes: tuple[str, ...] = ()
    bytes: int = 0
    seconds: float = 0.0
    # the names of the [[coercion]] rules that changed it on ingest (empty: none did)
    coerced: tuple[str, ...] = ()


@_kind(STORE_REFUSED)
@dataclass(frozen=True)
class StoreRefused(Payload):
    """An object was refused and not stored.

    reason: the one-line reason the sender is given. refusal: the intake's refusal name
    (gateway.buffer.intake.Refusal value) when the intake refused; "" for a refusal the Store SCP
    decided itself. status: the DIMSE status (e.g. 0xA700) when the Store SCP refused; None from
    the intake (the adapter maps refusal -> status)."""

    sop_uid: str
    calling_ae: str
    source: str
    reason: str
    refusal: str = ""
    status: int | None = None


@_kind(DISK_FULL)
@dataclass(frozen=True)
class DiskFull(Payload):
    """A received object did not fit: free space is under the reserve or the file system is full.
    detail: the error text."""

    detail: str


@_kind(BUFFER_ERROR)
@dataclass(frozen=True)
class BufferWriteError(Payload):
    """Writing a received object to the buffer failed for another reason than space.
    detail: the error text."""

    detail: str


@_kind(EVICTED)
@dataclass(frozen=True)
class InstancesEvicted(Payload):
    """Delivered (or unrouted, expired) instances were deleted from the buffer.

    reason: why ("done" = delete_when_done after a forward, "delete-when-done", "age",
    "unrouted-age", "low-space", "reserve"). instances: how many. bytes: their size.
    free_bytes: free space on the buffer's file system afterwards."""

    reason: str
    instances: int
    bytes: int
    free_bytes: int


# -- forwarding and commitment -----------------------------------------------------------------
@_kind(DESTINATION_UP)
@dataclass(frozen=True)
class DestinationUp(Payload):
    """A destination accepted an association again after an outage. target: its config name."""

    target: str


@_kind(DESTINATION_DOWN)
@dataclass(frozen=True)
class DestinationDown(Payload):
    """An association to a destination failed: an outage starts.
    reason: the error text. retry_in: seconds until the next attempt."""

    target: str
    reason: str
    retry_in: float


@_kind(DESTINATION_STILL_DOWN)
@dataclass(frozen=True)
class DestinationStillDown(Payload):
    """Another association attempt during an outage failed. Fields as DestinationDown."""

    target: str
    reason: str
    retry_in: float


@_kind(FORWARDED)
@dataclass(frozen=True)
class Forwarded(Payload):
    """Instances were delivered to a destination (accepted; when the destination asks for
    storage commitment, the jobs are done only at the report: see Committed).
    target: the destination's config name. count: how many instances in this batch."""

    target: str
    count: int


@_kind(FORWARD_FAILED)
@dataclass(frozen=True)
class ForwardFailed(Payload):
    """One instance was refused or failed and will be tried again.
    reason: the peer's status or the error text."""

    target: str
    sop_uid: str
    reason: str


@_kind(DEAD_LETTERED)
@dataclass(frozen=True)
class DeadLettered(Payload):
    """A job was given up (state dead) and waits for an operator (`queue retry`).
    target: destination name. sop_uid: the instance. reason: why it was given up."""

    target: str
    sop_uid: str
    reason: str


@_kind(COMMITTED)
@dataclass(frozen=True)
class Committed(Payload):
    """A storage commitment report arrived. transaction: the Transaction UID. committed: how many
    instances the destination committed. failed: how many it did not (sent again or given up)."""

    transaction: str
    committed: int
    failed: int


@_kind(COMMITMENT_REFUSED)
@dataclass(frozen=True)
class CommitmentRefused(Payload):
    """A destination did not accept a storage commitment request; the jobs wait to be sent again.
    reason: "no N-ACTION response" or the N-ACTION status."""

    target: str
    reason: str


# -- the service's housekeeping tick -----------------------------------------------------------
@_kind(QUEUE_DEPTHS)
@dataclass(frozen=True)
class QueueDepths(Payload):
    """The queue's jobs not yet done, counted from the index (the whole picture, not a change).

    counts: (job kind, target, state, number of jobs) for every pair with jobs in a state other
    than "done"; job kind is "forward" or "print", target a destination or printer name, state one
    of "queued", "in_flight", "committing", "dead". A pair absent from `counts` has no such jobs."""

    counts: tuple[tuple[str, str, str, int], ...]


@_kind(DISK_SPACE)
@dataclass(frozen=True)
class DiskSpace(Payload):
    """The buffer's file system, measured. free_bytes / total_bytes: as statvfs reports them for
    an unprivileged writer. reserve_bytes: the configured reserve (buffer.reserve_mb); a C-STORE
    that would leave less free is refused (after retention evicted what it may)."""

    free_bytes: int
    total_bytes: int
    reserve_bytes: int


# -- printing ----------------------------------------------------------------------------------
@_kind(PRINT_SPOOLED)
@dataclass(frozen=True)
class PrintSpooled(Payload):
    """A print job was spooled. uid: the Print Job SOP Instance UID. films: how many films.
    calling_ae: the Print SCU's AE title."""

    uid: str
    films: int
    calling_ae: str


@_kind(PRINT_HELD)
@dataclass(frozen=True)
class PrintHeld(Payload):
    """A film is held for the operator (the printer cannot tell whether it came out).
    uid: the print job. job_id: the queue job (`queue retry <job_id>` prints it again). reason."""

    uid: str
    job_id: int
    reason: str


@_kind(PRINTED)
@dataclass(frozen=True)
class Printed(Payload):
    """A film came out of the printer. uid: the print job. film: the film's number in the job.
    preview: the path of its preview PNG (text)."""

    uid: str
    film: int
    preview: str


@_kind(PRINTER_STATUS_CHANGED)
@dataclass(frozen=True)
class PrinterStatusChanged(Payload):
    """The printer's DICOM status changed (PS3.3 C.13.9.1). status: "NORMAL", "WARNING" or
    "FAILURE". info: the Printer Status Info defined term (e.g. "SUPPLY EMPTY")."""

    status: str
    info: str


@_kind(PRINT_JOB)
@dataclass(frozen=True)
class PrintJobStatus(Payload):
    """A print job's Execution Status changed (PS3.3 C.13.8.1). uid: the print job.
    status: "PENDING", "PRINTING", "DONE" or "FAILURE". info: Execution Status Info.
    calling_ae: the Print SCU that owns the job."""

    uid: str
    status: str
    info: str
    calling_ae: str


# -- media import (gateway/media/importer.py) ---------------------------------------------------
MEDIA_IMPORT_STARTED = "media-import-started"
MEDIA_IMPORT_FINISHED = "media-import-finished"


@_kind(MEDIA_IMPORT_STARTED)
@dataclass(frozen=True)
class MediaImportStarted(Payload):
    """An import of a medium's file-set began (each file then publishes "received" or
    "store-refused" through the intake, source MEDIA:<label>).

    import_id: the report's number in the buffer (`dicom-gateway imports ID`). label: the drive or
    the label given. method: "dicomdir" (its records are followed) or "scan" (every file is read).
    note: why it is scanned or what is wrong with the DICOMDIR ("" when nothing)."""

    import_id: int
    label: str
    method: str
    note: str = ""


@_kind(MEDIA_IMPORT_FINISHED)
@dataclass(frozen=True)
class MediaImportFinished(Payload):
    """An import ended. Counts of files: imported (new in the buffer), duplicates (the buffer held
    the SOP Instance UID: identical, replaced or kept-first by buffer.duplicate_policy), skipped
    (not DICOM, missing, mismatching, unsupported, unreadable), failed (the buffer could not take
    it: disk full, write or index error), flagged (imported, but one Patient ID names two patients
    in the file-set)."""

    import_id: int
    label: str
    imported: int
    duplicates: int
    skipped: int
    failed: int
    flagged: int


# -- media export (gateway/media/export.py) -----------------------------------------------------
EXPORT_QUEUED = "export-queued"
EXPORT_STARTED = "export-started"
EXPORT_PROGRESS = "export-progress"
EXPORT_WRITTEN = "export-written"
EXPORT_VERIFIED = "export-verified"
EXPORT_FAILED = "export-failed"


@_kind(EXPORT_QUEUED)
@dataclass(frozen=True)
class ExportQueued(Payload):
    """An export job was queued: one medium's worth (one part of a split request, one copy).

    job_id: the queue job (`dicom-gateway queue list`). drive: the drive's config name.
    studies / instances: how many studies and instances the job links. part / of: this medium's
    number in a study split over media ("1 of 2"), 1 / 1 when not split. reason: "operator" or
    "rule:<name>"."""

    job_id: int
    drive: str
    studies: int
    instances: int
    part: int = 1
    of: int = 1
    reason: str = "operator"


@_kind(EXPORT_STARTED)
@dataclass(frozen=True)
class ExportStarted(Payload):
    """A job began writing to the medium in its drive. profile: the application profile the
    medium takes (PS3.11: "STD-GEN-CD", "STD-GEN-DVD-JPEG", "STD-GEN-USB-JPEG"). attempt: which
    attempt this is (1 = first). Counts and part / of as in ExportQueued."""

    job_id: int
    drive: str
    profile: str
    studies: int
    instances: int
    part: int = 1
    of: int = 1
    attempt: int = 1


@_kind(EXPORT_PROGRESS)
@dataclass(frozen=True)
class ExportProgress(Payload):
    """How far the drive has written a job's file-set: done_bytes of total_bytes (total_bytes 0:
    not known yet, e.g. while an ISO is mastered). Published at most once every
    export.PROGRESS_EVERY_S seconds and once at the end of the write, so an SD card's status file
    and a panel are not rewritten per block. Read back follows (export-written)."""

    job_id: int
    drive: str
    done_bytes: int
    total_bytes: int


@_kind(EXPORT_WRITTEN)
@dataclass(frozen=True)
class ExportWritten(Payload):
    """The drive wrote the file-set; not yet read back (never a reason to call the medium good).
    files: files on the medium (DICOMDIR, instances, PDI files). bytes: their total size.
    volume_id: the medium's label. Counts and part / of as in ExportQueued."""

    job_id: int
    drive: str
    volume_id: str
    files: int
    bytes: int
    studies: int
    instances: int
    part: int = 1
    of: int = 1


@_kind(EXPORT_VERIFIED)
@dataclass(frozen=True)
class ExportVerified(Payload):
    """The medium was read back and every file matched its source: the medium is good and the job
    done (issue 8 item 5). left_out: instances not on the medium (a transfer syntax the profile
    neither takes nor converts, a Patient ID clash), each logged with its reason."""

    job_id: int
    drive: str
    volume_id: str
    studies: int
    instances: int
    part: int = 1
    of: int = 1
    left_out: int = 0


@_kind(EXPORT_FAILED)
@dataclass(frozen=True)
class ExportFailed(Payload):
    """An export attempt failed; the medium is not good. reason: one line (the drive's error, no
    patient data). state: the job's state now, "queued" (it waits for the next medium) or "dead"
    (dead-lettered: attempts used up, or nothing a medium could fix). attempt: the attempt that failed.
    Counts and part / of as in ExportQueued."""

    job_id: int
    drive: str
    reason: str
    state: str
    attempt: int
    studies: int
    instances: int
    part: int = 1
    of: int = 1


# -- the MPPS SCU (gateway/dicom/mpps_scu.py) ---------------------------------------------------
MPPS_SENT = "mpps-sent"
MPPS_FAILED = "mpps-failed"


@_kind(MPPS_SENT)
@dataclass(frozen=True)
class MppsSent(Payload):
    """The MPPS SCP accepted one step of a Modality Performed Procedure Step (PS3.4 F.7.2).
    mpps_uid: its SOP Instance UID (an object's identifier, not a person's). step: "create"
    (N-CREATE) or "set" (N-SET). status: the Performed Procedure Step Status (0040,0252) the step
    carried: "IN PROGRESS", "COMPLETED" or "DISCONTINUED"."""

    mpps_uid: str
    step: str
    status: str


@_kind(MPPS_FAILED)
@dataclass(frozen=True)
class MppsFailed(Payload):
    """One attempt at an MPPS step failed. step: "create" or "set". reason: one line (the DIMSE
    status by code and name, or why no association). attempt: the attempt that failed (0 when the
    SCP could not be reached: that uses up no attempt). dead: True when the step is dead-lettered
    (attempts used up, or a status no retry changes); else it is retried with backoff."""

    mpps_uid: str
    step: str
    reason: str
    attempt: int
    dead: bool = False


# -- the media service (gateway/media/service.py) ---------------------------------------------------
MEDIA_INSERTED = "media-inserted"
MEDIA_REMOVED = "media-removed"
MEDIA_EXPORT_QUEUED = "media-export-queued"
MEDIA_NOTHING_TO_EXPORT = "media-nothing-to-export"
MEDIA_IMPORT_QUEUED = "media-import-queued"
MEDIA_IMPORT_DONE = "media-import-done"
MEDIA_FAULT = "media-fault"
MEDIA_WATCHING = "media-watching"


@_kind(MEDIA_WATCHING)
@dataclass(frozen=True)
class MediaWatching(Payload):
    """The drive started and its hotplug source is watching: until a media-inserted says
    otherwise, the drive is empty (a medium already in at start is reported inserted, before or
    after this event)."""

    drive: str


@_kind(MEDIA_INSERTED)
@dataclass(frozen=True)
class MediaInserted(Payload):
    """A medium is in a drive and was looked at. drive: the config's drive name. medium: "cd",
    "dvd" or "usb". blank: an empty writable disc or a stick with no file (it is offered to the
    export rules); else it holds data (it is imported). label: the volume label ("" when none).
    read_only: write-protected or closed. capacity_bytes / free_bytes: as the drive reports."""

    drive: str
    medium: str
    blank: bool
    label: str = ""
    read_only: bool = False
    capacity_bytes: int = 0
    free_bytes: int = 0


@_kind(MEDIA_REMOVED)
@dataclass(frozen=True)
class MediaRemoved(Payload):
    """The medium left the drive (tray opened, stick pulled)."""

    drive: str


@_kind(MEDIA_EXPORT_QUEUED)
@dataclass(frozen=True)
class MediaExportQueued(Payload):
    """An export rule queued the studies for the blank medium in `drive`. rule: its name. studies:
    how many; study_uids: which; copies: media per export; jobs: the export jobs' ids;
    still_arriving: matching studies left for later (younger than the rule's stable_s)."""

    drive: str
    rule: str
    studies: int
    study_uids: tuple[str, ...]
    copies: int
    jobs: tuple[int, ...]
    still_arriving: int = 0


@_kind(MEDIA_NOTHING_TO_EXPORT)
@dataclass(frozen=True)
class MediaNothingToExport(Payload):
    """A blank medium was inserted and no export rule selected a study: the medium is left alone.
    reason: one line saying why (no rule for the drive, nothing matched, still arriving, ...)."""

    drive: str
    reason: str


@_kind(MEDIA_IMPORT_QUEUED)
@dataclass(frozen=True)
class MediaImportQueued(Payload):
    """A medium with data in `drive` is being read for import as MEDIA:<label> (its files are copied
    to a staging folder in the buffer, then media-import-started / -finished follow)."""

    drive: str
    label: str


@_kind(MEDIA_IMPORT_DONE)
@dataclass(frozen=True)
class MediaImportDone(Payload):
    """The service is done with an import from `drive`: ok True when every file was imported.
    read False when reading the medium or the import failed as a whole (detail: that one line);
    read True and ok False: the import finished with files skipped or failed (detail: the
    report's summary; `dicom-gateway imports` has each file). import_id 0 when no report was
    begun."""

    drive: str
    ok: bool
    import_id: int = 0
    detail: str = ""
    read: bool = True


@_kind(MEDIA_FAULT)
@dataclass(frozen=True)
class MediaFault(Payload):
    """A drive or medium failed while the service handled it (action: "inspect", "import",
    "export-rules"); detail: the driver's one line. The service keeps running."""

    drive: str
    action: str
    detail: str


# -- capture (gateway/capture/service.py) ---------------------------------------------------------
CAPTURE_SIGNAL = "capture-signal"
CAPTURE_CLIP_STARTED = "capture-clip-started"
CAPTURE_STORED = "capture-stored"
CAPTURE_FAILED = "capture-failed"


@_kind(CAPTURE_SIGNAL)
@dataclass(frozen=True)
class CaptureSignal(Payload):
    """The grabber's input changed. device: the grabber's name. state: "up" (frames arrive: at
    start and when the signal is back), "lost" (no frame within capture.grabber.signal_timeout_s)
    or "format" (the source changed its video mode). width, height, fps: the format now (0 when
    lost)."""

    device: str
    state: str
    width: int = 0
    height: int = 0
    fps: float = 0.0


@_kind(CAPTURE_CLIP_STARTED)
@dataclass(frozen=True)
class CaptureClipStarted(Payload):
    """A clip is being recorded. seconds: how long it was asked for. procedure: the Procedure's
    key (no patient data)."""

    device: str
    seconds: float
    procedure: str


@_kind(CAPTURE_STORED)
@dataclass(frozen=True)
class CaptureStored(Payload):
    """A captured object is durable in the buffer (and routed like a received one). what: "still"
    or "clip". frames: in the object; dropped: the frames a clip lacks against the source's rate
    over its span (dropped for the encoder, or never read in time from the grabber).
    scheduled: the procedure came from the worklist (False: an unscheduled capture). note: why a
    clip ended early ("signal lost after 4.2 s", "video mode changed"), "" when it ran its course."""

    device: str
    what: str
    sop_uid: str
    procedure: str
    scheduled: bool
    frames: int = 1
    dropped: int = 0
    note: str = ""


@_kind(CAPTURE_FAILED)
@dataclass(frozen=True)
class CaptureFailed(Payload):
    """A capture made nothing (no signal, the buffer refused it, the disk is full, a clip cut
    short and discarded by capture.on_signal_lost). reason: one line, no patient data."""

    device: str
    what: str
    reason: str


# -- the service's wiring (gateway/app.py) -------------------------------------------------------
CONFIG_PROBLEM = "config-problem"


@_kind(CONFIG_PROBLEM)
@dataclass(frozen=True)
class ConfigProblem(Payload):
    """Something the config asks for could not be had at run time, and the service runs on
    without it (a device that failed to start, a port in use): what check-config cannot see.
    key: the config key or section it is about ("panel", "status_http.port"). detail: one line
    saying why (the driver's or the OS's words, no patient data). It stands until a restart."""

    key: str
    detail: str


# -- the worklist and the current procedure (issue 10: gateway/dicom/worklist_service.py,
#    gateway/capture/procedure.py) ---------------------------------------------------------------
WORKLIST_REFRESHED = "worklist-refreshed"
WORKLIST_FAILED = "worklist-failed"
PROCEDURE_SELECTED = "procedure-selected"


@_kind(WORKLIST_REFRESHED)
@dataclass(frozen=True)
class WorklistRefreshed(Payload):
    """The worklist in use changed. items: how many Scheduled Procedure Steps it holds (0 is a good
    answer: nothing scheduled). source: "scp" (a C-FIND just answered, PS3.4 K.4.1.3) or "cache"
    (the last good answer read from the buffer at start). at: when that answer was fetched."""

    items: int
    source: str
    at: float


@_kind(WORKLIST_FAILED)
@dataclass(frozen=True)
class WorklistFailed(Payload):
    """A worklist refresh failed; the worklist in use is unchanged. reason: one line (the SCP's
    refusal or status in words, or the network error; no patient data). using_cache_from: when the
    worklist still in use was fetched (0.0: there is none, only unscheduled captures)."""

    reason: str
    using_cache_from: float


@_kind(PROCEDURE_SELECTED)
@dataclass(frozen=True)
class ProcedureSelected(Payload):
    """The current procedure (what a capture is for) changed. key: the Procedure's key ("" when
    none is current any more). patient_id: its Patient ID; the one payload carrying an ID, because
    the panel confirms the patient by it (never the name; logs name the key and the ID only).
    scheduled: False for an unscheduled capture's generated identity. how: "operator" (select,
    next, previous), "auto" (the only item scheduled now), "unscheduled" or "cleared"."""

    key: str
    patient_id: str
    scheduled: bool
    how: str = "operator"


# -- Query/Retrieve: the retrieve SCP (gateway/dicom/qr_retrieve_scp.py) -----------------
QR_RETRIEVE = "qr-retrieve"


@_kind(QR_RETRIEVE)
@dataclass(frozen=True)
class QRRetrieve(Payload):
    """A C-MOVE or C-GET this box served as SCP ended (PS3.4 C.4.2, C.4.3). operation: "C-MOVE" or
    "C-GET". calling_ae: who asked. destination: the Move Destination AE title (for a C-GET, the
    calling AE). status: the final response's status (0x0000, 0xB000, 0xA702, 0xFE00 cancelled,
    0xA801, 0x0124, 0xA900...; -1: none, the requestor's association ended first). completed / failed / warning: the C-STORE sub-operations' outcomes;
    remaining: those never attempted (cancel, association lost). No patient data."""

    operation: str
    calling_ae: str
    destination: str
    status: int
    completed: int
    failed: int
    warning: int
    remaining: int
# -- the C-FIND SCP over the buffer (gateway/dicom/qr_find_scp.py) ---------------------
QR_QUERY = "qr-query"


@_kind(QR_QUERY)
@dataclass(frozen=True)
class QrQuery(Payload):
    """A C-FIND on the buffer ended. calling_ae: the SCU's AE title. model: "PATIENT" or "STUDY"
    (root). level: the Query/Retrieve Level ("" when the identifier had none). matches: pending
    responses sent. status: the final status (0x0000, 0xFE00 cancelled, 0xA900, 0x0124, 0xA700,
    0xC000..). No keys or values of the query: they may name a patient."""

    calling_ae: str
    model: str
    level: str
    matches: int
    status: int
