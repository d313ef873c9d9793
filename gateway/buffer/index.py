"""The buffer's SQLite index: patient / study / series / instance, the job queue, commitment state.

WAL with synchronous=FULL: a commit returns only after the WAL is fsynced, which is what "indexed"
means before a Success goes out. One connection per process, serialised by a lock: the box has few
cores and writes are short, and one writer avoids SQLITE_BUSY storms under load. Other processes
(the CLI) open their own connection and wait on the busy timeout.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCHEMA_VERSION = 1

_SCHEMA = """
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
"""


class Index:
    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)
        with self.tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction; committed (and fsynced) when the block exits without error."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()
