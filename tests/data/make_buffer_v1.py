"""Write tests/data/buffer-v1.sql: a buffer index as the release before schema migrations made it.

The dump is the fixture of tests/unit/test_migrations.py ("a buffer written by the previous
release opens and migrates"). It must come from THAT release's code, not from today's migration 1,
or the test would only check the migrations against themselves. To regenerate it:

    git worktree add /tmp/buffer-v1 20cb9d5
    PYTHONPATH=/tmp/buffer-v1:/tmp/buffer-v1/hw-sim:/tmp/buffer-v1/tests \
        python tests/data/make_buffer_v1.py tests/data/buffer-v1.sql

What it holds (the instance files are not in the dump; the test writes stand-ins at their paths):
  - CT 1, routes a+b, both done            -> delivered
  - CT 2, routes a+b, a done, b queued     -> undelivered (waits for b after a failure)
  - CT 3, route a, committing              -> undelivered, one pending commitment
  - CT 4, route a, dead                    -> undelivered
  - CT 5, route a, in flight               -> undelivered (requeued by recovery)
  - CT 6, no route                         -> unrouted
  - one print job of two films: film 1 printed (job done), film 2 queued
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np
from datasets import make_ct

from gateway.buffer.ingest import FORWARD, Buffer
from gateway.buffer.retention import Retention
from gateway.config import BufferSection
from gateway.part10.attributes import read_attributes
from gateway.print.spooler import PrintStore

# Fixed UIDs and times keep a regenerated dump comparable with the stored one.
T0 = 1_780_000_000.0
ROUTES = {1: ["a", "b"], 2: ["a", "b"], 3: ["a"], 4: ["a"], 5: ["a"], 6: []}


def build(root: Path) -> Path:
    """Fill a buffer at `root` with the rows listed in the module docstring; returns its index."""
    buf = Buffer(root, 0, "replace", lambda attrs, calling: ROUTES[int(attrs.instance_number)])
    Retention(buf, BufferSection())  # the service always creates retention's indexes
    for n in ROUTES:
        src = root.parent / f"ct{n}.dcm"
        make_ct(src, number=n, seed=n, study_uid=f"1.2.826.0.1.3680043.2.1125.9.1.{n}",
                series_uid=f"1.2.826.0.1.3680043.2.1125.9.2.{n}",
                sop_uid=f"1.2.826.0.1.3680043.2.1125.9.3.{n}", patient_id=f"PID-{n}")
        tmp = buf.files.new_incoming_path()
        shutil.copyfile(src, tmp)
        buf.ingest(tmp, read_attributes(src), "MODALITY")
    q = buf.queue
    (a1, a2, a3, a4, a5) = q.claim(FORWARD, "a", 10)
    (b1, b2) = q.claim(FORWARD, "b", 10)
    q.complete([a1.id, b1.id, a2.id])
    q.fail(b2.id, "no association with b", T0 + 3600)
    q.mark_committing([a3.id], "1.2.826.0.1.3680043.2.1125.9.4.1", "a", T0 + 600)
    q.fail(a4.id, "status 0xA900", None)
    # a5 stays in flight: the power went while it was being sent.
    store = PrintStore(root, buf.index, q, "film")
    film = ({"copies": 1, "format": "STANDARD\\1,1"}, {"image-1": np.zeros((4, 4), np.uint16)})
    j1, j2 = store.spool("1.2.826.0.1.3680043.2.1125.9.5.1", [film, film], "PRINTSCU", "MED", 10)
    (p1,) = q.claim("print", "film", 1)
    store.set_phase(p1.id, "sending", '{"films_left": 10, "copies": 1, "done": 0}')
    store.mark_printed(p1.id, "previews/1.2.826.0.1.3680043.2.1125.9.5.1-1.png")
    with buf.index.tx() as cur:  # fixed times: the dump is stable across regenerations
        for table, cols in (("instances", ("received_at",)), ("studies", ("first_received",)),
                            ("jobs", ("created", "updated")), ("print_jobs", ("created",)),
                            ("print_films", ("updated",)), ("commitments", ("sent_at",))):
            for col in cols:
                cur.execute(f"UPDATE {table} SET {col} = ?", (T0,))
    buf.close()
    return root / "index.sqlite"


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        index = build(Path(d) / "buf")
        db = sqlite3.connect(index)
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0, "not the pre-migration release"
        text = "\n".join(db.iterdump()) + "\n"
        db.close()
    Path(out).write_text("-- Buffer index written by dicom-gateway at 20cb9d5;"
                         " see make_buffer_v1.py\n" + text)


if __name__ == "__main__":
    main(sys.argv[1])
