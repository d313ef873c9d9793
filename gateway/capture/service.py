"""The capture service: frames from the grabber made into DICOM objects for the chosen procedure,
taken into the buffer like a received instance (issue 10 item 3).

One reader thread owns the grabber: it reads frame after frame (drivers/grabber/interface.py),
keeps the latest for a still, follows the signal (capture-signal events: up, lost, format) and
hands a recording clip its frames.  A clip has its own encoder thread behind a bounded queue: when
the encoder falls behind, frames are dropped and counted (the object says how many were kept, the
event how many were dropped), the reader never waits, so the next still is never stale.

What is made (gateway/capture/iod.py): a still becomes Secondary Capture, or VL Endoscopic when the
procedure's modality is ES; a clip becomes Multi-frame True Color SC (or Grayscale Byte SC).  Every
object is written to the buffer's incoming folder and taken by the same intake a C-STORE goes
through (gateway/buffer/intake.py: fsync, index, routes by source "CAPTURE:<device>"), so it is
durable before anyone is told it was captured, and forwarded, printed and exported like any other.
Nothing waits on the network: the worklist is the buffer's copy, MPPS steps are queued jobs.

A clip that loses its signal, or whose source changes video mode, is closed with the frames it
has and says so in the capture-stored event's note (capture.on_signal_lost = "keep", the default),
or discarded (= "discard"); a half-written object never reaches the buffer: the clip file is
complete and synced before the intake sees it, or it is removed.  A clip the buffer's disk cannot
hold (ENOSPC while it is written) is removed too, and said in one line ("the buffer's disk is
full").

A procedure's MPPS step outlives a restart: the first capture (or `capture --end`) for a procedure
whose step is still IN PROGRESS in the buffer carries that step on, with the objects this grabber
stored for it since it began, instead of beginning a second one.

Operator verbs (still, clip, end_procedure) are safe in every state: with no signal, with a clip
already recording, with the grabber absent, they refuse with one line and change nothing.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drivers.grabber.interface import FormatChanged, Frame, FrameFormat, Grabber, GrabberError, SignalLost
from gateway.buffer.procedure import Procedure
from gateway.buffer.source import Source
from gateway.event_kinds import CaptureClipStarted, CaptureFailed, CaptureSignal, CaptureStored
from gateway.events import EventBus

if TYPE_CHECKING:
    from gateway.buffer.intake import Intake
    from gateway.config.capture import CaptureSection

log = logging.getLogger("gateway.capture")

REOPEN_S = 5.0        # a grabber that failed is opened again this often
MIN_CLIP_S = 0.5      # a shorter clip is a mistake (and a still is what was meant)
# A still is of a frame read at most this long ago (or three frame intervals when that is
# longer): within the signal timeout the reader has not declared the signal lost yet, and a
# frame from before a cable was pulled must not be stored as a new one.
FRESH_S = 0.5
_END = object()


class ProcedureSource(Protocol):
    """Which procedure the next capture is for (gateway/capture/procedure.py)."""

    def for_capture(self) -> Procedure: ...


class Mpps(Protocol):
    """The MPPS steps of the procedures captured (gateway/buffer/mpps.py MppsStore): queued jobs,
    never sent from here."""

    def begin(self, procedure: Procedure, mpps_uid: str, started: datetime, station_ae: str, modality: str,
              *, study_uid: str = "") -> int: ...

    def complete(self, mpps_uid: str, referenced: list[tuple[str, str, str]], ended: datetime,
                 discontinued: bool = False) -> int: ...


@dataclass(frozen=True)
class CaptureOutcome:
    """What a verb did: ok, and one line for the operator (no patient name: the ID and the
    procedure's key)."""

    ok: bool
    line: str
    sop_uid: str = ""


@dataclass
class _Performed:
    """One procedure captured for since it was chosen: its series, the next instance number, its
    MPPS and the instances made (for the MPPS N-SET)."""

    procedure: Procedure
    series: Any
    next_instance: int = 1
    mpps_uid: str = ""
    referenced: list[tuple[str, str, str]] = field(default_factory=list)


class CaptureService:
    """See the module docstring.  ``settings``: [capture]; ``grabber``: built from the registry;
    ``procedures``: the procedure choice; ``intake`` and ``new_incoming_path``: the buffer's door
    and a fresh path in its incoming folder; ``equipment``: the grabbing equipment for the SC
    Equipment module (iod.Equipment); ``mpps``: the MPPS store (None when no MPPS SCP is
    configured); ``station_ae``: this box's AE title, the MPPS's Performed Station AE Title."""

    def __init__(self, settings: "CaptureSection", grabber: Grabber, procedures: ProcedureSource,
                 intake: "Intake", new_incoming_path: Callable[[], Path], events: EventBus, *,
                 equipment: Any, mpps: Mpps | None = None, station_ae: str = "",
                 now: Callable[[], datetime] = datetime.now):
        self.settings = settings
        self.grabber = grabber
        self.procedures = procedures
        self.intake = intake
        self.new_incoming_path = new_incoming_path
        self.events = events
        self.equipment = equipment
        self.mpps = mpps
        self.station_ae = station_ae
        self.now = now
        self.name = grabber.name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._latest: Frame | None = None
        self._latest_read = 0.0  # time.monotonic() when _latest was read
        self._format: FrameFormat | None = None
        self._signal = "down"          # down (never opened / failed), up, lost
        self._clip: _Clip | None = None
        self._performed: _Performed | None = None
        # Series Number of the series a procedure's captures go in: counted from 1 in each run
        # (type 2 in the SC IODs; the Series Instance UID is what tells series apart).
        self._series_made = 0
        self.last_line = ""

    # -- life ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the reader thread (it opens the grabber, and opens it again after a failure)."""
        self._reader = threading.Thread(target=self._read_loop, name=f"capture-{self.name}", daemon=True)
        self._reader.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading; a recording clip is closed with what it has (kept: it was captured)."""
        self._stop.set()
        clip = self._clip
        if clip is not None:
            clip.finish("the service stopped")
            clip.thread.join(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        try:
            self.grabber.close()
        except GrabberError as exc:
            log.warning("%s: closing: %s", self.name, exc)

    @property
    def alive(self) -> bool:
        """The reader thread runs (for the service's health)."""
        return self._reader is not None and self._reader.is_alive()

    def status(self) -> dict[str, Any]:
        """{"device", "signal": up|lost|down, "format": {width, height, fps} or None, "recording":
        seconds recorded or None, "last": the last verb's line}."""
        fmt, clip = self._format, self._clip
        return {"device": self.name, "signal": self._signal,
                "format": None if fmt is None else {"width": fmt.width, "height": fmt.height, "fps": fmt.fps},
                "recording": None if clip is None else clip.recorded_s(), "last": self.last_line}

    # -- the reader ------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        timeout = self.settings.grabber.signal_timeout_s
        opened = False
        while not self._stop.is_set():
            if not opened:
                opened = self._open()
                if not opened:
                    self._stop.wait(REOPEN_S)
                continue
            try:
                frame = self.grabber.read(timeout)
            except FormatChanged:
                self._format = self.grabber.format
                self._end_clip("the video mode changed")
                self._publish_signal("format")
                continue
            except SignalLost:
                if self._signal != "lost":
                    log.warning("%s: no signal", self.name)
                    self._latest = None
                    self._signal = "lost"
                    self._publish_signal("lost")
                self._end_clip("the signal was lost")
                continue
            except GrabberError as exc:
                log.error("%s: %s; opened again in %.0f s", self.name, exc, REOPEN_S)
                self._latest, self._signal, opened = None, "down", False
                self._end_clip(f"the grabber failed: {exc}")
                self._publish_signal("lost")
                self._close_quietly()
                self._stop.wait(REOPEN_S)
                continue
            if self._signal != "up":
                log.info("%s: signal %dx%d", self.name, frame.pixels.shape[1], frame.pixels.shape[0])
                self._signal = "up"
                self._publish_signal("up")
            self._latest, self._latest_read = frame, time.monotonic()
            clip = self._clip
            if clip is not None:
                clip.offer(frame)

    def _open(self) -> bool:
        try:
            self._format = self.grabber.open()
            return True
        except GrabberError as exc:
            if self._signal != "down" or not self.last_line.startswith(f"{self.name}: "):
                log.error("%s: %s (tried again every %.0f s)", self.name, exc, REOPEN_S)
            self.last_line = f"{self.name}: {exc}"
            self._signal = "down"
            return False

    def _close_quietly(self) -> None:
        try:
            self.grabber.close()
        except GrabberError:
            pass

    def _publish_signal(self, state: str) -> None:
        fmt = self._format if state != "lost" else None
        self.events.publish(CaptureSignal(device=self.name, state=state,
                                          width=fmt.width if fmt else 0, height=fmt.height if fmt else 0,
                                          fps=fmt.fps if fmt else 0.0))

    # -- verbs -----------------------------------------------------------------------------------
    def still(self) -> CaptureOutcome:
        """Capture the latest frame as a still, durable in the buffer when this returns ok."""
        from gateway.capture import iod  # noqa: PLC0415 - the pixel codecs only on a box that captures

        frame, fmt = self._latest, self._format
        if frame is None:
            return self._failed("still", f"no signal on {self.name}: nothing captured")
        fresh = max(FRESH_S, 3.0 / fmt.fps) if fmt is not None and fmt.fps > 0 else FRESH_S
        if time.monotonic() - self._latest_read > fresh:
            return self._failed("still", f"no frame from {self.name} for {time.monotonic() - self._latest_read:.1f} s "
                                         "(signal lost?): nothing captured")
        performed, refusal = self._performing()
        if performed is None:
            return self._failed("still", refusal)
        acquired = self.now()
        with self._lock:
            number = performed.next_instance
            performed.next_instance += 1
        path = None
        try:
            ds = iod.still(frame.pixels, performed.procedure, performed.series, self.equipment, self.settings,
                           number, acquired)
            path = self.new_incoming_path()
            ds.save_as(path, enforce_file_format=True)
        except (OSError, ValueError, TypeError) as exc:
            if path is not None:
                path.unlink(missing_ok=True)  # half a file never waits in incoming/ for the next start
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            return self._failed("still", f"the still could not be made: {reason}")
        return self._take(path, "still", performed, str(ds.SOPClassUID), str(ds.SOPInstanceUID), 1, 0, "")

    def clip(self, seconds: float) -> CaptureOutcome:
        """Start recording a clip of ``seconds`` (bounded by capture.clip_max_s); returns at once.
        The clip's object is made when it ends (capture-stored / capture-failed)."""
        from gateway.capture.clip_file import ClipWriter  # noqa: PLC0415 - pixel codecs only when capturing

        limit = self.settings.clip_max_s
        if not MIN_CLIP_S <= seconds <= limit:
            return self._failed("clip", f"a clip lasts {MIN_CLIP_S:g} to {limit:g} s (capture.clip_max_s), "
                                        f"not {seconds:g}")
        if self._latest is None or self._format is None:
            return self._failed("clip", f"no signal on {self.name}: nothing recorded")
        performed, refusal = self._performing()
        if performed is None:
            return self._failed("clip", refusal)
        try:
            # A clip is refused at its start when the buffer is below its reserve (after evicting
            # what retention may): recording a minute only to have the intake refuse it helps nobody.
            self.intake.buffer.files.check_reserve()
        except OSError as exc:
            return self._failed("clip", f"the buffer is full: {exc.strerror or exc}")
        with self._lock:
            if self._clip is not None:
                return CaptureOutcome(False, f"a clip is being recorded on {self.name}; it ends in "
                                             f"{max(0.0, self._clip.seconds - self._clip.recorded_s()):.0f} s")
            number = performed.next_instance
            performed.next_instance += 1
            path = self.new_incoming_path()
            started = self.now()
            try:
                writer = ClipWriter(path, performed.procedure, performed.series, self.equipment,
                                    self.settings, self._format, number, started)
            except (OSError, ValueError) as exc:
                return self._failed("clip", f"the clip could not be started: {exc}")
            self._clip = _Clip(self, writer, performed, seconds, started)
        self.events.publish(CaptureClipStarted(device=self.name, seconds=seconds, procedure=performed.procedure.key))
        log.info("%s: recording a %.1f s clip for %s", self.name, seconds, performed.procedure.key)
        self._clip.thread.start()
        return CaptureOutcome(True, f"recording {seconds:g} s on {self.name} for {_who(performed.procedure)}")

    def wait_clip(self, timeout: float) -> CaptureOutcome | None:
        """The recording clip's outcome once it is stored or failed (None: still running after
        ``timeout`` seconds, or no clip)."""
        clip = self._clip
        if clip is None:
            return None
        clip.thread.join(timeout)
        return clip.outcome

    def end_procedure(self, discontinued: bool = False) -> CaptureOutcome:
        """The procedure captured for is over: its MPPS is completed (or discontinued) with the
        instances made, and the next capture starts a new series for whichever procedure is chosen."""
        with self._lock:
            performed, self._performed = self._performed, None
            if self._clip is not None:
                self._performed = performed
                return CaptureOutcome(False, "a clip is being recorded: the procedure ends when it is stored")
        current = getattr(self.procedures, "current", None)
        chosen = current() if performed is None and current is not None else None
        if chosen is not None:
            # Nothing captured since the service started: a step begun before a restart for the
            # procedure still chosen is ended now (else it would stay IN PROGRESS at the RIS).
            from gateway.capture import iod  # noqa: PLC0415

            candidate = _Performed(chosen, iod.new_series(self.settings, max(1, self._series_made)))
            if self._resume(candidate):
                performed = candidate
        if performed is None:
            return CaptureOutcome(False, "no procedure is being captured for (none since the last one ended, or "
                                         "nothing captured yet): nothing to end")
        self._close_mpps(performed, discontinued)
        # Ended is ended: the choice moves off it, and the automatic choice will not pick it again
        # (a stray pedal tap must not open a new performed step for a finished one).
        done = getattr(self.procedures, "done", None)
        if done is not None:
            done(performed.procedure.key)
        report = ""
        if performed.mpps_uid:
            report = f"; its MPPS is queued as {'DISCONTINUED' if discontinued else 'COMPLETED'}"
        return CaptureOutcome(True, f"procedure for {_who(performed.procedure)} ended: "
                                    f"{len(performed.referenced)} objects{report}; choose the next one")

    # -- internals -------------------------------------------------------------------------------
    def _performing(self) -> tuple[_Performed | None, str]:
        """The procedure the capture is for, its series started (and its MPPS begun) at its first
        capture; the previous procedure is completed when the choice moved on."""
        from gateway.capture import iod  # noqa: PLC0415

        try:
            procedure = self.procedures.for_capture()
        except (LookupError, ValueError) as exc:
            return None, str(exc)
        with self._lock:
            previous = self._performed
            if previous is not None and previous.procedure.key == procedure.key:
                return previous, ""
            if self._clip is not None:
                return None, "a clip is being recorded for another procedure"
            self._series_made += 1
            self._performed = _Performed(procedure, iod.new_series(self.settings, self._series_made))
        if previous is not None:
            self._close_mpps(previous, discontinued=False)
        current = self._performed
        if self._resume(current):
            return current, ""
        if self.mpps is not None:
            uid = iod.new_uid(self.settings)
            try:
                self.mpps.begin(procedure, uid, self.now(), self.station_ae, procedure.modality or "OT",
                                study_uid=iod.study_uid_for(procedure, self.settings))
                current.mpps_uid = uid
            except Exception as exc:  # noqa: BLE001 - the capture goes on; the MPPS is one line
                log.error("MPPS for %s not queued: %s", procedure.key, exc)
        return current, ""

    def _resume(self, performed: _Performed) -> bool:
        """A step begun for this procedure before the service restarted (its MPPS still IN
        PROGRESS, no N-SET queued) is carried on, not begun again: its objects are those this
        grabber stored in the procedure's study since the step began (the buffer's index says).
        False when there is none to carry on (or no MPPS)."""
        from gateway.capture import iod  # noqa: PLC0415

        if self.mpps is None or not hasattr(self.mpps, "for_procedure"):
            return False
        key = performed.procedure.key
        try:
            open_steps = [r for r in self.mpps.for_procedure(key) if r.set_job is None and r.status == "IN PROGRESS"]
            if not open_steps:
                return False
            step = open_steps[-1]
            rows = self.intake.buffer.index.query(
                "SELECT i.sop_class, i.sop_uid, s.series_uid FROM instances i JOIN series s ON s.id = i.series_fk"
                " JOIN studies st ON st.id = s.study_fk WHERE st.study_uid = ? AND i.calling_ae = ?"
                " AND i.received_at >= ? ORDER BY i.received_at",
                (iod.study_uid_for(performed.procedure, self.settings), str(Source.capture(self.name)), step.created))
        except Exception as exc:  # noqa: BLE001 - an index or store error: a new step, said once
            log.error("MPPS for %s: the step begun before the restart cannot be read (%s): a new one is begun",
                      key, exc)
            return False
        performed.mpps_uid = step.mpps_uid
        performed.referenced = [(r[0], r[1], r[2]) for r in rows]
        log.info("MPPS %s for %s carried on after a restart (%d objects so far)", step.mpps_uid, key,
                 len(performed.referenced))
        return True

    def _close_mpps(self, performed: _Performed, discontinued: bool) -> None:
        if self.mpps is None or not performed.mpps_uid:
            return
        try:
            self.mpps.complete(performed.mpps_uid, list(performed.referenced), self.now(), discontinued)
        except Exception as exc:  # noqa: BLE001
            log.error("MPPS %s not completed: %s", performed.mpps_uid, exc)

    def _take(self, path: Path, what: str, performed: _Performed, sop_class: str, sop_uid: str,
              frames: int, dropped: int, note: str) -> CaptureOutcome:
        result = self.intake.take(path, Source.capture(self.name), sop_class, sop_uid)
        if not result.ok:
            return self._failed(what, f"the buffer refused the {what}: {result.reason or result.refusal.value}")
        performed.referenced.append((sop_class, sop_uid, _series_uid(performed.series)))
        self.events.publish(CaptureStored(device=self.name, what=what, sop_uid=sop_uid,
                                          procedure=performed.procedure.key,
                                          scheduled=performed.procedure.scheduled, frames=frames,
                                          dropped=dropped, note=note))
        detail = f"{frames} frames" + (f", {dropped} dropped" if dropped else "") if what == "clip" else ""
        line = (f"{what} {sop_uid} stored for {_who(performed.procedure)}" + (f", {detail}" if detail else "")
                + (f"; {note}" if note else ""))
        log.info("%s: %s stored: %s for %s%s", self.name, what, sop_uid, performed.procedure.key,
                 f" ({note})" if note else "")
        self.last_line = line
        return CaptureOutcome(True, line, sop_uid)

    def _failed(self, what: str, reason: str) -> CaptureOutcome:
        log.warning("%s: %s not captured: %s", self.name, what, reason)
        self.events.publish(CaptureFailed(device=self.name, what=what, reason=reason))
        self.last_line = f"{what}: {reason}"
        return CaptureOutcome(False, reason)

    def _end_clip(self, note: str) -> None:
        clip = self._clip
        if clip is not None:
            clip.finish(note, cut=True)

    def _clip_done(self, clip: "_Clip") -> None:
        with self._lock:
            if self._clip is clip:
                self._clip = None


class _Clip:
    """One recording: frames offered by the reader, encoded by its own thread (ClipWriter.add),
    closed and taken when its time is up or the reader ends it."""

    def __init__(self, service: CaptureService, writer: Any, performed: _Performed, seconds: float,
                 started: datetime):
        self.service, self.writer, self.performed, self.seconds = service, writer, performed, seconds
        self.started = started
        self.fps = fps = service._format.fps if service._format else 30.0
        # About a second of frames may wait for the encoder: more only delays the drop and costs
        # memory (a 1080p frame is 6 MB).
        self.inbox: queue.Queue = queue.Queue(maxsize=max(2, int(fps)))
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.dropped = 0
        self.offered = 0
        self.ended = threading.Event()
        self.note, self.cut = "", False
        self.outcome: CaptureOutcome | None = None
        self.thread = threading.Thread(target=self._encode, name=f"capture-clip-{service.name}", daemon=True)

    def recorded_s(self) -> float:
        if self.first_at is None or self.last_at is None:
            return 0.0
        return self.last_at - self.first_at

    def offer(self, frame: Frame) -> None:
        """From the reader thread: keep the frame if the encoder has room, else count it dropped."""
        if self.ended.is_set():
            return
        if self.first_at is None:
            self.first_at = frame.at
        self.last_at = frame.at
        self.offered += 1
        try:
            self.inbox.put_nowait(frame.pixels)
        except queue.Full:
            self.dropped += 1
        if frame.at - self.first_at >= self.seconds:
            self.finish("")

    def short_of_rate(self) -> int:
        """Frames the clip lacks against the source's rate over its span: dropped for the encoder
        or never read in time from the grabber (a reader that falls behind loses frames upstream,
        in the device's or the socket's buffer, where no queue counts them)."""
        expected = int(round(self.recorded_s() * self.fps)) + 1 if self.offered else 0
        return max(self.dropped, expected - self.offered + self.dropped)

    def finish(self, note: str, cut: bool = False) -> None:
        """End the recording (once): the encoder closes the object after the frames it has.
        cut: ended by the source (signal lost, video mode changed), which capture.on_signal_lost
        decides about; note: why it ended early ("" when its time was up)."""
        if self.ended.is_set():
            return
        self.note, self.cut = note, cut
        self.ended.set()
        self.inbox.put(_END)

    def _encode(self) -> None:
        svc = self.service
        try:
            self.outcome = self._run()
        except OSError as exc:
            # A full or failing disk is the box's condition, not a bug: one line, no traceback.
            self._discard()
            reason = "the buffer's disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            self.outcome = svc._failed("clip", f"the clip could not be written: {reason}")
        except Exception as exc:  # noqa: BLE001 - a clip's failure is one line; the service runs on
            log.exception("%s: the clip failed", svc.name)
            self._discard()
            self.outcome = svc._failed("clip", f"the clip failed: {type(exc).__name__}: {exc}")
        finally:
            svc._clip_done(self)

    def _run(self) -> CaptureOutcome:
        svc = self.service
        while True:
            item = self.inbox.get()
            if item is _END:
                break
            self.writer.add(item)
        if self.cut and svc.settings.on_signal_lost == "discard":
            self._discard()
            return svc._failed("clip", f"discarded: {self.note} (capture.on_signal_lost = \"discard\")")
        if self.writer.frames == 0:
            self._discard()
            return svc._failed("clip", f"no frame recorded{': ' + self.note if self.note else ''}")
        note = f"{self.note} after {self.recorded_s():.1f} s" if self.note else ""
        # The frames' own span, not the clock at the close: a clip cut by a lost signal is closed a
        # signal timeout after its last frame, and would otherwise play that much slower.
        result = self.writer.close(self.started + timedelta(seconds=self.recorded_s()), note)
        return svc._take(Path(result.path), "clip", self.performed, str(result.sop_class_uid),
                         str(result.sop_instance_uid), result.frames, self.short_of_rate(), note)

    def _discard(self) -> None:
        try:
            self.writer.discard()
        except OSError as exc:
            log.warning("%s: removing a discarded clip: %s", self.service.name, exc)


def _who(procedure: Procedure) -> str:
    """The operator's line names the patient by ID, and says when it is an unscheduled one."""
    return f"patient {procedure.patient_id}" + ("" if procedure.scheduled else " (unscheduled)")


def _series_uid(series: Any) -> str:
    return str(series.uid)
