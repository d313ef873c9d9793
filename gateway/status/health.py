"""What /healthz vouches for: the service's worker threads run and the buffer's index can be read.

`Health(healthy, index_path)()` answers None when both hold, else the first problem in one line.
The index is probed through a fresh read-only connection with a short busy timeout, not the
service's own (which waits up to 30 s on a lock, gateway/buffer/index.py): so the probe sees what a
restart would see (the file there, readable, an index) and a monitoring scrape never queues behind
a C-STORE's commit.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

# How long a probe waits for a lock on the index before calling it unavailable (seconds).
PROBE_TIMEOUT_S = 1.0


def index_problem(path: Path, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the index at `path` opens read-only and answers a read within `timeout` seconds;
    else "index: <why>". Never raises, never creates the file."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.Error as exc:
        return f"index: cannot open {path}: {exc}"
    try:
        db.execute("SELECT COUNT(*) FROM meta").fetchone()
    except sqlite3.Error as exc:
        return f"index: cannot read {path}: {exc}"
    finally:
        db.close()
    return None


class Health:
    """healthy: the app's check of its worker threads (Gateway.healthy). index_path: the buffer's
    index file. Calling it returns None when healthy, else the reason (one line)."""

    def __init__(self, healthy: Callable[[], bool], index_path: Path):
        self._healthy = healthy
        self._index_path = index_path

    def __call__(self) -> str | None:
        if not self._healthy():
            return "a worker thread stopped (forwarder, print spooler, media drive or exporter): see the log"
        return index_problem(self._index_path)
