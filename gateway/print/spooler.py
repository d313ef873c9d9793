"""The durable print spool: films become jobs in the buffer's queue, one worker prints them.

Spooling (PrintStore.spool, called by the Print SCP's N-ACTION before it answers):
  each film's description (JSON) and pixel arrays (.npy) are written under
  <buffer>/print/spool/<print job uid>/film-<n>/, fsynced with their directories; then ONE index
  transaction inserts the Print Job row, one `jobs` row per film (kind 'print', target the
  printer's name, payload JSON naming the film's folder) and one `print_films` row per film
  (phase 'queued').  Only then does the client get its N-ACTION response and Print Job UID.
  A crash before the commit loses nothing acknowledged (the folder is removed at start-up as an
  orphan); after it, the films print after the restart.

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
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from drivers.printer.interface import PrinterError, PrinterNotReady, PrintJob
from drivers.printer.status_map import dicom_printer_status
from gateway.buffer.files import fsync_dir
from gateway.buffer.index import Index
from gateway.buffer.queue import RETRIED_BY_OPERATOR, Job, JobQueue
from gateway.buffer.worker import QueueWorker
from gateway.events import EventBus
from gateway.print.device import PrinterDevice, films_left
from gateway.print.profile import PrintSection
from gateway.print.render import render_film
from gateway.print.reports import PrintJobListener

log = logging.getLogger("gateway.print.spooler")

PRINT = "print"
QUEUED, SENDING, PRINTED, HELD = "queued", "sending", "printed", "held"

class SpoolFull(Exception):
    pass


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PrintStore:
    """Print jobs in the buffer: film folders on disk, rows in the buffer's index."""

    def __init__(self, root: Path, index: Index, queue: JobQueue, printer_name: str):
        self.root = root / "print"
        self.spool_dir = self.root / "spool"
        self.preview_dir = self.root / "previews"
        for d in (self.root, self.spool_dir, self.preview_dir):
            d.mkdir(parents=True, exist_ok=True)
        # print_jobs and print_films are part of the buffer's schema (gateway/buffer/migrations.py).
        self.index, self.queue, self.printer = index, queue, printer_name

    # -- spooling ----------------------------------------------------------------------------------
    def waiting_films(self) -> int:
        rows = self.index.query("SELECT COUNT(*) AS n FROM jobs WHERE kind = ? AND state IN "
                                "('queued', 'in_flight')", (PRINT,))
        return rows[0]["n"]

    def spool(self, uid: str, films: list[tuple[dict, dict]], calling_ae: str, priority: str,
              limit: int) -> list[int]:
        """Make the films durable and queue them; returns the job ids.  Raises SpoolFull."""
        if self.waiting_films() + len(films) > limit:
            raise SpoolFull(f"{self.waiting_films()} films wait already (print.max_queued_films)")
        job_dir = self.spool_dir / uid
        job_dir.mkdir(parents=True, exist_ok=False)
        fsync_dir(self.spool_dir)
        folders = []
        for n, (desc, arrays) in enumerate(films, 1):
            folder = job_dir / f"film-{n}"
            folder.mkdir()
            for name, arr in arrays.items():
                with open(folder / f"{name}.npy", "wb") as fh:
                    np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)
                    fh.flush()
                    os.fsync(fh.fileno())
            with open(folder / "film.json", "w") as fh:
                json.dump(desc, fh)
                fh.flush()
                os.fsync(fh.fileno())
            fsync_dir(folder)
            folders.append(str(folder.relative_to(self.root)))
        fsync_dir(job_dir)
        now = time.time()
        ids = []
        with self.index.tx() as cur:
            cur.execute("INSERT INTO print_jobs(uid, printer, calling_ae, priority, films, created)"
                        " VALUES (?, ?, ?, ?, ?, ?)", (uid, self.printer, calling_ae, priority, len(films), now))
            for n, folder in enumerate(folders, 1):
                payload = json.dumps({"print_job": uid, "film": n, "folder": folder})
                job_id = JobQueue.enqueue_in(cur, PRINT, self.printer, payload, now)
                ids.append(job_id)
                cur.execute("INSERT INTO print_films(job_id, print_job_uid, film, folder, phase, updated)"
                            " VALUES (?, ?, ?, ?, 'queued', ?)", (job_id, uid, n, folder, now))
        self.queue.notify()
        return ids

    def remove_orphans(self) -> int:
        """Film folders without a Print Job row: the N-ACTION was never answered."""
        known = {r["uid"] for r in self.index.query("SELECT uid FROM print_jobs")}
        n = 0
        for d in self.spool_dir.iterdir():
            if d.name not in known:
                shutil.rmtree(d, ignore_errors=True)
                n += 1
        return n

    # -- films -------------------------------------------------------------------------------------
    def load(self, folder: str) -> tuple[dict, dict]:
        path = self.root / folder
        desc = json.loads((path / "film.json").read_text())
        arrays = {p.stem: np.load(p, allow_pickle=False) for p in path.glob("*.npy")}
        return desc, arrays

    def film(self, job_id: int):
        rows = self.index.query("SELECT * FROM print_films WHERE job_id = ?", (job_id,))
        return rows[0] if rows else None

    def set_phase(self, job_id: int, phase: str, mark: str | None = None) -> None:
        with self.index.tx() as cur:
            if mark is None:
                cur.execute("UPDATE print_films SET phase = ?, updated = ? WHERE job_id = ?",
                            (phase, time.time(), job_id))
            else:
                cur.execute("UPDATE print_films SET phase = ?, mark = ?, updated = ? WHERE job_id = ?",
                            (phase, mark, time.time(), job_id))

    def mark_printed(self, job_id: int, preview: str) -> None:
        """Printed and done, in one transaction: never printed again after this commits."""
        now = time.time()
        with self.index.tx() as cur:
            cur.execute("UPDATE print_films SET phase = 'printed', preview = ?, updated = ? WHERE job_id = ?",
                        (preview, now, job_id))
            JobQueue.complete_in(cur, [job_id], now)

    def hold(self, job_id: int, why: str) -> None:
        """Held and dead-lettered, in one transaction: a crash in between would leave a held film
        whose job is queued again at the restart, and so printed with nobody having looked."""
        now = time.time()
        with self.index.tx() as cur:
            cur.execute("UPDATE print_films SET phase = ?, updated = ? WHERE job_id = ?", (HELD, now, job_id))
            JobQueue.fail_in(cur, job_id, why, None, now)

    # -- Print Job SOP instances -----------------------------------------------------------------------
    def print_job(self, uid: str) -> dict | None:
        rows = self.index.query("SELECT * FROM print_jobs WHERE uid = ?", (uid,))
        if not rows:
            return None
        films = self.index.query(
            "SELECT f.phase, j.state, j.last_error FROM print_films f JOIN jobs j ON j.id = f.job_id"
            " WHERE f.print_job_uid = ? ORDER BY f.film", (uid,))
        job = dict(rows[0])
        job["status"], job["info"] = execution_status(films)
        return job


def execution_status(films) -> tuple[str, str]:
    """Print Job Execution Status (PENDING / PRINTING / DONE / FAILURE) and its info."""
    if any(f["state"] == "dead" for f in films):
        return "FAILURE", "QUEUE HELD" if any(f["phase"] == HELD for f in films) else "CHECK PRINTER"
    if all(f["phase"] == PRINTED for f in films):
        return "DONE", "NORMAL"
    if any(f["phase"] in (SENDING, PRINTED) for f in films):
        return "PRINTING", "NORMAL"
    waiting = [f["last_error"] for f in films if f["last_error"]]
    return "PENDING", "PRINTER NOT READY" if waiting else "QUEUED"


def copies_done(film_row) -> int:
    """Copies of this film a printer already put out before it stopped part-way (DRF/1 result
    "partly printed"), as recorded in the film's mark."""
    try:
        return int(json.loads(film_row["mark"] or "{}").get("done", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


class Spooler(QueueWorker):
    """The queue worker of kind 'print' for the one attached printer: a claim is one film
    (QueueWorker has the loop, the stop and the backoff wait)."""

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
            self.events.publish("print-job", uid=uid, status=job["status"], info=job["info"],
                                calling_ae=job["calling_ae"])

    def _printer_status(self, status) -> None:
        """A device reading (drivers' PrinterStatus or None): to the status monitor (control), and
        published as "printer-status" (observation)."""
        dicom = dicom_printer_status(status)
        if self.printer_seen is not None:
            self.printer_seen(dicom)
        self.events.publish("printer-status", status=dicom, detail=status)

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
                    self.events.publish("print-held", uid=uid, job_id=job.id, reason=why)
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
        self.events.publish("printed", uid=uid, film=film_row["film"], preview=preview)
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
        _fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return str(path.relative_to(self.store.root))
