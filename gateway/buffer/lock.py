"""One service per buffer: an exclusive lock on `<buffer>/gateway.lock`, taken before anything is touched.

Buffer recovery deletes partial files in incoming/ and re-queues in-flight jobs; run against a buffer
that another live process is using, it would cut that process's C-STOREs in progress and send its
delivered objects again. So `run` takes this lock first and keeps it for its whole life; a second
instance exits naming the holder's PID. The kernel drops the lock when the holder dies (kill -9,
power cut), so a stale lock file never blocks a restart.

flock(2) rather than a PID file alone: a PID can be reused after a crash, a lock cannot outlive its
process. The PID written inside is for the message and for `dicom-gateway status`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = "gateway.lock"


class BufferLocked(Exception):
    """Another live process holds the buffer. `pid` is its PID as it wrote it (None if unreadable)."""

    def __init__(self, path: Path, pid: int | None):
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"buffer {path.parent} is in use by {who} (lock {path})")
        self.path = path
        self.pid = pid


class BufferLock:
    """The held lock. Release with close() (or let the process end)."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def acquire(root: Path, wait_s: float = 1.0) -> BufferLock:
    """Take the buffer's lock and write our PID into it.

    `root` must exist. Retries for `wait_s` (a `status` command may hold it for an instant while it
    checks whether a service is running). Raises BufferLocked when another process holds it, OSError
    when the lock file cannot be created."""
    path = root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                os.close(fd)
                raise
            if time.monotonic() >= deadline:
                os.close(fd)
                raise BufferLocked(path, _read_pid(path)) from None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return BufferLock(path, fd)


def holder(root: Path) -> int | None:
    """PID of the live process holding the buffer's lock, or None when no process holds it.

    Probes with a non-blocking shared lock released at once; never creates the lock file."""
    path = root / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                return _read_pid(path) or -1
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# -- writers beside the service ----------------------------------------------------------------------
# A process that writes into the buffer beside a running service (`dicom-gateway import`) holds a
# shared lock on this file while it does; the service's start-up recovery, which deletes partial
# files in incoming/ and files under objects/ that no index row names yet, does that cleaning only
# when it gets the exclusive lock, so a service restarted during an import never deletes the
# import's file in flight. It does not wait for the import: the cleaning is left to the next start
# (partial files cost disk, never data), and the rest of recovery runs as always.
WRITERS_NAME = "writers.lock"


def writer(root: Path) -> BufferLock:
    """Announce a writer beside the service: a shared lock on `<root>/writers.lock`, held until
    close(). Blocks only while a recovery is cleaning (milliseconds). Raises OSError when the lock
    file cannot be created."""
    fd = os.open(root / WRITERS_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        raise
    return BufferLock(root / WRITERS_NAME, fd)


def no_writers(root: Path) -> BufferLock | None:
    """The exclusive lock on `<root>/writers.lock` when no writer holds it, else None (never waits).
    Held while recovery deletes what it believes nobody is writing."""
    fd = os.open(root / WRITERS_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return None
        raise
    return BufferLock(root / WRITERS_NAME, fd)
