"""Schema versions: a buffer written by the previous release opens, migrates, keeps every row and
works; one written by a newer release is refused in one line; each migration is all or nothing.

The previous release's buffer is tests/data/buffer-v1.sql, dumped from a buffer that the code at
20cb9d5 filled (tests/data/make_buffer_v1.py says what it holds and how to make it again).
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import make_ct

from gateway.buffer import migrations
from gateway.buffer.index import Index
from gateway.buffer.ingest import FORWARD, Buffer
from gateway.buffer.retention import DAY_S, Retention, retention_summary
from gateway.config import BufferSection
from gateway.part10.attributes import read_attributes
from gateway.print.store import PrintStore

DUMP = Path(__file__).parent.parent / "data" / "buffer-v1.sql"
T0 = 1_780_000_000.0  # the fixture's timestamps
ROUTES = {1: ["a", "b"], 2: ["a", "b"], 3: ["a"], 4: ["a"], 5: ["a"], 6: []}  # as the fixture's
PRINT_UID = "1.2.826.0.1.3680043.2.1125.9.5.1"
V1_TABLES = ("meta", "patients", "studies", "series", "instances", "jobs", "commitments",
             "print_jobs", "print_films")


def _old_buffer(tmp_path) -> Path:
    """The previous release's buffer folder: its index from the dump, a stand-in file per instance."""
    root = tmp_path / "buf"
    root.mkdir()
    db = sqlite3.connect(root / "index.sqlite")
    db.executescript(DUMP.read_text())
    paths = [r[0] for r in db.execute("SELECT path FROM instances")]
    db.close()
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"stand-in for a received instance")
    return root


def _router(attrs, calling):
    return ["a"] if int(attrs.instance_number) > 6 else ROUTES[int(attrs.instance_number)]


def _open(root: Path) -> Buffer:
    return Buffer(root, 0, "replace", _router)


def _schema(db: sqlite3.Connection) -> set[tuple]:
    return {tuple(r) for r in db.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}


def _rows(db: sqlite3.Connection, table: str) -> list[tuple]:
    # Columns a later version adds to an old table (7: the C-FIND columns) are not the old rows;
    # tests/unit/test_qr_query.py checks what version 7 fills them with.
    cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")
            if r[1] not in ("name_folded", "referring_folded", "study_dt")]
    return [tuple(r) for r in db.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1")]


def _classes(buf: Buffer) -> dict[str, int]:
    s = retention_summary(buf, BufferSection())
    return {k: s[k]["instances"] for k in ("delivered", "undelivered", "unrouted")}


def _sop(buf: Buffer, n: int) -> int:
    """The index id of the fixture's CT number `n`."""
    (row,) = buf.index.query("SELECT id FROM instances WHERE instance_number = ?", (str(n),))
    return row["id"]


def test_the_fixture_is_the_previous_release(tmp_path):
    """Guards the premise: the dump has no version, as every buffer before versions."""
    root = _old_buffer(tmp_path)
    db = sqlite3.connect(root / "index.sqlite")
    assert migrations.version(db) == 0
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == set(V1_TABLES)


def test_version_1_is_exactly_the_previous_release_schema(tmp_path):
    """Migration 1 on an empty file creates what the previous release created (index, print
    spool and retention together): adopting an old buffer and creating a new one agree."""
    old = sqlite3.connect(_old_buffer(tmp_path) / "index.sqlite")
    new = sqlite3.connect(tmp_path / "new.sqlite", isolation_level=None)
    assert migrations.migrate(new, "new.sqlite", upto=1) == [1]
    assert migrations.version(new) == 1
    assert _schema(new) == _schema(old)


def test_previous_release_buffer_migrates_and_keeps_every_row(tmp_path):
    root = _old_buffer(tmp_path)
    db = sqlite3.connect(root / "index.sqlite")
    before = {t: _rows(db, t) for t in V1_TABLES}
    forward_jobs = {tuple(r) for r in db.execute("SELECT id, instance_fk FROM jobs WHERE instance_fk IS NOT NULL")}
    db.close()

    Index(root / "index.sqlite").close()

    db = sqlite3.connect(root / "index.sqlite")
    assert migrations.version(db) == migrations.LATEST
    after = {t: _rows(db, t) for t in V1_TABLES}
    assert after.pop("meta") == [("schema_version", str(migrations.LATEST))]
    before.pop("meta")
    assert after == before
    assert len(after["jobs"]) == 9 and len(after["print_films"]) == 2 and len(after["commitments"]) == 1
    # Every job of the old release links the instance it names: nothing it protected is exposed.
    assert {tuple(r) for r in db.execute("SELECT job_id, instance_fk FROM job_items")} == forward_jobs
    assert len(forward_jobs) == 7
    # A migrated buffer has the schema a new one has.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    Index(fresh / "index.sqlite").close()
    assert _schema(db) == _schema(sqlite3.connect(fresh / "index.sqlite"))
    # Opening again applies nothing.
    assert migrations.migrate(sqlite3.connect(root / "index.sqlite", isolation_level=None), root) == []


def test_the_gateway_works_on_a_migrated_buffer(tmp_path):
    """Recovery, retention's classes, a new instance with its link, delivery and delete-when-done,
    re-forward, the unrouted age rule, and the print spool, on the previous release's buffer."""
    root = _old_buffer(tmp_path)
    buf = _open(root)
    assert buf.recover()["requeued_jobs"] == 1  # CT 5 was in flight when the old release stopped
    # The classes the old rule gave: CT 1 delivered; 2-5 wait (b queued, committing, dead, queued);
    # 6 had no route.
    assert _classes(buf) == {"delivered": 1, "undelivered": 4, "unrouted": 1}

    src = tmp_path / "ct7.dcm"
    make_ct(src, number=7, seed=7)
    tmp = buf.files.new_incoming_path()
    shutil.copyfile(src, tmp)
    r = buf.ingest(tmp, read_attributes(src), "MODALITY")
    (job,) = [j for j in buf.queue.list() if j.instance_fk == r.instance_id]
    assert buf.index.query("SELECT instance_fk FROM job_items WHERE job_id = ?", (job.id,))[0][0] == r.instance_id
    assert _classes(buf) == {"delivered": 1, "undelivered": 5, "unrouted": 1}

    # CT 2's waiting job (b) goes out: the old instance becomes delivered and delete-when-done takes it.
    ct2 = _sop(buf, 2)
    (jb,) = buf.queue.claim(FORWARD, "b", 10)
    assert jb.instance_fk == ct2
    assert buf.release_if_done([ct2]) == 0
    buf.queue.complete([jb.id])
    assert buf.release_if_done([ct2]) == 1
    assert buf.index.query("SELECT COUNT(*) FROM job_items WHERE instance_fk = ?", (ct2,))[0][0] == 0
    assert buf.index.query("SELECT COUNT(*) FROM jobs WHERE instance_fk = ?", (ct2,))[0][0] == 0

    # Re-forwarding the delivered CT 1 links the new job: CT 1 is protected again until it is done.
    ct1 = _sop(buf, 1)
    (rf,) = buf.queue.reforward_instances([ct1], "c")
    assert rf.ok and rf.new_job is not None
    assert buf.index.query("SELECT instance_fk FROM job_items WHERE job_id = ?", (rf.new_job,))[0][0] == ct1
    assert buf.release_if_done([ct1]) == 0

    # The unrouted age rule takes CT 6 only: migrated jobs count as routes (their links were filled).
    ret = Retention(buf, BufferSection(retention_enabled=True, retention_unrouted_max_age_days=1))
    got = ret.sweep(now=T0 + 10 * DAY_S)
    assert got["unrouted-age"].instances == 1
    assert {int(r["instance_number"]) for r in buf.index.query("SELECT instance_number FROM instances")} == {
        1, 3, 4, 5, 7}

    # The print spool: the half-printed job reads as before, and a new one spools.
    store = PrintStore(root, buf.index, buf.queue, "film")
    assert store.print_job(PRINT_UID)["status"] == "PRINTING"
    (new_film,) = store.spool("1.2.3.4", [({"copies": 1}, {})], "PRINTSCU", "MED", 10)
    assert store.film(new_film)["phase"] == "queued"
    buf.close()


def test_an_export_job_protects_every_instance_it_links(tmp_path):
    """Why the link exists: a job needing several instances keeps each of them until it is done,
    even after each one's own forward jobs are done."""
    root = _old_buffer(tmp_path)
    buf = _open(root)
    ct1, ct2 = _sop(buf, 1), _sop(buf, 2)
    export = buf.queue.enqueue("export", "usb", '{"study": "x"}')
    with buf.index.tx() as cur:
        buf.queue.link_in(cur, export, (ct1, ct2))
        cur.execute("UPDATE jobs SET state = 'done' WHERE kind = 'forward' AND instance_fk = ?", (ct2,))
    assert buf.release_if_done([ct1, ct2]) == 0
    buf.queue.complete([export])
    assert buf.release_if_done([ct1]) == 1
    # The export job stays while it still links CT 2, then goes with it.
    assert buf.queue.get(export) is not None
    assert buf.release_if_done([ct2]) == 1
    assert buf.queue.get(export) is None
    # The database itself refuses to drop an instance a job still links.
    ct3 = _sop(buf, 3)
    keep = buf.queue.enqueue("export", "usb", "{}")
    with buf.index.tx() as cur:
        buf.queue.link_in(cur, keep, (ct3,))
    with pytest.raises(sqlite3.IntegrityError):
        with buf.index.tx() as cur:
            cur.execute("DELETE FROM jobs WHERE instance_fk = ?", (ct3,))  # the old release's eviction
            cur.execute("DELETE FROM instances WHERE id = ?", (ct3,))  # fails: the export still links it
    assert ct3 in {r["id"] for r in buf.index.query("SELECT id FROM instances")}
    buf.close()


def test_a_newer_buffer_is_refused_in_one_line(tmp_path):
    root = tmp_path / "buf"
    root.mkdir()
    db = sqlite3.connect(root / "index.sqlite")
    db.execute(f"PRAGMA user_version = {migrations.LATEST + 1}")
    db.close()
    with pytest.raises(migrations.SchemaTooNew) as err:
        _open(root)
    msg = str(err.value)
    assert "\n" not in msg and f"schema version {migrations.LATEST + 1}" in msg and "newer release" in msg
    # Nothing was written to it.
    db = sqlite3.connect(root / "index.sqlite")
    assert migrations.version(db) == migrations.LATEST + 1
    assert db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_service_and_the_cli_say_it_in_one_line(tmp_path):
    import tomli_w
    from peers import ROOT

    root = tmp_path / "buf"
    root.mkdir()
    db = sqlite3.connect(root / "index.sqlite")
    db.execute(f"PRAGMA user_version = {migrations.LATEST + 1}")
    db.close()
    config = tmp_path / "gateway.toml"
    config.write_text(tomli_w.dumps({"buffer": {"path": str(root)},
                                     "ae": {"bind": "127.0.0.1", "port": _free_port()}}))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--config", str(config)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    r = cli("run")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "not started" in r.stderr and "newer release" in r.stderr
    r = cli("queue", "list")
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "newer release" in r.stderr


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    """Each step is one transaction with its version: a step that fails half-way leaves the
    buffer at the version before it, and the next open tries it again."""
    root = _old_buffer(tmp_path)

    def broken(cur):
        cur.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("power cut")

    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS + ((migrations.LATEST + 1, "broken", broken),))
    with pytest.raises(RuntimeError):
        Index(root / "index.sqlite")
    db = sqlite3.connect(root / "index.sqlite")
    assert migrations.version(db) == migrations.LATEST  # the steps before it stayed
    assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
    monkeypatch.undo()
    Index(root / "index.sqlite").close()
    assert migrations.version(sqlite3.connect(root / "index.sqlite")) == migrations.LATEST


def test_statements_keep_semicolons_in_comments():
    """The v1 script has a ';' inside a comment: splitting on ';' would cut a statement."""
    sql = "-- a ; b\nCREATE TABLE t (x); -- done ; really\nCREATE INDEX i\n  ON t(x);\n-- trailing\n"
    parts = migrations.statements(sql)
    assert len(parts) == 2
    db = sqlite3.connect(":memory:")
    for p in parts:
        db.execute(p)
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master")} == {"t", "i"}
    with pytest.raises(ValueError, match="incomplete"):
        migrations.statements("CREATE TABLE u (x)")


def test_open_counts_read_the_open_jobs_index(tmp_path):
    """Version 3: the service's periodic count reads the partial index of open jobs, not the table
    (a year of done jobs would be scanned every few seconds otherwise)."""
    root = tmp_path / "buf"
    buf = Buffer(root, 0, "replace", lambda attrs, source: [])
    plan = buf.index.query("EXPLAIN QUERY PLAN SELECT kind, target, state, COUNT(*) AS n FROM jobs"
                           " WHERE state != 'done' GROUP BY kind, target, state")
    assert any("jobs_open" in str(tuple(r)) for r in plan), [tuple(r) for r in plan]
    assert buf.queue.open_counts() == {}
