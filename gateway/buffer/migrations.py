"""Schema versions of the buffer's index, and the ordered migrations that bring a buffer up to date.

The version lives in the database file itself (`PRAGMA user_version`, 0 in a new file and in every
buffer written before versions were counted). Opening a buffer applies, in order, each migration
above its version; each runs in one IMMEDIATE transaction that also sets the new version, so a
crash or a power cut leaves the buffer at the version before or after that step, never between,
and the next start carries on. A buffer at a version higher than this code knows was written by a
newer release: it is refused (SchemaTooNew), not guessed at.

Rules for adding a migration (media volumes, an MWL cache, new query keys...):
  - append a function to MIGRATIONS; never edit or reorder one that has shipped: a buffer in the
    field may be at any earlier version;
  - one transaction's worth of work; no executescript (it would commit behind our back), no
    PRAGMAs that are no-ops inside a transaction (foreign_keys, journal_mode);
  - every table a module needs is created here, not ad hoc by the module: the version must say
    what the file holds.

  1  the schema of the release before versions were counted (20cb9d5): patients / studies /
     series / instances, jobs, commitments, the print spool's print_jobs / print_films, and the
     two indexes retention used to add when it started. Every statement is IF NOT EXISTS, so it
     both creates a new buffer and adopts an old one (user_version 0, tables already there).
  2  job_items(job_id, instance_fk): the link that says which instances a job needs. Filled from
     jobs.instance_fk. Retention evicts an instance only when every job linked to it is done, so
     a job that needs many instances (a media export, a C-MOVE) protects them all.
  3  jobs_open: an index of the jobs not done (partial, WHERE state != 'done'). The service counts
     the open queue for its status every few seconds; done jobs pile up until retention evicts
     their instances, and counting through them scanned every job ever queued (500,000 done jobs:
     89 ms a count on a laptop core, several times that on a Pi, against 0.05 ms with this index).
  4  imports / import_items: the report of each media import (gateway/buffer/imports.py, written
     by gateway/media/importer.py): per import its label, how the file-set was read and the
     totals; per file its verdict, UIDs and reason. No patient names or IDs, and no paths from
     the medium (a stick's folders may be named after patients): a DICOMDIR's File ID only.
  5  media_exports(study_uid, job_id, marks): which export jobs an export rule queued for which
     study, and whether that rule marks the study exported (gateway/media/rules.py). A study
     counts as exported while a marking job of it is not dead; the job's own state says whether
     it is done. Deleting the job drops the row (cascade).
  6  mpps: one row per Modality Performed Procedure Step this box reports (gateway/buffer/mpps.py):
     its SOP Instance UID, the procedure's key, the N-CREATE and N-SET jobs, the status last
     queued, and the two attribute lists as they are sent (Explicit VR Little Endian bytes), so
     that a queued step is sent after a restart exactly as it was recorded.
  7  the C-FIND SCP's matching (gateway/buffer/query.py): patients.name_folded and
     studies.referring_folded (the person names in NFC + str.casefold, for case-insensitive PN
     matching of non-ASCII names in SQL), studies.study_dt (StudyDate + StudyTime as one sortable
     text, for combined date-time ranges), and the indexes a 10,000-study buffer is matched on
     (names, dates, accession, the study of a series, the patient of a study). Filled for the rows
     already there by the step itself (gateway/buffer/query_columns.py computes them, for ingest too).

Going back: the release before versions (20cb9d5) still opens a buffer at version 2 (it creates
nothing that exists and ignores job_items; its eviction deletes a job before its instance, and the
cascade drops the link). The forward jobs IT creates get no link, though, so after coming forward
again their instances count as unrouted until those jobs are gone. Releases from this one on
refuse a buffer newer than they know, so that gap cannot open again.
Version 3 adds only an index: to run a release that knows version 2 on such a buffer (service
stopped), `sqlite3 index.sqlite "DROP INDEX jobs_open; PRAGMA user_version = 2"`; the next start
of this release adds it again.
Version 4 adds only the two report tables, read by nothing else: to go back to version 3 (service
stopped), `sqlite3 index.sqlite "DROP TABLE import_items; DROP TABLE imports; PRAGMA user_version = 3"`
(the import reports are lost; the instances they imported stay).
Version 5 adds one table read by the export rules only: to go back to version 4 (service stopped),
`sqlite3 index.sqlite "DROP TABLE media_exports; PRAGMA user_version = 4"` (every study then
counts as not exported once more).
Version 6 adds one table read by the MPPS SCU only: to go back to version 5 (service stopped),
`sqlite3 index.sqlite "DROP TABLE mpps; DELETE FROM jobs WHERE kind = 'mpps'; PRAGMA user_version = 5"`
(the steps not yet sent are lost; the RIS keeps what it was sent).
Version 7 adds columns with defaults and indexes only; a release that knows version 6 ignores them
(its ingest leaves them '' for new rows, which C-FIND then misses): to go back (service stopped),
`sqlite3 index.sqlite "PRAGMA user_version = 6"`; to come forward again after new rows arrived, set
it to 6 and start this release, which fills them again (the step tolerates its columns existing).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from gateway.buffer.query_columns import fold_pn, study_datetime


class SchemaTooNew(sqlite3.DatabaseError):
    """The buffer was written by a newer release. A sqlite3.Error on purpose: the service and the
    CLI already turn those into one line (and the service into a start-up error)."""


_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS patients (
    id INTEGER PRIMARY KEY,
    patient_id TEXT NOT NULL,
    issuer TEXT NOT NULL DEFAULT '',
    patient_name TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '',
    sex TEXT NOT NULL DEFAULT '',
    UNIQUE (patient_id, issuer)
);

CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY,
    study_uid TEXT NOT NULL UNIQUE,
    patient_fk INTEGER NOT NULL REFERENCES patients(id),
    study_date TEXT NOT NULL DEFAULT '',
    study_time TEXT NOT NULL DEFAULT '',
    accession TEXT NOT NULL DEFAULT '',
    study_id TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    referring TEXT NOT NULL DEFAULT '',
    charset TEXT NOT NULL DEFAULT '',
    first_received REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    series_uid TEXT NOT NULL UNIQUE,
    study_fk INTEGER NOT NULL REFERENCES studies(id),
    modality TEXT NOT NULL DEFAULT '',
    series_number TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    body_part TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS instances (
    id INTEGER PRIMARY KEY,
    sop_uid TEXT NOT NULL UNIQUE,
    sop_class TEXT NOT NULL,
    series_fk INTEGER NOT NULL REFERENCES series(id),
    instance_number TEXT NOT NULL DEFAULT '',
    transfer_syntax TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    calling_ae TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_fk);

-- One row per unit of outgoing work (forward an instance to a destination, print a film...).
-- state: queued -> in_flight -> done | committing -> done ; failures go back to queued with a
-- later next_attempt, or to dead with the reason.
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    instance_fk INTEGER REFERENCES instances(id),
    payload TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    commit_txn TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_pick ON jobs(kind, target, state, next_attempt, id);
CREATE INDEX IF NOT EXISTS jobs_instance ON jobs(instance_fk);
CREATE INDEX IF NOT EXISTS jobs_txn ON jobs(commit_txn);
-- At most one waiting job per instance and target: a re-sent identical object never queues twice.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_queued
    ON jobs(kind, target, instance_fk) WHERE state = 'queued' AND instance_fk IS NOT NULL;

CREATE TABLE IF NOT EXISTS commitments (
    txn_uid TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    sent_at REAL NOT NULL,
    deadline REAL NOT NULL
);

-- Retention: oldest-first selection walks received_at; without an index every sweep sorts the
-- table. The partial index on done jobs answers "is anything delivered at all?" at once: with
-- the PACS down for a weekend every refused C-STORE asks, and the answer is no.
CREATE INDEX IF NOT EXISTS instances_received ON instances(received_at);
CREATE INDEX IF NOT EXISTS jobs_done ON jobs(instance_fk) WHERE state = 'done';

-- The print spool (gateway/print/store.py): one row per Print Job SOP instance, one per film.
-- A film's row shares its id with its 'print' job; phase/mark record how far printing got.
CREATE TABLE IF NOT EXISTS print_jobs (
    uid TEXT PRIMARY KEY,
    printer TEXT NOT NULL,
    calling_ae TEXT NOT NULL DEFAULT '',
    priority TEXT NOT NULL DEFAULT 'MED',
    films INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS print_films (
    job_id INTEGER PRIMARY KEY,
    print_job_uid TEXT NOT NULL REFERENCES print_jobs(uid),
    film INTEGER NOT NULL,
    folder TEXT NOT NULL,
    phase TEXT NOT NULL,
    mark TEXT NOT NULL DEFAULT '',
    preview TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS print_films_job ON print_films(print_job_uid);
"""

_V2 = """
-- Which instances a job needs. THIS is what protects files: retention evicts an instance only
-- when it has links and every linked job is done. jobs.instance_fk stays for the forwarder,
-- which reads the one instance of a forward job from it; every job with an instance_fk also has
-- its link (written in the same transaction, JobQueue.link_in).
-- Deleting a job drops its links (cascade); deleting an instance that a job still links is
-- refused by the database (no cascade): eviction removes the links of done jobs first.
CREATE TABLE job_items (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    instance_fk INTEGER NOT NULL REFERENCES instances(id),
    PRIMARY KEY (job_id, instance_fk)
) WITHOUT ROWID;
CREATE INDEX job_items_instance ON job_items(instance_fk, job_id);
-- Every job of the previous release names its one instance in jobs.instance_fk.
INSERT INTO job_items(job_id, instance_fk)
    SELECT j.id, j.instance_fk FROM jobs j JOIN instances i ON i.id = j.instance_fk;
"""


_V3 = """
CREATE INDEX jobs_open ON jobs(kind, target, state) WHERE state != 'done';
"""


_V4 = """
-- One row per media import (a drive's medium, or `dicom-gateway import PATH`). state: running ->
-- finished; a row left running by a process that died says so in `dicom-gateway imports`.
-- method: 'dicomdir' (the file-set's DICOMDIR was followed) or 'scan' (every file was read);
-- note: why it was scanned, or what was wrong with the DICOMDIR.
CREATE TABLE imports (
    id INTEGER PRIMARY KEY,
    label TEXT NOT NULL,
    method TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    files INTEGER NOT NULL DEFAULT 0,
    imported INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    flagged INTEGER NOT NULL DEFAULT 0
);
-- One row per file looked at. status: imported | duplicate | skipped | failed; outcome: the
-- buffer's verdict (stored, identical, replaced, kept-first) when it took the file; reason: a
-- code (not-dicom, missing-file, record-mismatch, unsupported-sop-class, unreadable, disk-full,
-- write-failed, index-error); flag: patient-id-conflict; detail: the one-line explanation.
CREATE TABLE import_items (
    import_id INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    flag TEXT NOT NULL DEFAULT '',
    sop_uid TEXT NOT NULL DEFAULT '',
    sop_class TEXT NOT NULL DEFAULT '',
    file_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (import_id, seq)
) WITHOUT ROWID;
"""


_V5 = """
-- Export jobs an export rule queued, per study. marks: 1 when the rule marks the study exported
-- (mark_exported), 0 when it does not (such a job never makes the study "exported").
CREATE TABLE media_exports (
    study_uid TEXT NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    marks INTEGER NOT NULL,
    PRIMARY KEY (study_uid, job_id)
) WITHOUT ROWID;
CREATE INDEX media_exports_job ON media_exports(job_id);
"""


_V6 = """
-- One row per Modality Performed Procedure Step (PS3.4 F.7). create_job / set_job: its N-CREATE
-- and N-SET jobs (kind 'mpps'); set_job NULL until the step is completed or discontinued.
-- status: the Performed Procedure Step Status last queued (IN PROGRESS, COMPLETED, DISCONTINUED).
-- create_attrs / set_attrs: the attribute lists, Explicit VR Little Endian, as they are sent.
-- procedure_key: the Procedure's key (no patient data); pps_id: Performed Procedure Step ID.
CREATE TABLE mpps (
    mpps_uid TEXT PRIMARY KEY,
    procedure_key TEXT NOT NULL,
    pps_id TEXT NOT NULL,
    status TEXT NOT NULL,
    create_job INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
    set_job INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
    create_attrs BLOB NOT NULL,
    set_attrs BLOB,
    created REAL NOT NULL,
    updated REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX mpps_create_job ON mpps(create_job);
CREATE INDEX mpps_set_job ON mpps(set_job);
"""


_V7_INDEXES = """
CREATE INDEX IF NOT EXISTS patients_name_folded ON patients(name_folded);
CREATE INDEX IF NOT EXISTS patients_name ON patients(patient_name);
CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_fk);
CREATE INDEX IF NOT EXISTS studies_date ON studies(study_date);
CREATE INDEX IF NOT EXISTS studies_dt ON studies(study_dt);
CREATE INDEX IF NOT EXISTS studies_accession ON studies(accession);
CREATE INDEX IF NOT EXISTS series_study ON series(study_fk);
"""


def _v7(cur: sqlite3.Cursor) -> None:
    """Version 7: the C-FIND columns and indexes, filled for the existing rows. The values are
    computed in Python (query_columns), not by SQL, because SQLite folds ASCII case only."""
    for table, column in (("patients", "name_folded"), ("studies", "referring_folded"),
                          ("studies", "study_dt")):
        have = {r[1] for r in cur.execute(f"PRAGMA table_info({table})").fetchall()}
        if column not in have:
            cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
    rows = cur.execute("SELECT id, patient_name FROM patients").fetchall()
    cur.executemany("UPDATE patients SET name_folded = ? WHERE id = ?",
                    [(fold_pn(name), pk) for pk, name in rows])
    rows = cur.execute("SELECT id, referring, study_date, study_time FROM studies").fetchall()
    cur.executemany("UPDATE studies SET referring_folded = ?, study_dt = ? WHERE id = ?",
                    [(fold_pn(ref), study_datetime(d, t), pk) for pk, ref, d, t in rows])
    _script(_V7_INDEXES)(cur)


def _script(sql: str) -> Callable[[sqlite3.Cursor], None]:
    def run(cur: sqlite3.Cursor) -> None:
        for stmt in statements(sql):
            cur.execute(stmt)
    return run


# (version, what it adds, the step). Append only; see the module docstring.
MIGRATIONS: tuple[tuple[int, str, Callable[[sqlite3.Cursor], None]], ...] = (
    (1, "base schema of the release before versions (index, jobs, commitments, print spool)", _script(_V1)),
    (2, "job_items: the job <-> instance link that protects files from eviction", _script(_V2)),
    (3, "jobs_open: the open jobs, counted for the status without scanning the done ones", _script(_V3)),
    (4, "imports / import_items: the media import reports", _script(_V4)),
    (5, "media_exports: the studies each export rule queued, and whether it marks them", _script(_V5)),
    (6, "mpps: the Modality Performed Procedure Steps reported and their N-CREATE / N-SET jobs", _script(_V6)),
    (7, "C-FIND: folded person names, study date-time, and the indexes queries match on", _v7),
)
LATEST = MIGRATIONS[-1][0]


def statements(sql: str) -> list[str]:
    """Split a script into single statements (sqlite3's execute takes one at a time, and
    executescript would commit the migration's transaction). Comments may hold ';'."""
    out, part = [], ""
    for line in sql.splitlines(keepends=True):
        part += line
        if sqlite3.complete_statement(part):
            out.append(part.strip())
            part = ""
    if part.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in part.splitlines()):
        raise ValueError(f"incomplete SQL statement in a migration: {part.strip()[:60]!r}")
    return out


def version(db: sqlite3.Connection) -> int:
    """The schema version recorded in the file (0: new, or written before versions)."""
    return db.execute("PRAGMA user_version").fetchone()[0]


def check_not_newer(db: sqlite3.Connection, path: Path | str) -> int:
    """The file's version; raises SchemaTooNew, one line, when a newer release wrote it."""
    v = version(db)
    if v > LATEST:
        raise SchemaTooNew(
            f"{path}: the buffer's index has schema version {v}, newer than this release knows"
            f" (up to {LATEST}); it was written by a newer release: run that release, or move the"
            " buffer aside to start an empty one")
    return v


def migrate(db: sqlite3.Connection, path: Path | str, upto: int | None = None) -> list[int]:
    """Apply every migration above the file's version, up to `upto` (default: the latest), each in
    its own transaction; returns the versions applied. `db` must be in autocommit mode
    (isolation_level=None).

    Another process (the CLI, a second start) may open the same file at the same time: the
    version is read again inside each write transaction, so a step is never applied twice."""
    check_not_newer(db, path)
    upto = MIGRATIONS[-1][0] if upto is None else upto
    applied = []
    for v, _what, step in MIGRATIONS:
        if v > upto:
            break
        if version(db) >= v:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            current = check_not_newer(db, path)
            if current < v:
                cur = db.cursor()
                step(cur)
                # Kept for people reading the file with the sqlite3 shell; user_version is the truth.
                cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(v),))
                cur.execute(f"PRAGMA user_version = {int(v)}")
                cur.close()
                applied.append(v)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return applied
