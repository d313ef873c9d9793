"""The last good worklist, kept in the buffer so that capture works while the RIS is down (issue 10
item 1), and the day's counter of generated Patient IDs.

``<buffer>/worklist.json``: the items of the last C-FIND that succeeded (PS3.4 K.4.1.3: every
pending response of one query, the final Success seen), when it was fetched and from which SCP.
A failed refresh never calls save(): the file keeps the last good answer until a good one
replaces it (zero items is a good answer and replaces it too).

Why a file written atomically and not a table of the index:
- the worklist is one snapshot replaced as a whole, never updated row by row: a temp file, fsync,
  rename and a directory fsync give the same all-or-nothing as a transaction, with nothing to
  migrate (the index's schema version says what the *buffer* holds; a cache of the RIS is not that);
- `dicom-gateway worklist` reads it beside a running service without waiting on the index's
  writer lock, and a broken file is simply "no cache" (the RIS is asked again), never an index
  that will not open;
- a refresh every two minutes writes one small file; the index's WAL would write as much.

The file is JSON (version 1): {"version": 1, "fetched_at": float, "source": "AE@host:port",
"items": [{Procedure's fields, identifier as base64}]}. Bytes stay bytes: each item's identifier
is stored as the SCP encoded its values (gateway/buffer/procedure.py).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from gateway.buffer.files import fsync_dir
from gateway.buffer.procedure import Procedure

log = logging.getLogger("gateway.buffer.worklist")

WORKLIST_FILE = "worklist.json"
COUNTER_FILE = "unscheduled-ids.json"
_VERSION = 1


@dataclass(frozen=True)
class CachedWorklist:
    """One good worklist. items: in the SCP's order. fetched_at: when its final response came
    (seconds since the epoch). source: the SCP, "AE@host:port"."""

    items: tuple[Procedure, ...]
    fetched_at: float
    source: str


def _write_atomically(path: Path, data: bytes) -> None:
    """temp + fsync + rename + directory fsync: a reader (or a power cut) sees the old file or the
    new one, never half of one. Raises OSError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class WorklistStore:
    """The worklist cache and the unscheduled-ID counter of one buffer folder (``buffer_dir``).
    Thread-safe as files are: each save replaces the file whole."""

    def __init__(self, buffer_dir: Path):
        self.root = Path(buffer_dir)
        self.path = self.root / WORKLIST_FILE
        self.counter_path = self.root / COUNTER_FILE

    def save(self, worklist: CachedWorklist) -> None:
        """Keep ``worklist`` durably (returns once it is on the disk). Raises OSError."""
        items = []
        for p in worklist.items:
            d = asdict(p)
            d["identifier"] = base64.b64encode(p.identifier).decode("ascii")
            items.append(d)
        doc = {"version": _VERSION, "fetched_at": worklist.fetched_at, "source": worklist.source, "items": items}
        _write_atomically(self.path, json.dumps(doc, ensure_ascii=False).encode("utf-8"))

    def load(self) -> CachedWorklist | None:
        """The last good worklist, or None when there is none. A file that does not read (damaged,
        from a newer release) is also None, with one WARNING naming the file: the next refresh
        writes a good one."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("worklist cache %s unreadable (%s); ignored", self.path, exc.strerror or exc)
            return None
        try:
            doc = json.loads(raw.decode("utf-8"))
            if doc.get("version") != _VERSION:
                raise ValueError(f"version {doc.get('version')!r}, this release reads {_VERSION}")
            names = {f.name for f in fields(Procedure)}
            items = []
            for d in doc["items"]:
                d = {k: v for k, v in d.items() if k in names}
                d["identifier"] = base64.b64decode(d["identifier"], validate=True)
                items.append(Procedure(**d))
            return CachedWorklist(tuple(items), float(doc["fetched_at"]), str(doc["source"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("worklist cache %s does not read (%s); ignored", self.path, exc)
            return None

    def next_unscheduled_number(self, day: str) -> int:
        """The next number of ``day`` ("YYYYMMDD") for a generated Patient ID, 1 on a new day; kept
        durably before it is returned, so that a restart never hands out a number twice. Raises
        OSError."""
        last = 0
        try:
            doc = json.loads(self.counter_path.read_text(encoding="utf-8"))
            if doc.get("day") == day:
                last = int(doc.get("last", 0))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # A damaged counter must not stop an unscheduled capture: go on from the second of the
            # day times 10, above any count a day of captures reaches before it (1, 2, 3...).
            log.warning("unscheduled ID counter %s does not read (%s); going on from the time of day",
                        self.counter_path, exc)
            t = time.localtime()
            last = (t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec) * 10
        _write_atomically(self.counter_path, json.dumps({"day": day, "last": last + 1}).encode("ascii"))
        return last + 1
