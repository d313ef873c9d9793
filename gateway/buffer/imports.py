"""The media import reports, kept in the buffer's index (tables `imports` and `import_items`,
schema version 4 in migrations.py).

One report per import (a medium, or `dicom-gateway import PATH`): its label, how the file-set was
read, its state and totals; one item per file looked at, with the verdict, the UIDs, a reason code
and a one-line detail. Patient names and IDs are never written here, nor paths from the medium (a
stick's folders may be named after patients): only a DICOMDIR's File ID (PS3.10 8.2, meaningless
by rule). gateway/media/importer.py writes them; `dicom-gateway imports` reads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from gateway.buffer.index import Index

RUNNING = "running"
FINISHED = "finished"


@dataclass(frozen=True)
class ItemRow:
    """One file of an import, as stored. status: "imported", "duplicate", "skipped" or "failed";
    outcome: the buffer's verdict ("stored", "identical", "replaced", "kept-first") or "";
    reason: a code ("not-dicom", "missing-file", "record-mismatch", "unsupported-sop-class",
    "unreadable", "disk-full", "write-failed", "index-error", "not-reconciled") or ""; flag: "patient-id-conflict"
    or ""; file_id: the DICOMDIR's Referenced File ID, components joined with "\\" ("" when the
    tree was scanned); detail: one line for the operator, no patient data."""

    seq: int
    status: str
    outcome: str = ""
    reason: str = ""
    flag: str = ""
    sop_uid: str = ""
    sop_class: str = ""
    file_id: str = ""
    detail: str = ""


@dataclass(frozen=True)
class ImportRow:
    """One import, as stored. Times are seconds since the epoch; `finished` is None while it runs
    (or when the process importing died: state stays "running")."""

    id: int
    label: str
    method: str
    note: str
    state: str
    started: float
    finished: float | None
    files: int
    imported: int
    duplicates: int
    skipped: int
    failed: int
    flagged: int


_ITEM_COLUMNS = ("seq", "status", "outcome", "reason", "flag", "sop_uid", "sop_class", "file_id", "detail")


class ImportStore:
    """The reports in one buffer's index. Each call is its own transaction (raises sqlite3.Error)."""

    def __init__(self, index: Index):
        self.index = index

    def begin(self, label: str, method: str, note: str = "", started: float | None = None) -> int:
        """A new report in state "running"; returns its id."""
        with self.index.tx() as cur:
            cur.execute("INSERT INTO imports(label, method, note, state, started) VALUES (?, ?, ?, ?, ?)",
                        (label, method, note, RUNNING, time.time() if started is None else started))
            return cur.lastrowid

    def add_items(self, import_id: int, items: Iterable[ItemRow]) -> None:
        """Append items (their `seq` numbers must be new in this import)."""
        rows = [(import_id, *(getattr(i, c) for c in _ITEM_COLUMNS)) for i in items]
        if not rows:
            return
        with self.index.tx() as cur:
            cur.executemany(f"INSERT INTO import_items(import_id, {', '.join(_ITEM_COLUMNS)})"
                            f" VALUES (?{', ?' * len(_ITEM_COLUMNS)})", rows)

    def flag(self, import_id: int, seqs: Iterable[int], flag: str, detail: str) -> None:
        """Set a flag (and its detail) on items already written."""
        with self.index.tx() as cur:
            cur.executemany("UPDATE import_items SET flag = ?, detail = ? WHERE import_id = ? AND seq = ?",
                            [(flag, detail, import_id, s) for s in seqs])

    def finish(self, import_id: int, *, files: int, imported: int, duplicates: int, skipped: int,
               failed: int, flagged: int, finished: float | None = None) -> None:
        """Close the report with its totals (state "finished")."""
        with self.index.tx() as cur:
            cur.execute("UPDATE imports SET state = ?, finished = ?, files = ?, imported = ?, duplicates = ?,"
                        " skipped = ?, failed = ?, flagged = ? WHERE id = ?",
                        (FINISHED, time.time() if finished is None else finished, files, imported,
                         duplicates, skipped, failed, flagged, import_id))

    def get(self, import_id: int) -> ImportRow | None:
        rows = self.index.query("SELECT * FROM imports WHERE id = ?", (import_id,))
        return ImportRow(**dict(rows[0])) if rows else None

    def recent(self, limit: int = 20) -> list[ImportRow]:
        """The latest imports, newest first."""
        return [ImportRow(**dict(r)) for r in
                self.index.query("SELECT * FROM imports ORDER BY id DESC LIMIT ?", (limit,))]

    def items(self, import_id: int) -> list[ItemRow]:
        """An import's items in the order the files were looked at."""
        return [ItemRow(**{c: r[c] for c in _ITEM_COLUMNS}) for r in self.index.query(
            f"SELECT {', '.join(_ITEM_COLUMNS)} FROM import_items WHERE import_id = ? ORDER BY seq",
            (import_id,))]
