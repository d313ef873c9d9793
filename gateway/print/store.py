"""The print spool's store: Print Jobs and their films in the buffer (folders on disk, rows in the
buffer's index), the films' phases, and the in-transaction SQL that moves them.

Spooling (PrintStore.spool, called by the Print SCP's N-ACTION before it answers):
  each film's description (JSON) and pixel arrays (.npy) are written under
  <buffer>/print/spool/<print job uid>/film-<n>/, fsynced with their directories; then ONE index
  transaction inserts the Print Job row, one `jobs` row per film (kind 'print', target the
  printer's name, payload JSON naming the film's folder) and one `print_films` row per film
  (phase 'queued').  Only then does the client get its N-ACTION response and Print Job UID.
  A crash before the commit loses nothing acknowledged (the folder is removed at start-up as an
  orphan); after it, the films print after the restart.

Phases of a film (print_films.phase; the worker, gateway.print.spooler, moves them):
  queued   -> waiting for the printer (or sent back after the printer said "not printed")
  sending  -> committed BEFORE the first byte goes out; left there by a crash or a lost verdict
  printed  -> committed together with the job's 'done' (PrintStore.mark_printed): never sent again
  held     -> committed together with the job's dead-lettering (PrintStore.hold): an operator decides

The tables are part of the buffer's schema (gateway/buffer/migrations.py); every write here runs in
one index transaction, with the queue's in-transaction verbs (JobQueue.enqueue_in, complete_in,
fail_in) so that no write of the `jobs` table goes behind the queue's back.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from gateway.buffer.files import fsync_dir
from gateway.buffer.index import Index
from gateway.buffer.queue import Job, JobKind, JobQueue

PRINT = "print"  # the queue's job kind of a film
QUEUED, SENDING, PRINTED, HELD = "queued", "sending", "printed", "held"


def _describe_film(job: Job) -> str:
    try:
        p = json.loads(job.payload or "{}")
        return f"{job.kind} of film {p['film']} of print job {p['print_job']} on {job.target}"
    except (ValueError, KeyError, TypeError):
        return f"{job.kind} job on {job.target}"


def _retry_note(cur, job: Job) -> str:
    # A film whose last attempt ended without the printer's verdict may have come out.
    row = cur.execute("SELECT phase FROM print_films WHERE job_id = ?", (job.id,)).fetchone()
    if row is not None and row["phase"] in (SENDING, HELD):
        return ("its last attempt ended without a verdict from the printer: if that film came out,"
                " this prints a second one")
    return ""


# What the queue's operator verbs say about film jobs (gateway/buffer/queue.py JobKind): a printed
# film is never printed twice from the queue, and re-forward does not apply.
PRINT_JOB_KIND = JobKind(
    PRINT,
    describe=_describe_film,
    finished="finished",
    done_advice=lambda job: "a printed film is not printed again from the queue (print it again from"
                            " the modality)",
    reforward_hint="a film is printed again from the modality",
    retry_note=_retry_note,
)


class SpoolFull(Exception):
    """More films would wait than print.max_queued_films allows (the N-ACTION answers C601)."""


class PrintStore:
    """Print jobs in the buffer: film folders under <root>/print/, rows in the buffer's index
    (print_jobs, print_films, and the film's `jobs` row of kind 'print', target `printer_name`).
    Raises what sqlite3 and the file system raise (OSError for a full disk)."""

    def __init__(self, root: Path, index: Index, queue: JobQueue, printer_name: str):
        self.root = root / "print"
        self.spool_dir = self.root / "spool"
        self.preview_dir = self.root / "previews"
        for d in (self.root, self.spool_dir, self.preview_dir):
            d.mkdir(parents=True, exist_ok=True)
        # print_jobs and print_films are part of the buffer's schema (gateway/buffer/migrations.py).
        self.index, self.queue, self.printer = index, queue, printer_name
        queue.register_kind(PRINT_JOB_KIND)

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


