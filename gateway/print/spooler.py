"""The print spooler: the queue worker of kind 'print' that prints the films of the spool.

The films, their phases and the SQL are gateway.print.store's (PrintStore); this worker claims,
renders, asks the printer and moves the phases, and tells the print listeners
(gateway.print.reports) of every Print Job and printer status change.

Printing (Spooler, the queue worker (gateway.buffer.worker) of the one printer), per film:
  1. claim the job (queue: in_flight)
  2. render it (image.compose), ask the printer's status; not ready -> the job waits (no attempt
     used) and is tried again when the printer is back
  3. phase 'sending' committed, with the device's supply counter when it has one (DRF/1 reports
     films left) -- BEFORE the first byte goes out
  4. send; the printer's verdict:
       printed        -> preview PNG written (fsynced), then phase 'printed' + job done in one
                         transaction; Print Job event DONE when the last film is printed
       not printed    -> (PrinterNotReady: the device said so) phase back to 'queued', the job
                         waits for the printer; nothing was printed, so printing it later is safe
       no verdict     -> (link lost, timeout, or a crash of this process) phase stays 'sending'

The guarantee, honestly:
  - A film is never lost once the client had its N-ACTION response.
  - A film whose verdict arrived is never printed twice: 'printed' is committed before anything
    else happens, and a 'printed' film is never sent again.
  - A film left in 'sending' (we sent bytes, the verdict never reached the index) is resolved
    with the printer's own evidence before anything else is sent: a DRF/1 imager's supply counter
    equal to the recorded one means the film did not come out (it is sent again); lower by exactly
    the film's copies with the imager healthy means it came out (marked printed, not sent again).
    When the printer has no such evidence (PostScript over USB, a file) or the evidence is
    ambiguous (films reloaded, a jam in between), `print.on_interrupted` decides: "hold"
    (default) dead-letters the film with the reason -- never two films; an operator looks at the
    printer and runs `dicom-gateway queue retry ID` to print it again -- or "reprint" sends it
    again -- never zero films.  Exactly-once is therefore guaranteed for DRF/1 printers and
    at-most-once-plus-operator for the others; no printer protocol here can do better without a
    job id the device remembers across power cycles.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable

import numpy as np

from drivers.printer.interface import PrinterError, PrinterNotReady, PrintJob
from drivers.printer.status_map import dicom_printer_status
from gateway.buffer.files import fsync_dir, fsync_file
from gateway.buffer.queue import RETRIED_BY_OPERATOR, Job
from gateway.buffer.worker import QueueWorker
from gateway.event_kinds import PrintHeld, PrintJobStatus, Printed
from gateway.events import EventBus
from gateway.print.device import PrinterDevice, films_left
from gateway.print.profile import PrintSection
from gateway.print.render import render_film
from gateway.print.reports import PrintJobListener
from gateway.print.store import HELD, PRINT, PRINTED, QUEUED, SENDING, PrintStore, copies_done

log = logging.getLogger("gateway.print.spooler")


class Spooler(QueueWorker):
    """The queue worker of kind 'print' for the one attached printer: a claim is one film
    (QueueWorker has the loop, the stop and the backoff wait).

    Control, called on this worker's thread and never blocking on the network: `reports`
    (PrintJobListener) is told of each Print Job status change (PS3.4 H.4.2.1.4), `printer_seen`
    (PrinterStatusMonitor.observe) gets each device reading as (Printer Status, Printer Status
    Info).  Observation: "print-job", "printed", "print-held" on `events`."""

    def __init__(self, profile: PrintSection, store: PrintStore, device: PrinterDevice,
                 events: EventBus, reports: PrintJobListener | None = None,
                 printer_seen: Callable[[tuple[str, str]], None] | None = None):
        super().__init__(store.queue, PRINT, store.printer, who="print spooler", logger=log,
                         thread_name="print-spooler")
        self.profile, self.store, self.device, self.events = profile, store, device, events
        # Control (never dropped, never blocking): Print Job status changes to the listeners
        # (the Print SCP's N-EVENT-REPORTs), printer readings to the status monitor.
        self.reports = reports
        self.printer_seen = printer_seen
        self.curve = profile.curve()
        self.dpi = profile.printer.dpi

    def on_start(self) -> None:
        log.info("print spooler for %s started", self.store.printer)

    # -- one film ------------------------------------------------------------------------------------
    def _event(self, uid: str) -> None:
        """Print Job `uid`'s status as the index has it now: told to the listeners (control),
        then published as "print-job" (observation)."""
        job = self.store.print_job(uid)
        if job is not None:
            if self.reports is not None:
                self.reports.on_job_status(uid, job["status"], job["info"])
            self.events.publish(PrintJobStatus(uid=uid, status=job["status"], info=job["info"],
                                               calling_ae=job["calling_ae"]))

    def _printer_status(self, status) -> None:
        """A device reading (drivers' PrinterStatus or None): to the status monitor (control), which
        publishes "printer-status-changed" when the reading differs from what it knew. Readings
        themselves are not published: every film takes several, and observers want the changes."""
        if self.printer_seen is not None:
            self.printer_seen(dicom_printer_status(status))

    def _wait_for_printer(self, job: Job, why: str) -> None:
        delay = self.retry_delay(self.profile.retry_initial_s, self.profile.retry_max_s)
        self.queue.release([job.id], why, time.time() + delay, uncount=True)
        # At most 1 s here: the film's own due time (or the printer coming back, which makes it
        # due) takes over in the idle wait, which also ends on new work.
        self.backoff_wait(min(delay, 1.0))

    def process(self, job: Job) -> None:
        film_row = self.store.film(job.id)
        payload = json.loads(job.payload or "{}")
        if film_row is None:
            self.queue.fail(job.id, "no print film row for this job", None)
            return
        uid = film_row["print_job_uid"]
        try:
            desc, arrays = self.store.load(film_row["folder"])
            film = render_film(desc, arrays, self.curve, self.dpi, self.profile.annotation_height_mm,
                               self.profile.printer.color)
        except Exception as exc:  # noqa: BLE001 - a broken film must not stop the others
            log.exception("print job %s film %s cannot be rendered", uid, payload.get("film"))
            self.queue.fail(job.id, f"cannot render the film: {exc}", None)
            self._event(uid)
            return
        with self.device.lock:
            status = self.device.status()
            self._printer_status(status)
            phase = film_row["phase"]
            if phase == PRINTED:
                self.queue.complete([job.id])
                return
            if phase == SENDING:
                if status is None:
                    self._wait_for_printer(job, "printer down; an interrupted film waits for it")
                    return
                verdict = self._resolve(film_row, status)
                if verdict == PRINTED:
                    preview = self._preview(uid, film_row["film"], film)
                    self.store.mark_printed(job.id, preview)
                    log.warning("print job %s film %d: interrupted while sending, the printer shows "
                                "it printed; not sent again", uid, film_row["film"])
                    self._event(uid)
                    return
                if verdict == HELD:
                    why = ("interrupted while sending; the printer cannot tell whether the film came "
                           "out: check it, then `dicom-gateway queue retry %d` prints it again" % job.id)
                    self.store.hold(job.id, why)
                    log.error("print job %s film %d held: %s", uid, film_row["film"], why)
                    self.events.publish(PrintHeld(uid=uid, job_id=job.id, reason=why))
                    self._event(uid)
                    return
            if status is None or not status.ready:
                info = dicom_printer_status(status)[1]
                self._wait_for_printer(job, f"printer not ready: {info}")
                self._event(uid)
                return
            self.target_up()  # the printer is ready: the next wait for it starts short again
            copies = int(desc.get("copies", 1))
            # Copies already out (the printer stopped part-way through an earlier try) are owed
            # no more: only the rest is sent.  "copies" in the mark is what this send asks for.
            done = copies_done(film_row)
            self.store.set_phase(job.id, SENDING, json.dumps({"films_left": films_left(status),
                                                              "copies": copies - done, "done": done}))
            self._event(uid)
            try:
                after = self.device.print_film(PrintJob(film, self.dpi, copies - done))
            except PrinterNotReady as exc:
                # The device says the film was not printed (or only some copies, counted): safe to
                # print the rest later.
                made = getattr(exc, "copies_printed", 0)
                if made:
                    log.warning("print job %s film %d: %d of %d copies printed (%s); the rest wait "
                                "for the printer", uid, film_row["film"], done + made, copies,
                                dicom_printer_status(exc.status)[1])
                self.store.set_phase(job.id, QUEUED, json.dumps({"done": done + made}) if made else None)
                self._printer_status(exc.status)
                self._wait_for_printer(job, f"not printed: {dicom_printer_status(exc.status)[1]}")
                self._event(uid)
                if not made:
                    log.warning("print job %s film %d not printed (%s); waits for the printer", uid,
                                film_row["film"], dicom_printer_status(exc.status)[1])
                return
            except PrinterError as exc:
                # No verdict: stays 'sending'; resolved against the printer's evidence next time.
                self._wait_for_printer(job, f"no answer from the printer: {exc}")
                log.warning("print job %s film %d: %s; outcome unknown, resolved on the next try",
                            uid, film_row["film"], exc)
                return
        preview = self._preview(uid, film_row["film"], film)
        self.store.mark_printed(job.id, preview)
        self._printer_status(after)
        self.events.publish(Printed(uid=uid, film=film_row["film"], preview=preview))
        log.info("print job %s film %d printed (%d copies), preview %s", uid, film_row["film"],
                 copies, preview)
        self._event(uid)

    def _resolve(self, film_row, status) -> str:
        """An interrupted film: PRINTED, QUEUED (send again) or HELD, from the device's evidence."""
        try:
            mark = json.loads(film_row["mark"] or "{}")
        except ValueError:
            mark = {}
        before, now = mark.get("films_left"), films_left(status)
        if film_row["phase"] == SENDING and self.queue_retried_by_operator(film_row["job_id"]):
            return QUEUED
        if before is not None and now is not None and status.ready:
            if now == before:
                return QUEUED
            if now == before - int(mark.get("copies", 1)):
                return PRINTED
        return QUEUED if self.profile.on_interrupted == "reprint" else HELD

    def queue_retried_by_operator(self, job_id: int) -> bool:
        job = self.queue.get(job_id)
        return job is not None and job.last_error == RETRIED_BY_OPERATOR

    def _preview(self, uid: str, n: int, film: np.ndarray) -> str:
        from PIL import Image

        path = self.store.preview_dir / f"{uid}-{n}.png"
        tmp = path.with_suffix(".part")
        if film.ndim == 3:
            img = Image.fromarray(film, "RGB")
        elif film.dtype == np.uint8:
            img = Image.fromarray(film, "L")
        else:
            img = Image.fromarray(film.astype(np.uint16), "I;16")
        img.save(tmp, format="PNG")
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return str(path.relative_to(self.store.root))
