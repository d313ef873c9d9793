"""Schema version 4: the import report tables. A version 3 buffer (the previous release's buffer,
migrated up to 3) opens, gains them, keeps every row, and the store reads back what it wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.buffer import migrations
from gateway.buffer.imports import ImportStore, ItemRow
from gateway.buffer.index import Index

DUMP = Path(__file__).parent.parent / "data" / "buffer-v1.sql"
OLD_TABLES = ("patients", "studies", "series", "instances", "jobs", "job_items", "commitments",
              "print_jobs", "print_films")


def _v3_buffer(tmp_path: Path) -> Path:
    path = tmp_path / "index.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(DUMP.read_text())
    assert migrations.migrate(db, path, upto=3) == [1, 2, 3]
    db.close()
    return path


def _rows(db, table):
    # Columns a later version adds to an old table (7: the C-FIND columns) are not the old rows;
    # tests/unit/test_qr_query.py checks what version 7 fills them with.
    cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")
            if r[1] not in ("name_folded", "referring_folded", "study_dt")]
    return [tuple(r) for r in db.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1")]


def test_a_version_3_buffer_migrates_to_the_latest_and_keeps_every_row(tmp_path):
    path = _v3_buffer(tmp_path)
    db = sqlite3.connect(path)
    assert migrations.version(db) == 3
    before = {t: _rows(db, t) for t in OLD_TABLES}
    assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'imports'").fetchall()
    db.close()

    Index(path).close()

    db = sqlite3.connect(path)
    assert migrations.version(db) == migrations.LATEST >= 4
    assert {t: _rows(db, t) for t in OLD_TABLES} == before
    assert _rows(db, "imports") == [] and _rows(db, "import_items") == []
    # A migrated buffer and a new one have the same schema.
    fresh = tmp_path / "fresh.sqlite"
    Index(fresh).close()
    schema = "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    assert db.execute(schema).fetchall() == sqlite3.connect(fresh).execute(schema).fetchall()


def test_the_store_reads_back_what_it_wrote(tmp_path):
    index = Index(_v3_buffer(tmp_path))
    store = ImportStore(index)
    first = store.begin("USB-1", "dicomdir", started=100.0)
    second = store.begin("DVD", "scan", "no DICOMDIR: every file was read", started=200.0)
    items = [ItemRow(1, "imported", outcome="stored", sop_uid="1.2.3", sop_class="1.2.840.10008.5.1.4.1.1.2",
                     file_id="IMAGES\\IM0001"),
             ItemRow(2, "skipped", reason="missing-file", sop_uid="1.2.4", file_id="IMAGES\\IM0002",
                     detail="the DICOMDIR references this file; it is not on the medium")]
    store.add_items(first, items)
    store.flag(first, [1], "patient-id-conflict", "one Patient ID names 2 different patients")
    assert store.get(first).state == "running" and store.get(first).finished is None
    store.finish(first, files=2, imported=1, duplicates=0, skipped=1, failed=0, flagged=1, finished=150.0)
    row = store.get(first)
    assert (row.label, row.method, row.state, row.finished, row.files, row.imported, row.skipped, row.flagged) == (
        "USB-1", "dicomdir", "finished", 150.0, 2, 1, 1, 1)
    got = store.items(first)
    assert got[1] == items[1]
    assert (got[0].flag, got[0].detail, got[0].file_id) == ("patient-id-conflict",
                                                           "one Patient ID names 2 different patients",
                                                           "IMAGES\\IM0001")
    assert [r.id for r in store.recent()] == [second, first]
    assert store.get(second).note == "no DICOMDIR: every file was read" and store.items(second) == []
    assert store.get(999) is None
    index.close()
