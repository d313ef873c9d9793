"""The buffer's SQLite index: patient / study / series / instance, the job queue, commitment state.

The tables are defined, versioned and migrated in gateway/buffer/migrations.py; opening an Index
brings the file to the latest version first.

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

from gateway.buffer import migrations


class Index:
    """One process's connection to the buffer's index (see the module docstring)."""

    def __init__(self, path: Path):
        """Open (or create) the index at `path` and migrate it; raises migrations.SchemaTooNew
        when a newer release wrote it."""
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
        try:
            # Before anyone reads or writes a row: a buffer from an older release is brought up to
            # date here, one from a newer release is refused (migrations.SchemaTooNew).
            migrations.migrate(self._db, path)
        except BaseException:
            self._db.close()
            raise

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
        """Rows of one read statement, outside any write transaction."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection; the Index is unusable afterwards."""
        with self._lock:
            self._db.close()
